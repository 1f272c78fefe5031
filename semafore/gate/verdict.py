"""What the gate concludes about one case on one adapter."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Verdict(enum.StrEnum):
    """One verdict per (adapter, case). Only ``PASS`` and ``XFAIL`` keep the gate green."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"  # the adapter answered, but the answer diverges from the vector
    UNSUPPORTED = "unsupported"  # the adapter said "Unsupported" (never a pass, SPEC §7)
    CRASH = "crash"  # the process exited or closed its stdout mid-case
    TIMEOUT = "timeout"  # no answer within the per-case budget; the process was killed
    PROTOCOL = "protocol"  # garbage on stdout, wrong id, or a malformed response object
    XFAIL = "xfail"  # failed, and a live entry of the gate configuration expects it
    XPASS = "xpass"  # passed although an entry expects it to fail (entry can be removed)

    @property
    def is_failure(self) -> bool:
        """Failing verdicts before the expected-failures configuration is applied."""
        return self in _FAILING

    @property
    def blocks_gate(self) -> bool:
        """Verdicts that make the gate exit non-zero after configuration was applied."""
        return self in _FAILING


_FAILING = frozenset(
    {Verdict.FAIL, Verdict.UNSUPPORTED, Verdict.CRASH, Verdict.TIMEOUT, Verdict.PROTOCOL}
)


@dataclass
class CaseResult:
    """The outcome of one vector case on one adapter; ``step`` is the failing exchange."""

    impl: str
    case_id: str
    file: str
    verdict: Verdict
    detail: str = ""
    step: int | None = None
    op: str | None = None
    expected: Any = None
    actual: Any = None
    duration_s: float = 0.0
    expected_failure: dict[str, Any] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "case": self.case_id,
            "file": self.file,
            "verdict": self.verdict.value,
            "duration_ms": round(self.duration_s * 1000, 3),
        }
        if self.detail:
            out["detail"] = self.detail
        if self.step is not None:
            out["step"] = self.step
            out["op"] = self.op
        if self.expected is not None:
            out["expected"] = self.expected
        if self.actual is not None:
            out["actual"] = self.actual
        if self.expected_failure is not None:
            out["expected_failure"] = self.expected_failure
        return out
