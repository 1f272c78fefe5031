"""Radix texts (hex, base32, base64, binary digits, base85), decoded once per alphabet
(docs/oracle.md "Decode rules" and "Cost"; issue #12 item 1).

A *region* is a run of an alphabet's characters and separators (space, ``:``, ``-``, ``,``,
``\\x``, ``0x``…) holding enough symbols to carry a minimal leak. The symbols of every region
of a span, separators dropped, are read as one stream — so separated hex, MIME line breaks and
a value split over two fields come out contiguous, in any letter case where the alphabet has
one — and the stream is decoded **once**:

- A bit-aligned alphabet (``b`` bits a symbol) packs the stream into bytes from its first bit.
  A value encoded after ``k`` other symbols sits ``k·b mod 8`` bits off a byte boundary; the
  matcher's bit-shifted variants find it there, so the one decode is matched at every
  alignment. The same decode serves the nested search at every alignment: the bytes of the
  stream read from bit ``s`` are ``(B[m] << 8 | B[m+1]) >> (8 - s)``, so 65,536-entry tables
  indexed by a byte pair answer, for all eight shifts at once, "is this byte text-like",
  "is it zero", "can a compression magic start here". Only where a shift has a run of 16
  text-like bytes, four zero bytes at stride 4 (the least any UTF-16/32 stretch of 8 units
  has) or a magic whose bits all fit is that shift materialised and handed to the exact
  decoders (:func:`.decoders.compressed`, :func:`.decoders.wide_spans`); raw deflate, which
  has no magic, is tried at every region start whose first block header is valid. These are
  necessary conditions of what the exact decoders look for, so they prune work, not leaks
  (``tests/oracle/test_radix.py`` compares them with a decode at every alignment).
- Base85 (5 symbols → 4 bytes) is decoded at its five alignments from one sliding sum
  (``uint32`` arithmetic wraps exactly as the 32-bit words do).

The byte-reversed span (a radix text written backwards) is the same symbols in reverse order:
it reuses the forward symbols and is decoded and searched the same way. Where a decoded byte came
from (for hit locations) is computed only when a span is matched or decoded further.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from semafore.oracle import native
from semafore.oracle.decoders import (
    MIN_LEAK,
    PLAUSIBLE_BYTES,
    TEXT_RUN,
    TEXTY,
    Decoded,
    Inflated,
    compressed,
    compressed_may_start,
    deflate_may_start,
    deflate_plausible,
    raw_deflate,
    raw_deflate_fed,
    wide_spans,
)

IntArray = npt.NDArray[np.integer[Any]]
U8 = npt.NDArray[np.uint8]
BREAK = 0xFF  # a byte that is neither a symbol nor a separator: ends a region
_HEX_PREFIX = re.compile(rb"(?<![0-9A-Fa-f])0[xX]")
MAGIC_WINDOW = 80  # bytes either side of a candidate magic tried before the whole shift
DEFLATE_HEAD = 8  # bytes of a candidate raw deflate stream tried first (most junk fails)
DEFLATE_PROBE = 64  # then these, before the rest


@dataclass(frozen=True)
class Alphabet:
    name: str
    symbols: bytes
    bits: int  # 1, 4, 5, 6; 0 for base85
    any_case: bool = False
    aliases: tuple[tuple[bytes, bytes], ...] = ()  # (extra characters, the symbols they mean)

    def table(self) -> npt.NDArray[np.int16]:
        lut = np.full(256, -1, dtype=np.int16)
        for value, char in enumerate(self.symbols):
            lut[char] = value
            if self.any_case:
                lut[ord(chr(char).lower())] = value
                lut[ord(chr(char).upper())] = value
        for extra, meant in self.aliases:
            for e, m in zip(extra, meant, strict=True):
                lut[e] = lut[m]
                if self.any_case:
                    lut[ord(chr(e).lower())] = lut[m]
        return lut


_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
ALPHABETS: tuple[Alphabet, ...] = (
    Alphabet("hex", b"0123456789abcdef", 4, any_case=True),
    Alphabet("base32", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 5, any_case=True),
    Alphabet("base32hex", b"0123456789ABCDEFGHIJKLMNOPQRSTUV", 5, any_case=True),
    Alphabet("base32-crockford", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", 5, any_case=True,
             aliases=((b"ILO", b"110"),)),
    Alphabet("z-base32", b"ybndrfg8ejkmcpqxot1uwisza345h769", 5, any_case=True),
    # Standard and URL-safe share one table: a value split across both still decodes.
    Alphabet("base64", _B64 + b"+/", 6, aliases=((b"-_", b"+/"),)),
    Alphabet("base64-crypt", b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
             6),
    Alphabet("base64-bcrypt", b"./" + _B64, 6),
    Alphabet("xxencode", b"+-0123456789" + _B64[:52], 6),
    Alphabet("binary", b"01", 1),
    Alphabet("ascii85", bytes(range(33, 118)), 0),
    Alphabet("z85", b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
             b".-:+=^!/*?&<>()[]{}@%$#", 0),
    Alphabet("base85", b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
             b"!#$%&()*+-;<=>?@^_`{|}~", 0),
)
"""Every radix alphabet the oracle reads (one table; a new alphabet is one entry)."""
SEPARATORS = b" \t\r\n:-,.;|_/\\%'\"x"  # minus each alphabet's own symbols


class Radix:
    """Precomputed tables for one alphabet."""

    def __init__(self, alphabet: Alphabet) -> None:
        self.alphabet = alphabet
        lut = alphabet.table()
        valid = lut >= 0
        # base85 streams carry no separators (only line breaks)
        separators = ({c for c in SEPARATORS if not valid[c]} if alphabet.bits
                      else set(b"\r\n"))
        self.region_table = bytes(0x41 if valid[c] or c in separators else 0
                                  for c in range(256))
        self.value_table = bytes(int(lut[c]) if valid[c] else BREAK for c in range(256))
        self.symbol_table = bytes(1 if valid[c] else 0 for c in range(256))
        self.separators = bytes(sorted(separators))
        self.deleted = bytes(1 if c in separators else 0 for c in range(256))  # (C's form)
        bits = alphabet.bits or 6.4
        self.min_symbols = int(np.ceil(MIN_LEAK * 8 / bits))
        self.probe = b"A" * self.min_symbols
        # Bit shifts where a symbol boundary can fall (k·bits mod 8): base64 0/2/4/6, hex 0/4.
        self.shifts = (np.bitwise_or.reduce([1 << (k * alphabet.bits % 8) for k in range(8)])
                       if alphabet.bits else 1)
        self.group = {0: 5, 1: 8, 4: 2, 5: 8, 6: 4}[alphabet.bits]


RADIXES = tuple(Radix(a) for a in ALPHABETS)


# --- symbols -------------------------------------------------------------------------------

@dataclass
class Symbols:
    """The symbols of every long-enough region of one span, in order, separators dropped."""

    values: U8
    firsts: IntArray  # symbol index where each kept region begins
    counts: IntArray  # its symbol count
    _offsets: Callable[[], IntArray]
    _cache: IntArray | None = None

    def offsets(self) -> IntArray:
        """Offset in the span of every kept symbol (computed once, when first needed)."""
        if self._cache is None:
            self._cache = self._offsets()
        return self._cache


def symbols(data: bytes, radix: Radix) -> Symbols | None:
    """The alphabet's symbols in ``data``: separators deleted and every other character
    turned into its value or :data:`BREAK` by one ``bytes.translate``; regions shorter than a
    minimal leak dropped. ``None`` when no region is long enough (one translate and a find)."""
    if radix.probe not in data.translate(radix.region_table):
        return None
    src = data
    expanded_z = radix.alphabet.name == "ascii85" and b"z" in data
    if expanded_z:  # "z" abbreviates "!!!!!" (four zero bytes)
        src = src.replace(b"z", b"!!!!!")
    if radix.alphabet.name == "hex" and (b"0x" in src or b"0X" in src):
        # "0x" opening a token introduces a hex byte: its 0 is a separator (inside a hex run,
        # "…0x1" is the run's last digit and a separator)
        src = _HEX_PREFIX.sub(b"  ", src)
    if native.on():  # the same symbols, regions and offsets in one C pass
        return _compiled_symbols(data, src, radix, expanded_z)
    stream = np.frombuffer(src.translate(radix.value_table, radix.separators), dtype=np.uint8)
    breaks = np.flatnonzero(stream == BREAK)
    counts = np.diff(np.concatenate(([-1], breaks, [len(stream)]))) - 1
    keep = counts >= radix.min_symbols
    if not keep.any():
        return None
    if len(breaks):
        mask = np.repeat(keep, counts + 1)[:len(stream)]  # each region and the break after it
        mask[breaks] = False
        values = stream[mask]
    else:
        mask = np.ones(len(stream), dtype=np.bool_)
        values = stream
    kept = counts[keep]
    firsts = np.cumsum(kept) - kept

    def offsets() -> IntArray:
        is_symbol = np.frombuffer(src.translate(radix.symbol_table), dtype=np.bool_)
        found: npt.NDArray[np.int64] = np.flatnonzero(is_symbol)[mask[stream != BREAK]]
        return _unexpanded(data, found) if expanded_z else found

    return Symbols(values, firsts, kept, offsets)


def _unexpanded(data: bytes, found: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Offsets in the ascii85 text with each ``z`` expanded to ``!!!!!`` back to ``data``."""
    zs = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("z"))
    at = zs + 4 * np.arange(len(zs))  # where each "z" begins in the expanded text
    k = np.searchsorted(at, found, side="right")
    inside = (k > 0) & (found < at[np.maximum(k - 1, 0)] + 5)
    out: npt.NDArray[np.int64] = np.where(inside, zs[np.maximum(k - 1, 0)], found - 4 * k)
    return out


