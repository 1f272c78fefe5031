"""The reversible transforms the oracle undoes (docs/oracle.md "Decode rules").

A decoder looks at one byte string and yields :class:`Decoded` spans: the bytes some
transform would have turned into part of it. The engine matches every span and feeds it back
to every decoder, to a bounded depth. Decoders work on whole byte strings with C-speed
primitives (``bytes.translate``, numpy, ``binascii``, ``zlib``…), never byte by byte in Python.

Families (one table each, below):

- **radix texts** (hex, base32, base64, binary digits, base85): :mod:`.radix`, which uses
  the wide-text, compression and raw-deflate decoders below on what it decodes.
- **escapes**: backslash escapes (JSON ``\\u00e9``, Python/C ``\\xNN``, octal, ``repr(bytes)``),
  percent/URL encoding, quoted-printable, HTML character references, numeric byte lists
  (``[12, 200, 3]``, Java's signed bytes, Go's ``[12 200 3]``), and UTF-8 of Latin-1-decoded
  bytes (mojibake).
- **wide text**: UTF-16 and UTF-32 in both byte orders, where every other (or three of four)
  bytes are zero.
- **compression**: gzip, zlib, bz2, xz and lzma-alone streams found by their magic, forward or
  reversed (a reversed stream ends with its reversed magic), and raw deflate at the start of
  every decoded binary span (it has no magic).
"""

from __future__ import annotations

import binascii
import bisect
import bz2
import codecs
import html
import lzma
import re
import urllib.parse
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick_rs
import numpy as np
import numpy.typing as npt

from semafore.oracle import native

MIN_LEAK = 11  # bytes: the shortest run the matcher can report (12-char canary, bit-shifted)
MAX_INFLATE = 64 << 20  # bytes one compressed stream may expand to
TEXT_RUN = 16  # a decoded stretch this long of text-like bytes is decoded further

@dataclass
class Decoded:
    """Bytes a transform produced and where they came from in the parent: ``locate(i)`` is
    the parent offset of byte ``i``, computed only when a hit asks (``None``: every byte
    maps to ``start``)."""

    name: str
    data: bytes
    start: int
    expand: bool = True  # decode further (False: matched only)
    locate: Callable[[int], int] | None = None

    def parent_offset(self, i: int) -> int:
        return self.start if self.locate is None else self.locate(i)


TEXTY = bytes(0x41 if (32 <= b < 127 or b in (0, 9, 10, 13)) else 0 for b in range(256))


# --- compression -------------------------------------------------------------------------

