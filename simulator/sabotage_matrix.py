"""The sabotage kill matrix (issue #11, docs/sabotage.md): scenario-level mutation testing.

A scenario that passes against a correct relay and client proves something only if it would
fail against a wrong one. :mod:`semafore.sabotage` names deliberate defects (a relay that
forgets an ack, a client that skips a check, …); this module runs the scenario catalogue once
with none of them (the **baseline**) and once per sabotage, each in its own process (a switch
is process-global), and judges every (sabotage, scenario) cell:

- **killed**: the baseline verdict was ok (pass, exposed-as-documented) and the sabotaged one
  is not (fail, error) — the scenario caught the defect;
- **survived**: both ok — the defect went unnoticed;
- **not run here**: the scenario does not run on this provider (skipped) — no judgement;
- **baseline red**: the baseline itself was not ok — nothing can be judged against it;
- **crashed**: the worker process of that sabotage died — no verdict, so no kill;
- **not evaluated (targeted)**: the targeted search (:mod:`simulator.sabotage_search`) had
  its answer without running this cell — never a kill, never a survival.

A sabotage may also name **lower-tier** tests (pytest node ids) that should fail while it is
on; those run in a pytest subprocess with ``SEMAFORE_SABOTAGE`` set (tests/conftest.py turns
the switch on for that session) and kill the sabotage when pytest exits 1.

The gate (:attr:`Matrix.exit_code`) is red when the baseline is red, when a sabotage survives
every scenario and test, or when a scenario under ``threats/`` or ``desync/`` that ran catches
nothing — "a scenario that catches nothing is decoration" (issue #11). The rules are pure
functions of the runs (unit-testable without running anything); :func:`run_matrix` is the
process orchestration of the full matrix; the renderings (terminal, JSON, HTML, JUnit) all
read one :class:`Matrix`. The rules hold for a matrix with holes too: a sabotage with no kill
and a cell not evaluated is *not judged* (never a survivor), a must-catch scenario with no
kill and a cell not evaluated is *undecided* (never decorative) — both red — so a search that
stops early can only cost a red gate, never a wrong green one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from html import escape
from pathlib import Path, PurePath
from typing import Any

from rich.console import Console
from rich.markup import escape as markup
from rich.table import Table

from semafore.sabotage import CATALOGUE, Sabotage, switched_on
from simulator.executor import run_scenario
from simulator.report.html import STYLESHEET as REPORT_CSS  # the house stylesheet, one copy
from simulator.report.model import Verdict, reason
from simulator.scenario import ScenarioError, loads

SABOTAGE_ENV = "SEMAFORE_SABOTAGE"
"""Environment variable naming the sabotages (comma-separated) a lower-tier pytest session
runs with; read by the session fixture in tests/conftest.py, nowhere in the library."""

MUST_CATCH = ("threats", "desync")
"""Catalogue folders whose scenarios exist to catch defects: one that kills no sabotage is
decorative. ``out-of-scope/`` scenarios demonstrate documented exposures (seed §1.2, §2.5);
catching a sabotage is welcome there but not their job."""

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""Where lower-tier node ids (``tests/...``) are relative to."""

LOWER_TIER_TIMEOUT_S = 900.0
"""A lower-tier pytest run that takes longer is an error, not a hang of the whole matrix."""


# --------------------------------------------------------------------------- what runs return


@dataclass(frozen=True)
class Observation:
    """One scenario's verdict in one catalogue run, and the one line saying why."""

    path: str
    scenario: str
    verdict: Verdict
    reason: str
    wall_s: float = 0.0  # how long the run took (the targeted search tries cheap ones first)


@dataclass(frozen=True)
class CatalogueRun:
    """Every scenario of the catalogue run once, with ``sabotage`` on (``None``: baseline).

    ``crashed`` says why the worker process produced no verdicts at all; its observations
    are then placeholders (verdict ``error``) that never count as kills.
    """

    sabotage: str | None
    observations: tuple[Observation, ...]
    wall_s: float
    crashed: str | None = None

    @classmethod
    def crash(cls, sabotage: str | None, files: Sequence[str], detail: str,
              wall_s: float) -> CatalogueRun:
        return cls(sabotage, tuple(Observation(f, f, Verdict.ERROR, f"worker crashed: {detail}")
                                   for f in files), wall_s, crashed=detail)

    def observed(self, path: str) -> bool:
        """Whether this run has a verdict of its own for ``path`` (not crashed, and run)."""
        return self.crashed is None and any(o.path == path for o in self.observations)

    def verdict_of(self, path: str) -> Verdict | None:
        """The verdict for ``path``; ``None`` when this run produced none (crashed, absent)."""
        if self.crashed is not None:
            return None
        return next((o.verdict for o in self.observations if o.path == path), None)

    def reason_of(self, path: str) -> str:
        return next((o.reason for o in self.observations if o.path == path), "not run")


