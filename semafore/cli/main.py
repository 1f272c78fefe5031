"""Entry point: ``semafore --help`` lists every sub-command.

The library's own sub-commands are listed in :mod:`semafore.cli.commands` and imported only
when invoked or listed. Packages built on
the library add theirs through the ``semafore.commands`` entry-point group (issue 14 item 2):
the simulator contributes ``semafore sim`` and ``semafore demo``, the load tests ``semafore
load`` (pyproject.toml ``[project.entry-points."semafore.commands"]``). The library never
imports them (docs/architecture.md "Layers"): a contributed command is loaded by name from
the installed metadata only when it is invoked or listed, and one that cannot be loaded is
reported as such, not as a traceback, while every other command keeps working.
"""

from __future__ import annotations

import sys
from importlib import metadata

import click

from semafore import __version__, shipped
from semafore.cli import commands

COMMAND_GROUP = "semafore.commands"
"""Entry-point group through which other packages contribute ``semafore`` sub-commands; each
entry point names a :class:`click.Command` (``name = "package.module:command"``)."""


class ContributedCommandUnavailable(click.ClickException):
    """A contributed sub-command exists in the installed metadata but cannot be loaded (its
    package is missing or broken): exit status 2, like a usage error."""

    exit_code = 2


def contributed() -> dict[str, metadata.EntryPoint]:
    """The installed ``semafore.commands`` entry points by command name."""
    return {entry.name: entry for entry in metadata.entry_points(group=COMMAND_GROUP)}


def _unavailable(name: str, entry: metadata.EntryPoint, reason: str) -> click.Command:
    """A stand-in for a contributed command that failed to load: listed in ``--help`` with
    the reason, and failing with it (exit 2) when invoked."""

    def fail() -> None:
        raise ContributedCommandUnavailable(
            f"'semafore {name}' is contributed by {entry.value} (entry point group "
            f"{COMMAND_GROUP}), which cannot be loaded: {reason}")

    return click.Command(name, callback=fail, short_help=f"(unavailable: {reason})",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})


class SemaforeGroup(click.Group):
    """The top-level group: the library's commands, then the contributed ones by name."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *commands.LIBRARY_COMMANDS, *contributed()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = super().get_command(ctx, cmd_name)
        if own is not None:
            return own
        if cmd_name in commands.LIBRARY_COMMANDS:  # never replaced by a contribution
            return commands.load(cmd_name)
        entry = contributed().get(cmd_name)
        if entry is None:
            return None
        try:
            loaded = entry.load()
        except Exception as exc:  # any failure to import the contributor is reported as such
            return _unavailable(cmd_name, entry, f"{type(exc).__name__}: {exc}")
        if not isinstance(loaded, click.Command):
            return _unavailable(cmd_name, entry,
                                f"{entry.value} is a {type(loaded).__name__}, not a click command")
        return loaded


@click.group(cls=SemaforeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="semafore")
def cli() -> None:
    """SemaFore Sim: reference protocol, relay, simulator and interop gate."""


def main() -> None:
    try:
        cli(prog_name="semafore")
    except shipped.ShippedDataMissing as exc:
        # a broken installation, not a bug: say what is missing and where it was looked for
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
