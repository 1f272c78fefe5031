"""The library's own sub-commands: one row per command module, loaded when used.

Each row maps a command name to the ``module:attribute`` of its :class:`click.Command`. The
top-level group (:mod:`semafore.cli.main`) imports a command's module only when that command
is invoked or ``--help`` lists it: ``semafore serve`` does not pay for the gate's adapters or
the oracle's decoders (importing every module up front cost about a second on each start-up,
which every subprocess a test or a CI gate launches paid again).

Commands of packages built on the library (``semafore sim``, ``demo``, ``load``) are not
listed here: they arrive through the ``semafore.commands`` entry points, so the library never
imports the simulator or the load tests (docs/architecture.md "Layers").
"""

from __future__ import annotations

import importlib

import click

LIBRARY_COMMANDS: dict[str, str] = {
    "adapter": "semafore.cli.adapter:command",
    "backends": "semafore.cli.backends:command",
    "gate": "semafore.cli.gate:command",
    "oracle": "semafore.cli.oracle:command",
    "serve": "semafore.cli.serve:command",
    "vectors": "semafore.cli.vectors:command",
}
"""Command name → ``module:attribute``; add one row per new command module."""


def load(name: str) -> click.Command:
    """The library command ``name``, importing its module now. A missing row is a
    :class:`KeyError`; a row that names no command is a :class:`TypeError` (a packaging bug,
    pinned by tests/cli/test_library_commands.py, never a user error)."""
    module, _, attribute = LIBRARY_COMMANDS[name].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command) or command.name != name:
        raise TypeError(f"{LIBRARY_COMMANDS[name]} is not the click command {name!r}")
    return command


def all_commands() -> list[click.Command]:
    """Every library command, each module imported (``--help`` listings and tests)."""
    return [load(name) for name in LIBRARY_COMMANDS]