class TierOutcome(Enum):
    KILLED = "killed"  # pytest exit 1: a test failed while the sabotage was on
    SURVIVED = "survived"  # pytest exit 0: every named test passed
    ERROR = "error"  # any other exit (usage error, no test collected, timeout): no judgement


_SUMMARY_LINE = re.compile(r"^(?:FAILED|ERROR) (?P<node>.+?)(?: - .*)?$")


def failed_node_ids(pytest_output: str) -> tuple[str, ...]:
    """The node ids pytest's short summary reports as FAILED or ERROR (``-ra``, the default
    ``addopts`` of this project), in order."""
    found = (m.group("node") for line in pytest_output.splitlines()
             if (m := _SUMMARY_LINE.match(line.strip())))
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class LowerTierRun:
    """The lower-tier tests of one sabotage (``None``: the union of all, with no sabotage)."""

    sabotage: str | None
    node_ids: tuple[str, ...]
    exit_code: int | None  # None: the subprocess did not finish (timeout, could not start)
    failed: tuple[str, ...]  # node ids pytest reported failing
    detail: str  # the tail of pytest's output, or why it did not finish
    wall_s: float

    @property
    def outcome(self) -> TierOutcome:
        if self.exit_code == 0:
            return TierOutcome.SURVIVED
        if self.exit_code == 1:
            return TierOutcome.KILLED
        return TierOutcome.ERROR

    @property
    def killers(self) -> tuple[str, ...]:
        """The tests credited with the kill: those pytest reported failing, or (``-x`` stops
        at the first failure, so at least one did) every named id when none was parsed."""
        if self.outcome is not TierOutcome.KILLED:
            return ()
        return self.failed or self.node_ids


def red_without_sabotage(baseline: LowerTierRun | None, node_id: str) -> bool:
    """Whether ``node_id`` (or a test under it) fails with no sabotage on — or the lower-tier
    ``baseline`` did not run to a verdict: its failure under a sabotage then says nothing
    about the sabotage."""
    if baseline is None or baseline.outcome is TierOutcome.ERROR:
        return True
    return any(f == node_id or f.startswith((node_id + "::", node_id + "["))
               for f in baseline.failed)


def credited_killers(run: LowerTierRun | None, baseline: LowerTierRun | None) -> list[str]:
    """The lower-tier tests credited with killing the sabotage of ``run``: those that failed
    with it on and pass with no sabotage on."""
    if run is None:
        return []
    return [k for k in run.killers if not red_without_sabotage(baseline, k)]


# ------------------------------------------------------------------------------- the rules


class Cell(Enum):
    KILLED = "killed"
    SURVIVED = "survived"
    NOT_RUN = "not run here"
    BASELINE_RED = "baseline red"
    CRASHED = "crashed"
    NOT_EVALUATED = "not evaluated (targeted)"

    @property
    def css(self) -> str:
        """The HTML class suffix: the value up to any parenthesis, dashed."""
        return self.value.split(" (")[0].replace(" ", "-")


def judge_cell(baseline: Verdict, sabotaged: Verdict | None) -> Cell:
    """One cell of the matrix; ``sabotaged`` is ``None`` when the sabotaged run produced no
    verdict for the scenario (its worker crashed)."""
    if baseline is Verdict.SKIPPED:
        return Cell.NOT_RUN
    if not baseline.ok:
        return Cell.BASELINE_RED
    if sabotaged is None:
        return Cell.CRASHED
    return Cell.SURVIVED if sabotaged.ok else Cell.KILLED


def must_catch(path: str) -> bool:
    """Whether the scenario at ``path`` lives in a folder of :data:`MUST_CATCH`."""
    return any(part in MUST_CATCH for part in PurePath(path).parts[:-1])


