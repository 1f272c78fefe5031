"""The list of sub-commands; add one import and one list entry per new command module."""

from __future__ import annotations

import click


def all_commands() -> list[click.Command]:
    commands: list[click.Command] = []
    return commands
