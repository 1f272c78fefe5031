"""Scenario results, verdicts and their renderings (terminal, JUnit XML, JSON, HTML)."""

from simulator.report.model import (
    AdversaryView,
    AssertionResult,
    Outcome,
    ScenarioResult,
    SourceSummary,
    TimelineEvent,
    Verdict,
    decide,
    reason,
)

__all__ = [
    "AdversaryView", "AssertionResult", "Outcome", "ScenarioResult", "SourceSummary",
    "TimelineEvent", "Verdict", "decide", "reason",
]
