"""The library's own sub-commands are a table of ``module:attribute`` rows loaded on use
(:mod:`semafore.cli.commands`): every row names its command, ``--help`` lists them all, and
starting one command does not import the others' modules."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from semafore.cli import commands
from semafore.cli.main import cli


@pytest.mark.parametrize("name", sorted(commands.LIBRARY_COMMANDS))
def test_every_row_loads_the_command_it_names(name: str) -> None:
    command = commands.load(name)
    assert isinstance(command, click.Command) and command.name == name
    assert CliRunner().invoke(cli, [name, "--help"]).exit_code == 0


def test_help_lists_every_library_command() -> None:
    listing = CliRunner().invoke(cli, ["--help"])
    assert listing.exit_code == 0
    for name in commands.LIBRARY_COMMANDS:
        assert f"\n  {name} " in listing.output


def test_a_row_that_names_another_command_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(commands.LIBRARY_COMMANDS, "gate", "semafore.cli.vectors:command")
    with pytest.raises(TypeError, match="not the click command 'gate'"):
        commands.load("gate")


def test_running_one_command_imports_no_other_command_module() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from semafore.cli.main import cli\n"
        "assert CliRunner().invoke(cli, ['vectors', '--help']).exit_code == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    loaded = set(run.stdout.split())
    modules = {row.partition(":")[0] for row in commands.LIBRARY_COMMANDS.values()}
    assert modules & loaded == {"semafore.cli.vectors"}
