"""The consoles every sub-command prints through: rich on a terminal, plain lines elsewhere.

Rich hard-wraps at 80 columns when its output is not a terminal (a pipe, a CI log, a file), so
``file:line:col: key: message`` error lines and report paths were split across lines and no
longer matched by ``grep`` or an editor's error parser, and tables folded every cell (issue #14
item 5). Off a terminal every ``print`` is one unwrapped line (``soft_wrap``) and tables take
their natural width; colour is already off there. On a terminal nothing changes.
"""

from __future__ import annotations

import sys

from rich.console import Console

PLAIN_WIDTH = 4096
"""Off a terminal: wide enough that no table column is folded and no line is wrapped."""


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that wraps only when that stream is a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=True, width=PLAIN_WIDTH)


def section(out: Console, title: str) -> None:
    """A section heading: a full-width rule on a terminal, one short line elsewhere (a rule
    as wide as :data:`PLAIN_WIDTH` would be noise in a log)."""
    if out.is_terminal:
        out.rule(title)
    else:
        out.print(f"── {title} ──", markup=False, highlight=False)
