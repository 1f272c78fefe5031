"""SeaweedFS in the ``cluster`` shape (issue #16 item 5, docs/backends.md "Cluster shape"): a
master, three volume servers keeping every blob twice (``-defaultReplication=001``) and a
filer, on real ``weed`` processes — never mocks.

Backend tests own their clusters where they fault them. A missing ``weed`` or a cluster that
does not form skips them locally and FAILS them in CI (``CI=true``; semafore.deploy.testing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from semafore.deploy import dumps
from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.errors import FaultError, InfraError
from semafore.deploy.processes import find_tool
from semafore.deploy.seaweed_cluster import (
    VOLUME_SERVERS,
    Replication,
    SeaweedCluster,
    chunk_volumes,
    copies_made,
    registered_volume_servers,
    volume_locations,
)
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.settings import InfraSettings, ProviderKind, Shape
from semafore.deploy.testing import require, unavailable
from semafore.storage.memory import memory_stores
from semafore.storage.ports import Stores
from semafore.storage.seaweedfs import SeaweedfsBlobStore, SeaweedfsError
from tests.storage import test_conformance

# -- helpers --------------------------------------------------------------------------------------


def _weed() -> Path:
    tools = InfraSettings.from_env({**os.environ, "SEMAFORE_PROVIDER": "embedded"}).tools_dir
    weed = find_tool("weed", extra_dirs=(tools / "bin",))
    if weed is None:
        unavailable(f"weed not installed (looked in {tools}/bin, the venv and PATH)")
    return weed


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Callable[[str], SeaweedCluster]]:
    """Start a cluster of this test's own (it will be faulted) with a given replication."""
    started: list[SeaweedCluster] = []

    def start(replication: str) -> SeaweedCluster:
        cluster = SeaweedCluster(_weed(), tmp_path / replication, replication=replication)
        started.append(cluster)
        try:
            cluster.start()
        except InfraError as exc:
            unavailable(str(exc))
        return cluster

    yield start
    for cluster in started:
        cluster.close()


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalClusterProvider]:
    """``SEMAFORE_PROVIDER=local SEMAFORE_SHAPE=cluster``, as a run would choose it."""
    env = {**os.environ, "SEMAFORE_PROVIDER": "local", "SEMAFORE_SHAPE": "cluster"}
    settings = dataclasses.replace(
        InfraSettings.from_env(env), work_dir=tmp_path_factory.mktemp("seaweed-cluster")
    )
    assert (settings.provider, settings.shape) == (ProviderKind.LOCAL, Shape.CLUSTER)
    chosen = provider_from_settings(settings)
    assert isinstance(chosen, LocalClusterProvider)

    def start() -> LocalClusterProvider:
        chosen.start()
        return chosen

    require(start)
    yield chosen
    chosen.stop()


def _blobs(filer_url: str) -> SeaweedfsBlobStore:
    """The relay's own blob adapter, in a directory of its own."""
    return SeaweedfsBlobStore(filer_url, f"/semafore/t{uuid.uuid4().hex[:16]}")


def _put(filer_url: str, data: bytes) -> tuple[str, str]:
    """Store ``data`` through the relay's adapter: its root directory and the blob's path.
    (Each call runs its own event loop, so each opens and closes its own adapter.)"""
    store = _blobs(filer_url)

    async def put() -> None:
        try:
            await store.put("attachment", data)
        finally:
            await store.close()

    asyncio.run(put())
    return store.root, store.path("attachment")


def _read_back(filer_url: str, root: str) -> bytes | None:
    """The blob :func:`_put` stored under ``root``, read through the relay's adapter."""
    store = SeaweedfsBlobStore(filer_url, root)

    async def get() -> bytes | None:
        try:
            return await store.get("attachment")
        finally:
            await store.close()

    return asyncio.run(get())


def _readable(filer_url: str, root: str, data: bytes) -> bool:
    """The blob under ``root`` reads back through the filer as exactly ``data``."""
    try:
        return _read_back(filer_url, root) == data
    except SeaweedfsError:  # the filer answers 500 when no live server holds a chunk
        return False


def _volume_counts(master_url: str) -> dict[str, int]:
    """How many volumes the master counts on each live volume server (``/dir/status``)."""
    with urllib.request.urlopen(f"{master_url}/dir/status", timeout=10) as answer:
        topology = json.loads(answer.read())["Topology"]
    return {node["Url"]: int(node["Volumes"]) for centre in topology["DataCenters"]
            for rack in centre["Racks"] for node in rack["DataNodes"]}


