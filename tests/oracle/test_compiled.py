"""The oracle's compiled hot paths (``semafore/oracle/_fast.c``, ``native.py``; docs/oracle.md
"Cost") against the pure-Python/numpy reference they replace.

- In CI the extension must be built and in use: a broken build fails here, it never slows the
  suite silently. Outside CI a missing build falls back to the reference and says so once.
- Differential: the compiled and reference engines give the same hits on random text with
  secrets planted through random chains, on random binary and on the benchmark's corpus; each
  C function gives what its reference gives, bit for bit.
- Memory safety: every C entry point is fuzzed with random lengths (0 included), misaligned
  buffers and out-of-range positions; a wrong input is a ValueError, never a crash (a crash
  would kill this test process).
"""

from __future__ import annotations

import contextlib
import os
import random
import string
import subprocess
import sys
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import bench_oracle
from semafore.oracle import Chunk, Oracle, canary, decoders, native, radix
from semafore.oracle.leaks import encode
from semafore.oracle.matcher import Matcher
from semafore.oracle.model import Secret

IN_CI = os.environ.get("CI") == "true"
needs_build = pytest.mark.skipif(not native.BUILT and not IN_CI,
                                 reason=f"semafore.oracle._fast is {native.REASON}")


@needs_build
def test_the_extension_is_built_and_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan goes through the compiled matcher and candidate search (a build that is missing
    or stale fails here in CI, where ``pytestmark`` does not skip)."""
    assert native.BUILT, f"semafore.oracle._fast is {native.REASON}"
    assert native.on()
    assert all(callable(getattr(native.ext, name)) for name in native.FUNCTIONS)
    calls: dict[str, int] = {}
    for name in ("window_candidates", "nested_candidates", "plausible_at", "pack"):
        real = getattr(native.ext, name)

        def counted(*args: object, _real: object = real, _name: str = name) -> object:
            calls[_name] = calls.get(_name, 0) + 1
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(native.ext, name, counted)
    key = random.Random(1).randbytes(32)
    o = Oracle()
    o.register_key("k", key)
    hits = o.scan([Chunk("log", "line 1", b"x=" + encode(["base32", "deflate"], key) + b"\n"
                         + random.Random(2).randbytes(3000))]).hits
    assert [h.label for h in hits] == ["k"]
    assert calls.get("window_candidates", 0) > 0
    assert calls.get("nested_candidates", 0) > 0
    assert calls.get("pack", 0) > 0
    assert calls.get("plausible_at", 0) > 0


def test_without_the_build_the_reference_runs_and_says_so_once() -> None:
    """Outside CI a missing build is not fatal: the engine still finds the leak, and one
    logging warning names the reason."""
    code = (
        "import sys, logging\n"
        "sys.modules['semafore.oracle._fast'] = None  # the import fails as if never built\n"
        "from semafore.oracle import Oracle, Chunk, native, radix, matcher\n"
        "assert not native.BUILT and not native.on()\n"
        "o = Oracle(); key = bytes(range(7, 39)); o.register_key('k', key)\n"
        "import base64\n"
        "hits = o.scan([Chunk('log', 'l', b'v=' + base64.b32encode(key))]).hits\n"
        "print([h.label for h in hits])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['k']"
    assert done.stderr.count("runs its pure-Python reference path") == 1
    assert "not built" in done.stderr


# --- the same hits ---------------------------------------------------------------------------

CHAINS = ["hex", "base32", "base64", "base64-url", "z85", "ascii85", "binary", "base32-crockford",
          "gzip", "zlib", "deflate", "bz2", "utf-16le", "utf-32be", "json", "percent", "reversed"]
TEXT = st.text(alphabet=string.ascii_letters + string.digits + ' =:,{}"_-./', max_size=80)


Hits = list[dict[str, object]]


def _both(o: Oracle, records: list[Chunk]) -> tuple[Hits, Hits]:
    compiled = [h.to_dict() for h in o.scan(records).hits]
    with native.reference():
        reference = [h.to_dict() for h in o.scan(records).hits]
    return compiled, reference


@needs_build
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain=st.lists(st.sampled_from(CHAINS), min_size=1, max_size=3),
       seed=st.binary(min_size=32, max_size=32), is_key=st.booleans(), before=TEXT,
       after=TEXT, noise=st.binary(max_size=300))
def test_compiled_and_reference_find_the_same_hits_in_planted_chains(
        chain: list[str], seed: bytes, is_key: bool, before: str, after: str,
        noise: bytes) -> None:
    secret = seed if is_key else canary(seed[:16])
    o = Oracle()
    (o.register_key if is_key else o.register_canary)("s", secret)
    o.register_key("other", bytes(reversed(seed)))
    planted = before.encode() + encode(chain, secret) + after.encode()
    compiled, reference = _both(o, [Chunk("log", "line 1", planted),
                                    Chunk("store", "doc", noise + planted)])
    assert compiled == reference


@needs_build
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=20_000), seed=st.binary(min_size=32, max_size=32))
def test_compiled_and_reference_agree_on_random_binary(data: bytes, seed: bytes) -> None:
    o = Oracle()
    o.register_key("k", seed)
    o.register_canary("c", canary(seed[:16]))
    compiled, reference = _both(o, [Chunk("store", "blob", data), Chunk("wire", "frame", data)])
    assert compiled == reference


@needs_build
def test_compiled_and_reference_agree_on_the_benchmark_corpus() -> None:
    """The benchmark's mixed records with a few leaks planted in them (so there is something
    to agree on), 200 secrets."""
    rng = random.Random(5)
    o = Oracle()
    keys = [rng.randbytes(32) for _ in range(100)]
    for i, key in enumerate(keys):
        o.register_key(f"k{i}", key)
        o.register_canary(f"c{i}", canary(rng.randbytes(16)))
    chunks = bench_oracle.corpus(0.15, rng)
    for i, chain in enumerate((["base64"], ["hex", "gzip"], ["base32", "deflate"],
                               ["percent", "utf-16le"], ["z85"], ["reversed", "base64"])):
        at = rng.randrange(len(chunks))
        data = chunks[at].data
        chunks[at] = Chunk(chunks[at].tier, chunks[at].location,
                           data[:50] + encode(chain, keys[i]) + data[50:])
    compiled, reference = _both(o, chunks)
    assert len(compiled) >= 6
    assert compiled == reference


# --- each function against its reference ----------------------------------------------------

STREAMS = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.sampled_from([b"\x00" * 9, b"plain text, ", b"\x78\x9c", b"\x1f\x8b\x08",
                              b"BZh91AY&SY", b"\xfd7zXZ\x00", b"]\x00\x00", b"\xff\x00"]),
             max_size=60).map(b"".join),
)


@needs_build
@settings(max_examples=200, deadline=None)
@given(data=STREAMS, shifts=st.integers(1, 255))
def test_pair_candidates_are_the_reference_flags(data: bytes, shifts: int) -> None:
    stream = np.frombuffer(data, dtype=np.uint8)
    at_bytes, flag_bytes = native.ext.pair_candidates(stream, shifts, radix.TEXT_PAIRS,
                                                      radix.ZERO_PAIRS, radix.MAGIC_FIRST,
                                                      radix.MAGIC_SECOND)
    at, flags, _ = radix._pair_flags(stream, shifts)
    assert np.frombuffer(at_bytes, dtype=np.int64).tolist() == at.tolist()
    assert np.frombuffer(flag_bytes, dtype=np.uint32).tolist() == flags.tolist()


@needs_build
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), shifts=st.sampled_from([0x55, 0x11, 0xFF, 0x01, 0x80]),
       extra=STREAMS)
def test_nested_candidates_are_the_reference_runs_and_magics(seed: int, shifts: int,
                                                             extra: bytes) -> None:
    stream = np.frombuffer(_magic_stream(random.Random(seed)) + extra, dtype=np.uint8)
    compiled = native.ext.nested_candidates(stream, shifts, radix.TEXT_PAIRS, radix.ZERO_PAIRS,
                                            radix.MAGIC_FIRST, radix.MAGIC_SECOND,
                                            radix.MAGIC_PREFIXES)
    at, flags, pairs = radix._pair_flags(stream, shifts)
    expected = []
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(decoders, "FEW_CANDIDATES", 0)
        for s in range(8):
            if shifts & (1 << s):
                expected.append((
                    s, radix._runs(at[(flags & (1 << s)) != 0], decoders.TEXT_RUN),
                    radix._runs(np.maximum(at[(flags & (1 << (s + 8))) != 0] - 4, 0), 24),
                    radix._exact_magics(pairs, at[(flags & (1 << (s + 16))) != 0], s).tolist()))
    assert compiled == expected


@needs_build
@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from(["0x1f", " ", "zz", "z", "deadBEEF", "MFRGG===", "Zm9v+/",
                                      "0101", "\n", "<~", "~>", "\x00", "é", ":", "-_"]),
                     max_size=60).map("".join),
       alphabet=st.sampled_from(radix.RADIXES))
def test_symbols_are_the_reference_symbols(text: str, alphabet: radix.Radix) -> None:
    data = text.encode()
    compiled = radix.symbols(data, alphabet)
    with native.reference():
        reference = radix.symbols(data, alphabet)
    assert (compiled is None) == (reference is None)
    if compiled is not None and reference is not None:
        assert compiled.values.tolist() == reference.values.tolist()
        assert compiled.firsts.tolist() == reference.firsts.tolist()
        assert compiled.counts.tolist() == reference.counts.tolist()
        assert compiled.offsets().tolist() == reference.offsets().tolist()


@needs_build
@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.sampled_from([b"\x00", b"\x00\x00", b"a", b"12", b"-7", b", ", b" ",
                                      b"x", b"255", b"\n"]), max_size=80).map(b"".join))
def test_zero_lanes_number_and_text_runs_are_the_reference(data: bytes) -> None:
    assert native.ext.zero_lanes(data) == (data.count(0) >= 8
                                           and decoders._zero_lanes_reference(data))
    assert native.ext.number_runs(data, decoders._NUMBER_CHARS, decoders._NUMBERS_SHORTEST,
                                  decoders._NUMBERS_FEWEST) == decoders._number_runs(data)
    with native.reference():
        reference = radix._text_runs(data)
    assert native.ext.table_runs(data, decoders.TEXTY, decoders.TEXT_RUN) == reference


@needs_build
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), bits=st.sampled_from([1, 4, 5, 6]))
def test_pack_and_base85_alignments_are_the_reference(data: bytes, bits: int) -> None:
    symbols = np.frombuffer(bytes(b & ((1 << bits) - 1) for b in data), dtype=np.uint8)
    compiled = np.frombuffer(native.ext.pack(symbols, bits), dtype=np.uint8)
    with native.reference():
        assert compiled.tolist() == radix.pack(symbols, bits).tolist()
        reference = [a.tobytes() for a in radix.base85_alignments(
            np.frombuffer(data, dtype=np.uint8))]
    assert native.ext.base85_alignments(data) == reference


def _magic_stream(rng: random.Random) -> bytes:
    """Random bytes with magics (and zlib magics followed by real deflate data) planted, read
    from a random bit shift."""
    parts = []
    for _ in range(rng.randrange(1, 40)):
        pick = rng.random()
        if pick < 0.3:
            parts.append(rng.choice(radix.MAGIC_PREFIXES))
        elif pick < 0.5:
            parts.append(b"\x78\x9c" + zlib.compress(rng.randbytes(40))[2:])
        elif pick < 0.6:
            parts.append(zlib.compress(rng.randbytes(40))[::-1])
        else:
            parts.append(rng.randbytes(rng.randrange(0, 60)))
    return b"".join(parts)


@needs_build
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), s=st.integers(0, 7))
def test_exact_magics_agree_with_the_reference(seed: int, s: int,
                                               ) -> None:
    rng = random.Random(seed)
    stream = np.frombuffer(_magic_stream(rng), dtype=np.uint8)
    if len(stream) < 2:
        return
    at, flags, pairs = radix._pair_flags(stream, 255)
    candidates = at[(flags & (1 << (s + 16))) != 0]
    candidates = np.concatenate((candidates, np.array(
        sorted(rng.sample(range(len(stream)), min(len(stream), 30))), dtype=np.int64)))
    compiled = np.frombuffer(native.ext.exact_magics(stream, candidates, s,
                                                     radix.MAGIC_PREFIXES), dtype=np.int64)
    with pytest.MonkeyPatch.context() as patched:  # the compiled check has no small-count skip
        patched.setattr(decoders, "FEW_CANDIDATES", 0)
        reference = radix._exact_magics(pairs, candidates, s)
    assert compiled.tolist() == reference.tolist()


def _plausible_rows(rng: random.Random, count: int) -> np.ndarray:
    rows = []
    for _ in range(count):
        if rng.random() < 0.3:
            c = zlib.compressobj(rng.randrange(10), zlib.DEFLATED, -15)
            stream = c.compress(rng.randbytes(rng.randrange(80))
                                + b"text, text, text" * rng.randrange(3)) + c.flush()
        else:
            stream = rng.randbytes(rng.randrange(decoders.PLAUSIBLE_BYTES + 1))
        rows.append((stream + bytes(decoders.PLAUSIBLE_BYTES))[:decoders.PLAUSIBLE_BYTES])
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(-1, decoders.PLAUSIBLE_BYTES)


@needs_build
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_the_compiled_deflate_prefilter_is_the_reference(seed: int) -> None:
    rows = _plausible_rows(random.Random(seed), 400)
    compiled = np.frombuffer(native.ext.plausible_rows(rows, rows.shape[1]), dtype=np.bool_)
    assert compiled.tolist() == decoders.deflate_plausible(rows).tolist()
    # and, checking every fixed-Huffman code of the head (strict), it still rejects only
    # starts zlib itself rejects in the same bytes
    by_zlib = np.array([decoders.deflate_may_start(bytes(r)) for r in rows])
    strict = np.frombuffer(native.ext.plausible_at(rows.tobytes(), np.arange(
        len(rows), dtype=np.int64) * 8 * rows.shape[1], True), dtype=np.bool_)
    assert not (by_zlib & ~compiled).any()
    assert not (by_zlib & ~strict).any()
    assert strict.sum() < compiled.sum()  # and it spares zlib more of the junk


@needs_build
@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=400), starts=st.lists(st.integers(0, 3500), max_size=80),
       width=st.integers(0, 70))
def test_heads_plausible_at_and_shifted_are_the_reference(data: bytes, starts: list[int],
                                                          width: int) -> None:
    stream = np.frombuffer(data, dtype=np.uint8)
    bits = np.array(starts, dtype=np.int64)
    if len(stream):
        assert native.ext.heads(stream, bits, width) == radix._heads(stream, bits, width).tobytes()
        reference_rows = radix._heads(stream, bits, decoders.PLAUSIBLE_BYTES)
        with pytest.MonkeyPatch.context() as patched:
            patched.setattr(decoders, "FEW_CANDIDATES", 0)
            reference = decoders.deflate_plausible(reference_rows).tolist()
        assert np.frombuffer(native.ext.plausible_at(stream, bits, False),
                             dtype=np.bool_).tolist() == reference
        strict = np.frombuffer(native.ext.plausible_at(stream, bits, True), dtype=np.bool_)
        assert not (strict & ~np.array(reference, dtype=np.bool_)).any()  # only stricter
    for start in starts[:10]:
        lo, s = start // 8, start % 8
        for hi in (lo, lo + 1, lo + width, len(stream), len(stream) + 5):
            expected = radix._shifted_reference(stream, s, lo, hi)
            assert native.ext.shifted(stream, s, lo, hi) == expected


def _reference_candidates(m: Matcher, data: bytes) -> Iterator[tuple[int, int, int]]:
    lowered = data.lower()
    count = (len(lowered) - 8) // m.stride + 1
    for i in range(max(0, count)):
        q = i * m.stride
        window = np.frombuffer(lowered[q:q + 8], dtype="<u8")[0]
        lo = int(np.searchsorted(m.keys, window, side="left"))
        hi = int(np.searchsorted(m.keys, window, side="right"))
        if hi > lo:
            yield q, lo, hi


@needs_build
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.binary(min_size=32, max_size=32), noise=st.binary(max_size=600),
       cut=st.integers(0, 40))
def test_window_candidates_are_every_indexed_window(seed: bytes, noise: bytes, cut: int) -> None:
    """The filters are exact-preserving: every window that is in the index is a candidate, in
    order; and the compiled matcher finds what the reference finds."""
    value = canary(seed[:16])
    m = Matcher([_secret("canary", value), _secret("key", seed)])
    data = (noise[:len(noise) // 2] + value + seed[cut % 32:] + noise[len(noise) // 2:])
    lowered = data.lower()
    got = native.ext.window_candidates(lowered, m.stride, m.filter, m.bits, m.keys, m.near,
                                       m.near_bits)
    assert got == list(_reference_candidates(m, data))
    compiled = [(x.variant.data, x.start, x.length, x.case_changed) for x in m.find(data)]
    with native.reference():
        reference = [(x.variant.data, x.start, x.length, x.case_changed) for x in m.find(data)]
    assert compiled == reference
    assert compiled  # the canary is there whole


def _secret(kind: str, value: bytes) -> Secret:
    o = Oracle()
    (o.register_canary if kind == "canary" else o.register_key)(kind, value)
    return o._secrets[0]


# --- fuzzing the entry points ----------------------------------------------------------------

def _misaligned(data: bytes, offset: int) -> memoryview:
    """``data`` in a buffer that starts ``offset`` bytes into another (not 8-aligned)."""
    return memoryview(bytes(offset) + data)[offset:]


def _int64s(values: list[int], offset: int) -> np.ndarray:
    raw = np.array(values, dtype=np.int64).tobytes()
    return np.frombuffer(bytes(offset) + raw, dtype=np.int64, offset=offset)


SIZES = st.sampled_from([0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]) | st.integers(
    0, 2000)


@needs_build
@settings(max_examples=300, deadline=None)
@given(size=SIZES, offset=st.integers(0, 7), seed=st.integers(0, 2**32),
       positions=st.lists(st.integers(-(2**40), 2**40) | st.integers(-3, 3000), max_size=20),
       shift=st.integers(-2, 9), width=st.integers(-3, 80), lo=st.integers(-3, 2100),
       hi=st.integers(-3, 2100))
def test_every_entry_point_survives_any_input(size: int, offset: int, seed: int,
                                              positions: list[int], shift: int, width: int,
                                              lo: int, hi: int) -> None:
    rng = random.Random(seed)
    data = _misaligned(rng.randbytes(size), offset)
    at = _int64s(positions, offset)
    ok_at = _int64s([p for p in positions if 0 <= p < max(size, 1)], offset)

    def survives(call: object, *args: object) -> None:
        """A wrong input is refused with an exception; the process lives either way."""
        with contextlib.suppress(ValueError, TypeError, MemoryError):
            call(*args)  # type: ignore[operator]

    survives(native.ext.shifted, data, shift, lo, hi)
    survives(native.ext.heads, data, at, width)
    survives(native.ext.heads, data, ok_at, width)
    survives(native.ext.plausible_at, data, at, shift & 1)
    survives(native.ext.plausible_at, data, ok_at, shift & 1)
    survives(native.ext.symbols, data, bytes(range(256)), bytes(256), width, shift & 1)
    survives(native.ext.symbols, data, data, data, width, True)
    survives(native.ext.plausible_rows, data, width)
    survives(native.ext.exact_magics, data, at, shift, radix.MAGIC_PREFIXES)
    survives(native.ext.exact_magics, data, ok_at, shift % 8, radix.MAGIC_PREFIXES)
    survives(native.ext.exact_magics, data, ok_at, shift % 8, (b"", b"x" * 17))
    survives(native.ext.pair_candidates, data, shift & 0xFF, radix.TEXT_PAIRS, radix.ZERO_PAIRS,
             radix.MAGIC_FIRST, radix.MAGIC_SECOND)
    survives(native.ext.pair_candidates, data, 255, data, data, data, data)
    keys = np.sort(np.frombuffer(rng.randbytes(8 * rng.randrange(0, 50)), dtype=np.uint64))
    near = native.ext.near_filter(keys, 16)
    survives(native.ext.window_candidates, data, max(width, 0), bytes(1 << 13), 16, keys, near,
             16)
    survives(native.ext.window_candidates, data, 4, data, 16, data, data, 16)
    survives(native.ext.near_filter, data, min(width, 24))
    survives(native.ext.nested_candidates, data, shift & 0xFF, radix.TEXT_PAIRS,
             radix.ZERO_PAIRS, radix.MAGIC_FIRST, radix.MAGIC_SECOND, radix.MAGIC_PREFIXES)
    survives(native.ext.nested_candidates, data, 255, data, data, data, data, (data,))
    survives(native.ext.pack, data, width)
    survives(native.ext.zero_lanes, data)
    survives(native.ext.table_runs, data, bytes(range(256)), width)
    survives(native.ext.table_runs, data, data, width)
    survives(native.ext.number_runs, data, bytes(range(256)), width, lo)
    survives(native.ext.number_runs, data, data, width, lo)
    survives(native.ext.base85_alignments, data)
    survives(native.ext.init_deflate, data, data, data, data, data, data, data, data)
    # the tables are still the real ones (a refused init changes nothing)
    assert native.ext.plausible_rows(b"\x06" + bytes(31), 32) == b"\x00"  # block type 3