_MAGICS: tuple[tuple[str, re.Pattern[bytes], int], ...] = (
    ("gzip", re.compile(rb"\x1f\x8b\x08"), 31),
    ("zlib", re.compile(rb"\x78[\x01\x5e\x9c\xda]"), 15),
    ("bz2", re.compile(rb"BZh[1-9]1AY&SY"), 0),
    ("xz", re.compile(rb"\xfd7zXZ\x00"), 0),
    ("lzma", re.compile(rb"\x5d\x00\x00[\x00-\xff]\x00(?:\xff{8}|[\x00-\xff]{5}\x00\x00\x00)"),
     0),
)
_ANCHORS: dict[str, tuple[bytes, ...]] = {
    "gzip": (b"\x1f\x8b\x08",), "zlib": (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"),
    "bz2": (b"BZh",), "xz": (b"\xfd7zXZ\x00",), "lzma": (b"\x5d\x00\x00",),
}
"""Literal bytes every match of each magic starts with: candidates are found in one
Aho-Corasick pass over all anchors (a regex retries at every byte; one ``bytes.find`` per
anchor reads the data 22 times) and then checked in full. A reversed stream ends with its
reversed magic, so ends with the reversed anchor."""

_ANCHOR_LIST: tuple[tuple[int, str, bytes, bool], ...] = tuple(
    (k, kind, anchor[::-1] if backwards else anchor, backwards)
    for backwards in (False, True)
    for k, (kind, _, _) in enumerate(_MAGICS) for anchor in _ANCHORS[kind])
_ANCHOR_SEARCH = ahocorasick_rs.BytesAhoCorasick([a for _, _, a, _ in _ANCHOR_LIST])
_ANY_ANCHOR = re.compile(b"|".join(re.escape(a) for _, _, a, _ in _ANCHOR_LIST))
SHORT = 4096  # below this, one regex pass tells whether any anchor is there at all


def _no_anchor(data: bytes) -> bool:
    return len(data) <= SHORT and _ANY_ANCHOR.search(data) is None


Anchors = list[tuple[int, int, int]]
"""What the one Aho-Corasick pass over all anchors finds: ``(anchor index, start, end)``."""


def _anchors(data: bytes) -> Anchors:
    found: Anchors = _ANCHOR_SEARCH.find_matches_as_indexes(data, overlapping=True)
    return found


def _anchored(data: bytes, backwards: bool, anchors: Anchors | None = None,
              ) -> list[tuple[int, int, int]]:
    """``(magic index, anchor index, offset)`` of every (reversed) anchor, by magic, anchor
    and offset (``anchors``: the pass over ``data`` already made, shared by both
    directions)."""
    found = [(_ANCHOR_LIST[i][0], i, at)
             for i, at, _ in (_anchors(data) if anchors is None else anchors)
             if _ANCHOR_LIST[i][3] == backwards]
    found.sort()
    return found


def _magic_starts(data: bytes, anchors: Anchors | None = None,
                  ) -> Iterator[tuple[str, int, int]]:
    """(kind, wbits, offset) of every magic in ``data`` (zlib's two-byte magic occurs by
    chance every ~16,000 bytes: its deflate data must start without error)."""
    for k, _, at in _anchored(data, False, anchors):
        kind, magic, wbits = _MAGICS[k]
        if magic.match(data, at) and (kind != "zlib" or deflate_may_start(
                data[at + 2: at + 2 + PLAUSIBLE_BYTES])):
            yield kind, wbits, at


def _reversed_streams(data: bytes, anchors: Anchors | None = None,
                      ) -> Iterator[tuple[str, int, int, bytes]]:
    """(kind, wbits, end, stream) for every place ``data`` holds a reversed stream: it ends
    at ``end`` with its reversed magic; ``stream`` is the bytes before, reversed back."""
    for k, i, at in _anchored(data, True, anchors):
        kind, magic, wbits = _MAGICS[k]
        end = at + len(_ANCHOR_LIST[i][2])
        head = data[max(0, end - 2 - PLAUSIBLE_BYTES): end][::-1]  # before the rest
        if magic.match(head) and (kind != "zlib" or deflate_may_start(head[2:])):
            yield kind, wbits, end, data[max(0, end - (MAX_INFLATE >> 4)): end][::-1]


def compressed(data: bytes) -> Iterator[tuple[int, str, bytes]]:
    """(offset, kind, inflated) for every compressed stream found by its magic; a truncated
    or corrupt stream yields what inflated before the damage."""
    if _no_anchor(data):
        return
    anchors = _anchors(data)  # one pass for both directions
    if not anchors:
        return
    view = memoryview(data)
    for kind, wbits, at in _magic_starts(data, anchors):
        inner = _decompress(kind, view[at:], wbits)
        if len(inner) >= MIN_LEAK:
            yield at, kind, inner
    for kind, wbits, end, stream in _reversed_streams(data, anchors):
        inner = _decompress(kind, memoryview(stream), wbits)
        if len(inner) >= MIN_LEAK:
            yield end - 1, f"reversed → {kind}", inner


def compressed_may_start(window: bytes) -> bool:
    """Whether a magic in ``window`` begins (or, reversed, ends) a stream whose first bytes
    decompress without error: the cheap test before a long span is searched in full (the
    decompressors read in order, so a stream that fails here fails there too)."""
    if _no_anchor(window):
        return False
    return (any(_starts_cleanly(kind, window[at:], wbits)
                for kind, wbits, at in _magic_starts(window))
            or any(_starts_cleanly(kind, stream, wbits)
                   for kind, wbits, _, stream in _reversed_streams(window)))


def _starts_cleanly(kind: str, data: bytes, wbits: int) -> bool:
    try:
        if wbits:
            zlib.decompressobj(wbits).decompress(data, MAX_INFLATE)
        elif kind == "bz2":
            bz2.BZ2Decompressor().decompress(data, MAX_INFLATE)
        else:
            lzma.LZMADecompressor().decompress(data, MAX_INFLATE)
    except zlib.error as exc:  # the data ended properly, then its checksum was damaged
        return "check" in str(exc)  # ("incorrect data check", "incorrect length check")
    except (OSError, EOFError, lzma.LZMAError):
        # bz2 outputs a block only once it is complete, so a short stream whose end is damaged
        # (glued to other symbols) errs within the window: it starts cleanly if it yields
        return kind == "bz2" and len(_decompress(kind, memoryview(data), wbits)) >= MIN_LEAK
    return True


_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)
_RETRY_PIECES = (1 << 16, 1 << 12, 1 << 8, 1 << 4, 1)


