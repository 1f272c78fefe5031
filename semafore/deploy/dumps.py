"""Raw dumps of everything a backend holds, as bytes, for the plaintext-absence oracle
(issue 4, SPEC §8): the oracle scans the real stores, not an adapter's view of them.

Each dump yields :class:`Item` — where the bytes were found and the bytes — so a hit can be
reported precisely, one at a time (``iter_*``: memory is one item, never the store); a file
a backend keeps on disk (RDB/AOF, volume files) is a :class:`StoredFile`, read block by
block by whoever scans it (issue #12 item 3). :class:`Spool` keeps a dump until the oracle
runs in a temporary directory, not in memory. ``dump_*`` are the same dumps as lists, for
small stores and tests. Synchronous on purpose (a dump is a batch job run after a
scenario); from async code call them through ``asyncio.to_thread``.

- MongoDB: every document of every collection of every database, as raw BSON, plus the oplog
  (``local.oplog.rs``) where the server keeps one (replica sets; FerretDB has none).
- Redis: every key of every logical database via SCAN + DUMP, and the key's logical value
  (DUMP payloads are LZF-compressed above 20 bytes, which would hide a plaintext from a
  byte search), plus the RDB/AOF files in its data directory when it has persistence on.
  A ``redis+sentinel://`` URL (the cluster shape) is dumped on every copy: the primary the
  Sentinels name now and each live replica; a ``redis+cluster://`` URL on every primary
  (:func:`redis_copies`).
- SeaweedFS: every file the filer lists (recursively, paginated), read back through the
  filer — S3 buckets live under ``/buckets`` there, so they are covered too — plus, for a
  local process, the raw volume files on disk: every file under ``data_dir``, which in the
  cluster shape holds every volume server's directory, so each copy of a blob is read
  (semafore.deploy.seaweed_cluster).
- SQLite (a relay on ``--store sqlite:``, or any granted ``.db`` file): the raw file pages
  (freed pages keep old contents) and, through :func:`iter_sqlite_rows`, every row of every
  table as someone holding the file reads it with SQLite (its WAL applied): row boundaries
  are what the metadata inventory needs, since a page stores a record's fields back to back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pymongo
import redis
from bson.raw_bson import RawBSONDocument
from redis.sentinel import Sentinel

from semafore.storage.redis_cluster import is_cluster_url, node_urls
from semafore.storage.redis_sentinel import is_sentinel_url, parse_sentinel_url

if TYPE_CHECKING:
    from semafore.deploy.providers import Provider

log = logging.getLogger(__name__)

PAGE = 1000
READ_BYTES = 1 << 20  # one block of a stored file or a filer file read back
SPOOL_BYTES = 4 << 20  # a filer file larger than this is spooled to disk, not held
_MODE_DIR = 1 << 31  # Go's os.ModeDir, as the filer reports it in "Mode"


@dataclass(frozen=True)
class Item:
    """One stored thing: ``source`` says where (``mongodb:db.coll/_id``, ``redis:0:key``…)."""

    source: str
    data: bytes


@dataclass(frozen=True)
class StoredFile:
    """A file a backend keeps (or a spooled copy of one): ``source`` says where it was,
    ``path`` where to read it, block by block (:meth:`blocks`), never whole."""

    source: str
    path: Path

    def blocks(self, size: int = READ_BYTES) -> Iterator[bytes]:
        with self.path.open("rb") as fh:
            while block := fh.read(size):
                yield block


Dumped = Item | StoredFile


def whole(item: Dumped) -> Item:
    """An item with its bytes in memory (a stored file read whole: small stores only)."""
    return item if isinstance(item, Item) else Item(item.source, item.path.read_bytes())


def find(items: Iterable[Dumped], needle: bytes) -> list[str]:
    """Sources whose bytes contain ``needle`` (a stored file searched block by block)."""
    return [item.source for item in items if contains(item, needle)]


def contains(item: Dumped, needle: bytes) -> bool:
    if isinstance(item, Item):
        return needle in item.data
    carry = b""
    for block in item.blocks():
        joined = carry + block  # a needle split across two blocks is whole here
        if needle in joined:
            return True
        carry = joined[len(joined) - len(needle) + 1:] if len(needle) > 1 else b""
    return False


class Spool:
    """A dump kept until the oracle runs, on disk: items are appended to one temporary
    file (their sources and extents in memory), stored files copied beside it — read while
    the relay still runs (a database file is rewritten when it stops), scanned later — and
    iterating gives them back one at a time, in order. ``close`` removes the directory."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="semafore-spool-", dir=directory)
        self._records: IO[bytes] = open(Path(self._dir.name) / "records", "w+b")  # noqa: SIM115
        self._index: list[tuple[str, int, int] | StoredFile] = []
        self.bytes = 0

    def add(self, item: Dumped) -> Dumped:
        """Keep ``item``; returns what iterating will give back for it."""
        kept: Dumped
        if isinstance(item, Item):
            self._records.seek(0, 2)
            self._index.append((item.source, self._records.tell(), len(item.data)))
            self._records.write(item.data)
            kept = item
        else:
            copy = Path(self._dir.name) / f"file{len(self._index)}"
            with item.path.open("rb") as src, copy.open("wb") as dst:
                shutil.copyfileobj(src, dst, READ_BYTES)
            kept = StoredFile(item.source, copy)
            self._index.append(kept)
        self.bytes += _size(kept)
        return kept

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[Dumped]:
        for entry in self._index:
            if isinstance(entry, StoredFile):
                yield entry
                continue
            source, at, size = entry
            self._records.seek(at)
            yield Item(source, self._records.read(size))

    def close(self) -> None:
        self._records.close()
        self._dir.cleanup()


