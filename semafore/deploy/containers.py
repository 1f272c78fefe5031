"""The ``containers`` provider: MongoDB, Redis and SeaweedFS as containers (testcontainers).

Upstream images by default (``mongo``, ``redis``, ``chrislusf/seaweedfs``); on machines
without a registry ``scripts/build-images.sh`` builds local stand-ins from the same binaries
and ``SEMAFORE_*_IMAGE`` points here at them (docs/backends.md). Every published port is bound
to 127.0.0.1 explicitly, whatever the engine's default. No reaper container (it cannot be
pulled here): :meth:`ContainersProvider.stop` removes what it created, and containers carry
the label ``semafore.deploy=1`` so a crashed run's leftovers can be found.

This is the single shape: one container per backend. The cluster shape (``SEMAFORE_SHAPE=
cluster``) is :mod:`semafore.deploy.containers_cluster`, a container per node.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from semafore.deploy import health
from semafore.deploy.containers_process import LABEL
from semafore.deploy.errors import BackendUnavailableError, FaultError
from semafore.deploy.processes import FaultEffect, free_ports
from semafore.deploy.providers import BackendName, Endpoints, Provider
from semafore.deploy.settings import InfraSettings, ProviderKind

OUR_SOCKET = "unix:///run/semafore-docker.sock"

# testcontainers reads these when imported (ENVIRONMENT.md: the reaper image cannot be pulled;
# the machine looks like a container, so without docker_host mode it would connect through the
# bridge gateway instead of 127.0.0.1).
TESTCONTAINERS_ENV = {
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TC_HOST": "127.0.0.1",
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
}


def configure_docker_env() -> str:
    """Set the testcontainers variables (unless the user set them) and pick DOCKER_HOST:
    the user's, else our own engine's socket (scripts/dockerd.sh) if it exists."""
    for key, value in TESTCONTAINERS_ENV.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("DOCKER_HOST") and os.path.exists(OUR_SOCKET.removeprefix("unix://")):
        os.environ["DOCKER_HOST"] = OUR_SOCKET
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def docker_client() -> Any:
    """The engine's docker-py client (:func:`configure_docker_env` picks the engine), answering
    a ping; :class:`BackendUnavailableError` naming ``docker`` if it does not."""
    docker_host = configure_docker_env()
    try:
        from testcontainers.core.docker_client import DockerClient  # noqa: PLC0415 (testcontainers: optional, only the containers provider needs it)

        client: Any = DockerClient().client  # docker-py, configured from DOCKER_HOST
        client.ping()
    except Exception as exc:
        raise BackendUnavailableError(
            "docker", f"no engine at {docker_host} ({exc}); run scripts/dockerd.sh start"
        ) from exc
    return client


def require_image(client: Any, name: str, image: str) -> None:
    """``image`` is present on the engine (there is no registry to pull from here)."""
    try:
        client.images.get(image)
    except Exception as exc:
        raise BackendUnavailableError(
            name,
            f"image {image} not present and no registry to pull from "
            "(scripts/build-images.sh builds local ones)",
        ) from exc


@dataclass(frozen=True)
class ContainerPlan:
    """One backend's container: image, the ports it listens on, and its command."""

    name: BackendName
    image: str
    ports: Sequence[int]
    command: Sequence[str] | None


def redis_persistence(durable: bool) -> list[str]:
    """Persistence flags of every Redis server in a container: with ``durable`` AOF with
    ``appendfsync always`` (a kill loses nothing acknowledged), else no files at all."""
    if durable:
        return ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    return ["--appendonly", "no", "--save", ""]


def plans(images: dict[str, str], *, redis_durable: bool = False) -> list[ContainerPlan]:
    return [
        ContainerPlan(
            "redis",
            images["redis"],
            [6379],
            [
                "redis-server",
                "--bind",
                "0.0.0.0",  # noqa: S104 - inside the container; published on 127.0.0.1 only
                "--protected-mode",
                "no",
                "--rdbcompression",
                "no",
                *redis_persistence(redis_durable),
            ],
        ),
        # upstream `mongo` runs mongod on 27017; the FerretDB stand-in is configured by ENV
        ContainerPlan("mongodb", images["mongodb"], [27017], None),
        ContainerPlan(
            "seaweedfs",
            images["seaweedfs"],
            [9333, 8888, 8333],
            [
                "server",
                "-dir=/data",
                "-ip=127.0.0.1",
                "-ip.bind=0.0.0.0",
                "-filer",
                "-s3",
                "-master.volumeSizeLimitMB=64",
                "-volume.max=16",
                "-volume.preStopSeconds=0",
                "-master.electionTimeout=1s",
            ],
        ),
    ]