def _compiled_symbols(data: bytes, src: bytes, radix: Radix, expanded_z: bool) -> Symbols | None:
    found = native.ext.symbols(src, radix.value_table, radix.deleted, radix.min_symbols, False)
    if found is None:
        return None

    def offsets() -> IntArray:
        where = native.ext.symbols(src, radix.value_table, radix.deleted, radix.min_symbols, True)
        assert where is not None
        at = np.frombuffer(where[3], dtype=np.int64)
        return _unexpanded(data, at) if expanded_z else at

    return Symbols(np.frombuffer(found[0], dtype=np.uint8), np.frombuffer(found[1], np.int64),
                   np.frombuffer(found[2], np.int64), offsets)


def reversed_symbols(sym: Symbols, length: int) -> Symbols:
    """The same symbols read from the byte-reversed span (offsets in the reversed span)."""
    values = np.ascontiguousarray(sym.values[::-1])
    counts = sym.counts[::-1]
    firsts = np.cumsum(counts) - counts
    return Symbols(values, firsts, counts, lambda: length - 1 - sym.offsets()[::-1])


# --- decoding ------------------------------------------------------------------------------

def pack(values: U8, bits: int) -> U8:
    """Symbols of ``bits`` each packed into bytes from the first bit (a final partial group
    padded with zero bits)."""
    if native.on():
        return np.frombuffer(native.ext.pack(values, bits), dtype=np.uint8)
    group = {1: 8, 4: 2, 5: 8, 6: 4}[bits]
    pad = -len(values) % group
    v = np.concatenate((values, np.zeros(pad, dtype=np.uint8))) if pad else values
    if bits == 1:
        return np.packbits(v)
    if bits == 4:
        out4: U8 = (v[0::2] << np.uint8(4)) | v[1::2]
        return out4
    if bits == 6:
        g6 = v.reshape(-1, 4).astype(np.uint32)
        w6 = (g6[:, 0] << 18) | (g6[:, 1] << 12) | (g6[:, 2] << 6) | g6[:, 3]
        out6: U8 = w6.astype(">u4").view(np.uint8).reshape(-1, 4)[:, 1:].ravel()
        return out6
    g5 = v.reshape(-1, 8).astype(np.uint64)
    w5 = g5[:, 0] << np.uint64(35)
    for i in range(1, 8):
        w5 |= g5[:, i] << np.uint64(35 - 5 * i)
    out5: U8 = w5.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 3:].ravel()
    return out5


