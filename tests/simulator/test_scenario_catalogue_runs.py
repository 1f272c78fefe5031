"""The main job as a CI gate: every catalogue scenario runs on the embedded provider and gets
the verdict its file expects — ``pass`` for threats and desync, ``exposed-as-documented`` for
the out-of-scope demonstrations (issue 5: "every catalogue scenario passes in CI on
embedded"). A failure message carries the verdict's reason and the violated assertions'
evidence, as ``semafore sim run`` would print them.

Known failures are listed in ``KNOWN`` with the cause, as strict xfails: the day the cause is
fixed the xfail turns into a failure and the entry must go, so the list cannot go stale.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.report import Outcome, Verdict
from simulator.scenario import Expectation, discover, load

ROOT = Path(__file__).resolve().parents[2] / "scenarios"

KNOWN: dict[str, str] = {}  # stem -> cause; empty: every scenario reaches its verdict


def _params() -> list[object]:
    out: list[object] = []
    for path in discover([ROOT]):
        marks = []
        if path.stem in KNOWN:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[path.stem]))
        out.append(pytest.param(path, id=str(path.relative_to(ROOT)), marks=marks))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", _params())
def test_catalogue_scenario_gets_its_expected_verdict_on_embedded(path: Path) -> None:
    from simulator.executor import run_scenario

    scenario = load(path)
    if (why_not := scenario.runs_on("embedded")) is not None:
        pytest.skip(why_not)  # e.g. backend faults: run by the local test below
    result = run_scenario(scenario, provider="embedded")
    expected = Verdict.EXPOSED if scenario.expect is Expectation.EXPOSED else Verdict.PASS
    problems = [
        f"line {a.line} {a.kind}: {a.outcome.value} — {a.summary} {a.evidence[:3]}"
        for a in result.assertions
        if a.outcome not in (Outcome.HELD, Outcome.EXPOSED)
    ]
    problems += [
        f"oracle: {h.label} in {h.tier} at {h.location} ({h.encoding})"
        for h in result.oracle_hits[:5]
    ]
    assert result.verdict is expected, (
        f"{result.verdict.value}: {result.to_dict()['reason']}\n"
        + "\n".join(problems)
        + (f"\n{result.error}" if result.error else "")
    )


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.parametrize(
    "path",
    [p for p in discover([ROOT]) if p.parent.name == "threats" or load(p).runs_on("embedded")],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_threat_scenario_passes_on_local_backends(path: Path) -> None:
    """The threat scenarios also on ``local`` (issue 5), and the scenarios only ``local`` can
    run (backend faults): the relay on real redis-server, weed and FerretDB, the server view
    their raw dumps. Without those binaries the test skips
    locally and fails in CI (``CI=true``)."""
    import os

    from simulator.executor import run_scenario

    result = run_scenario(load(path), provider="local")
    if result.error and "provider" in result.error.lower() and os.environ.get("CI") != "true":
        pytest.skip(f"local backends unavailable: {result.error.splitlines()[0]}")
    assert result.verdict is Verdict.PASS, (
        f"{result.verdict.value}: {result.to_dict()['reason']}\n{result.error or ''}"
    )
    if any(view.kind == "server" for view in result.adversaries):
        assert {"mongodb", "redis", "wire", "log"} <= set(result.oracle_scanned)
