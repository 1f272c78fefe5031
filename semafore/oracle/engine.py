"""The plaintext-absence oracle: registry of secrets, recursive decoding, streaming scan
(SPEC §8, seed §2.2-§2.3, issue #12; docs/oracle.md).

A scan is a stream of records (store documents, log lines, wire frames, file blocks).
Records of one tier are joined, in order (log lines with the newline that separated them,
other records back to back, as the parts of one stream), into blocks of about
:data:`BLOCK_BYTES`, with the last :data:`OVERLAP_BYTES` of the previous block carried over:
a secret split across consecutive records or across a block boundary is contiguous
somewhere, and memory is bounded by the block size whatever the total. Each block is matched
(:mod:`.matcher`), then decoded (:mod:`.decoders`), the block and its byte-reversed copy,
and every decoded span is matched and decoded again, to :data:`MAX_DEPTH` transforms. A hit
names the record where the match begins, the offset in it, and the decode chain, outermost
first. One secret is reported once per record: its longest match, through the shortest chain
that shows that much.

Decoding is bounded per block: at most :data:`BUDGET_FACTOR` times the block's size in
decoded bytes that are decoded further (plus 1 MiB); a block that exhausts it is named in
``report.truncated``.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import ahocorasick_rs

from semafore.oracle.decoders import Decoded, compressed_spans, deflate_spans, text_spans
from semafore.oracle.matcher import Match, Matcher
from semafore.oracle.model import (
    IDENTIFIER_KINDS,
    MIN_SECRET_LEN,
    TIER_LOG,
    Chunk,
    Hit,
    OracleError,
    ScanReport,
    Secret,
)
from semafore.oracle.radix import radix_spans
from semafore.oracle.sources import Dumped, StoredBlob, file_stream
from semafore.protocol import secrets as protocol_secrets

MAX_DEPTH = 4
"""Transforms undone in one chain (byte reversal and bit alignment are free)."""
MIN_DECODED_SPAN = 3
"""Shortest span decoded further: deflate packs a 12-character canary of one repeated letter
into 4 bytes, so a span shorter than a minimal leak can still hold one."""
BLOCK_BYTES = 1 << 20
OVERLAP_BYTES = 64 << 10
BUDGET_FACTOR = 8
MIN_IDENTIFIER_LEN = 2
_IDENT_CHAR = re.compile(rb"[A-Za-z0-9_-]")

Locate = Callable[[int], tuple[str, str, int]]  # block offset -> (tier, location, offset)


class Oracle:
    """Register values, then scan byte sources. Registration after a scan rebuilds the index
    on the next scan."""

    def __init__(self) -> None:
        self._secrets: list[Secret] = []
        self._values: dict[bytes, int] = {}
        self._identifiers: dict[str, str] = {}  # value -> kind
        self._matcher: Matcher | None = None
        self._id_automaton: ahocorasick_rs.BytesAhoCorasick | None = None
        self._id_values: list[str] = []

    # -- registration ---------------------------------------------------------------------

    def register_canary(self, label: str, value: bytes) -> None:
        self._register(Secret(label, "canary", value))

    def register_key(self, label: str, value: bytes) -> None:
        self._register(Secret(label, "key", value))

    def _register(self, secret: Secret) -> None:
        if len(secret.value) < MIN_SECRET_LEN:
            raise OracleError(
                f"{secret.label}: {len(secret.value)} bytes; the oracle needs at least "
                f"{MIN_SECRET_LEN} to tell a leak from chance", field="value")
        if secret.value in self._values:
            return  # same bytes already registered (e.g. an SPK that is also the first DHr)
        self._values[secret.value] = len(self._secrets)
        self._secrets.append(secret)
        self._matcher = None

    def register_identifier(self, kind: str, value: str) -> None:
        """A routing identifier that must not appear raw in log lines (seed §2.3)."""
        if kind not in IDENTIFIER_KINDS:
            raise OracleError(f"unknown identifier kind {kind!r} (known: {IDENTIFIER_KINDS})",
                              field="kind")
        if len(value) < MIN_IDENTIFIER_LEN:
            raise OracleError(f"identifier {value!r} is too short to search for", field="value")
        self._identifiers.setdefault(value, kind)
        self._id_automaton = None

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(self._secrets)

    @contextlib.contextmanager
    def collecting_protocol_secrets(
        self, label: Callable[[str], str] = lambda kind: f"{kind} (from the protocol)",
    ) -> Iterator[None]:
        """While the block runs, register every secret the reference protocol draws or
        derives (:mod:`semafore.protocol.secrets`: SK, root, chain, message and AEAD keys,
        ratchet/SPK/OPK/IK/SIK/ephemeral private keys) as a key labelled ``label(kind)``.
        A value already registered keeps its first label."""

        def sink(kind: str, value: bytes) -> None:
            with contextlib.suppress(OracleError):  # shorter than the oracle can tell apart
                self.register_key(label(kind), value)

        with protocol_secrets.reporting(sink):
            yield

    # -- scanning -------------------------------------------------------------------------

    def scanner(self) -> Scanner:
        """An incremental scan: ``add`` records or ``add_stream`` files, then ``finish``."""
        if self._matcher is None and self._secrets:
            self._matcher = Matcher(self._secrets)
        if self._id_automaton is None and self._identifiers:
            self._id_values = list(self._identifiers)
            self._id_automaton = ahocorasick_rs.BytesAhoCorasick(
                [v.encode("utf-8") for v in self._id_values])
        return Scanner(self, self._matcher, self._id_automaton if self._identifiers else None)

    def scan(self, sources: Iterable[Chunk]) -> ScanReport:
        """Every registered value in every chunk (and raw identifiers in log chunks); the
        iterable is consumed lazily, one block at a time."""
        scanner = self.scanner()
        for chunk in sources:
            scanner.add(chunk)
        return scanner.finish()

    def scan_stream(self, tier: str, name: str, blocks: Iterable[bytes],
                    prefix: tuple[str, ...] = ()) -> ScanReport:
        scanner = self.scanner()
        scanner.add_stream(tier, name, blocks, prefix)
        return scanner.finish()


@dataclass
class _Record:
    start: int  # in the block (negative: began in the previous block)
    tier: str
    location: str


@dataclass
class _Pending:
    parts: list[bytes] = field(default_factory=list)
    records: list[_Record] = field(default_factory=list)
    size: int = 0


class Scanner:
    """Blocks of consecutive records, matched and decoded (see the module docstring)."""

    def __init__(self, oracle: Oracle, matcher: Matcher | None,
                 ids: ahocorasick_rs.BytesAhoCorasick | None) -> None:
        self.oracle = oracle
        self.matcher = matcher
        self.ids = ids
        self.report = ScanReport()
        self._pending: dict[str, _Pending] = {}  # per tier: records interleave
        # (location, label, kind) -> its hit's index in report.hits: a later block may show
        # more of a secret first seen cut by a block's end (a stream's next block carries the
        # overlap), and the longer match then replaces it
        self._seen: dict[tuple[str, str, str], int] = {}
        # digests of decoded spans walked without a match -> the shallowest depth (per block)
        self._barren: dict[bytes, int] = {}

    # records

    def add(self, chunk: Chunk) -> None:
        report = self.report
        report.bytes_by_tier[chunk.tier] = report.bytes_by_tier.get(chunk.tier, 0) + len(chunk.data)
        report.items_by_tier[chunk.tier] = report.items_by_tier.get(chunk.tier, 0) + 1
        if self.ids is not None and chunk.tier == TIER_LOG:
            report.hits.extend(self._identifiers(chunk))
        if self.matcher is None:
            return
        data = chunk.data
        if len(data) > BLOCK_BYTES:  # one huge record: its own stream of blocks
            for piece_start in range(0, len(data), BLOCK_BYTES):
                lo = max(0, piece_start - OVERLAP_BYTES)
                piece = data[lo:piece_start + BLOCK_BYTES + OVERLAP_BYTES]
                self._scan_block(piece, _fixed(chunk.tier, chunk.location, lo), (), True, ())
            return
        pending = self._pending.setdefault(chunk.tier, _Pending())
        if pending.parts and chunk.tier == TIER_LOG:  # log lines were newline-separated
            pending.parts.append(b"\n")
            pending.size += 1
        pending.records.append(_Record(pending.size, chunk.tier, chunk.location))
        pending.parts.append(data)
        pending.size += len(data)
        if pending.size >= BLOCK_BYTES:
            self._flush(chunk.tier, carry=True)

    def add_stream(self, tier: str, name: str, blocks: Iterable[bytes],
                   prefix: tuple[str, ...] = ()) -> None:
        """A file or dump read block by block; hits are located by line (text) or byte. A
        log stream is also searched for raw identifiers, as log records are (:meth:`add`).
        Memory is one block and its overlap, whatever the stream's length."""
        report = self.report
        report.items_by_tier[tier] = report.items_by_tier.get(tier, 0) + 1
        ids = self.ids if tier == TIER_LOG else None
        if self.matcher is None and ids is None:
            for block in blocks:
                report.bytes_by_tier[tier] = report.bytes_by_tier.get(tier, 0) + len(block)
            return
        tail = b""
        consumed = 0  # stream offset of the end of ``tail``
        lines_before_tail = 0
        for block in _rechunk(blocks):
            report.bytes_by_tier[tier] = report.bytes_by_tier.get(tier, 0) + len(block)
            data = tail + block
            base = consumed - len(tail)
            locate = _by_line(tier, name, data, base, lines_before_tail)
            if ids is not None:  # matches wholly inside the tail were found with it
                report.hits.extend(self._identifiers(Chunk(tier, name, data), locate, len(tail)))
            if self.matcher is not None:
                self._scan_block(data, locate, prefix, True, ())
            consumed += len(block)
            keep = min(OVERLAP_BYTES, len(data))
            lines_before_tail += data.count(b"\n", 0, len(data) - keep)
            tail = data[len(data) - keep:]

    def add_dump(self, tier: str, items: Iterable[Dumped]) -> None:
        """A store dump as it comes (:mod:`semafore.deploy.dumps`): each item a record, each
        stored file (anything with a ``path``) a stream read block by block (whole-file
        gzip/bz2/xz undone as read), never whole."""
        for item in items:
            if isinstance(item, StoredBlob):
                blocks, prefix = file_stream(item.path)
                self.add_stream(tier, str(item.source), blocks, prefix)
            else:
                self.add(Chunk(tier, str(item.source), bytes(item.data)))

    def finish(self) -> ScanReport:
        for tier in list(self._pending):
            self._flush(tier, carry=False)
        return self.report

    def _flush(self, tier: str, carry: bool) -> None:
        pending = self._pending.pop(tier)
        blob = b"".join(pending.parts)
        records = pending.records
        # records other than log lines are joined back to back: escape lines end there too
        bounds = () if tier == TIER_LOG else tuple(r.start for r in records if r.start > 0)
        self._scan_block(blob, _by_record(records), (), False, bounds)
        if carry:  # the tail of this block opens the next one (cross-record matches)
            lo = max(0, len(blob) - OVERLAP_BYTES)
            starts = [r.start for r in records]
            first = max(0, bisect.bisect_right(starts, lo) - 1)
            self._pending[tier] = _Pending(
                [blob[lo:]], [_Record(r.start - lo, r.tier, r.location) for r in records[first:]],
                len(blob) - lo)

    # matching and decoding

    def _scan_block(self, blob: bytes, locate: Locate, prefix: tuple[str, ...],
                    binary_start: bool, bounds: tuple[int, ...]) -> None:
        assert self.matcher is not None
        best: dict[tuple[str, str, str], tuple[tuple[int, int], Hit]] = {}
        key: tuple[str, str, str]
        budget = [BUDGET_FACTOR * len(blob) + (1 << 20)]
        self._barren = {}
        for match, chain, offset in self._walk(blob, 0, prefix, _identity, budget, binary_start,
                                               bounds):
            secret = self.oracle._secrets[match.variant.secret]
            tier, location, record_offset = locate(offset)
            key = (location, secret.label, secret.kind)
            prior = self._seen.get(key)
            if prior is not None and self.report.hits[prior].matched >= len(secret.value):
                continue  # reported whole already
            hit = _hit(tier, location, record_offset, chain, match, secret)
            if prior is not None and hit.matched <= self.report.hits[prior].matched:
                continue
            rank = (-hit.matched, len(chain))  # the most of the secret, then the shortest chain
            if key not in best or rank < best[key][0]:
                best[key] = (rank, hit)
        if budget[0] < 0:
            tier, location, _ = locate(0)
            self.report.truncated.append(f"{tier} {location}: decode budget exhausted")
        for seen, (_, hit) in best.items():
            if (prior := self._seen.get(seen)) is not None:
                self.report.hits[prior] = hit
            else:
                self._seen[seen] = len(self.report.hits)
                self.report.hits.append(hit)

    def _walk(self, blob: bytes, depth: int, chain: tuple[str, ...],
              to_root: Callable[[int], int], budget: list[int], binary_start: bool,
              bounds: tuple[int, ...] = ()) -> Iterator[tuple[Match, tuple[str, ...], int]]:
        """Matches in ``blob`` and in everything decoded from it, to :data:`MAX_DEPTH`.

        Below the root, what a walk finds depends only on the bytes and the depth (the
        chain and the map to the root only label it), so bytes already walked without a
        match at this depth or shallower — the same chance inflation reached through
        another chain — are not walked again (``_barren``, per block)."""
        assert self.matcher is not None
        digest = hashlib.blake2b(blob, digest_size=16).digest() if depth else b""
        if depth and self._barren.get(digest, MAX_DEPTH + 1) <= depth:
            return
        matches = self.matcher.find(blob)
        found = len(matches)
        for match in matches:
            yield match, chain, to_root(match.start)
        if budget[0] < 0:
            return
        if depth >= MAX_DEPTH or len(blob) < MIN_DECODED_SPAN:
            if depth and not found:  # nothing to decode further, at any depth this deep
                self._barren[digest] = min(depth, self._barren.get(digest, depth))
            return
        for decoded, root, prefix, view in _spans(blob, to_root, binary_start or depth > 0,
                                                  bounds):
            if decoded.data == view:
                continue
            if decoded.expand:  # matched-only spans cost one matcher pass
                budget[0] -= len(decoded.data)
                if budget[0] < 0:
                    return
            names = (*chain, *prefix, *decoded.name.split(" → "))
            child_root = _compose(root, decoded)
            if decoded.expand:
                for item in self._walk(decoded.data, depth + 1, names, child_root, budget,
                                       False):
                    found += 1
                    yield item
            else:
                for match in self.matcher.find(decoded.data):
                    found += 1
                    yield match, names, child_root(match.start)
        if depth and not found and budget[0] >= 0:  # walked whole, nothing in it
            self._barren[digest] = min(depth, self._barren.get(digest, depth))

    def _identifiers(self, chunk: Chunk, locate: Locate | None = None,
                     after_tail: int = 0) -> Iterator[Hit]:
        """Raw identifiers in a log record (or, with ``locate``, in a block of a log
        stream)."""
        assert self.ids is not None
        data = chunk.data
        values = self.oracle._id_values
        for pattern, start, end in self.ids.find_matches_as_indexes(data, overlapping=True):
            before = data[start - 1: start]
            after = data[end: end + 1]
            if (before and _IDENT_CHAR.match(before)) or (after and _IDENT_CHAR.match(after)):
                continue  # part of a longer token ("alice" inside "malice")
            if end <= after_tail:
                continue  # wholly inside the overlap: found with the previous block
            value = values[pattern]
            kind = self.oracle._identifiers[value]
            tier, location, offset = (chunk.tier, chunk.location, start) if locate is None \
                else locate(start)
            yield Hit(tier, location, offset, "raw-identifier", f"{kind} {value!r}",
                      "identifier", end - start, end - start)