def _assign(master_url: str, collection: str) -> None:
    """One ``/dir/assign`` in ``collection``: a collection without volumes makes the master grow
    some (its automatic growth, the same path a write takes when every volume is full)."""
    query = urllib.parse.urlencode({"collection": collection})
    with urllib.request.urlopen(f"{master_url}/dir/assign?{query}", timeout=30) as answer:
        assert "fid" in json.loads(answer.read())


def survives_losing_a_holder(cluster: SeaweedCluster, data: bytes) -> bool:
    """Store ``data``, SIGKILL one volume server holding it, read it back through the filer:
    True when the bytes come back identical. The check replication has to pass."""
    root, path = _put(cluster.filer_url, data)
    holders = cluster.holders(path)
    assert holders, "the master locates no copy of a blob it just stored"
    assert holders[0].process.kill() == {"killed": 1}
    return _readable(cluster.filer_url, root, data)


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception),
                                             ("", pytest.skip.Exception)])
def test_a_missing_weed_fails_in_ci_and_skips_locally(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(sys.modules[__name__], "find_tool", lambda *_, **__: None)
    with pytest.raises(outcome, match="weed not installed"):
        _weed()


# -- the topology ---------------------------------------------------------------------------------


@pytest.mark.backend
def test_the_cluster_shape_runs_a_master_three_volume_servers_and_a_filer(
    provider: LocalClusterProvider,
) -> None:
    cluster = provider.seaweedfs()
    assert "seaweedfs" not in provider.processes  # no single-shape `weed server` beside it
    assert provider.backend("seaweedfs") is cluster
    assert provider.endpoints.seaweedfs_filer_url == cluster.filer_url
    assert provider.endpoints.seaweedfs_master_url == cluster.master_url
    assert [node.role for node in cluster.nodes] == ["master", "volume", "volume", "volume",
                                                     "filer"]
    assert registered_volume_servers(cluster.master_url) == sorted(
        node.address for node in cluster.volumes
    )
    assert len({node.data_dir for node in cluster.volumes}) == VOLUME_SERVERS
    assert provider.data_dir("seaweedfs") == cluster.data_dir
    assert all(node.data_dir.parent == cluster.data_dir for node in cluster.nodes)
    assert cluster.healthy()


@pytest.mark.backend
def test_every_blob_the_relay_stores_has_two_copies_on_different_volume_servers(
    provider: LocalClusterProvider,
) -> None:
    cluster = provider.seaweedfs()
    for size in (1, 3000, 5 << 20):  # one chunk, and two (the filer splits at 4 MiB)
        _, path = _put(cluster.filer_url, os.urandom(size))
        volumes = chunk_volumes(cluster.filer_url, path)
        assert volumes, size
        for volume_id in volumes:
            assert len(set(volume_locations(cluster.master_url, volume_id))) == 2, size


# -- the storage conformance suite, blob parts, on the cluster -----------------------------------

_BLOB_CASES = ("test_blobs_are_binary_safe", "test_dump_sees_stored_bytes_and_not_deleted_ones")


def test_the_blob_cases_are_every_conformance_test_that_touches_blobs() -> None:
    """The list below cannot fall behind the suite: a new conformance test on blobs fails
    here until it runs on the cluster too."""
    touching = {
        name for name, fn in inspect.getmembers(test_conformance, inspect.iscoroutinefunction)
        if name.startswith("test_") and ".blobs" in inspect.getsource(fn)
    }
    assert touching == set(_BLOB_CASES)


@pytest.mark.backend
@pytest.mark.parametrize("case", _BLOB_CASES)
def test_the_blob_conformance_cases_pass_on_the_cluster(
    provider: LocalClusterProvider, case: str
) -> None:
    """The suite's own test functions, unchanged, with ``blobs`` the relay's SeaweedFS adapter
    on the cluster's filer (the other ports in memory: this is the object store's check)."""
    run: Callable[[Stores], Awaitable[None]] = getattr(test_conformance, case)
    blobs = _blobs(provider.seaweedfs().filer_url)
    stores = dataclasses.replace(memory_stores(), blobs=blobs)

    async def conform() -> None:
        try:
            await run(stores)
        finally:
            await blobs.drop()
            await stores.close()
            await blobs.close()

    asyncio.run(conform())


# -- what a volume-server kill does ---------------------------------------------------------------


@pytest.mark.backend
@pytest.mark.parametrize(("replication", "survives"), [("001", True), ("000", False)])
def test_a_blob_survives_kill_9_of_a_volume_server_only_because_it_is_replicated(
    own_cluster: Callable[[str], SeaweedCluster], replication: str, survives: bool
) -> None:
    """With ``001`` the other copy answers; with ``000`` (one copy) the same check fails, so
    it is the replication setting that makes it pass, not a cache in the filer."""
    cluster = own_cluster(replication)
    data = os.urandom(3000) + b"\x00attachment-ciphertext\xff"
    assert survives_losing_a_holder(cluster, data) is survives
    # the oracle's dump still reads the lost blob: in the dead server's volume files on disk
    # (through the filer it is unreadable; without the files the dump says so by raising)
    found = [item.source for item in dumps.iter_seaweedfs(cluster.filer_url,
                                                           data_dir=cluster.data_dir)
             if dumps.contains(item, data)]
    assert any(source.startswith("seaweedfs-file:") for source in found)
    assert any(source.startswith("seaweedfs:/") for source in found) is survives
    if not survives:
        with pytest.raises(urllib.error.HTTPError):
            list(dumps.iter_seaweedfs(cluster.filer_url))


@pytest.mark.backend
def test_after_a_volume_server_kill_writes_go_on_and_the_server_rejoins_with_its_copies(
    own_cluster: Callable[[str], SeaweedCluster],
) -> None:
    cluster = own_cluster("001")
    before = os.urandom(2000)
    root, path = _put(cluster.filer_url, before)
    victim = cluster.holders(path)[0]
    victim.process.kill()
    cluster.wait_formed()  # the master no longer counts it; two servers can place 001
    later = os.urandom(2000)
    later_root, later_path = _put(cluster.filer_url, later)
    assert _read_back(cluster.filer_url, later_root) == later
    assert victim not in cluster.holders(later_path)
    assert victim.process.start() == {"started": 1}  # same argv, port and directory
    cluster.wait_formed()
    assert victim in cluster.holders(path)  # its copy is back, located by the master
    assert _read_back(cluster.filer_url, root) == before


@pytest.mark.slow  # weed's repair waits a fixed 15 s for the topology, twice: ~31 s
@pytest.mark.backend
def test_repair_restores_two_copies_after_a_volume_server_is_lost_for_good(
    own_cluster: Callable[[str], SeaweedCluster],
) -> None:
    """SeaweedFS's own ``volume.fix.replication`` (:meth:`SeaweedCluster.repair`): after one
    holder is gone for good, the blob's volume is copied from the other holder to the third
    server, so losing the other original holder too loses nothing. Without the repair the same
    second loss makes the blob unreadable: the check can fail."""
    cluster = own_cluster("001")
    data = os.urandom(3000) + b"\x00repair"
    root, path = _put(cluster.filer_url, data)
    first, second = cluster.holders(path)
    [third] = [node for node in cluster.volumes if node not in (first, second)]
    assert first.process.kill() == {"killed": 1}  # lost for good: never started again
    cluster.wait_formed()
    assert cluster.holders(path) == [second]
    # what the master does by itself during an outage: an assign that finds no writable volume
    # grows six more, on the two survivors (CI once saw them fill every slot before a repair)
    before = _volume_counts(cluster.master_url)
    _assign(cluster.master_url, collection="grown-during-the-outage")
    grown = _volume_counts(cluster.master_url)
    assert set(grown) == {second.address, third.address}
    assert all(grown[a] >= before[a] + 6 for a in grown), (before, grown)
    # unrepaired: the one copy left is all there is
    assert second.process.kill() == {"killed": 1}
    assert not _readable(cluster.filer_url, root, data)
    assert second.process.start() == {"started": 1}  # its copy comes back with its directory
    cluster.wait_formed()
    assert _readable(cluster.filer_url, root, data)

    copies = cluster.repair()
    for volume_id in chunk_volumes(cluster.filer_url, path):
        assert Replication(volume_id, second.address, third.address) in copies
    assert all(c.target not in (first.address, c.source) for c in copies)
    assert {node.address for node in cluster.holders(path)} == {second.address, third.address}
    assert second.process.kill() == {"killed": 1}
    assert _readable(cluster.filer_url, root, data)  # the repaired copy answers alone


# weed 4.48's own lines (captured from real runs): a copy, and a copy refused
_COPY_LINE = "replicating volume 5 001 from 127.0.0.1:54099 to dataNode 127.0.0.1:56199 ..."
_REFUSED_LINE = ("fixing under replicated volume 1: rpc error: code = Unknown desc = invalid "
                 "source data node 127.0.0.1:49707.39767: remote endpoint "
                 "\"127.0.0.1:49707.39767\" resolves to loopback address 127.0.0.1")


def test_the_repair_report_lists_each_volume_copied_once_and_refuses_a_failed_copy() -> None:
    twice = f"{_COPY_LINE}\nvolume 5 replication 001, but under replicated +1\n{_COPY_LINE}\n"
    assert copies_made(twice) == [Replication(5, "127.0.0.1:54099", "127.0.0.1:56199")]
    assert copies_made("") == []
    for failed in (_REFUSED_LINE, "no progress made on 4 under replicated volumes, stopping",
                   "failed to place volume 3 replica as 001, existing:1"):
        with pytest.raises(FaultError, match=r"volume\.fix\.replication failed"):
            copies_made(f"{_COPY_LINE}\n{failed}\n")


@pytest.mark.backend
def test_the_whole_cluster_is_one_fault_target_and_keeps_blobs_across_kill_9(
    own_cluster: Callable[[str], SeaweedCluster],
) -> None:
    cluster = own_cluster("001")
    data = os.urandom(4096)
    root, _ = _put(cluster.filer_url, data)
    assert cluster.kill() == {"killed": 2 + VOLUME_SERVERS}
    assert not cluster.healthy()
    assert cluster.kill() == {}  # nothing left to kill: a fault that changed nothing says so
    assert cluster.start() == {"started": 2 + VOLUME_SERVERS}
    assert cluster.healthy()
    assert _read_back(cluster.filer_url, root) == data
    assert cluster.pause() == {"paused": 2 + VOLUME_SERVERS}
    assert not cluster.healthy()
    with pytest.raises(FaultError, match="paused"):
        cluster.start()  # a paused process is running: start would only wait it out
    assert cluster.resume() == {"resumed": 2 + VOLUME_SERVERS}
    cluster.wait_formed()


# -- what the oracle's dump reads -----------------------------------------------------------------


@pytest.mark.backend
def test_the_dump_reads_the_canary_in_every_volume_server_holding_a_copy(
    provider: LocalClusterProvider,
) -> None:
    """The SeaweedFS part of the oracle's dump (``iter_provider``, ``DataTier.dump``) on the
    cluster: the canary is found through the filer and in the volume files of *each* server
    holding a copy — an adversary with one server's disk has it too."""
    cluster = provider.seaweedfs()
    canary = b"F6-CANARY-" + uuid.uuid4().hex.encode() + os.urandom(64)
    _, path = _put(cluster.filer_url, canary)
    holders = {node.data_dir for node in cluster.holders(path)}
    assert len(holders) == 2

    def scan(data_dir: Path) -> tuple[list[str], set[Path]]:
        """One pass of the dump (a large filer file is a spooled copy that lasts only until
        the next item): every source it read, and the directories of the volume files in
        which the canary is."""
        sources: list[str] = []
        copies: set[Path] = set()
        for item in dumps.iter_seaweedfs(cluster.filer_url, data_dir=data_dir):
            sources.append(item.source)
            if dumps.contains(item, canary):
                if item.source == f"seaweedfs:{path}":
                    continue  # the copy read back through the filer
                file = Path(item.source.removeprefix("seaweedfs-file:"))
                copies.add(next((d for d in cluster_dirs if d in file.parents), file))
        return sources, copies

    cluster_dirs = [node.data_dir for node in cluster.nodes]
    data_dir = provider.data_dir("seaweedfs")
    assert data_dir is not None
    sources, copies = scan(data_dir)
    assert f"seaweedfs:{path}" in sources
    for node in cluster.volumes:  # every volume server's files are read, holder or not
        assert any(source.startswith(f"seaweedfs-file:{node.data_dir}/")
                   for source in sources), node.process.name
    assert copies == holders
    # the check can fail: a dump of one server's directory misses the other copy
    one = next(iter(holders))
    assert scan(one)[1] == {one} != holders
