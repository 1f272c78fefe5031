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

import numpy as np

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


def compressed_may_start(window: bytes) -> bool:
    """Whether a magic in ``window`` begins (or, reversed, ends) a stream whose first bytes
    decompress without error: the cheap test before a long span is searched in full (the
    decompressors read in order, so a stream that fails here fails there too)."""
    for kind, magic, wbits in _MAGICS:
        for match in magic.finditer(window):
            if _starts_cleanly(kind, window[match.start():], wbits):
                return True
    for pattern in _REVERSED:
        for match in pattern.finditer(window):
            stream = window[:match.end()][::-1]
            for kind, magic, wbits in _MAGICS:
                if magic.match(stream) and _starts_cleanly(kind, stream, wbits):
                    return True
    return False


def _starts_cleanly(kind: str, data: bytes, wbits: int) -> bool:
    try:
        if wbits:
            zlib.decompressobj(wbits).decompress(data, MAX_INFLATE)
        elif kind == "bz2":
            bz2.BZ2Decompressor().decompress(data, MAX_INFLATE)
        else:
            lzma.LZMADecompressor().decompress(data, MAX_INFLATE)
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        return False
    return True


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
class Inflated:
    data: bytes
    expand: bool


def raw_deflate(data: bytes) -> Inflated | None:
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
    structured = (out.translate(TEXTY).find(b"A" * TEXT_RUN) != -1
                  or out.count(0) * 4 >= len(out) or any(m.search(out) for _, m, _ in _MAGICS))
    return Inflated(out, structured)


def deflate_may_start(prefix: bytes) -> bool:
    """False when the first bytes of a would-be raw deflate stream are already invalid (zlib
    reads its input in order, so the whole stream would fail at the same byte)."""
    try:
        zlib.decompressobj(-15).decompress(prefix, MAX_INFLATE)
    except zlib.error:
        return False
    return True


def deflate_spans(data: bytes, at_start: bool) -> Iterator[Decoded]:
    """Raw deflate where a binary span begins, and where binary bytes start inside text
    (a deflate stream written into a text record), a few bytes either side."""
    classes = data[:TEXT_RUN].translate(TEXTY)
    if at_start and classes.count(b"A") != len(classes):
        inner = raw_deflate(data)
        if inner is not None:
            yield Decoded("deflate", inner.data, 0, expand=inner.expand)
    binary = len(data) - data.translate(TEXTY).count(b"A")
    if not binary or binary > max(64, len(data) // 8):
        return  # not text with a few binary stretches: nothing embedded to look for
    for run in _BINARY_RUN.finditer(data):
        for at in range(max(0, run.start() - 4), run.start() + 1):
            inner = raw_deflate(data[at:])
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


_NUMBER_CHARS = bytes(1 if chr(c) in "0123456789-,; \t\r\n\x0b\x0c" else 0 for c in range(256))
_NUMBERS_SHORTEST = 23  # 12 one-digit numbers and 11 one-character separators


def _numbers(data: bytes) -> Iterator[Decoded]:
    """Byte lists, searched only inside runs of digits, signs and separators long enough to
    hold twelve numbers (the regex alone retries at every digit of a log line)."""
    if len(data) < _NUMBERS_SHORTEST:
        return
    fits = np.frombuffer(data.translate(_NUMBER_CHARS), dtype=np.int8)
    edges = np.flatnonzero(np.diff(fits, prepend=0, append=0))
    starts, ends = edges[0::2], edges[1::2]
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        if hi - lo < _NUMBERS_SHORTEST:
            continue
        for match in _NUMBERS.finditer(data, lo, hi):
            values = [int(n) for n in _NUMBER.findall(match.group(0))]
            if all(-128 <= v <= 255 for v in values):
                yield Decoded("byte list", bytes(v & 0xFF for v in values), match.start())


_WIDE = bytes(0x5A if b == 0 else 0x4E for b in range(256))  # Z: zero byte, N: other


def wide_spans(data: bytes) -> Iterator[Decoded]:
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
    yield from wide_spans(data)
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
    return line.translate(TEXTY).count(b"A") * 10 >= len(line) * 9


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


DECODERS: tuple[Callable[[bytes], Iterator[Decoded]], ...] = (
    compressed_spans, text_spans)
"""Every decoder, applied at every level to a span."""
REVERSED_DECODERS: tuple[Callable[[bytes], Iterator[Decoded]], ...] = (
    (text_spans,))
"""Applied to the span's byte-reversed copy (reversed compressed streams are found by their
reversed magic in the span itself; radix texts reversed are matched, not nested)."""
