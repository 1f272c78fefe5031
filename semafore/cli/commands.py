"""The library's own sub-commands; add one import and one list entry per new command module.

Commands of packages built on the library (``semafore sim``, ``demo``, ``load``) are not
listed here: they arrive through the ``semafore.commands`` entry points
(:mod:`semafore.cli.main`), so the library never imports the simulator or the load tests.
"""

from __future__ import annotations

import click

from semafore.cli import adapter, backends, gate, oracle, serve, vectors


def all_commands() -> list[click.Command]:
    commands: list[click.Command] = [
        adapter.command, backends.command, gate.command, oracle.command, serve.command,
        vectors.command,
    ]
    return commands
