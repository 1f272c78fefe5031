"""The data tier under a relay the harness runs in this process, and what the oracle reads
back from it (seed §3.3-§3.5, issue 4).

``embedded`` keeps the stores in memory; ``local`` and ``containers`` start real MongoDB, Redis
and SeaweedFS through :func:`~semafore.deploy.selection.provider_from_settings`; ``external``
uses the backends the environment names. :meth:`DataTier.spool` dumps every byte the tier
holds to disk, per oracle tier, one item in memory at a time (:meth:`DataTier.dump`: the same
as chunks in memory, for small tiers), so the plaintext oracle scans the same bytes an
operator with disk access would see. The interop gate's live run (``semafore.gate.live``) and
the simulator's executor both stand their relay on a ``DataTier``; the simulator adds its
scenario faults on top through :meth:`DataTier.backend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from semafore.deploy import dumps
from semafore.deploy.errors import SettingsError
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.settings import InfraSettings, ProviderKind, RedisTopology, Shape
from semafore.deploy.stores import backend_stores
from semafore.oracle import TIER_MONGODB, TIER_OBJECT_STORE, TIER_REDIS, Chunk
from semafore.storage.memory import memory_stores
from semafore.storage.ports import Stores
from semafore.storage.redis import ReplicaWait

TIER_STORE = "store"
"""The oracle tier of the embedded stores' records (their blobs count as the object store)."""


class DataTier:
    """Where the relay keeps its data: in-process stores (``embedded``) or real MongoDB,
    Redis and SeaweedFS from a provider (``local``, ``containers``, ``external``).

    ``namespace`` keeps the databases, key prefixes and buckets of one run apart from every
    other run's on shared backends.
    """

    def __init__(self, provider: str, namespace: str, *, shape: Shape | None = None,
                 redis_topology: RedisTopology | None = None,
                 redis_wait: ReplicaWait | None = None) -> None:
        self.name = provider
        self.shape = shape
        """The backends' shape a run requires (a scenario's ``requires.shape``); None: as
        ``SEMAFORE_SHAPE`` says. A shape the provider cannot run is a ``SettingsError``
        naming ``SEMAFORE_SHAPE`` at :meth:`start`, never a single-node run."""
        self.redis_topology = redis_topology
        """The cluster shape's Redis a run requires (``requires.redis``); None: as
        ``SEMAFORE_REDIS_TOPOLOGY`` says."""
        self.redis_wait = redis_wait
        """How many Redis replicas must hold a send before the relay acknowledges it, as a run
        requires it (``requires.redis_wait``); None: as ``SEMAFORE_REDIS_WAIT`` says."""
        """The provider name as given (a :class:`ProviderKind` value; checked in :meth:`start`)."""
        self.namespace = namespace
        self.provider: Any = None
        self.handles: Any = None
        self.stores: Stores | None = None

    async def start(self) -> Stores:
        """Start the backends (nothing for ``embedded``) and open the stores on them."""
        try:
            kind = ProviderKind(self.name)
        except ValueError:
            known = ", ".join(k.value for k in ProviderKind)
            raise SettingsError("provider", f"unknown provider {self.name!r} (known: {known})"
                                ) from None
        if self.shape is not None:  # a required shape is checked before anything starts
            InfraSettings(provider=kind, shape=self.shape).check_shape()
        if kind is ProviderKind.EMBEDDED:
            # the in-memory tier: no backend processes, nothing to fault
            self.stores = memory_stores()
            return self.stores
        settings = dataclasses.replace(InfraSettings.from_env(), provider=kind)
        if self.shape is not None:
            settings = dataclasses.replace(settings, shape=self.shape)
        if self.redis_topology is not None:
            settings = dataclasses.replace(settings, redis_topology=self.redis_topology)
        if self.redis_wait is not None:
            settings = dataclasses.replace(settings, redis_wait=self.redis_wait)
        # delivery queues live in Redis: run it as production would (AOF, fsync always), so a
        # Redis restart loses nothing it acknowledged (seed §3.3, §3.5)
        options = {"redis_durable": True} if kind.owns_backend_processes else {}
        self.provider = provider_from_settings(settings, **options)
        endpoints = await asyncio.to_thread(self.provider.start)
        self.stores, self.handles = await backend_stores(endpoints, self.namespace)
        return self.stores

    def backend(self, name: str) -> Any:
        """The provider's handle on one backend (``mongodb``, ``redis``, ``seaweedfs``), whose
        ``stop``/``start``/``kill``/``pause``/``resume``/``restart`` inject faults; None for the
        embedded tier, which has no backend processes."""
        return None if self.provider is None else self.provider.backend(name)

    async def dump(self) -> list[Chunk]:
        """Every byte the data tier holds, as the oracle's chunks in memory (stored files read
        whole): for small tiers and tests; a view examined later takes :meth:`spool`."""
        chunks: list[Chunk] = []
        for tier, spool in await self.spool():
            try:
                chunks.extend(Chunk(tier, str(item.source), dumps.whole(item).data)
                              for item in spool)
            finally:
                spool.close()
        return chunks

    async def spool(self) -> list[tuple[str, dumps.Spool]]:
        """Every byte the data tier holds, dumped now to disk: one :class:`~semafore.deploy.
        dumps.Spool` per run of one oracle tier (MongoDB, then Redis — every copy a Sentinel
        URL leads to — then SeaweedFS), filled from the ``iter_*`` dumps one item at a time,
        stored files (RDB/AOF, volume files) copied as they are now. The bytes are in memory
        one item at a time, never the tier (issue #12 item 3): a view taken now is examined at
        the end of a run (``Scanner.add_dump`` reads a stored file block by block). The
        caller closes the spools."""
        spools: list[tuple[str, dumps.Spool]] = []
        try:
            if self.provider is None:
                assert self.stores is not None, "spool() before start()"
                for name, data in await self.stores.dump():
                    tier = TIER_OBJECT_STORE if "blob" in name else TIER_STORE
                    if not spools or spools[-1][0] != tier:
                        spools.append((tier, dumps.Spool()))
                    spools[-1][1].add(dumps.Item(name, data))
                return spools
            ep = self.provider.endpoints
            for tier, items in (
                (TIER_MONGODB, lambda: dumps.iter_mongodb(ep.mongodb_url)),
                (TIER_REDIS, lambda: dumps.iter_redis(
                    ep.redis_url, data_dir=self.provider.data_dir("redis"))),
                (TIER_OBJECT_STORE, lambda: dumps.iter_seaweedfs(
                    ep.seaweedfs_filer_url, data_dir=self.provider.data_dir("seaweedfs"))),
            ):
                spool = dumps.Spool()
                spools.append((tier, spool))
                await asyncio.to_thread(_fill, spool, items)
        except BaseException:
            for _, spool in spools:
                spool.close()
            raise
        return spools

    async def close(self) -> None:
        """Drop this run's namespace and stop what :meth:`start` started (best effort: a
        backend that already died must not hide the run's own result)."""
        if self.handles is not None:
            with contextlib.suppress(Exception):
                await self.handles.drop()
            with contextlib.suppress(Exception):
                await self.handles.close()
        if self.provider is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.provider.stop)


def _fill(spool: dumps.Spool, items: Callable[[], Iterable[dumps.Dumped]]) -> None:
    """Run a dump (in a worker thread: its clients block) into ``spool``, item by item."""
    for item in items():
        spool.add(item)
