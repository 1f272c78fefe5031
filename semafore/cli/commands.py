"""The list of sub-commands; add one import and one list entry per new command module."""

from __future__ import annotations

import click

from semafore.cli import adapter, backends, demo, gate, load, oracle, serve, sim, vectors


def all_commands() -> list[click.Command]:
    commands: list[click.Command] = [
        adapter.command, backends.command,
        demo.command, gate.command, load.command, oracle.command, serve.command, sim.command,
        vectors.command,
    ]
    return commands
