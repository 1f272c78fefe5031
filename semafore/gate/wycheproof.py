"""Project Wycheproof cases through an adapter's primitive operations (optional suite).

``semafore gate --wycheproof DIR`` adds these cases beside the SemaFore vectors, so a
platform's X25519 / Ed25519 / AES-256-GCM / HKDF / HMAC bindings are checked against the same
corpus the reference is tested with (``tests/protocol/test_wycheproof.py``), with the same
SPEC §5 mapping: an all-zero X25519 output is ``InvalidKey``, any invalid Ed25519 signature
``InvalidSignature``, any bad GCM tag ``DecryptionFailed``. Only the parameter sizes SemaFore
uses are included (AES-256, 96-bit IV, 128-bit tag; full 256-bit HMAC tags; valid HKDF
lengths), since an adapter never needs the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from semafore.gate.cases import Exchange, GateCase, VectorFormatError

ZERO32 = "00" * 32
Group = dict[str, Any]
Test = dict[str, Any]


def _tests(path: Path) -> Iterator[tuple[Group, Test]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    for group in data["testGroups"]:
        for test in group["tests"]:
            yield group, test


def _x25519(group: Group, test: Test) -> Exchange | None:
    args = {"private": test["private"], "public": test["public"]}
    if test["shared"] == ZERO32:
        return Exchange("x25519.dh", args, expect_error="InvalidKey")
    return Exchange("x25519.dh", args, expect={"shared": test["shared"]})


def _ed25519(group: Group, test: Test) -> Exchange | None:
    args = {"public": group["publicKey"]["pk"], "sig": test["sig"], "message": test["msg"]}
    if test["result"] == "valid":
        return Exchange("ed25519.verify", args, expect={})
    return Exchange("ed25519.verify", args, expect_error="InvalidSignature")


def _aes_gcm(group: Group, test: Test) -> Exchange | tuple[Exchange, ...] | None:
    if (group["keySize"], group["ivSize"], group["tagSize"]) != (256, 96, 128):
        return None
    sealed = test["ct"] + test["tag"]
    common = {"key": test["key"], "nonce": test["iv"], "aad": test["aad"]}
    opened = Exchange(
        "aead.open",
        {**common, "ciphertext": sealed},
        expect={"plaintext": test["msg"]} if test["result"] == "valid" else None,
        expect_error=None if test["result"] == "valid" else "DecryptionFailed",
    )
    if test["result"] != "valid":
        return (opened,)
    return (
        Exchange("aead.seal", {**common, "plaintext": test["msg"]}, expect={"ciphertext": sealed}),
        opened,
    )


def _hkdf(group: Group, test: Test) -> Exchange | None:
    if test["result"] != "valid":
        return None  # lengths above 255*32 are an argument error, not a SPEC §5 condition
    args = {"ikm": test["ikm"], "salt": test["salt"], "info": test["info"], "length": test["size"]}
    return Exchange("hkdf", args, expect={"okm": test["okm"]})


def _hmac(group: Group, test: Test) -> Exchange | None:
    if group["tagSize"] != 256 or test["result"] != "valid":
        return None  # tag comparison/truncation is the caller's job, not the primitive's
    return Exchange("hmac", {"key": test["key"], "data": test["msg"]}, expect={"mac": test["tag"]})


Builder = Callable[[Group, Test], "Exchange | tuple[Exchange, ...] | None"]

FILES: dict[str, tuple[str, Builder]] = {
    "wycheproof-x25519": ("x25519_test.json", _x25519),
    "wycheproof-ed25519": ("ed25519_test.json", _ed25519),
    "wycheproof-aes-256-gcm": ("aes_gcm_test.json", _aes_gcm),
    "wycheproof-hkdf-sha256": ("hkdf_sha256_test.json", _hkdf),
    "wycheproof-hmac-sha256": ("hmac_sha256_test.json", _hmac),
}


def wycheproof_cases(directory: str | Path) -> list[GateCase]:
    """Gate cases from a Wycheproof checkout's ``testvectors_v1``-style JSON files."""
    directory = Path(directory)
    cases: list[GateCase] = []
    for suite, (filename, build) in FILES.items():
        path = directory / filename
        if not path.is_file():
            raise VectorFormatError(f"Wycheproof file {path} not found")
        for group, test in _tests(path):
            built = build(group, test)
            if built is None:
                continue
            exchanges = built if isinstance(built, tuple) else (built,)
            cases.append(
                GateCase(
                    suite,
                    f"tc{test['tcId']}",
                    f"{test.get('comment', '')} [{test['result']}]".strip(),
                    exchanges,
                    negative=test["result"] != "valid",
                )
            )
    return cases
