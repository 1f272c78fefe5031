"""The pinned vector files: schemas, determinism, coverage of SPEC §6, and verification."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from semafore.cli.vectors import command as vectors_cli
from semafore.vectors.files import VECTOR_FILES, dump_vectors, schema, schema_text
from semafore.vectors.generate import generate_documents, write_vectors
from semafore.vectors.verify import verify_directory

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def fresh() -> dict[str, dict[str, Any]]:
    return generate_documents()


@pytest.mark.parametrize("name", VECTOR_FILES)
def test_committed_files_match_their_json_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(schema(name))
    jsonschema.Draft202012Validator(schema(name)).validate(load(name))


@pytest.mark.parametrize("name", VECTOR_FILES)
def test_the_schema_copies_under_vectors_agree_with_the_shipped_schemas(name: str) -> None:
    assert (VECTORS / "schema" / f"{name}.schema.json").read_text(encoding="utf-8") == (
        schema_text(name)
    )


@pytest.mark.parametrize("name", VECTOR_FILES)
def test_the_schema_rejects_a_broken_file(name: str) -> None:
    doc = load(name)
    del doc["cases"][0]["expected"]
    doc["negative"][0]["expected_error"] = "SomethingElse"
    errors = list(jsonschema.Draft202012Validator(schema(name)).iter_errors(doc))
    assert len(errors) >= 2


@pytest.mark.cites("SPEC §6 r2")
@pytest.mark.parametrize("name", VECTOR_FILES)
def test_generation_is_deterministic_and_equals_the_committed_bytes(
    name: str, fresh: dict[str, dict[str, Any]]
) -> None:
    assert dump_vectors(fresh[name]) == (VECTORS / f"{name}.json").read_text(encoding="utf-8")
    assert dump_vectors(generate_documents()[name]) == dump_vectors(fresh[name])


@pytest.mark.cites("SPEC §6 r1")
def test_vector_file_envelope_follows_spec_6() -> None:
    for name in VECTOR_FILES:
        doc = load(name)
        assert set(doc) >= {"file", "version", "spec", "cases", "negative"}
        assert doc["file"] == name
        for case in doc["cases"]:
            assert set(case) == {"id", "description", "input", "expected"}
        for neg in doc["negative"]:
            assert {"id", "input", "expected_error"} <= set(neg)
        ids = [c["id"] for c in doc["cases"] + doc["negative"]]
        assert len(ids) == len(set(ids))


@pytest.mark.cites("SPEC §6 r3")
def test_x3dh_cases_cover_opk_none_non_ascii_and_max_length_key_ids() -> None:
    cases = {c["id"]: c for c in load("x3dh-prekey-v1")["cases"]}
    assert len(cases["opk-ascii"]["expected"]["dh"]) == 4
    assert cases["no-opk"]["input"]["bob"]["opk"] is None
    assert len(cases["no-opk"]["expected"]["dh"]) == 3
    assert cases["no-opk"]["expected"]["parsed"]["flags"] == 0
    non_ascii = cases["non-ascii"]["input"]["bob"]
    assert not non_ascii["spk"]["key_id"].isascii()
    assert not non_ascii["user_id"].isascii()
    longest = cases["max-length-key-ids"]["input"]["bob"]
    assert len(longest["spk"]["key_id"].encode()) == 255
    assert len(longest["opk"]["key_id"].encode()) == 255
    assert longest["opk"]["key_id"].encode() != longest["opk"]["key_id"]  # multibyte UTF-8


@pytest.mark.cites("SPEC §6 r3")
def test_x3dh_negatives_cover_every_smx1_field_and_every_bundle_check() -> None:
    negatives = {n["id"]: n for n in load("x3dh-prekey-v1")["negative"]}
    envelope_len = len(bytes.fromhex(load("x3dh-prekey-v1")["cases"][0]["expected"]["smx1"]))
    truncations = [i for i in negatives if i.startswith("truncated-at-")]
    # every offset from 0 up to nonce + a full 16-byte tag
    l1 = len(b"spk-1")
    l2 = len(b"opk-17")
    assert len(truncations) == 41 + l1 + l2 + 12 + 16
    assert len(truncations) < envelope_len
    required = {
        "magic-bad": "MalformedEnvelope",
        "version-smx2": "UnsupportedVersion",
        "flags-02": "MalformedEnvelope",
        "l1-zero": "MalformedEnvelope",
        "l1-overrun": "MalformedEnvelope",
        "l2-overrun": "MalformedEnvelope",
        "opk-flag-without-l2": "MalformedEnvelope",
        "l2-without-opk-flag": "MalformedEnvelope",
        "tag-flipped": "DecryptionFailed",
        "ciphertext-flipped": "DecryptionFailed",
        "sender-address-relabelled": "DecryptionFailed",
        "sig-flipped": "InvalidSignature",
        "sig-key-id-relabelled": "InvalidSignature",
        "small-order-ek-zero": "InvalidKey",
        "small-order-spk-zero": "InvalidKey",
        "small-order-opk-order-8-a": "InvalidKey",
        "unknown-opk": "UnknownPrekey",
        "unknown-spk": "UnknownPrekey",
    }
    assert {key: negatives[key]["expected_error"] for key in required} == required


@pytest.mark.cites("SPEC §1", "SPEC §5")
def test_key_ids_are_validated_by_every_operation_that_takes_or_emits_one() -> None:
    """SPEC v1.1 §1: signing, initiating and parsing each refuse C1 controls (U+0085,
    U+009F), DEL, and lengths outside 1..255; §5: the other family's magic is malformed."""
    negatives = load("x3dh-prekey-v1")["negative"]
    by_op: dict[str, list[dict[str, Any]]] = {}
    for neg in negatives:
        by_op.setdefault(neg["input"]["operation"], []).append(neg)
    signed = {n["input"]["key_id"] for n in by_op["spk.sign"]}
    assert {"", "k" * 256} <= signed
    assert {"\u0085", "\u009f"} <= {ch for key_id in signed for ch in key_id}
    initiated = [
        (n["input"]["bundle"]["spk"]["key_id"], (n["input"]["bundle"]["opk"] or {}).get("key_id"))
        for n in by_op["x3dh.initiate"]
        if n["id"].startswith("initiate-")
    ]
    assert any("\u0085" in spk for spk, _ in initiated)
    assert any(opk and "\u009f" in opk for _, opk in initiated)
    parsed = {bytes.fromhex(n["input"]["smx1"])[:4] for n in by_op["smx1.parse"]}
    assert b"DRV2" in parsed
    c1 = [
        n["id"]
        for n in by_op["smx1.parse"]
        if b"\xc2\x85" in bytes.fromhex(n["input"]["smx1"])[:300]
        or b"\xc2\x9f" in bytes.fromhex(n["input"]["smx1"])[:300]
    ]
    assert len(c1) >= 2
    assert {
        n["expected_error"] for n in negatives if n["id"].startswith(("sign-", "initiate-"))
    } == {"MalformedEnvelope"}
    frames = {
        bytes.fromhex(n["input"]["frame"])[:4]: n["expected_error"]
        for n in load("dr-v1-interop")["negative"]
    }
    assert frames[b"SMX2"] == "MalformedEnvelope"
    assert frames[b"DRV2"] == "UnsupportedVersion"


