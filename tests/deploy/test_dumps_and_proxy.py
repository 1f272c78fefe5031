"""Against the shared `local` backends: raw dumps find a marker wherever it was written, and
the fault proxy breaks and heals a real Redis client's link."""

from __future__ import annotations

import secrets
import urllib.request
from urllib.parse import urlsplit

import pymongo
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from semafore.deploy import dumps
from semafore.deploy.faultproxy import Direction, ThreadedFaultProxy
from semafore.deploy.providers import Provider
from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import shared_provider

pytestmark = pytest.mark.backend


@pytest.fixture
def local() -> Provider:
    return shared_provider(ProviderKind.LOCAL)


def marker() -> bytes:
    return b"PLAINTEXT-MARKER-" + secrets.token_hex(8).encode()


def test_mongodb_dump_holds_every_document_as_raw_bson(local: Provider) -> None:
    url = local.endpoints.mongodb_url
    assert url
    needle = marker()
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(url)
    docs: list[dict[str, object]] = [{"n": i} for i in range(5)]
    client.dumpdb.notes.insert_many([*docs, {"body": needle}])
    client.close()
    items = dumps.dump_mongodb(url)
    hits = dumps.find(items, needle)
    assert len(hits) == 1 and hits[0].startswith("mongodb:dumpdb.notes/")
    assert len([i for i in items if i.source.startswith("mongodb:dumpdb.notes/")]) == 6
    assert not dumps.find(items, marker())  # a marker never written is never found


def test_redis_dump_covers_every_type_and_database(local: Provider) -> None:
    url = local.endpoints.redis_url
    assert url
    needles = [marker() for _ in range(5)]
    client = redis.Redis.from_url(url)
    client.set(b"dump:str", needles[0] * 4)  # long and repetitive: compressible
    client.hset(b"dump:hash", b"f", needles[1])
    client.rpush(b"dump:list", needles[2])
    client.xadd(b"dump:stream", {b"f": needles[3]})
    other = redis.Redis.from_url(urlsplit(url)._replace(path="/3").geturl())
    other.sadd(b"dump:set", needles[4])
    items = dumps.dump_redis(url)
    for needle in needles:
        assert dumps.find(items, needle), needle
    assert any(s.startswith("redis:3:") for s in dumps.find(items, needles[4]))
    client.delete(b"dump:str", b"dump:hash", b"dump:list", b"dump:stream")
    other.delete(b"dump:set")
    client.close()
    other.close()
    assert not dumps.find(dumps.dump_redis(url), needles[1])


def test_seaweedfs_dump_walks_nested_directories_and_volume_files(local: Provider) -> None:
    filer = local.endpoints.seaweedfs_filer_url
    assert filer
    needle = marker()
    for i in range(3):
        request = urllib.request.Request(
            f"{filer}/dump/{i}/deep/blob-{i}.bin", data=needle + bytes([i]), method="PUT"
        )
        urllib.request.urlopen(request).close()
    items = dumps.dump_seaweedfs(filer, data_dir=local.data_dir("seaweedfs"))
    hits = dumps.find(items, needle)
    assert {h for h in hits if h.startswith("seaweedfs:/")} == {
        f"seaweedfs:/dump/{i}/deep/blob-{i}.bin" for i in range(3)
    }
    assert any(h.startswith("seaweedfs-file:") for h in hits)  # the raw volume on disk too


def test_redis_through_the_fault_proxy(local: Provider) -> None:
    url = local.endpoints.redis_url
    assert url
    parts = urlsplit(url)
    with ThreadedFaultProxy(parts.hostname or "", parts.port or 0) as proxy:
        client = redis.Redis(
            host="127.0.0.1", port=proxy.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        assert client.set("proxied", "1") and client.get("proxied") == b"1"
        proxy.half_open(Direction.DOWNSTREAM)
        with pytest.raises(redis.TimeoutError):
            client.get("proxied")
        proxy.heal()
        client.connection_pool.disconnect()
        assert client.get("proxied") == b"1"
        proxy.cut()
        client.connection_pool.disconnect()
        assert client.ping()  # a fresh connection after the cut
        proxy.refuse()
        client.connection_pool.disconnect()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        proxy.heal()
        proxy.set_latency(0.05)
        assert client.ping()
        client.close()
        assert proxy.stats.refused >= 1 and proxy.stats.cut >= 1


def test_external_provider_checks_and_never_stops_what_it_did_not_start(local: Provider) -> None:
    from semafore.deploy.errors import BackendUnavailableError
    from semafore.deploy.providers import ExternalProvider
    from semafore.deploy.settings import InfraSettings

    settings = InfraSettings.from_env(local.endpoints.as_env())
    with ExternalProvider(settings) as external:
        assert external.endpoints.redis_url == local.endpoints.redis_url
    assert local.backend("redis").healthy()  # still running: external stops nothing
    dead = InfraSettings.from_env(
        {**local.endpoints.as_env(), "SEMAFORE_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    with pytest.raises(BackendUnavailableError) as info:
        ExternalProvider(dead).start()
    assert info.value.backend == "redis"


def test_dump_provider_covers_all_three_backends_and_their_files(local: Provider) -> None:
    e = local.endpoints
    assert e.redis_url and e.mongodb_url and e.seaweedfs_filer_url
    needle = marker()
    client = redis.Redis.from_url(e.redis_url)
    client.set(b"all:marker", needle)
    client.close()
    mongo: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(e.mongodb_url)
    mongo.alldb.c.insert_one({"m": needle})
    mongo.close()
    request = urllib.request.Request(
        f"{e.seaweedfs_filer_url}/all/m.bin", data=needle, method="PUT"
    )
    urllib.request.urlopen(request).close()
    hits = dumps.find(dumps.dump_provider(local), needle)
    assert {h.split(":", 1)[0] for h in hits} >= {"redis", "mongodb", "seaweedfs", "seaweedfs-file"}
