"""Running gate cases against adapters and applying the expected-failures configuration.

Every adapter is one long-lived process; a case gets one deadline for all its exchanges.
After ``max_consecutive`` crashes/timeouts in a row the remaining cases of that adapter are
marked without running, so a dead or hanging adapter costs seconds, not cases × timeout.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from semafore.gate.cases import GateCase, first_difference, resolve
from semafore.gate.config import ExpectedFailure, GateConfig, unused_entries
from semafore.gate.transport import AdapterFailure, AdapterProcess, Transport
from semafore.gate.verdict import CaseResult, Verdict
from semafore.protocol.errors import CANONICAL_ERRORS

DEFAULT_TIMEOUT_S = 20.0
DEFAULT_MAX_CONSECUTIVE = 3


@dataclass(frozen=True)
class Impl:
    """An adapter under test: ``NAME=COMMAND`` on the command line."""

    name: str
    command: str

    @classmethod
    def parse(cls, spec: str) -> Impl:
        name, sep, command = spec.partition("=")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"--impl must be NAME=COMMAND, got {spec!r}")
        return cls(name.strip(), command.strip())


@dataclass
class ImplReport:
    name: str
    command: str
    capabilities: dict[str, Any] | None = None
    capabilities_error: str | None = None
    results: list[CaseResult] = field(default_factory=list)
    starts: int = 0

    def counts(self) -> dict[str, int]:
        counted = Counter(result.verdict.value for result in self.results)
        return {verdict.value: counted.get(verdict.value, 0) for verdict in Verdict}

    @property
    def failures(self) -> list[CaseResult]:
        return [result for result in self.results if result.verdict.blocks_gate]


@dataclass
class GateReport:
    impls: list[ImplReport]
    config: GateConfig
    today: dt.date
    vectors: list[dict[str, Any]] = field(default_factory=list)
    expired: list[ExpectedFailure] = field(default_factory=list)
    unused: list[ExpectedFailure] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.expired and all(not impl.failures for impl in self.impls)

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": "semafore-interop",
            "verdict": "pass" if self.passed else "fail",
            "date": self.today.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "vectors": self.vectors,
            "config": {
                "source": self.config.source,
                "expired": [entry.to_json() for entry in self.expired],
                "unused": [entry.to_json() for entry in self.unused],
            },
            "impls": [
                {
                    "name": impl.name,
                    "command": impl.command,
                    "capabilities": impl.capabilities,
                    "capabilities_error": impl.capabilities_error,
                    "process_starts": impl.starts,
                    "counts": impl.counts(),
                    "cases": [result.to_json() for result in impl.results],
                }
                for impl in self.impls
            ],
        }


def run_case(transport: Transport, case: GateCase, impl: str, timeout_s: float) -> CaseResult:
    """Run one case's exchanges in order; the first divergence decides the verdict."""
    started = time.monotonic()
    deadline = started + timeout_s
    bound: dict[str, Any] = {}

    def result(
        verdict: Verdict, detail: str = "", step: int | None = None, **kw: Any
    ) -> CaseResult:
        return CaseResult(
            impl,
            case.full_id,
            case.file,
            verdict,
            detail,
            step,
            case.exchanges[step].op if step is not None else None,
            duration_s=time.monotonic() - started,
            **kw,
        )

    for index, exchange in enumerate(case.exchanges):
        where = f"{exchange.op}" + (f" ({exchange.label})" if exchange.label else "")
        args = resolve(exchange.args, bound)
        try:
            response = transport.request(exchange.op, args, deadline)
        except AdapterFailure as failure:
            return result(failure.verdict, f"{where}: {failure.detail}", index)
        if response["ok"] is False:
            error, detail = response["error"], response.get("detail", "")
            if error == "Unsupported":
                return result(Verdict.UNSUPPORTED, f"{where}: Unsupported {detail}".rstrip(), index)
            if error not in CANONICAL_ERRORS:
                return result(
                    Verdict.PROTOCOL, f"{where}: error {error!r} is not a SPEC §5 name", index
                )
            if exchange.expect_error == error:
                continue
            wanted = (
                f"expected error {exchange.expect_error}"
                if exchange.expect_error
                else "expected success"
            )
            return result(
                Verdict.FAIL,
                f"{where}: {wanted}, got {error}: {detail}".rstrip(": "),
                index,
                expected=exchange.expect_error or dict(exchange.expect or {}),
                actual={"error": error, "detail": detail},
            )
        answer = response["result"]
        if exchange.expect_error is not None:
            return result(
                Verdict.FAIL,
                f"{where}: accepted input that must fail with {exchange.expect_error}",
                index,
                expected=exchange.expect_error,
                actual=answer,
            )
        if exchange.expect is not None:
            difference = first_difference(exchange.expect, answer)
            if difference is not None:
                return result(
                    Verdict.FAIL,
                    f"{where}: {difference}",
                    index,
                    expected=dict(exchange.expect),
                    actual={key: answer.get(key) for key in exchange.expect},
                )
        if exchange.bind is not None:
            name, key = exchange.bind
            if key not in answer:
                return result(Verdict.FAIL, f"{where}: result lacks field {key!r}", index)
            bound[name] = answer[key]
    return result(Verdict.PASS)