def _decompress(kind: str, view: memoryview, wbits: int) -> bytes:
    if wbits:
        return _inflate(view, wbits)
    if kind == "bz2":
        return _drain(bz2.BZ2Decompressor, view)
    return _drain(lzma.LZMADecompressor, view)


def _inflate(data: bytes | memoryview, wbits: int) -> bytes:
    return _drain(lambda: zlib.decompressobj(wbits), memoryview(data))


def _drain(make: Callable[[], Any], view: memoryview) -> bytes:
    """What a decompressor yields from ``view`` up to the first damage. A call that meets an
    error (a corrupt byte, a stream cut or glued to other symbols, a checksum that does not
    match) loses its whole output, and a bz2 block is only output once complete, so the
    stretch that failed is fed again in ever smaller pieces: what decoded before the damage
    is kept."""
    good = 0  # input known to feed without error
    best = b""
    for piece in _RETRY_PIECES:
        decomp = make()
        out = bytearray()
        pos = 0
        try:
            if good:
                out += decomp.decompress(view[:good], MAX_INFLATE)
                pos = good
            while pos < len(view) and len(out) < MAX_INFLATE and not decomp.eof:
                out += decomp.decompress(view[pos: pos + piece], MAX_INFLATE - len(out))
                pos += piece
                if getattr(decomp, "unconsumed_tail", b""):
                    break
            return bytes(out)
        except _ERRORS:
            good = pos
            if len(out) > len(best):
                best = bytes(out)
    return best


@dataclass(frozen=True)
class Inflated:
    data: bytes
    expand: bool


def raw_deflate(data: bytes | memoryview) -> Inflated | None:
    """Raw deflate has no magic and a fixed-Huffman block decodes almost any bits, so only a
    stream that ends properly counts, and it is decoded further only if it looks like more
    than noise (text, wide text, a compressed stream): garbage input ends "properly" often
    enough to flood the recursion otherwise. A stream that is itself raw deflate counts."""
    return raw_deflate_fed((data,))


def raw_deflate_fed(pieces: Iterable[bytes | memoryview]) -> Inflated | None:
    """:func:`raw_deflate` of the concatenated ``pieces``, fed in order and no further than
    the stream's end or its first error (a junk start that passed the probes usually fails
    within a few hundred bytes: the caller need not materialise the rest)."""
    decomp = zlib.decompressobj(-15)
    parts: list[bytes] = []
    size = 0
    try:
        for piece in pieces:
            parts.append(decomp.decompress(piece, MAX_INFLATE - size))
            size += len(parts[-1])
            if decomp.eof or decomp.unconsumed_tail or size >= MAX_INFLATE:
                break
    except zlib.error:
        return None
    out = b"".join(parts)
    if not decomp.eof or len(out) < MIN_LEAK:
        return None
    structured = (out.translate(TEXTY).find(b"A" * TEXT_RUN) != -1
                  or out.count(0) * 4 >= len(out)
                  or (not _no_anchor(out) and next(_magic_starts(out), None) is not None)
                  or _ends_properly(out))
    return Inflated(out, structured)


def _ends_properly(data: bytes) -> bool:
    """Whether ``data`` is itself a complete raw deflate stream (deflate over deflate)."""
    decomp = zlib.decompressobj(-15)
    try:
        decomp.decompress(data, MAX_INFLATE)
    except zlib.error:
        return False
    return decomp.eof


PLAUSIBLE_BYTES = 32
"""Bytes of a would-be raw deflate stream :func:`deflate_plausible` reads: enough for a
dynamic block's code-length code (bit 74) and eight fixed-Huffman codes with their length
and distance codes (at most 31 bits each)."""
FIXED_CODES_CHECKED = 8
FEW_CANDIDATES = 64
_LENGTH_EXTRA = np.array([0] * 8 + [n for n in range(1, 6) for _ in range(4)] + [0], np.int64)
_LENGTH_BASE = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51,
                         59, 67, 83, 99, 115, 131, 163, 195, 227, 258], np.int64)