def base85_alignments(values: U8) -> list[U8]:
    """The stream decoded from each of its first five symbols: one sliding sum of five
    weighted symbols (mod 2**32, as a 32-bit word wraps) read at stride 5 per alignment. The
    stream is padded with four of the highest symbol, as a decoder pads a final partial group,
    so its last bytes come out exact."""
    if native.on():
        return [np.frombuffer(b, dtype=np.uint8) for b in native.ext.base85_alignments(values)]
    n = len(values)
    if n < 5:
        return []
    v = np.concatenate((values, np.full(4, 84, dtype=np.uint8))).astype(np.uint32)
    words = v[:n] * np.uint32(85**4)
    for j, weight in enumerate((85**3, 85**2, 85, 1), start=1):
        words += v[j:j + n] * np.uint32(weight)
    return [words[k::5].astype(">u4").view(np.uint8) for k in range(5)]


def shifted(stream: U8, shift: int, lo: int, hi: int) -> bytes:
    """Bytes ``lo..hi`` of the bit stream read from bit ``shift`` (0..7)."""
    if native.on():
        return native.ext.shifted(stream, shift, lo, hi)
    return _shifted_reference(stream, shift, lo, hi)


def _shifted_reference(stream: U8, shift: int, lo: int, hi: int) -> bytes:
    hi = min(hi, len(stream))
    if shift == 0:
        return stream[lo:hi].tobytes()
    a = stream[lo:hi + 1].astype(np.uint16)
    nxt = np.concatenate((a[1:], np.zeros(1, dtype=np.uint16)))[:hi - lo]
    return (((a[:hi - lo] << shift) | (nxt >> (8 - shift))) & 0xFF).astype(np.uint8).tobytes()


