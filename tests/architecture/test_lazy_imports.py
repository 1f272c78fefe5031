"""Imports sit at the top of a module (ruff PLC0415 on for semafore/, simulator/, loadtests/;
issue 14 item 2, docs/architecture.md "Imports inside functions").

Ruff runs in CI (scripts/test.sh); these tests pin the configuration it runs with: a
function-level import in the library is an error, one kept on purpose says why on its line,
and tests/ stay exempt. Every kept lazy import in the three packages must give its reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")
LAZY = "def chart() -> None:\n    import json\n\n    json.dumps({})\n"
NOQA = re.compile(r"#\s*noqa:\s*PLC0415\b(?P<rest>.*)$")


def ruff_on(text: str, as_path: str) -> subprocess.CompletedProcess[str]:
    """``ruff check`` with the repository's configuration, on ``text`` as if it were the
    file ``as_path`` (per-file rules apply by path)."""
    return subprocess.run(
        [str(RUFF), "check", "--no-cache", "--select", "PLC0415,RUF100", "--output-format",
         "concise", "--stdin-filename", as_path, "-"],
        cwd=ROOT, input=text, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("where", ["semafore/gate/example.py", "simulator/example.py",
                                   "loadtests/example.py"])
def test_a_function_level_import_is_an_error_in_the_packages(where: str) -> None:
    run = ruff_on(LAZY, where)
    assert run.returncode == 1 and "PLC0415" in run.stdout, run.stdout


def test_a_kept_lazy_import_names_its_reason_and_passes() -> None:
    kept = LAZY.replace("import json", "import json  # noqa: PLC0415 (why: heavy)")
    run = ruff_on(kept, "semafore/gate/example.py")
    assert run.returncode == 0, run.stdout


def test_tests_are_exempt() -> None:
    assert ruff_on(LAZY, "tests/example_test.py").returncode == 0


def test_every_kept_lazy_import_in_the_packages_gives_its_reason() -> None:
    bare = []
    for package in ("semafore", "simulator", "loadtests"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                found = NOQA.search(line)
                if found and not re.match(r"\s*\(.{8,}\)", found.group("rest")):
                    bare.append(f"{path.relative_to(ROOT)}:{number}")
    assert bare == [], f"noqa: PLC0415 without a reason in parentheses: {bare}"