def _size(item: Dumped) -> int:
    return len(item.data) if isinstance(item, Item) else item.path.stat().st_size


# --- MongoDB ----------------------------------------------------------------------------------


def dump_mongodb(url: str, *, include_oplog: bool = True) -> list[Item]:
    return list(iter_mongodb(url, include_oplog=include_oplog))


def iter_mongodb(url: str, *, include_oplog: bool = True) -> Iterator[Item]:
    client: pymongo.MongoClient[RawBSONDocument] = pymongo.MongoClient(
        url, document_class=RawBSONDocument, serverSelectionTimeoutMS=10_000
    )
    try:
        for db_name in client.list_database_names():
            db = client[db_name]
            for coll_name in db.list_collection_names():
                if db_name == "local" and coll_name == "oplog.rs":
                    continue  # below, once, and only if asked
                for doc in db[coll_name].find({}):
                    doc_id = doc.get("_id", "?")
                    yield Item(f"mongodb:{db_name}.{coll_name}/{doc_id!r}", bytes(doc.raw))
        if include_oplog and "oplog.rs" in client["local"].list_collection_names():
            for entry in client["local"]["oplog.rs"].find({}):
                yield Item(f"mongodb:local.oplog.rs/{entry.get('ts')!r}", bytes(entry.raw))
    finally:
        client.close()


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
    return [whole(item) for item in iter_redis(url, data_dir=data_dir)]


@dataclass(frozen=True)
class RedisCopy:
    """One Redis server holding the data a URL names: ``url`` is its own ``redis://``
    address, ``label`` what its items' sources start with (``redis`` for the server a
    plain URL names and for a Sentinel service's primary, ``redis-replica@HOST:PORT`` for
    a replica, ``redis-node@HOST:PORT`` for a Redis Cluster node)."""

    label: str
    url: str


