"""Which relay a load run hits, and the rule that load goes only where someone agreed to it.

``embedded``  the reference relay with in-process stores, started here on 127.0.0.1;
``local``     the reference relay on real Redis / SeaweedFS / MongoDB-wire processes started by
              the ``local`` infrastructure provider (issue 4), also on 127.0.0.1;
``URL``       any relay already running — the reference one or a platform's own. By default
              only on a loopback address (127.0.0.0/8, ::1, ``localhost``) or on a host this
              harness started itself; any other host needs explicit, recorded consent
              (:class:`Consent`: ``--allow-target HOST[:PORT]`` or an allow-list file, issue
              16 item 7), because load is a denial of service to whoever did not ask for it.
              Credentials in the URL, wildcard addresses (0.0.0.0, ::) and broadcast or
              multicast addresses are refused whatever the consent says. Every refusal happens
              before a single packet is sent.

A harness-started relay runs in test mode with the run's organisation allow-listed for the
test OTP (ADR-0164) and with rate limits raised out of the way, so the run measures capacity
rather than the limiter; a URL target keeps whatever limits it has (429s are reported as
``rate_limited`` errors).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import ipaddress
import logging
import os
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from semafore.deploy.errors import BackendUnavailableError, InfraError
from semafore.deploy.inprocess import serve_in_thread
from semafore.deploy.providers import LocalProvider
from semafore.deploy.replicas import ReplicaSet
from semafore.deploy.settings import InfraSettings, ProviderKind
from semafore.server.oplog import LOGGER_NAME
from semafore.server.settings import Settings, unlimited_rate_limits
from semafore.storage.memory import memory_stores

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"),
)
"""Networks a run may load without consent (the safe default)."""
LOOPBACK_NAMES = frozenset({"localhost"})
HOW_TO_CONSENT = (
    "to load it anyway, name it with --allow-target {entry} (repeatable) or list it in a file "
    "passed as --allow-targets FILE; the target and who allowed it are recorded in the report"
)


class TargetRefused(ValueError):
    """The target may not be loaded; ``field`` names the option at fault (``target``, or
    ``allow_target`` for a bad consent entry)."""

    def __init__(self, target: str, detail: str, field: str = "target") -> None:
        super().__init__(f"refusing load target {target!r}: {detail}")
        self.field = field
        self.target = target


class TargetUnavailable(RuntimeError):
    """The target kind exists but cannot be started here (a backend or adapter is missing)."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"target {target!r} unavailable: {detail}")
        self.field = "target"
        self.target = target


def _never_loadable(address: IPAddress) -> str | None:
    """Why ``address`` is refused even with consent: it is not one machine."""
    if address.is_unspecified:
        return f"{address} is a wildcard address (every interface), not a relay"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address(
        "255.255.255.255"
    ):
        return f"{address} is the broadcast address"
    if address.is_multicast:
        return f"{address} is a multicast (broadcast-like) address"
    return None


@dataclass(frozen=True)
class AllowedTarget:
    """One consented ``HOST[:PORT]`` (no port: any port of that host) and where it came from."""

    host: str
    port: int | None
    source: str

    @property
    def entry(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def matches(self, host: str, port: int) -> bool:
        return self.host == host and self.port in (None, port)


def _normal_host(host: str) -> str:
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host.lower().rstrip(".")


def parse_allow_entry(text: str, source: str) -> AllowedTarget:
    """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT``; wildcard, broadcast and URLs with a
    scheme or credentials are refused (field ``allow_target``)."""
    raw = text.strip()
    if not raw or "/" in raw or "@" in raw:
        raise TargetRefused(raw, f"{source}: expected HOST[:PORT], got {raw!r}", "allow_target")
    port: int | None = None
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise TargetRefused(raw, f"{source}: bad bracketed IPv6 entry", "allow_target")
        port_text = rest[1:] if rest else None
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    elif ":" in raw:
        host, port_text = raw, None  # a bare IPv6 address
    else:
        host, port_text = raw, None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise TargetRefused(raw, f"{source}: port must be 1..65535", "allow_target")
        port = int(port_text)
    if not host:
        raise TargetRefused(raw, f"{source}: no host", "allow_target")
    address: IPAddress | None = None
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host)
    if address is not None and (why := _never_loadable(address)):
        raise TargetRefused(raw, f"{source}: {why}", "allow_target")
    return AllowedTarget(_normal_host(host), port, source)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class Consent:
    """Who agreed to load which non-loopback hosts: the entries from ``--allow-target`` flags
    and ``--allow-targets`` files, the user who ran the command (``getpass``: $LOGNAME, $USER,
    … then the password database) and each file's SHA-256, so the report says who allowed a
    target and with what list."""

    entries: tuple[AllowedTarget, ...] = ()
    user: str = ""
    files: tuple[dict[str, str], ...] = ()

    @classmethod
    def from_options(
        cls, flags: Sequence[str] = (), files: Sequence[Path] = (), user: str | None = None
    ) -> Consent:
        entries = [parse_allow_entry(flag, "--allow-target") for flag in flags]
        audited = []
        for path in files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise TargetRefused(str(path), f"allow-list file unreadable: {exc}",
                                    "allow_targets") from exc
            audited.append({"path": str(path.resolve()),
                            "sha256": hashlib.sha256(data).hexdigest()})
            for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
                text = line.split("#", 1)[0].strip()
                if text:
                    entries.append(parse_allow_entry(text, f"--allow-targets {path}:{n}"))
        return cls(tuple(entries), user if user is not None else _current_user(),
                   tuple(audited))

    def find(self, host: str, port: int) -> AllowedTarget | None:
        return next((e for e in self.entries if e.matches(host, port)), None)