class ContainerBackend:
    """Fault controls of one container (same verbs and :data:`FaultEffect` as a
    ManagedProcess: empty when the container already was in the state asked for)."""

    def __init__(
        self,
        plan: ContainerPlan,
        container: Any,
        host_ports: dict[int, int],
        probe: Callable[[], bool],
        startup_timeout: float = 90.0,
    ) -> None:
        self.plan = plan
        self.container = container  # testcontainers DockerContainer
        self.host_ports = host_ports
        self._probe = probe
        self.startup_timeout = startup_timeout

    @property
    def name(self) -> str:
        return self.plan.name

    def _wrapped(self) -> Any:
        try:
            return self.container.get_wrapped_container()
        except Exception as exc:
            raise FaultError(f"{self.name}: container not created") from exc

    def healthy(self) -> bool:
        try:
            return bool(self._probe())
        except Exception:
            return False

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                if self._probe():
                    return
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
            wrapped = self._wrapped()
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                logs = wrapped.logs(tail=30).decode("utf-8", "replace")
                raise BackendUnavailableError(self.name, f"container {wrapped.status}", logs)
            time.sleep(0.2)
        logs = self._wrapped().logs(tail=30).decode("utf-8", "replace")
        raise BackendUnavailableError(
            self.name, f"not healthy after {self.startup_timeout:.0f} s ({last})", logs
        )

    def status(self) -> str:
        """Docker's word for the container now: running, paused, exited, created, dead."""
        wrapped = self._wrapped()
        wrapped.reload()
        return str(wrapped.status)

    def start(self) -> FaultEffect:
        was = self.status()
        self._wrapped().start()
        self.wait_healthy()
        return Counter() if was in ("running", "paused") else Counter(started=1)

    def stop(self) -> FaultEffect:
        was = self.status()
        self._wrapped().stop(timeout=3)
        return Counter(stopped=1) if was in ("running", "paused") else Counter()

    def kill(self) -> FaultEffect:
        if self.status() != "running":
            return Counter()
        self._wrapped().kill(signal="SIGKILL")
        return Counter(killed=1)

    def pause(self) -> FaultEffect:
        if self.status() == "paused":  # docker refuses to pause a paused container
            return Counter()
        self._wrapped().pause()  # cgroup freezer: the container's SIGSTOP
        return Counter(paused=1)

    def resume(self) -> FaultEffect:
        if self.status() == "running":  # docker refuses to unpause a running one
            return Counter()
        self._wrapped().unpause()
        return Counter(resumed=1)

    def restart(self) -> FaultEffect:
        was = self.status()
        self._wrapped().restart(timeout=3)
        self.wait_healthy()
        stopped = Counter(stopped=1) if was in ("running", "paused") else Counter()
        return stopped + Counter(started=1)


class ContainersProvider(Provider):
    """Three containers on published 127.0.0.1 ports; data lives (and dies) with them."""

    kind = ProviderKind.CONTAINERS

    def __init__(self, settings: InfraSettings, *, redis_durable: bool = False) -> None:
        super().__init__(settings)
        self.redis_durable = redis_durable
        self.backends: dict[BackendName, ContainerBackend] = {}

    def backend(self, name: BackendName) -> ContainerBackend:
        try:
            return self.backends[name]
        except KeyError:
            raise FaultError(f"containers provider has no {name} container") from None

    def _start(self) -> Endpoints:
        client = docker_client()
        for plan in plans(dict(self.settings.images), redis_durable=self.redis_durable):
            self._run(client, plan)
        for backend in self.backends.values():
            backend.wait_healthy()
        return self._endpoints_of()

    def _run(self, client: Any, plan: ContainerPlan) -> ContainerBackend:
        """Start ``plan``'s container on free published 127.0.0.1 ports (not waited for)."""
        from testcontainers.core.container import DockerContainer  # noqa: PLC0415 (testcontainers: optional, only the containers provider needs it)

        require_image(client, plan.name, plan.image)
        host_ports = dict(zip(plan.ports, free_ports(len(plan.ports)), strict=True))
        container = DockerContainer(plan.image).with_kwargs(labels={LABEL: "1"})
        for inner, outer in host_ports.items():
            cast(dict[str, Any], container.ports)[f"{inner}/tcp"] = ("127.0.0.1", outer)
        if plan.command is not None:
            container = container.with_command(list(plan.command))
        backend = ContainerBackend(plan, container, host_ports, self._probe(plan, host_ports))
        self.backends[plan.name] = backend
        try:
            container.start()
        except Exception as exc:
            raise BackendUnavailableError(plan.name, f"container did not start: {exc}") from exc
        return backend

    def _endpoints_of(self) -> Endpoints:
        redis_port = self.backends["redis"].host_ports[6379]
        mongo_port = self.backends["mongodb"].host_ports[27017]
        weed = self.backends["seaweedfs"].host_ports
        return Endpoints(
            ProviderKind.CONTAINERS,
            mongodb_url=f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true",
            redis_url=f"redis://127.0.0.1:{redis_port}/0",
            seaweedfs_filer_url=f"http://127.0.0.1:{weed[8888]}",
            seaweedfs_s3_url=f"http://127.0.0.1:{weed[8333]}",
            seaweedfs_master_url=f"http://127.0.0.1:{weed[9333]}",
            mongodb_engine=self.settings.images["mongodb"],
        )

    @staticmethod
    def _probe(plan: ContainerPlan, ports: dict[int, int]) -> Callable[[], bool]:
        if plan.name == "redis":
            return lambda: health.redis_ping("127.0.0.1", ports[6379])
        if plan.name == "mongodb":
            url = f"mongodb://127.0.0.1:{ports[27017]}/?directConnection=true"
            return lambda: health.mongodb_ping(url)
        master, filer = f"http://127.0.0.1:{ports[9333]}", f"http://127.0.0.1:{ports[8888]}"
        return lambda: health.seaweedfs_ready(master, filer)

    def _stop(self) -> None:
        for backend in self.backends.values():
            try:
                backend.container.stop(force=True, delete_volume=True)
            except Exception:  # noqa: S112 - best effort: the rest must still be removed
                continue
        self.backends.clear()
