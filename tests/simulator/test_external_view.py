"""What an external relay's adversary view holds (simulator.external.ExternalInfrastructure;
issue #12 item 3, docs/oracle.md "Streaming the scenario executor's adversary views"): the
granted stores as spools on disk, copied when the view is taken, and each granted log file as
a byte extent of its size then, read back line by line and located by the file's own path.
Nothing here needs a relay: the grant is files (``--relay-store-file``, ``--relay-log``)."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

from semafore.gate.live import RelayAccess
from semafore.oracle import Oracle
from simulator.external import ExternalInfrastructure, ExternalRelay
from simulator.relay_view import LogExtent, Part, RelayView, Spooled, examine

KEY = bytes(range(40, 72))
ORG = "acme"


def _infra(access: RelayAccess) -> ExternalInfrastructure:
    return ExternalInfrastructure(ExternalRelay("http://127.0.0.1:9", ORG, access), [ORG])


def _view(infra: ExternalInfrastructure) -> RelayView:
    async def take() -> list[Part]:
        parts: list[Part] = [Spooled(tier, spool) for tier, spool in await infra.spool()]
        return parts + list(await infra.log_extents())

    return RelayView(asyncio.run(take()))


def _hits(view: RelayView) -> list[str]:
    oracle = Oracle()
    oracle.register_key("the key", KEY)
    return sorted(h.location for h in examine(view, oracle, "operator", "server", ()).report.hits)


def test_a_granted_log_is_an_extent_of_its_size_when_the_view_is_taken(tmp_path: Path) -> None:
    log = tmp_path / "relay.log"
    log.write_bytes(b'{"org_id":"acme","event":"send"}\n' + KEY.hex().encode() + b"\n")
    infra = _infra(RelayAccess(logs=(log,)))
    view = _view(infra)
    size = log.stat().st_size
    with log.open("ab") as fh:  # the relay logs on after the view was taken
        fh.write(b'{"later":"' + KEY.hex().encode() + b'"}\n')
    assert view.parts == [LogExtent(log, size, name=str(log))]
    assert [c.location for c in view.records()] == [f"{log}:line 1", f"{log}:line 2"]
    assert _hits(view) == [f"{log}:line 2"]  # not line 3: written after the view
    assert "1 file(s), 2 lines" in infra.scanned["logs"] and infra.errors == {}


def test_a_rotated_gzip_log_in_the_grant_is_read_whole_and_decompressed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "relay.log").write_bytes(b'{"org_id":"acme"}\n')
    rotated = logs / "relay.log.1.gz"
    rotated.write_bytes(gzip.compress(b'{"org_id":"acme"}\n{"note":"' + KEY.hex().encode()
                                      + b'"}\n' * 3))
    view = _view(_infra(RelayAccess(logs=(logs,))))
    assert [p.path for p in view.parts if isinstance(p, LogExtent)] == [logs / "relay.log",
                                                                         rotated]
    assert _hits(view) == [f"{rotated}:line 2"]


def test_granted_store_files_are_spooled_copies_the_view_owns(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    data = store / "queue.dat"
    data.write_bytes(b"org acme queued " + KEY.hex().encode())
    view = _view(_infra(RelayAccess(files=(store,))))
    data.write_bytes(b"org acme, rewritten when the relay stopped")  # the copy is kept
    (part,) = view.parts
    assert isinstance(part, Spooled) and part.tier == "file" and len(part.spool) == 1
    hits = _hits(view)  # found in the copy (the file now holds no key), by the file's name
    assert f"{data}:byte 16" in hits and all(h.startswith(f"{data}:byte ") for h in hits)
    copies = [item.path for item in part.spool if hasattr(item, "path")]
    view.close()
    assert copies and not any(p.exists() for p in copies)


def test_nothing_granted_is_nothing_taken(tmp_path: Path) -> None:
    infra = _infra(RelayAccess())
    assert _view(infra).parts == []
    assert set(infra.not_scanned) == {"stores", "logs"} and infra.errors == {}
