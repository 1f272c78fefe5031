"""One node of the ``containers`` provider's cluster shape: a :class:`ProcessSpec` run as its own
container instead of a child process (issue #16 item 5, docs/backends.md "Cluster shape").

Why host networking (``network_mode=host``) and not published ports: the engines' clustering
hands out addresses — a Redis replica is named to the Sentinels by the address its primary
sees, Sentinels announce themselves to each other, Redis Cluster nodes gossip their
``ip:port@bus``, SeaweedFS volume servers register ``-ip:-port`` with the master — and a client
on this machine then dials what it was told. With host networking every node binds
``127.0.0.1:PORT`` (the spec's own ``--bind 127.0.0.1`` / ``-ip.bind=127.0.0.1``), so the
address a node announces is the one the host (and every other node) reaches it at; with a
bridge network and published ports, a Sentinel inside one container could not reach
``127.0.0.1:<published port>`` of another, and every engine would need its own announce
options. So nothing listens beyond loopback here either.

Why the argv is the local provider's own: the groups that form the cluster
(:class:`~semafore.deploy.sentinel.SentinelGroup`, :class:`~semafore.deploy.redis_cluster.
RedisClusterGroup`, :class:`~semafore.deploy.seaweed_cluster.SeaweedCluster`) build a spec and
hand it to their :data:`~semafore.deploy.processes.Launcher`; a :class:`ContainerLauncher` runs
it in the image with ``argv[0]`` as the entrypoint. The data root is bind-mounted at the same
path, so ``--dir``, Sentinel's configuration file and SeaweedFS's ``-dir`` mean the same in the
container as on the host, and the oracle's dumps read the files where the local shape has them.

Faults keep :class:`ManagedProcess`'s meaning (:data:`~semafore.deploy.processes.FaultEffect`,
idempotent where meaningful): ``kill`` is ``docker kill -s KILL``, ``stop`` is ``docker stop``
(SIGTERM, then SIGKILL after the spec's ``stop_timeout``), ``pause``/``resume`` are the cgroup
freezer (the container's SIGSTOP), ``start`` restarts the same container (same argv, ports and
data). A container does not die with the harness as a child process does (``PR_SET_PDEATHSIG``):
every one carries the label ``semafore.deploy=1`` and is removed by the provider's ``stop`` or
at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import math
import os
import secrets
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semafore.deploy.errors import BackendUnavailableError, FaultError
from semafore.deploy.processes import FaultEffect, ManagedProcess, ProcessSpec, ProcessState

LABEL = "semafore.deploy"
"""Every container the harness creates carries ``semafore.deploy=1`` (leftovers findable)."""

_LIVE_STATUSES = ("running", "paused", "restarting")

_created: set[ContainerProcess] = set()
_created_lock = threading.Lock()


def _remove_all() -> None:
    with _created_lock:
        nodes = list(_created)
    for node in nodes:
        with contextlib.suppress(Exception):
            node.remove()


atexit.register(_remove_all)


def _docker_error() -> tuple[type[BaseException], ...]:
    """docker-py's base error (it has no type stubs; it comes with testcontainers, optional)
    and the socket's own errors."""
    errors = importlib.import_module("docker.errors")
    return (errors.DockerException, OSError)