# --- candidate tables (every bit shift at once) --------------------------------------------

def _pair_tables() -> tuple[U8, U8]:
    """For a byte pair ``x = B[m] << 8 | B[m+1]``, bit ``s`` of ``text[x]`` (``zero[x]``)
    says the byte read from bit ``s`` of ``B[m]`` is text-like (zero)."""
    x = np.arange(1 << 16, dtype=np.uint32)
    texty = np.frombuffer(TEXTY, dtype=np.uint8) != 0
    text = np.zeros(1 << 16, dtype=np.uint8)
    zero = np.zeros(1 << 16, dtype=np.uint8)
    for s in range(8):
        byte = (x >> (8 - s)) & 0xFF
        text |= texty[byte].astype(np.uint8) << s
        zero |= (byte == 0).astype(np.uint8) << s
    return text, zero


# The fixed leading bits of every magic :func:`.decoders.compressed` looks for, forward and
# reversed (a reversed stream ends with its reversed magic); the reversed lzma magic's
# second byte is free, so its fixed bytes from the third on stand for it.
MAGIC_PREFIXES: tuple[bytes, ...] = (
    b"\x1f\x8b\x08", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda", b"BZh", b"\xfd7zXZ\x00",
    b"\x5d\x00\x00", b"\x08\x8b\x1f", b"\x01\x78", b"\x5e\x78", b"\x9c\x78", b"\xda\x78",
    b"YS&YA1", b"\x00ZXz7\xfd", b"\x00\x00\x5d",
)


