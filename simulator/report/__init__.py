"""Scenario results, verdicts and their renderings (terminal, JUnit XML, JSON, HTML)."""

from simulator.report.html import to_html
from simulator.report.machine import summary, to_json, to_junit
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
from simulator.report.terminal import render, verdict_table

__all__ = [
    "AdversaryView", "AssertionResult", "Outcome", "ScenarioResult", "SourceSummary",
    "TimelineEvent", "Verdict", "decide", "reason", "render", "summary", "to_html", "to_json",
    "to_junit", "verdict_table",
]
