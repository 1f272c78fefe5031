"""A relay as the foreground of its own process, until SIGINT or SIGTERM: what a relay
*process* runs (a replica of :mod:`semafore.deploy.replicas`, a worker of ``semafore serve
--workers``, ``semafore serve`` itself, a test's leaky relay), as opposed to a relay that is
one task or thread of a harness (:mod:`semafore.deploy.inprocess`). Issue 14 item 1: each of
these had called uvicorn its own way, two of them with uvicorn's default WebSocket limits
(16 MiB frames, per-message deflate on) instead of the relay's.

Always the relay's one uvicorn configuration (:func:`semafore.server.serving.uvicorn_config`),
on a socket the caller bound (so the caller prints or reports the port before serving), with
uvicorn's signal handling: the first SIGINT/SIGTERM stops accepting, closes WebSockets with
1012, finishes in-flight requests and runs the app's shutdown hooks.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

from semafore.deploy.errors import RelayStartError
from semafore.server.serving import uvicorn_config
from semafore.server.settings import Settings


async def serve_until_signalled(
    app: ASGIApp, settings: Settings, sock: socket.socket,
    *, on_serving: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` (built with ``settings``) on ``sock`` until this process is signalled.

    ``on_serving`` is called once, when uvicorn accepts connections (a worker reports ready
    to its parent then). Raises :class:`RelayStartError` if uvicorn stops without ever
    serving (its lifespan start-up failed, e.g. the stores could not be opened: uvicorn
    would ``sys.exit(3)`` from inside the event loop instead)."""
    server = uvicorn.Server(uvicorn_config(app, settings))

    async def announce(notify: Callable[[], None]) -> None:
        while not server.started:
            await asyncio.sleep(0.02)
        notify()

    announcer = asyncio.create_task(announce(on_serving)) if on_serving is not None else None
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        if server.started:
            raise
        raise RelayStartError("relay", f"start-up failed (uvicorn exit {exc.code})") from None
    finally:
        if announcer is not None:
            announcer.cancel()
    if not server.started:
        raise RelayStartError("relay", "uvicorn stopped before serving")


def run_until_signalled(app: ASGIApp, settings: Settings, sock: socket.socket) -> None:
    """:func:`serve_until_signalled` for a synchronous ``main`` (its own event loop)."""
    asyncio.run(serve_until_signalled(app, settings, sock))
