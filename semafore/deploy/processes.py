"""Child processes the harness owns: start, wait for health, and every fault the simulator
injects (stop, kill -9, pause/resume, restart) — for backends and server replicas alike.

Why a process group per child: a fault must hit the whole program (``weed server`` is one
process, but a replica launcher may fork), and ``killpg`` reaches it all. Why
``PR_SET_PDEATHSIG``: if the harness itself is killed (SIGKILL, CI timeout) the kernel still
takes its children down, so nothing is left running; ``atexit`` covers normal interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from semafore.deploy.errors import BackendUnavailableError, FaultError

log = logging.getLogger(__name__)

HealthProbe = Callable[[], bool]
"""One health check: True when the service answers; may raise (treated as not yet healthy)."""

_PR_SET_PDEATHSIG = 1

FaultEffect = Counter[str]
"""What one fault control changed: ``started``, ``stopped``, ``killed``, ``paused``,
``resumed`` (1 each; a restart has two). Empty when the target already was in the state asked
for (stopping a stopped process): a scenario's fault that changed nothing proved nothing
(issue #11, "faults prove they fired")."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports, all held open until chosen so none repeats."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def find_tool(name: str, *, extra_dirs: Sequence[Path] = ()) -> Path | None:
    """Locate an executable: ``extra_dirs`` first, then the interpreter's bin dir, then PATH."""
    for directory in (*extra_dirs, Path(sys.executable).parent):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def account(user: str | None) -> dict[str, Any]:
    """``subprocess`` keyword arguments that run a child as ``user`` with that account's own
    primary group and no supplementary groups (``user=`` alone keeps root's groups, whose
    permissions then still apply). Empty for ``None``: run as ourselves."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


class ProcessState(Enum):
    NEW = "new"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass
class ProcessSpec:
    """How to run one service. Restarting reuses the same argv, so ports and data survive."""

    name: str
    argv: Sequence[str]
    health: HealthProbe
    log_path: Path
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    startup_timeout: float = 60.0
    stop_timeout: float = 10.0
    extra: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    """Run as this account (``subprocess.Popen(user=)``; PostgreSQL refuses root)."""
    die_with_parent: bool = True
    """Linux PR_SET_PDEATHSIG: the kernel kills the child when the *thread* that started it
    exits. Right for the main thread and long-lived workers; turn it off when starting from a
    short-lived thread (e.g. a one-off ``asyncio.to_thread`` call)."""


_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()


def _reap_all() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.kill()


atexit.register(_reap_all)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()[-8192:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class ManagedProcess:
    """One supervised child process with fault controls.

    Every control is idempotent where that is meaningful (stopping a stopped process is a
    no-op) and raises :class:`FaultError` where it is not (pausing a stopped process). Each
    returns its :data:`FaultEffect` (empty for a no-op).
    """

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._state = ProcessState.NEW
        self.starts = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> ProcessState:
        if self._state in (ProcessState.RUNNING, ProcessState.PAUSED) and not self.alive:
            self._state = ProcessState.STOPPED
        return self._state

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode if self._popen is not None else None

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.spec.log_path, lines)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> FaultEffect:
        """Spawn the process and (by default) block until its health probe passes."""
        if self.alive:
            raise FaultError(f"{self.name}: already running (pid {self.pid})")
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log = self.spec.log_path.open("ab")
        env = dict(os.environ if self.spec.env is None else self.spec.env)
        try:
            self._popen = subprocess.Popen(  # argv is built by us, never from untrusted input
                list(self.spec.argv),
                cwd=self.spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **account(self.spec.user),
                preexec_fn=(  # noqa: PLW1509
                    _die_with_parent
                    if sys.platform == "linux" and self.spec.die_with_parent
                    else None
                ),
            )
        except OSError as exc:
            self._close_log()
            raise BackendUnavailableError(
                self.name, f"cannot execute {self.spec.argv[0]}: {exc}"
            ) from exc
        with _live_lock:
            _live.add(self)
        self.starts += 1
        self._state = ProcessState.RUNNING
        log.info("process started", extra={"process": self.name, "pid": self.pid})
        if wait:
            self.wait_healthy()
        return Counter(started=1)

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Poll the health probe until it passes; fail fast if the process exits meanwhile."""
        deadline = time.monotonic() + (
            timeout if timeout is not None else self.spec.startup_timeout
        )
        last_error = "no answer"
        while True:
            if not self.alive:
                code = self.returncode
                self._forget()
                raise BackendUnavailableError(
                    self.name, f"exited with code {code} before becoming healthy", self.log_tail()
                )
            try:
                if self.spec.health():
                    return
            except Exception as exc:  # a probe failing is the expected state while booting
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                self.kill()
                raise BackendUnavailableError(
                    self.name,
                    f"not healthy after {self.spec.startup_timeout:.0f} s ({last_error})",
                    self.log_tail(),
                )
            time.sleep(0.1)

    def healthy(self) -> bool:
        """One probe, no waiting."""
        try:
            return self.alive and self.state is ProcessState.RUNNING and self.spec.health()
        except Exception:
            return False

    def stop(self, timeout: float | None = None) -> FaultEffect:
        """Graceful stop: SIGTERM to the group, SIGKILL if it has not exited in ``timeout``."""
        if not self.alive:
            self._forget()
            return Counter()
        self._signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
        self._signal(signal.SIGTERM)
        assert self._popen is not None
        try:
            self._popen.wait(timeout if timeout is not None else self.spec.stop_timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self._popen.wait()
        self._forget()
        return Counter(stopped=1)

    def kill(self) -> FaultEffect:
        """kill -9 of the whole process group: no shutdown hooks, no flushing."""
        if not self.alive:
            self._forget()
            return Counter()
        self._signal(signal.SIGKILL)
        assert self._popen is not None
        self._popen.wait()
        self._forget()
        return Counter(killed=1)

    def pause(self) -> FaultEffect:
        """SIGSTOP: the process keeps its sockets open but answers nothing."""
        if not self.alive:
            raise FaultError(f"{self.name}: cannot pause, not running")
        was = self.state
        self._signal(signal.SIGSTOP)
        self._state = ProcessState.PAUSED
        return Counter(paused=1) if was is ProcessState.RUNNING else Counter()

    def resume(self) -> FaultEffect:
        """SIGCONT after :meth:`pause`."""
        if not self.alive:
            raise FaultError(f"{self.name}: cannot resume, not running")
        was = self.state
        self._signal(signal.SIGCONT)
        self._state = ProcessState.RUNNING
        return Counter(resumed=1) if was is ProcessState.PAUSED else Counter()

    def restart(self, *, graceful: bool = True) -> FaultEffect:
        """Stop (or kill -9) and start again with the same argv, ports and data directory."""
        effect = self.stop() if graceful else self.kill()
        return effect + self.start()

    # -- internals --------------------------------------------------------------------------

    def _signal(self, sig: signal.Signals) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, sig)

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)
        if self._state is not ProcessState.NEW:
            self._state = ProcessState.STOPPED
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, state={self.state.value})"


