"""The public API of :mod:`semafore.sabotage` and the rules of its catalogue (issue #11)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import semafore
from semafore import sabotage
from semafore.sabotage import (
    CATALOGUE,
    Component,
    Sabotage,
    UnknownSabotage,
    active,
    by_name,
    current,
    switched_on,
)

NAMES = [s.name for s in CATALOGUE]
LIBRARY = Path(semafore.__file__).parent
PROJECT = LIBRARY.parent


def test_the_public_api_is_pinned() -> None:
    assert sabotage.__all__ == [
        "CATALOGUE",
        "Component",
        "Sabotage",
        "UnknownSabotage",
        "active",
        "by_name",
        "current",
        "switched_on",
    ]
    assert [c.value for c in Component] == ["relay", "client", "protocol"]
    assert [f for f in Sabotage.__dataclass_fields__] == [
        "name",
        "component",
        "description",
        "catches",
        "lower_tier",
    ]


def test_the_catalogue_is_big_enough_and_every_name_unique() -> None:
    assert len(CATALOGUE) >= 25
    assert len(set(NAMES)) == len(NAMES)
    assert {s.component for s in CATALOGUE} == set(Component)


@pytest.mark.parametrize("entry", CATALOGUE, ids=NAMES)
def test_every_name_is_dotted_by_its_component_and_documented(entry: Sabotage) -> None:
    assert re.fullmatch(r"(relay|client|protocol)\.[a-z0-9_]+", entry.name)
    assert entry.name.split(".")[0] == entry.component.value
    assert entry.description.endswith(".") and entry.catches
    assert by_name(entry.name) is entry
    if entry.catches.startswith("lower tier"):
        assert entry.lower_tier, "a defect no scenario sees needs a test that sees it"


@pytest.mark.parametrize("entry", [s for s in CATALOGUE if s.lower_tier], ids=lambda s: s.name)
def test_every_lower_tier_node_id_names_an_existing_test(entry: Sabotage) -> None:
    for node in entry.lower_tier:
        path, _, name = node.partition("::")
        source = PROJECT / path
        assert source.is_file(), node
        if name:
            defined = {
                n.name
                for n in ast.walk(ast.parse(source.read_text()))
                if isinstance(n, ast.FunctionDef)
            }
            assert name in defined, node


@pytest.mark.parametrize("entry", CATALOGUE, ids=NAMES)
def test_every_sabotage_is_switched_somewhere_in_the_library(entry: Sabotage) -> None:
    literal = f'"{entry.name}"'
    sites = [
        p for p in LIBRARY.rglob("*.py") if p.name != "sabotage.py" and literal in p.read_text()
    ]
    assert sites, f"{entry.name} is switched on nowhere"
    if entry.component is Component.RELAY:
        assert all("server" in p.parts for p in sites)


def test_switched_on_rejects_an_unknown_name_naming_the_field() -> None:
    with pytest.raises(UnknownSabotage) as caught:
        switched_on("relay.ledger_off", "relay.no_such_defect").__enter__()
    assert caught.value.field == "sabotage"
    assert caught.value.name == "relay.no_such_defect"
    assert "relay.no_such_defect" in str(caught.value) and "sabotage" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert current() == frozenset()  # nothing was switched on, not even the valid name
    with pytest.raises(UnknownSabotage):
        by_name("client.keep_used_message_keys ")


@given(st.lists(st.sampled_from(NAMES), max_size=4), st.lists(st.sampled_from(NAMES), max_size=4))
def test_switches_nest_and_restore_exactly(outer: list[str], inner: list[str]) -> None:
    assert current() == frozenset()
    with switched_on(*outer):
        assert current() == frozenset(outer)
        with switched_on(*inner):
            assert current() == frozenset(outer) | frozenset(inner)
            assert all(active(n) for n in outer + inner)
        assert current() == frozenset(outer)
    assert current() == frozenset()
    assert not any(active(n) for n in NAMES)


def test_a_switch_is_restored_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), switched_on("relay.ledger_off"):
        assert active("relay.ledger_off")
        raise RuntimeError("boom")
    assert not active("relay.ledger_off")


def test_the_library_never_reads_the_environment_to_switch_a_sabotage() -> None:
    tree = ast.parse((LIBRARY / "sabotage.py").read_text())
    imported = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    } | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"os", "sys", "environ", "getenv"}
    assert "os.environ" not in (LIBRARY / "sabotage.py").read_text()
