"""The mutation score of a finished mutmut run, and every mutant the tests did not kill.

Reads what ``mutmut export-cicd-stats`` and ``mutmut results --all true`` wrote (see
scripts/mutation.sh, docs/mutation.md). The score follows mutmut's own badge: a mutant is
detected when a test failed (``killed``) or the run hit the time limit (``timeout``, e.g. a
mutated loop bound that never ends); the denominator is every mutant mutmut generated minus
the ones it was told to skip. Survivors, ``no tests`` and ``suspicious`` mutants all count
against the score and are listed by name, so each can be killed by a test or justified.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

DETECTED = ("killed", "timeout")
"""Statuses (as ``mutmut results`` spells them) that count as detected."""
COUNTED = ("killed", "timeout", "survived", "no_tests", "suspicious", "segfault")
"""Fields of mutmut-cicd-stats.json that the score reports."""


class ScoreInputError(ValueError):
    """A stats or results file that is not what mutmut writes; ``field`` names the part."""

    def __init__(self, detail: str, *, field: str) -> None:
        self.field = field
        super().__init__(f"{detail} (field: {field})")


@dataclass(frozen=True)
class Score:
    detected: int
    tested: int
    counts: dict[str, int]
    undetected: list[tuple[str, str]]

    @property
    def percent(self) -> float:
        return 100.0 * self.detected / self.tested if self.tested else 0.0


def parse_results(text: str) -> list[tuple[str, str]]:
    """``    <mutant name>: <status>`` lines → (name, status) pairs."""
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, status = line.strip().rpartition(": ")
        if not sep or not name:
            raise ScoreInputError(f"line {number} is not '<mutant>: <status>'", field="results")
        pairs.append((name, status))
    return pairs


def score(stats: dict[str, object], results: list[tuple[str, str]]) -> Score:
    counts = {}
    for key in (*COUNTED, "total", "skipped"):
        value = stats.get(key)
        if not isinstance(value, int) or value < 0:
            raise ScoreInputError(f"{key} must be a count, got {value!r}", field=key)
        counts[key] = value
    tested = counts["total"] - counts["skipped"]
    detected = counts["killed"] + counts["timeout"]
    if detected > tested:
        raise ScoreInputError("more mutants detected than tested", field="total")
    if tested and len(results) != counts["total"]:
        raise ScoreInputError(
            f"{len(results)} results listed for {counts['total']} mutants", field="results"
        )
    unchecked = sum(1 for _, status in results if status == "not checked")
    if unchecked:
        raise ScoreInputError(f"{unchecked} mutants not checked: rerun mutmut", field="results")
    undetected = sorted((n, s) for n, s in results if s not in (*DETECTED, "skipped"))
    if len(undetected) != tested - detected:
        raise ScoreInputError(
            f"{len(undetected)} undetected mutants listed, stats say {tested - detected}",
            field="results",
        )
    return Score(detected, tested, counts, undetected)


def report(result: Score) -> str:
    c = result.counts
    lines = [
        f"mutation score: {result.detected}/{result.tested} detected = {result.percent:.1f}%",
        f"  killed {c['killed']}, timeout {c['timeout']}, survived {c['survived']}, "
        f"no tests {c['no_tests']}, suspicious {c['suspicious']}, segfault {c['segfault']}, "
        f"skipped {c['skipped']}",
    ]
    if result.undetected:
        lines.append("not detected (kill with a test or justify in docs/mutation.md):")
        lines += [f"  {name}: {status}" for name, status in result.undetected]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats", type=Path, required=True, help="mutmut-cicd-stats.json")
    parser.add_argument("--results", type=Path, required=True, help="mutmut results --all true")
    parser.add_argument("--min", type=float, default=95.0, help="lowest passing score, percent")
    args = parser.parse_args(argv)
    stats = json.loads(args.stats.read_text(encoding="utf-8"))
    if not isinstance(stats, dict):
        raise ScoreInputError("stats must be a JSON object", field="stats")
    result = score(stats, parse_results(args.results.read_text(encoding="utf-8")))
    print(report(result))
    if result.percent < args.min:
        print(f"below the minimum of {args.min:.1f}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
