"""Which relay a load run hits, and the rule that load never leaves this machine.

``embedded``  the reference relay with in-process stores, started here on 127.0.0.1;
``local``     the reference relay on real Redis / SeaweedFS / MongoDB-wire processes started by
              the ``local`` infrastructure provider (issue 4), also on 127.0.0.1;
``URL``       any relay already running — the reference one or a platform's own — but only on
              a loopback address (127.0.0.0/8, ::1, ``localhost``) or on a host this harness
              started itself. Anything else is refused before a single request is sent: load
              is a denial of service to whoever did not ask for it.

A harness-started relay runs in test mode with the run's organisation allow-listed for the
test OTP (ADR-0164) and with rate limits raised out of the way, so the run measures capacity
rather than the limiter; a URL target keeps whatever limits it has (429s are reported as
``rate_limited`` errors).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from semafore.server.oplog import LOGGER_NAME


class TargetRefused(ValueError):
    """The target is not loopback and was not started by this harness."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"refusing load target {target!r}: {detail}")
        self.field = "target"
        self.target = target


class TargetUnavailable(RuntimeError):
    """The target kind exists but cannot be started here (a backend or adapter is missing)."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"target {target!r} unavailable: {detail}")
        self.field = "target"
        self.target = target


def check_loopback(url: str, started_hosts: frozenset[str] = frozenset()) -> str:
    """Return ``url`` without a trailing slash if it may be loaded, else raise TargetRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(url, "the target must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise TargetRefused(url, "the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused(url, "credentials in the URL are not accepted")
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError as exc:
        raise TargetRefused(url, "the port is not a number in 0..65535") from exc
    if host in started_hosts:
        return url.rstrip("/")
    if host == "localhost":
        return url.rstrip("/")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise TargetRefused(
            url, "only loopback addresses (127.0.0.0/8, ::1, localhost) may be loaded"
        ) from None
    if not address.is_loopback:
        raise TargetRefused(url, f"{address} is not a loopback address")
    return url.rstrip("/")


class ServerCounters(logging.Handler):
    """Counts what the relay itself saw, from its structured log events (oplog): requests per
    route template and status, WebSocket opens, envelopes accepted and acknowledged. Only
    available for a relay running in this process."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.routes: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.envelopes_accepted = 0
        self.envelopes_acked = 0
        self.broadcasts = 0
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        name = record.getMessage()
        fields: dict[str, Any] = getattr(record, "fields", None) or {}
        with self._lock2:
            self.events[name] += 1
            if name == "http_request":
                route = f"{fields.get('method')} {fields.get('route')}"
                self.routes[route] += 1
                self.statuses[f"{route} {fields.get('status')}"] += 1
            elif name == "message_accepted":
                self.envelopes_accepted += int(fields.get("count", 0))
            elif name == "envelopes_acked":
                self.envelopes_acked += int(fields.get("count", 0))
            elif name == "audit_event" and fields.get("event_type") == "broadcast":
                self.broadcasts += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock2:
            return {
                "routes": dict(self.routes),
                "statuses": dict(self.statuses),
                "events": dict(self.events),
                "envelopes_accepted": self.envelopes_accepted,
                "envelopes_acked": self.envelopes_acked,
                "broadcasts": self.broadcasts,
            }


@dataclass
class Target:
    """A relay to load: its base URL and, when started here, its server-side counters."""

    kind: str
    url: str
    started_here: bool
    org_id: str
    counters: ServerCounters | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


@contextlib.contextmanager
def _count_server_events() -> Iterator[ServerCounters]:
    counters = ServerCounters()
    logger = logging.getLogger(LOGGER_NAME)
    previous = logger.level
    logger.addHandler(counters)
    # Per-envelope events (message_accepted, envelopes_acked) are DEBUG in the relay; counting
    # them costs one log record per send/ack, small beside the request itself.
    if logger.level == logging.NOTSET or logger.level > logging.DEBUG:
        logger.setLevel(logging.DEBUG)
    try:
        yield counters
    finally:
        logger.removeHandler(counters)
        logger.setLevel(previous)


def _settings(org_id: str) -> Any:
    from semafore.server.settings import Settings, unlimited_rate_limits

    return Settings(
        test_mode=True,
        test_orgs=frozenset({org_id}),
        rate_limits=unlimited_rate_limits(),  # the load is the test's own traffic
        max_connections=65536,  # clamped below the descriptor limit by the relay
        retention_interval=0,
        max_broadcast_recipients=1000,
    )


def _local_target(org_id: str) -> Iterator[Target]:
    """The local provider's real backends and one reference relay process on them (the
    replica entry point of issue 4, so the relay runs outside this process); no in-process
    counters, the report's server section is then empty."""
    import tempfile
    from pathlib import Path

    from semafore.infra.errors import BackendUnavailableError, InfraError
    from semafore.infra.providers import LocalProvider
    from semafore.infra.replicas import ReplicaSet
    from semafore.infra.settings import InfraSettings

    provider = LocalProvider(InfraSettings.from_env({"SEMAFORE_PROVIDER": "local"}))
    try:
        endpoints = provider.start()
    except BackendUnavailableError as exc:
        raise TargetUnavailable("local", str(exc)) from exc
    try:
        with tempfile.TemporaryDirectory(prefix="semafore-load-relay-") as work:
            try:
                replicas = ReplicaSet(
                    endpoints, 1, Path(work), namespace="load", test_orgs=(org_id,),
                    unlimited_rates=True,
                ).start()
            except InfraError as exc:
                raise TargetUnavailable("local", f"relay did not start: {exc}") from exc
            try:
                yield Target(
                    "local",
                    check_loopback(replicas.urls[0]),
                    True,
                    org_id,
                    None,
                    {"mongodb": endpoints.mongodb_engine, "redis": "redis-server",
                     "object_store": "seaweedfs filer", "relay": "separate process"},
                )
            finally:
                replicas.stop()
    finally:
        provider.stop()


@contextlib.contextmanager
def open_target(spec: str, org_id: str) -> Iterator[Target]:
    """Start (``embedded``, ``local``) or vet (URL) the relay to load; stop what was started."""
    from semafore.server.runner import serve_in_thread

    if spec == "embedded":
        from semafore.storage.memory import memory_stores

        with _count_server_events() as counters, serve_in_thread(
            _settings(org_id), memory_stores()
        ) as server:
            yield Target("embedded", server.url, True, org_id, counters, {"stores": "memory"})
        return
    if spec == "local":
        yield from _local_target(org_id)
        return
    url = check_loopback(spec)
    yield Target("url", url, False, org_id)