class ContainerProcess(ManagedProcess):
    """A :class:`ManagedProcess` whose child is a container on the host network.

    ``spec.argv[0]`` is the program inside ``image`` (the entrypoint), the rest its arguments;
    ``spec.cwd`` its working directory; of ``spec.env`` only what differs from this process's
    environment reaches the container (the image keeps its own ``PATH``). The health probe runs
    here, against ``127.0.0.1``, as for a local process.
    """

    def __init__(
        self, spec: ProcessSpec, *, client: Any, image: str, mounts: Sequence[Path]
    ) -> None:
        super().__init__(spec)
        self.client = client  # docker-py DockerClient
        self.image = image
        self.mounts = tuple(mounts)
        self.container: Any = None

    # -- what docker says ---------------------------------------------------------------------

    def _attrs(self) -> dict[str, Any]:
        """The container's ``State`` now (empty when it does not exist)."""
        if self.container is None:
            return {}
        try:
            self.container.reload()
        except _docker_error():
            return {}
        state = self.container.attrs.get("State") or {}
        return state if isinstance(state, dict) else {}

    def status(self) -> str:
        """Docker's word for the container: running, paused, exited, created… or ``absent``."""
        return str(self._attrs().get("Status", "absent"))

    @property
    def alive(self) -> bool:
        return self.status() in _LIVE_STATUSES

    @property
    def pid(self) -> int | None:
        pid = self._attrs().get("Pid")
        return int(pid) if pid else None

    @property
    def returncode(self) -> int | None:
        state = self._attrs()
        if state.get("Status") in ("exited", "dead"):
            return int(state.get("ExitCode", -1))
        return None

    def log_tail(self, lines: int = 30) -> str:
        if self.container is None:
            return ""
        try:
            raw = self.container.logs(tail=lines)
        except _docker_error():
            return ""
        return bytes(raw).decode("utf-8", "replace")

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> FaultEffect:
        """Create and start the container (first start) or start it again (same argv, ports
        and data); by default block until the health probe passes."""
        if self.alive:
            raise FaultError(f"{self.name}: already running (container {self._short_id()})")
        try:
            if self.container is None:
                self.container = self._create()
                with _created_lock:
                    _created.add(self)
            self.container.start()
        except _docker_error() as exc:
            raise BackendUnavailableError(
                self.name, f"container of {self.image} did not start: {exc}", self.log_tail()
            ) from exc
        self.starts += 1
        self._state = ProcessState.RUNNING
        if wait:
            self.wait_healthy()
        return Counter(started=1)

    def stop(self, timeout: float | None = None) -> FaultEffect:
        """``docker stop``: SIGTERM, SIGKILL after ``timeout`` (default: the spec's)."""
        if not self.alive:
            self._forget()
            return Counter()
        if self.status() == "paused":  # a frozen process cannot act on SIGTERM
            self._docker("unpause", self.container.unpause)
        seconds = timeout if timeout is not None else self.spec.stop_timeout
        self._docker("stop", lambda: self.container.stop(timeout=max(1, math.ceil(seconds))))
        self._forget()
        return Counter(stopped=1)

    def kill(self) -> FaultEffect:
        """``docker kill -s KILL``: no shutdown, no flushing (a paused container too)."""
        if not self.alive:
            self._forget()
            return Counter()
        self._docker("kill", lambda: self.container.kill(signal="SIGKILL"))
        self._docker("wait", lambda: self.container.wait(timeout=30))
        self._forget()
        return Counter(killed=1)

    def pause(self) -> FaultEffect:
        """The cgroup freezer: the container keeps its sockets open but answers nothing."""
        status = self.status()
        if status not in _LIVE_STATUSES:
            raise FaultError(f"{self.name}: cannot pause, not running")
        if status == "paused":  # docker refuses to pause a paused container
            self._state = ProcessState.PAUSED
            return Counter()
        self._docker("pause", self.container.pause)
        self._state = ProcessState.PAUSED
        return Counter(paused=1)

    def resume(self) -> FaultEffect:
        """Thaw after :meth:`pause`."""
        status = self.status()
        if status not in _LIVE_STATUSES:
            raise FaultError(f"{self.name}: cannot resume, not running")
        self._state = ProcessState.RUNNING
        if status != "paused":  # docker refuses to unpause a running container
            return Counter()
        self._docker("unpause", self.container.unpause)
        return Counter(resumed=1)

    def remove(self) -> None:
        """Remove the container (killed first if it runs); the data under the mounts stays."""
        container, self.container = self.container, None
        with _created_lock:
            _created.discard(self)
        self._forget()
        if container is not None:
            with contextlib.suppress(*_docker_error()):
                container.remove(force=True, v=True)

    # -- internals ----------------------------------------------------------------------------

    def _create(self) -> Any:
        spec = self.spec
        env = {k: v for k, v in (spec.env or {}).items() if os.environ.get(k) != v}
        return self.client.containers.create(
            self.image,
            entrypoint=[str(spec.argv[0])],
            command=[str(arg) for arg in spec.argv[1:]],
            name=f"semafore-{spec.name}-{secrets.token_hex(3)}",
            network_mode="host",
            volumes={str(m): {"bind": str(m), "mode": "rw"} for m in self.mounts},
            working_dir=str(spec.cwd) if spec.cwd is not None else None,
            environment=env,
            labels={LABEL: "1", f"{LABEL}.node": spec.name},
        )

    def _docker(self, verb: str, call: Any) -> None:
        try:
            call()
        except _docker_error() as exc:
            raise FaultError(f"{self.name}: docker {verb} failed: {exc}") from exc

    def _short_id(self) -> str:
        return str(getattr(self.container, "short_id", "?"))

    def __repr__(self) -> str:
        return f"ContainerProcess({self.name!r}, {self.image}, {self._short_id()})"


class ContainerLauncher:
    """A :data:`~semafore.deploy.processes.Launcher` that runs each spec as a
    :class:`ContainerProcess` of ``image`` with ``root`` bind-mounted at the same path; it
    remembers what it created so :meth:`remove_all` leaves no container behind."""

    def __init__(self, client: Any, image: str, root: Path) -> None:
        self.client = client
        self.image = image
        self.root = root
        self.created: list[ContainerProcess] = []

    def __call__(self, spec: ProcessSpec) -> ManagedProcess:
        node = ContainerProcess(spec, client=self.client, image=self.image, mounts=[self.root])
        self.created.append(node)
        return node

    def remove_all(self) -> None:
        for node in reversed(self.created):
            node.remove()
        self.created.clear()
