"""Run the relay on a free loopback port, in-process: for tests, the simulator, benchmarks.

``serve_in_thread`` runs uvicorn in a background thread with its own event loop (usable from
synchronous code); ``serve_in_task`` runs it as a task of the caller's loop. Both bind
127.0.0.1 only, and both stop the server on exit of the ``with`` block.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from semafore.server.app import create_app
from semafore.server.relay import Relay
from semafore.server.serving import uvicorn_config
from semafore.server.settings import Settings
from semafore.storage.ports import Stores

HOST = "127.0.0.1"


@dataclass(frozen=True)
class RunningServer:
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


def _bind(port: int = 0) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio enables TCP_NODELAY only on sockets whose proto says
    # TCP, and without it every keep-alive request stalls ~40 ms on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    return sock


def _server(app: FastAPI, **options: Any) -> uvicorn.Server:
    """uvicorn for the relay, configured by :func:`semafore.server.serving.uvicorn_config`;
    ``options`` override uvicorn settings."""
    settings: Settings = app.state.relay.settings
    return uvicorn.Server(uvicorn_config(app, settings, **options))


@contextlib.contextmanager
def serve_in_thread(
    settings: Settings, stores: Stores, port: int = 0, timeout: float = 10.0
) -> Iterator[RunningServer]:
    app = create_app(settings, stores)
    server = _server(app)
    sock = _bind(port)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="semafore-relay", daemon=True
    )
    thread.start()
    waited = 0.0
    while not server.started and thread.is_alive() and waited < timeout:
        threading.Event().wait(0.01)
        waited += 0.01
    if not server.started:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
        raise RuntimeError("relay did not start")
    try:
        yield RunningServer(HOST, sock.getsockname()[1], app)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


@contextlib.asynccontextmanager
async def serve_in_task(
    settings: Settings, stores: Stores, port: int = 0, timeout: float = 10.0, **options: Any
) -> AsyncIterator[RunningServer]:
    """The relay in this event loop on 127.0.0.1; ``options`` go to uvicorn."""
    app = create_app(settings, stores)
    server = _server(app, **options)
    sock = _bind(port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not server.started and not task.done() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()
        raise RuntimeError("relay did not start")
    try:
        yield RunningServer(HOST, sock.getsockname()[1], app)
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()
