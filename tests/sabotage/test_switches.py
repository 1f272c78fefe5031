"""Every sabotage is a real defect: its probe sees the correct product with the switch off and
the defect with it on (issue #11). A sabotage that changed nothing would let the kill matrix
credit scenarios for catching a bug that was never there."""

from __future__ import annotations

import contextlib

import pytest

from semafore.sabotage import CATALOGUE, current, switched_on
from tests.sabotage.probes import PROBES


def test_every_sabotage_has_a_probe_and_every_probe_a_sabotage() -> None:
    assert sorted(PROBES) == sorted(s.name for s in CATALOGUE)


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
@pytest.mark.parametrize("name", [s.name for s in CATALOGUE])
def test_the_switch_turns_the_defect_on_and_only_then(name: str, on: bool) -> None:
    probe = PROBES[name]
    with switched_on(name) if on else contextlib.nullcontext():
        observed = probe.observe()
    assert observed == (probe.on if on else probe.off)
    assert current() == frozenset()  # the switch is off again
