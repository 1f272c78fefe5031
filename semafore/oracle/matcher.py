"""Partial, alignment-free multi-secret matching (the last step of every decode chain).

Each registered secret becomes a handful of *variants* (byte strings a leak can show), each
with the shortest run that counts as a leak:

- the value, forward and reversed (a reversed byte order anywhere in a chain ends here);
- both of those bit-shifted by 1..7 bits: a bit-aligned radix text (hex, base32, base64,
  binary digits) is decoded once from its first character, and a value encoded after ``k``
  other characters then sits ``k·bits mod 8`` bits off a byte boundary; its inner bytes are
  the shifted variant (``len - 1`` of them);
- the value as raw deflate writes it when it does not compress: a final fixed-Huffman block
  of literals (:func:`fixed_huffman`) of the value and of the reversed value, that block
  byte-reversed, and those bit-shifted. Raw deflate
  has no magic, so a stream inside a radix text glued to other symbols has no known start to
  inflate from (the decoders try region starts only, see :mod:`.radix`); its literal codes
  are a fixed function of the value, so they are matched wherever they sit;
- base64 of the value at its three byte alignments, std and URL-safe, keeping only the
  characters the value alone determines, forward and reversed: the one leak whose encoded
  form can lose information (base64 upper- or lower-cased) and so cannot be decoded, only
  compared case-insensitively.

Every variant and every scanned byte string are compared lower-cased (ASCII), so a canary or
any text form is found whatever its letter case.

Search is a sampled-window index: every variant's every 8-byte window goes into a sorted
``uint64`` array behind a one-bit-per-slot filter. A run of ``m`` variant bytes covers a data
offset that is a multiple of the stride ``S = m_min - 7`` with one of those windows there, so
the scan reads the data's windows at stride ``S`` through a strided numpy view (no copy per
window), filters, binary-searches the survivors and extends each candidate left and right byte
for byte. A candidate run at least as long as the variant's minimum is a hit. Cost: about
``8/S`` numpy element operations per byte whatever the number of secrets; memory: 8 bytes ×
(windows of all variants) + the filter.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from semafore.oracle import native
from semafore.oracle.model import Secret

WINDOW = 8
FILTER_BITS = 27  # at most 2**27 one-bit slots (16 MiB)
FILTER_SLOTS_PER_KEY = 64  # 32-64 slots a window: about 2-3 % of data windows pass the filter
NEAR_BITS = 23  # the compiled path's first filter: at most 1 MiB, an L2 cache's worth
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Variant:
    secret: int  # index into the registered secrets
    data: bytes  # lower-cased
    original: bytes  # as the value produces it
    min_run: int
    form: str  # "" for the value itself; "reversed"; "base64, letter case changed"
    scale: float  # secret bytes per variant byte (to report how much of the secret showed)


@dataclass(frozen=True)
class Match:
    variant: Variant
    start: int  # in the scanned bytes
    length: int  # matched variant bytes
    case_changed: bool  # the bytes match only when letter case is ignored


def shifted(value: bytes, bits: int) -> bytes:
    """The bytes of ``value`` seen ``bits`` (1..7) bits after a byte boundary, keeping only
    the bytes the value alone determines."""
    n = int.from_bytes(value, "big") << (8 - bits)  # value's bits followed by 8-bits zeros
    whole = n.to_bytes(len(value) + 1, "big")
    return whole[1:-1]


def fixed_huffman(value: bytes) -> bytes:
    """``value`` as the first block of a raw deflate stream (RFC 1951 §3.2.6): BFINAL=1,
    BTYPE=01, one literal code per byte (``0x30 + b`` in 8 bits below 144, ``0x190 + b - 144``
    in 9 bits above), codes MSB first into the LSB-first bit stream. Bytes the value alone
    does not determine (the last, shared with the end-of-block code) are dropped. This is
    what zlib emits for a value without repeated 3-byte strings that a fixed block codes
    shorter than a dynamic one: every random key and canary."""
    bits = [1, 1, 0]
    for b in value:
        code, width = (0x30 + b, 8) if b < 144 else (0x190 + b - 144, 9)
        bits.extend((code >> (width - 1 - i)) & 1 for i in range(width))
    whole = len(bits) // 8
    return bytes(sum(bits[8 * q + r] << r for r in range(8)) for q in range(whole))


def _b64_aligned(value: bytes, align: int, urlsafe: bool) -> bytes:
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(b"\0" * align + value)
    first = -(-8 * align // 6)
    last = 8 * (align + len(value)) // 6
    return encoded[first:last]


def variants(index: int, secret: Secret) -> list[Variant]:
    value = secret.value
    m = secret.min_run
    out: list[Variant] = []
    for form, base in (("", value), ("reversed", value[::-1])):
        out.append(Variant(index, base.lower(), base, m, form, 1.0))
        for bits in range(1, 8):
            moved = shifted(base, bits)
            out.append(Variant(index, moved.lower(), moved, m - 1, form, 1.0))
    coded_value = fixed_huffman(value)
    for form, coded in (("deflate", coded_value),
                        ("deflate → reversed", fixed_huffman(value[::-1])),
                        ("reversed → deflate", coded_value[::-1])):
        scale = len(value) / len(coded)
        m_coded = -(-m * len(coded) // len(value))
        out.append(Variant(index, coded.lower(), coded, m_coded, form, scale))
        for bits in range(1, 8):
            moved = shifted(coded, bits)
            out.append(Variant(index, moved.lower(), moved, m_coded - 1, form, scale))
    m_chars = 8 * m // 6 - 1
    for urlsafe in (False, True):
        for align in range(3):
            text = _b64_aligned(value, align, urlsafe)
            out.append(Variant(index, text.lower(), text, m_chars, "base64", 0.75))
            out.append(Variant(index, text[::-1].lower(), text[::-1], m_chars,
                               "reversed → base64", 0.75))
    seen: set[bytes] = set()
    unique = []
    for v in out:
        if v.data not in seen and len(v.data) >= v.min_run:
            seen.add(v.data)
            unique.append(v)
    return unique


class Matcher:
    """The sampled-window index over every variant of every secret (see the module doc)."""

    def __init__(self, secrets: list[Secret]) -> None:
        self.variants: list[Variant] = [v for i, s in enumerate(secrets) for v in variants(i, s)]
        if not self.variants:
            raise ValueError("no secrets to match")
        shortest = min(v.min_run for v in self.variants)
        self.stride = max(1, shortest - WINDOW + 1)
        blob = b"".join(v.data for v in self.variants)
        buf = np.frombuffer(blob, dtype=np.uint8)
        lengths = np.fromiter((len(v.data) for v in self.variants), dtype=np.int64,
                              count=len(self.variants))
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        counts = lengths - WINDOW + 1
        owner = np.repeat(np.arange(len(self.variants), dtype=np.int64), counts)
        shift = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
            np.cumsum(counts) - counts, counts)
        positions = np.repeat(starts, counts) + shift
        keys = _windows_at(buf, positions)
        order = np.argsort(keys, kind="stable")
        self.keys: npt.NDArray[np.uint64] = keys[order]
        self.owner: npt.NDArray[np.int64] = owner[order]
        self.shift: npt.NDArray[np.int64] = shift[order]
        self.bits = max(16, min(FILTER_BITS, int(len(keys) * FILTER_SLOTS_PER_KEY).bit_length()))
        self.filter = np.zeros(1 << (self.bits - 3), dtype=np.uint8)
        slots = _slot(self.keys, self.bits)
        np.bitwise_or.at(self.filter, slots >> np.uint64(3),
                         np.left_shift(np.uint8(1), (slots & np.uint64(7)).astype(np.uint8)))
        # the compiled scan reads a cache-sized filter first (_fast.c, near_filter)
        self.near_bits = max(12, min(NEAR_BITS, int(len(keys) * 8).bit_length()))
        self.near = native.ext.near_filter(self.keys, self.near_bits) if native.BUILT else b""

    def find(self, data: bytes) -> list[Match]:
        """Every maximal run of a variant in ``data`` at least that variant's minimum long."""
        if len(data) < WINDOW:
            return []
        lowered = data.lower()
        if native.on():  # the filter and binary search in C, the same candidates in order
            return self._verified(data, lowered, native.ext.window_candidates(
                lowered, self.stride, self.filter, self.bits, self.keys, self.near,
                self.near_bits))
        count = (len(lowered) - WINDOW) // self.stride + 1
        windows: npt.NDArray[np.uint64] = np.ndarray(
            (count,), dtype="<u8", buffer=lowered, offset=0, strides=(self.stride,))
        slots = _slot(windows, self.bits)
        passed = (self.filter[slots >> np.uint64(3)]
                  >> (slots & np.uint64(7)).astype(np.uint8)) & np.uint8(1)
        keep = np.flatnonzero(passed)
        if not len(keep):
            return []
        found = windows[keep]
        lo = np.searchsorted(self.keys, found, side="left")
        hi = np.searchsorted(self.keys, found, side="right")
        candidates = [(int(keep[i]) * self.stride, int(lo[i]), int(hi[i]))
                      for i in np.flatnonzero(hi > lo)]
        return self._verified(data, lowered, candidates)

    def _verified(self, data: bytes, lowered: bytes, candidates: list[tuple[int, int, int]],
                  ) -> list[Match]:
        """Each candidate ``(q, lo, hi)`` (index entries ``lo..hi`` equal the window at
        ``q``) extended to its maximal run; runs of at least the variant's minimum."""
        out: dict[tuple[int, int], Match] = {}
        for q, lo, hi in candidates:
            for e in range(lo, hi):
                v_index = int(self.owner[e])
                variant = self.variants[v_index]
                j = int(self.shift[e])
                start, length = _extend(lowered, q, variant.data, j)
                if length >= variant.min_run and (v_index, start) not in out:
                    offset = j - (q - start)
                    exact = data[start:start + length] == variant.original[offset:offset + length]
                    out[(v_index, start)] = Match(variant, start, length, not exact)
        return sorted(out.values(), key=lambda m: m.start)


def _extend(data: bytes, q: int, needle: bytes, j: int) -> tuple[int, int]:
    """The maximal run around ``data[q:q+8] == needle[j:j+8]``: (start in data, length)."""
    lo, hi = 0, min(j, q)  # how far left it extends: largest L with equal slices
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if data[q - mid:q] == needle[j - mid:j]:
            lo = mid
        else:
            hi = mid - 1
    left = lo
    lo, hi = 0, min(len(needle) - j - WINDOW, len(data) - q - WINDOW)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if data[q + WINDOW:q + WINDOW + mid] == needle[j + WINDOW:j + WINDOW + mid]:
            lo = mid
        else:
            hi = mid - 1
    return q - left, left + WINDOW + lo


def _slot(keys: npt.NDArray[np.uint64], bits: int) -> npt.NDArray[np.uint64]:
    return (keys * _GOLDEN) >> np.uint64(64 - bits)


def _windows_at(arr: npt.NDArray[np.uint8], positions: npt.NDArray[np.int64]
                ) -> npt.NDArray[np.uint64]:
    out = arr[positions].astype(np.uint64)
    for b in range(1, WINDOW):
        out |= arr[positions + b].astype(np.uint64) << np.uint64(8 * b)
    return out
