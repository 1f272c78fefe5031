"""The plaintext-absence oracle (SPEC §8, docs/oracle.md).

Every message plaintext carries a unique random canary and every device's private key
material (IK, SIK, SPK, OPKs, ratchet, chain and message keys) is registered here. After a
scenario the oracle searches all of them in every byte an adversary holds — store dumps, Redis
dumps, object-store objects, log lines, captured wire bytes — in every encoding a careless
server could have written them in:

- raw bytes; the value as UTF-8 text re-encoded as UTF-16 LE/BE (and, for non-UTF-8 bytes, as
  Latin-1 code points in UTF-8 / UTF-16, which is what ``bytes.decode('latin-1')`` leaks);
- lowercase and uppercase hex;
- standard and URL-safe base64 in all three alignments, keeping only the characters that
  depend on the value alone, so a value embedded mid-string, with or without padding, is found;
- JSON-escaped text (``\\u00e9``/``\\"`` forms, and every character ``\\uXXXX``-escaped);
- inside every gzip / zlib stream and every base64 run found in the data, recursively (a
  base64 JSON document carrying a base64 body is two levels), each secret reported once at
  the shallowest level it shows.

Raw identifiers (sub, subject, device_id, message_id, delivery_id, group_id…) are searched in
log lines only: there they may appear solely as 8-hex SHA-256 prefixes in ``*_h8`` fields
(seed §2.3, ADR-0019).

Search is a sampled-window index (:class:`_NeedleIndex`), not one ``find`` per needle: every
needle is at least ``W + S - 1`` bytes long, so any occurrence covers a data position that is a
multiple of ``S`` with the needle's bytes ``[j, j+W)`` there for some ``j < S``. The index holds
those ``S`` windows of every needle as sorted 64-bit integers; a scan reads the data's windows
at stride ``S`` with numpy, binary-searches them all at once and verifies the rare candidates
byte for byte. Cost: one vectorised pass over the data and ``S`` integers per needle, whatever
the number of registered values (a generic Aho–Corasick automaton over 10⁵–10⁶ random-byte
needles takes minutes to build). Identifiers (short, few) use an Aho–Corasick automaton.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import ahocorasick_rs
import numpy as np
import numpy.typing as npt

MIN_SECRET_LEN = 16
MAX_DEPTH = 4  # levels of nested compressed / base64 streams followed
NESTED_BUDGET_FACTOR = 8  # nested bytes decoded per chunk: at most 8x its size (+1 MiB)
MAX_INFLATE = 64 << 20  # bytes one compressed candidate may expand to
MIN_IDENTIFIER_LEN = 2

TIER_MONGODB = "mongodb"
TIER_REDIS = "redis"
TIER_OBJECT_STORE = "seaweedfs"
TIER_LOG = "log"
TIER_WIRE = "wire"
TIERS = (TIER_MONGODB, TIER_REDIS, TIER_OBJECT_STORE, TIER_LOG, TIER_WIRE)

SecretKind = Literal["canary", "key"]
IDENTIFIER_KINDS = ("sub", "subject", "device_id", "message_id", "delivery_id", "group_id")

_GZIP_MAGIC = b"\x1f\x8b\x08"
_ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")
_MAGIC = re.compile(b"|".join(re.escape(m) for m in (_GZIP_MAGIC, *_ZLIB_HEADERS)))
MIN_B64_RUN = 22  # characters: the shortest run that can carry a 16-byte value
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
# Byte classes for a fast run search: alphabet -> "A", everything else -> NUL.
_B64_CLASS = bytes(0x41 if b in _B64_ALPHABET else 0 for b in range(256))
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
_IDENT_CHAR = re.compile(rb"[A-Za-z0-9_-]")


class OracleError(ValueError):
    """A value cannot be registered (too short to be told apart from chance, or empty)."""


@dataclass(frozen=True)
class Chunk:
    """Bytes an adversary holds and where they were: ``location`` names a document, key,
    object, log line or wire record precisely enough for a reviewer to go and look."""

    tier: str
    location: str
    data: bytes


@dataclass(frozen=True)
class Secret:
    label: str  # e.g. "message m.3 (alice/phone -> bob)", "bob/phone SPK private"
    kind: SecretKind
    value: bytes


@dataclass(frozen=True)
class Hit:
    tier: str
    location: str
    offset: int  # in the chunk, or in the decompressed stream named by ``encoding``
    encoding: str  # e.g. "raw", "base64-url(align 2)", "gzip@120 > hex-upper"
    label: str  # the message or key it belongs to, or the identifier kind
    kind: str  # "canary", "key" or "identifier"

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "location": self.location, "offset": self.offset,
                "encoding": self.encoding, "label": self.label, "kind": self.kind}


@dataclass
class ScanReport:
    hits: list[Hit] = field(default_factory=list)
    bytes_by_tier: dict[str, int] = field(default_factory=dict)
    items_by_tier: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.hits


# --- encodings ---------------------------------------------------------------------------------


def _b64_aligned(value: bytes, align: int, urlsafe: bool) -> bytes:
    """The base64 characters of ``value`` preceded by ``align`` unknown bytes and followed by
    unknown bytes: only characters whose 6 bits all come from ``value`` (character ``i``
    covers bits ``[6i, 6i+6)``)."""
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(b"\0" * align + value)
    first = -(-8 * align // 6)  # ceil
    last = 8 * (align + len(value)) // 6  # exclusive
    return encoded[first:last]


_BACKSLASH_U = np.frombuffer(b"\\u", dtype=np.uint8)


def _u_escape(units_hex: bytes) -> bytes:
    """``\\u`` before every 4 hex digits (vectorised: this runs for every registered value)."""
    digits = np.frombuffer(units_hex, dtype=np.uint8).reshape(-1, 4)
    prefix = np.broadcast_to(_BACKSLASH_U, (len(digits), 2))
    return np.concatenate([prefix, digits], axis=1).tobytes()


def _json_escaped(text: str) -> list[tuple[str, bytes]]:
    out = [("json", json.dumps(text, ensure_ascii=True)[1:-1].encode("ascii"))]
    # Every character \uXXXX-escaped: the UTF-16 code units (surrogate pairs for astral ones).
    units = text.encode("utf-16-be").hex().encode("ascii")
    out.append(("json-\\u-lower", _u_escape(units)))
    out.append(("json-\\u-upper", _u_escape(units.upper())))
    return out


def encodings(value: bytes) -> list[tuple[str, bytes]]:
    """Every (encoding name, needle) the oracle searches for ``value``; identical needles are
    kept once under the first (simplest) name."""
    forms: list[tuple[str, bytes]] = [("raw", value)]
    try:
        text = value.decode("utf-8")
        text_name = "utf"
    except UnicodeDecodeError:
        text = value.decode("latin-1")
        text_name = "latin1"
        forms.append(("latin1-as-utf8", text.encode("utf-8")))
    forms.append((f"{text_name}-utf16le", text.encode("utf-16-le")))
    forms.append((f"{text_name}-utf16be", text.encode("utf-16-be")))
    forms.append(("hex-lower", value.hex().encode("ascii")))
    forms.append(("hex-upper", value.hex().upper().encode("ascii")))
    for urlsafe in (False, True):
        for align in range(3):
            name = f"base64{'-url' if urlsafe else ''}(align {align})"
            forms.append((name, _b64_aligned(value, align, urlsafe)))
    forms += _json_escaped(text)
    seen: set[bytes] = set()
    unique = []
    for name, needle in forms:
        if needle and needle not in seen:
            seen.add(needle)
            unique.append((name, needle))
    return unique


def canary(random16: bytes) -> bytes:
    """A canary from ≥16 random bytes: ASCII so it can ride inside any text plaintext
    (``cnry`` + lowercase base32), unique per message."""
    if len(random16) < 16:
        raise OracleError("a canary needs at least 16 random bytes")
    return b"cnry" + base64.b32encode(random16).rstrip(b"=").lower()


def h8(value: str) -> str:
    """The 8-hex SHA-256 prefix logs use for identifiers (seed §2.3)."""
    import hashlib

    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


# --- the oracle --------------------------------------------------------------------------------


class Oracle:
    """Register values, then :meth:`scan` byte sources. Registration after a scan rebuilds the
    automaton on the next scan."""

    def __init__(self) -> None:
        self._secrets: list[Secret] = []
        self._values: dict[bytes, int] = {}
        self._identifiers: dict[str, str] = {}  # value -> kind
        self._automaton: _NeedleIndex | None = None
        self._needles: list[tuple[int, str]] = []  # pattern index -> (secret index, encoding)
        self._id_automaton: ahocorasick_rs.BytesAhoCorasick | None = None
        self._id_values: list[str] = []

    # registration

    def register_canary(self, label: str, value: bytes) -> None:
        self._register(Secret(label, "canary", value))

    def register_key(self, label: str, value: bytes) -> None:
        self._register(Secret(label, "key", value))

    def _register(self, secret: Secret) -> None:
        if len(secret.value) < MIN_SECRET_LEN:
            raise OracleError(
                f"{secret.label}: {len(secret.value)} bytes; the oracle needs at least "
                f"{MIN_SECRET_LEN} to tell a leak from chance"
            )
        if secret.value in self._values:
            return  # same bytes already registered (e.g. an SPK that is also the first DHr)
        self._values[secret.value] = len(self._secrets)
        self._secrets.append(secret)
        self._automaton = None

    def register_identifier(self, kind: str, value: str) -> None:
        """A routing identifier that must not appear raw in log lines (seed §2.3)."""
        if kind not in IDENTIFIER_KINDS:
            raise OracleError(f"unknown identifier kind {kind!r} (known: {IDENTIFIER_KINDS})")
        if len(value) < MIN_IDENTIFIER_LEN:
            raise OracleError(f"identifier {value!r} is too short to search for")
        self._identifiers.setdefault(value, kind)
        self._id_automaton = None

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(self._secrets)

    # indexes

    def _build(self) -> _NeedleIndex | None:
        if self._automaton is None and self._secrets:
            patterns: list[bytes] = []
            self._needles = []
            seen: set[bytes] = set()
            for index, secret in enumerate(self._secrets):
                for name, needle in encodings(secret.value):
                    if needle in seen:
                        continue
                    seen.add(needle)
                    patterns.append(needle)
                    self._needles.append((index, name))
            self._automaton = _NeedleIndex(patterns)
        return self._automaton

    def _build_ids(self) -> ahocorasick_rs.BytesAhoCorasick | None:
        if self._id_automaton is None and self._identifiers:
            self._id_values = list(self._identifiers)
            self._id_automaton = ahocorasick_rs.BytesAhoCorasick(
                [v.encode("utf-8") for v in self._id_values]
            )
        return self._id_automaton

    # scanning

    def scan(self, sources: Iterable[Chunk]) -> ScanReport:
        """Search every registered value in every chunk (and raw identifiers in log chunks).

        Chunks are searched in batches of about :data:`BATCH_BYTES` (one numpy pass each), so a
        million one-line log chunks cost what one large dump does."""
        report = ScanReport()
        index = self._build()
        ids = self._build_ids()
        batch: list[Chunk] = []
        size = 0
        for chunk in sources:
            report.bytes_by_tier[chunk.tier] = (
                report.bytes_by_tier.get(chunk.tier, 0) + len(chunk.data)
            )
            report.items_by_tier[chunk.tier] = report.items_by_tier.get(chunk.tier, 0) + 1
            if ids is not None and chunk.tier == TIER_LOG:
                report.hits.extend(self._scan_identifiers(ids, chunk))
            if index is None:
                continue
            batch.append(chunk)
            size += len(chunk.data)
            if size >= BATCH_BYTES:
                report.hits.extend(self._scan_batch(index, batch))
                batch, size = [], 0
        if batch and index is not None:
            report.hits.extend(self._scan_batch(index, batch))
        return report

    def _scan_batch(self, index: _NeedleIndex, batch: list[Chunk]) -> list[Hit]:
        """The batch's chunks, then level by level every stream nested in them (gzip, zlib,
        base64): each level is searched in joined passes too, so a million log lines with a
        base64 field each cost a few numpy passes, not a million. A secret is reported once
        per chunk, at the shallowest level it shows (a base64 plaintext is one hit, not also
        its decoded copy one level down)."""
        hits: list[Hit] = []
        # (chunk index, encoding path, bytes) of the current level
        level: list[tuple[int, str, bytes, bool]] = [
            (k, "", c.data, True) for k, c in enumerate(batch)
        ]
        seen: dict[int, set[tuple[str, str]]] = {}  # chunk -> secrets already reported
        budget = [NESTED_BUDGET_FACTOR * len(c.data) + (1 << 20) for c in batch]
        for depth in range(MAX_DEPTH + 1):
            found = _find_many(index, [blob for _, _, blob, _ in level])
            new_seen: dict[int, set[tuple[str, str]]] = {}
            for (k, path, _blob, _expand), matches in zip(level, found, strict=True):
                if not matches:
                    continue
                before = seen.get(k, set())
                for hit in self._report(batch[k], matches, path):
                    if (hit.label, hit.kind) not in before:
                        hits.append(hit)
                        new_seen.setdefault(k, set()).add((hit.label, hit.kind))
            for k, found_here in new_seen.items():
                seen.setdefault(k, set()).update(found_here)
            if depth == MAX_DEPTH:
                break
            deeper: list[tuple[int, str, bytes, bool]] = []
            for k, path, blob, expand in level:
                if not expand or len(blob) < MIN_SECRET_LEN:
                    continue
                for offset, kind, inner, inner_expand in _nested_streams(blob):
                    budget[k] -= len(inner)
                    if budget[k] < 0:
                        break
                    deeper.append((k, f"{path}{kind}@{offset} > ", inner, inner_expand))
            if not deeper:
                break
            level = deeper
        return hits

    def _report(
        self, chunk: Chunk, matches: Iterable[tuple[int, int, int]], path: str
    ) -> Iterator[Hit]:
        # Overlapping matches of one secret are one leak seen through ambiguous encodings
        # (ASCII as UTF-16 LE is also UTF-16 BE one byte earlier): report it once, naming both.
        spans: list[tuple[int, int, int, list[str]]] = []  # (secret, start, end, encodings)
        for pattern, start, end in sorted(matches, key=lambda m: (m[1], m[2])):
            index, name = self._needles[pattern]
            for span in reversed(spans[-8:]):
                if span[0] == index and start < span[2] and span[1] < end:
                    span[3].append(name)
                    break
            else:
                spans.append((index, start, end, [name]))
        for index, start, _end, names in spans:
            secret = self._secrets[index]
            encoding = path + "|".join(sorted(set(names), key=names.index))
            yield Hit(chunk.tier, chunk.location, start, encoding, secret.label, secret.kind)

    def _scan_identifiers(
        self, automaton: ahocorasick_rs.BytesAhoCorasick, chunk: Chunk
    ) -> Iterator[Hit]:
        data = chunk.data
        for pattern, start, end in automaton.find_matches_as_indexes(data, overlapping=True):
            before = data[start - 1 : start]
            after = data[end : end + 1]
            if (before and _IDENT_CHAR.match(before)) or (after and _IDENT_CHAR.match(after)):
                continue  # part of a longer token ("alice" inside "malice")
            value = self._id_values[pattern]
            kind = self._identifiers[value]
            yield Hit(chunk.tier, chunk.location, start, "raw-identifier", f"{kind} {value!r}",
                      "identifier")


WINDOW = 8  # bytes per sampled window (one uint64)
BATCH_BYTES = 8 << 20
FILTER_BITS = 28  # at most 2**28 one-bit slots (32 MiB)


class _NeedleIndex:
    """Exact multi-needle search by sampled windows (see the module docstring)."""

    def __init__(self, needles: list[bytes]) -> None:
        self.needles = needles
        shortest = min(len(n) for n in needles)
        if shortest < WINDOW + 1:
            raise OracleError(f"needle of {shortest} bytes is shorter than {WINDOW + 1}")
        self.stride = min(shortest - WINDOW + 1, 32)
        buf = np.frombuffer(b"".join(needles), dtype=np.uint8)
        lengths = np.fromiter((len(n) for n in needles), dtype=np.int64, count=len(needles))
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        offsets = np.arange(self.stride, dtype=np.int64)
        positions = (starts[:, None] + offsets[None, :]).ravel()
        keys = _windows(buf, positions)
        order = np.argsort(keys)
        self.keys: npt.NDArray[np.uint64] = keys[order]
        self.owner: npt.NDArray[np.int64] = np.repeat(
            np.arange(len(needles), dtype=np.int64), self.stride
        )[order]
        self.shift: npt.NDArray[np.int64] = np.tile(offsets, len(needles))[order]
        # A one-bit-per-slot filter in front of the binary search: random data windows almost
        # never pass it, so the (cache-unfriendly) search runs on a few candidates only.
        self.bits = max(16, min(FILTER_BITS, int(len(keys) * 16).bit_length()))
        self.filter = np.zeros(1 << (self.bits - 3), dtype=np.uint8)
        slots = _slot(self.keys, self.bits)
        np.bitwise_or.at(self.filter, slots >> np.uint64(3),
                         (np.uint8(1) << (slots & np.uint64(7)).astype(np.uint8)))

    def find(self, data: bytes) -> list[tuple[int, int, int]]:
        """(needle index, start, end) of every occurrence, overlapping ones included."""
        if len(data) < WINDOW:
            return []
        arr = np.frombuffer(data, dtype=np.uint8)
        sampled = np.arange(0, len(data) - WINDOW + 1, self.stride, dtype=np.int64)
        windows = _windows(arr, sampled)
        slots = _slot(windows, self.bits)
        passed = (self.filter[slots >> np.uint64(3)] >> (slots & np.uint64(7)).astype(np.uint8)) & 1
        keep = np.nonzero(passed)[0]
        sampled, windows = sampled[keep], windows[keep]
        lo = np.searchsorted(self.keys, windows, side="left")
        hi = np.searchsorted(self.keys, windows, side="right")
        out: set[tuple[int, int, int]] = set()
        for i in np.nonzero(hi > lo)[0]:
            q = int(sampled[i])
            for e in range(int(lo[i]), int(hi[i])):
                needle_id = int(self.owner[e])
                start = q - int(self.shift[e])
                needle = self.needles[needle_id]
                end = start + len(needle)
                if start >= 0 and data[start:end] == needle:
                    out.add((needle_id, start, end))
        return sorted(out, key=lambda m: (m[1], m[0]))


def _find_many(index: _NeedleIndex, blobs: list[bytes]) -> list[list[tuple[int, int, int]]]:
    """``index.find`` over many blobs in joined passes of about :data:`BATCH_BYTES`; matches
    spanning two blobs are discarded, offsets are per blob."""
    out: list[list[tuple[int, int, int]]] = [[] for _ in blobs]
    first = 0
    while first < len(blobs):
        last, size = first, 0
        while last < len(blobs) and (last == first or size + len(blobs[last]) <= BATCH_BYTES):
            size += len(blobs[last])
            last += 1
        starts = [0]
        for blob in blobs[first:last]:
            starts.append(starts[-1] + len(blob))
        for pattern, start, end in index.find(b"".join(blobs[first:last])):
            k = bisect.bisect_right(starts, start) - 1
            if end <= starts[k + 1]:  # wholly inside one blob
                out[first + k].append((pattern, start - starts[k], end - starts[k]))
        first = last
    return out


def _slot(keys: npt.NDArray[np.uint64], bits: int) -> npt.NDArray[np.uint64]:
    """Multiplicative hash of each key to ``bits`` bits."""
    return (keys * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)


def _windows(
    arr: npt.NDArray[np.uint8], positions: npt.NDArray[np.int64]
) -> npt.NDArray[np.uint64]:
    """The little-endian uint64 made of the 8 bytes at each position (8 gathers, no (n, 8)
    temporary, so a million needles cost tens of megabytes, not hundreds)."""
    out = arr[positions].astype(np.uint64)
    for b in range(1, WINDOW):
        out |= arr[positions + b].astype(np.uint64) << np.uint64(8 * b)
    return out


def _nested_streams(data: bytes) -> Iterator[tuple[int, str, bytes, bool]]:
    """Every stream nested in ``data``, as (offset, kind, decoded bytes, expand):

    - gzip / zlib streams that inflate from some offset (a truncated stream yields what
      inflated before the cut; candidates that inflate to nothing are skipped);
    - base64 runs (standard or URL-safe, ≥ :data:`MIN_B64_RUN` characters) decoded at each of
      the four character alignments, since a run may begin with characters that belong to
      the text before the encoded value.

    ``expand`` says whether to look for streams inside the result too: yes for inflated data
    and for a run decoded from its first character, no for the shifted decodings (searched
    for secrets, not unpacked further: that would quadruple the work at every level for
    what is almost always noise).
    """
    view = memoryview(data)
    for match in _MAGIC.finditer(data):
        offset = match.start()
        gzip_ = match.group(0) == _GZIP_MAGIC
        inner = _inflate(view[offset:], 31 if gzip_ else 15)
        if inner:
            yield offset, "gzip" if gzip_ else "zlib", inner, True
    for start, found in _b64_runs(data):
        urlsafe = b"-" in found or b"_" in found
        if urlsafe and (b"+" in found or b"/" in found):
            continue  # mixed alphabets: not one base64 string
        run = found.translate(_URLSAFE_TO_STD) if urlsafe else found
        for shift in range(4):
            part = run[shift:]
            part = part[: len(part) - (len(part) % 4 == 1)]
            try:
                decoded = binascii.a2b_base64(part + b"=" * (-len(part) % 4))
            except binascii.Error:
                continue
            if len(decoded) >= MIN_SECRET_LEN:
                kind = "base64-url" if urlsafe else "base64"
                yield start + shift, kind, decoded, shift == 0


def _b64_runs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Maximal runs of base64-alphabet bytes of at least :data:`MIN_B64_RUN` (padding is
    not part of a run: the decoder pads). ``translate`` + ``find`` keep this at C speed."""
    classes = data.translate(_B64_CLASS)
    probe = b"A" * MIN_B64_RUN
    at = classes.find(probe)
    while at != -1:
        end = classes.find(b"\0", at)
        end = len(data) if end == -1 else end
        yield at, data[at:end]
        at = classes.find(probe, end)


