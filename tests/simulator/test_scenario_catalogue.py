"""Every file of the scenario catalogue loads, validates against the JSON Schema, starts with
a comment citing the seed section / SPEC / ADR it exercises, and covers the issue's list."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from simulator.scenario import CompromiseKind, Expectation, discover, load, schema

ROOT = Path(__file__).resolve().parents[2] / "scenarios"
FILES = discover([ROOT])
VALIDATOR = jsonschema.Draft202012Validator(schema())


def test_catalogue_is_not_empty() -> None:
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_scenario_loads_and_validates(path: Path) -> None:
    scenario = load(path)
    VALIDATOR.validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#") and any(w in first for w in ("seed §", "SPEC §", "ADR-"))
    assert scenario.name == path.stem, "file name and scenario name agree"
    expected = Expectation.EXPOSED if path.parent.name == "out-of-scope" else Expectation.PASS
    assert scenario.expect is expected


def test_names_are_unique() -> None:
    names = [load(p).name for p in FILES]
    assert len(names) == len(set(names))


def test_every_in_scope_threat_of_seed_1_1_has_a_scenario() -> None:
    kinds = {c.compromise for p in discover([ROOT / "threats"]) for c in load(p).compromises()}
    assert kinds >= {
        CompromiseKind.SERVER,
        CompromiseKind.NETWORK,
        CompromiseKind.INSIDER,
        CompromiseKind.SUBPOENA,
        CompromiseKind.DEVICE,
    }
    asserted = {
        a.assertion.value for p in discover([ROOT / "threats"]) for a in load(p).assertions()
    }
    assert {"compromise_scope", "forward_secrecy", "post_compromise_security"} <= asserted


def test_desync_catalogue_covers_the_issue_list() -> None:
    stems = {p.stem for p in discover([ROOT / "desync"])}
    assert stems >= {
        "message-loss",
        "reorder",
        "duplication-replay",
        "max-skip-exceeded",
        "simultaneous-initiation",
        "reinstall-new-identity",
        "opk-exhaustion",
        "spk-rotation-in-flight",
        "server-restart-mid-delivery",
        "replayed-smx1",
    }


def test_out_of_scope_scenarios_demonstrate_exposures() -> None:
    for path in discover([ROOT / "out-of-scope"]):
        scenario = load(path)
        assert any(a.is_exposure and a.documented for a in scenario.assertions())