_View = tuple[Decoded, Callable[[int], int], tuple[str, ...], bytes]


def _spans(blob: bytes, to_root: Callable[[int], int], binary_start: bool,
           bounds: tuple[int, ...]) -> Iterator[_View]:
    """Every decoder over the span and over its byte-reversed copy: (span, map from the
    decoded view to the root, chain prefix, the view it was decoded from). ``bounds``: the
    record starts in a block of records joined back to back."""
    n = len(blob)
    reverse = blob[::-1]

    def from_reverse(p: int) -> int:
        return to_root(n - 1 - p)

    forward: tuple[Callable[[int], int], tuple[str, ...], bytes] = (to_root, (), blob)
    backward: tuple[Callable[[int], int], tuple[str, ...], bytes] = (
        from_reverse, ("reversed",), reverse)
    yield from ((d, *forward) for d in compressed_spans(blob))
    yield from ((d, *forward) for d in text_spans(blob, bounds))
    yield from ((d, *forward) for d in deflate_spans(blob, binary_start))
    for backwards, decoded in radix_spans(blob):  # one symbol pass serves both directions
        yield (decoded, *(backward if backwards else forward))
    # reversed compressed streams are found by their reversed magic in the span itself
    yield from ((d, *backward) for d in text_spans(reverse, [n - b for b in reversed(bounds)]))
    yield from ((d, *backward) for d in deflate_spans(reverse, binary_start))


