"""Project Wycheproof vectors through ``semafore.protocol.primitives`` (seed §1.2).

Known answers must come out exactly; every must-reject case must become the canonical error:
X25519 low-order / zero-shared-secret → ``InvalidKey``, any invalid Ed25519 signature
(malleable S, bad encodings, wrong lengths) → ``InvalidSignature``, any bad AES-GCM tag →
``DecryptionFailed``. One test per Wycheproof case, named by its ``tcId``, so a failure says
exactly which vector broke.

The vectors live outside the project (``../shared/wycheproof``, or wherever
``SEMAFORE_WYCHEPROOF_DIR`` points, so users can bring their own checkout). Missing vectors
skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import hmac
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from semafore.protocol.errors import DecryptionFailed, InvalidKey, InvalidSignature
from semafore.protocol.primitives import (
    X25519KeyPair,
    aead_open,
    aead_seal,
    ed25519_verify,
    hkdf,
    hmac_sha256,
    x25519,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "SEMAFORE_WYCHEPROOF_DIR"
ZERO32 = bytes(32)
# SemaFore uses AES-GCM only with 256-bit keys, 96-bit nonces and 128-bit tags (SPEC §2/§3).
GCM_SIZES = (256, 96, 128)


def wycheproof_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or REPO_ROOT.parent / "shared" / "wycheproof")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Case:
    """One Wycheproof test with its group's parameters."""

    file: str
    group: dict[str, Any]
    test: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file.removesuffix('_test.json')}-{self.test['tcId']}"

    def hex(self, key: str) -> bytes:
        return bytes.fromhex(self.test[key])


def load(file: str) -> list[Case]:
    """Every test of ``file``; an empty list when the folder is missing (see ``_missing``)."""
    path = wycheproof_dir() / file
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Case(file, group, test) for group in data["testGroups"] for test in group["tests"]]


def cases(file: str, keep: Any = None) -> Any:
    """pytest params for ``file`` (filtered by ``keep``), or one sentinel when absent."""
    found = [case for case in load(file) if keep is None or keep(case)]
    if not found:
        return [pytest.param(None, id=f"{file}-missing")]
    return [pytest.param(case, id=case.id) for case in found]


def _need(case: Case | None) -> Case:
    """Skip locally / fail in CI when the vectors are not there."""
    if case is None:
        message = f"Wycheproof vectors not found in {wycheproof_dir()} (set {ENV_VAR})"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return case


# --- X25519 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("x25519_test.json"))
def test_x25519(case: Case | None) -> None:
    """Valid and twist/non-canonical ("acceptable") cases agree with RFC 7748; an all-zero
    shared secret (low-order public key) is ``InvalidKey``, never a key."""
    c = _need(case)
    private, public, shared = c.hex("private"), c.hex("public"), c.hex("shared")
    assert c.test["result"] in ("valid", "acceptable")
    if shared == ZERO32:
        with pytest.raises(InvalidKey):
            X25519KeyPair.from_private(private).dh(public)
        with pytest.raises(InvalidKey):
            x25519(private, public)
    else:
        assert X25519KeyPair.from_private(private).dh(public) == shared
        assert x25519(private, public) == shared


def test_x25519_zero_shared_cases_are_all_flagged() -> None:
    """Every low-order / zero-shared case is covered by the all-zero rule above."""
    found = load("x25519_test.json")
    if not found:
        _need(None)
    flagged = [c for c in found if {"LowOrderPublic", "ZeroSharedSecret"} & set(c.test["flags"])]
    assert flagged, "the corpus should contain low-order cases"
    assert all(c.hex("shared") == ZERO32 for c in flagged)


# --- Ed25519 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("ed25519_test.json"))
def test_ed25519_verify(case: Case | None) -> None:
    """Valid signatures verify; every invalid one (malleable S, bad R/S encodings, truncated
    or padded signatures, wrong message) is ``InvalidSignature``."""
    c = _need(case)
    public = bytes.fromhex(c.group["publicKey"]["pk"])
    message, signature = c.hex("msg"), c.hex("sig")
    if c.test["result"] == "valid":
        ed25519_verify(public, signature, message)
    else:
        assert c.test["result"] == "invalid"
        with pytest.raises(InvalidSignature):
            ed25519_verify(public, signature, message)


# --- AES-256-GCM -------------------------------------------------------------------------------


def _gcm_sizes(case: Case) -> tuple[int, int, int]:
    return (case.group["keySize"], case.group["ivSize"], case.group["tagSize"])


@pytest.mark.parametrize("case", cases("aes_gcm_test.json", lambda c: _gcm_sizes(c) == GCM_SIZES))
def test_aes_256_gcm(case: Case | None) -> None:
    """Valid cases seal to ``ct || tag`` and open back; every modified tag or ciphertext is
    ``DecryptionFailed``."""
    c = _need(case)
    key, nonce, aad = c.hex("key"), c.hex("iv"), c.hex("aad")
    message, sealed = c.hex("msg"), c.hex("ct") + c.hex("tag")
    if c.test["result"] == "valid":
        assert aead_seal(key, nonce, message, aad) == sealed
        assert aead_open(key, nonce, sealed, aad) == message
    else:
        assert c.test["result"] == "invalid"
        with pytest.raises(DecryptionFailed):
            aead_open(key, nonce, sealed, aad)


def test_aes_gcm_sizes_semafore_never_uses_are_counted() -> None:
    """AES-128/192 and non-96-bit IVs never occur in SemaFore (keys come from a 32-byte HKDF,
    nonces are fixed 12-byte fields); those vectors are out of scope and counted here."""
    found = load("aes_gcm_test.json")
    if not found:
        _need(None)
    in_scope = [c for c in found if _gcm_sizes(c) == GCM_SIZES]
    assert len(in_scope) >= 60, "the AES-256/96-bit-IV part of the corpus went missing"
    assert any(c.test["result"] == "invalid" for c in in_scope)
    out = [c for c in found if _gcm_sizes(c) != GCM_SIZES]
    assert len(out) + len(in_scope) == len(found)
    by_key = Counter(c.group["keySize"] for c in out)
    odd_iv_256 = sum(1 for c in out if c.group["keySize"] == 256)
    pytest.skip(
        f"{len(out)} of {len(found)} AES-GCM cases use sizes SemaFore never uses "
        f"(key bits: {dict(sorted(by_key.items()))}, of which {odd_iv_256} AES-256 with a "
        f"non-96-bit IV); {len(in_scope)} AES-256/96-bit-IV cases ran"
    )


# --- HKDF-SHA256 ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("hkdf_sha256_test.json"))
def test_hkdf_sha256(case: Case | None) -> None:
    """RFC 5869 outputs, including empty salt and the 255×32-byte maximum; longer is refused."""
    c = _need(case)
    ikm, salt, info, size = c.hex("ikm"), c.hex("salt"), c.hex("info"), c.test["size"]
    if c.test["result"] == "valid":
        assert hkdf(ikm, salt, info, size) == c.hex("okm")
    else:
        assert size > 255 * 32
        with pytest.raises(ValueError):
            hkdf(ikm, salt, info, size)


# --- HMAC-SHA256 ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("hmac_sha256_test.json"))
def test_hmac_sha256(case: Case | None) -> None:
    """Known tags (full and truncated) match; every modified tag fails a constant-time compare."""
    c = _need(case)
    tag = c.hex("tag")
    computed = hmac_sha256(c.hex("key"), c.hex("msg"))[: c.group["tagSize"] // 8]
    assert hmac.compare_digest(computed, tag) is (c.test["result"] == "valid")
