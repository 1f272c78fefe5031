"""One relay in a process of its own on embedded stores (memory or SQLite), for a harness that
must not share a core's event loop with it: the sharded fleet (issue 16 item 6, a 10,000-device
fleet whose relay CPU is measured apart from the harness's, docs/simulator.md "Benchmark").

Why not :class:`~semafore.deploy.workers.WorkerPool` or
:class:`~semafore.deploy.replicas.ReplicaSet`: both exist to run *several* relays on shared
backends and refuse embedded stores (memory is per process). This is the one-process case:
the child builds the stores itself, serves through the relay's foreground launcher
(:func:`~semafore.deploy.foreground.serve_until_signalled`, the one uvicorn configuration)
on a loopback socket it binds, and reports its port once uvicorn accepts connections. The
parent knows the child's pid, so it can read the relay's CPU time from ``/proc``.

``sabotage`` (TEST ONLY, :mod:`semafore.sabotage`) names deliberate relay defects switched on
in the child for its whole life: how a test proves a harness check goes red when the relay
loses envelopes. It is a code-level argument, never an environment variable or setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

from semafore import sabotage as sabotages
from semafore.deploy.errors import RelayStartError
from semafore.deploy.foreground import serve_until_signalled
from semafore.deploy.listener import bind_loopback
from semafore.server.app import create_app
from semafore.server.oplog import configure_logging
from semafore.server.settings import Settings
from semafore.storage import open_stores

_PR_SET_PDEATHSIG = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat`` fields 14
    and 15); 0.0 where there is no ``/proc`` or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class RelayProcess:
    """The relay with ``settings`` on ``store`` (``memory`` or ``sqlite:PATH``) in a spawned
    child process on a free 127.0.0.1 port; a context manager (SIGTERM on exit, SIGKILL after
    ``stop_timeout``). If the parent dies first the kernel SIGKILLs the child
    (``PR_SET_PDEATHSIG``): a graceful shutdown would close ten thousand sockets for nobody,
    and there is no one left to stop it if that stalls (measured: a relay that outlived a killed
    10,000-device benchmark was still shutting down 10 minutes later)."""

    def __init__(
        self,
        settings: Settings,
        store: str = "memory",
        *,
        sabotage: tuple[str, ...] = (),
        log_level: int = logging.WARNING,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
    ) -> None:
        for name in sabotage:
            sabotages.by_name(name)  # an unknown name is refused here, not in the child
        self.settings = settings
        self.store = store
        self.sabotage = sabotage
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self._process: SpawnProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None or self._process.pid is None:
            raise RelayStartError("relay", "not started")
        return self._process.pid

    def cpu_seconds(self) -> float:
        """The relay process's CPU time so far (user + system)."""
        return process_cpu_seconds(self.pid)

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> RelayProcess:
        """Spawn the child and return once it serves; :class:`RelayStartError` otherwise."""
        context = multiprocessing.get_context("spawn")
        ready, child_end = context.Pipe(duplex=False)
        self._process = context.Process(
            target=run_relay,
            args=(self.settings, self.store, self.sabotage, self.log_level, child_end),
            name="semafore-relay",
            daemon=False,
        )
        self._process.start()
        child_end.close()
        try:
            if not ready.poll(self.startup_timeout):
                raise RelayStartError("relay", f"not serving within {self.startup_timeout:g} s")
            try:
                kind, detail = ready.recv()
            except EOFError:
                self._process.join(5)
                raise RelayStartError("relay", f"exited with code {self._process.exitcode} "
                                      "before serving") from None
            if kind != "ready":
                raise RelayStartError("relay", f"start-up failed: {detail}")
            self.port = int(detail)
        except BaseException:
            self.stop()
            raise
        finally:
            ready.close()
        return self

    def stop(self) -> None:
        """SIGTERM once (uvicorn's graceful shutdown), SIGKILL what is left after
        ``stop_timeout``."""
        process = self._process
        if process is None:
            return
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        process.join(self.stop_timeout)
        if process.is_alive():
            process.kill()
            process.join(5)

    def __enter__(self) -> RelayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _killed_with_parent() -> None:
    """Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; a no-op where ``prctl`` does not exist."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run_relay(settings: Settings, store: str, sabotage: tuple[str, ...], log_level: int,
              ready: Connection) -> None:
    """The child's entry point: serve until SIGTERM, reporting ``("ready", port)`` once
    uvicorn accepts connections, or ``("failed", reason)``."""
    _killed_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn re-raises it after shutdown
    configure_logging(sys.stderr, log_level, settings.log_hash)
    sock = bind_loopback(0)
    port = int(sock.getsockname()[1])

    def announce() -> None:
        ready.send(("ready", port))
        ready.close()

    try:
        with sabotages.switched_on(*sabotage):
            app = create_app(settings, open_stores(store))
            asyncio.run(serve_until_signalled(app, settings, sock, on_serving=announce))
    except Exception as exc:
        with contextlib.suppress(OSError, ValueError):
            ready.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        sock.close()
