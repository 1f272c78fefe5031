"""Entry point: ``semafore --help`` lists every sub-command.

Sub-command modules register themselves here (one import line each) so the top level stays a
flat, obvious list.
"""

from __future__ import annotations

import sys

import click

from semafore import __version__, shipped


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="semafore")
def cli() -> None:
    """SemaFore Sim: reference protocol, relay, simulator and interop gate."""


def _register() -> None:
    # One line per sub-command module; each module exposes ``command`` (a click command/group).
    from semafore.cli import commands

    for command in commands.all_commands():
        cli.add_command(command)


def main() -> None:
    _register()
    try:
        cli(prog_name="semafore")
    except shipped.ShippedDataMissing as exc:
        # a broken installation, not a bug: say what is missing and where it was looked for
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
