"""A relay process's foreground (issue 14 item 1, semafore/deploy/foreground.py): it serves
until signalled and then stops cleanly, and a relay that never came up is an error naming it,
not a process that exits 0 having served nothing."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from semafore.deploy.errors import RelayStartError
from semafore.deploy.foreground import serve_until_signalled
from semafore.deploy.listener import bind_loopback
from semafore.server.settings import Settings

RELAY = """
import sys
from semafore.deploy.foreground import run_until_signalled
from semafore.deploy.listener import bind_loopback
from semafore.server.app import create_app
from semafore.server.settings import Settings
from semafore.storage.memory import memory_stores

settings = Settings(retention_interval=0)
sock = bind_loopback(0)
print(sock.getsockname()[1], flush=True)
run_until_signalled(create_app(settings, memory_stores()), settings, sock)
"""


def test_a_relay_process_serves_until_sigterm_then_exits_cleanly() -> None:
    proc = subprocess.Popen([sys.executable, "-c", RELAY], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/v1/health"
        status = None
        for _ in range(200):  # bounded: at most ~10 s for start-up
            with contextlib.suppress(httpx.HTTPError):
                status = httpx.get(url, timeout=1.0).status_code
                break
            time.sleep(0.05)
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@contextlib.asynccontextmanager
async def _failing_startup(_: Starlette) -> AsyncIterator[None]:
    raise RuntimeError("stores unreachable")
    yield  # pragma: no cover


@pytest.mark.anyio
async def test_a_relay_whose_start_up_fails_is_an_error_not_a_quiet_exit() -> None:
    sock = bind_loopback(0)
    try:
        with pytest.raises(RelayStartError, match="start-up failed"):
            await serve_until_signalled(Starlette(lifespan=_failing_startup), Settings(), sock)
    finally:
        sock.close()
