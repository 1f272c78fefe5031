"""The import contracts (issue 14 item 2, docs/architecture.md "Layers") hold, and break when
they should.

``lint-imports`` reads the contracts from pyproject.toml ``[tool.importlinter]``: the library
never imports the simulator or the load tests, those two never import each other, the
library's packages form layers with no upward import, and the storage ports import no
adapter. The first test runs it on this tree (scripts/test.sh runs it too, before pytest).
The others copy the three packages and inject one forbidden import each into the copy: each
must turn the run red and name the contract it breaks, so a contract that cannot fail (a
misspelt layer, a module name that matches nothing) is caught here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("semafore", "simulator", "loadtests")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the packages under ``root`` (put first on the import path, so a
    copy shadows the installed checkout), without a cache."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def inject(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_contracts_hold_on_this_tree() -> None:
    run = lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Contracts: 4 kept, 0 broken." in run.stdout


def test_an_unchanged_copy_passes(tree: Path) -> None:
    run = lint(tree)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(("module", "line", "contract", "edge"), [
    ("semafore.gate.runner", "import simulator.fleet",
     "never imports the simulator", "semafore.gate.runner -> simulator.fleet"),
    ("semafore.cli.gate", "import loadtests.profile",
     "never imports the simulator or the load tests", "semafore.cli.gate -> loadtests.profile"),
    ("loadtests.profile", "import simulator.scenario",
     "independent of each other", "loadtests.profile -> simulator.scenario"),
    ("semafore.protocol.x3dh", "import semafore.server.settings",
     "Layers of the library", "semafore.protocol.x3dh -> semafore.server.settings"),
    ("semafore.client.device", "import semafore.server.relay",
     "Layers of the library", "semafore.client.device -> semafore.server.relay"),
    ("semafore.storage.ports", "import semafore.storage.memory",
     "the ports import no adapter", "semafore.storage.ports -> semafore.storage.memory"),
])
def test_an_injected_import_breaks_its_contract(
    tree: Path, module: str, line: str, contract: str, edge: str
) -> None:
    inject(tree, module, line)
    run = lint(tree)
    assert run.returncode != 0, run.stdout
    report = " ".join(run.stdout.split())
    assert contract in report.split("Broken contracts")[-1], run.stdout
    assert edge in report, run.stdout
