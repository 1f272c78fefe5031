"""Storage ports (:mod:`semafore.storage.ports`) and the embedded adapters (memory, SQLite)."""

from semafore.storage.memory import memory_stores
from semafore.storage.ports import Stores
from semafore.storage.sqlite import sqlite_stores

__all__ = ["Stores", "open_stores"]


def open_stores(spec: str) -> Stores:
    """``memory`` or ``sqlite:PATH`` (the ``semafore serve --store`` syntax)."""
    if spec == "memory":
        return memory_stores()
    if spec.startswith("sqlite:") and len(spec) > len("sqlite:"):
        return sqlite_stores(spec[len("sqlite:") :])
    raise ValueError(f"unknown store {spec!r}: use 'memory' or 'sqlite:PATH'")