@dataclass(frozen=True)
class Matrix:
    """Every run of one sabotage session and what they add up to."""

    provider: str
    sabotages: tuple[Sabotage, ...]
    baseline: CatalogueRun
    runs: Mapping[str, CatalogueRun]  # sabotage name -> its catalogue run
    lower: Mapping[str, LowerTierRun]  # sabotage name -> its lower-tier run (if it has ids)
    lower_baseline: LowerTierRun | None  # the lower-tier ids with no sabotage; None: not run
    complete: bool  # every sabotage of the catalogue was selected (no --only subset)
    wall_s: float = 0.0
    targeted: bool = False  # the targeted search ran it: cells may be not evaluated

    @property
    def rows(self) -> tuple[Observation, ...]:
        """The scenarios, in catalogue order, as the baseline saw them."""
        return self.baseline.observations

    def cell(self, sabotage: str, path: str) -> Cell:
        base = self.baseline.verdict_of(path)
        run = self.runs.get(sabotage)
        cell = judge_cell(Verdict.ERROR if base is None else base,
                          None if run is None else run.verdict_of(path))
        if cell is Cell.CRASHED and run is not None and run.crashed is None:
            return Cell.NOT_EVALUATED  # the worker lived and never ran this scenario
        return cell

    @cached_property
    def _cells(self) -> dict[tuple[str, str], Cell]:
        return {(s.name, o.path): self.cell(s.name, o.path)
                for s in self.sabotages for o in self.rows}

    def kills(self, path: str) -> list[str]:
        """The sabotages the scenario at ``path`` caught."""
        return [s.name for s in self.sabotages if self._cells[s.name, path] is Cell.KILLED]

    def red_without_sabotage(self, node_id: str) -> bool:
        """:func:`red_without_sabotage` against this matrix's lower-tier baseline."""
        return red_without_sabotage(self.lower_baseline, node_id)

    def killed_by(self, sabotage: str) -> list[str]:
        """Scenario names, then lower-tier node ids, that went red while ``sabotage`` was on
        (a lower-tier test only if it passes with no sabotage on)."""
        found = [o.scenario for o in self.rows if self._cells[sabotage, o.path] is Cell.KILLED]
        found.extend(credited_killers(self.lower.get(sabotage), self.lower_baseline))
        return found

    def not_evaluated(self, sabotage: str) -> list[Observation]:
        """The scenarios the targeted search never ran with ``sabotage`` on (and could have
        judged: baseline ok, run here)."""
        return [o for o in self.rows if self._cells[sabotage, o.path] is Cell.NOT_EVALUATED]

    def unevaluated_on(self, path: str) -> list[str]:
        """The sabotages never run against the scenario at ``path``."""
        return [s.name for s in self.sabotages
                if self._cells[s.name, path] is Cell.NOT_EVALUATED]

    @property
    def mode(self) -> str:
        return "targeted" if self.targeted else "full"

    @property
    def judgeable(self) -> list[Observation]:
        """The scenarios a sabotaged run can be judged on: baseline ok and run here."""
        return [o for o in self.rows if o.verdict.ok and o.verdict is not Verdict.SKIPPED]

    @property
    def scenario_runs(self) -> int:
        """Sabotaged scenario runs this matrix holds a verdict from (the baseline's not
        counted)."""
        return sum(len(run.observations) for run in self.runs.values() if run.crashed is None)

    def unjudged(self, sabotage: str) -> str | None:
        """Why ``sabotage`` could not be fully judged (its worker crashed, its lower tier did
        not run cleanly, nothing killed it and not every scenario was run), or ``None``."""
        run = self.runs.get(sabotage)
        if run is None:
            return "never ran"
        if run.crashed is not None:
            return f"worker crashed: {run.crashed}"
        lower = self.lower.get(sabotage)
        if lower is not None and lower.outcome is TierOutcome.ERROR:
            return f"lower tier did not run: {_exit_text(lower)}"
        if not self.killed_by(sabotage) and (missing := self.not_evaluated(sabotage)):
            return (f"no kill found and {len(missing)} scenario(s) not evaluated: a survivor "
                    "is only ever reported after every scenario ran")
        return None

    @property
    def survivors(self) -> list[str]:
        """Sabotages no scenario and no lower-tier test caught (and fully judged)."""
        return [s.name for s in self.sabotages
                if not self.killed_by(s.name) and self.unjudged(s.name) is None]

    @property
    def baseline_red(self) -> list[Observation]:
        return [o for o in self.rows if not o.verdict.ok]

    @property
    def not_run(self) -> list[Observation]:
        return [o for o in self.rows if o.verdict is Verdict.SKIPPED]

    def _caught_nothing_seen(self) -> list[Observation]:
        if not self.complete:
            return []
        return [o for o in self.rows
                if must_catch(o.path) and o.verdict.ok and o.verdict is not Verdict.SKIPPED
                and not self.kills(o.path)]

    @property
    def decorative(self) -> list[Observation]:
        """Scenarios under ``threats/`` or ``desync/`` that ran green and caught nothing,
        every sabotage having been run against them.

        Judged only over the whole catalogue: with ``--only`` a scenario may well catch a
        sabotage that was not selected.
        """
        return [o for o in self._caught_nothing_seen() if not self.unevaluated_on(o.path)]

    @property
    def undecided(self) -> list[Observation]:
        """Must-catch scenarios with no kill seen and some sabotage never run against them:
        neither decorative nor shown to catch anything (a search that stopped too early)."""
        return [o for o in self._caught_nothing_seen() if self.unevaluated_on(o.path)]

    @property
    def problems(self) -> list[str]:
        """Every reason the gate is red, one line each; empty when it is green."""
        out: list[str] = []
        if red := self.baseline_red:
            out.append("baseline red: fix the catalogue first ("
                       + "; ".join(f"{o.scenario}: {o.verdict.value}" for o in red) + ")")
        base = self.lower_baseline
        if base is not None and base.outcome is not TierOutcome.SURVIVED:
            out.append("lower-tier baseline red (tests that fail with no sabotage on kill "
                       f"nothing): {_exit_text(base)}")
        for s in self.sabotages:
            if (why := self.unjudged(s.name)) is not None:
                out.append(f"{s.name}: {why}")
        if survivors := self.survivors:
            out.append(f"{len(survivors)} sabotage(s) survived every scenario and test: "
                       + ", ".join(survivors))
        if decorative := self.decorative:
            out.append(f"{len(decorative)} scenario(s) under threats/ or desync/ caught no "
                       "sabotage (decoration): " + ", ".join(o.scenario for o in decorative))
        if undecided := self.undecided:
            out.append(f"{len(undecided)} scenario(s) under threats/ or desync/ not shown to "
                       "catch anything and not run against every sabotage: "
                       + ", ".join(o.scenario for o in undecided))
        return out

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


