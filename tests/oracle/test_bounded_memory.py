"""Memory is bounded by construction (issue #12 item 3, docs/oracle.md "Records, blocks,
cross-record matches, memory"): a 200 MB log stream is scanned, in a child process, with a
peak resident set far below the stream's size, and the leaks planted across the first block
boundary and in the very last line are found.

The child is ``benchmarks.bench_oracle --stream-gb`` (lines generated as they are read,
never held whole). One block in 32 is real relay lines (JSON, hex digests, base64 bodies:
the decoders' temporaries at their usual size), the rest filler lines that decode to
nothing, so the run costs seconds, not the half hour of 200 MB of real lines. The bound:
what the child holds with no input at all plus 128 MB — a scanner that kept the stream, or
any fixed fraction of it above 2/3, would exceed it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STREAM_MB = 200
HEADROOM_MB = 128


def _child(tmp_path: Path, megabytes: float) -> dict[str, object]:
    out = tmp_path / f"stream-{megabytes}.json"
    subprocess.run(
        ["nice", "-n", "10", sys.executable, "-m", "benchmarks.bench_oracle",
         "--stream-gb", str(megabytes / 1000), "--sparse", "32", "--secrets", "200",
         "--report-every-mb", "50", "--json", str(out)],
        cwd=ROOT, check=True, capture_output=True, timeout=800)
    result: dict[str, object] = json.loads(out.read_text())
    return result


@pytest.mark.timeout(900)  # two niced children on a shared machine
def test_a_200_mb_log_stream_scans_in_bounded_memory(tmp_path: Path,
                                                     record_property: Callable[[str, object], None],
                                                     ) -> None:
    idle = _child(tmp_path, 0.001)  # the interpreter, numpy, the index: no stream to speak of
    big = _child(tmp_path, STREAM_MB)
    idle_mb, peak_mb = float(str(idle["peak_rss_mb"])), float(str(big["peak_rss_mb"]))
    record_property("peak_rss_mb", peak_mb)
    record_property("idle_rss_mb", idle_mb)
    print(f"peak RSS scanning {big['mb']:.0f} MB: {peak_mb:.0f} MB (idle {idle_mb:.0f} MB)")
    assert float(str(big["mb"])) >= STREAM_MB
    assert big["found_split_leak"] and big["found_last_leak"], big["hits"]
    assert peak_mb < idle_mb + HEADROOM_MB, (idle_mb, peak_mb, big["progress"])
