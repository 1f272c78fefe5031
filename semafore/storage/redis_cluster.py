"""A Redis Cluster named by one URL (issue #16 item 5, docs/backends.md "Cluster shape"):

    redis+cluster://HOST:PORT[,HOST:PORT...][/0]

``HOST:PORT`` are seed nodes: the client asks any of them for the slot map (``CLUSTER
SLOTS``) and then sends each command to the node owning its key's slot. Cluster has a single
database, so the path may only be empty or ``/0``.

Why a URL, like ``redis+sentinel://`` (:mod:`semafore.storage.redis_sentinel`): an endpoint
travels as one string (``SEMAFORE_REDIS_URL``, ``Endpoints.redis_url``, a relay replica's
environment), so the Cluster form rides the same paths unchanged.

On Cluster every key a script touches must be passed in ``KEYS`` and all of them must hash to
one slot (else the server answers ``CROSSSLOT``); the adapters in :mod:`semafore.storage.redis`
choose hash tags (``{...}``) from the domain so that what one script changes shares a slot.
:func:`slot_of` is the slot function (CRC16 of the tag, Redis Cluster specification "Keys
distribution model").

A cluster that cannot serve a call now (a node down mid-failover, the slot map being rebuilt)
is :class:`ClusterUnavailable`, a :class:`~semafore.storage.ports.StorageUnavailable`: the
relay answers 503 ``storage_unavailable`` with ``Retry-After`` instead of an unexpected 500
(seed §3.5, docs/backends.md "Cluster shape"). :func:`open_cluster`'s client translates at
its outer boundary only, after redis-py's own retries, so redis-py's handling is unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
import redis.asyncio as aioredis
import redis.asyncio.connection as redis_connection
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from semafore.storage.ports import StorageUnavailable
from semafore.storage.redis_url import RedisUrlError, parse_hosts

T = TypeVar("T")

SCHEME = "redis+cluster"

SLOTS = 16384
"""Hash slots of a Redis Cluster (fixed by the Cluster specification)."""


@dataclass(frozen=True)
class ClusterAddress:
    """The parts of a ``redis+cluster://`` URL: the seed nodes."""

    nodes: tuple[tuple[str, int], ...]

    @property
    def url(self) -> str:
        return f"{SCHEME}://" + ",".join(f"{host}:{port}" for host, port in self.nodes) + "/0"


def is_cluster_url(url: str) -> bool:
    return url.strip().lower().startswith(f"{SCHEME}://")


def parse_cluster_url(url: str) -> ClusterAddress:
    """Split a ``redis+cluster://`` URL; :class:`RedisUrlError` names the bad part
    (``scheme``, ``nodes``, ``db``)."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() != SCHEME:
        raise RedisUrlError(url, "scheme", f"must be {SCHEME}, got {scheme!r}")
    netloc, _, path = rest.partition("/")
    nodes = parse_hosts(url, netloc, "nodes")
    parts = [p for p in path.split("/") if p]
    if len(parts) > 1 or (parts and parts[0] != "0"):
        raise RedisUrlError(url, "db", f"a Redis Cluster has only database 0, got {path!r}")
    return ClusterAddress(nodes)


def slot_of(key: str | bytes) -> int:
    """The hash slot of ``key``: CRC16 of its hash tag (the text between the first ``{`` and
    the next ``}``, when non-empty) or of the whole key."""
    return int(key_slot(key.encode() if isinstance(key, str) else key))


def node_urls(url: str, timeout: float = 5.0) -> list[str]:
    """``redis://HOST:PORT/0`` of every primary of the cluster behind a ``redis+cluster://``
    URL, asked of the first seed node that answers (``CLUSTER NODES``): what a raw reader
    (the plaintext oracle's dump, ``semafore.deploy.dumps``) scans node by node, since SCAN on
    one node sees only that node's slots. :class:`redis.RedisError` if no seed answers."""
    last: Exception | None = None
    for host, port in parse_cluster_url(url).nodes:
        try:
            with redis.Redis(host=host, port=port, socket_timeout=timeout,
                             socket_connect_timeout=timeout) as client:
                raw = client.execute_command("CLUSTER", "NODES")
        except redis.RedisError as exc:
            last = exc
            continue
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        urls = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) > 2 and "master" in fields[2].split(",") and "fail" not in fields[2]:
                address = fields[1].split("@", 1)[0]  # HOST:PORT@BUS
                node_host, _, node_port = address.rpartition(":")
                urls.append(f"redis://{node_host or host}:{node_port}/0")
        return sorted(urls)
    raise redis.ConnectionError(f"no seed node of {url!r} answered: {last}")


UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,  # a node refused or dropped the connection (redis-py retried it)
    RedisTimeoutError,  # a node stopped answering within socket_timeout
    ClusterError,  # CLUSTERDOWN/MASTERDOWN, or "TTL exhausted" after MOVED/ASK/TRYAGAIN loops
    TryAgainError,  # TRYAGAIN (a slot mid-migration or mid-failover), raised by a pipeline
    SlotNotCoveredError,  # a slot without a live primary in the client's slot map
)
"""redis-py errors meaning "the cluster cannot serve this now; the same call may succeed
after the failover": translated to :class:`ClusterUnavailable`. Not in it: wrong
credentials (:data:`MISCONFIGURED`, also connection errors to redis-py), a server's answer to a bad
command (``ResponseError``), and every error raised by our own code."""

MISCONFIGURED: tuple[type[Exception], ...] = (AuthenticationError, AuthorizationError)
"""Connection errors that a retry cannot fix: they stay redis-py's own (an unexpected 500
that an operator sees), never a 503 the client would retry forever."""


class RedisUnavailable(StorageUnavailable, RedisConnectionError):
    """Redis (one server, or the primary behind Sentinel) could not serve ``operation`` now:
    refused or dropped connections, a primary that stopped answering, no primary known to the
    Sentinels (a failover under way). Answered 503 ``storage_unavailable`` like every
    :class:`StorageUnavailable`; still a redis-py ``ConnectionError``, as
    :class:`ClusterUnavailable` is. The message names the operation and the cause's type."""

    what = "Redis"

    def __init__(self, operation: str, cause: BaseException) -> None:
        self.operation = operation
        self.cause = type(cause).__name__
        super().__init__(f"{operation}: {self.what} unavailable ({self.cause})")


class ClusterUnavailable(RedisUnavailable):
    """The Redis Cluster could not serve ``operation`` (the command, ``PIPELINE``...) now:
    a node down or being failed over, the slot map being rebuilt. The relay answers it 503
    ``storage_unavailable`` with ``Retry-After``, which the client's retry policy honours
    (seed §3.5). Still a :class:`redis.exceptions.ConnectionError` (what it was before the
    translation), so a caller that already catches redis-py's errors, such as the failover
    measurement (:mod:`semafore.deploy.failover`), keeps catching it. The message names the
    operation and the cause's type only: redis-py's text may quote keys, which hold user ids.
    """

    what = "Redis Cluster"


