"""Generation is not circular: the SPEC re-derivation and declared outcomes catch drift,
and replay catches any single changed expected value."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semafore.protocol import x3dh as protocol_x3dh
from semafore.protocol.entropy import SeededEntropy
from semafore.vectors import dr, x3dh
from semafore.vectors.generation import GenerationError
from semafore.vectors.verify import replay

ROOT = Path(__file__).resolve().parents[2]
X3DH_DOC: dict[str, Any] = json.loads((ROOT / "vectors" / "x3dh-prekey-v1.json").read_text())


def test_a_protocol_bug_aborts_generation_instead_of_being_pinned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(protocol_x3dh, "X3DH_INFO", b"SemaFore-X3DH-v2")
    with pytest.raises(GenerationError, match="reference and SPEC re-derivation disagree"):
        x3dh.generate()


def test_a_declared_dr_outcome_the_reference_contradicts_aborts_generation() -> None:
    path = dr.Path("probe", "", SeededEntropy(b"probe"))
    k = path.encrypt(dr.ALICE, b"x")
    path.deliver(dr.BOB, k)
    with pytest.raises(GenerationError, match="declared success, reference gave DuplicateMessage"):
        path.deliver(dr.BOB, k)


def _hex_leaves(node: Any, trail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _hex_leaves(value, (*trail, key))]
    if isinstance(node, list):
        return [leaf for i, value in enumerate(node) for leaf in _hex_leaves(value, (*trail, i))]
    if isinstance(node, str) and node and all(c in "0123456789abcdef" for c in node):
        return [trail]
    return []


CASE_LEAVES = [
    (index, trail)
    for index, case in enumerate(X3DH_DOC["cases"])
    for trail in _hex_leaves(case["expected"])
]


@settings(max_examples=60, deadline=None)
@given(
    leaf=st.sampled_from(CASE_LEAVES), position=st.integers(min_value=0), delta=st.integers(1, 15)
)
def test_any_changed_expected_hex_digit_is_caught_by_replay(
    leaf: tuple[int, tuple[Any, ...]], position: int, delta: int
) -> None:
    index, trail = leaf
    doc = {**X3DH_DOC, "cases": [copy.deepcopy(X3DH_DOC["cases"][index])], "negative": []}
    node: Any = doc["cases"][0]["expected"]
    for key in trail[:-1]:
        node = node[key]
    value: str = node[trail[-1]]
    at = position % len(value)
    digit = "0123456789abcdef"[("0123456789abcdef".index(value[at]) + delta) % 16]
    node[trail[-1]] = value[:at] + digit + value[at + 1 :]

    count, problems = replay(doc)
    assert count == 1
    assert len(problems) == 1, trail
