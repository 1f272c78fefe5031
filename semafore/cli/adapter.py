"""``semafore adapter``: the reference platform adapter on stdin/stdout (SPEC §7).

The same loop as the ``semafore-adapter`` script and ``python -m semafore.adapter``: a gate
can name any of the three (``--impl ref=semafore-adapter``), and none needs an activated
virtual environment, since the scripts are installed beside the interpreter and the gate
finds them there (issue #14 item 3; docs/adapter-contract.md).
"""

from __future__ import annotations

import sys

import click

from semafore.adapter.__main__ import main as serve_stdio


@click.command("adapter")
def command() -> None:
    """Serve the adapter contract (docs/adapter-contract.md) on stdin/stdout until EOF."""
    sys.exit(serve_stdio())
