"""Byte sources as oracle records: dump items, log lines, wire captures, files."""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from semafore.oracle.model import TIER_LOG, TIER_WIRE, Chunk

READ_BYTES = 1 << 20


@runtime_checkable
class StoredRecord(Protocol):
    """A dumped record (:class:`semafore.deploy.dumps.Item`): where, and its bytes."""

    @property
    def source(self) -> object: ...
    @property
    def data(self) -> bytes: ...


@runtime_checkable
class StoredBlob(Protocol):
    """A dumped file (:class:`semafore.deploy.dumps.StoredFile`): where, and a path to
    stream it from."""

    @property
    def source(self) -> object: ...
    @property
    def path(self) -> Path: ...


Dumped = StoredRecord | StoredBlob


def from_items(tier: str, items: Iterable[Any]) -> Iterator[Chunk]:
    """Chunks from :class:`semafore.deploy.dumps.Item` (anything with ``source`` and ``data``)."""
    for item in items:
        yield Chunk(tier, str(item.source), bytes(item.data))


def from_log_lines(lines: Iterable[str | bytes], *, name: str = "server.log") -> Iterator[Chunk]:
    """One chunk per log line, located as ``name:line N`` (1-based)."""
    for number, line in enumerate(lines, start=1):
        data = line.encode("utf-8") if isinstance(line, str) else line
        yield Chunk(TIER_LOG, f"{name}:line {number}", data.rstrip(b"\r\n"))


def from_log_file(path: str | Path, *, name: str | None = None) -> Iterator[Chunk]:
    """One chunk per line of a log file read as a stream (whole-file gzip/bz2/xz undone
    as it is read): memory is one block and one line, however long the log."""
    blocks, _ = file_stream(path)
    yield from from_log_lines(log_lines(blocks), name=name or str(path))


def log_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a stream of blocks (a line cut by a block boundary comes out whole)."""
    rest = b""
    for block in blocks:
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def from_wire(records: Iterable[tuple[str, bytes]]) -> Iterator[Chunk]:
    """Captured wire bytes as (description, bytes) — e.g. ``("#12 alice/phone up", frame)``."""
    for description, data in records:
        yield Chunk(TIER_WIRE, description, data)


def file_blocks(path: str, size: int = READ_BYTES) -> Iterator[bytes]:
    """A file read in blocks: what :meth:`Scanner.add_stream` takes (bounded memory)."""
    with open(path, "rb") as fh:
        while block := fh.read(size):
            yield block


_WHOLE_FILE = ((b"\x1f\x8b", "gzip", gzip.open), (b"BZh", "bz2", bz2.open),
               (b"\xfd7zXZ\x00", "xz", lzma.open))


def file_stream(path: str | Path, size: int = READ_BYTES,
                ) -> tuple[Iterator[bytes], tuple[str, ...]]:
    """A file as blocks for :meth:`Scanner.add_stream`, and the decode chain they start
    with: a whole-file gzip/bz2/xz file (a rotated ``relay.log.gz``) is decompressed as it
    is read, so memory stays one block however large it inflates; anything else is read as
    it is. Opening reads the first bytes: an unreadable file raises ``OSError`` here."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    for magic, name, opener in _WHOLE_FILE:
        if head.startswith(magic):
            return _decompressed(opener(path, "rb"), size), (name,)
    return file_blocks(str(path), size), ()


def _decompressed(fh: gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile, size: int) -> Iterator[bytes]:
    with fh:
        try:
            while block := fh.read(size):
                yield block
        except (OSError, EOFError, lzma.LZMAError):
            return  # a truncated or corrupt archive: what decompressed was scanned