_DIST_EXTRA = np.array([0, 0, 0, 0] + [n for n in range(1, 14) for _ in range(2)] + [0, 0],
                       np.int64)
_DIST_BASE = np.array([1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
                       513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
                       1 << 30, 1 << 30], np.int64)  # codes 30, 31 are invalid: never near
_REVERSED5 = np.array([int(f"{d:05b}"[::-1], 2) for d in range(32)], np.int64)


def _fixed_tables() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8],
                             npt.NDArray[np.int64]]:
    """For the next 9 stream bits read LSB first as a number ``x``: the fixed-Huffman code
    they start with (RFC 1951 §3.2.6, codes packed MSB first): its kind (0 literal, 1 end of
    block, 2 length, 3 invalid), its length in bits and, for a length, its index (0..28)."""
    kind = np.zeros(512, dtype=np.uint8)
    width = np.zeros(512, dtype=np.uint8)
    length = np.zeros(512, dtype=np.int64)
    for x in range(512):
        code = int(f"{x:09b}"[::-1], 2)  # the 9 bits in stream order, first bit most significant
        c7, c8 = code >> 2, code >> 1
        if c7 <= 0b0010111:
            kind[x], width[x], length[x] = (1 if c7 == 0 else 2), 7, max(0, c7 - 1)
        elif 0x30 <= c8 <= 0xBF:
            kind[x], width[x] = 0, 8
        elif 0xC0 <= c8 <= 0xC7:
            kind[x], width[x], length[x] = (3 if c8 >= 0xC6 else 2), 8, min(28, c8 - 0xC0 + 23)
        else:
            kind[x], width[x] = 0, 9
    return kind, width, length


_FIXED_KIND, _FIXED_WIDTH, _FIXED_LENGTH = _fixed_tables()
if native.BUILT:  # the compiled prefilter reads these same tables (native.py)
    native.ext.init_deflate(_FIXED_KIND, _FIXED_WIDTH, _FIXED_LENGTH, _LENGTH_EXTRA,
                            _LENGTH_BASE, _DIST_EXTRA, _DIST_BASE, _REVERSED5)