def redis_copies(url: str, *, timeout: float = 10.0) -> list[RedisCopy]:
    """Every server that holds a copy of the data ``url`` names, the primary first.

    A ``redis://``/``rediss://`` URL names one server. A ``redis+sentinel://`` URL (the
    cluster shape's, docs/backends.md "Cluster shape") names a service: the Sentinels are
    asked which server is its primary *now* (after a failover, the promoted replica) and
    which replicas they see alive, and each is a copy — a replica holds every byte the
    primary acknowledged, often longer (a key deleted on the primary lingers until the
    replica applies the delete), so an adversary holding a replica's disk is covered too.
    A ``redis+cluster://`` URL names a cluster whose every primary holds the keys of its
    slots (SCAN on one node sees only those): each primary the seed nodes list
    (:func:`semafore.storage.redis_cluster.node_urls`) is read; its replicas are not read
    live: the cluster shape keeps every node's directory (replicas' and killed nodes'
    included) under ``data_dir``, whose RDB/AOF files :func:`iter_redis` reads.
    ``redis.exceptions.ConnectionError`` (or ``MasterNotFoundError``) if the Sentinels or
    the seed nodes cannot be asked or know no primary."""
    if is_cluster_url(url):
        return [RedisCopy(f"redis-node@{urlsplit(node).netloc}", node)
                for node in node_urls(url, timeout)]
    if not is_sentinel_url(url):
        return [RedisCopy("redis", url)]
    address = parse_sentinel_url(url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        list(address.sentinels),
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout})
    try:
        host, port = sentinel.discover_master(address.service)  # type: ignore[no-untyped-call]
        replicas = sentinel.discover_slaves(address.service)  # type: ignore[no-untyped-call]
    finally:
        for client in sentinel.sentinels:
            client.close()
    copies = [RedisCopy("redis", f"redis://{host}:{port}/{address.db}")]
    copies += [RedisCopy(f"redis-replica@{r_host}:{r_port}", f"redis://{r_host}:{r_port}/"
                         f"{address.db}")
               for r_host, r_port in sorted(replicas)
               if (r_host, r_port) != (host, port) and _answers(r_host, r_port, timeout)]
    return copies


def _answers(host: str, port: int, timeout: float) -> bool:
    """Whether a server the Sentinels list as a replica is up: for about a second after a
    failover they still list the killed former primary (it is marked down only after
    ``down-after-milliseconds``), and a process that is gone holds no keys to read — what
    it left on disk is read through ``data_dir``."""
    client = redis.Redis(host=host, port=port, socket_timeout=timeout,
                         socket_connect_timeout=min(timeout, 2.0))
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    finally:
        client.close()


def iter_redis(url: str, *, data_dir: Path | None = None) -> Iterator[Dumped]:
    """Every key of every logical database of every copy (:func:`redis_copies`) — its name,
    DUMP payload and logical value — then the RDB/AOF files under ``data_dir`` and under
    each copy's own ``dir`` where that is a directory on this machine, each file once."""
    files: dict[Path, str] = {}
    if data_dir is not None:
        files.update((path, "redis") for path in _redis_files(data_dir))
    for copy in redis_copies(url):
        config_dir = yield from _iter_redis_server(copy)
        if config_dir is not None and Path(config_dir).is_dir():
            for path in _redis_files(Path(config_dir)):
                files.setdefault(path, copy.label)
    for path, label in sorted(files.items()):
        yield StoredFile(f"{label}-file:{path}", path)


def _redis_files(directory: Path) -> list[Path]:
    return [path.resolve() for path in sorted(directory.rglob("*"))
            if path.is_file() and (path.suffix in (".rdb", ".aof") or "appendonly" in path.name)]


def _iter_redis_server(copy: RedisCopy) -> Generator[Item, None, str | None]:
    """One server's keys as :class:`Item` (``LABEL:DB:KEY:key|dump|TYPE``); returns its
    ``dir`` (None where CONFIG is refused, as on a managed Redis)."""
    base = redis.Redis.from_url(copy.url, socket_timeout=10)
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
            urlsplit(copy.url)._replace(path=f"/{db}").geturl(), socket_timeout=10
        )
        try:
            for key in client.scan_iter(count=PAGE):
                assert isinstance(key, bytes)
                dumped = client.dump(key)
                if dumped is None:  # expired or deleted between SCAN and DUMP
                    continue
                kind = client.type(key)
                kind_s = kind.decode() if isinstance(kind, bytes) else str(kind)
                where = f"{copy.label}:{db}:{key!r}"
                yield Item(f"{where}:key", key)
                yield Item(f"{where}:dump", _b(dumped))
                yield Item(f"{where}:{kind_s}", _redis_value(client, key, kind_s))
        finally:
            client.close()
    return None if config_dir is None else str(config_dir)


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
    return [whole(item) for item in iter_seaweedfs(filer_url, data_dir=data_dir)]


