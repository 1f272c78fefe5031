"""Relay configuration: one frozen object, built by ``semafore serve`` or by tests."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# (limit, window seconds) per bucket; each bucket is counted per client IP and per account.
DEFAULT_RATE_LIMITS: dict[str, tuple[int, float]] = {
    "auth": (30, 60.0),
    "keys": (600, 60.0),
    "send": (6000, 60.0),
}


LEAK_MODES = ("off", "log", "store")


@dataclass(frozen=True)
class Settings:
    """Everything tunable about the relay; defaults are production-shaped."""

    jwt_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    issuer: str = "semafore-relay"
    audience: str = "semafore-client"
    access_ttl: int = 900  # seconds (ADR-0163: short-lived access tokens)
    refresh_ttl: int = 7 * 86400  # one refresh token's own lifetime
    refresh_family_ttl: int = 30 * 86400  # absolute bound of a rotation chain (ADR-0163)
    otp_ttl: int = 300
    # Login guard (issue 13, semafore.server.login_guard): a code dies after this many wrong
    # guesses; each code that dies in a row at one address doubles that address's wait.
    otp_max_failures: int = 3
    otp_backoff_base: float = 60.0
    otp_backoff_cap: float = 4 * 3600.0
    # How long an invitation to a user of another organisation stays open (seconds).
    invitation_ttl: int = 7 * 86400
    # AES-256-GCM key sealing TOTP seeds at rest (F-11); `semafore serve` derives it and
    # ``jwt_secret`` from one persisted relay key (semafore.server.keys).
    totp_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # ADR-0164: the fixed test OTP works only when test_mode is on AND the org is listed.
    test_mode: bool = False
    test_orgs: frozenset[str] = frozenset()
    test_otp: str = "000000"
    max_devices_per_user: int = 16
    max_envelope_bytes: int = 64 * 1024
    max_json_bytes: int = 4 * 1024 * 1024
    max_attachment_bytes: int = 8 * 1024 * 1024
    max_opks_per_upload: int = 100
    max_opks_stored: int = 500
    max_broadcast_recipients: int = 1000
    rate_limits: dict[str, tuple[int, float]] = field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS)
    )
    retention_interval: float = 60.0  # seconds between enforcement runs; 0 disables the task
    # An open WebSocket re-checks its token (expiry, family revocation) at most this often
    # (real seconds), on a frame or idle: bounded staleness instead of a store read per frame.
    # Logout, device removal and refresh-token reuse close the sockets at once (push hub).
    session_recheck: float = 2.0
    clock: Callable[[], float] = time.time
    # TEST ONLY (issue 5: prove the plaintext-absence oracle is not blind). The relay never
    # holds plaintext; a harness that does passes ``leak_source(message_id)``, and with
    # ``leak="log"`` the relay writes it into an operational log line, with ``leak="store"``
    # it queues it in place of the first envelope's body ("stores one envelope unencrypted").
    # ``"log:base32+gzip"`` first encodes it through that chain (outermost first, the
    # encodings of semafore.oracle.leaks; issue #12). Refused unless ``test_mode`` is on.
    leak: str = "off"
    leak_source: Callable[[str], bytes | None] | None = None

    def __post_init__(self) -> None:
        mode, _, chain = self.leak.partition(":")
        if mode not in LEAK_MODES or (chain and mode == "off"):
            raise ValueError(f"leak must be one of {', '.join(LEAK_MODES)} (log and store "
                             f"optionally ':ENCODING+...'), not {self.leak!r}")
        if chain:
            from semafore.oracle.leaks import parse_chain  # test-only path

            parse_chain(chain)  # an unknown encoding is an OracleError (a ValueError) naming it
        if self.leak != "off" and (not self.test_mode or self.leak_source is None):
            raise ValueError("a leaking relay needs test_mode and a leak_source (tests only)")
        if len(self.totp_key) != 32:
            raise ValueError("totp_key must be 32 bytes (AES-256-GCM)")
        if self.otp_max_failures < 1:
            raise ValueError("otp_max_failures must be at least 1")