def apply_config(result: CaseResult, config: GateConfig) -> ExpectedFailure | None:
    """Turn a declared failure into ``xfail`` (and a declared pass into ``xpass``)."""
    if result.verdict is Verdict.PASS:
        entry = config.find(result.impl, result.case_id)
        if entry is not None:
            result.verdict = Verdict.XPASS
            result.expected_failure = entry.to_json()
            result.detail = f"passes although expected to fail ({entry.reason})"
        return entry
    if result.verdict.is_failure:
        entry = config.find(result.impl, result.case_id, result.verdict)
        if entry is not None:
            result.detail = f"[was {result.verdict.value}] {result.detail}"
            result.verdict = Verdict.XFAIL
            result.expected_failure = entry.to_json()
        return entry
    return None


ProgressCallback = Callable[[str, GateCase, CaseResult], None]


def probe_capabilities(transport: Transport, timeout_s: float) -> dict[str, Any]:
    response = transport.request("capabilities", {}, time.monotonic() + timeout_s)
    if response["ok"] is not True:
        raise AdapterFailure(
            Verdict.PROTOCOL, f"capabilities failed: {response['error']} {response.get('detail')}"
        )
    caps: dict[str, Any] = response["result"]
    if not isinstance(caps.get("ops"), list) or not all(isinstance(o, str) for o in caps["ops"]):
        raise AdapterFailure(Verdict.PROTOCOL, "capabilities.ops must be a list of strings")
    return caps


def run_impl(
    impl: Impl,
    cases: Sequence[GateCase],
    config: GateConfig,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_consecutive: int = DEFAULT_MAX_CONSECUTIVE,
    progress: ProgressCallback | None = None,
    transport: Transport | None = None,
    applied: list[ExpectedFailure] | None = None,
) -> ImplReport:
    report = ImplReport(impl.name, impl.command)
    own = transport is None
    live: Transport = transport if transport is not None else AdapterProcess(impl.command)
    try:
        try:
            report.capabilities = probe_capabilities(live, timeout_s)
        except AdapterFailure as failure:
            report.capabilities_error = failure.detail
        ops = frozenset(report.capabilities["ops"]) if report.capabilities is not None else None
        streak: list[CaseResult] = []
        for case in cases:
            if len(streak) >= max_consecutive:
                last = streak[-1]
                result = CaseResult(
                    impl.name,
                    case.full_id,
                    case.file,
                    last.verdict,
                    f"not run: {len(streak)} cases in a row ended in {last.verdict.value} "
                    f"(last: {last.case_id}: {last.detail})",
                )
            elif ops is not None and not case.ops <= ops:
                missing = ", ".join(sorted(case.ops - ops))
                result = CaseResult(
                    impl.name,
                    case.full_id,
                    case.file,
                    Verdict.UNSUPPORTED,
                    f"capabilities do not list: {missing}",
                )
            else:
                result = run_case(live, case, impl.name, timeout_s)
                if result.verdict in (Verdict.CRASH, Verdict.TIMEOUT):
                    streak.append(result)
                else:
                    streak.clear()
            entry = apply_config(result, config)
            if entry is not None and applied is not None:
                applied.append(entry)
            report.results.append(result)
            if progress is not None:
                progress(impl.name, case, result)
    finally:
        if own and isinstance(live, AdapterProcess):
            report.starts = live.starts
            live.stop()
    return report


def run_gate(
    impls: Sequence[Impl],
    cases: Sequence[GateCase],
    config: GateConfig,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_consecutive: int = DEFAULT_MAX_CONSECUTIVE,
    today: dt.date | None = None,
    progress: ProgressCallback | None = None,
    vectors: list[dict[str, Any]] | None = None,
) -> GateReport:
    started = time.monotonic()
    today = today or dt.datetime.now(dt.UTC).date()
    applied: list[ExpectedFailure] = []
    reports = [
        run_impl(
            impl,
            cases,
            config,
            timeout_s=timeout_s,
            max_consecutive=max_consecutive,
            progress=progress,
            applied=applied,
        )
        for impl in impls
    ]
    return GateReport(
        reports,
        config,
        today,
        vectors or [],
        expired=config.expired(today),
        unused=unused_entries(config, applied),
        duration_s=time.monotonic() - started,
    )
