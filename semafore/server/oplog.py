"""Structured JSON operational logs with identifier hashing in ONE place (seed §2.3, ADR-0019).

Call sites log freely with ``log.info("event", extra={"fields": {...}})``; :func:`redact` is
the only processor and runs on every record before it is written: ``sub``, ``subject``,
``user_id``, ``device_id``, ``message_id``, ``delivery_id``, ``group_id``, ``file_id`` and
composite identity markers (``address``, ``sender``, ``recipient``, ``actor``, …) become
``<name>_h8`` = first 8 hex of SHA-256. ``org_id`` stays raw. Any other string field not on
the allow-list is hashed too (fail closed): a new call site can never leak an identifier by
choosing a new field name.

How the 8 hex digits are computed is the relay's ``log_hash`` setting (:class:`LogHash`,
issue 13 item 5 / F-12): ``sha256`` (default) is the seed's unkeyed prefix, which anyone who
can guess an id can recompute, so a log reader reverses guessable user and device ids with a
name list; ``keyed`` is HMAC-SHA-256 under a deployment secret, still 8 hex digits, which a
log reader without the secret cannot recompute. :func:`h8` is the one place either is computed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from semafore import sabotage

LOGGER_NAME = "semafore.server"

HASHED_FIELDS = frozenset(
    {
        "sub",
        "subject",
        "user_id",
        "device_id",
        "message_id",
        "delivery_id",
        "group_id",
        "file_id",
        "family_id",
        "event_id",
        "report_id",
        "address",
        "sender",
        "recipient",
        "actor",
        "peer",
        "target_user_id",
        "sender_user_id",
        "sender_device_id",
        "recipient_user_id",
        "recipient_device_id",
    }
)
# Strings that are safe raw: operational vocabulary, never identities or content.
RAW_FIELDS = frozenset(
    {
        "org_id",
        "event",
        "level",
        "ts",
        "logger",
        "method",
        "route",
        "status",
        "error",
        "reason",
        "kind",
        "role",
        "bucket",
        "scope",
        "store",
        "host",
        "event_type",
        "client_ip",
    }
)


def h8(value: object, key: bytes | None = None) -> str:
    """The 8 hex digits that stand for an identifier in logs: the SHA-256 prefix (seed §2.3)
    or, with a deployment ``key``, the HMAC-SHA-256 prefix (``log_hash: keyed``). The only
    place identifiers are hashed."""
    data = str(value).encode("utf-8")
    if key is None:
        return hashlib.sha256(data).hexdigest()[:8]
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:8]


LOG_HASH_MODES = ("sha256", "keyed")
"""``sha256``: the seed's unkeyed prefix (the default, so the reference matches the product);
``keyed``: HMAC-SHA-256 under a deployment secret (docs/server.md "Log pseudonyms")."""
MIN_LOG_HASH_KEY_BYTES = 16


class LogHashError(ValueError):
    """The ``log_hash`` configuration is unusable; ``field`` names the setting at fault."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


@dataclass(frozen=True)
class LogHash:
    """How a relay turns identifiers into ``*_h8`` pseudonyms (the ``log_hash`` setting).

    ``keyed`` needs ``key``, a deployment secret of at least 16 bytes kept outside the log
    and data tiers: a reader of the logs alone then cannot test a guessed id against a
    pseudonym (issue 13 F-12), while an operator holding the secret still can, to find one
    user's lines (``h8(user_id, key)``). Pseudonyms stay stable while the secret does, so
    lines of one user still correlate across restarts and replicas."""

    mode: str = "sha256"
    key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if self.mode not in LOG_HASH_MODES:
            raise LogHashError("log_hash", f"must be one of {', '.join(LOG_HASH_MODES)}, "
                               f"not {self.mode!r}")
        if self.mode == "keyed" and len(self.key) < MIN_LOG_HASH_KEY_BYTES:
            raise LogHashError("log_hash_key", "keyed log hashing needs a deployment secret "
                               f"of at least {MIN_LOG_HASH_KEY_BYTES} bytes, got "
                               f"{len(self.key)}")
        if self.mode == "sha256" and self.key:
            raise LogHashError("log_hash_key", "a secret is only used with log_hash keyed "
                               "(sha256 is the unkeyed prefix)")

    def h8(self, value: object) -> str:
        """The pseudonym of ``value`` under this mode (see :func:`h8`)."""
        return h8(value, self.key if self.mode == "keyed" else None)


