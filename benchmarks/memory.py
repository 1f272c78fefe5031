"""Peak resident memory of this process image, for the bounded-memory figures (issue #12 item
3: "a 2 GB log scans with under 500 MB RSS").

Why not ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: Linux keeps that high-water mark
across ``execve``, so a child started by ``fork`` + ``exec`` from a large parent (a pytest
worker holding 700 MB) reports the parent's peak as its own; a bounded-memory test then
compares a 1 MB baseline of 722 MB with itself (seen in CI at 22:30 on 2026-12-06). ``VmHWM``
in ``/proc/self/status`` is the high-water mark of the current address space only, which a
new program image starts afresh.
"""

from __future__ import annotations

import resource
from pathlib import Path

STATUS = Path("/proc/self/status")


def peak_rss_mb() -> float:
    """The peak RSS of this process image in MB (``VmHWM``); where ``/proc`` has no status
    (not Linux) the ``ru_maxrss`` figure, with the caveat above."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
