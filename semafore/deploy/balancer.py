"""HAProxy (Debian's ``haproxy`` package) in front of relay workers: ``semafore serve --workers N
--balancer haproxy`` (issue 16 item 3, docs/capacity.md "serve --workers").

Why a proxy when the kernel can spread connections itself (``SO_REUSEPORT``, the default of
:mod:`semafore.deploy.workers`): the kernel hashes each connection once and never looks
again, so a worker that dies takes the connections queued on its socket with it (they are
reset), and long-lived WebSockets stay wherever the hash put them. HAProxy instead

- sends each new connection to the worker with the fewest (``balance leastconn``: WebSockets
  are long-lived, so "fewest open" is the load that matters);
- health-checks every worker on ``/v1/health`` and stops sending to one that fails, and
  re-dispatches a connection a dead worker refused to another (``option redispatch``), so
  clients see no error while the parent restarts the worker;
- adds ``X-Forwarded-For`` (after deleting whatever the client sent), which uvicorn trusts
  from 127.0.0.1 (its ``forwarded_allow_ips`` default): the relay's per-address rate limits
  and logs still see the client, not the proxy.

The parent binds the public socket itself and hands it to HAProxy as an inherited descriptor
(``bind fd@N``), so ``--port 0`` resolves before anything starts and the port is never free
for a moment. HAProxy runs in the foreground (``-db``) as the parent's child, with the
configuration :func:`haproxy_config` renders into a private directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from semafore.deploy.errors import InfraError, SettingsError

BALANCERS = ("kernel", "haproxy")
"""How connections to the one public port reach the workers: ``kernel`` (``SO_REUSEPORT``,
no proxy) or ``haproxy`` (this module)."""

HEALTH_PATH = "/v1/health"

_PR_SET_PDEATHSIG = 1


def terminate_with_parent() -> None:
    """In a child of the ``serve`` parent: have the kernel send it SIGTERM when the parent
    dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``), so no worker or HAProxy outlives it
    holding the port. A no-op where ``prctl`` does not exist."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class BalancerError(InfraError):
    """The load balancer process failed to start or exited; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"balancer: {reason}")
        self.reason = reason


def haproxy_binary() -> str:
    """The ``haproxy`` executable (``/usr/sbin`` is searched too: it is not on every PATH)."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise SettingsError("balancer", "haproxy is not installed (Debian: apt-get install "
                            "haproxy), or use --balancer kernel")
    return found


def max_proxied_connections(cap: int = 20000) -> int:
    """HAProxy's ``maxconn``: each proxied connection holds two descriptors (client and
    worker), so at most half the descriptors this process may raise its limit to, less a
    reserve; HAProxy refuses to start when ``maxconn`` needs more than the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return cap
    return max(1, min(cap, (hard - 64) // 2))


def haproxy_config(listen_fd: int, workers: list[tuple[str, int]], *,
                   max_connections: int | None = None) -> str:
    """HAProxy's configuration: one HTTP frontend on inherited descriptor ``listen_fd``, one
    backend of ``workers`` (host, port), balanced by least connections, health-checked."""
    if max_connections is None:
        max_connections = max_proxied_connections()
    servers = "\n".join(
        f"    server worker-{i} {host}:{port} check inter 2s fall 2 rise 1"
        for i, (host, port) in enumerate(workers)
    )
    return f"""global
    maxconn {max_connections}

defaults
    mode http
    option redispatch
    retries 3
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-request 15s

frontend relay
    bind fd@{listen_fd}
    http-request del-header X-Forwarded-For
    option forwardfor
    default_backend workers

backend workers
    balance leastconn
    option httpchk GET {HEALTH_PATH}
    http-check expect status 200
{servers}
"""


class HaproxyBalancer:
    """One HAProxy process serving ``listen_fd`` in front of ``workers``."""

    def __init__(self, listen_fd: int, workers: list[tuple[str, int]]) -> None:
        self.binary = haproxy_binary()
        self.listen_fd = listen_fd
        self.workers = workers
        self._dir = tempfile.TemporaryDirectory(prefix="semafore-haproxy-")
        self.config_path = Path(self._dir.name) / "haproxy.cfg"
        self.process: subprocess.Popen[bytes] | None = None
        self.pidfd: int | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        """Write the configuration, check it (``haproxy -c``) and start HAProxy."""
        self.config_path.write_text(haproxy_config(self.listen_fd, self.workers))
        check = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config_path)], check=False,
            capture_output=True, text=True, timeout=30, pass_fds=[self.listen_fd],
        )
        if check.returncode != 0:
            raise BalancerError(f"haproxy rejected its configuration: {check.stderr.strip()}")
        self.process = subprocess.Popen(
            [self.binary, "-db", "-f", str(self.config_path)], pass_fds=[self.listen_fd],
            stdin=subprocess.DEVNULL, start_new_session=True,
            # the serve parent starts HAProxy from its main thread, before any other thread
            preexec_fn=terminate_with_parent,  # noqa: PLW1509
        )
        self.pidfd = os.pidfd_open(self.process.pid)

    def exit_reason(self) -> str:
        assert self.process is not None
        return f"haproxy pid {self.process.pid} exited with code {self.process.wait(5)}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # hard stop: the workers stop next
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self._dir.cleanup()
