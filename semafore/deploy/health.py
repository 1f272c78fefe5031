"""Health probes that speak each backend's own protocol, so "healthy" means "serves requests",
not merely "the port is open" (a SIGSTOPped process still accepts TCP connections)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pymongo
import redis

from semafore.storage.redis_cluster import is_cluster_url, parse_cluster_url
from semafore.storage.redis_sentinel import is_sentinel_url, parse_sentinel_url

PROBE_TIMEOUT = 1.0


def redis_ping(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """RESP ``PING`` → ``+PONG``. A loading Redis answers ``-LOADING``, which is not healthy."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def local_redis(port: int, timeout: float = PROBE_TIMEOUT) -> redis.Redis:
    """A client of the ``redis-server`` (node, replica or Sentinel) this machine runs on
    127.0.0.1:``port``, with bounded timeouts: the cluster shape's control connections."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout,
                       socket_connect_timeout=timeout)


def redis_url_ping(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """``PING`` the server ``url`` names; for ``redis+sentinel://``, the primary a Sentinel
    names (redis_sentinel: the first Sentinel that answers); for ``redis+cluster://``, the
    first seed node that answers must report ``cluster_state:ok`` (a cluster missing slots
    refuses every command)."""
    if is_cluster_url(url):
        for host, port in parse_cluster_url(url).nodes:
            try:
                with redis.Redis(host=host, port=port, socket_timeout=timeout,
                                 socket_connect_timeout=timeout) as node:
                    info = _text(node.execute_command("CLUSTER", "INFO"))
            except (redis.RedisError, OSError):
                continue
            return "cluster_state:ok" in info
        return False
    if is_sentinel_url(url):
        address = parse_sentinel_url(url)
        for host, port in address.sentinels:
            try:
                with redis.Redis(host=host, port=port, socket_timeout=timeout,
                                 socket_connect_timeout=timeout) as sentinel:
                    answer = sentinel.execute_command(
                        "SENTINEL", "get-master-addr-by-name", address.service
                    )
            except (redis.RedisError, OSError):
                continue
            if answer:
                return redis_ping(_text(answer[0]), int(answer[1]), timeout)
        return False
    parts = urlsplit(url)
    return redis_ping(parts.hostname or "127.0.0.1", parts.port or 6379, timeout)


def mongodb_ping(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """``ping`` through pymongo, over the MongoDB wire protocol (mongod or FerretDB): the one
    server a single-host URL names, directly; for a URL naming several hosts (a replica set,
    the cluster shape's), whichever member pymongo selects — a direct connection to several
    hosts is a pymongo ``ConfigurationError``."""
    ms = int(timeout * 1000)
    several = "," in urlsplit(url).netloc.rsplit("@", 1)[-1]
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        url,
        serverSelectionTimeoutMS=ms,
        connectTimeoutMS=ms,
        socketTimeoutMS=ms,
        directConnection=not several,
    )
    try:
        return client.admin.command("ping").get("ok") == 1.0
    finally:
        client.close()


def postgres_ready(port: int, user: str = "postgres", timeout: float = PROBE_TIMEOUT) -> bool:
    """A PostgreSQL v3 startup handshake on 127.0.0.1: ready when the server answers with an
    authentication message (``R``); a server still starting or recovering answers an error
    (``E``: "the database system is starting up"), which is not ready."""
    params = b"user\x00" + user.encode() + b"\x00database\x00postgres\x00\x00"
    body = (196608).to_bytes(4, "big") + params  # protocol 3.0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall((len(body) + 4).to_bytes(4, "big") + body)
            kind = sock.recv(1)
            if kind == b"R":
                sock.sendall(b"X\x00\x00\x00\x04")  # Terminate
                return True
            return False
    except OSError:
        return False


def http_status(url: str, timeout: float = PROBE_TIMEOUT) -> int:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def seaweedfs_ready(master_url: str, filer_url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """The filer lists its root and the master can assign a file id (a volume is writable).

    Both are needed: the filer answers before the volume server has registered, and a write
    in that window fails with "no writable volumes".
    """
    if http_status(filer_url.rstrip("/") + "/", timeout) != 200:
        return False
    request = urllib.request.Request(master_url.rstrip("/") + "/dir/assign")  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body = json.loads(response.read())
    return isinstance(body, dict) and bool(body.get("fid"))


def s3_ready(s3_url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """The S3 gateway answers HTTP (any status: anonymous ListBuckets may be refused)."""
    return http_status(s3_url.rstrip("/") + "/", timeout) > 0


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