def _identity(p: int) -> int:
    return p


def _compose(parent: Callable[[int], int], decoded: Decoded) -> Callable[[int], int]:
    return lambda i: parent(decoded.parent_offset(i))


def _hit(tier: str, location: str, offset: int, chain: tuple[str, ...], match: Match,
         secret: Secret) -> Hit:
    variant = match.variant
    names = list(chain) + ([variant.form] if variant.form else [])
    if match.case_changed:
        names.append("letter case changed")
    length = len(secret.value)
    if match.length >= len(variant.data):
        matched = length
    else:
        matched = min(length, round(match.length * variant.scale))
    encoding = " → ".join(names) or "raw"
    if matched < length:
        encoding += f" [partial: {matched} of {length} bytes]"
    return Hit(tier, location, offset, encoding, secret.label, secret.kind, matched, length)


def _by_record(records: list[_Record]) -> Locate:
    starts = [r.start for r in records]

    def locate(offset: int) -> tuple[str, str, int]:
        i = max(0, bisect.bisect_right(starts, offset) - 1)
        record = records[i]
        return record.tier, record.location, offset - record.start

    return locate


def _fixed(tier: str, location: str, base: int) -> Locate:
    return lambda offset: (tier, location, base + offset)


def _by_line(tier: str, name: str, data: bytes, base: int, lines_before: int) -> Locate:
    """Text streams are located by line (1-based), others by byte offset."""
    texty = b"\n" in data[:4096] and data[:4096].count(0) == 0

    def locate(offset: int) -> tuple[str, str, int]:
        if texty:
            line = lines_before + data.count(b"\n", 0, offset) + 1
            start = data.rfind(b"\n", 0, offset) + 1
            return tier, f"{name}:line {line}", offset - start
        return tier, f"{name}:byte {base + offset}", base + offset

    return locate


def _rechunk(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """Blocks of about BLOCK_BYTES from any sizes."""
    pending: list[bytes] = []
    size = 0
    for block in blocks:
        pending.append(block)
        size += len(block)
        if size >= BLOCK_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)
