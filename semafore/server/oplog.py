"""Structured JSON operational logs with identifier hashing in ONE place (seed §2.3, ADR-0019).

Call sites log freely with ``log.info("event", extra={"fields": {...}})``; :func:`redact` is
the only processor and runs on every record before it is written: ``sub``, ``subject``,
``user_id``, ``device_id``, ``message_id``, ``delivery_id``, ``group_id``, ``file_id`` and
composite identity markers (``address``, ``sender``, ``recipient``, ``actor``, …) become
``<name>_h8`` = first 8 hex of SHA-256. ``org_id`` stays raw. Any other string field not on
the allow-list is hashed too (fail closed): a new call site can never leak an identifier by
choosing a new field name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Mapping
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


def h8(value: object) -> str:
    """The 8-hex SHA-256 prefix that stands for an identifier in logs."""
    return hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:8]


def redact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The logging processor: the only place identifiers are turned into ``*_h8`` fields."""
    out: dict[str, Any] = {}
    # TEST ONLY (semafore.sabotage "relay.logs_raw_ids"): the identifiers pass raw.
    raw = RAW_FIELDS | HASHED_FIELDS if sabotage.active("relay.logs_raw_ids") else RAW_FIELDS
    for key, value in fields.items():
        if key in raw or value is None or isinstance(value, bool | int | float):
            out[key] = value
        elif isinstance(value, list | tuple | set | frozenset):
            out[f"{key}_h8"] = [h8(v) for v in value]
        else:
            out[f"{key.removesuffix('_h8')}_h8"] = h8(value)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, then the redacted fields."""

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
        line.update(redact(fields))
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
        return json.dumps(line, separators=(",", ":"), sort_keys=False)


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Route the relay's and uvicorn's loggers through :class:`JsonFormatter` on ``stream``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in (LOGGER_NAME, "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # raw paths carry identifiers
    return handler


log = logging.getLogger(LOGGER_NAME)


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event (fields are redacted by the formatter, never here)."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={"fields": fields})


def now_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
