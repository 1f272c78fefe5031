"""Issue 15 item 6: the gate cases that close the gaps an independent implementation slipped
through, each proven against a deliberately broken build of the reference adapter.

For every broken build the whole gate runs in-process: exactly the cases it names fail and
every other case still passes. So each defect really did pass everything else (the gap was
real) and each new case fails for that defect (the case is not decorative).
"""

from __future__ import annotations

import contextlib

import pytest

from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle
from semafore.gate.cases import GateCase, initiate_args
from semafore.protocol import ratchet
from semafore.vectors.files import load_vector_file

from .broken_builds import BUILDS, NEW_CASES, BrokenBuild, failing_cases
from .conftest import ROOT


def test_the_reference_passes_every_new_case(gate_cases: list[GateCase]) -> None:
    new = [case for case in gate_cases if case.full_id in NEW_CASES]
    assert {case.full_id for case in new} == NEW_CASES  # every named case is in the vectors
    assert failing_cases(BrokenBuild("reference", "", frozenset(), _no_defect), new) == {}


@pytest.mark.cites("SPEC §1", "SPEC §3", "SPEC §5")
@pytest.mark.parametrize("build", BUILDS, ids=[build.name for build in BUILDS])
def test_a_broken_build_fails_exactly_its_new_cases(
    build: BrokenBuild, gate_cases: list[GateCase]
) -> None:
    failures = failing_cases(build, gate_cases)
    assert set(failures) == build.catches, failures


def test_the_retired_chain_memory_is_put_back_after_a_broken_build() -> None:
    build = next(b for b in BUILDS if b.name == "retired-chains-2")
    with build.patch(ReferenceAdapter()):
        assert ratchet.MAX_PREVIOUS_CHAINS == 2
    assert ratchet.MAX_PREVIOUS_CHAINS == 5


def test_an_unchecked_initiator_emits_an_smx1_its_own_parser_rejects() -> None:
    """The bug of issue 15 item 6 in one exchange: the initiator's SMX1 is unparseable."""
    doc = load_vector_file(ROOT / "vectors" / "x3dh-prekey-v1.json")
    negative = next(n for n in doc["negative"] if n["id"] == "initiate-spk-key-id-256-bytes")
    adapter = ReferenceAdapter()
    build = next(b for b in BUILDS if b.name == "initiate-unchecked")
    with build.patch(adapter):
        request = {
            "id": 1,
            "op": "x3dh.initiate",
            "args": initiate_args(negative["input"], negative["input"]["bundle"]),
        }
        sealed = handle(adapter, request)
        assert sealed["ok"] is True, sealed
        parsed = handle(
            adapter, {"id": 2, "op": "smx1.parse", "args": {"data": sealed["result"]["smx1"]}}
        )
    assert parsed["ok"] is False
    assert parsed["error"] == "MalformedEnvelope"
    assert "spk_key_id_length" in parsed["detail"]


def _no_defect(_: ReferenceAdapter) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()
