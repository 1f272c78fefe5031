"""What running one scenario produced, and the verdict a reviewer reads (docs/scenarios.md).

Contract with the executor (``simulator.executor.run_scenario``)::

    def run_scenario(scenario: Scenario, *, provider: str = "embedded", seed: int | None = None,
                     on_step: Callable[[Step], None] | None = None) -> ScenarioResult

(may also be ``async def``; the CLI awaits a coroutine). It should:

1. start from ``result = ScenarioResult.for_scenario(scenario, provider=..., seed=...)``: every
   assertion of the file is already listed as ``NOT_RUN``, so one the executor forgets to
   evaluate fails the scenario instead of silently passing;
2. call ``on_step(step)`` before running each top-level step (drives the progress bar) and add
   a :class:`TimelineEvent` per step with ``result.event(...)``;
3. evaluate each assertion step with ``result.record(step, Outcome..., summary, evidence)``:
   ``HELD`` / ``VIOLATED`` for guarantees, ``EXPOSED`` / ``VIOLATED`` for ``exposed`` and
   ``metadata_exposed`` (the documented exposure was / was not demonstrated), ``ERROR`` when
   it could not be evaluated;
4. append one :class:`AdversaryView` per compromise step (what it held, what it decrypted),
   the oracle hits (:func:`simulator.oracle.Oracle.scan` over the relay-side views) to
   ``result.oracle_hits`` with the byte totals scanned per tier in ``result.oracle_scanned``,
   and the metadata inventory (:func:`simulator.inventory.build`) to ``result.inventory``;
5. on an exception that stops the run, set ``result.error`` (and still return the result).

:meth:`ScenarioResult.verdict` is computed here, never by the executor.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from simulator.inventory import AdversaryInventory
from simulator.oracle import Hit
from simulator.scenario.model import Assertion, Expectation, Scenario, Step


class Verdict(Enum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    FAIL = "fail"
    EXPOSED = "exposed-as-documented"
    ERROR = "error"
    SKIPPED = "skipped"  # not run: the scenario does not apply to the chosen provider
    UNSUPPORTED = "unsupported"  # the relay under test cannot do what the scenario needs
    # (an external relay: a step needs its process, an assertion a view not granted); never
    # a pass, never a fail (`semafore sim run` exits 3 when nothing worse happened)

    @property
    def ok(self) -> bool:
        """Whether this verdict lets a CI gate pass."""
        return self in (Verdict.PASS, Verdict.EXPOSED, Verdict.SKIPPED)


class Outcome(Enum):
    HELD = "held"  # the guarantee held
    VIOLATED = "violated"  # the guarantee (or the documented exposure) did not hold
    EXPOSED = "exposed"  # a documented non-guarantee was demonstrated, as the seed says
    ERROR = "error"  # could not be evaluated
    NOT_RUN = "not-run"  # the run stopped before this assertion, or it was never evaluated
    INCONCLUSIVE = "inconclusive"  # evaluated over zero items: no evidence either way (fails)
    UNSUPPORTED = "unsupported"  # needs what the relay under test does not give (a source the
    # operator did not grant, a count only the in-process relay keeps): names what is missing


@dataclass
class AssertionResult:
    step_index: int
    line: int
    kind: str
    outcome: Outcome
    summary: str = ""
    evidence: list[str] = field(default_factory=list)


@dataclass
class StepFailure:
    """A step that did not do what the file says (issue #11 "every step counts"): it failed
    without declaring ``expect: {error: …}``, failed with another error than declared, or
    declared an error that never happened."""

    step_index: int
    line: int
    kind: str
    device: str
    error: str
    expected: str | None = None

    def describe(self) -> str:
        where = f"step {self.kind} (line {self.line})"
        who = f" on {self.device}" if self.device else ""
        if self.expected is not None and not self.error:
            return f"{where}{who} was expected to fail with {self.expected} but succeeded"
        wanted = f" (expected {self.expected})" if self.expected is not None else ""
        return f"{where} failed{who}: {self.error}{wanted}"


@dataclass
class FaultReport:
    """One declared fault (a ``network`` or ``infra`` step) and what it actually did. A fault
    that never acted makes the verdict ``error``: the scenario did not test what it says."""

    step_index: int
    line: int
    description: str
    fired: bool
    acted: dict[str, int] = field(default_factory=dict)


@dataclass
class TimelineEvent:
    """One thing that happened, on the scenario clock (milliseconds since start)."""

    at_ms: float
    kind: str
    summary: str
    step_index: int | None = None
    ok: bool = True
    details: dict[str, str | int | float | bool] = field(default_factory=dict)


@dataclass
class SourceSummary:
    """One tier of an adversary view: how many items and bytes it held."""

    tier: str
    items: int
    bytes: int


@dataclass
class AdversaryView:
    """What one adversary held and what it managed to do with it."""

    name: str
    kind: str  # CompromiseKind value
    step_index: int
    description: str
    sources: list[SourceSummary] = field(default_factory=list)
    envelopes_tried: int = 0
    decrypted: list[str] = field(default_factory=list)  # "label -> user/device" per plaintext
    notes: list[str] = field(default_factory=list)


@dataclass
class ScenarioResult:
    scenario: str
    path: str | None
    expect: Expectation
    provider: str
    seed: int
    cites: list[str] = field(default_factory=list)
    source_digest: str = ""
    started_at: str = ""
    duration_s: float = 0.0
    assertions: list[AssertionResult] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)
    adversaries: list[AdversaryView] = field(default_factory=list)
    oracle_hits: list[Hit] = field(default_factory=list)
    oracle_scanned: dict[str, int] = field(default_factory=dict)  # tier -> bytes scanned
    inventory: list[AdversaryInventory] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    step_failures: list[StepFailure] = field(default_factory=list)
    faults: list[FaultReport] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    # user/device -> the implementation backing it (simulator.assignment; issue 15 item 1);
    # empty when every device is the in-process reference client
    implementations: dict[str, str] = field(default_factory=dict)
    unsupported: str | None = None  # not run: the steps it names need the relay's process
    relay: str | None = None  # an external relay's URL (simulator.external), else in-process
    scanned: dict[str, str] = field(default_factory=dict)  # relay-side source -> what was read
    not_scanned: dict[str, str] = field(default_factory=dict)  # source -> why it was not

    @classmethod
    def for_scenario(
        cls, scenario: Scenario, *, provider: str, seed: int | None = None
    ) -> ScenarioResult:
        return cls(
            scenario=scenario.name,
            path=str(scenario.path) if scenario.path else None,
            expect=scenario.expect,
            provider=provider,
            seed=scenario.seed if seed is None else seed,
            cites=list(scenario.cites),
            source_digest=scenario.source_digest,
            started_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            assertions=[
                AssertionResult(a.index, a.line, a.assertion.value, Outcome.NOT_RUN)
                for a in scenario.assertions()
            ],
        )

    @classmethod
    def load_error(cls, path: str, message: str, *, provider: str, seed: int) -> ScenarioResult:
        """A file that did not load still gets a row (verdict ``error``) in every report."""
        return cls(scenario=path, path=path, expect=Expectation.PASS, provider=provider,
                   seed=seed, error=message)

    def record(
        self, step: Assertion, outcome: Outcome, summary: str = "",
        evidence: list[str] | None = None,
    ) -> AssertionResult:
        for item in self.assertions:
            if item.step_index == step.index:
                item.outcome = outcome
                item.summary = summary
                item.evidence = list(evidence or [])
                return item
        raise KeyError(f"step {step.index} is not an assertion of scenario {self.scenario!r}")

    def event(
        self, at_ms: float, kind: str, summary: str, *, step: Step | None = None, ok: bool = True,
        **details: str | int | float | bool,
    ) -> TimelineEvent:
        ev = TimelineEvent(at_ms, kind, summary, step.index if step else None, ok, dict(details))
        self.timeline.append(ev)
        return ev

    @property
    def verdict(self) -> Verdict:
        return decide(self)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["expect"] = self.expect.value
        out["verdict"] = self.verdict.value
        out["reason"] = reason(self)
        for item in out["assertions"]:
            item["outcome"] = item["outcome"].value
        out["oracle_hits"] = [hit.to_dict() for hit in self.oracle_hits]
        out["inventory"] = [inv.to_dict() for inv in self.inventory]
        return out


def decide(result: ScenarioResult) -> Verdict:
    """The verdict rules (docs/scenarios.md#verdicts), strictest first.

    - ``error``: the run stopped (infrastructure, executor or load failure), an assertion
      could not be evaluated, or a declared fault never fired (the scenario did not exercise
      what it claims);
    - ``fail``: any oracle hit (plaintext, key material or a raw identifier where it must not
      be), any failed step (not declared with ``expect: {error: …}``), any violated,
      inconclusive (zero evidence) or never-evaluated assertion;
    - ``exposed-as-documented``: the file expects ``exposed``, every assertion held and at
      least one demonstrated its documented exposure;
    - ``pass``: the file expects ``pass`` and every assertion held;
    - ``skipped``: not run (the scenario's ``providers`` exclude the chosen one);
    - ``unsupported`` (after ``error`` and ``fail``, which a real finding still gives): not
      run because a step needs the external relay's process, or an assertion needs what the
      relay under test does not give (``Outcome.UNSUPPORTED``).
    """
    if result.skipped is not None:
        return Verdict.SKIPPED
    if result.unsupported is not None:
        return Verdict.UNSUPPORTED
    outcomes = [a.outcome for a in result.assertions]
    if result.error is not None or Outcome.ERROR in outcomes:
        return Verdict.ERROR
    if any(not f.fired for f in result.faults):
        return Verdict.ERROR
    if result.oracle_hits or not outcomes or result.step_failures:
        return Verdict.FAIL
    if any(o in (Outcome.VIOLATED, Outcome.NOT_RUN, Outcome.INCONCLUSIVE) for o in outcomes):
        return Verdict.FAIL
    if Outcome.UNSUPPORTED in outcomes:
        return Verdict.UNSUPPORTED
    exposed = Outcome.EXPOSED in outcomes
    if result.expect is Expectation.EXPOSED:
        return Verdict.EXPOSED if exposed else Verdict.FAIL
    return Verdict.FAIL if exposed else Verdict.PASS


def reason(result: ScenarioResult) -> str:
    """One line saying why the verdict is what it is."""
    verdict = decide(result)
    if result.skipped is not None:
        return result.skipped
    if result.unsupported is not None:
        return f"unsupported: {result.unsupported}"
    if result.error is not None:
        return result.error.splitlines()[0] if result.error else "error"
    counts = {o: sum(a.outcome is o for a in result.assertions) for o in Outcome}
    if verdict is Verdict.ERROR:
        bad = next((a for a in result.assertions if a.outcome is Outcome.ERROR), None)
        if bad is not None:
            return f"assertion {bad.kind} (line {bad.line}) could not be evaluated: {bad.summary}"
        unfired = [f for f in result.faults if not f.fired]
        first = unfired[0]
        more = f" (and {len(unfired) - 1} more)" if len(unfired) > 1 else ""
        return f"fault {first.description} (line {first.line}) never fired{more}"
    if result.step_failures:
        more = (f" (and {len(result.step_failures) - 1} more failed step(s))"
                if len(result.step_failures) > 1 else "")
        return result.step_failures[0].describe() + more
    if result.oracle_hits:
        hit = result.oracle_hits[0]
        return (f"oracle: {len(result.oracle_hits)} hit(s); first: {hit.label} in {hit.tier} at "
                f"{hit.location} ({hit.encoding})")
    if not result.assertions:
        return "no assertion was evaluated"
    for outcome in (Outcome.VIOLATED, Outcome.INCONCLUSIVE, Outcome.NOT_RUN):
        if counts[outcome]:
            bad = next(a for a in result.assertions if a.outcome is outcome)
            return f"{bad.kind} (line {bad.line}) {outcome.value}: {bad.summary}"
    if verdict is Verdict.UNSUPPORTED:
        bad = next(a for a in result.assertions if a.outcome is Outcome.UNSUPPORTED)
        return f"unsupported: {bad.kind} (line {bad.line}): {bad.summary}"
    if verdict is Verdict.FAIL:
        return "an exposure was demonstrated in a scenario that expects none"
    held, exposed = counts[Outcome.HELD], counts[Outcome.EXPOSED]
    if verdict is Verdict.EXPOSED:
        return f"{held} guarantee(s) held; {exposed} documented exposure(s) demonstrated"
    return f"{held} assertion(s) held"
