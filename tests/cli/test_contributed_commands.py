"""``semafore`` sub-commands contributed through the ``semafore.commands`` entry points
(issue 14 item 2): the simulator adds ``sim`` and ``demo``, the load tests add ``load``, and the
library loads them by name from the installed metadata, never by importing those packages
itself. A contributor that cannot be loaded is an error message and exit status 2, not a
traceback, and every other command keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest
from click.testing import CliRunner

from semafore.cli import main as entry
from semafore.cli.main import COMMAND_GROUP, cli


def fake(monkeypatch: pytest.MonkeyPatch, **targets: str) -> None:
    points = {name: metadata.EntryPoint(name, value, COMMAND_GROUP)
              for name, value in targets.items()}
    monkeypatch.setattr(entry, "contributed", lambda: points)


def test_the_installed_distribution_contributes_sim_demo_and_load() -> None:
    assert {name: e.value for name, e in entry.contributed().items()} == {
        "sim": "simulator.cli.sim:command",
        "demo": "simulator.cli.demo:command",
        "load": "loadtests.cli:command",
    }
    listing = CliRunner().invoke(cli, ["--help"])
    assert listing.exit_code == 0
    for name in ("adapter", "gate", "serve", "vectors", "sim", "demo", "load"):
        assert f"\n  {name} " in listing.output


def test_a_contributed_group_runs_through_the_entry_point() -> None:
    out = CliRunner().invoke(cli, ["sim", "schema"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["title"]


def test_a_contributor_that_cannot_be_imported_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake(monkeypatch, sim="no_such_simulator.cli:command")
    out = CliRunner().invoke(cli, ["sim", "run", "scenarios/"])
    assert out.exit_code == 2
    assert "'semafore sim' is contributed by no_such_simulator.cli:command" in out.output
    assert "ModuleNotFoundError" in out.output and "Traceback" not in out.output
    listing = CliRunner().invoke(cli, ["--help"])
    assert listing.exit_code == 0 and "(unavailable: ModuleNotFoundError" in listing.output
    assert CliRunner().invoke(cli, ["vectors", "--help"]).exit_code == 0


def test_an_entry_point_that_is_not_a_command_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch, version="semafore:__version__")
    out = CliRunner().invoke(cli, ["version"])
    assert out.exit_code == 2
    assert "semafore:__version__ is a str, not a click command" in out.output


def test_a_contribution_never_replaces_a_library_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch, gate="no_such_package:command")
    out = CliRunner().invoke(cli, ["gate", "--help"])
    assert out.exit_code == 0 and "adapter" in out.output


def test_an_unknown_command_is_still_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch)
    out = CliRunner().invoke(cli, ["sim"])
    assert out.exit_code == 2 and "No such command 'sim'" in out.output


def test_the_library_cli_loads_neither_the_simulator_nor_the_load_tests() -> None:
    """At run time too (import-linter sees static imports only): listing and running a
    library command leaves both packages unimported."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from semafore.cli.main import cli\n"
        "assert CliRunner().invoke(cli, ['vectors', '--help']).exit_code == 0\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'simulator', 'loadtests'}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert run.stdout.strip() == "[]"
