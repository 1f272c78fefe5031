"""The plaintext-absence oracle (SPEC §8; docs/oracle.md): the one engine the scenario
executor, the live gate and ``semafore oracle scan`` use."""

from semafore.oracle.engine import MAX_DEPTH, Oracle, Scanner
from semafore.oracle.model import (
    IDENTIFIER_KINDS,
    MIN_CANARY_RUN,
    MIN_KEY_RUN,
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
    OracleError,
    ScanReport,
    Secret,
    SecretKind,
    canary,
    h8,
)
from semafore.oracle.sources import (
    file_blocks,
    file_stream,
    from_items,
    from_log_file,
    from_log_lines,
    from_wire,
    log_lines,
)

__all__ = [
    "IDENTIFIER_KINDS", "MAX_DEPTH", "MIN_CANARY_RUN", "MIN_KEY_RUN", "MIN_SECRET_LEN",
    "TIERS", "TIER_FILE", "TIER_LOG", "TIER_MONGODB", "TIER_OBJECT_STORE", "TIER_REDIS",
    "TIER_WIRE", "Chunk", "Hit", "Oracle", "OracleError", "ScanReport", "Scanner", "Secret",
    "SecretKind", "canary", "file_blocks", "file_stream", "from_items", "from_log_file",
    "from_log_lines", "from_wire", "h8", "log_lines",
]
