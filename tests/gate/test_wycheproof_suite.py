"""The optional Wycheproof suite: primitive cases through adapters (``--wycheproof DIR``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from semafore.gate.cases import VectorFormatError
from semafore.gate.config import GateConfig
from semafore.gate.runner import run_gate
from semafore.gate.verdict import Verdict
from semafore.gate.wycheproof import wycheproof_cases

from .conftest import ROOT, reference

RFC7748_K = "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"
RFC7748_U = "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"
RFC7748_OUT = "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
RFC5869_OKM = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
CORPUS = Path(os.environ.get("SEMAFORE_WYCHEPROOF_DIR") or ROOT.parent / "shared" / "wycheproof")


def write_corpus(directory: Path) -> None:
    """A miniature corpus: RFC 7748 / RFC 8032 / RFC 5869 answers plus must-reject cases."""

    def put(name: str, groups: list[dict[str, object]]) -> None:
        (directory / name).write_text(json.dumps({"testGroups": groups}))

    put(
        "x25519_test.json",
        [
            {
                "tests": [
                    {
                        "tcId": 1,
                        "result": "valid",
                        "private": RFC7748_K,
                        "public": RFC7748_U,
                        "shared": RFC7748_OUT,
                    },
                    {
                        "tcId": 2,
                        "result": "acceptable",
                        "private": RFC7748_K,
                        "public": "00" * 32,
                        "shared": "00" * 32,
                    },
                ]
            }
        ],
    )
    put(
        "ed25519_test.json",
        [
            {
                "publicKey": {
                    "pk": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
                },
                "tests": [
                    {
                        "tcId": 1,
                        "result": "valid",
                        "msg": "",
                        "sig": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
                    },
                    {
                        "tcId": 2,
                        "result": "invalid",
                        "msg": "00",
                        "sig": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
                    },
                ],
            }
        ],
    )
    gcm = {
        "key": "00" * 32,
        "iv": "00" * 12,
        "aad": "",
        "msg": "",
        "ct": "",
        "tag": "530f8afbc74536b9a963b4f1c4cb738b",
    }
    put(
        "aes_gcm_test.json",
        [
            {
                "keySize": 256,
                "ivSize": 96,
                "tagSize": 128,
                "tests": [
                    {"tcId": 1, "result": "valid", **gcm},
                    {"tcId": 2, "result": "invalid", **{**gcm, "tag": "00" * 16}},
                ],
            },
            {
                "keySize": 128,
                "ivSize": 96,
                "tagSize": 128,
                "tests": [
                    {"tcId": 3, "result": "valid", **{**gcm, "key": "00" * 16}},
                ],
            },
        ],
    )
    put(
        "hkdf_sha256_test.json",
        [
            {
                "tests": [
                    {
                        "tcId": 1,
                        "result": "valid",
                        "ikm": "0b" * 22,
                        "salt": "000102030405060708090a0b0c",
                        "info": "f0f1f2f3f4f5f6f7f8f9",
                        "size": 42,
                        "okm": RFC5869_OKM,
                    },
                    {
                        "tcId": 2,
                        "result": "invalid",
                        "ikm": "00",
                        "salt": "",
                        "info": "",
                        "size": 8161,
                        "okm": "",
                    },
                ]
            }
        ],
    )
    put(
        "hmac_sha256_test.json",
        [
            {
                "tagSize": 256,
                "tests": [
                    {
                        "tcId": 1,
                        "result": "valid",
                        "key": "6b6579",
                        "msg": "616263",
                        "tag": "9c196e32dc0175f86f4b1cb89289d6619de6bee699e4c378e68309ed97a1a6ab",
                    },
                ],
            }
        ],
    )


def test_cases_map_wycheproof_results_to_spec_errors(tmp_path: Path) -> None:
    write_corpus(tmp_path)
    cases = {case.full_id: case for case in wycheproof_cases(tmp_path)}

    assert cases["wycheproof-x25519:tc2"].exchanges[0].expect_error == "InvalidKey"
    assert cases["wycheproof-ed25519:tc2"].exchanges[0].expect_error == "InvalidSignature"
    assert [e.op for e in cases["wycheproof-aes-256-gcm:tc1"].exchanges] == [
        "aead.seal",
        "aead.open",
    ]
    assert cases["wycheproof-aes-256-gcm:tc2"].exchanges[0].expect_error == "DecryptionFailed"
    assert "wycheproof-aes-256-gcm:tc3" not in cases  # AES-128: SemaFore never uses it
    assert "wycheproof-hkdf-sha256:tc2" not in cases
    report = run_gate([reference()], list(cases.values()), GateConfig())
    assert report.passed, [r.detail for r in report.impls[0].results]


def test_a_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(VectorFormatError, match=r"x25519_test\.json"):
        wycheproof_cases(tmp_path)


def test_the_reference_adapter_passes_the_whole_corpus() -> None:
    if not (CORPUS / "x25519_test.json").is_file():
        message = f"Wycheproof corpus not found in {CORPUS} (set SEMAFORE_WYCHEPROOF_DIR)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    cases = wycheproof_cases(CORPUS)
    report = run_gate([reference()], cases, GateConfig())
    failures = [r for r in report.impls[0].results if r.verdict is not Verdict.PASS]
    assert failures == []
    assert len(cases) > 800
