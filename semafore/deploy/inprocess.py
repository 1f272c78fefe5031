"""A relay in this process on a loopback port: for tests, the simulator, the live gate, load
tests on ``embedded`` (issue 14 item 1: the one in-process launcher).

``serve_in_thread`` runs uvicorn in a background thread with its own event loop (usable from
synchronous code); ``serve_in_task`` runs it as a task of the caller's loop. Both bind
loopback only (:func:`semafore.deploy.listener.bind_loopback`), serve the relay's one uvicorn
configuration (:func:`semafore.server.serving.uvicorn_config`: limits come from ``Settings``,
never from the launcher) and stop the server on exit of the ``with`` block::

    with serve_in_thread(settings, stores) as running:
        httpx.get(running.url + "/v1/health")

:func:`start_in_loop` is the step both the task launcher and the simulator's replicas
(:mod:`semafore.deploy.inprocess_replicas`) start a server with.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from semafore.deploy.errors import RelayStartError
from semafore.deploy.listener import LOOPBACK, bind_loopback
from semafore.server.app import create_app
from semafore.server.push import PushPort
from semafore.server.relay import Relay
from semafore.server.serving import uvicorn_config
from semafore.server.settings import Settings
from semafore.storage.ports import Stores


@dataclass(frozen=True)
class RunningRelay:
    """A relay serving on ``host:port``; ``app`` is its ASGI app (``relay``: its state)."""

    host: str
    port: int
    app: FastAPI

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/websocket"

    @property
    def relay(self) -> Relay:
        relay: Relay = self.app.state.relay
        return relay


async def start_in_loop(
    app: FastAPI, sock: socket.socket, *, name: str = "relay", timeout: float = 10.0
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve ``app`` on ``sock`` as a task of the running loop; return once it is serving.

    ``Server._serve``, not ``serve``: ``serve`` swaps the process's signal handlers, and a
    relay that is one task among many (N replicas starting and stopping in any order, a
    simulator's fleet) must leave the process's Ctrl-C to the process. Raises
    :class:`RelayStartError` naming ``name`` if it does not start within ``timeout``."""
    settings: Settings = app.state.relay.settings
    server = uvicorn.Server(uvicorn_config(app, settings))
    task = asyncio.create_task(server._serve(sockets=[sock]), name=name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not server.started and not task.done() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        raise RelayStartError(name, f"not serving within {timeout:g} s")
    return server, task


@contextlib.contextmanager
def serve_in_thread(
    settings: Settings, stores: Stores, port: int = 0, timeout: float = 10.0,
    *, host: str = LOOPBACK, push: PushPort | None = None,
) -> Iterator[RunningRelay]:
    """The relay on ``host:port`` in a thread of its own (its own event loop)."""
    app = create_app(settings, stores, push)
    server = uvicorn.Server(uvicorn_config(app, settings))
    sock = bind_loopback(port, host)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="semafore-relay", daemon=True
    )
    thread.start()
    started = threading.Event()
    waited = 0.0
    while not server.started and thread.is_alive() and waited < timeout:
        started.wait(0.01)
        waited += 0.01
    try:
        if not server.started:
            raise RelayStartError("relay", f"not serving within {timeout:g} s")
        yield RunningRelay(host, sock.getsockname()[1], app)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


@contextlib.asynccontextmanager
async def serve_in_task(
    settings: Settings, stores: Stores, port: int = 0, timeout: float = 10.0,
    *, host: str = LOOPBACK, push: PushPort | None = None,
) -> AsyncIterator[RunningRelay]:
    """The relay on ``host:port`` as a task of this event loop."""
    app = create_app(settings, stores, push)
    sock = bind_loopback(port, host)
    try:
        server, task = await start_in_loop(app, sock, timeout=timeout)
        try:
            yield RunningRelay(host, sock.getsockname()[1], app)
        finally:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
    finally:
        sock.close()
