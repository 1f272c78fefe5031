"""The reversible transforms the oracle undoes (docs/oracle.md "Decode rules").

A decoder looks at one byte string and yields :class:`Decoded` spans: the bytes some
transform would have turned into part of it. The engine matches every span and feeds it back
to every decoder, to a bounded depth. Decoders work on whole byte strings with C-speed
primitives (``bytes.translate``, numpy, ``binascii``, ``zlib``…), never byte by byte in Python.

Families (one table each, below):

- **radix texts**: an alphabet of ``2**b`` symbols (hex, five base32 alphabets, four base64
  alphabets, binary digits) or base85 (three alphabets). Inside a *region* — a run of alphabet
  characters and separators (space, ``:``, ``-``, ``,``, ``\\x``, ``0x``…) holding enough
  symbols to carry a minimal leak — the separators are dropped and the symbols decoded as one
  stream: separated hex, MIME line breaks and a value split over two fields all come out
  contiguous. Bit-aligned alphabets are decoded once from the region's first symbol (the
  matcher's bit-shifted variants cover every other alignment) and, for further decoding, at
  every symbol alignment, keeping the *text-like* stretches and compressed streams found
  there; base85 is decoded at its five alignments. Letter case is ignored where the alphabet
  has one case.
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
import bz2
import codecs
import html
import lzma
import re
import urllib.parse
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MIN_LEAK = 11  # bytes: the shortest run the matcher can report (12-char canary, bit-shifted)
MAX_INFLATE = 64 << 20  # bytes one compressed stream may expand to
TEXT_RUN = 16  # a decoded stretch this long of text-like bytes is decoded further

IntArray = npt.NDArray[np.integer[Any]]  # int32 where per byte (offsets of one block)


@dataclass
class Decoded:
    """Bytes a transform produced and where they came from in the parent: ``positions[i]``
    is the parent offset of byte ``i`` (``None``: every byte maps to ``start``)."""

    name: str
    data: bytes
    start: int
    positions: IntArray | None = None
    expand: bool = True  # decode further (False: matched only)

    def parent_offset(self, i: int) -> int:
        if self.positions is None or not len(self.positions):
            return self.start
        return int(self.positions[min(i, len(self.positions) - 1)])


# --- radix alphabets ---------------------------------------------------------------------

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
SEPARATORS = b" \t\r\n:-,.;|_/\\%'\"x"  # minus each alphabet's own symbols


class _Radix:
    """Precomputed tables for one alphabet."""

    def __init__(self, alphabet: Alphabet) -> None:
        self.alphabet = alphabet
        self.lut = alphabet.table()
        valid = self.lut >= 0
        self.valid = valid.astype(np.bool_)
        sep = np.zeros(256, dtype=np.bool_)
        if alphabet.bits:  # base85 streams carry no separators (only line breaks)
            for c in SEPARATORS:
                sep[c] = not valid[c]
        else:
            for c in b"\r\n":
                sep[c] = True
        self.region = self.valid | sep
        self.region_table = bytes(0x41 if r else 0 for r in self.region)
        bits = alphabet.bits or 6.4
        self.min_symbols = int(np.ceil(MIN_LEAK * 8 / bits))
        self.probe = b"A" * self.min_symbols
        self.hexlike = alphabet.name == "hex"
        self.group = {0: 5, 1: 8, 4: 2, 5: 8, 6: 4}[alphabet.bits]


RADIXES = tuple(_Radix(a) for a in ALPHABETS)


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _symbols(data: bytes, arr: npt.NDArray[np.uint8], radix: _Radix
             ) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Positions and values of the symbols of every region long enough to carry a leak,
    each region's first index into them and its symbol count."""
    if radix.probe not in data.translate(radix.region_table):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty  # no region long enough (C-speed reject)
    valid = radix.valid[arr]
    if radix.hexlike:  # "0x" introduces a hex byte: the 0 is a separator
        zero_x = (arr[:-1] == 0x30) & ((arr[1:] | 0x20) == 0x78)
        valid[:-1] &= ~zero_x
    region = radix.region[arr]
    starts, ends = _runs(region)
    if not len(starts):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    csum = np.concatenate(([0], np.cumsum(valid, dtype=np.int64)))
    counts = csum[ends] - csum[starts]
    keep = counts >= radix.min_symbols
    if not keep.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    in_kept = np.zeros(len(arr) + 1, dtype=np.int8)
    np.add.at(in_kept, starts[keep], 1)
    np.add.at(in_kept, ends[keep], -1)
    mask = valid & (np.cumsum(in_kept[:-1]) > 0)
    positions = np.flatnonzero(mask).astype(np.int32)
    values = radix.lut[arr[positions]].astype(np.uint8)
    kept = counts[keep]
    # Every region starts on a symbol-group boundary (padding symbols end the one before, as
    # the decoders pad a final partial group: zeros, or base85's highest digit), so the first
    # alignment decodes every region from its first symbol, to its last byte.
    group = radix.group
    padded = -(-kept // group) * group
    firsts = np.concatenate(([0], np.cumsum(padded)[:-1]))
    region = np.repeat(np.arange(len(kept), dtype=np.int32), kept)
    within = np.arange(len(values), dtype=np.int32) - np.repeat(
        (np.cumsum(kept) - kept).astype(np.int32), kept)
    slots = firsts[region] + within
    total = int(padded.sum())
    out_values = np.full(total, 84 if radix.alphabet.bits == 0 else 0, dtype=np.uint8)
    out_values[slots] = values
    out_positions = np.repeat(positions[np.cumsum(kept) - 1], padded)  # pads: region's end
    out_positions[slots] = positions
    return out_positions, out_values, firsts, kept


def _bit_decode(values: IntArray, bits: int, skip: int) -> npt.NDArray[np.uint8]:
    """Symbols ``values[skip:]`` of ``bits`` each, packed into bytes (tail bits dropped)."""
    v = values[skip:].astype(np.uint8)
    if bits == 1:
        stream = v
    elif bits == 4 and not len(v) % 2:
        return ((v[0::2] << 4) | v[1::2]).astype(np.uint8)
    else:
        stream = np.unpackbits(v[:, None], axis=1)[:, 8 - bits:].ravel()
    usable = len(stream) - len(stream) % 8
    return np.packbits(stream[:usable])


def _b85_decode(values: IntArray, skip: int) -> npt.NDArray[np.uint8]:
    v = values[skip:]
    usable = len(v) - len(v) % 5
    groups = v[:usable].reshape(-1, 5).astype(np.uint64)
    weights = np.array([85**4, 85**3, 85**2, 85, 1], dtype=np.uint64)
    words = (groups * weights).sum(axis=1) & np.uint64(0xFFFFFFFF)
    out: npt.NDArray[np.uint8] = words.astype(">u4").view(np.uint8)
    return out


def radix_spans(data: bytes, nested: bool = True) -> Iterator[Decoded]:
    """Every radix alphabet over ``data`` (see the module docstring): matched at every
    alignment, and (``nested``) decoded at every alignment for nested content."""
    if len(data) < 16:
        return
    arr = np.frombuffer(data, dtype=np.uint8)
    for radix in RADIXES:
        if radix.alphabet.name == "ascii85" and b"z" in data:
            # "z" abbreviates "!!!!!" (four zero bytes); offsets after one shift by 4
            expanded = data.replace(b"z", b"!!!!!")
            positions, values, firsts, counts = _symbols(
                expanded, np.frombuffer(expanded, dtype=np.uint8), radix)
            positions = np.minimum(positions, len(data) - 1)
        else:
            positions, values, firsts, counts = _symbols(data, arr, radix)
        if not len(positions):
            continue
        bits = radix.alphabet.bits
        name = radix.alphabet.name
        if bits:
            for skip in range(radix.group if nested else 1):
                out = _bit_decode(values, bits, skip)
                if not len(out):
                    continue
                index = np.arange(len(out), dtype=np.int32) * 8 // bits + skip
                origin = positions[np.minimum(index, len(positions) - 1)]
                raw = out.tobytes()
                if skip == 0:  # matched at every alignment through the bit-shifted variants
                    yield Decoded(name, raw, int(origin[0]), origin, expand=False)
                if nested:
                    yield from _interesting(name, raw, origin, firsts, counts, skip, bits)
        else:
            for skip in range(5):
                out = _b85_decode(values, skip)
                if not len(out):
                    continue
                index = np.arange(len(out), dtype=np.int32) * 5 // 4 + skip
                origin = positions[np.minimum(index, len(positions) - 1)]
                raw = out.tobytes()
                yield Decoded(name, raw, int(origin[0]), origin, expand=False)
                if nested:
                    yield from _interesting(name, raw, origin, firsts, counts, skip, 0)


_TEXTY = bytes(0x41 if (32 <= b < 127 or b in (0, 9, 10, 13)) else 0 for b in range(256))


def _interesting(name: str, raw: bytes, origin: IntArray, firsts: IntArray,
                 counts: IntArray, skip: int, bits: int) -> Iterator[Decoded]:
    """Stretches of one aligned decode worth decoding further: text-like runs, compressed
    streams (by magic), and raw deflate at region starts that fall on this alignment."""
    classes = raw.translate(_TEXTY)
    probe = b"A" * TEXT_RUN
    at = classes.find(probe)
    while at != -1:
        end = classes.find(b"\0", at)
        end = len(raw) if end == -1 else end
        yield Decoded(name, raw[at:end], int(origin[at]), origin[at:end])
        at = classes.find(probe, end)
    for offset, kind, inner in compressed(raw):
        yield Decoded(f"{name} → {kind}", inner, int(origin[min(offset, len(origin) - 1)]))
    for wide in _wide(raw):  # UTF-16/32 of a binary value is not text-like
        at = int(origin[min(wide.start, len(origin) - 1)])
        yield Decoded(f"{name} → {wide.name}", wide.data, at)
    if not bits:
        return  # base85: raw deflate inside it is left to the level below
    rel = firsts - skip
    aligned = (rel >= 0) & ((rel * bits) % 8 == 0) & (counts >= 2 * MIN_LEAK * 8 // bits)
    for at_byte in (rel[aligned] * bits // 8).tolist():
        inflated = _raw_deflate(raw[at_byte:])  # regions that start a byte here, long enough
        if inflated is not None:
            yield Decoded(f"{name} → deflate", inflated.data,
                          int(origin[min(at_byte, len(origin) - 1)]), expand=inflated.expand)


# --- compression -------------------------------------------------------------------------

_MAGICS: tuple[tuple[str, re.Pattern[bytes], int], ...] = (
    ("gzip", re.compile(rb"\x1f\x8b\x08"), 31),
    ("zlib", re.compile(rb"\x78[\x01\x5e\x9c\xda]"), 15),
    ("bz2", re.compile(rb"BZh[1-9]1AY&SY"), 0),
    ("xz", re.compile(rb"\xfd7zXZ\x00"), 0),
    ("lzma", re.compile(rb"\x5d\x00\x00[\x00-\xff]\x00(?:\xff{8}|[\x00-\xff]{5}\x00\x00\x00)"), 0),
)
# Reversed streams end with their reversed magic; each pattern starts with a literal so
# the regex engine scans at memchr speed.
_REVERSED: tuple[re.Pattern[bytes], ...] = (
    re.compile(rb"\x08\x8b\x1f"), re.compile(rb"[\x01\x5e\x9c\xda]\x78"),
    re.compile(rb"YS&YA1[1-9]hZB"), re.compile(rb"\x00ZXz7\xfd"),
    re.compile(rb"\x00[\x00-\xff]\x00\x00\x5d"),
)


def compressed(data: bytes) -> Iterator[tuple[int, str, bytes]]:
    """(offset, kind, inflated) for every compressed stream found by its magic; a truncated
    or corrupt stream yields what inflated before the damage."""
    view = memoryview(data)
    for kind, magic, wbits in _MAGICS:
        for match in magic.finditer(data):
            inner = _decompress(kind, view[match.start():], wbits)
            if len(inner) >= MIN_LEAK:
                yield match.start(), kind, inner
    for pattern in _REVERSED:
        for match in pattern.finditer(data):
            stream = data[max(0, match.end() - (MAX_INFLATE >> 4)): match.end()][::-1]
            for kind, magic, wbits in _MAGICS:
                if magic.match(stream):
                    inner = _decompress(kind, memoryview(stream), wbits)
                    if len(inner) >= MIN_LEAK:
                        yield match.end() - 1, f"reversed → {kind}", inner


def _decompress(kind: str, view: memoryview, wbits: int) -> bytes:
    if wbits:
        return _inflate(view, wbits)
    decomp: bz2.BZ2Decompressor | lzma.LZMADecompressor = (
        bz2.BZ2Decompressor() if kind == "bz2" else lzma.LZMADecompressor())
    out = bytearray()
    step = 1 << 16
    pos = 0
    try:
        while pos < len(view) and len(out) < MAX_INFLATE and not decomp.eof:
            out += decomp.decompress(view[pos: pos + step], MAX_INFLATE - len(out))
            pos += step
    except (OSError, EOFError, lzma.LZMAError):
        pass
    return bytes(out)


def _inflate(data: bytes | memoryview, wbits: int) -> bytes:
    decomp = zlib.decompressobj(wbits)
    out = bytearray()
    step = 1 << 16
    pos = 0
    view = memoryview(data)
    try:
        while pos < len(view) and len(out) < MAX_INFLATE and not decomp.eof:
            out += decomp.decompress(view[pos: pos + step], MAX_INFLATE - len(out))
            pos += step
            if decomp.unconsumed_tail:
                break
    except zlib.error:
        pass
    return bytes(out)


@dataclass(frozen=True)
class _Inflated:
    data: bytes
    expand: bool


def _raw_deflate(data: bytes) -> _Inflated | None:
    """Raw deflate has no magic and a fixed-Huffman block decodes almost any bits, so only a
    stream that ends properly counts, and it is decoded further only if it looks like more
    than noise (text, wide text, a compressed stream): garbage input ends "properly" often
    enough to flood the recursion otherwise."""
    decomp = zlib.decompressobj(-15)
    try:
        out = decomp.decompress(data, MAX_INFLATE)
    except zlib.error:
        return None
    if not decomp.eof or len(out) < MIN_LEAK:
        return None
    structured = (out.translate(_TEXTY).find(b"A" * TEXT_RUN) != -1
                  or out.count(0) * 4 >= len(out) or any(m.search(out) for _, m, _ in _MAGICS))
    return _Inflated(out, structured)


def deflate_spans(data: bytes, at_start: bool) -> Iterator[Decoded]:
    """Raw deflate where a binary span begins, and where binary bytes start inside text
    (a deflate stream written into a text record), a few bytes either side."""
    classes = data[:TEXT_RUN].translate(_TEXTY)
    if at_start and classes.count(b"A") != len(classes):
        inner = _raw_deflate(data)
        if inner is not None:
            yield Decoded("deflate", inner.data, 0, expand=inner.expand)
    binary = len(data) - data.translate(_TEXTY).count(b"A")
    if not binary or binary > max(64, len(data) // 8):
        return  # not text with a few binary stretches: nothing embedded to look for
    for run in _BINARY_RUN.finditer(data):
        for at in range(max(0, run.start() - 4), run.start() + 1):
            inner = _raw_deflate(data[at:])
            if inner is not None:
                yield Decoded("deflate", inner.data, at, expand=inner.expand)
                break


_BINARY_RUN = re.compile(rb"[^\x20-\x7e\t\r\n]+")


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


def _numbers(data: bytes) -> Iterator[Decoded]:
    for match in _NUMBERS.finditer(data):
        values = [int(n) for n in _NUMBER.findall(match.group(0))]
        if all(-128 <= v <= 255 for v in values):
            yield Decoded("byte list", bytes(v & 0xFF for v in values), match.start())


_WIDE = bytes(0x5A if b == 0 else 0x4E for b in range(256))  # Z: zero byte, N: other


def _wide(data: bytes) -> Iterator[Decoded]:
    """UTF-16/32 stretches: where one byte lane of every 2 (4) is zero for at least 8 code
    units, every other lane of that stretch is taken as text (code points below 256, the
    Latin-1 range, which is what a binary value decoded as Latin-1 re-encodes to)."""
    if data.count(0) < 8:
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


def _wide_name(width: int, first: int) -> str:
    """Byte order as seen from the span's start (a stretch starting mid code unit reads as
    the other order: the text is the same)."""
    if width == 2:
        return "utf-16le" if first % 2 == 0 else "utf-16be"
    return {0: "utf-32le", 3: "utf-32be"}.get(first % 4, "utf-32")


def text_spans(data: bytes) -> Iterator[Decoded]:
    """Escapes, wide text and mojibake. Each escape family is undone line by line over the
    lines that hold its trigger (so a hit is located in its record), one span per run of
    consecutive triggering lines (so an escaped value split across lines stays whole)."""
    yield from _wide(data)
    for name, trigger, undo in _ESCAPES:
        for lo, hi in _lines_with(data, trigger):
            line = data[lo:hi]
            if _is_text(line, mojibake=undo is _mojibake):
                yield Decoded(name, undo(line), lo)
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
    return line.translate(_TEXTY).count(b"A") * 10 >= len(line) * 9


def _lines_with(data: bytes, trigger: re.Pattern[bytes]) -> Iterator[tuple[int, int]]:
    lo = hi = -1
    for match in trigger.finditer(data):
        if match.start() < hi:
            continue
        start = data.rfind(b"\n", 0, match.start()) + 1
        end = data.find(b"\n", match.end())
        end = len(data) if end == -1 else end + 1
        if start <= hi:  # the next line: one span
            hi = end
            continue
        if hi > lo >= 0:
            yield lo, hi
        lo, hi = start, end
    if hi > lo >= 0:
        yield lo, hi


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


_ESCAPES: tuple[tuple[str, re.Pattern[bytes], Callable[[bytes], bytes]], ...] = (
    ("backslash escapes", re.compile(rb"\\[xuU0-7nrt\\'\"]"), _unescape),
    ("percent", _PERCENT, urllib.parse.unquote_to_bytes),
    ("quoted-printable", _QP, binascii.a2b_qp),
    ("html entities", re.compile(rb"&#|&amp;"), _html),
    ("latin-1 as utf-8", _MOJIBAKE, _mojibake),
)


def radix_matched(data: bytes) -> Iterator[Decoded]:
    return radix_spans(data, nested=False)


DECODERS: tuple[Callable[[bytes], Iterator[Decoded]], ...] = (
    compressed_spans, text_spans, radix_spans)
"""Every decoder, applied at every level to a span."""
REVERSED_DECODERS: tuple[Callable[[bytes], Iterator[Decoded]], ...] = (
    text_spans, radix_matched)
"""Applied to the span's byte-reversed copy (reversed compressed streams are found by their
reversed magic in the span itself; radix texts reversed are matched, not nested)."""
