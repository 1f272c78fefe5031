"""Relay configuration: one frozen object, built by ``semafore serve`` or by tests."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from semafore.oracle.leaks import parse_chain
from semafore.server.oplog import SHA256_LOG_HASH, LogHash
from semafore.server.otp_sink import OtpSinkRefused

RateLimits = dict[str, tuple[int, float]]
"""Bucket name -> (hits allowed, window seconds), fixed windows (docs/server.md "Limits")."""

DEFAULT_RATE_LIMITS: RateLimits = {
    # counted per client IP and per account (``Relay.limit``)
    "auth": (30, 60.0),  # signup, OTP, login, refresh, switch-org, TOTP enrolment
    "keys": (600, 60.0),  # key-directory lookups by one requester
    "send": (6000, 60.0),  # message and broadcast requests
    "attachments": (120, 60.0),  # attachment declarations and uploads (issue 13 F-6)
    "screenshots": (30, 60.0),  # screenshot reports (issue 13 F-6)
    # counted per the scope they name (``Relay.quota``; issue 13 F-6, F-9)
    "queue_sender": (120, 60.0),  # messages one sender queues for one recipient user
    "queue_recipient": (600, 60.0),  # messages queued for one recipient user, all senders
    "opk_pair": (6, 60.0),  # OPK-claiming bundle fetches of one target by one requester
    "opk_target": (60, 60.0),  # OPK-claiming bundle fetches of one target, all requesters
}
"""The one rate-limit table: every bucket the relay counts, with its production default.
Harnesses that must not be limited derive theirs with :func:`unlimited_rate_limits`."""


def unlimited_rate_limits(hits: int = 10**9) -> RateLimits:
    """Every bucket of :data:`DEFAULT_RATE_LIMITS` with ``hits`` per window: for harnesses
    whose simulated devices all share 127.0.0.1 and whose own traffic is the load (the
    simulator, load tests, benchmarks, client tests). Derived, so a new bucket is never
    missing from a harness table (``Settings`` refuses a table that lacks one)."""
    return {bucket: (hits, window) for bucket, (_, window) in DEFAULT_RATE_LIMITS.items()}


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
    rate_limits: RateLimits = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    # Bounded resources (issue 13 F-5, F-7; docs/server.md "Limits"). WebSocket: at most
    # this many sockets per device (opening one more closes the oldest, 4409); per socket at
    # most ``ws_window_bytes`` of envelope bodies pushed and not yet acked; a socket that
    # cannot take a frame, or leaves a full window unacked, for ``ws_stall_timeout``
    # seconds is closed 4408 (its envelopes stay queued).
    max_sockets_per_device: int = 4
    ws_window_bytes: int = 1024 * 1024
    ws_stall_timeout: float = 30.0
    # HTTP (semafore.server.serving): connections beyond ``max_connections`` are refused at
    # accept (typed 503; also uvicorn's limit_concurrency), a request head must arrive within
    # ``header_timeout`` and fit ``max_header_bytes`` (h11), a body within ``body_timeout``
    # (408), an idle keep-alive connection closes after ``keep_alive_timeout`` (uvicorn).
    max_connections: int = 1024
    header_timeout: float = 15.0
    body_timeout: float = 60.0
    keep_alive_timeout: float = 5.0
    max_header_bytes: int = 16 * 1024
    retention_interval: float = 60.0  # seconds between enforcement runs; 0 disables the task
    # An open WebSocket re-checks its token (expiry, family revocation) at most this often
    # (real seconds), on a frame or idle: bounded staleness instead of a store read per frame.
    # Logout, device removal and refresh-token reuse close the sockets at once (push hub).
    session_recheck: float = 2.0
    # How identifiers become ``*_h8`` log pseudonyms (issue 13 item 5, F-12; docs/server.md
    # "Log pseudonyms"): the seed's unkeyed SHA-256 prefix by default, or
    # ``LogHash("keyed", secret)`` (HMAC-SHA-256, `semafore serve --log-hash keyed`).
    log_hash: LogHash = SHA256_LOG_HASH
    clock: Callable[[], float] = time.time
    # TEST ONLY (issue 5: prove the plaintext-absence oracle is not blind). The relay never
    # holds plaintext; a harness that does passes ``leak_source(message_id)``, and with
    # ``leak="log"`` the relay writes it into an operational log line, with ``leak="store"``
    # it queues it in place of the first envelope's body ("stores one envelope unencrypted").
    # ``"log:base32+gzip"`` first encodes it through that chain (outermost first, the
    # encodings of semafore.oracle.leaks; issue #12). Refused unless ``test_mode`` is on.
    leak: str = "off"
    leak_source: Callable[[str], bytes | None] | None = None
    # TEST ONLY (issue 13): append every login code issued to DIR/otp-codes.jsonl
    # (semafore.server.otp_sink) for harnesses whose orgs are not test-OTP allow-listed.
    # Refused unless ``test_mode`` is on.
    otp_sink: str | None = None

    def __post_init__(self) -> None:
        mode, _, chain = self.leak.partition(":")
        if mode not in LEAK_MODES or (chain and mode == "off"):
            raise ValueError(f"leak must be one of {', '.join(LEAK_MODES)} (log and store "
                             f"optionally ':ENCODING+...'), not {self.leak!r}")
        if chain:
            parse_chain(chain)  # an unknown encoding is an OracleError (a ValueError) naming it
        if self.leak != "off" and (not self.test_mode or self.leak_source is None):
            raise ValueError("a leaking relay needs test_mode and a leak_source (tests only)")
        if self.otp_sink is not None and not self.test_mode:
            raise OtpSinkRefused("an OTP sink writes login codes to disk: test_mode only")
        if len(self.totp_key) != 32:
            raise ValueError("totp_key must be 32 bytes (AES-256-GCM)")
        if self.otp_max_failures < 1:
            raise ValueError("otp_max_failures must be at least 1")
        missing = sorted(DEFAULT_RATE_LIMITS.keys() - self.rate_limits.keys())
        if missing:  # a copied table that predates a bucket (derive it instead)
            raise ValueError(f"rate_limits lacks bucket(s) {', '.join(missing)} "
                             "(derive harness tables with unlimited_rate_limits())")
        for name in ("max_sockets_per_device", "ws_window_bytes", "max_connections",
                     "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("ws_stall_timeout", "header_timeout", "body_timeout",
                     "keep_alive_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
