"""The relay's storage ports on real backends: MongoDB for accounts, tokens, keys, attachment
metadata and audit; Redis for delivery queues and rate limits; SeaweedFS for attachment blobs
(seed §3.2–3.3, issue 4). ``namespace`` isolates one deployment (or one test) from another
sharing the same servers: a MongoDB database, a Redis key prefix and a filer directory."""

from __future__ import annotations

import re
from dataclasses import dataclass

from semafore.deploy.errors import SettingsError
from semafore.deploy.providers import Endpoints
from semafore.deploy.redis_push import RedisPushHub
from semafore.storage.mongodb import (
    MongoAccountStore,
    MongoAttachmentStore,
    MongoAuditStore,
    MongoDatabase,
    MongoKeyStore,
    MongoTokenStore,
)
from semafore.storage.ports import Stores
from semafore.storage.redis import (
    RedisNamespace,
    RedisPresence,
    RedisPush,
    RedisQueueStore,
    RedisRateLimitStore,
)
from semafore.storage.seaweedfs import SeaweedfsBlobStore

_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


@dataclass
class BackendHandles:
    """The three clients behind a Stores bundle, for wiping a namespace and for push."""

    mongo: MongoDatabase
    redis: RedisNamespace
    blobs: SeaweedfsBlobStore
    push: RedisPush
    presence: RedisPresence

    def push_hub(self, replica: str, *, presence_ttl: float = 30.0) -> RedisPushHub:
        """The cross-replica push hub for a relay named ``replica`` on this namespace: pass it
        to ``create_app(..., push=...)`` whenever several relays share these backends."""
        return RedisPushHub(self.push, self.presence, replica, presence_ttl=presence_ttl)

    async def drop(self) -> None:
        """Delete everything this namespace holds (test teardown; never the relay's job)."""
        await self.mongo.drop()
        await self.redis.drop()
        await self.blobs.drop()

    async def close(self) -> None:
        await self.mongo.close()
        await self.redis.close()
        await self.blobs.close()


async def backend_stores(
    endpoints: Endpoints, namespace: str = "semafore"
) -> tuple[Stores, BackendHandles]:
    """Open the ports on ``endpoints`` (indexes are created here, at start-up). With
    ``endpoints.redis_wait`` a send is acknowledged only once that many Redis replicas have
    it (on a Redis Cluster, the replicas of each slot the send wrote); otherwise the relay
    answers 503 and the client retries (docs/backends.md)."""
    if not _NAMESPACE.match(namespace):
        raise SettingsError("namespace", "1-48 characters of A-Z a-z 0-9 _ -")
    if not (endpoints.mongodb_url and endpoints.redis_url and endpoints.seaweedfs_filer_url):
        raise SettingsError("endpoints", f"{endpoints.provider.value} provider has no backend URLs")
    mongo = await MongoDatabase(endpoints.mongodb_url, namespace).open()
    ns = RedisNamespace(endpoints.redis_url, namespace)
    blobs = SeaweedfsBlobStore(endpoints.seaweedfs_filer_url, f"/semafore/{namespace}")
    queues = RedisQueueStore(ns, wait=endpoints.redis_wait)
    handles = BackendHandles(mongo, ns, blobs, RedisPush(ns), RedisPresence(ns))
    stores = Stores(
        accounts=MongoAccountStore(mongo),
        tokens=MongoTokenStore(mongo),
        keys=MongoKeyStore(mongo),
        queues=queues,
        attachments=MongoAttachmentStore(mongo),
        blobs=blobs,
        audit=MongoAuditStore(mongo),
        ratelimits=RedisRateLimitStore(ns),
        closers=[mongo, ns],
    )
    return stores, handles
