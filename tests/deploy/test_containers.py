"""The `containers` provider: one shared set of containers for the whole session (local
images built by scripts/build-images.sh unless SEMAFORE_CONTAINER_IMAGES=upstream)."""

from __future__ import annotations

import secrets
import urllib.request

import pytest
import redis

from semafore.deploy import dumps, health
from semafore.deploy.containers import ContainersProvider
from semafore.deploy.errors import InfraError
from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import prepare_container_engine, shared_provider, unavailable

pytestmark = [pytest.mark.backend, pytest.mark.containers]


@pytest.fixture(scope="module")
def boxes() -> ContainersProvider:
    try:
        prepare_container_engine()
    except InfraError as exc:
        unavailable(str(exc))
    provider = shared_provider(ProviderKind.CONTAINERS)
    assert isinstance(provider, ContainersProvider)
    return provider


def test_ports_are_published_on_loopback_only(boxes: ContainersProvider) -> None:
    for backend in boxes.backends.values():
        wrapped = backend.container.get_wrapped_container()
        wrapped.reload()
        bindings = wrapped.attrs["HostConfig"]["PortBindings"]
        assert bindings, backend.name
        for entries in bindings.values():
            assert {e["HostIp"] for e in entries} == {"127.0.0.1"}, backend.name


def test_backends_serve_and_dump_a_marker(boxes: ContainersProvider) -> None:
    e = boxes.endpoints
    assert e.redis_url and e.mongodb_url and e.seaweedfs_filer_url
    needle = b"CONTAINER-MARKER-" + secrets.token_hex(6).encode()
    client = redis.Redis.from_url(e.redis_url)
    client.set(b"c:marker", needle)
    client.close()
    request = urllib.request.Request(
        f"{e.seaweedfs_filer_url}/c/marker.bin", data=needle, method="PUT"
    )
    urllib.request.urlopen(request).close()
    import pymongo

    mongo: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(e.mongodb_url)
    mongo.c.marker.insert_one({"m": needle})
    mongo.close()
    assert dumps.find(dumps.dump_redis(e.redis_url), needle)
    assert dumps.find(dumps.dump_seaweedfs(e.seaweedfs_filer_url), needle) == [
        "seaweedfs:/c/marker.bin"
    ]
    assert dumps.find(dumps.dump_mongodb(e.mongodb_url), needle)


def test_container_faults_pause_kill_restart(boxes: ContainersProvider) -> None:
    url = boxes.endpoints.redis_url
    assert url
    backend = boxes.backend("redis")
    backend.pause()
    with pytest.raises(OSError):
        health.redis_url_ping(url, timeout=0.3)
    backend.resume()
    assert health.redis_url_ping(url)
    backend.kill()
    assert not backend.healthy()
    backend.start()  # same published port after a restart
    assert health.redis_url_ping(url)
    backend.restart()
    assert backend.healthy()