def _magic_tables() -> tuple[U8, U8]:
    """Bit ``s`` of ``first[x]`` / ``second[x]``: the pair ``x`` at byte ``m`` / ``m + 1`` agrees
    with some magic whose bits start at bit ``s`` of ``B[m]`` (every bit of the pair the
    magic covers)."""
    first = np.zeros(1 << 16, dtype=np.uint8)
    second = np.zeros(1 << 16, dtype=np.uint8)
    x = np.arange(1 << 16, dtype=np.uint64)
    for magic in MAGIC_PREFIXES:
        length = 8 * len(magic)
        value = int.from_bytes(magic, "big")
        for s in range(8):
            for table, window in ((first, 0), (second, 8)):
                # stream bits [window, window + 16) of B[m:]; the magic covers [s, s + length)
                lo, hi = max(window, s), min(window + 16, s + length)
                width = hi - lo
                want = (value >> (s + length - hi)) & ((1 << width) - 1)
                got = (x >> np.uint64(window + 16 - hi)) & np.uint64((1 << width) - 1)
                np.bitwise_or(table, (got == np.uint64(want)).astype(np.uint8) << np.uint8(s),
                              out=table)
    return first, second


TEXT_PAIRS, ZERO_PAIRS = _pair_tables()
MAGIC_FIRST, MAGIC_SECOND = _magic_tables()


def _and_run(flags: U8, length: int, stride: int = 1) -> U8:
    """``out[m]`` = AND of ``flags[m + stride·i]`` for ``i < length`` (length a power of 2)."""
    out = flags
    step = stride
    while step < length * stride:
        out = out[:-step] & out[step:]
        step *= 2
    return out


def _runs(starts: IntArray, width: int) -> list[tuple[int, int]]:
    """Union of the ranges ``[m, m + width)`` (``starts`` ascending)."""
    out: list[tuple[int, int]] = []
    for m in starts.tolist():
        if out and m <= out[-1][1]:
            out[-1] = (out[-1][0], m + width)
        else:
            out.append((m, m + width))
    return out


Alone = Callable[[int], bytes]
"""Region ``j`` (an index into the region starts) decoded by itself, its last group padded
as a decoder pads it (base85: the regions after it carry into its last bytes)."""


def _nested(name: str, stream: U8, shifts: int, origin: Callable[[int, int], int],
            region_bits: IntArray, alone: Alone | None = None) -> Iterator[Decoded]:
    """Everything in the bit stream worth decoding further, at every shift in ``shifts``:
    text-like runs, wide text, compressed streams, raw deflate at region starts."""
    if len(stream) < 2:
        return
    if shifts == 1:
        yield from _nested_aligned(name, stream.tobytes(), origin)
    else:
        yield from _nested_shifted(name, stream, shifts, origin)
    for at_byte, s, inflated in _deflate_at(stream, region_bits, alone):
        yield Decoded(f"{name} → deflate", inflated.data, origin(at_byte, s),
                      expand=inflated.expand)


def _nested_aligned(name: str, data: bytes, origin: Callable[[int, int], int]
                    ) -> Iterator[Decoded]:
    """The byte-aligned case (base85 alignments): text runs by one ``translate`` and
    ``find``, wide text and compressed streams by their own (C-speed) searches."""
    for at, end in _text_runs(data):
        yield _span(name, data[at:end], at, 0, origin)
    for w in wide_spans(data):
        yield Decoded(f"{name} → {w.name}", w.data, origin(w.start, 0))
    for offset, kind, inner in compressed(data):
        yield Decoded(f"{name} → {kind}", inner, origin(offset, 0))


def _text_runs(data: bytes) -> list[tuple[int, int]]:
    """The maximal runs of at least :data:`TEXT_RUN` text-like bytes."""
    if native.on():
        return native.ext.table_runs(data, TEXTY, TEXT_RUN)
    classes = data.translate(TEXTY)  # text-like bytes -> "A", others -> NUL
    probe = b"A" * TEXT_RUN
    out = []
    at = classes.find(probe)
    while at != -1:
        end = classes.find(b"\0", at)
        end = len(data) if end == -1 else end
        out.append((at, end))
        at = classes.find(probe, end)
    return out


