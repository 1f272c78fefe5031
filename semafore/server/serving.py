"""The relay's uvicorn configuration: one function every launcher uses (issue 13 F-5, F-7;
issue 14 item 1).

``semafore serve`` and every launcher of :mod:`semafore.deploy` (in-process relays, in-process
replicas, replica processes on real backends) build their server with :func:`uvicorn_config`,
which takes no overrides, so the limits below hold wherever the relay runs. They come
from ``Settings`` (docs/server.md "Limits"); uvicorn's own settings are used where it has
them, two protocol subclasses add what it lacks:

- ``limit_concurrency`` and ``timeout_keep_alive`` (uvicorn), ``h11_max_incomplete_event_size``
  (h11: the largest request head, else a typed 400 ``malformed_http``);
- :class:`RelayH11Protocol`: refuses a connection beyond ``max_connections`` at once (typed
  503 with ``Retry-After``: a connection that has not sent a request still holds a file
  descriptor, which uvicorn's ``limit_concurrency`` never counts until a request arrives),
  and closes a connection whose request head has not arrived within ``header_timeout``
  (typed 408; uvicorn has no header timeout, and its keep-alive timer stops at the first
  byte of the next request, so a trickled head held a connection forever: slowloris);
- :class:`RelayWebSocketProtocol`: a close (slow consumer, eviction, logout) is written
  behind whatever is buffered without waiting for the buffer to drain, and a peer that does
  not finish the closing handshake within uvicorn's close timeout is aborted, not closed
  gracefully (a graceful close waits for a non-reading peer forever, holding the buffer).

The request *body* deadline is the ASGI guard :class:`semafore.server.app.BodyLimit`.
"""

from __future__ import annotations

import asyncio
import json
import resource
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from semafore import sabotage
from semafore.server.http_framing import TypedErrorH11Protocol
from semafore.server.settings import Settings

FD_RESERVE = 64
"""File descriptors kept free beside client connections (stores, logs, Redis, the listener):
``max_connections`` is clamped to the process's ``RLIMIT_NOFILE`` minus this, so the relay
refuses connections before ``accept`` fails with EMFILE (issue 13 F-7: 130 trickling
connections under a 128-descriptor limit took the relay down)."""


def _typed_response(status: int, reason: str, error: str, detail: str,
                    headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response with the API's error body, for
    answers written on the raw transport (before h11 has a request to answer)."""
    body = json.dumps({"error": error, "field": None, "detail": detail}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json",
            f"content-length: {len(body)}", "connection: close",
            *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def connection_cap(settings: Settings) -> int:
    """``settings.max_connections``, clamped below the process's file-descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(1, min(settings.max_connections, soft - FD_RESERVE))


class RelayH11Protocol(TypedErrorH11Protocol):
    """uvicorn's h11 protocol with a connection cap and a request-head deadline.

    Configured per server by :func:`uvicorn_config` (a subclass carrying the limits)."""

    max_connections: int = 1024
    header_timeout: float = 15.0

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_typed_response(
                503, "Service Unavailable", "too_many_connections",
                "the relay holds its maximum number of connections; retry later",
                (("retry-after", "1"),),
            ))
            transport.close()
            return
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            self._disarm_head_timer()
        elif self.conn.their_state is h11.IDLE:  # a request head is (still) incomplete
            self._arm_head_timer()
        else:  # the head arrived (the body, if any, is BodyLimit's to time)
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # uvicorn's keep-alive timer covers the idle wait
        self._disarm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if sabotage.active("relay.header_timeout_off"):  # TEST ONLY (semafore.sabotage)
            return  # request heads may trickle forever (slowloris)
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being written (pipelining): not idle
        self.transport.write(_typed_response(
            408, "Request Timeout", "request_timeout",
            f"request head not received within {self.header_timeout:g} s",
        ))
        self.transport.close()


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol whose closes never wait on a peer that does not read."""

    def _abort_later(self) -> None:
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)

    async def send(self, message: Any) -> None:
        closing = (
            message["type"] == "websocket.close"
            and self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
        )
        if not closing:
            await super().send(message)
            return
        # uvicorn would first wait until the transport's buffer drains, which a peer that
        # does not read never lets happen: write the close frame behind the buffered frames.
        if self.transport.is_closing():
            return
        code = message.get("code", 1000)
        reason = message.get("reason", "") or ""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        try:
            self.conn.send_close(code, reason)
        except InvalidState:
            return
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self._abort_later()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()  # fails the connection and closes it gracefully...
        self._abort_later()  # ...which a peer that reads nothing never completes


ACCEPT_BACKLOG_CAP = 4096
"""The deepest accept queue asked of the kernel (``somaxconn`` clamps it further): a
thousand simulated devices connecting at once fit; more pending connections than that would
wait longer in the queue than the relay's header timeout anyway."""


def accept_backlog(settings: Settings) -> int:
    """The listen backlog: as many pending connections as the relay would take at once
    (:func:`connection_cap`), at most :data:`ACCEPT_BACKLOG_CAP`. Derived, not passed: the
    simulator's fleet and a production relay differ only in ``max_connections``."""
    return min(connection_cap(settings), ACCEPT_BACKLOG_CAP)


def uvicorn_config(app: FastAPI | ASGIApp, settings: Settings) -> uvicorn.Config:
    """The relay's one uvicorn configuration: every limit comes from ``settings``, nothing
    from the caller (issue 14 item 1: five launchers had passed their own WebSocket limits,
    and they had drifted to 2 MiB without deflate here, 4 MiB with deflate in the fleet, and
    uvicorn's 16 MiB default in two more). A harness that needs other limits changes
    ``Settings`` (the harness's :func:`semafore.deploy.harness_relay.relay_settings` raises
    ``max_connections`` and ``keep_alive_timeout``), so what it tests is what ships.

    - ``ws_max_size`` is ``settings.max_json_bytes``: a WebSocket ``send`` frame is the same
      request as ``POST /v1/messages`` (docs/server.md "Limits"), so the same bound holds
      on both paths; the client accepts frames of up to 4 MiB (``semafore.client.client``).
    - per-message deflate is off: envelope bodies are ciphertext (SPEC §2, §3), which does
      not compress, and the client turns compression off so frames stay independent for
      the simulator's fault layer.

    Binding is the caller's (``serve(sockets=[...])``; :mod:`semafore.deploy.listener`)."""
    cap = connection_cap(settings)
    http = type("RelayH11Protocol", (RelayH11Protocol,), {
        "max_connections": cap, "header_timeout": settings.header_timeout,
    })
    return uvicorn.Config(
        app,
        log_config=None,  # our JSON logging (semafore.server.oplog) or the caller's
        access_log=False,  # raw paths carry identifiers; AccessLog logs route templates
        lifespan="on",
        http=http,  # typed framing errors, connection cap, header deadline
        ws=RelayWebSocketProtocol,
        ws_max_size=settings.max_json_bytes,
        ws_per_message_deflate=False,
        backlog=accept_backlog(settings),
        # uvicorn answers requests beyond this with 503; one above the accept cap so the
        # cap (typed) is what a client meets first, this still bounds concurrent tasks
        limit_concurrency=cap + 1,
        # uvicorn types it int but only hands it to loop.call_later: seconds, fractions kept
        timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
