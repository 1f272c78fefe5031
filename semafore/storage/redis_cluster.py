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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from semafore.storage.redis_url import RedisUrlError, parse_hosts

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


def open_cluster(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio :class:`RedisCluster` for a ``redis+cluster://`` URL. ``options`` are the
    client's; those only a single-server client knows (``health_check_interval``…) are kept
    where RedisCluster accepts them. Typed as ``aioredis.Redis`` for the adapters, which only
    use commands both clients have (the cast is checked by the cluster conformance run)."""
    address = parse_cluster_url(url)
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
        # a dead node must fail a command within seconds, not hang it (docs/backends.md)
        socket_timeout=options.pop("socket_timeout", 2.0),
        socket_connect_timeout=options.pop("socket_connect_timeout", 2.0),
        **options,
    )
    return cast(aioredis.Redis, client)
