"""Byte sources as oracle records: dump items, log lines, wire captures, files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from semafore.oracle.model import TIER_LOG, TIER_WIRE, Chunk

READ_BYTES = 1 << 20


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


def file_blocks(path: str, size: int = READ_BYTES) -> Iterator[bytes]:
    """A file read in blocks: what :meth:`Scanner.add_stream` takes (bounded memory)."""
    with open(path, "rb") as fh:
        while block := fh.read(size):
            yield block
