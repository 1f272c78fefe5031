"""Raw dumps of everything a backend holds, as bytes, for the plaintext-absence oracle
(issue 4, SPEC §8): the oracle scans the real stores, not an adapter's view of them.

Each dump is a list of :class:`Item` — where the bytes were found and the bytes — so a hit
can be reported precisely. Synchronous on purpose (a dump is a batch job run after a
scenario); from async code call them through ``asyncio.to_thread``.

- MongoDB: every document of every collection of every database, as raw BSON, plus the oplog
  (``local.oplog.rs``) where the server keeps one (replica sets; FerretDB has none).
- Redis: every key of every logical database via SCAN + DUMP, and the key's logical value
  (DUMP payloads are LZF-compressed above 20 bytes, which would hide a plaintext from a
  byte search), plus the RDB/AOF files in its data directory when it has persistence on.
- SeaweedFS: every file the filer lists (recursively, paginated), read back through the
  filer — S3 buckets live under ``/buckets`` there, so they are covered too — plus, for a
  local process, the raw volume files on disk.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from semafore.deploy.providers import Provider

PAGE = 1000
_MODE_DIR = 1 << 31  # Go's os.ModeDir, as the filer reports it in "Mode"


@dataclass(frozen=True)
class Item:
    """One stored thing: ``source`` says where (``mongodb:db.coll/_id``, ``redis:0:key``…)."""

    source: str
    data: bytes


def find(items: Iterable[Item], needle: bytes) -> list[str]:
    """Sources whose bytes contain ``needle``."""
    return [item.source for item in items if needle in item.data]


# --- MongoDB ----------------------------------------------------------------------------------


def dump_mongodb(url: str, *, include_oplog: bool = True) -> list[Item]:
    import pymongo
    from bson.raw_bson import RawBSONDocument

    client: pymongo.MongoClient[RawBSONDocument] = pymongo.MongoClient(
        url, document_class=RawBSONDocument, serverSelectionTimeoutMS=10_000
    )
    items: list[Item] = []
    try:
        for db_name in client.list_database_names():
            db = client[db_name]
            for coll_name in db.list_collection_names():
                if db_name == "local" and coll_name == "oplog.rs":
                    continue  # below, once, and only if asked
                for doc in db[coll_name].find({}):
                    doc_id = doc.get("_id", "?")
                    items.append(Item(f"mongodb:{db_name}.{coll_name}/{doc_id!r}", bytes(doc.raw)))
        if include_oplog and "oplog.rs" in client["local"].list_collection_names():
            for entry in client["local"]["oplog.rs"].find({}):
                items.append(Item(f"mongodb:local.oplog.rs/{entry.get('ts')!r}", bytes(entry.raw)))
    finally:
        client.close()
    return items


# --- Redis ------------------------------------------------------------------------------------


def _b(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _redis_value(client: Any, key: bytes, kind: str) -> bytes:
    """The logical value of ``key`` as one byte string (all members, NUL-separated)."""
    parts: list[bytes] = []
    if kind == "string":
        parts.append(_b(client.get(key) or b""))
    elif kind == "hash":
        for field_, value in client.hgetall(key).items():
            parts += [_b(field_), _b(value)]
    elif kind == "list":
        parts += [_b(v) for v in client.lrange(key, 0, -1)]
    elif kind == "set":
        parts += sorted(_b(v) for v in client.smembers(key))
    elif kind == "zset":
        parts += [_b(member) for member, _ in client.zrange(key, 0, -1, withscores=True)]
    elif kind == "stream":
        for entry_id, fields in client.xrange(key):
            parts.append(_b(entry_id))
            for field_, value in fields.items():
                parts += [_b(field_), _b(value)]
    return b"\x00".join(parts)


def dump_redis(url: str, *, data_dir: Path | None = None) -> list[Item]:
    import redis

    items: list[Item] = []
    base = redis.Redis.from_url(url, socket_timeout=10)
    try:
        keyspace = base.info("keyspace")
        databases = sorted(int(name[2:]) for name in keyspace if name.startswith("db"))
        config_dir = None
        with contextlib.suppress(redis.ResponseError):  # CONFIG may be off on a managed Redis
            config_dir = base.config_get("dir").get("dir")
    finally:
        base.close()
    for db in databases:
        # the URL's own /N path would override a db= argument, so rewrite the path
        client = redis.Redis.from_url(
            urlsplit(url)._replace(path=f"/{db}").geturl(), socket_timeout=10
        )
        try:
            for key in client.scan_iter(count=PAGE):
                assert isinstance(key, bytes)
                dumped = client.dump(key)
                if dumped is None:  # expired or deleted between SCAN and DUMP
                    continue
                kind = client.type(key)
                kind_s = kind.decode() if isinstance(kind, bytes) else str(kind)
                items.append(Item(f"redis:{db}:{key!r}:key", key))
                items.append(Item(f"redis:{db}:{key!r}:dump", _b(dumped)))
                items.append(
                    Item(f"redis:{db}:{key!r}:{kind_s}", _redis_value(client, key, kind_s))
                )
        finally:
            client.close()
    directory = data_dir
    if directory is None and config_dir:
        local = Path(config_dir)
        directory = local if local.is_dir() else None
    if directory is not None:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and (path.suffix in (".rdb", ".aof") or "appendonly" in path.name):
                items.append(Item(f"redis-file:{path}", path.read_bytes()))
    return items


# --- SeaweedFS --------------------------------------------------------------------------------


def _filer_json(filer_url: str, path: str, last: str) -> dict[str, object]:
    query = urllib.parse.urlencode({"limit": PAGE, "lastFileName": last})
    url = f"{filer_url.rstrip('/')}{urllib.parse.quote(path)}?{query}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        body = json.loads(response.read() or b"{}")
    return body if isinstance(body, dict) else {}


def seaweedfs_files(filer_url: str, root: str = "/") -> list[str]:
    """Every file path under ``root``, depth first, following the filer's pagination."""
    files: list[str] = []
    stack = [root if root.endswith("/") else root + "/"]
    while stack:
        directory = stack.pop()
        last = ""
        while True:
            page = _filer_json(filer_url, directory, last)
            entries = page.get("Entries") or []
            assert isinstance(entries, list)
            for entry in entries:
                full = str(entry["FullPath"])
                if int(entry.get("Mode", 0)) & _MODE_DIR:
                    stack.append(full.rstrip("/") + "/")
                else:
                    files.append(full)
            if not page.get("ShouldDisplayLoadMore") or not entries:
                break
            last = str(page.get("LastFileName") or entries[-1]["FullPath"].rsplit("/", 1)[-1])
    return files


