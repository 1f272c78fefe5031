"""vectors/dr-v1-live-result.json: a seeded live run reproduces every pinned byte (SPEC §6).

The replay is the library's (semafore.vectors.live), which never imports the simulator (the
import-linter contracts, docs/architecture.md), so ``semafore vectors verify`` checks it too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semafore.protocol.frame import is_drv1, is_smx1
from semafore.vectors import live


@pytest.mark.cites("SPEC §6 r5")
def test_pinned_live_transcript_is_reproduced_byte_for_byte() -> None:
    live.verify(live.DEFAULT_PATH)


@pytest.mark.cites("SPEC §6 r5")
def test_the_transcript_covers_a_multi_device_run() -> None:
    doc = json.loads(live.DEFAULT_PATH.read_bytes())
    assert doc["file"] == live.FILE and doc["spec"] == "SPEC.md §6"
    case = doc["cases"][0]
    envelopes = case["expected"]["envelopes"]
    bodies = [bytes.fromhex(e["body"]) for e in envelopes]
    assert any(is_smx1(b) for b in bodies) and any(is_drv1(b) for b in bodies)
    assert len({e["to"] for e in envelopes}) == 5  # every device received something
    assert {n["expected_error"] for n in doc["negative"]} == {"DuplicateMessage",
                                                             "DecryptionFailed"}
    digests = case["expected"]["session_digests"]
    assert digests and all(d["a_digest"] == d["b_digest"] for d in digests)
    assert len(case["input"]["installs"]) == 6  # five devices plus carol's reinstall


def test_a_changed_byte_is_reported_with_the_envelope_it_belongs_to(tmp_path: Path) -> None:
    doc = json.loads(live.DEFAULT_PATH.read_bytes())
    first = doc["cases"][0]["expected"]["envelopes"][3]
    body = bytearray.fromhex(first["body"])
    body[-1] ^= 1
    first["body"] = body.hex()
    broken = tmp_path / live.FILE
    broken.write_bytes(live.render(doc))
    with pytest.raises(live.LiveVectorError, match="envelope #3"):
        live.verify(broken)


def test_a_file_that_is_not_a_live_vector_is_a_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"cases": []}')
    with pytest.raises(live.LiveVectorError):
        live.verify(bad)
