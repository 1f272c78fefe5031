"""The `local` provider on real processes: redis-server, weed server, mongod/FerretDB.

Each test here owns its provider (faults must not disturb the shared one). In CI a backend
that cannot start fails these tests (semafore.deploy.testing)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
import redis

from semafore.deploy import health
from semafore.deploy.errors import FaultError
from semafore.deploy.processes import ProcessState
from semafore.deploy.providers import BACKENDS, LocalProvider
from semafore.deploy.settings import InfraSettings, ProviderKind
from semafore.deploy.testing import require

pytestmark = pytest.mark.backend


def _settings(tmp_path: Path) -> InfraSettings:
    base = InfraSettings.from_env({})
    return InfraSettings(**{**base.__dict__, "provider": ProviderKind.LOCAL, "work_dir": tmp_path})


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProvider]:
    provider = LocalProvider(_settings(tmp_path_factory.mktemp("local")))

    def start() -> LocalProvider:
        provider.start()
        return provider

    require(start)
    yield provider
    provider.stop()


def pids(provider: LocalProvider) -> list[int]:
    return [p.pid for p in provider.processes.values() if p.pid is not None]


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_all_three_backends_serve_requests(local: LocalProvider) -> None:
    e = local.endpoints
    assert e.redis_url and e.mongodb_url and e.seaweedfs_filer_url and e.seaweedfs_s3_url
    for url in (e.redis_url, e.mongodb_url, e.seaweedfs_filer_url, e.seaweedfs_s3_url):
        assert "127.0.0.1" in url
    assert e.mongodb_engine in ("mongod", "ferretdb")
    assert redis.Redis.from_url(e.redis_url).ping()
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(e.mongodb_url)
    client.t.c.insert_one({"k": 1})
    assert client.t.c.count_documents({}) == 1
    client.close()
    assert health.http_status(e.seaweedfs_filer_url + "/") == 200
    for name in BACKENDS:
        assert local.backend(name).healthy()


def test_redis_kill9_pause_and_restart(local: LocalProvider) -> None:
    proc = local.backend("redis")
    url = local.endpoints.redis_url
    assert url is not None
    proc.pause()
    with pytest.raises(OSError):
        health.redis_url_ping(url, timeout=0.3)
    proc.resume()
    assert health.redis_url_ping(url)
    proc.kill()
    with pytest.raises(OSError):
        health.redis_url_ping(url)
    proc.start()
    assert health.redis_url_ping(url)  # same URL after restart


def test_mongodb_restart_keeps_its_data(local: LocalProvider) -> None:
    url = local.endpoints.mongodb_url
    assert url is not None
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(url)
    client.keep.c.insert_one({"_id": "survivor"})
    client.close()
    local.backend("mongodb").restart()
    client = pymongo.MongoClient(url)
    assert client.keep.c.find_one({"_id": "survivor"}) is not None
    client.close()


def test_seaweedfs_stop_and_start(local: LocalProvider) -> None:
    proc = local.backend("seaweedfs")
    proc.stop()
    assert proc.state is ProcessState.STOPPED and not proc.healthy()
    proc.start()
    assert proc.healthy()


def test_durable_redis_keeps_acknowledged_writes_across_kill9(tmp_path: Path) -> None:
    provider = LocalProvider(_settings(tmp_path), redis_durable=True)
    with provider:
        url = provider.endpoints.redis_url
        assert url is not None
        client = redis.Redis.from_url(url)
        client.rpush("queue", *[f"env-{i}".encode() for i in range(100)])
        client.close()
        provider.backend("redis").kill()
        provider.backend("redis").start()
        client = redis.Redis.from_url(url)
        assert client.llen("queue") == 100
        client.close()


def test_teardown_leaves_nothing_running_even_on_interrupt(tmp_path: Path) -> None:
    provider = LocalProvider(_settings(tmp_path))
    started: list[int] = []
    root: Path | None = None
    with pytest.raises(KeyboardInterrupt), provider:
        started = pids(provider)
        root = provider.root
        raise KeyboardInterrupt
    assert len(started) == 3
    assert not [pid for pid in started if running(pid)]
    assert root is not None and not root.exists()
    with pytest.raises(FaultError):
        provider.backend("redis")


def test_a_failed_start_stops_what_did_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    broken = InfraSettings(**{**settings.__dict__, "mongodb_binary": "mongod"})
    provider = LocalProvider(broken)
    if provider._tool("redis-server", "") and __import__("shutil").which("mongod"):
        pytest.skip("mongod is installed; this test needs it missing")
    with pytest.raises(Exception, match="mongod"):
        provider.start()
    assert provider.processes == {}
    assert not list(tmp_path.iterdir()) or not any(tmp_path.glob("semafore-local-*/redis"))