def _inflate(view: memoryview, wbits: int) -> bytes:
    decomp = zlib.decompressobj(wbits)
    out = bytearray()
    step = 1 << 16
    pos = 0
    try:
        while pos < len(view) and len(out) < MAX_INFLATE and not decomp.eof:
            out += decomp.decompress(view[pos : pos + step], MAX_INFLATE - len(out))
            pos += step
            if decomp.unconsumed_tail:
                break  # hit the output cap
    except zlib.error:
        pass  # keep whatever inflated before the corruption
    return bytes(out)


# --- byte sources --------------------------------------------------------------------------------


def from_items(tier: str, items: Iterable[Any]) -> Iterator[Chunk]:
    """Chunks from :class:`semafore.infra.dumps.Item` (anything with ``source`` and ``data``)."""
    for item in items:
        yield Chunk(tier, str(item.source), bytes(item.data))


def from_log_lines(lines: Iterable[str | bytes], *, name: str = "server.log") -> Iterator[Chunk]:
    """One chunk per log line, located as ``name:line N`` (1-based)."""
    for number, line in enumerate(lines, start=1):
        data = line.encode("utf-8") if isinstance(line, str) else line
        yield Chunk(TIER_LOG, f"{name}:line {number}", data.rstrip(b"\r\n"))


def from_log_file(path: str, *, name: str | None = None) -> Iterator[Chunk]:
    with open(path, "rb") as fh:
        yield from from_log_lines(fh, name=name or path)


def from_wire(records: Iterable[tuple[str, bytes]]) -> Iterator[Chunk]:
    """Captured wire bytes as (description, bytes) — e.g. ``("#12 alice/phone up", frame)``."""
    for description, data in records:
        yield Chunk(TIER_WIRE, description, data)
