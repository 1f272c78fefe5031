"""A relay-side adversary's view (seed §1.1: server, database, insider, subpoena, network),
kept where its bytes are and read back as a stream each time it is examined (issue #12
item 3; docs/oracle.md "Streaming", docs/simulator.md "Adversary views").

A compromise step takes its view when it runs (``until_here``) or at the end of the run
(``from_here``); the end of the run examines every view — the plaintext oracle, the
metadata inventory, the harvest of persisted device states — and a ``log_pseudonyms``
assertion reads it once more. A view held as a list of chunks grew with the run's logs and
stores, once per view. A :class:`RelayView` holds instead, in the order the oracle and the
inventory have always read them:

- store dumps and operator exports, spooled to disk when the view is taken
  (:class:`semafore.deploy.dumps.Spool`: one item in memory at a time, then none);
- the relay log as a byte extent of the run's log file: the log only grows, so the view at a
  step is the file's first ``end`` bytes, and nothing is copied;
- the wire capture as a range of the network's capture list (append-only, and held by the
  network for the whole run anyway), from a capture time on for ``from_here``.

Reading a view twice from disk costs a second pass; holding it cost its size in memory for
the whole run, and that is what a long run cannot afford.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from semafore.deploy.dumps import READ_BYTES, Item, Spool, StoredFile
from semafore.oracle import TIER_LOG, TIER_WIRE, Chunk, Oracle, Scanner, ScanReport
from semafore.oracle.sources import file_stream, log_lines
from simulator import inventory as inv
from simulator.adversary import harvest_states
from simulator.network import Captured
from simulator.report.model import SourceSummary

FILE_CHUNK_BYTES = READ_BYTES
"""A stored file (an AOF, a volume file) reaches the inventory and the state harvest in
pieces of this size: whole when it is smaller, as every scenario-sized file is."""


@dataclass(frozen=True)
class LogExtent:
    """The first ``end`` bytes of a log file, as the lines ``name:line N`` (1-based). A
    whole-file gzip/bz2/xz log (an operator's rotated ``relay.log.gz``, granted with
    ``--relay-log``) is finished, not growing: it is read whole, decompressed as it is read
    (:func:`semafore.oracle.sources.file_stream`), whatever ``end`` says."""

    path: Path
    end: int
    name: str = "relay.log"

    def lines(self) -> Iterator[bytes]:
        blocks, chain = file_stream(self.path)
        return log_lines(blocks if chain else _prefix(self.path, self.end))

    def records(self) -> Iterator[Chunk]:
        for number, line in enumerate(self.lines(), start=1):
            yield Chunk(TIER_LOG, f"{self.name}:line {number}", line.rstrip(b"\r"))


@dataclass(frozen=True)
class WireRange:
    """The first ``end`` records of a wire capture (``since``: only those captured at or
    after it, to the millisecond the location shows), numbered as in the whole capture."""

    captured: Sequence[Captured]
    end: int
    since: float | None = None

    def records(self) -> Iterator[Chunk]:
        for number in range(min(self.end, len(self.captured))):
            rec = self.captured[number]
            at = f"{rec.at:.3f}"
            if self.since is not None and float(at) < self.since:
                continue
            yield Chunk(TIER_WIRE, f"wire #{number} {rec.device} {rec.direction} {rec.channel} "
                        f"t={at}", rec.data)


@dataclass(frozen=True)
class Spooled:
    """Records of one tier spooled to disk (store items, stored files, export records)."""

    tier: str
    spool: Spool

    def records(self) -> Iterator[Chunk]:
        for item in self.spool:
            if isinstance(item, StoredFile):
                for block in item.blocks(FILE_CHUNK_BYTES):
                    yield Chunk(self.tier, str(item.source), block)
            else:
                yield Chunk(self.tier, str(item.source), item.data)


Part = Spooled | LogExtent | WireRange


@dataclass
class RelayView:
    """The parts of one relay-side view, in reading order; :meth:`close` removes the spools."""

    parts: list[Part] = field(default_factory=list)

    def records(self) -> Iterator[Chunk]:
        """Every record of the view, one at a time (a stored file in pieces of
        :data:`FILE_CHUNK_BYTES`): what the inventory, the harvest and the log-pseudonym
        assessment read."""
        for part in self.parts:
            yield from part.records()

    def wire_times(self) -> list[float]:
        """Capture times of the view's wire records (a network observer sees when, even
        where the bytes are opaque): one float per record."""
        return [float(chunk.location.rsplit("t=", 1)[1]) for part in self.parts
                if isinstance(part, WireRange) for chunk in part.records()]

    def scan(self, scanner: Scanner) -> None:
        """Feed the view to the oracle: records as records, stored files as block streams
        (:meth:`Scanner.add_dump`), so memory is the scanner's block whatever the view."""
        for part in self.parts:
            if isinstance(part, Spooled):
                scanner.add_dump(part.tier, part.spool)
            else:
                for chunk in part.records():
                    scanner.add(chunk)

    def close(self) -> None:
        for part in self.parts:
            if isinstance(part, Spooled):
                part.spool.close()
        self.parts = []


@dataclass
class Examined:
    """What the end of a run learns from one relay-side view."""

    report: ScanReport  # the oracle's hits and bytes per tier, this view's only
    inventory: inv.AdversaryInventory
    sources: list[SourceSummary]  # records and bytes per tier
    states: list[bytes]  # persisted device states found in a record


def examine(view: RelayView, oracle: Oracle, adversary: str, kind: str,
            identifiers: Iterable[inv.Identifier]) -> Examined:
    """Read ``view`` twice as a stream, never holding it: once by the oracle (a scanner per
    view, so its hits are this view's: a store record's name recurs in a later view with
    other bytes), once by the metadata inventory, with the per-tier counts and the harvest
    of persisted device states teed off the same pass."""
    scanner = oracle.scanner()
    view.scan(scanner)
    report = scanner.finish()
    tally = _Tally()
    inventory = inv.build(adversary, kind, tally.watch(view.records()), identifiers,
                          wire_times=view.wire_times())
    return Examined(report, inventory, tally.summaries(), tally.states)


class _Tally:
    """Records and bytes per tier, and any persisted device state in a record, counted as
    another reader consumes the records (nothing kept per record)."""

    def __init__(self) -> None:
        self.tiers: dict[str, list[int]] = {}
        self.states: list[bytes] = []

    def watch(self, records: Iterable[Chunk]) -> Iterator[Chunk]:
        for chunk in records:
            entry = self.tiers.setdefault(chunk.tier, [0, 0])
            entry[0] += 1
            entry[1] += len(chunk.data)
            self.states += harvest_states((chunk.data,))
            yield chunk

    def summaries(self) -> list[SourceSummary]:
        return [SourceSummary(t, n, b) for t, (n, b) in sorted(self.tiers.items())]


def spooled(chunks: Iterable[Chunk], directory: Path | None = None) -> list[Part]:
    """``chunks`` moved to disk, one spool per run of one tier (order kept), so a list
    another reader returns is held only while it is copied."""
    out: list[Spooled] = []
    for chunk in chunks:
        if not out or out[-1].tier != chunk.tier:
            out.append(Spooled(chunk.tier, Spool(directory)))
        out[-1].spool.add(Item(chunk.location, chunk.data))
    return [*out]


def _prefix(path: Path, end: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        left = end
        while left > 0 and (block := fh.read(min(READ_BYTES, left))):
            left -= len(block)
            yield block