def _nested_shifted(name: str, stream: U8, shifts: int, origin: Callable[[int, int], int]
                    ) -> Iterator[Decoded]:
    """Bit-aligned alphabets: candidates at every shift at once through the pair tables."""
    if native.on():  # every shift's candidates in one C pass (native.py)
        for s, text_runs, wide_runs, magic_at in native.ext.nested_candidates(
                stream, int(shifts), TEXT_PAIRS, ZERO_PAIRS, MAGIC_FIRST, MAGIC_SECOND,
                MAGIC_PREFIXES):
            yield from _shift_spans(name, stream, s, origin, text_runs, wide_runs, magic_at)
        return
    at, at_flags, pairs = _pair_flags(stream, shifts)
    for s in range(8) if len(at) else ():
        if not shifts & (1 << s):
            continue
        text_runs = _runs(at[(at_flags & (1 << s)) != 0], TEXT_RUN)
        wide_runs = _runs(np.maximum(at[(at_flags & (1 << (s + 8))) != 0] - 4, 0), 24)
        magic_at = _exact_magics(pairs, at[(at_flags & (1 << (s + 16))) != 0], s).tolist()
        yield from _shift_spans(name, stream, s, origin, text_runs, wide_runs, magic_at)


def _shift_spans(name: str, stream: U8, s: int, origin: Callable[[int, int], int],
                 text_runs: list[tuple[int, int]], wide_runs: list[tuple[int, int]],
                 magic_at: list[int]) -> Iterator[Decoded]:
    """What shift ``s`` holds: exactly its text-like runs, wide text around its zero runs, and
    its compressed streams if a candidate magic starts cleanly."""
    for lo, hi in text_runs:
        yield _span(name, shifted(stream, s, lo, hi), lo, s, origin)
    for lo, hi in wide_runs:
        piece = shifted(stream, s, lo, hi)
        for w in wide_spans(piece):
            yield Decoded(f"{name} → {w.name}", w.data, origin(lo + w.start, s))
    if any(compressed_may_start(shifted(stream, s, max(0, m - MAGIC_WINDOW), m + MAGIC_WINDOW))
           for m in magic_at):
        piece = shifted(stream, s, 0, len(stream))
        for offset, kind, inner in compressed(piece):
            yield Decoded(f"{name} → {kind}", inner, origin(offset, s))


def _pair_flags(stream: U8, shifts: int) -> tuple[IntArray, npt.NDArray[np.uint32], IntArray]:
    """The offsets where a candidate starts at some shift, their flags (bit ``s``: a text-like
    run, ``s + 8``: zeros at stride 4, ``s + 16``: a magic's first two bytes) and the byte
    pairs (the reference of ``_fast.pair_candidates``)."""
    padded = np.concatenate((stream, np.zeros(1, dtype=np.uint8)))
    pairs = (padded[:-1].astype(np.uint16) << 8) | padded[1:]
    mask = np.uint8(shifts)
    text = _and_run(TEXT_PAIRS[pairs] & mask, TEXT_RUN)
    wide = _and_run(ZERO_PAIRS[pairs] & mask, 4, stride=4)
    magic = MAGIC_FIRST[pairs[:-1]] & MAGIC_SECOND[pairs[1:]] & mask
    flags = np.zeros(len(pairs), dtype=np.uint32)  # text | wide << 8 | magic << 16, per byte
    flags[:len(text)] = text
    flags[:len(wide)] |= wide.astype(np.uint32) << 8
    flags[:len(magic)] |= magic.astype(np.uint32) << 16
    at = np.flatnonzero(flags)
    return at, flags[at], pairs


