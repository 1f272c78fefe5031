"""Storage ports (:mod:`semafore.storage.ports`) and the embedded adapters (memory, SQLite)."""

from semafore.storage.ports import Stores

__all__ = ["Stores", "open_stores"]


def open_stores(spec: str) -> Stores:
    """``memory`` or ``sqlite:PATH`` (the ``semafore serve --store`` syntax)."""
    if spec == "memory":
        from semafore.storage.memory import memory_stores

        return memory_stores()
    if spec.startswith("sqlite:") and len(spec) > len("sqlite:"):
        from semafore.storage.sqlite import sqlite_stores

        return sqlite_stores(spec[len("sqlite:") :])
    raise ValueError(f"unknown store {spec!r}: use 'memory' or 'sqlite:PATH'")
