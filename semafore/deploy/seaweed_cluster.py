"""SeaweedFS as separate processes on 127.0.0.1: one ``weed master``, three ``weed volume``
servers and one ``weed filer`` — the ``cluster`` shape's object store (issue #16 item 5,
docs/backends.md "Cluster shape"; attachment blobs, ADR-0157, seed §3.2).

Why ``-defaultReplication=001``: SeaweedFS's replica placement is three digits — copies in
other data centres, in other racks, on other servers of the same rack. ``001`` keeps every
volume (so every blob) on two different volume servers; all three servers here sit in the
default rack, so ``010``/``100`` could never be placed. Two copies on three servers is the
smallest layout that survives the loss of any one server for reads *and* still has two live
servers on which the master can grow new ``001`` volumes for writes; ``002`` (three copies)
would need all three servers up to place a new volume, so one kill would stop new writes. A
write is acknowledged only once both copies have it (the volume server that takes the upload
replicates it synchronously), so a blob the relay was told is stored has two copies.

What replication does not do: bring a lost copy back. After a volume server dies its volumes
are under-replicated until it returns with its directory (``start()`` of its process: the same
argv, port and data) or an operator repairs them: :meth:`SeaweedCluster.repair` runs SeaweedFS's
own ``volume.fix.replication -apply`` in ``weed shell`` against the master, which copies each
under-replicated volume from its surviving copy to a live server with a free slot. Nothing here
repairs behind the test's back. The volume servers run with
``-volume.allowUntrustedRemoteEndpoints`` because weed (4.48) refuses, as SSRF protection, a
volume copy whose source resolves to a loopback address — and every server of this cluster is
on 127.0.0.1 (it binds nowhere else), so without it no repair could ever run here.

No S3 gateway: the relay's blob adapter speaks the filer's HTTP API
(:mod:`semafore.storage.seaweedfs` says why), and ``weed filer -s3`` of weed 4.48 did not open
its S3 port here within 10 s, so the cluster shape's endpoints carry no ``seaweedfs_s3_url``.

Why the master runs with ``-peers=none``: one master has no Raft peers to wait for, so it is
the leader at once (the ``weed master`` help's advice for a single master); a highly available
master (three masters under Raft) is not part of this shape. Why the master is started first:
a filer that boots before its master is reachable backs off for seconds before retrying
(measured: ~7 s), one that starts after it is up serves in ~0.3 s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from semafore.deploy import health
from semafore.deploy.errors import BackendUnavailableError, FaultError
from semafore.deploy.processes import (
    FaultEffect,
    HealthProbe,
    Launcher,
    ManagedProcess,
    ProcessGroup,
    ProcessSpec,
    ProcessState,
    free_ports,
)

Role = Literal["master", "volume", "filer"]

VOLUME_SERVERS = 3
REPLICATION = "001"
"""Two copies of every volume on two different servers of the same rack (module docstring)."""

VOLUME_SIZE_LIMIT_MB = 64
"""Small volumes (the default is 30 GiB) keep the data directories small and the dumps short."""

VOLUMES_PER_SERVER = 32
"""Volume slots per server: room for the master's own growth while a server is down, and for
the repair after it. An assign that finds no writable volume makes the master grow six ``001``
volumes at once (``master.volume_growth.copy_2``), one by one until the slots run out; with two
servers left each growth takes six slots on both. At 8 slots one such growth during an outage
filled both survivors, and ``volume.fix.replication`` then had nowhere to place a copy
("failed to place volume 3 replica as 001", seen in CI). 32 covers the first layout (up to six
per server), two growths during an outage and a copy of every lost volume. An unused slot
costs nothing: weed creates a volume's files only when it grows one."""
REPAIR_TIMEOUT = 180.0
"""``volume.fix.replication`` waits a fixed 15 s for a fresh topology before each pass (weed
4.48: ``collectTopologyInfo(..., 15*time.Second)``) and makes one more pass after it copied
anything: ~31 s measured for a repair that copies, ~16 s for one with nothing to do."""

_COPIED = re.compile(r"^replicating volume (\d+) (\d{3}) from (\S+) to dataNode (\S+) \.\.\.$")
_REPAIR_FAILED = re.compile(
    r"^(fixing under replicated volume .*|failed to place volume .*|no progress made .*)$"
)

