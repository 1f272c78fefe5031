"""A Redis service watched by Sentinel, named by one URL (issue #16 item 5, docs/backends.md
"Cluster shape"):

    redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]

``HOST:PORT`` are the Sentinels (not the Redis servers), ``SERVICE`` the name they monitor
(``sentinel monitor SERVICE ...``), ``DB`` the database number (default 0). A client opened
from it asks the Sentinels which server is the primary for every new connection, so after a
failover the relay follows the promoted replica instead of retrying the dead primary's port
forever: the reason a relay on a replicated Redis must be given this form and not the
primary's ``redis://`` URL.

Why a URL and not separate settings: an endpoint travels as one string everywhere
(``SEMAFORE_REDIS_URL``, ``Endpoints.redis_url``, a relay replica's environment), so the
Sentinel form rides the same paths unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection

from semafore.storage.redis_cluster import (
    RedisUnavailable,
    is_cluster_url,
    open_cluster,
    translated,
)
from semafore.storage.redis_url import RedisUrlError, parse_hosts

__all__ = [  # RedisUrlError: defined in redis_url, long imported from here
    "SCHEME",
    "PrimaryFollowingConnection",
    "RedisUrlError",
    "SentinelAddress",
    "is_sentinel_url",
    "open_redis",
    "parse_sentinel_url",
]

SCHEME = "redis+sentinel"

_SERVICE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class SentinelAddress:
    """The parts of a ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0

    @property
    def url(self) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"{SCHEME}://{hosts}/{self.service}/{self.db}"


def is_sentinel_url(url: str) -> bool:
    return url.strip().lower().startswith(f"{SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Split a ``redis+sentinel://`` URL; :class:`RedisUrlError` names the bad part."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() != SCHEME:
        raise RedisUrlError(url, "scheme", f"must be {SCHEME}, got {scheme!r}")
    netloc, _, path = rest.partition("/")
    sentinels = parse_hosts(url, netloc, "sentinels")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise RedisUrlError(url, "service", "missing (the name the Sentinels monitor)")
    if not _SERVICE.match(parts[0]):
        raise RedisUrlError(url, "service", f"{parts[0]!r} is not 1-64 of A-Z a-z 0-9 . _ -")
    if len(parts) > 2:
        raise RedisUrlError(url, "db", f"unexpected path after the database: {path!r}")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise RedisUrlError(url, "db", f"{parts[1]!r} is not a database number")
        db = int(parts[1])
    return SentinelAddress(sentinels, parts[0], db)


class PrimaryFollowingConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that asks the Sentinels for the primary on *every*
    reconnect. redis-py 8.1 resolves the primary only in ``connect()``; a command retried
    after a connection error reconnects through ``connect_check_health()`` to the address it
    had, so after a failover every retry hits the dead primary until the retry budget is
    spent (measured: the unavailability window grew from the ~2 s failover to ~7.5 s, the
    backoff's sum; docs/backends.md "Cluster shape")."""

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if not self.is_connected and self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


class _ServerPipeline(Pipeline):
    """A pipeline of :class:`_Server` whose execution raises :class:`RedisUnavailable` when
    the server cannot serve it (the auto-pipeline's path, ``storage/redis_pipeline.py``)."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        async def run() -> list[Any]:
            return await super(_ServerPipeline, self).execute(raise_on_error)

        return await translated("PIPELINE", run, RedisUnavailable)


class _Server(aioredis.Redis):
    """redis-py's asyncio client (one server, or the primary behind Sentinel), translating at
    its outer boundary, after its own retries: an error meaning the server cannot serve the
    call now becomes :class:`RedisUnavailable`, a 503 ``storage_unavailable`` at the relay,
    never an unexpected 500 (wrong credentials stay redis-py's own: ``MISCONFIGURED``)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        operation = str(args[0]) if args else "command"
        return await translated(
            operation,
            lambda: super(_Server, self).execute_command(*args, **options),  # type: ignore[no-untyped-call]
            RedisUnavailable,
        )

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _ServerPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


def open_redis(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client for ``url``: ``redis://``/``rediss://`` as redis-py reads them, a
    ``redis+sentinel://`` service through its Sentinels (the client resolves the current
    primary on each new connection) or a ``redis+cluster://`` Redis Cluster
    (:mod:`semafore.storage.redis_cluster`). ``options`` are the client's (retry, timeouts...).
    A command or pipeline the server cannot serve now raises :class:`RedisUnavailable`
    (:class:`ClusterUnavailable` on a cluster), after the client's own retries."""
    if is_cluster_url(url):
        return open_cluster(url, **options)
    if not is_sentinel_url(url):
        return _Server.from_url(url, **options)
    address = parse_sentinel_url(url)
    timeout = options.get("socket_timeout") or 1.0
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        list(address.sentinels),
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
    client: aioredis.Redis = sentinel.master_for(
        address.service,
        redis_class=_Server,
        db=address.db,
        connection_class=PrimaryFollowingConnection,
        **options,
    )
    return client
