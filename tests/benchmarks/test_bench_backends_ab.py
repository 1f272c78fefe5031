"""``bench_backends --ab``'s premise: a relay process started inside ``_tree(path)`` imports the
source tree at ``path``, not this checkout (installed editable), else an A/B would compare a
tree with itself; and the benchmark's own environment is left as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_backends import _tree


def imported_semafore(cwd: Path) -> Path:
    out = subprocess.run(
        [sys.executable, "-c", "import semafore; print(semafore.__file__)"],
        cwd=cwd, capture_output=True, text=True, check=True, timeout=60,
    )
    return Path(out.stdout.strip()).resolve()


def test_a_child_started_in_another_tree_imports_that_tree(tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "semafore").mkdir(parents=True)
    (other / "semafore" / "__init__.py").write_text('"""another tree"""\n')
    neutral = tmp_path / "run"
    neutral.mkdir()
    before = os.environ.get("PYTHONPATH")
    with _tree(other):
        assert imported_semafore(neutral) == (other / "semafore" / "__init__.py").resolve()
    assert os.environ.get("PYTHONPATH") == before
    with _tree(None):
        assert other not in imported_semafore(neutral).parents