def _exit_text(run: LowerTierRun) -> str:
    """pytest's exit code and what it said: the failing ids, or for an error its first
    ``ERROR`` line (a missing file or node id, a conftest that does not import)."""
    lines = [line.strip() for line in run.detail.splitlines() if line.strip()]
    if run.exit_code is None:
        return lines[-1] if lines else "did not finish"
    if run.failed:
        return f"pytest exit {run.exit_code}; failed: {', '.join(run.failed)}"
    if run.exit_code in (0, 1) or not lines:
        return f"pytest exit {run.exit_code}"
    said = next((line for line in lines if "ERROR" in line or "Error" in line), lines[-1])
    return f"pytest exit {run.exit_code}: {said[:200]}"


# ------------------------------------------------------------------------------ the workers


@dataclass(frozen=True)
class ScenarioSource:
    """A scenario file's text, read once before any run starts.

    Every run (baseline and sabotaged) parses this same text, so a file edited on disk while
    the matrix runs cannot turn into a difference the sabotage is credited with.
    """

    path: str
    text: str | None  # None: unreadable (``problem`` says why)
    problem: str = ""

    @classmethod
    def read(cls, path: str | Path) -> ScenarioSource:
        try:
            return cls(str(path), Path(path).read_bytes().decode("utf-8"))
        except OSError as exc:
            return cls(str(path), None, f"cannot read: {exc.strerror}")
        except UnicodeDecodeError as exc:
            return cls(str(path), None, f"not UTF-8 at byte {exc.start}")


def observe(source: ScenarioSource, provider: str) -> Observation:
    """Run one scenario (in this process, with whatever sabotage is on) to an observation;
    an unreadable or invalid file, or an executor crash, is that scenario's ``error``."""
    started = time.perf_counter()
    observation = _observe(source, provider)
    return dataclasses.replace(observation, wall_s=time.perf_counter() - started)


def _observe(source: ScenarioSource, provider: str) -> Observation:
    path = source.path
    if source.text is None:
        return Observation(path, path, Verdict.ERROR, f"invalid scenario: {source.problem}")
    try:
        scenario = loads(source.text, file=path, path=Path(path))
    except ScenarioError as exc:
        return Observation(path, path, Verdict.ERROR, f"invalid scenario: {exc}")
    if (why_not := scenario.runs_on(provider)) is not None:
        return Observation(path, scenario.name, Verdict.SKIPPED, why_not)
    try:
        result = run_scenario(scenario, provider=provider)
    except Exception as exc:  # an executor crash is this scenario's error, as in `sim run`
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return Observation(path, scenario.name, Verdict.ERROR, f"executor crashed: {detail}")
    return Observation(path, scenario.name, result.verdict, reason(result))


def run_catalogue(sabotage: str | None, sources: Sequence[ScenarioSource],
                  provider: str) -> CatalogueRun:
    """Worker body: switch ``sabotage`` on for this whole process, run every scenario in
    order."""
    started = time.perf_counter()
    switch = contextlib.nullcontext() if sabotage is None else switched_on(sabotage)
    with switch:
        observations = tuple(observe(source, provider) for source in sources)
    return CatalogueRun(sabotage, observations, time.perf_counter() - started)


def lower_tier_command(node_ids: Sequence[str], *, first_failure: bool = True) -> list[str]:
    """The pytest command line; the baseline runs without ``-x`` so it names every test
    that is red with no sabotage on, not just the first."""
    stop = ["-x"] if first_failure else []
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *stop,
            "-p", "no:cacheprovider", *node_ids]