def _exact_magics(pairs: IntArray, at: IntArray, s: int) -> IntArray:
    """The candidates where a magic's fixed bytes are all there at shift ``s`` (the pair
    tables OR all magics together, so they let through one magic's first pair beside
    another's second — a run of zeros passes the lzma tables both ways)."""
    if not len(at):
        return at
    longest = max(len(m) for m in MAGIC_PREFIXES)
    index = np.minimum(at[:, None] + np.arange(longest), len(pairs) - 1)
    window = ((pairs[index] >> (8 - s)) & 0xFF).astype(np.uint8)
    found = np.zeros(len(at), dtype=np.bool_)
    zlib_forward = np.zeros(len(at), dtype=np.bool_)
    zlib_reversed = np.zeros(len(at), dtype=np.bool_)
    for magic in MAGIC_PREFIXES:
        here = (window[:, :len(magic)] == np.frombuffer(magic, dtype=np.uint8)).all(axis=1)
        found |= here
        if len(magic) == 2:  # zlib: two bytes, by chance every ~16,000 decoded bytes
            (zlib_forward if magic[0] == 0x78 else zlib_reversed)[here] = True
    # a zlib stream's deflate data follows its magic (or, reversed, precedes it backwards):
    # its first block must be plausible (decoders.deflate_plausible), checked for all at once
    for rows, after in ((zlib_forward & ~zlib_reversed, True),
                        (zlib_reversed & ~zlib_forward, False)):
        picked = np.flatnonzero(rows & found)
        if not len(picked):
            continue
        offsets = (2 + np.arange(PLAUSIBLE_BYTES) if after
                   else -1 - np.arange(PLAUSIBLE_BYTES))
        where = at[picked, None] + offsets
        inside = ((where >= 0) & (where < len(pairs))).all(axis=1)
        heads = ((pairs[np.clip(where, 0, len(pairs) - 1)] >> (8 - s)) & 0xFF).astype(np.uint8)
        found[picked[inside & ~deflate_plausible(heads)]] = False  # near an edge: kept
    return at[found]


def _deflate_at(stream: U8, region_bits: IntArray, alone: Alone | None = None,
                ) -> Iterator[tuple[int, int, Inflated]]:
    """Raw deflate from each region start (bit offsets in the stream). Before a stream is
    materialised and inflated, its first block is checked for all starts at once
    (:func:`.decoders.deflate_plausible`) and its first :data:`DEFLATE_HEAD` and
    :data:`DEFLATE_PROBE` bytes are tried — zlib reads in order, so
    an error there is an error in the whole stream; heads that failed are remembered (log
    lines share their first fields). A stream that passes the probes but does not end
    properly is tried again ``alone`` (a base85 text glued to more symbols: its last group
    carries)."""
    if not len(region_bits):
        return
    if native.on():  # every start's first block checked in C (no FEW_CANDIDATES shortcut);
        # strictly (every fixed-Huffman code in the head) where exactly the stream is inflated
        region_bits = np.ascontiguousarray(region_bits, dtype=np.int64)
        mask = native.ext.plausible_at(stream, region_bits, alone is None)
        index = [i for i in range(len(mask)) if mask[i]] if mask.count(1) else []
        if not index:
            return
        starts = region_bits[index]
        rows = native.ext.heads(stream, starts, DEFLATE_PROBE)
    else:
        index = np.flatnonzero(deflate_plausible(_heads(stream, region_bits,
                                                        PLAUSIBLE_BYTES))).tolist()
        if not index:
            return
        starts = region_bits[index]
        rows = _heads(stream, starts, DEFLATE_PROBE).tobytes()
    failed: set[bytes] = set()
    for i, bit in enumerate(starts.tolist()):
        row = rows[i * DEFLATE_PROBE: (i + 1) * DEFLATE_PROBE]
        head = row[:DEFLATE_HEAD]
        if head in failed:
            continue
        if not deflate_may_start(head):
            failed.add(head)
            continue
        byte, shift = bit // 8, bit % 8
        if not deflate_may_start(row):
            inflated = None
        elif native.on():  # materialised piece by piece, only as far as zlib reads
            inflated = raw_deflate_fed(_pieces(stream, shift, byte))
        else:
            inflated = raw_deflate(shifted(stream, shift, byte, len(stream)))
        if inflated is None and alone is not None:  # the probe may reach past the region
            piece = alone(index[i])
            inflated = raw_deflate(piece) if deflate_may_start(piece[:DEFLATE_PROBE]) else None
        if inflated is not None:
            yield byte, shift, inflated


def _pieces(stream: U8, shift: int, lo: int, first: int = 1024) -> Iterator[bytes]:
    """Bytes ``lo..`` of the stream read from bit ``shift``, in pieces growing fourfold."""
    size = first
    while lo < len(stream):
        yield shifted(stream, shift, lo, lo + size)
        lo += size
        size *= 4