STOP_TIMEOUT = 3.0
"""weed lingers ~10 s in its gRPC graceful stop after SIGTERM; needles, indexes and the
filer's LevelDB are crash-safe, so SIGKILL after 3 s loses nothing (as the single shape)."""


def _http_json(url: str, timeout: float = health.PROBE_TIMEOUT) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body = json.loads(response.read() or b"{}")
    return body if isinstance(body, dict) else {}


def registered_volume_servers(master_url: str) -> list[str]:
    """``host:port`` of every volume server the master currently counts (``/dir/status``:
    a server that stopped heartbeating is dropped from it)."""
    topology = _http_json(master_url.rstrip("/") + "/dir/status").get("Topology")
    urls: list[str] = []
    if not isinstance(topology, dict):
        return urls
    for centre in topology.get("DataCenters") or []:
        for rack in centre.get("Racks") or []:
            urls.extend(str(node["Url"]) for node in rack.get("DataNodes") or [])
    return sorted(urls)


def volume_locations(master_url: str, volume_id: int) -> list[str]:
    """``host:port`` of the live volume servers holding ``volume_id`` (``/dir/lookup``)."""
    query = urllib.parse.urlencode({"volumeId": volume_id})
    try:
        body = _http_json(f"{master_url.rstrip('/')}/dir/lookup?{query}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # no live server holds it
            return []
        raise
    locations = body.get("locations") or []
    assert isinstance(locations, list)
    return sorted(str(location["url"]) for location in locations)


def chunk_volumes(filer_url: str, path: str) -> list[int]:
    """The volume ids holding the chunks of the filer file ``path`` (its metadata)."""
    url = f"{filer_url.rstrip('/')}{urllib.parse.quote(path)}?metadata=true"
    chunks = _http_json(url, timeout=10).get("chunks") or []
    assert isinstance(chunks, list)
    return sorted({int(str(chunk["file_id"]).split(",", 1)[0]) for chunk in chunks})


def _answers(url: str) -> HealthProbe:
    """A probe: ``url`` answers 200 (the master's ``/cluster/status``, a volume server's
    ``/status``): the process serves HTTP, which a SIGSTOPped one does not."""
    return lambda: health.http_status(url) == 200


@dataclass(frozen=True)
class Replication:
    """One copy :meth:`SeaweedCluster.repair` made: volume ``volume_id`` copied from the server
    still holding it (``source``) to another live server (``target``), both ``127.0.0.1:PORT``."""

    volume_id: int
    source: str
    target: str


def copies_made(output: str) -> list[Replication]:
    """The copies ``volume.fix.replication -apply`` reports in ``output``; a line saying a
    copy failed, could not be placed or made no progress is a :class:`FaultError` quoting it
    (weed prints those and still exits 0)."""
    failed = [line for line in output.splitlines() if _REPAIR_FAILED.match(line.strip())]
    if failed:
        raise FaultError(f"seaweedfs: volume.fix.replication failed: {failed[0]}")
    made: dict[int, Replication] = {}
    for line in output.splitlines():
        if (found := _COPIED.match(line.strip())) is not None:
            volume, _, source, target = found.groups()
            made[int(volume)] = Replication(int(volume), source, target)
    return [made[volume] for volume in sorted(made)]


@dataclass(frozen=True)
class WeedNode:
    """One process of the cluster: its role, supervised process, ports and data directory."""

    role: Role
    process: ManagedProcess
    port: int
    grpc_port: int
    data_dir: Path

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as the master names a volume server."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


class SeaweedCluster(ProcessGroup):
    """A master, ``volume_servers`` volume servers and a filer, all on free 127.0.0.1 ports.

    Data lives under ``root/seaweedfs`` (``master``, ``volume-1`` …, ``filer``), so a dump of
    that one directory (:func:`semafore.deploy.dumps.iter_seaweedfs`) reads every volume
    server's files; logs and weed's glog scratch go beside it, never into it.

    Also the ``seaweedfs`` fault target of the cluster shape: ``stop``/``kill``/``pause``/
    ``resume``/``start``/``restart`` act on every process (the whole object store goes away,
    as with the single shape's one ``weed server``). One volume server is
    ``cluster.volumes[i].process`` (a :class:`ManagedProcess`); after restarting one, call
    :meth:`wait_formed` before relying on it holding copies again.
    """

    name = "seaweedfs"

    def __init__(
        self,
        weed: Path,
        root: Path,
        *,
        volume_servers: int = VOLUME_SERVERS,
        replication: str = REPLICATION,
        startup_timeout: float = 60.0,
        launch: Launcher = ManagedProcess,
    ) -> None:
        if volume_servers < 1:
            raise ValueError("volume_servers: at least one")
        if len(replication) != 3 or not replication.isdigit():
            raise ValueError("replication: three digits, e.g. 001")
        self.weed = weed.absolute()  # each process runs in its own directory
        self.launch = launch  # a local process, or a container (the containers provider)
        self.root = root
        self.volume_servers = volume_servers
        self.replication = replication
        self.startup_timeout = startup_timeout
        self.master: WeedNode | None = None
        self.volumes: list[WeedNode] = []
        self.filer: WeedNode | None = None
        self._ports: list[int] = []
        self._env: dict[str, str] = dict(os.environ)

    # -- where it answers ---------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.root / "seaweedfs"

    @property
    def nodes(self) -> list[WeedNode]:
        """Every node, in start order: master, volume servers, filer."""
        first = [self.master] if self.master is not None else []
        last = [self.filer] if self.filer is not None else []
        return [*first, *self.volumes, *last]

    @property
    def processes(self) -> list[ManagedProcess]:
        return [node.process for node in self.nodes]

    @property
    def master_url(self) -> str:
        return self._node(self.master).url

    @property
    def filer_url(self) -> str:
        return self._node(self.filer).url

    def volume(self, address: str) -> WeedNode:
        """The volume server the master names ``address`` (``127.0.0.1:PORT``)."""
        for node in self.volumes:
            if node.address == address:
                return node
        raise FaultError(f"no volume server of this cluster listens on {address}")

    def holders(self, path: str) -> list[WeedNode]:
        """The live volume servers holding a copy of the filer file ``path`` (every chunk's
        volume, as the master locates it now): the fault targets of a replication test."""
        found: set[str] = set()
        for volume_id in chunk_volumes(self.filer_url, path):
            found.update(volume_locations(self.master_url, volume_id))
        return [self.volume(address) for address in sorted(found)]

    # -- repair -------------------------------------------------------------------------------

    def repair(self, timeout: float = REPAIR_TIMEOUT) -> list[Replication]:
        """Re-replicate every under-replicated volume with SeaweedFS's own repair:
        ``lock; volume.fix.replication -apply; unlock`` in ``weed shell`` against the master
        (after a volume server is lost for good, seed §3.5 availability: the cluster is back to
        two copies of each volume on the servers that remain). Returns the copies made, one per
        volume (an empty list: nothing was under-replicated); a copy weed reports as failed is
        a :class:`FaultError`. Needs two live volume servers to place a ``001`` copy."""
        master = self._node(self.master)
        script = "lock\nvolume.fix.replication -apply\nunlock\n"
        argv = [str(self.weed), "shell", f"-master=127.0.0.1:{master.port}.{master.grpc_port}"]
        try:
            done = subprocess.run(  # our weed binary, a fixed script, loopback only
                argv, input=script, capture_output=True, text=True, timeout=timeout,
                cwd=self.root, env=self._env, check=False,
            )
        except subprocess.TimeoutExpired:
            raise FaultError(f"{self.name}: volume.fix.replication did not finish in "
                             f"{timeout:.0f} s") from None
        if done.returncode != 0:
            raise FaultError(f"{self.name}: weed shell exited {done.returncode}: "
                             f"{(done.stderr or done.stdout).strip()[-500:]}")
        return copies_made(done.stdout)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FaultEffect:
        """Start every process that is not running (the master first, waited for) and wait
        until the master counts every volume server, a write can be placed and the filer
        answers. A first start lays out the ports and directories; later ones reuse them."""
        if self.master is None:
            self._lay_out()
        assert self.master is not None
        paused = [p.name for p in self.processes if p.state is ProcessState.PAUSED]
        if paused:
            raise FaultError(f"{self.name}: {', '.join(paused)} paused; resume, not start")
        effect: FaultEffect = Counter()
        if not self.master.process.alive:
            effect += self.master.process.start(wait=False)
            self.master.process.wait_healthy(self.startup_timeout)
        rest = [node.process for node in self.nodes[1:]]
        for proc in rest:
            if not proc.alive:
                effect += proc.start(wait=False)
        for proc in rest:
            proc.wait_healthy(self.startup_timeout)
        self.wait_formed()
        return effect

    def wait_formed(self, timeout: float | None = None) -> None:
        """Block until the master counts every volume server that is running, can place a
        write (``/dir/assign``: with ``001`` that needs two servers) and the filer lists its
        root; a cluster not formed in ``timeout`` is a :class:`BackendUnavailableError`."""
        limit = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        last: str | None = "not asked yet"
        while True:
            try:
                last = self._unformed()
                if last is None:
                    return
            except (OSError, ValueError, KeyError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise BackendUnavailableError(
                    self.name, f"cluster not formed after {limit:.0f} s ({last})"
                )
            time.sleep(0.1)

    def close(self) -> None:
        """Stop everything and remove the unix sockets weed leaves in /tmp for our ports
        (``/tmp/seaweedfs-<role>-<port>.sock`` whatever TMPDIR says). Keeps the data."""
        self.stop()
        for port in self._ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):  # noqa: S108
                sock.unlink(missing_ok=True)

    def healthy(self) -> bool:
        """One probe of every process and of the master's view, no waiting."""
        try:
            return all(proc.healthy() for proc in self.processes) and self._unformed() is None
        except (OSError, ValueError, KeyError):
            return False

    # -- internals ----------------------------------------------------------------------------

    def _node(self, node: WeedNode | None) -> WeedNode:
        if node is None:
            raise FaultError(f"{self.name}: cluster not started")
        return node

    def _unformed(self) -> str | None:
        """What is not formed yet, or None when the cluster is."""
        running = sorted(node.address for node in self.volumes if node.process.alive)
        counted = registered_volume_servers(self.master_url)
        if counted != running:
            return f"the master counts volume servers {counted}, running are {running}"
        if not health.seaweedfs_ready(self.master_url, self.filer_url):
            return "the filer does not list / or the master cannot place a write"
        return None

    def _lay_out(self) -> None:
        ports = free_ports(2 * (2 + self.volume_servers))  # HTTP and gRPC for each node
        self._ports = list(ports)
        scratch = self.root / "seaweedfs-tmp"  # weed writes its glog files to TMPDIR
        scratch.mkdir(parents=True, exist_ok=True)
        env = self._env = {**os.environ, "TMPDIR": str(scratch)}
        master_port, master_grpc = ports[0], ports[1]
        # a bare host:port makes weed dial gRPC on port+10000: name the gRPC port explicitly
        master_at = f"127.0.0.1:{master_port}.{master_grpc}"
        master_url = f"http://127.0.0.1:{master_port}"
        self.master = self._node_of(
            "master", "seaweedfs-master", master_port, master_grpc, env,
            [f"-mdir={self.data_dir / 'master'}",
             f"-defaultReplication={self.replication}",
             f"-volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
             "-peers=none", "-telemetry=false"],
            _answers(master_url + "/cluster/status"),
            self.data_dir / "master",
        )
        for index in range(1, self.volume_servers + 1):
            port, grpc = ports[2 * index], ports[2 * index + 1]
            directory = self.data_dir / f"volume-{index}"
            url = f"http://127.0.0.1:{port}"
            self.volumes.append(self._node_of(
                "volume", f"seaweedfs-volume-{index}", port, grpc, env,
                [f"-dir={directory}", f"-max={VOLUMES_PER_SERVER}", f"-master={master_at}",
                 "-preStopSeconds=0", "-volume.allowUntrustedRemoteEndpoints"],
                _answers(url + "/status"),
                directory,
            ))
        filer_port, filer_grpc = ports[2 * self.volume_servers + 2: 2 * self.volume_servers + 4]
        self.filer = self._node_of(
            "filer", "seaweedfs-filer", filer_port, filer_grpc, env,
            [f"-master={master_at}", f"-defaultStoreDir={self.data_dir / 'filer'}"],
            _answers(f"http://127.0.0.1:{filer_port}/"),
            self.data_dir / "filer",
        )

    def _node_of(
        self,
        role: Role,
        name: str,
        port: int,
        grpc_port: int,
        env: dict[str, str],
        args: list[str],
        probe: HealthProbe,
        directory: Path,
    ) -> WeedNode:
        directory.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.weed), role, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-port={port}", f"-port.grpc={grpc_port}", *args,
        ]
        spec = ProcessSpec(
            name, argv, probe, self.root / f"{name}.log", cwd=directory, env=env,
            startup_timeout=self.startup_timeout, stop_timeout=STOP_TIMEOUT,
        )
        return WeedNode(role, self.launch(spec), port, grpc_port, directory)