def run_lower_tier(sabotage: str | None, node_ids: Sequence[str], *, root: str | Path,
                   timeout_s: float = LOWER_TIER_TIMEOUT_S) -> LowerTierRun:
    """Run ``node_ids`` in a pytest subprocess with ``SEMAFORE_SABOTAGE=<sabotage>`` (unset for
    ``None``, the baseline: then without ``-x``): exit 1 kills, exit 0 survives, anything
    else is an error."""
    env = {k: v for k, v in os.environ.items() if k != SABOTAGE_ENV}
    if sabotage is not None:
        env[SABOTAGE_ENV] = sabotage
    ids = tuple(node_ids)
    started = time.perf_counter()
    try:
        done = subprocess.run(lower_tier_command(ids, first_failure=sabotage is not None),
                              cwd=root, env=env, capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return LowerTierRun(sabotage, ids, None, (), f"timed out after {timeout_s:.0f} s",
                            time.perf_counter() - started)
    except OSError as exc:
        return LowerTierRun(sabotage, ids, None, (), f"could not start pytest: {exc}",
                            time.perf_counter() - started)
    output = done.stdout + done.stderr
    tail = "\n".join(output.strip().splitlines()[-20:])
    return LowerTierRun(sabotage, ids, done.returncode, failed_node_ids(done.stdout), tail,
                        time.perf_counter() - started)


# ------------------------------------------------------------------------ the orchestration

UnitResult = CatalogueRun | LowerTierRun


def isolated(unit: Callable[..., UnitResult], on_crash: Callable[[str, float], UnitResult],
             *args: Any, **kwargs: Any) -> UnitResult:
    """Run ``unit(*args, **kwargs)`` in a fresh spawned process of its own and return its
    result; ``on_crash(why, wall_s)`` stands in when the process dies or the unit raises.

    A switch turned on there dies with the process (spawn, not fork: the parent may hold an
    event loop or threads), and a crash breaks only this one-process pool — that unit's
    error, never the whole matrix's.
    """
    started = time.perf_counter()
    try:
        with ProcessPoolExecutor(max_workers=1,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(unit, *args, **kwargs).result()
    except Exception as exc:  # BrokenProcessPool, or the unit raised
        detail = "".join(traceback.format_exception_only(exc)).strip() or type(exc).__name__
        return on_crash(detail, time.perf_counter() - started)


def run_units(units: Sequence[Callable[[], UnitResult]], *, jobs: int,
              on_result: Callable[[UnitResult], None] | None = None) -> list[UnitResult]:
    """Run ``units`` (each starts its own process: :func:`isolated`) at most ``jobs`` at a
    time; call ``on_result`` as each finishes; return the results in the order they
    finished."""
    done: list[UnitResult] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as threads:
        for future in as_completed([threads.submit(u) for u in units]):
            done.append(result := future.result())
            if on_result is not None:
                on_result(result)
    return done


def catalogue_unit(sabotage: str | None, sources: Sequence[ScenarioSource],
                   provider: str) -> Callable[[], UnitResult]:
    """One catalogue run of ``sources`` with ``sabotage`` on, in a process of its own."""
    paths = [source.path for source in sources]
    return lambda: isolated(run_catalogue, lambda d, w: CatalogueRun.crash(sabotage, paths, d, w),
                            sabotage, sources, provider)


def lower_tier_unit(sabotage: str | None, node_ids: tuple[str, ...],
                    root: str | Path) -> Callable[[], UnitResult]:
    """The lower-tier pytest run of ``node_ids`` with ``sabotage`` on."""
    return lambda: isolated(run_lower_tier,
                            lambda d, w: LowerTierRun(sabotage, node_ids, None, (), d, w),
                            sabotage, node_ids, root=str(root))


def unit_count(sabotages: Sequence[Sabotage], *, lower_tier: bool) -> int:
    """How many units :func:`run_matrix` runs (for a progress bar): the baseline, one
    catalogue run per sabotage and, with ``lower_tier``, one pytest run per sabotage that
    names tests plus one with no sabotage."""
    with_ids = sum(1 for s in sabotages if s.lower_tier) if lower_tier else 0
    return 1 + len(sabotages) + with_ids + (1 if with_ids else 0)


def run_matrix(files: Sequence[str | Path], *, provider: str, sabotages: Sequence[Sabotage],
               jobs: int = 4, lower_tier: bool = True, complete: bool | None = None,
               on_result: Callable[[UnitResult], None] | None = None,
               root: str | Path = PROJECT_ROOT) -> Matrix:
    """Run the baseline, one catalogue run per sabotage and (``lower_tier``) the lower-tier
    tests, at most ``jobs`` processes at a time; call ``on_result`` as each unit finishes.

    The scenario files are read once, here, and every run parses that text
    (:class:`ScenarioSource`); the code under test is whatever the workers import, so run
    the matrix on a tree nobody is editing. ``complete`` defaults to "``sabotages`` is the
    whole :data:`CATALOGUE`".
    """
    started = time.perf_counter()
    sources = tuple(ScenarioSource.read(f) for f in files)
    chosen = tuple(sabotages)
    whole = {s.name for s in CATALOGUE} <= {s.name for s in chosen}
    lower_ids = {s.name: s.lower_tier for s in chosen if s.lower_tier} if lower_tier else {}
    union = tuple(dict.fromkeys(i for ids in lower_ids.values() for i in ids))

    units = [catalogue_unit(None, sources, provider)]
    if union:
        units.append(lower_tier_unit(None, union, root))
    units += [catalogue_unit(s.name, sources, provider) for s in chosen]
    units += [lower_tier_unit(name, ids, root) for name, ids in lower_ids.items()]

    baseline: CatalogueRun | None = None
    runs: dict[str, CatalogueRun] = {}
    lower: dict[str, LowerTierRun] = {}
    lower_baseline: LowerTierRun | None = None
    for result in run_units(units, jobs=jobs, on_result=on_result):
        if isinstance(result, CatalogueRun):
            if result.sabotage is None:
                baseline = result
            else:
                runs[result.sabotage] = result
        elif result.sabotage is None:
            lower_baseline = result
        else:
            lower[result.sabotage] = result
    assert baseline is not None  # the first unit always returns one (a crash included)
    return Matrix(provider=provider, sabotages=chosen, baseline=baseline, runs=runs,
                  lower=lower, lower_baseline=lower_baseline,
                  complete=whole if complete is None else complete,
                  wall_s=time.perf_counter() - started)


def describe(result: UnitResult) -> str:
    """The progress line for one finished unit."""
    if isinstance(result, CatalogueRun):
        who = "baseline" if result.sabotage is None else f"sabotage {result.sabotage}"
        if result.crashed is not None:
            return f"{who}: worker crashed ({result.crashed}) after {result.wall_s:.0f} s"
        counts: dict[str, int] = {}
        for o in result.observations:
            counts[o.verdict.value] = counts.get(o.verdict.value, 0) + 1
        tally = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        return f"{who}: {tally} ({result.wall_s:.0f} s)"
    who = "lower tier, no sabotage" if result.sabotage is None else f"lower tier {result.sabotage}"
    verdict = {TierOutcome.KILLED: "failed (" + ", ".join(result.killers) + ")",
               TierOutcome.SURVIVED: f"{len(result.node_ids)} test id(s) passed",
               TierOutcome.ERROR: f"error: {_exit_text(result)}"}[result.outcome]
    return f"{who}: {verdict} ({result.wall_s:.0f} s)"


# ------------------------------------------------------------------------------ renderings

_GLYPH = {Cell.KILLED: "[bold green]K[/]", Cell.SURVIVED: "[dim]·[/]",
          Cell.NOT_RUN: "[dim]–[/]", Cell.BASELINE_RED: "[magenta]?[/]",
          Cell.CRASHED: "[bold magenta]![/]", Cell.NOT_EVALUATED: "[dim]○[/]"}


def _lower_glyph(matrix: Matrix, sabotage: str) -> str:
    run = matrix.lower.get(sabotage)
    if run is None:
        return ""
    if run.outcome is TierOutcome.ERROR:
        return "[bold magenta]![/]"
    if run.outcome is TierOutcome.KILLED:
        credited = any(not matrix.red_without_sabotage(k) for k in run.killers)
        return "[bold green]K[/]" if credited else "[magenta]?[/]"
    return "[dim]·[/]"


def matrix_table(matrix: Matrix) -> Table:
    """Scenarios as rows, sabotages as numbered columns (the legend names them)."""
    table = Table(title="Sabotage kill matrix", show_lines=False,
                  caption="K killed · survived – not run here ? baseline red ! crashed"
                  + (" ○ not evaluated (targeted)" if matrix.targeted else ""))
    table.add_column("scenario", overflow="fold")
    table.add_column("kills", justify="right")
    for number, _ in enumerate(matrix.sabotages, 1):
        table.add_column(str(number), justify="center")
    decorative = set(matrix.decorative)
    for o in matrix.rows:
        kills = matrix.kills(o.path)
        name = markup(o.scenario) + (" [dim](not run here)[/]"
                                     if o.verdict is Verdict.SKIPPED else "")
        if o in decorative:
            name += " [bold red](decorative)[/]"
        table.add_row(name, str(len(kills)),
                      *(_GLYPH[matrix.cell(s.name, o.path)] for s in matrix.sabotages))
    if matrix.lower:
        table.add_row("[italic]lower-tier tests[/]", "",
                      *(_lower_glyph(matrix, s.name) for s in matrix.sabotages))
    return table


def legend_table(matrix: Matrix) -> Table:
    table = Table(title="Sabotages", show_lines=False)
    for header in ("#", "sabotage", "component", "killed by"):
        table.add_column(header, overflow="fold")
    for number, s in enumerate(matrix.sabotages, 1):
        killers = matrix.killed_by(s.name)
        why = matrix.unjudged(s.name)
        status = (", ".join(killers) if killers else
                  f"[bold magenta]not judged: {markup(why)}[/]" if why else "[bold red]SURVIVED[/]")
        table.add_row(str(number), markup(s.name), s.component.value,
                      status if not killers else markup(status))
    return table


def render(matrix: Matrix, console: Console) -> None:
    console.print(matrix_table(matrix))
    console.print(legend_table(matrix))
    if matrix.not_run:
        console.print("not run here: " + ", ".join(o.scenario for o in matrix.not_run),
                      markup=False)
    for o in matrix.baseline_red:
        console.print(f"baseline {o.verdict.value}: {o.scenario}: {o.reason}", markup=False)
    console.print("survivors: " + (", ".join(matrix.survivors) or "none"), markup=False)
    decorative = ("not judged (a subset of the catalogue ran)" if not matrix.complete
                  else ", ".join(o.scenario for o in matrix.decorative) or "none")
    console.print(f"decorative: {decorative}", markup=False)
    if matrix.targeted:
        console.print(f"targeted search: {matrix.scenario_runs} sabotaged scenario run(s) of "
                      f"{len(matrix.sabotages) * len(matrix.judgeable)}; every other cell "
                      "not evaluated (targeted)", markup=False)
    for problem in matrix.problems:
        console.print(f"[bold red]✗[/] {markup(problem)}")
    gate = "[bold green]gate: ok[/]" if not matrix.problems else "[bold red]gate: failed[/]"
    console.print(f"{gate}  provider {matrix.provider}, {len(matrix.sabotages)} sabotage(s) × "
                  f"{len(matrix.rows)} scenario(s), {matrix.mode} matrix, "
                  f"wall time {matrix.wall_s:.1f} s")


def to_dict(matrix: Matrix) -> dict[str, Any]:
    """The JSON report (docs/sabotage.md#running-the-matrix)."""
    lower_base = matrix.lower_baseline
    return {
        "mode": matrix.mode,
        "sabotages": [{"name": s.name, "description": s.description,
                       "component": s.component.value, "killed_by": matrix.killed_by(s.name),
                       "not_evaluated": [o.scenario for o in matrix.not_evaluated(s.name)]}
                      for s in matrix.sabotages],
        "scenarios": [{"name": o.scenario, "path": o.path, "kills": matrix.kills(o.path)}
                      for o in matrix.rows],
        "survivors": matrix.survivors,
        "decorative": [o.scenario for o in matrix.decorative],
        "undecided": [o.scenario for o in matrix.undecided],
        "scenario_runs": matrix.scenario_runs,
        "baseline": {
            "ok": not matrix.baseline_red,
            "scenarios": [{"name": o.scenario, "path": o.path, "verdict": o.verdict.value,
                           "reason": o.reason, "wall_s": round(o.wall_s, 3)}
                          for o in matrix.rows],
            "not_run": [o.scenario for o in matrix.not_run],
            "lower_tier": None if lower_base is None else {
                "node_ids": list(lower_base.node_ids), "exit_code": lower_base.exit_code,
                "ok": lower_base.outcome is TierOutcome.SURVIVED,
                "failed": list(lower_base.failed)},
        },
        "provider": matrix.provider,
        "wall_s": round(matrix.wall_s, 3),
    }


def to_json(matrix: Matrix) -> str:
    return json.dumps(to_dict(matrix), indent=2) + "\n"


def to_junit(matrix: Matrix, *, suite: str = "semafore-sabotage") -> str:
    """One test case per sabotage: failure when it survived, error when it could not be
    judged (worker crash, lower tier did not run)."""
    survivors = set(matrix.survivors)
    unjudged = {s.name: why for s in matrix.sabotages
                if (why := matrix.unjudged(s.name)) is not None}
    counts = {"tests": str(len(matrix.sabotages)), "failures": str(len(survivors)),
              "errors": str(len(unjudged))}
    root = ET.Element("testsuites", {"name": suite, **counts})
    ts = ET.SubElement(root, "testsuite", {"name": suite, "time": f"{matrix.wall_s:.3f}",
                                           **counts})
    for s in matrix.sabotages:
        case = ET.SubElement(ts, "testcase", classname=f"sabotage.{s.component.value}",
                             name=s.name)
        killers = matrix.killed_by(s.name)
        out = [s.description, f"should be caught by: {s.catches}",
               "killed by: " + (", ".join(killers) or "nothing")]
        if skipped := matrix.not_evaluated(s.name):
            out.append(f"{Cell.NOT_EVALUATED.value}: " + ", ".join(o.scenario for o in skipped))
        if s.name in survivors:
            ET.SubElement(case, "failure", type="survived",
                          message="survived every scenario and lower-tier test")
        elif s.name in unjudged:
            ET.SubElement(case, "error", type="not-judged", message=unjudged[s.name])
        ET.SubElement(case, "system-out").text = "\n".join(out)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


_MATRIX_CSS = """
td.c{text-align:center;width:1.6em;padding:2px}th.c{text-align:center;padding:2px}
.c-killed{background:#d8f5dd;color:#0a5d1e;font-weight:600}.c-survived{color:#999}
.c-not-run-here{background:#eee;color:#555}.c-baseline-red,.c-crashed{background:#f1ddf7;
color:#6d1a8a;font-weight:600}tr.decorative td:first-child{color:#9b1111;font-weight:600}
.c-not-evaluated{color:#bbb}
"""

_HTML_GLYPH = {Cell.KILLED: "K", Cell.SURVIVED: "·", Cell.NOT_RUN: "–",
               Cell.BASELINE_RED: "?", Cell.CRASHED: "!", Cell.NOT_EVALUATED: "○"}


def to_html(matrix: Matrix, *, title: str = "SemaFore sabotage kill matrix") -> str:
    """A self-contained page: the matrix (hover a cell for the sabotaged verdict and why),
    the sabotages with what killed them, the problems that make the gate red."""
    generated = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    gate = ('<span class="v v-pass">gate: ok</span>' if not matrix.problems
            else '<span class="v v-fail">gate: failed</span>')
    heads = "".join(f'<th class=c title="{escape(s.name)}">{n}</th>'
                    for n, s in enumerate(matrix.sabotages, 1))
    rows = []
    decorative = set(matrix.decorative)
    for o in matrix.rows:
        cells = []
        for s in matrix.sabotages:
            state = matrix.cell(s.name, o.path)
            run = matrix.runs.get(s.name)
            tip = (f"{s.name} × {o.scenario}: {state.value}"
                   + ("" if run is None or not run.observed(o.path)
                      else f" — sabotaged: {run.reason_of(o.path)}"))
            cells.append(f'<td class="c c-{state.css}" '
                         f'title="{escape(tip)}">{_HTML_GLYPH[state]}</td>')
        rows.append(f'<tr{" class=decorative" if o in decorative else ""}>'
                    f'<td title="{escape(o.path)}">{escape(o.scenario)}</td>'
                    f"<td>{escape(o.verdict.value)}</td><td>{len(matrix.kills(o.path))}</td>"
                    + "".join(cells) + "</tr>")
    grid = ("<table><thead><tr><th>scenario</th><th>baseline</th><th>kills</th>"
            f"{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    legend = []
    for n, s in enumerate(matrix.sabotages, 1):
        killers = matrix.killed_by(s.name)
        why = matrix.unjudged(s.name)
        status = ("<br>".join(escape(k) for k in killers) if killers else
                  f'<span class="v v-error">not judged</span> {escape(why)}' if why else
                  '<span class="v v-fail">survived</span>')
        legend.append(f"<tr><td>{n}</td><td><code>{escape(s.name)}</code></td>"
                      f"<td>{escape(s.component.value)}</td><td>{escape(s.description)}</td>"
                      f"<td>{escape(s.catches)}</td><td>{status}</td></tr>")
    sabotages = ("<table><thead><tr><th>#</th><th>sabotage</th><th>component</th>"
                 "<th>defect</th><th>should be caught by</th><th>killed by</th></tr></thead>"
                 f"<tbody>{''.join(legend)}</tbody></table>")
    problems = ("<ul>" + "".join(f"<li>{escape(p)}</li>" for p in matrix.problems) + "</ul>"
                if matrix.problems else "<p>none</p>")
    not_run = ", ".join(escape(o.scenario) for o in matrix.not_run) or "none"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{REPORT_CSS}{_MATRIX_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>{gate} <span class=muted>provider "
        f"{escape(matrix.provider)} · {len(matrix.sabotages)} sabotage(s) × {len(matrix.rows)} "
        f"scenario(s) · {matrix.mode} matrix, {matrix.scenario_runs} sabotaged scenario run(s) "
        f"· wall {matrix.wall_s:.1f} s · generated {escape(generated)} · K killed, "
        "· survived, – not run here, ? baseline red, ! crashed"
        f"{', ○ not evaluated (targeted)' if matrix.targeted else ''}</span></p>"
        f"<h2>Problems</h2>{problems}<h2>Matrix</h2>{grid}"
        f"<p class=muted>not run here: {not_run}</p><h2>Sabotages</h2>{sabotages}"
        "</body></html>\n"
    )