def _heads(stream: U8, bit_starts: IntArray, width: int) -> U8:
    """The first ``width`` bytes of the stream read from each bit offset (zeros past its
    end), one row per start, without copying the stream."""
    at = (bit_starts // 8)[:, None] + np.arange(width + 1)
    win = np.where(at < len(stream), stream[np.minimum(at, len(stream) - 1)], 0).astype(np.uint16)
    s = (bit_starts % 8).astype(np.uint16)[:, None]
    heads: U8 = (((win[:, :-1] << s) | (win[:, 1:] >> (8 - s))) & 0xFF).astype(np.uint8)
    return heads


def _span(name: str, data: bytes, lo: int, s: int, origin: Callable[[int, int], int]
          ) -> Decoded:
    return Decoded(name, data, origin(lo, s), locate=lambda i: origin(lo + i, s))


# --- the decoder ---------------------------------------------------------------------------

Spans = Iterator[tuple[bool, Decoded]]


def radix_spans(data: bytes, nested: bool = True) -> Spans:
    """Every radix alphabet over ``data``: ``(reversed, span)`` pairs: the decoded stream
    (matched only) and, if ``nested``, what it holds worth decoding further, read forward
    and from the byte-reversed text (offsets in ``data[::-1]``; a radix text written
    backwards holds the same kinds of content)."""
    if len(data) < 16:
        return
    for radix in RADIXES:
        sym = symbols(data, radix)
        if radix.alphabet.name == "hex" and (b"x0" in data or b"X0" in data):
            back = symbols(data[::-1], radix)  # "0x" read backwards: its own symbols
        else:
            back = None if sym is None else reversed_symbols(sym, len(data))
        decode = _bit_spans if radix.alphabet.bits else _base85_spans
        for backwards, view in ((False, sym), (True, back)):
            if view is not None:
                yield from ((backwards, d) for d in decode(radix, view, nested))


def _bit_spans(radix: Radix, sym: Symbols, nested: bool) -> Iterator[Decoded]:
    bits = radix.alphabet.bits
    name = radix.alphabet.name
    stream = pack(sym.values, bits)
    last = len(sym.values) - 1

    def origin(byte: int, s: int) -> int:
        return int(sym.offsets()[min((8 * byte + s) // bits, last)])

    yield Decoded(name, stream.tobytes(), 0, locate=functools.partial(origin, s=0),
                  expand=False)
    if not nested:
        return
    long_enough = sym.counts >= MIN_LEAK * 8 // bits
    yield from _nested(name, stream, radix.shifts, origin, sym.firsts[long_enough] * bits)


def _base85_spans(radix: Radix, sym: Symbols, nested: bool) -> Iterator[Decoded]:
    name = radix.alphabet.name
    last = len(sym.values) - 1
    kept = sym.counts >= radix.min_symbols
    starts, counts = sym.firsts[kept], sym.counts[kept]
    for skip, stream in enumerate(base85_alignments(sym.values)):
        def origin(byte: int, s: int, skip: int = skip) -> int:
            return int(sym.offsets()[min(skip + 5 * (byte // 4), last)])

        yield Decoded(name, stream.tobytes(), 0, locate=functools.partial(origin, s=0),
                      expand=False)
        if nested:  # raw deflate at the region starts that fall on this alignment
            on = (starts - skip) % 5 == 0
            here = starts[on]
            yield from _nested(name, stream, 1, origin, (here - skip) // 5 * 32,
                               functools.partial(_alone, sym.values, here, counts[on]))


def _alone(values: U8, firsts: IntArray, counts: IntArray, j: int) -> bytes:
    """Base85 region ``j`` decoded by itself (a final group of ``r`` symbols gives
    ``r - 1`` bytes)."""
    first, count = int(firsts[j]), int(counts[j])
    decoded = base85_alignments(values[first:first + count])
    if not decoded:
        return b""
    return decoded[0].tobytes()[:count // 5 * 4 + max(0, count % 5 - 1)]