@pytest.mark.cites("SPEC §6 r4")
def test_dr_paths_cover_spec_6_and_every_dr_failure_mode() -> None:
    doc = load("dr-v1-interop")
    ids = {c["id"] for c in doc["cases"]}
    assert ids >= {
        "in-order",
        "ping-pong",
        "long-one-way-chain",
        "out-of-order-within-chain",
        "out-of-order-across-chains",
        "loss",
        "duplicates",
        "max-skip",
        "previous-chain-beyond-max-skip",
        "skipped-key-cap",
        "tampering",
        "duplicates-retired-chains",
        "forgotten-chain-beyond-max-skip",
    }
    errors = {
        outcome["error"]
        for case in doc["cases"]
        for outcome in case["expected"]["steps"]
        if "error" in outcome
    }
    assert errors == {
        "DecryptionFailed",
        "DuplicateMessage",
        "TooManySkipped",
        "MalformedEnvelope",
        "UnsupportedVersion",
        "InvalidKey",
        "NoSession",
    }
    for case in doc["cases"]:
        setup, steps = case["input"]["setup"], case["input"]["steps"]
        nonces = {side: len(setup[side]["nonces"]) for side in ("alice", "bob")}
        encrypts = {
            side: sum(
                1
                for step, outcome in zip(steps, case["expected"]["steps"], strict=True)
                if step["op"] == "encrypt" and step["side"] == side and "frame" in outcome
            )
            for side in ("alice", "bob")
        }
        assert nonces == encrypts, case["id"]  # one scripted nonce per frame, none spare


