"""scripts/mutation_score.py: the score `make mutation` prints, and its gate (docs/mutation.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mutation_score.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_score", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


score_module = _load()

RESULTS = """\
    semafore.protocol.frame.x_parse__mutmut_1: killed
    semafore.protocol.frame.x_parse__mutmut_2: killed
    semafore.protocol.frame.x_parse__mutmut_3: timeout
    semafore.protocol.frame.x_parse__mutmut_4: survived
    semafore.protocol.keys.x_encode_key_id__mutmut_1: no tests
"""
STATS = {
    "killed": 2,
    "survived": 1,
    "total": 5,
    "no_tests": 1,
    "skipped": 0,
    "suspicious": 0,
    "timeout": 1,
    "segfault": 0,
}


def _run(tmp_path: Path, stats: dict[str, int], results: str, minimum: str) -> int:
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    (tmp_path / "results.txt").write_text(results)
    argv = ["--stats", str(tmp_path / "stats.json"), "--results", str(tmp_path / "results.txt")]
    code: int = score_module.main([*argv, "--min", minimum])
    return code


def test_timeouts_count_as_detected_and_every_other_mutant_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, STATS, RESULTS, "60") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "mutation score: 3/5 detected = 60.0%"
    assert "  semafore.protocol.frame.x_parse__mutmut_4: survived" in out
    assert "  semafore.protocol.keys.x_encode_key_id__mutmut_1: no tests" in out
    assert "x_parse__mutmut_3" not in out


def test_a_score_below_the_minimum_fails(tmp_path: Path) -> None:
    assert _run(tmp_path, STATS, RESULTS, "60.1") == 1


def test_skipped_mutants_leave_the_denominator(tmp_path: Path) -> None:
    stats = {**STATS, "total": 6, "skipped": 1}
    results = RESULTS + "    semafore.protocol.frame.x_parse__mutmut_9: skipped\n"
    parsed = score_module.parse_results(results)
    assert score_module.score(stats, parsed).percent == 60.0


@pytest.mark.parametrize(
    ("stats", "results", "field"),
    [
        ({**STATS, "killed": "2"}, RESULTS, "killed"),
        ({**STATS, "killed": 5}, RESULTS, "total"),
        (STATS, RESULTS + "    semafore.protocol.frame.x_parse__mutmut_5: killed\n", "results"),
        (STATS, RESULTS.replace("4: survived", "4: not checked"), "results"),
        ({**STATS, "killed": 3, "survived": 0}, RESULTS, "results"),
        (STATS, RESULTS.replace(": no tests", " no tests"), "results"),
    ],
    ids=["not-a-count", "more-detected-than-tested", "count", "unfinished", "mismatch", "line"],
)
def test_inconsistent_inputs_are_refused_naming_the_part(
    stats: dict[str, object], results: str, field: str
) -> None:
    with pytest.raises(score_module.ScoreInputError) as info:
        score_module.score(stats, score_module.parse_results(results))
    assert info.value.field == field
