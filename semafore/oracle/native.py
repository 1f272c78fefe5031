"""The compiled hot paths of the oracle (``semafore/oracle/_fast.c``; docs/oracle.md "Cost",
issue #12 item 3), and the switch between them and the pure-Python/numpy reference.

The extension is built with the package (``setup.py``, ``ext_modules``). Each of its functions
is the exact counterpart of a reference function that stays in :mod:`.matcher`, :mod:`.radix`
and :mod:`.decoders`; ``tests/oracle/test_compiled.py`` checks they agree, bit for bit and hit
for hit, and fuzzes the C entry points. The engine uses the extension whenever it is
importable. Where it is not (a checkout not reinstalled since the C source changed, no
compiler), the reference runs and this says so once through :mod:`logging`; in CI
(``CI=true``) a test asserts the extension is built and in use, so a broken build fails there
instead of slowing the suite silently.

Tables are not copied into C: :mod:`.decoders` hands the extension its fixed-Huffman tables at
import (``init_deflate``), :mod:`.radix` passes its pair tables and magics with each call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["API", "BUILT", "FUNCTIONS", "REASON", "ext", "on", "reference"]

API = 1
"""The interface version this Python side expects of the extension (``_fast.API``): a stale
build of an older source is not used."""

FUNCTIONS = ("window_candidates", "near_filter", "pair_candidates", "nested_candidates",
             "init_deflate", "plausible_rows", "plausible_at", "heads", "shifted",
             "exact_magics", "symbols", "pack", "base85_alignments", "number_runs",
             "zero_lanes", "table_runs")
"""What the Python side calls: a build of an older source that lacks one is not used (an
editable install is not rebuilt when only ``_fast.c`` changes)."""

_log = logging.getLogger(__name__)

try:
    from semafore.oracle import _fast as ext
except ImportError as exc:  # not built: the reference runs
    ext = None  # type: ignore[assignment]
    REASON = f"not built ({exc})"
else:
    REASON = ""
    missing = [name for name in FUNCTIONS if not hasattr(ext, name)]
    if getattr(ext, "API", None) != API or missing:
        REASON = (f"a stale build (API {getattr(ext, 'API', None)}, expected {API}; "
                  f"missing {', '.join(missing) or 'nothing'})")
        ext = None  # type: ignore[assignment]

BUILT: bool = ext is not None
if not BUILT:
    _log.warning("semafore.oracle._fast is %s: the oracle runs its pure-Python reference "
                 "path (several times slower); reinstall with `pip install -e .` to build it",
                 REASON)


class _Switch:
    enabled: bool = BUILT


def on() -> bool:
    """Whether the compiled paths run (built, and not switched off by :func:`reference`)."""
    return _Switch.enabled


@contextlib.contextmanager
def reference() -> Iterator[None]:
    """Run the pure-Python/numpy reference paths inside the block (the differential tests and
    the benchmark's same-run comparison)."""
    before = _Switch.enabled
    _Switch.enabled = False
    try:
        yield
    finally:
        _Switch.enabled = before
