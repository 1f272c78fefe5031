"""Conformance factory of the real-backend adapters with Redis as a 3-node Redis Cluster
(``redis+cluster://``; semafore.deploy.redis_cluster): MongoDB and SeaweedFS from the shared
`local` provider, Redis from one cluster shared by the session. Each test gets its own
namespace, wiped afterwards. A missing ``redis-server`` fails in CI, never skips."""

from __future__ import annotations

import atexit
import dataclasses
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from semafore.deploy.errors import InfraError
from semafore.deploy.providers import Endpoints
from semafore.deploy.redis_cluster import RedisClusterGroup
from semafore.deploy.settings import ProviderKind
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import redis_server_binary, shared_provider, unavailable
from semafore.storage.ports import Stores

_lock = threading.Lock()
_running: list[RedisClusterGroup] = []


def shared_cluster() -> RedisClusterGroup:
    """One started 3-node cluster for this test process (stopped at exit)."""
    with _lock:
        if not _running:
            root = Path(tempfile.mkdtemp(prefix="rcluster-"))
            group = RedisClusterGroup(redis_server_binary(), root)
            try:
                group.start()
            except InfraError as exc:
                unavailable(str(exc))
            atexit.register(group.close)
            _running.append(group)
        return _running[0]


def cluster_endpoints() -> Endpoints:
    """The shared local provider's endpoints with Redis replaced by the shared cluster."""
    local = shared_provider(ProviderKind.LOCAL).endpoints
    return dataclasses.replace(local, redis_url=shared_cluster().address.url)


@asynccontextmanager
async def local_redis_cluster(tmp_path: Path) -> AsyncIterator[Stores]:
    stores, handles = await backend_stores(cluster_endpoints(), f"t{uuid.uuid4().hex[:16]}")
    try:
        yield stores
    finally:
        await handles.drop()
        await handles.close()


FACTORIES = {"local-redis-cluster": local_redis_cluster}
MARKS = [pytest.mark.backend]
