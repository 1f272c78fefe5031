"""An external relay's adversary view streams too (issue #12 item 3, docs/oracle.md
"Streaming the scenario executor's adversary views"): a scenario run against someone else's
relay (``sim run --relay URL --relay-log … --relay-store-file …``) takes its view through
:class:`simulator.external.ExternalInfrastructure`, whose granted stores are spooled to disk
and whose granted log files are byte extents read back line by line, never held.

The child process builds the view exactly as the executor does for a server view (the
granted stores' spools, then the granted logs' extents) and examines it as the end of a run
does (:func:`simulator.relay_view.examine`). The log is the one the executor's memory test
writes (:func:`tests.oracle.test_bounded_memory.write_relay_log`), the granted store a data
file with a key in hex. ``hold``: read the grant as ExternalInfrastructure did before,
through :meth:`semafore.gate.live.SourceScan.held_chunks` (every log line a chunk in memory),
and stop there.

Measured once on this machine (2 cores shared with other test runs, niced): the 200 MB
granted log examined at 155 MB peak RSS (29 s of CPU) against 147 MB for 1 MB; holding the
same 200 MB grant as chunks (960,706 of them), before any examining, took 540 MB, far above
the bound (the 1 MB run plus 100 MB). The test runs that too, so the bound is shown to tell
the two apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.oracle.test_bounded_memory import VIEW_HEADROOM_MB, VIEW_MB

ROOT = Path(__file__).resolve().parents[2]


def external_view_child(megabytes: float, out: str, hold: bool = False) -> None:
    """In a child process: grant a ``megabytes`` relay log and a store file to an external
    relay's infrastructure, take a server view through it and examine it (``hold``: hold
    the grant as chunks instead, as before the view streamed); write the figures to ``out``."""
    import asyncio
    import random
    import tempfile

    from benchmarks.memory import peak_rss_mb
    from semafore.gate.live import RelayAccess, external_sources
    from simulator.external import ExternalInfrastructure, ExternalRelay
    from simulator.relay_view import Part, RelayView, Spooled, examine
    from tests.oracle.test_bounded_memory import planted_oracle, write_relay_log

    rng = random.Random(5)
    oracle, keys, identifiers = planted_oracle(rng)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "relay.log"
        write_relay_log(log, megabytes, rng, keys[1])
        store = Path(tmp) / "store"
        store.mkdir()
        (store / "queue.dat").write_bytes(b"org acme queued " + keys[2].hex().encode())
        access = RelayAccess(files=(store,), logs=(log,))
        result: dict[str, Any] = {"log_bytes": log.stat().st_size}
        if hold:
            scans = asyncio.run(external_sources(access, "acme"))
            held = [chunk for scan in scans for chunk in scan.held_chunks()]
            result["held"] = len(held)
        else:
            infra = ExternalInfrastructure(ExternalRelay("http://127.0.0.1:9", "acme", access),
                                           ["acme"])

            async def take() -> list[Part]:
                parts: list[Part] = [Spooled(tier, spool) for tier, spool in await infra.spool()]
                return parts + list(await infra.log_extents())

            view = RelayView(asyncio.run(take()))
            examined = examine(view, oracle, "operator-root", "server", identifiers)
            view.close()
            result |= {
                "scanned": examined.report.bytes_by_tier,
                "hits": sorted({h.label for h in examined.report.hits}),
                "hit_locations": sorted({h.location.split(":line")[0]
                                         for h in examined.report.hits}),
                "raw": examined.inventory.raw,
                "sources": [(s.tier, s.items, s.bytes) for s in examined.sources],
                "read": infra.scanned, "errors": infra.errors,
                "log_path": str(log),
            }
        result["peak_rss_mb"] = peak_rss_mb()
    Path(out).write_text(json.dumps(result))


def _child(tmp_path: Path, megabytes: float, hold: bool = False) -> dict[str, Any]:
    out = tmp_path / f"external-{megabytes}-{hold}.json"
    code = ("import sys; from tests.simulator.test_external_view_memory import "
            "external_view_child; "
            "external_view_child(float(sys.argv[1]), sys.argv[2], sys.argv[3] == '1')")
    subprocess.run(["nice", "-n", "10", sys.executable, "-c", code, str(megabytes), str(out),
                    "1" if hold else "0"], cwd=ROOT, check=True, capture_output=True,
                   timeout=1200)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@pytest.mark.timeout(1500)  # three niced children on a shared machine
def test_an_external_relays_200_mb_granted_log_is_examined_in_bounded_memory(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    """A server view of an external relay whose granted log is 200 MB: peak RSS within
    100 MB of the same view over a 1 MB log, and everything read — the log's last line's
    key, the granted store file's key, the raw identifier 100 MB in."""
    idle = _child(tmp_path, 1)
    big = _child(tmp_path, VIEW_MB)
    idle_mb, peak_mb = float(idle["peak_rss_mb"]), float(big["peak_rss_mb"])
    record_property("external_view_peak_rss_mb", peak_mb)
    record_property("external_view_idle_rss_mb", idle_mb)
    assert big["log_bytes"] >= VIEW_MB * 1e6
    assert big["errors"] == {} and set(big["read"]) == {"wire", "stores", "logs"}, big
    (lines,) = [items for tier, items, _ in big["sources"] if tier == "log"]
    # the oracle read every line of the granted log (records: bytes without their newlines)
    assert big["scanned"]["log"] + lines == big["log_bytes"]
    assert big["hits"] == ["key 1", "key 2"], big["hits"]
    assert big["log_path"] in big["hit_locations"]  # located by the granted file's own path
    assert big["raw"] == {"user": ["olivia.smith"]}, big["raw"]
    assert peak_mb < idle_mb + VIEW_HEADROOM_MB, (idle_mb, peak_mb)
    # the bound tells the two apart: the same grant held as chunks, as before, breaks it
    held = _child(tmp_path, VIEW_MB, hold=True)
    record_property("external_view_held_rss_mb", held["peak_rss_mb"])
    assert held["held"] > 900_000 and held["peak_rss_mb"] > idle_mb + VIEW_HEADROOM_MB, held