def dump_seaweedfs(filer_url: str, *, data_dir: Path | None = None) -> list[Item]:
    items: list[Item] = []
    for path in seaweedfs_files(filer_url):
        url = filer_url.rstrip("/") + urllib.parse.quote(path)
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
            items.append(Item(f"seaweedfs:{path}", response.read()))
    if data_dir is not None:
        for file in sorted(data_dir.rglob("*")):
            if file.is_file() and file.suffix in (".dat", ".idx", ".ecx", ".ldb", ".log", ".sst"):
                items.append(Item(f"seaweedfs-file:{file}", file.read_bytes()))
    return items


def dump_provider(provider: Provider) -> list[Item]:
    """Everything every backend of a started provider holds: the oracle's one call.

    Includes the on-disk files (Redis RDB/AOF, SeaweedFS volumes) when the provider runs
    local processes. An ``embedded`` provider holds nothing outside the relay's process.
    """
    e = provider.endpoints
    items: list[Item] = []
    if e.mongodb_url:
        items += dump_mongodb(e.mongodb_url)
    if e.redis_url:
        items += dump_redis(e.redis_url, data_dir=provider.data_dir("redis"))
    if e.seaweedfs_filer_url:
        items += dump_seaweedfs(e.seaweedfs_filer_url, data_dir=provider.data_dir("seaweedfs"))
    return items
