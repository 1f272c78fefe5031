"""What the plaintext-absence oracle takes and gives (SPEC §8, docs/oracle.md).

``Chunk`` is bytes an adversary holds and where they were; ``Hit`` is one registered secret
found in them, with the decode chain that exposed it; ``ScanReport`` is everything a scan saw.
The tier names are the adversary's vantage points of seed §2.2 (store, logs, wire).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

TIER_MONGODB = "mongodb"
TIER_REDIS = "redis"
TIER_OBJECT_STORE = "seaweedfs"
TIER_LOG = "log"
TIER_WIRE = "wire"
TIER_FILE = "file"  # `semafore oracle scan` over arbitrary files
TIERS = (TIER_MONGODB, TIER_REDIS, TIER_OBJECT_STORE, TIER_LOG, TIER_WIRE, TIER_FILE)

SecretKind = Literal["canary", "key"]
IDENTIFIER_KINDS = ("sub", "subject", "device_id", "message_id", "delivery_id", "group_id")

MIN_SECRET_LEN = 16
"""Shortest registrable value: fewer random bytes could match by chance."""
MIN_KEY_RUN = 16
"""A key leaks if any ``min(16, len)`` consecutive bytes of it show (issue #12)."""
MIN_CANARY_RUN = 12
"""A canary leaks if any ``min(12, len)`` consecutive characters of it show (issue #12)."""


class OracleError(ValueError):
    """A value cannot be registered or scanned; ``field`` names the offending input."""

    def __init__(self, message: str, field: str = "value") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Chunk:
    """Bytes an adversary holds and where they were: ``location`` names a document, key,
    object, log line or wire record precisely enough for a reviewer to go and look."""

    tier: str
    location: str
    data: bytes


@dataclass(frozen=True)
class Secret:
    label: str  # e.g. "message m.3 (alice/phone -> bob)", "bob/phone SPK private"
    kind: SecretKind
    value: bytes

    @property
    def min_run(self) -> int:
        """Consecutive bytes of the value that count as a leak (the partial-match rule)."""
        return min(MIN_CANARY_RUN if self.kind == "canary" else MIN_KEY_RUN, len(self.value))


@dataclass(frozen=True)
class Hit:
    tier: str
    location: str
    offset: int  # in the record: the first encoded byte the match decodes from (a compressed
    # stream: its first byte)
    encoding: str  # the decode chain, outermost first: "base64 → gzip → utf-16le", or "raw"
    label: str  # the message or key it belongs to, or the identifier kind
    kind: str  # "canary", "key" or "identifier"
    matched: int = 0  # bytes of the secret that showed (== its length unless partial)
    length: int = 0  # the secret's length

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "location": self.location, "offset": self.offset,
                "encoding": self.encoding, "label": self.label, "kind": self.kind,
                "matched": self.matched, "length": self.length}


@dataclass
class ScanReport:
    hits: list[Hit] = field(default_factory=list)
    bytes_by_tier: dict[str, int] = field(default_factory=dict)
    items_by_tier: dict[str, int] = field(default_factory=dict)
    # Where the decode budget ran out (a pathological input): those spans were matched raw
    # but not decoded to full depth. Empty on every input the harness produces.
    truncated: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.hits


def canary(random16: bytes) -> bytes:
    """A canary from ≥16 random bytes: ASCII so it can ride inside any text plaintext
    (``cnry`` + lowercase base32), unique per message."""
    if len(random16) < 16:
        raise OracleError("a canary needs at least 16 random bytes", field="canary")
    return b"cnry" + base64.b32encode(random16).rstrip(b"=").lower()


def h8(value: str) -> str:
    """The 8-hex SHA-256 prefix logs use for identifiers (seed §2.3)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