def _resolve(host: str) -> list[IPAddress]:
    """Every address a consented host name resolves to (a name query, not a packet to it)."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


@dataclass(frozen=True)
class VettedTarget:
    """A URL that may be loaded and the rule that allowed it (recorded in the report)."""

    url: str
    allowed_by: dict[str, Any]


@dataclass(frozen=True)
class TargetPolicy:
    """Where load may go: ``implicit`` networks and names without consent (loopback by
    default; tests narrow it to prove the consent path on a loopback alias), anything else
    only with a matching :class:`Consent` entry."""

    consent: Consent = field(default_factory=Consent)
    implicit: tuple[IPNetwork, ...] = LOOPBACK
    implicit_names: frozenset[str] = LOOPBACK_NAMES
    resolve: Callable[[str], list[IPAddress]] = _resolve

    def vet(self, url: str, started_hosts: frozenset[str] = frozenset()) -> VettedTarget:
        """Return the URL (no trailing slash) and why it is allowed, else raise
        :class:`TargetRefused` — before anything is sent to it."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise TargetRefused(url, "the target must be an http:// or https:// URL")
        host = parts.hostname
        if not host:
            raise TargetRefused(url, "the URL has no host")
        if parts.username or parts.password:
            raise TargetRefused(url, "credentials in the URL are not accepted")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise TargetRefused(url, "the port is not a number in 0..65535") from exc
        clean = url.rstrip("/")
        address: IPAddress | None = None
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(host)
        if address is not None and (why := _never_loadable(address)):
            raise TargetRefused(url, why)
        if host in started_hosts:
            return VettedTarget(clean, {"rule": "started by this harness"})
        if host in self.implicit_names or (
            address is not None and any(address in net for net in self.implicit)
        ):
            return VettedTarget(clean, {"rule": "loopback (default)"})
        name = _normal_host(host)
        allowed = self.consent.find(name, port)
        if allowed is None:
            what = f"{address} is not a loopback address" if address is not None else (
                f"{host} is not a loopback address or name")
            entry = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
            raise TargetRefused(url, f"{what}; " + HOW_TO_CONSENT.format(entry=entry))
        if address is None:
            try:
                resolved = self.resolve(host)
            except OSError as exc:
                raise TargetRefused(url, f"{host} does not resolve: {exc}") from exc
            for each in resolved:
                if why := _never_loadable(each):
                    raise TargetRefused(url, f"{host} resolves to {why}")
        return VettedTarget(clean, {
            "rule": "consent",
            "entry": allowed.entry,
            "via": allowed.source,
            "user": self.consent.user,
            "host": socket.gethostname(),
            "files": list(self.consent.files),
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        })


def check_loopback(url: str, started_hosts: frozenset[str] = frozenset()) -> str:
    """Return ``url`` without a trailing slash if the default rule (no consent) allows it."""
    return TargetPolicy().vet(url, started_hosts).url


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
    allowed_by: dict[str, Any] = field(default_factory=lambda: {"rule": "started here"})

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
    settings = InfraSettings.from_env({"SEMAFORE_PROVIDER": ProviderKind.LOCAL.value})
    with contextlib.ExitStack() as running:
        provider = LocalProvider(settings)
        try:
            endpoints = provider.start()
        except BackendUnavailableError as exc:
            raise TargetUnavailable(ProviderKind.LOCAL.value, str(exc)) from exc
        running.callback(provider.stop)
        work = running.enter_context(tempfile.TemporaryDirectory(prefix="semafore-load-relay-"))
        try:
            replicas = running.enter_context(ReplicaSet(
                endpoints, 1, Path(work), namespace="load", test_orgs=(org_id,),
                unlimited_rates=True))
        except InfraError as exc:
            raise TargetUnavailable(ProviderKind.LOCAL.value,
                                    f"relay did not start: {exc}") from exc
        yield Target(
            ProviderKind.LOCAL,
            check_loopback(replicas.urls[0]),
            True,
            org_id,
            None,
            {"mongodb": endpoints.mongodb_engine, "redis": "redis-server",
             "object_store": "seaweedfs filer", "relay": "separate process"},
        )


def vet_spec(spec: str, policy: TargetPolicy) -> VettedTarget | None:
    """Vet a URL target before anything else happens (None for the harness-started kinds)."""
    return None if spec in (ProviderKind.EMBEDDED, ProviderKind.LOCAL) else policy.vet(spec)


@contextlib.contextmanager
def open_target(
    spec: str, org_id: str, policy: TargetPolicy | None = None
) -> Iterator[Target]:
    """Start (``embedded``, ``local``) or vet (URL) the relay to load; stop what was started."""
    if spec == ProviderKind.EMBEDDED:
        with _count_server_events() as counters, serve_in_thread(
            _settings(org_id), memory_stores()
        ) as server:
            yield Target(ProviderKind.EMBEDDED, server.url, True, org_id, counters,
                         {"stores": "memory"})
        return
    if spec == ProviderKind.LOCAL:
        yield from _local_target(org_id)
        return
    vetted = policy.vet(spec) if policy is not None else TargetPolicy().vet(spec)
    yield Target("url", vetted.url, False, org_id, allowed_by=vetted.allowed_by)
