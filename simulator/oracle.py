"""The plaintext-absence oracle (SPEC §8, docs/oracle.md), re-exported from the library.

The engine lives in :mod:`semafore.oracle` so the scenario executor, the live gate and
``semafore oracle scan`` share one implementation; this module keeps the simulator's import
path working.
"""

from __future__ import annotations

from semafore.oracle import (
    IDENTIFIER_KINDS,
    MAX_DEPTH,
    MIN_SECRET_LEN,
    TIER_FILE,
    TIER_LOG,
    TIER_MONGODB,
    TIER_OBJECT_STORE,
    TIER_REDIS,
    TIER_WIRE,
    TIERS,
    Chunk,
    Hit,
    Oracle,
    OracleError,
    Scanner,
    ScanReport,
    Secret,
    SecretKind,
    canary,
    file_blocks,
    from_items,
    from_log_file,
    from_log_lines,
    from_wire,
    h8,
)

__all__ = [
    "IDENTIFIER_KINDS", "MAX_DEPTH", "MIN_SECRET_LEN", "TIERS", "TIER_FILE", "TIER_LOG",
    "TIER_MONGODB", "TIER_OBJECT_STORE", "TIER_REDIS", "TIER_WIRE", "Chunk", "Hit", "Oracle",
    "OracleError", "ScanReport", "Scanner", "Secret", "SecretKind", "canary", "file_blocks",
    "from_items", "from_log_file", "from_log_lines", "from_wire", "h8",
]
