"""The targeted kill matrix (issue #11, docs/sabotage.md "Targeted matrix"): the gate of the
full matrix with far fewer runs.

The gate (:class:`simulator.sabotage_matrix.Matrix`) asks two existential questions — is
every sabotage killed by *some* scenario or lower-tier test, and does every scenario under
``threats/`` and ``desync/`` kill *some* sabotage — plus "is the baseline green". The full
matrix answers them by running every (sabotage, scenario) cell; one witness per question is
enough, and a *no* needs the whole row or column. This module searches for the witnesses:

1. **Baseline**, as in the full matrix: every scenario with no sabotage (spread over
   ``jobs`` processes) and the lower tier (the union of the node ids with no sabotage, then
   each sabotage's own ids).
2. **One probe per sabotage**: one process with the sabotage on (a switch is
   process-global) runs scenarios one at a time in the hint's order and stops at the first
   kill — but only after its *obligations*: for each must-catch scenario, one sabotage the
   hint recorded it killing is run against it. A sabotage a lower-tier test already killed
   runs only its obligations. What the hint got wrong or lacks (a new sabotage, a recorded
   killer that no longer kills) is covered by going on through every other scenario, so a
   sabotage comes out killed or with its whole row run.
3. **Rounds for the undecided**: a must-catch scenario with no kill yet runs against the
   sabotages not yet tried on it, a few at a time, until one is killed or all were tried.

The hint (:class:`Hint`, the JSON of an earlier matrix: docs/sabotage-matrix.json) only
*orders*; soundness never rests on it. A kill is credited only from a run (the cell judged by
:func:`simulator.sabotage_matrix.judge_cell` like any other), and the matrix rules refuse to
call a sabotage a survivor or a scenario decorative while a cell that could change that is
not evaluated (:meth:`Matrix.unjudged`, :attr:`Matrix.undecided`): a wrong hint costs runs,
never a verdict. Scenarios are assumed independent of what ran before them in the same
process (each builds its own relay and cast); the full matrix assumes the same.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from semafore.sabotage import CATALOGUE, Sabotage, switched_on
from simulator.report.model import Verdict
from simulator.sabotage_matrix import (
    PROJECT_ROOT,
    CatalogueRun,
    LowerTierRun,
    Matrix,
    Observation,
    ScenarioSource,
    UnitResult,
    catalogue_unit,
    credited_killers,
    isolated,
    lower_tier_unit,
    must_catch,
    observe,
    run_units,
)

DEFAULT_HINT = PROJECT_ROOT / "docs" / "sabotage-matrix.json"
"""The last full matrix, committed (``semafore sim sabotage --json docs/sabotage-matrix.json``);
the hint when ``--targeted`` is given without ``--hint``."""


# ------------------------------------------------------------------------------------ hint


class HintError(ValueError):
    """A hint file that is not a sabotage matrix; ``field`` names where it went wrong."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        super().__init__(f"{field}: {detail}")


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HintError(where, "must be a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class Hint:
    """Which scenario killed which sabotage in an earlier matrix — an ordering, not a fact.

    ``killers`` maps a sabotage to the scenario names (and lower-tier node ids) recorded
    killing it, ``victims`` a scenario name to the sabotages it killed; both are read from
    ``sabotages[].killed_by`` and ``scenarios[].kills`` (the same pairs, either side).
    """

    source: str
    killers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    victims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: object, source: str) -> Hint:
        if not isinstance(data, dict):
            raise HintError(source, "expected a JSON object (semafore sim sabotage --json)")
        killers: dict[str, list[str]] = {}
        victims: dict[str, list[str]] = {}

        def pair(sabotage: str, killer: str) -> None:
            killers.setdefault(sabotage, []).append(killer)
            victims.setdefault(killer, []).append(sabotage)

        for key in ("sabotages", "scenarios"):
            if not isinstance(data.get(key, []), list):
                raise HintError(f"{source}: {key}", "must be a list")
        for i, entry in enumerate(data.get("sabotages", [])):
            where = f"{source}: sabotages[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise HintError(f"{where}.name", "must be a string")
            for killer in _strings(entry.get("killed_by", []), f"{where}.killed_by"):
                pair(entry["name"], killer)
        for i, entry in enumerate(data.get("scenarios", [])):
            where = f"{source}: scenarios[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise HintError(f"{where}.name", "must be a string")
            for victim in _strings(entry.get("kills", []), f"{where}.kills"):
                pair(victim, entry["name"])
        return cls(source, {k: tuple(dict.fromkeys(v)) for k, v in killers.items()},
                   {k: tuple(dict.fromkeys(v)) for k, v in victims.items()})

    @classmethod
    def load(cls, path: Path) -> Hint:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise HintError(str(path), f"cannot read: {exc.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HintError(str(path), f"not JSON: {exc}") from None
        return cls.parse(data, str(path))

    def killers_of(self, sabotage: str) -> tuple[str, ...]:
        return self.killers.get(sabotage, ())

    def victims_of(self, scenario: str) -> tuple[str, ...]:
        return self.victims.get(scenario, ())


def named_in(text: str, scenario: str) -> bool:
    """Whether a sabotage's ``catches`` text names the scenario (``desync/reorder``, ``reorder``
    — not ``reorders``): a second hint for what the last matrix did not know yet."""
    return re.search(rf"(?<![\w-]){re.escape(scenario)}(?![\w-])", text) is not None


# ----------------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class Probe:
    """What one process with ``sabotage`` on runs: the ``required`` scenarios whatever
    happens, then — with ``seek_kill`` — the rest of ``order`` up to the first kill.

    Every path in ``order`` is one the baseline judged ok (:meth:`Search.plan`), so a
    sabotaged verdict that is not ok there is a kill.
    """

    sabotage: str
    order: tuple[str, ...]  # scenario paths, in the order to try them
    required: frozenset[str] = frozenset()
    seek_kill: bool = True

    def next_path(self, done: Sequence[Observation]) -> str | None:
        """The next scenario to run after ``done`` (this probe's observations so far), or
        ``None``: every required one ran and (when seeking) a kill was seen or ``order`` is
        exhausted."""
        ran = {o.path for o in done}
        pending = [path for path in self.order if path not in ran]
        if required := [path for path in pending if path in self.required]:
            return required[0]
        if self.seek_kill and all(o.verdict.ok for o in done) and pending:
            return pending[0]
        return None


def run_probe(probe: Probe, sources: Sequence[ScenarioSource], provider: str) -> CatalogueRun:
    """Worker body: switch ``probe.sabotage`` on for this whole process and run scenarios one
    at a time, as :meth:`Probe.next_path` says."""
    by_path = {source.path: source for source in sources}
    started = time.perf_counter()
    done: list[Observation] = []
    with switched_on(probe.sabotage):
        while (path := probe.next_path(done)) is not None:
            done.append(observe(by_path[path], provider))
    return CatalogueRun(probe.sabotage, tuple(done), time.perf_counter() - started)


# ----------------------------------------------------------------------------------- search


@dataclass
class Search:
    """The state of one targeted search: the baseline, the hint, and every probe's result so
    far (merged per sabotage). :meth:`first_round` and :meth:`next_round` are pure functions
    of it; :func:`search` alternates them with running the probes."""

    sabotages: tuple[Sabotage, ...]
    baseline: tuple[Observation, ...]
    hint: Hint
    lower_killed: frozenset[str] = frozenset()  # credited a lower-tier kill
    decide_decoration: bool = True  # the whole catalogue of sabotages was chosen
    jobs: int = 4
    runs: dict[str, CatalogueRun] = field(default_factory=dict)

    @cached_property
    def judgeable(self) -> tuple[Observation, ...]:
        """The scenarios a sabotaged verdict can be judged on: baseline ok and run here."""
        return tuple(o for o in self.baseline if o.verdict.ok and o.verdict is not Verdict.SKIPPED)

    @cached_property
    def must_catch(self) -> tuple[Observation, ...]:
        return tuple(o for o in self.judgeable if must_catch(o.path)) \
            if self.decide_decoration else ()

    @cached_property
    def _by_name(self) -> dict[str, Sabotage]:
        return {s.name: s for s in self.sabotages}

    @cached_property
    def _names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def scenario_order(self, sabotage: Sabotage) -> tuple[str, ...]:
        """Every judgeable scenario for ``sabotage``: those the hint recorded killing it, then
        those its ``catches`` names, cheapest first; then the rest, the ones that killed most
        in the hint first (broad scenarios catch new defects too), cheapest first."""
        recorded = set(self.hint.killers_of(sabotage.name))
        cost = sorted(self.judgeable, key=lambda o: o.wall_s)
        first = [o.path for o in cost if o.scenario in recorded]
        named = [o.path for o in cost if named_in(sabotage.catches, o.scenario)]
        rest = [o.path for o in sorted(cost, key=lambda o: -len(self.hint.victims_of(o.scenario)))]
        return tuple(dict.fromkeys([*first, *named, *rest]))

    def victim_order(self, scenario: Observation) -> tuple[str, ...]:
        """Every chosen sabotage for a scenario: those the hint recorded it killing, then those
        whose ``catches`` names it, then the rest, the ones killed most often in the hint
        first."""
        rest = [s.name for s in sorted(self.sabotages,
                                       key=lambda s: -len(self.hint.killers_of(s.name)))]
        return tuple(dict.fromkeys([*self.hinted_victims(scenario), *rest]))

    def hinted_victims(self, scenario: Observation) -> tuple[str, ...]:
        """The sabotages the hint recorded the scenario killing, then those whose ``catches``
        names it (chosen ones only)."""
        recorded = [n for n in self.hint.victims_of(scenario.scenario) if n in self._names]
        named = [s.name for s in self.sabotages if named_in(s.catches, scenario.scenario)]
        return tuple(dict.fromkeys([*recorded, *named]))

    # -- what the runs so far say

    def crashed(self, sabotage: str) -> bool:
        run = self.runs.get(sabotage)
        return run is not None and run.crashed is not None

    def tried(self, sabotage: str, path: str) -> bool:
        run = self.runs.get(sabotage)
        return run is not None and run.observed(path)

    def killed(self, sabotage: str) -> bool:
        """A credited lower-tier kill, or a judgeable scenario that went red in a run."""
        if sabotage in self.lower_killed:
            return True
        run = self.runs.get(sabotage)
        judgeable = {o.path for o in self.judgeable}
        return run is not None and run.crashed is None and any(
            not o.verdict.ok for o in run.observations if o.path in judgeable)

    def caught(self, path: str) -> bool:
        """Whether some run saw the scenario at ``path`` go red with a sabotage on."""
        return any(run.crashed is None and any(o.path == path and not o.verdict.ok
                                               for o in run.observations)
                   for run in self.runs.values())

    def record(self, result: CatalogueRun) -> None:
        """Merge one probe's run into its sabotage's; a crash makes the whole sabotage
        crashed (not judged), whatever ran before."""
        assert result.sabotage is not None
        before = self.runs.get(result.sabotage)
        if before is None:
            self.runs[result.sabotage] = result
            return
        self.runs[result.sabotage] = CatalogueRun(
            result.sabotage,
            before.observations + (() if result.crashed else result.observations),
            before.wall_s + result.wall_s, crashed=before.crashed or result.crashed)

    # -- the plans

    def _probes(self, required: Mapping[str, set[str]], seeking: set[str]) -> list[Probe]:
        probes = []
        for s in self.sabotages:
            need, seek = required.get(s.name, set()), s.name in seeking
            if not need and not seek:
                continue
            order = [p for p in self.scenario_order(s) if not self.tried(s.name, p)]
            first = [p for p in order if p in need]
            probes.append(Probe(s.name, tuple(first + ([p for p in order if p not in need]
                                                       if seek else [])),
                                frozenset(need), seek))
        return probes

    def first_round(self) -> list[Probe]:
        """One probe per sabotage: seek a kill unless a lower-tier test already killed it,
        and run the scenarios it is the designated victim of. Each must-catch scenario gets
        one designated victim from the hint (recorded, else named in ``catches``): one that
        tries it first anyway if there is one, else the least burdened."""
        seeking = {s.name for s in self.sabotages if not self.killed(s.name)}
        required: dict[str, set[str]] = {}
        for o in self.must_catch:
            candidates = self.hinted_victims(o)
            if not candidates:
                continue  # left to next_round's search
            firsts = [v for v in candidates if v in seeking and not required.get(v)
                      and self.scenario_order(self._by_name[v])[:1] == (o.path,)]
            pick = firsts[0] if firsts else min(
                candidates, key=lambda v: (len(required.get(v, ())), candidates.index(v)))
            required.setdefault(pick, set()).add(o.path)
        return self._probes(required, seeking)

    def next_round(self) -> list[Probe]:
        """What is still open after the runs so far: a sabotage neither killed nor run on
        every judgeable scenario (not crashed) seeks on; a must-catch scenario no run has seen
        go red is run against the next untried sabotages of :meth:`victim_order`, about
        ``jobs`` runs per round in all. Empty when every question has its answer."""
        seeking = {s.name for s in self.sabotages
                   if not self.crashed(s.name) and not self.killed(s.name)
                   and any(not self.tried(s.name, o.path) for o in self.judgeable)}
        open_ = {o.path: [v for v in self.victim_order(o)
                          if not self.crashed(v) and not self.tried(v, o.path)]
                 for o in self.must_catch if not self.caught(o.path)}
        open_ = {path: untried for path, untried in open_.items() if untried}
        required: dict[str, set[str]] = {}
        width = max(1, math.ceil(self.jobs / len(open_))) if open_ else 0
        for path, untried in open_.items():
            for victim in untried[:width]:
                required.setdefault(victim, set()).add(path)
        return self._probes(required, seeking)

    def final_runs(self) -> dict[str, CatalogueRun]:
        """Every chosen sabotage's merged run; one that needed no probe (a lower-tier kill and
        no obligation) ran no scenario: an empty run, every cell not evaluated."""
        return {s.name: self.runs.get(s.name, CatalogueRun(s.name, (), 0.0))
                for s in self.sabotages}


ProbeRunner = Callable[[Sequence[Probe]], Sequence[CatalogueRun]]
"""Runs a round of probes (each in its own process, in production) and returns their runs."""


def search(state: Search, run_probes: ProbeRunner) -> dict[str, CatalogueRun]:
    """Alternate planning and running until nothing is open; every sabotage's run."""
    probes = state.first_round() or state.next_round()
    while probes:
        for result in run_probes(probes):
            state.record(result)
        probes = state.next_round()
    return state.final_runs()


# ---------------------------------------------------------------------------- orchestration


def probe_unit(probe: Probe, sources: Sequence[ScenarioSource],
               provider: str) -> Callable[[], UnitResult]:
    """One probe in a process of its own (the switch dies with it)."""
    return lambda: isolated(run_probe,
                            lambda d, w: CatalogueRun.crash(probe.sabotage, probe.order, d, w),
                            probe, sources, provider)


def baseline_parts(sources: Sequence[ScenarioSource],
                   jobs: int) -> list[tuple[ScenarioSource, ...]]:
    """The baseline spread over up to ``jobs`` processes (every ``jobs``-th scenario each):
    the search needs the whole baseline before its first probe."""
    n = max(1, min(jobs, len(sources)))
    return [part for part in (tuple(sources[i::n]) for i in range(n)) if part]


def run_targeted(files: Sequence[str | Path], *, provider: str, sabotages: Sequence[Sabotage],
                 hint: Hint, jobs: int = 4, lower_tier: bool = True,
                 complete: bool | None = None,
                 on_result: Callable[[UnitResult], None] | None = None,
                 root: str | Path = PROJECT_ROOT) -> Matrix:
    """The targeted matrix: the baseline and lower tier as in
    :func:`simulator.sabotage_matrix.run_matrix`, then :func:`search`, at most ``jobs``
    processes at a time; ``on_result`` is called as each unit finishes."""
    started = time.perf_counter()
    sources = tuple(ScenarioSource.read(f) for f in files)
    chosen = tuple(sabotages)
    whole = {s.name for s in CATALOGUE} <= {s.name for s in chosen}
    lower_ids = {s.name: s.lower_tier for s in chosen if s.lower_tier} if lower_tier else {}
    union = tuple(dict.fromkeys(i for ids in lower_ids.values() for i in ids))

    units = [catalogue_unit(None, part, provider) for part in baseline_parts(sources, jobs)]
    if union:
        units.append(lower_tier_unit(None, union, root))
    units += [lower_tier_unit(name, ids, root) for name, ids in lower_ids.items()]
    seen: dict[str, Observation] = {}
    lower: dict[str, LowerTierRun] = {}
    lower_baseline: LowerTierRun | None = None
    for result in run_units(units, jobs=jobs, on_result=on_result):
        if isinstance(result, CatalogueRun):
            seen.update((o.path, o) for o in result.observations)
        elif result.sabotage is None:
            lower_baseline = result
        else:
            lower[result.sabotage] = result
    baseline = CatalogueRun(None, tuple(seen[s.path] for s in sources),
                            time.perf_counter() - started)

    state = Search(chosen, baseline.observations, hint,
                   lower_killed=frozenset(s.name for s in chosen
                                          if credited_killers(lower.get(s.name), lower_baseline)),
                   decide_decoration=whole if complete is None else complete, jobs=jobs)
    by_path = {source.path: source for source in sources}

    def run_probes(probes: Sequence[Probe]) -> list[CatalogueRun]:
        done = run_units([probe_unit(p, [by_path[path] for path in p.order], provider)
                          for p in probes], jobs=jobs, on_result=on_result)
        return [r for r in done if isinstance(r, CatalogueRun)]

    runs = search(state, run_probes)
    return Matrix(provider=provider, sabotages=chosen, baseline=baseline, runs=runs,
                  lower=lower, lower_baseline=lower_baseline,
                  complete=state.decide_decoration, wall_s=time.perf_counter() - started,
                  targeted=True)