Launcher = Callable[[ProcessSpec], ManagedProcess]
"""Makes the supervised child of a spec: :class:`ManagedProcess` itself (a local process), or
a container running the same argv (the ``containers`` provider's cluster shape:
:class:`semafore.deploy.containers_process.ContainerProcess`); the cluster shape's groups take
one."""


class ProcessGroup(ABC):
    """Several processes that make one backend (a Redis Cluster, a SeaweedFS master with its
    volume servers and filer; issue #16 item 5, docs/backends.md "Cluster shape"), controlled
    as one fault target: what a scenario does to "the backend" it does to every process.

    Subclasses say which processes (:attr:`processes`, in start order), how the group starts
    and forms (:meth:`start`), when it is whole (:meth:`healthy`) and what leaving the block
    removes (:meth:`close`); stop, kill, pause, resume and restart are defined once, here.
    ``with Group(...) as running:`` closes it again if the start fails half-way.
    """

    name: str

    @property
    @abstractmethod
    def processes(self) -> list[ManagedProcess]: ...

    @abstractmethod
    def start(self) -> FaultEffect: ...

    @abstractmethod
    def healthy(self) -> bool: ...

    def close(self) -> None:
        """Stop everything (subclasses also remove what they laid out)."""
        self.stop()

    def stop(self) -> FaultEffect:
        """Graceful stop of every process, in reverse start order; the layout stays, so
        :meth:`start` brings the group back."""
        effect: FaultEffect = Counter()
        for proc in reversed(self.processes):
            effect += proc.stop()
        return effect

    def kill(self) -> FaultEffect:
        """kill -9 of every process (one of them: its ``ManagedProcess``)."""
        effect: FaultEffect = Counter()
        for proc in self.processes:
            effect += proc.kill()
        return effect

    def _running(self, verb: str) -> list[ManagedProcess]:
        live = [proc for proc in self.processes if proc.alive]
        if not live:
            raise FaultError(f"{self.name}: cannot {verb}, nothing running")
        return live

    def pause(self) -> FaultEffect:
        """SIGSTOP every running process (one already dead stays dead)."""
        effect: FaultEffect = Counter()
        for proc in self._running("pause"):
            effect += proc.pause()
        return effect

    def resume(self) -> FaultEffect:
        """SIGCONT every running process after :meth:`pause`."""
        effect: FaultEffect = Counter()
        for proc in self._running("resume"):
            effect += proc.resume()
        return effect

    def restart(self, *, graceful: bool = True) -> FaultEffect:
        """Stop (or kill -9) everything, then :meth:`start` it again on the same ports and
        directories."""
        effect = self.stop() if graceful else self.kill()
        return effect + self.start()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