def is_torn_down_send(exc: BaseException) -> bool:
    """True for the ``AttributeError`` redis-py 8.1's asyncio cluster client raises when a
    node's connection is torn down under a command using it: ``Connection.send_packed_command``
    checks ``is_connected`` (and may then await a health-check PING, or ``asyncio.wait_for``
    runs the write as a new task), and before ``_send_packed_command`` reaches
    ``self._writer.writelines(...)`` a concurrent ``disconnect()`` has set ``_writer`` to
    ``None`` ("'NoneType' object has no attribute 'writelines'"). The concurrent disconnect is
    ``ClusterNode.disconnect()`` of every connection of every node, in use or not, which
    ``RedisCluster`` runs (``aclose()``) when another command hits ``CLUSTERDOWN`` or an
    uncovered slot, and ``ClusterPipeline.execute`` before each retry: a failover's signature.
    Nothing was written on that connection. Recognised precisely - an attribute looked up on
    ``None`` by redis-py's connection module itself - so an ``AttributeError`` of our own code,
    or any other bug, still surfaces."""
    if not isinstance(exc, AttributeError) or exc.name is None or exc.obj is not None:
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename == redis_connection.__file__


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a call into the cluster client, means the cluster cannot
    serve the call now (:data:`UNAVAILABLE`, :func:`is_torn_down_send`, or redis-py's
    "Redis Cluster cannot be connected" raised from the last seed node's connection error
    when it rebuilds the slot map with every seed node down)."""
    if isinstance(exc, MISCONFIGURED):
        return False
    if isinstance(exc, UNAVAILABLE) or is_torn_down_send(exc):
        return True
    return (isinstance(exc, RedisClusterException) and exc.__cause__ is not None
            and is_unavailable(exc.__cause__))


async def translated(
    operation: str,
    call: Callable[[], Awaitable[T]],
    error: Callable[[str, BaseException], RedisUnavailable] = ClusterUnavailable,
) -> T:
    """``await call()``, a call into the cluster client, with an error meaning the cluster
    is unavailable re-raised as :class:`ClusterUnavailable` naming ``operation`` (``error``:
    :class:`RedisUnavailable` for the one-server and Sentinel clients,
    :func:`semafore.storage.redis_sentinel.open_redis`); every other error unchanged. The
    client has already spent its retry budget (``Retry``, the relay's ~17 s on Cluster,
    :class:`semafore.storage.redis.RedisNamespace`) on connection errors; a torn-down send is
    not retried here: the client's retry policy resends on the 503, and a send is idempotent
    under its send key."""
    try:
        return await call()
    except RedisUnavailable:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise error(operation, exc) from exc
        raise


class _Pipeline(ClusterPipeline):
    """A cluster pipeline whose calls into the cluster (the slot-map load on entry, the
    execution) raise :class:`ClusterUnavailable` when it is unavailable."""

    async def initialize(self) -> ClusterPipeline:
        return await translated("PIPELINE", super().initialize)

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        async def run() -> list[Any]:
            return await super(_Pipeline, self).execute(raise_on_error, allow_redirections)

        return await translated("PIPELINE", run)


class _Cluster(RedisCluster):
    """redis-py's asyncio cluster client, translating at its outer boundary only (a command,
    a pipeline), so its own retry and slot-map handling below it see redis-py's errors
    unchanged. (A command a cluster pipeline re-sends on its own after MOVED/ASK/TRYAGAIN goes
    through :meth:`execute_command` too; the pipeline retries that as the redis-py
    ``ConnectionError`` a :class:`ClusterUnavailable` still is.)"""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        operation = str(args[0]) if args else "command"
        return await translated(operation, lambda: super(_Cluster, self).execute_command(
            *args, **kwargs))

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:  # as RedisCluster.pipeline: a cluster pipeline has no shard hint
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        # redis-py's typing declares _event_dispatcher abstract on the pipeline's command
        # mixins; ClusterPipeline is instantiated the same way by RedisCluster.pipeline
        return _Pipeline(self, transaction)  # type: ignore[abstract]


def open_cluster(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio :class:`RedisCluster` for a ``redis+cluster://`` URL. ``options`` are the
    client's; those only a single-server client knows (``health_check_interval``…) are kept
    where RedisCluster accepts them. Typed as ``aioredis.Redis`` for the adapters, which only
    use commands both clients have (the cast is checked by the cluster conformance run). A
    command or pipeline the cluster cannot serve now raises :class:`ClusterUnavailable`."""
    address = parse_cluster_url(url)
    client = _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
        # a dead node must fail a command within seconds, not hang it (docs/backends.md)
        socket_timeout=options.pop("socket_timeout", 2.0),
        socket_connect_timeout=options.pop("socket_connect_timeout", 2.0),
        **options,
    )
    return cast(aioredis.Redis, client)