def test_verify_accepts_the_committed_vectors() -> None:
    report = verify_directory(VECTORS, live=False)  # the live run has its own test
    assert report.ok, report.findings
    assert report.cases_replayed == sum(
        len(load(n)["cases"]) + len(load(n)["negative"]) for n in VECTOR_FILES
    )


def copy_vectors(tmp_path: Path) -> Path:
    target = tmp_path / "vectors"
    ignore = shutil.ignore_patterns("session-state-*", "dr-v1-live-result.json")
    shutil.copytree(VECTORS, target, ignore=ignore)
    return target


@pytest.mark.cites("SPEC §6 r2")
def test_verify_fails_on_a_single_changed_expected_byte(tmp_path: Path) -> None:
    target = copy_vectors(tmp_path)
    doc = load("x3dh-prekey-v1")
    sk = doc["cases"][1]["expected"]["sk"]
    doc["cases"][1]["expected"]["sk"] = ("0" if sk[0] != "0" else "1") + sk[1:]
    (target / "x3dh-prekey-v1.json").write_text(dump_vectors(doc), encoding="utf-8")

    report = verify_directory(target)
    assert not report.ok
    checks = {(f.check, f.detail.split(":")[0]) for f in report.findings}
    assert ("replay", "no-opk") in checks
    assert any(f.check == "regenerate" and "no-opk" in f.detail for f in report.findings)


def test_verify_without_regeneration_accepts_a_consistent_subset(tmp_path: Path) -> None:
    target = copy_vectors(tmp_path)
    doc = load("dr-v1-interop")
    doc["cases"] = doc["cases"][:2]
    (target / "dr-v1-interop.json").write_text(dump_vectors(doc), encoding="utf-8")

    assert verify_directory(target, regenerate=False).ok
    strict = verify_directory(target)
    assert [f.check for f in strict.findings] == ["regenerate"]


def test_verify_reports_schema_violations_and_missing_files(tmp_path: Path) -> None:
    target = copy_vectors(tmp_path)
    (target / "dr-v1-interop.json").unlink()
    doc = load("x3dh-prekey-v1")
    doc["negative"][0]["expected_error"] = "Nope"
    (target / "x3dh-prekey-v1.json").write_text(json.dumps(doc), encoding="utf-8")

    checks = [f.check for f in verify_directory(target).findings]
    assert "schema" in checks
    assert "missing" in checks


def test_the_live_result_hook_replays_the_recorded_run(tmp_path: Path) -> None:
    target = copy_vectors(tmp_path)
    (target / "dr-v1-live-result.json").write_text("{}", encoding="utf-8")

    quick = verify_directory(target, regenerate=False)
    assert quick.ok
    assert [(f.check, f.fatal) for f in quick.findings] == [("hook", False)]
    full = verify_directory(target)
    assert not full.ok
    assert [(f.file, f.check) for f in full.findings] == [("dr-v1-live-result", "live")]