def _words(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """``out[i, b]``: bytes ``b..b+3`` of row ``i`` as a little-endian number (rows padded)."""
    r = rows.astype(np.int64)
    return r[:, :-3] | (r[:, 1:-2] << 8) | (r[:, 2:-1] << 16) | (r[:, 3:] << 24)


def _bits(words: npt.NDArray[np.int64], at: npt.NDArray[np.int64], count: int,
          ) -> npt.NDArray[np.int64]:
    """``count`` (≤ 25) bits of each row, read LSB first from bit ``at``."""
    picked: npt.NDArray[np.int64] = words[np.arange(len(words)), at >> 3]
    return (picked >> (at & 7)) & ((1 << count) - 1)


def deflate_plausible(heads: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """For rows of the first bytes of would-be raw deflate streams (up to
    :data:`PLAUSIBLE_BYTES`; shorter rows are zero-padded), whether each can be the start of a
    valid one, decided for all rows at once (zlib reads in order, so a stream whose first
    block header is invalid fails whole; RFC 1951 §3.2.3-7):

    - type 3 is invalid; a stored block's LEN and NLEN must be complements;
    - a dynamic block needs HLIT ≤ 29, HDIST ≤ 29 and a code-length code that is complete
      (zlib refuses an incomplete or over-subscribed one);
    - a fixed block's first :data:`FIXED_CODES_CHECKED` codes must be valid: no code 286/287,
      no distance code 30/31, no copy from further back than the bytes already out.

    Only what zlib itself rejects is rejected — a necessary condition, never a guess
    (``tests/oracle/test_deflate_prefilter.py`` checks it against zlib)."""
    if len(heads) < FEW_CANDIDATES:  # zlib itself is cheaper on a handful
        return np.ones(len(heads), dtype=np.bool_)
    width = PLAUSIBLE_BYTES + 4
    rows = np.zeros((len(heads), width), dtype=np.uint8)
    take = min(heads.shape[1], PLAUSIBLE_BYTES)
    rows[:, :take] = heads[:, :take]
    first = rows[:, 0]
    btype = (first >> 1) & 3
    ok = np.zeros(len(rows), dtype=np.bool_)
    stored = btype == 0
    r16 = rows.astype(np.uint16)
    ok[stored] = ((r16[stored, 1] | (r16[stored, 2] << 8))
                  ^ (r16[stored, 3] | (r16[stored, 4] << 8))) == 0xFFFF
    dynamic = np.flatnonzero(btype == 2)
    if len(dynamic):
        d_rows = _words(rows[dynamic])
        start = np.full(len(dynamic), 3, dtype=np.int64)
        hlit = _bits(d_rows, start, 5)
        hdist = _bits(d_rows, start + 5, 5)
        hclen = _bits(d_rows, start + 10, 4) + 4
        kraft = np.zeros(len(dynamic), dtype=np.int64)
        for i in range(19):
            length = _bits(d_rows, start + 14 + 3 * i, 3)
            kraft += np.where((i < hclen) & (length > 0), 128 >> length, 0)
        ok[dynamic] = (hlit <= 29) & (hdist <= 29) & ((kraft == 128) | (kraft == 0))
    fixed = np.flatnonzero(btype == 1)
    if len(fixed):
        f_rows = _words(rows[fixed])
        at = np.full(len(fixed), 3, dtype=np.int64)
        out = np.zeros(len(fixed), dtype=np.int64)
        alive = np.ones(len(fixed), dtype=np.bool_)
        going = np.ones(len(fixed), dtype=np.bool_)  # before any end of block
        for _ in range(FIXED_CODES_CHECKED):
            if not (going & alive).any():
                break
            peek = _bits(f_rows, at, 9)
            kind = _FIXED_KIND[peek]
            at += _FIXED_WIDTH[peek]
            index = _FIXED_LENGTH[peek]
            extra = _LENGTH_EXTRA[index]
            copy = _LENGTH_BASE[index] + _bits(f_rows, at, 5) % (1 << extra)
            at += np.where(kind == 2, extra, 0)
            dcode = _REVERSED5[_bits(f_rows, at, 5)]
            at += np.where(kind == 2, 5, 0)
            dextra = _DIST_EXTRA[dcode]
            distance = _DIST_BASE[dcode] + (_bits(f_rows, np.minimum(at, 8 * PLAUSIBLE_BYTES - 8),
                                                  13) % (1 << dextra))
            at += np.where(kind == 2, dextra, 0)
            bad = (kind == 3) | ((kind == 2) & (distance > out))
            alive &= ~(going & bad)
            out += np.where(kind == 0, 1, np.where(kind == 2, copy, 0))
            going &= (kind != 1) & alive
            at = np.minimum(at, 8 * PLAUSIBLE_BYTES - 25)
        ok[fixed] = alive
    return ok


def deflate_may_start(prefix: bytes | memoryview) -> bool:
    """False when the first bytes of a would-be raw deflate stream are already invalid (zlib
    reads its input in order, so the whole stream would fail at the same byte)."""
    try:
        zlib.decompressobj(-15).decompress(prefix, MAX_INFLATE)
    except zlib.error:
        return False
    return True


DEFLATE_LOOKBACK = 32
"""Bytes before a binary stretch where a raw deflate stream may start: its first bytes can
be printable (a fixed-Huffman block of text codes mostly to printable bytes)."""
_LEADING_TEXT = re.compile(rb"[\x20-\x7e\t\r\n]*")
_TEXT_RUN = re.compile(rb"[\x20-\x7e\t\r\n]{8,}")


def _binary_after_text(data: bytes) -> Iterator[int]:
    """Where a binary byte follows the data's leading text or a run of 8+ printable bytes."""
    lead = _LEADING_TEXT.match(data)
    if lead is not None and lead.end() < len(data):
        yield lead.end()
    for run in _TEXT_RUN.finditer(data, lead.end() if lead is not None else 0):
        if run.end() < len(data):
            yield run.end()


def deflate_spans(data: bytes, at_start: bool) -> Iterator[Decoded]:
    """Raw deflate where a binary span begins, and where binary bytes start after text (a
    deflate stream written into a text record, or glued to a word): from each of the
    :data:`DEFLATE_LOOKBACK` bytes before such a stretch, every offset that inflates to a
    properly ended stream. A stretch counts after 8 printable bytes (or at the start), so
    random binary, whose printable runs are short, costs a few probes per kilobyte; each
    candidate's first block must be plausible (:func:`deflate_plausible`) before the whole
    stream is tried."""
    classes = data[:TEXT_RUN].translate(TEXTY)
    tried = 0
    if at_start and classes.count(b"A") != len(classes):
        tried = 1
        inner = raw_deflate(data)
        if inner is not None:
            yield Decoded("deflate", inner.data, 0, expand=inner.expand)
    starts: list[int] = []
    for binary in _binary_after_text(data):
        starts.extend(range(max(tried, binary - DEFLATE_LOOKBACK), binary + 1))
        tried = binary + 1
    if not starts:
        return
    at = np.array(starts, dtype=np.int64)
    if native.on():  # every start's first block, strictly, in C (what is inflated is data)
        plausible = np.frombuffer(native.ext.plausible_at(data, at * 8, True), dtype=np.bool_)
    else:
        padded = np.frombuffer(data + bytes(PLAUSIBLE_BYTES), dtype=np.uint8)
        plausible = deflate_plausible(padded[at[:, None] + np.arange(PLAUSIBLE_BYTES)])
    view = memoryview(data)
    for start in at[plausible].tolist():
        inner = raw_deflate(view[start:])
        if inner is not None:  # printable bytes inflate "properly" often: try them all
            yield Decoded("deflate", inner.data, start, expand=inner.expand)


def compressed_spans(data: bytes) -> Iterator[Decoded]:
    for offset, kind, inner in compressed(data):
        yield Decoded(kind, inner, offset)


# --- escapes and wide text ---------------------------------------------------------------

_PERCENT = re.compile(rb"%[0-9A-Fa-f]{2}")
_QP = re.compile(rb"=(?:[0-9A-F]{2}|\r?\n)")
_NUMBERS = re.compile(rb"(?:-?\d{1,3}(?:\s*[,;]\s*|\s+)){11,}-?\d{1,3}")
_NUMBER = re.compile(rb"-?\d{1,3}")


def _as_utf8(error: UnicodeError) -> tuple[bytes, int]:
    assert isinstance(error, UnicodeEncodeError)
    return error.object[error.start:error.end].encode("utf-8", "replace"), error.end


codecs.register_error("semafore-oracle-utf8", _as_utf8)


def _text_to_bytes(text: str) -> bytes:
    """Code points below 256 as one byte each (what an escaped binary value decodes to),
    others as UTF-8."""
    return text.encode("latin-1", "semafore-oracle-utf8")


def _unescape(data: bytes) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _text_to_bytes(data.decode("unicode_escape", "replace"))


_NUMBER_CHARS = bytes(2 if chr(c) in "0123456789" else 1 if chr(c) in "-,; \t\r\n\x0b\x0c"
                      else 0 for c in range(256))  # 2: a digit, 1: a sign or separator
_NUMBERS_SHORTEST = 23  # 12 one-digit numbers and 11 one-character separators
_NUMBERS_FEWEST = 12  # numbers in a list


def _numbers(data: bytes) -> Iterator[Decoded]:
    """Byte lists, searched only inside runs of digits, signs and separators long enough to
    hold twelve numbers and holding twelve groups of digits (the regex alone retries at
    every digit of a log line, and at every byte of a run of blank lines)."""
    if len(data) < _NUMBERS_SHORTEST:
        return
    for lo, hi in (native.ext.number_runs(data, _NUMBER_CHARS, _NUMBERS_SHORTEST,
                                          _NUMBERS_FEWEST)
                   if native.on() else _number_runs(data)):
        for match in _NUMBERS.finditer(data, lo, hi):
            values = [int(n) for n in _NUMBER.findall(match.group(0))]
            if all(-128 <= v <= 255 for v in values):
                yield Decoded("byte list", bytes(v & 0xFF for v in values), match.start())


def _number_runs(data: bytes) -> list[tuple[int, int]]:
    """The runs of digits, signs and separators of at least :data:`_NUMBERS_SHORTEST` bytes
    holding :data:`_NUMBERS_FEWEST` groups of digits (the reference of
    ``_fast.number_runs``)."""
    classes = np.frombuffer(data.translate(_NUMBER_CHARS), dtype=np.int8)
    fits = (classes != 0).astype(np.int8)
    edges = np.flatnonzero(np.diff(fits, prepend=0, append=0))
    starts, ends = edges[0::2], edges[1::2]
    digit = classes == 2
    numbers = np.concatenate(([0], np.cumsum(digit & ~np.concatenate(([False], digit[:-1])))))
    enough = ((ends - starts >= _NUMBERS_SHORTEST)
              & (numbers[ends] - numbers[starts] >= _NUMBERS_FEWEST))
    return list(zip(starts[enough].tolist(), ends[enough].tolist(), strict=True))


_WIDE = bytes(0x5A if b == 0 else 0x4E for b in range(256))  # Z: zero byte, N: other


def wide_spans(data: bytes) -> Iterator[Decoded]:
    """UTF-16/32 stretches: where one byte lane of every 2 (4) is zero for at least 8 code
    units, every other lane of that stretch is taken as text (code points below 256, the
    Latin-1 range, which is what a binary value decoded as Latin-1 re-encodes to)."""
    if data.count(0) < 8 or not _zero_lanes_possible(data):
        return
    classes = data.translate(_WIDE)
    for width in (2, 4):
        for phase in range(width):
            lane = classes[phase::width]
            at = lane.find(b"Z" * 8)
            while at != -1:
                end = lane.find(b"N", at)
                end = len(lane) if end == -1 else end
                lo = max(0, phase + at * width - width + 1)
                hi = min(len(data), phase + end * width + width - 1)
                for text_lane in range(width):
                    if text_lane == phase:
                        continue
                    first = lo + (text_lane - lo) % width
                    text = data[first:hi:width]
                    if len(text) >= MIN_LEAK and text.count(0) < len(text) // 2:
                        yield Decoded(_wide_name(width, first), text, first)
                at = lane.find(b"Z" * 8, end)


def _zero_lanes_possible(data: bytes) -> bool:
    """Whether some 8 zero bytes lie each within 4 bytes of the next: what any UTF-16/32
    stretch of 8 code units below U+0100 has (the cheap test before the lane search)."""
    return native.ext.zero_lanes(data) if native.on() else _zero_lanes_reference(data)


def _zero_lanes_reference(data: bytes) -> bool:
    zeros = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0)
    if len(zeros) < 8:
        return False
    close = np.diff(zeros) <= 4
    return bool((np.convolve(close, np.ones(7, dtype=np.int64), "valid") == 7).any())


def _wide_name(width: int, first: int) -> str:
    """Byte order as seen from the span's start (a stretch starting mid code unit reads as
    the other order: the text is the same)."""
    if width == 2:
        return "utf-16le" if first % 2 == 0 else "utf-16be"
    return {0: "utf-32le", 3: "utf-32be"}.get(first % 4, "utf-32")


def text_spans(data: bytes, bounds: Sequence[int] = ()) -> Iterator[Decoded]:
    """Escapes, wide text and mojibake. Each escape family is undone over the lines that hold
    its trigger (so a hit is located in its record), one span per run of consecutive
    triggering lines (so an escaped value split across lines stays whole). ``bounds`` are
    record starts inside ``data`` (records joined back to back, e.g. store documents or wire
    frames, have no newline between them): a line also ends there unless a trigger lies
    within :data:`MERGE_GAP` of it (the unescaped head or tail of a value cut there, e.g. a
    bz2 magic), and a hit in the span is located at the start of the line (record) it
    decodes from."""
    yield from wide_spans(data)
    for name, trigger, undo, leads in _ESCAPES:
        if not any(lead in data for lead in leads):  # memchr speed; the regex is not
            continue
        for lo, hi in _lines_with(data, trigger, bounds):
            line = data[lo:hi]
            if _is_text(line, mojibake=undo is _mojibake):
                yield Decoded(name, undo(line), lo,
                              locate=_line_locator(undo, line, lo, bounds))
    yield from _numbers(data)


def _is_text(line: bytes, mojibake: bool) -> bool:
    """Escapes are a text convention: a binary stretch with a chance backslash is not
    unescaped (that would flood the recursion with noise)."""
    if mojibake:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return line.translate(TEXTY).count(b"A") * 10 >= len(line) * 9


MERGE_GAP = 64
"""Triggers this close join one span even across a trigger-free line or record between them
(an escaped value cut into three records whose middle piece holds no escape), and a record
boundary this close to a trigger does not end its line."""


def _find_all(data: bytes, needle: bytes) -> Iterator[int]:
    at = data.find(needle)
    while at != -1:
        yield at
        at = data.find(needle, at + 1)


def _lines_with(data: bytes, trigger: re.Pattern[bytes], bounds: Sequence[int] = (),
                ) -> Iterator[tuple[int, int]]:
    """``(lo, hi)``: each run of consecutive lines (cut at newlines and at ``bounds``)
    holding a trigger."""
    lo = hi = -1
    last = -1  # end of the previous trigger
    for match in trigger.finditer(data):
        if match.end() <= hi:  # inside the run already
            last = match.end()
            continue
        start = data.rfind(b"\n", 0, match.start()) + 1
        end = data.find(b"\n", match.end())
        end = len(data) if end == -1 else end + 1
        if bounds:  # the records within MERGE_GAP of the trigger are all in its line
            before = bisect.bisect_right(bounds, max(0, match.start() - MERGE_GAP)) - 1
            start = max(start, bounds[before]) if before >= 0 else start
            after = bisect.bisect_left(bounds, match.end() + MERGE_GAP)
            end = min(end, bounds[after]) if after < len(bounds) else end
        if hi >= 0 and (start <= hi or match.start() - last <= MERGE_GAP):
            hi = max(hi, end)  # the next line, or a trigger-free one between, joins the run
        else:
            if hi > lo >= 0:
                yield lo, hi
            lo, hi = start, end
        last = match.end()
    if hi > lo >= 0:
        yield lo, hi


def _line_locator(undo: Callable[[bytes], bytes], run: bytes, lo: int, bounds: Sequence[int],
                  ) -> Callable[[int], int]:
    """Decoded offset -> the start of the line (record) of the run it decodes from: the last
    line whose decoded prefix ends at or before it (lines and prefixes found only when a
    hit asks)."""

    def locate(i: int) -> int:
        newlines = [lo + k + 1 for k in _find_all(run[:-1], b"\n")]
        inside = bounds[bisect.bisect_right(bounds, lo):bisect.bisect_left(bounds, lo + len(run))]
        starts = sorted({*newlines, *inside})
        low, high = 0, len(starts)  # lines 1..len(starts) start at starts[k - 1]
        while low < high:
            mid = (low + high + 1) // 2
            if len(undo(run[:starts[mid - 1] - lo])) <= i:
                low = mid
            else:
                high = mid - 1
        return lo if low == 0 else starts[low - 1]

    return locate


_MOJIBAKE = re.compile(rb"[\xc2\xc3][\x80-\xbf]")


def _mojibake(data: bytes) -> bytes:
    return data.decode("utf-8", "replace").encode("latin-1", "replace")


_CHAR_REF = re.compile(r"&#([xX][0-9a-fA-F]{1,6}|[0-9]{1,7});")


def _char_ref(match: re.Match[str]) -> str:
    ref = match.group(1)
    code = int(ref[1:], 16) if ref[0] in "xX" else int(ref)
    return chr(code) if code <= 0x10FFFF else "\ufffd"


def _html(data: bytes) -> bytes:
    """Numeric references taken literally (``html.unescape`` maps &#128;-&#159; to
    Windows-1252, which would garble an escaped binary value), then named ones."""
    return _text_to_bytes(html.unescape(_CHAR_REF.sub(_char_ref, data.decode("latin-1"))))


_ESCAPES: tuple[tuple[str, re.Pattern[bytes], Callable[[bytes], bytes], tuple[bytes, ...]],
                ...] = (
    ("backslash escapes", re.compile(rb"\\[xuU0-7nrt\\'\"]"), _unescape, (b"\\",)),
    ("percent", _PERCENT, urllib.parse.unquote_to_bytes, (b"%",)),
    ("quoted-printable", _QP, binascii.a2b_qp, (b"=",)),
    ("html entities", re.compile(rb"&#|&amp;"), _html, (b"&",)),
    ("latin-1 as utf-8", _MOJIBAKE, _mojibake, (b"\xc2", b"\xc3")),
)
"""Each escape family: its name, its trigger, how it is undone, and the bytes every trigger
begins with (a span without any is skipped before the regex runs)."""