SHA256_LOG_HASH = LogHash()
"""The default: the seed §2.3 unkeyed SHA-256 prefix."""


def redact(fields: Mapping[str, Any], log_hash: LogHash = SHA256_LOG_HASH) -> dict[str, Any]:
    """The logging processor: the only place identifiers are turned into ``*_h8`` fields,
    each through ``log_hash`` (the relay's setting, handed over by :func:`configure_logging`)."""
    pseudonym = log_hash.h8
    out: dict[str, Any] = {}
    # TEST ONLY (semafore.sabotage "relay.logs_raw_ids"): the identifiers pass raw.
    raw = RAW_FIELDS | HASHED_FIELDS if sabotage.active("relay.logs_raw_ids") else RAW_FIELDS
    for key, value in fields.items():
        if key in raw or value is None or isinstance(value, bool | int | float):
            out[key] = value
        elif isinstance(value, list | tuple | set | frozenset):
            out[f"{key}_h8"] = [pseudonym(v) for v in value]
        else:
            out[f"{key.removesuffix('_h8')}_h8"] = pseudonym(value)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, then the fields redacted under
    ``log_hash``."""

    def __init__(self, log_hash: LogHash = SHA256_LOG_HASH) -> None:
        super().__init__()
        self.log_hash = log_hash

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage() if record.name == LOGGER_NAME else "library",
        }
        if record.name != LOGGER_NAME:
            # Third-party messages (uvicorn, asyncio) may interpolate anything: keep their
            # text out, keep only that something happened and its exception type.
            line["reason"] = record.levelname.lower()
        line.update(redact(fields, self.log_hash))
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
        return json.dumps(line, separators=(",", ":"), sort_keys=False)


class LogRateLimit(logging.Filter):
    """At most ``per_second`` lines per (logger, event) each second; the rest are dropped and
    counted, and the next line of that key that passes carries ``suppressed: n`` (issue 13
    F-8: a flood of one error, e.g. ``asyncio`` under fd exhaustion, cannot fill the disk).
    Third-party loggers get ``library_per_second``: their lines carry no fields anyway."""

    MAX_KEYS = 4096

    def __init__(self, per_second: int = 1000, library_per_second: int = 20) -> None:
        super().__init__()
        self.per_second = per_second
        self.library_per_second = library_per_second
        self._windows: dict[tuple[str, str], tuple[int, int, int]] = {}  # second, seen, dropped

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == LOGGER_NAME
        key = (record.name, str(record.msg) if own else record.levelname)
        limit = self.per_second if own else self.library_per_second
        second = int(time.monotonic())
        window, seen, dropped = self._windows.get(key, (second, 0, 0))
        if window != second:
            window, seen = second, 0
        if seen >= limit:
            self._windows[key] = (window, seen, dropped + 1)
            return False
        if len(self._windows) >= self.MAX_KEYS and key not in self._windows:
            self._windows.clear()
        self._windows[key] = (window, seen + 1, 0)
        if dropped:
            record.fields = {**(getattr(record, "fields", None) or {}), "suppressed": dropped}
        return True


THIRD_PARTY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio")


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO,
                      log_hash: LogHash = SHA256_LOG_HASH) -> logging.Handler:
    """Route every logger through :class:`JsonFormatter` and :class:`LogRateLimit` on
    ``stream``: the relay's, uvicorn's and ``asyncio``'s explicitly, and any other library's
    through the root logger (issue 13 F-8: nothing reaches the output unredacted).

    ``log_hash`` is the relay's setting (``Settings.log_hash``). Logging is process-wide, so
    the pseudonym mode is the handler's: every relay in one process writes through the last
    handler configured here, with its mode. One process is one deployment (``semafore
    serve``, one simulator run with its replicas); relays with different modes need
    different processes (docs/server.md "Log pseudonyms")."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(log_hash))
    handler.addFilter(LogRateLimit())
    handler.semafore_oplog = True  # type: ignore[attr-defined]
    for name in (LOGGER_NAME, *THIRD_PARTY_LOGGERS):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # raw paths carry identifiers
    root = logging.getLogger()
    for previous in [h for h in root.handlers if getattr(h, "semafore_oplog", False)]:
        root.removeHandler(previous)
    for plain in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        root.removeHandler(plain)  # e.g. logging.basicConfig's: it would print raw text
    root.addHandler(handler)
    return handler


log = logging.getLogger(LOGGER_NAME)


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event (fields are redacted by the formatter, never here)."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={"fields": fields})


def now_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
