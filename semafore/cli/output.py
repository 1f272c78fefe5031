"""The consoles every sub-command prints through: rich on a terminal, plain lines elsewhere.

Rich hard-wraps at 80 columns when its output is not a terminal (a pipe, a CI log, a file), so
``file:line:col: key: message`` error lines and report paths were split across lines and no
longer matched by ``grep`` or an editor's error parser (issue #14 item 5). Off a terminal every
``print`` is one unwrapped line (``soft_wrap``); colour is already off there. On a terminal
nothing changes.
"""

from __future__ import annotations

import sys

from rich.console import Console


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that wraps only when that stream is a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=not stream.isatty())