def iter_seaweedfs(filer_url: str, *, data_dir: Path | None = None,
                   root: str = "/") -> Iterator[Dumped]:
    """Every filer file under ``root`` read back (one larger than :data:`SPOOL_BYTES`
    spooled to a temporary file as it is read, yielded as a :class:`StoredFile` that lasts
    until the next item is asked for), then the volume files under ``data_dir``.

    With ``data_dir``, a filer file that no live volume server holds any more (the filer
    answers 500: its servers were killed, a scenario's fault) is skipped, not an error: its
    bytes are in the volume files read from disk below, dead server or not — as an adversary
    with disk access reads them. Without ``data_dir`` nothing else would read it: it raises."""
    for path in seaweedfs_files(filer_url, root):
        try:
            yield from filer_file(filer_url, path)
        except urllib.error.HTTPError as exc:
            if data_dir is None or exc.code != 500:
                raise
            log.warning("seaweedfs dump: %s unreadable through the filer (no live volume "
                        "server holds it); its volume files are read from %s", path, data_dir)
    if data_dir is not None:
        for file in sorted(data_dir.rglob("*")):
            if file.is_file() and file.suffix in (".dat", ".idx", ".ecx", ".ldb", ".log", ".sst"):
                yield StoredFile(f"seaweedfs-file:{file}", file)


def filer_file(filer_url: str, path: str) -> Iterator[Dumped]:
    """One filer file as an :class:`Item`, or, above :data:`SPOOL_BYTES`, as a temporary
    :class:`StoredFile` removed when the caller asks for what comes next."""
    url = filer_url.rstrip("/") + urllib.parse.quote(path)
    source = f"seaweedfs:{path}"
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
        head = response.read(SPOOL_BYTES + 1)
        if len(head) <= SPOOL_BYTES:
            yield Item(source, head)
            return
        with tempfile.TemporaryDirectory(prefix="semafore-filer-") as spool:
            copy = Path(spool) / "file"
            with copy.open("wb") as out:
                out.write(head)
                shutil.copyfileobj(response, out, READ_BYTES)
            yield StoredFile(source, copy)


def dump_provider(provider: Provider) -> list[Item]:
    """Everything every backend of a started provider holds, as a list (small stores)."""
    return [whole(item) for item in iter_provider(provider)]


SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file (sqlite.org/fileformat.html §1.3)."""


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` is an SQLite database file (by its header, not its name)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def iter_sqlite_rows(path: Path) -> Iterator[Item]:
    """Every row of every table of the SQLite database ``path``, one :class:`Item` each
    (``<path>#<table>/<n>``, the row as a JSON object; BLOBs as hex), as someone holding the
    file reads it: a copy of the file and of its ``-wal`` beside it is opened, so committed
    transactions still in the WAL are included and the live file is never opened or locked.
    ``sqlite3.DatabaseError`` if the copy cannot be read as a database."""
    with tempfile.TemporaryDirectory(prefix="semafore-sqlite-") as tmp:
        copy = Path(tmp) / "db"
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(tmp) / "db-wal")
        con = sqlite3.connect(copy)
        try:
            tables = [row[0] for row in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            for table in tables:
                quoted = '"' + table.replace('"', '""') + '"'  # an identifier, quoted as SQL says
                cursor = con.execute(f"SELECT * FROM {quoted}")  # noqa: S608 (names from the file)
                columns = [d[0] for d in cursor.description]
                for n, row in enumerate(cursor):
                    record = {c: v.hex() if isinstance(v, bytes) else v
                              for c, v in zip(columns, row, strict=True)}
                    yield Item(f"{path}#{table}/{n}", json.dumps(record).encode())
        finally:
            con.close()


def iter_provider(provider: Provider) -> Iterator[Dumped]:
    """Everything every backend of a started provider holds, one item at a time.

    Includes the on-disk files (Redis RDB/AOF, SeaweedFS volumes) when the provider runs
    local processes. An ``embedded`` provider holds nothing outside the relay's process.
    """
    e = provider.endpoints
    if e.mongodb_url:
        yield from iter_mongodb(e.mongodb_url)
    if e.redis_url:
        yield from iter_redis(e.redis_url, data_dir=provider.data_dir("redis"))
    if e.seaweedfs_filer_url:
        yield from iter_seaweedfs(e.seaweedfs_filer_url,
                                  data_dir=provider.data_dir("seaweedfs"))