def test_cli_generate_then_verify(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    generated = runner.invoke(vectors_cli, ["generate", "--out", str(out)])
    assert generated.exit_code == 0, generated.output
    assert sorted(p.name for p in out.iterdir()) == [
        "dr-v1-interop.json",
        "schema",
        "x3dh-prekey-v1.json",
    ]
    report = tmp_path / "verify.json"
    verified = runner.invoke(vectors_cli, ["verify", "--dir", str(out), "--json", str(report)])
    assert verified.exit_code == 0, verified.output
    assert json.loads(report.read_text())["ok"] is True

    broken = json.loads((out / "dr-v1-interop.json").read_text())
    broken["cases"][0]["expected"]["steps"][0]["frame"] = "00"
    (out / "dr-v1-interop.json").write_text(json.dumps(broken))
    failed = runner.invoke(vectors_cli, ["verify", "--dir", str(out)])
    assert failed.exit_code == 1


def test_write_vectors_writes_schema_copies(tmp_path: Path) -> None:
    written = write_vectors(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {
        "x3dh-prekey-v1.json",
        "dr-v1-interop.json",
        "schema/x3dh-prekey-v1.schema.json",
        "schema/dr-v1-interop.schema.json",
    }


def test_quiescent_paths_end_with_both_sides_agreeing_on_the_session_digest() -> None:
    """SPEC §7: once every sent frame is delivered both sides hold the same root key, so two
    implementations can prove they agree without revealing keys."""
    agreeing = 0
    for case in load("dr-v1-interop")["cases"]:
        tail = list(zip(case["input"]["steps"], case["expected"]["steps"], strict=True))[-2:]
        if [step.get("side") for step, _ in tail] == ["alice", "bob"] and all(
            step["op"] == "digest" for step, _ in tail
        ):
            assert tail[0][1] == tail[1][1], case["id"]
            agreeing += 1
    assert agreeing >= 7


def test_verify_checks_listed_key_pairs_the_gate_does_not_send(tmp_path: Path) -> None:
    target = copy_vectors(tmp_path)
    doc = load("dr-v1-interop")
    doc["cases"][0]["input"]["setup"]["alice"]["ratchet_keys"][0]["public"] = "11" * 32
    (target / "dr-v1-interop.json").write_text(dump_vectors(doc), encoding="utf-8")

    findings = verify_directory(target, regenerate=False).findings
    assert [(f.check, f.detail) for f in findings] == [
        ("keys", "in-order: alice.ratchet_keys[0]: public key does not match private key")
    ]


@pytest.mark.cites("SPEC §6")
def test_the_live_transcript_hash_is_computed_as_the_contract_documents() -> None:
    """docs/adapter-contract.md §6: SHA-256 over the concatenated raw SHA-256 of every stored
    envelope body, in ``seq`` order; each ``envelope_hash`` is the hex SHA-256 of its body."""
    doc = json.loads((VECTORS / "dr-v1-live-result.json").read_text(encoding="utf-8"))
    expected = doc["cases"][0]["expected"]
    envelopes = expected["envelopes"]
    assert [e["seq"] for e in envelopes] == list(range(len(envelopes)))
    digests = [hashlib.sha256(bytes.fromhex(e["body"])).digest() for e in envelopes]
    assert [d.hex() for d in digests] == [e["envelope_hash"] for e in envelopes]
    assert hashlib.sha256(b"".join(digests)).hexdigest() == expected["transcript_sha256"]
    reordered = [digests[1], digests[0], *digests[2:]]
    assert hashlib.sha256(b"".join(reordered)).hexdigest() != expected["transcript_sha256"]
    receipts = [d for d in expected["decrypted"] if d["kind"] == "receipt"]
    assert receipts and all(d["body"] == "" and d["receipt_for"] for d in receipts)
