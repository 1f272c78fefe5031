"""The device WebSocket: push of queued envelopes, acks, and sends over one connection.

Frames are JSON text (docs/server.md "WebSocket"):

- server → device: ``{"type": "envelope", <EnvelopeOut fields>}``, oldest first; first the
  queue backlog, then every envelope enqueued while connected. A client that connects with
  ``?batch=N`` (1–64) instead gets ``{"type": "envelopes", "envelopes": [...]}`` frames
  carrying whatever is ready, up to N each, and several ready replies as one
  ``{"type": "batch", "frames": [...]}``: fewer frames for a busy device.
- device → server: ``{"type": "ack", "delivery_ids": [...]}`` → ``{"type": "acked",
  "delivery_ids": [...]}`` naming those deleted (clients and load tests time acks by it);
  ``{"type": "send", "request_id", "user_id", "message": <SendRequest>}`` →
  ``{"type": "response", "request_id", "status", "body"}`` with the same body and status
  the HTTP ``PUT /v1/messages/{user_id}`` would give.
- device → server: ``{"type": "watch_queue", "request_id"}`` → ``{"type": "queue_empty",
  "request_id"}`` once this device's stored queue holds nothing (at once if it already is
  empty, else after the ack that empties it): how a test harness waits for "everything
  queued for me arrived" without sleeping (docs/pytest-plugin.md). A client that never sends
  it never sees it; a relay that predates it answers ``invalid_frame`` naming ``type``.

One writer task owns the socket's send side; the reader hands it responses, so frames never
interleave. Envelopes stay queued until acked: a dropped socket loses nothing.

Overlapping sends (issue #16 item 4, :mod:`semafore.server.send_order`): on a store whose
sends wait on a round trip and apply in the order started (``QueueStore.pipelines_sends``:
Redis on one server or behind Sentinel), a ``send`` runs as its own task as soon as it is read,
up to ``MAX_SENDS_IN_FLIGHT`` per socket; their store calls still start in frame order, and
every reply (``response``, ``acked``, ``error``, ``queue_empty``) still leaves in the order of
the frames it answers. On other stores each send is awaited before the next frame is read.

Bounded resources (issue 13 F-5, docs/server.md "Limits"): a device holds at most
``Settings.max_sockets_per_device`` sockets (a newer one closes the oldest with 4409); each
socket has at most ``BACKLOG_PAGE`` envelopes and ``Settings.ws_window_bytes`` of bodies
pushed and not yet acked (the rest wait in the store, pulled on acks); the hub's outbox is
bounded too (``push.PushOutbox``); frames are built one at a time as the transport takes
them; and a socket that cannot take a frame, or leaves a full window unacked while more is
waiting, for ``Settings.ws_stall_timeout`` seconds is closed with 4408 (slow consumer).

The session behind a socket is re-checked (token expiry, token family revoked: ADR-0163) on
inbound frames and by a watchdog while the socket is idle, at most every
``Settings.session_recheck`` seconds, so a push-only socket ends when its token does and a
busy socket costs no store read per frame. Logout, device removal and refresh-token reuse
close the device's sockets at once through the push hub.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import dataclasses
import json
import logging
import time
from typing import Any

import orjson
from fastapi import WebSocket, WebSocketDisconnect

from semafore import sabotage
from semafore.server import models as m
from semafore.server.errors import ApiError
from semafore.server.frames import FrameError, parse_ack, parse_send_message
from semafore.server.oplog import event
from semafore.server.push import REFILL, Connection
from semafore.server.relay import Relay
from semafore.server.send_order import SendOrder, Turn
from semafore.server.tokens import Principal
from semafore.storage.ports import QueuedEnvelope

BACKLOG_PAGE = 256  # envelopes fetched per refill, and the most in flight on one socket
MAX_SENDS_IN_FLIGHT = 32
"""Sends of one socket running at once when they overlap; the reader waits for one to end
before reading on (measured: 4 sockets reach the throughput 32 sequential ones had)."""
MAX_PUSH_BATCH = 64
CLOSE_BAD_REQUEST = 4400
CLOSE_AUTH = 4401
CLOSE_SLOW_CONSUMER = 4408
CLOSE_REPLACED = 4409
CLOSE_WAIT = 5.0
"""Seconds a close may take to be handed to the server (RelayWebSocketProtocol writes it at
once; another ASGI server might wait for its buffer)."""
_b64 = binascii.b2a_base64


def _envelope_dict(env: QueuedEnvelope) -> dict[str, Any]:
    """``models.EnvelopeOut`` as a dict (standard base64, as ``models.b64encode``), built
    directly: this runs once per pushed envelope."""
    return {
        "delivery_id": env.delivery_id,
        "message_id": env.message_id,
        "kind": env.kind,
        "sender_user_id": env.sender_user_id,
        "sender_device_id": env.sender_device_id,
        "body": _b64(env.body, newline=False).decode("ascii"),
        "envelope_hash": _b64(env.envelope_hash, newline=False).decode("ascii"),
        "received_at": env.received_at,
    }


def _compact(frame: dict[str, Any]) -> str:
    """Compact JSON text, encoded once per frame (orjson: same output as
    ``json.dumps(separators=(",", ":"), ensure_ascii=False)``)."""
    try:
        return orjson.dumps(frame).decode()
    except orjson.JSONEncodeError:  # an echoed request_id beyond 64 bits
        return json.dumps(frame, separators=(",", ":"))


def _frames(batch: list[dict[str, Any]], batched: bool) -> list[str]:
    """One ``envelope`` frame each, or one ``envelopes`` frame for the lot (opt-in)."""
    if batched:
        return [_compact({"type": "envelopes", "envelopes": batch})]
    return [_compact({"type": "envelope", **e}) for e in batch]


def _parse_frame(text: str) -> Any:
    """orjson for speed; the stdlib parser for what orjson refuses but JSON allows
    (integers beyond 64 bits), so such values still get a field-named error later.

    Nesting deeper than :data:`MAX_FRAME_DEPTH` is refused before either parser sees it
    (issue 13 F-10: the stdlib parser recursed into a ``RecursionError`` that killed the
    socket); every failure is a ``ValueError`` the reader answers with a typed error."""
    if _too_deep(text):
        raise ValueError(f"frame nested deeper than {MAX_FRAME_DEPTH}")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


MAX_FRAME_DEPTH = 32
"""Deepest bracket nesting a frame may have; a ``send`` frame needs 4."""


def _too_deep(text: str) -> bool:
    """Whether brackets nest deeper than :data:`MAX_FRAME_DEPTH` (outside strings), in one
    pass without parsing: cheap for the usual shallow frame."""
    if text.count("[") + text.count("{") <= MAX_FRAME_DEPTH:
        return False
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_FRAME_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


@dataclasses.dataclass
class _Slot:
    """One frame's place in the socket's reply order; ready once its reply (or None) is in."""

    ready: bool = False
    frame: dict[str, Any] | None = None


class DeviceSocket:
    def __init__(self, relay: Relay, ws: WebSocket, principal: Principal, batch: int = 0) -> None:
        self.relay = relay
        self.batch = batch  # 0: one "envelope" frame each; N: up to N per "envelopes" frame
        self.ws = ws
        self.principal = principal
        self.conn = Connection(principal.user_id, principal.device_id)
        self.inflight: dict[str, int] = {}  # delivery id -> body bytes, pushed and not acked
        self.inflight_bytes = 0
        self.window_bytes = relay.settings.ws_window_bytes
        self.more_backlog = False  # envelopes wait in the store that this socket has not sent
        self.ip = ws.client.host if ws.client else None
        self.recheck = relay.settings.session_recheck
        self.stall_timeout = relay.settings.ws_stall_timeout
        self.checked_at = time.monotonic()  # the token was verified just before accept
        self.sending_since: float | None = None  # a frame waits for the transport since
        self.stalled_since: float | None = None  # a full window holds back envelopes since
        self.writer: asyncio.Task[None] | None = None
        self.closed = False
        self.queue_watchers: list[str | int | None] = []  # watch_queue requests not answered
        self.overlap = relay.stores.queues.pipelines_sends  # sends as tasks (module docstring)
        self.order = SendOrder()
        self.sends: set[asyncio.Task[None]] = set()
        self.slots: collections.deque[_Slot] = collections.deque()
        self.failure: BaseException | None = None  # a send's unexpected error ends the socket
        self.reader: asyncio.Task[Any] | None = None

    async def run(self) -> None:
        hub = self.relay.hub
        hub.register(self.conn)
        p = self.principal
        cap = self.relay.settings.max_sockets_per_device
        if sabotage.active("relay.socket_cap_off"):  # TEST ONLY (semafore.sabotage)
            cap = 2**31  # every socket of a device is kept, however many
        for old in hub.device_connections(p.user_id, p.device_id)[:-cap]:
            event("websocket_replaced", org_id=p.org_id, device_id=p.device_id)
            old.evict(CLOSE_REPLACED)
        self.writer = asyncio.create_task(self._writer())
        helpers = [asyncio.create_task(self._watchdog()), asyncio.create_task(self._evictor())]
        reader = self.reader = asyncio.current_task()
        try:
            try:
                await self._reader()
            except WebSocketDisconnect:
                pass
            except asyncio.CancelledError:
                if self.failure is None or reader is None:  # cancelled from outside
                    raise
                reader.uncancel()  # cancelled by a failed send: its error ends the socket
                raise self.failure from None
            self.reader = None  # the reader is done: a failing send no longer cancels it
            if self.sends:  # sends already read finish and are answered, as before
                await asyncio.gather(*self.sends, return_exceptions=True)
            if self.failure is not None:
                raise self.failure
        finally:
            self.reader = None
            hub.unregister(self.conn)
            tasks = [self.writer, *helpers, *self.sends]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _recheck_due(self) -> bool:
        """Whether the token expired (a clock comparison, every time) or the store must be
        asked again (at most every ``recheck`` seconds): the per-frame part, no await."""
        return (
            self.principal.expires_at <= self.relay.now()
            or time.monotonic() - self.checked_at >= self.recheck
        )

    async def _session_ended(self) -> bool:
        """Whether the token expired or its family was revoked; the store is read at most
        every ``recheck`` seconds (expiry is a clock comparison, checked every time)."""
        if self.principal.expires_at <= self.relay.now():
            return True
        now = time.monotonic()
        if now - self.checked_at < self.recheck:
            return False
        self.checked_at = now
        return await self.relay.family_revoked(self.principal)

    def _stalled(self) -> bool:
        """A frame has waited for the transport, or a full window has held envelopes back
        with no ack, for ``stall_timeout`` seconds: the device is not consuming."""
        now = time.monotonic()
        return any(
            since is not None and now - since >= self.stall_timeout
            for since in (self.sending_since, self.stalled_since)
        )

    async def _watchdog(self) -> None:
        """End an idle socket whose session ended (a push-only device sends nothing), and a
        socket whose device does not consume what it is sent (slow consumer)."""
        while True:
            await asyncio.sleep(min(self.recheck, self.stall_timeout / 2))
            if self._stalled():
                p = self.principal
                event("websocket_slow_consumer", logging.WARNING, org_id=p.org_id,
                      device_id=p.device_id, inflight=len(self.inflight))
                await self._shut(CLOSE_SLOW_CONSUMER, "slow consumer")
                return
            if await self._session_ended():
                self.conn.close()  # the writer flushes, then closes with CLOSE_AUTH
                return

    async def _evictor(self) -> None:
        """Close at once when a newer socket of this device takes this one's place."""
        await self.conn.evicted.wait()
        await self._shut(self.conn.evict_code, "replaced by a newer socket of this device")

    async def _shut(self, code: int, reason: str) -> None:
        """Close now with ``code``, even while the writer waits on the transport: the writer
        is cancelled (a frame not yet written is simply not sent; its envelope stays queued)."""
        if self.closed:
            return
        self.closed = True
        if self.writer is not None and self.writer is not asyncio.current_task():
            self.writer.cancel()
        with contextlib.suppress(RuntimeError, OSError, TimeoutError, WebSocketDisconnect):
            await asyncio.wait_for(self.ws.close(code=code, reason=reason), CLOSE_WAIT)

    def _has_room(self) -> bool:
        """Whether the unacked window takes one more envelope (one always fits when
        nothing is in flight, however large)."""
        return len(self.inflight) < BACKLOG_PAGE and self.inflight_bytes < self.window_bytes

    def _take(self, env: QueuedEnvelope, ready: list[QueuedEnvelope]) -> None:
        """Put ``env`` on its way if the window has room; else it waits in the store."""
        if env.delivery_id in self.inflight:
            return
        if not self._has_room():
            self.more_backlog = True
            if self.stalled_since is None:
                self.stalled_since = time.monotonic()
            return
        self.inflight[env.delivery_id] = len(env.body)
        self.inflight_bytes += len(env.body)
        ready.append(env)

    async def _refill(self) -> None:
        """Send queued envelopes not yet in flight (the backlog), as the window allows."""
        p = self.principal
        page = await self.relay.stores.queues.fetch(
            p.user_id, p.device_id, len(self.inflight) + BACKLOG_PAGE
        )
        self.more_backlog = len(page) == len(self.inflight) + BACKLOG_PAGE
        ready: list[QueuedEnvelope] = []
        for env in page:
            self._take(env, ready)
        del page  # hold only what is being sent while the transport may be slow
        await self._push(ready)

    async def _send(self, text: str) -> None:
        """One frame to the transport; how long it waits is what the watchdog times."""
        self.sending_since = time.monotonic()
        try:
            await self.ws.send_text(text)
        finally:
            self.sending_since = None

    async def _push(self, ready: list[QueuedEnvelope]) -> None:
        """Frames built one at a time as the transport takes them (never a page of
        encoded frames at once)."""
        step = self.batch or 1
        for start in range(0, len(ready), step):
            chunk = [_envelope_dict(env) for env in ready[start : start + step]]
            for frame in _frames(chunk, self.batch > 0):
                await self._send(frame)
        if ready and sabotage.active("relay.delete_on_push"):  # TEST ONLY (semafore.sabotage)
            await self.relay.ack(self.principal, [e.delivery_id for e in ready])

    async def _writer(self) -> None:
        """The only sender on the socket; frame order is the order things became ready.

        With batching on, consecutive ready envelopes share ``envelopes`` frames (up to
        ``batch`` each) and consecutive replies share one ``batch`` frame."""
        await self._refill()
        outbox = self.conn.outbox
        ready: list[QueuedEnvelope] = []
        replies: list[dict[str, Any]] = []

        async def flush_replies() -> None:
            if self.batch and len(replies) > 1:
                await self._send(_compact({"type": "batch", "frames": replies}))
            else:
                for reply in replies:
                    await self._send(_compact(reply))
            replies.clear()

        async def flush_envelopes() -> None:
            await self._push(ready)
            ready.clear()

        while True:
            item = await outbox.get()
            while True:
                if item is None:  # device removed, session ended or server closing
                    await flush_envelopes()
                    await flush_replies()
                    self.closed = True
                    await self.ws.close(code=CLOSE_AUTH)
                    return
                if isinstance(item, QueuedEnvelope):
                    if item.delivery_id not in self.inflight:
                        if replies:
                            await flush_replies()
                        self._take(item, ready)
                elif isinstance(item, dict):
                    if ready:
                        await flush_envelopes()
                    replies.append(item)
                else:  # "refill"
                    await flush_envelopes()
                    await flush_replies()
                    await self._refill()
                if outbox.empty():
                    break
                item = outbox.get_nowait()
            if ready:
                await flush_envelopes()
            if replies:
                await flush_replies()

    def _reply(self, frame: dict[str, Any]) -> None:
        """Hand ``frame`` to the writer, behind the replies of earlier frames still running."""
        if self.slots:
            self._fill(self._slot(), frame)
        else:
            self.conn.outbox.put_nowait(frame)

    def _slot(self) -> _Slot:
        """A place in the reply order for a frame whose reply is not ready yet."""
        slot = _Slot()
        self.slots.append(slot)
        return slot

    def _fill(self, slot: _Slot, frame: dict[str, Any] | None) -> None:
        """Put ``frame`` (None: no reply, its send failed) in its slot; hand the writer every
        reply at the head of the order that is ready."""
        slot.ready, slot.frame = True, frame
        while self.slots and self.slots[0].ready:
            reply = self.slots.popleft().frame
            if reply is not None:
                self.conn.outbox.put_nowait(reply)

    async def _receive_text(self) -> str | None:
        """The next text frame; None for a binary frame (answered with a typed error: the
        protocol is JSON text, issue 13 F-10). Raises WebSocketDisconnect at the end."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        text = message.get("text")
        if text is None:
            self._reply(
                {
                    "type": "error",
                    "error": "binary_frame",
                    "field": None,
                    "detail": "frames are JSON text; binary frames are not read",
                }
            )
        return text

    async def _reader(self) -> None:
        while True:
            text = await self._receive_text()
            if self._recheck_due() and await self._session_ended():
                await self.ws.close(code=CLOSE_AUTH, reason="session ended")
                return
            if text is None:
                continue
            try:
                frame = _parse_frame(text)
                if not isinstance(frame, dict):
                    raise ValueError("frame must be a JSON object")
            except (ValueError, RecursionError):
                self._reply(
                    {
                        "type": "error",
                        "error": "invalid_frame",
                        "field": None,
                        "detail": "not a JSON object (or nested too deep)",
                    }
                )
                continue
            kind = frame.get("type")
            if kind == "ack":
                await self._on_ack(frame)
            elif kind == "send":
                if self.overlap:
                    await self._start_send(frame)
                else:
                    self._reply(await self._on_send(frame))
            elif kind == "watch_queue":
                self.queue_watchers.append(_request_id(frame))
                await self._answer_queue_watchers()
            else:
                self._reply(
                    {
                        "type": "error",
                        "error": "invalid_frame",
                        "field": "type",
                        "detail": "type must be 'ack', 'send' or 'watch_queue'",
                    }
                )

    async def _on_ack(self, frame: dict[str, Any]) -> None:
        try:
            delivery_ids = parse_ack(frame.get("delivery_ids"))
        except FrameError as exc:
            self._reply(
                {
                    "type": "error",
                    "error": "invalid_request",
                    "field": exc.field,
                    "detail": exc.detail,
                }
            )
            return
        acked = await self.relay.ack(self.principal, delivery_ids)
        freed = [self.inflight.pop(i) for i in delivery_ids if i in self.inflight]
        if freed:
            self.inflight_bytes -= sum(freed)
            self.stalled_since = None  # the device consumes: progress
        self._reply({"type": "acked", "delivery_ids": acked})
        if (
            self.more_backlog
            and len(self.inflight) < BACKLOG_PAGE // 2
            and self.inflight_bytes < self.window_bytes // 2
        ):
            self.conn.outbox.put_nowait(REFILL)
        if self.queue_watchers:
            await self._answer_queue_watchers()

    async def _answer_queue_watchers(self) -> None:
        """Answer every pending ``watch_queue`` once the device's stored queue is empty.

        The store is the truth (envelopes stay queued until acked, whichever socket they
        were pushed on), so "empty" means every envelope accepted for this device before
        the watch was read has been acked: the answer follows the ``acked`` reply of the
        ack that emptied it, in the same outbox, so the device has processed them all."""
        p = self.principal
        if await self.relay.stores.queues.count(p.user_id, p.device_id):
            return
        for request_id in self.queue_watchers:
            self._reply({"type": "queue_empty", "request_id": request_id})
        self.queue_watchers.clear()

    async def _start_send(self, frame: dict[str, Any]) -> None:
        """Run the send as its own task, in its turn and reply slot; wait while the socket
        already has ``MAX_SENDS_IN_FLIGHT`` running."""
        task = asyncio.create_task(self._send_in_turn(frame, self.order.turn(), self._slot()))
        self.sends.add(task)
        task.add_done_callback(self._send_ended)
        if len(self.sends) >= MAX_SENDS_IN_FLIGHT:
            await asyncio.wait(list(self.sends), return_when=asyncio.FIRST_COMPLETED)

    async def _send_in_turn(
        self, frame: dict[str, Any], turn: Turn, slot: _Slot
    ) -> None:
        reply: dict[str, Any] | None = None
        try:
            reply = await self._on_send(frame, turn)
        finally:
            turn.passed()
            self._fill(slot, reply)

    def _send_ended(self, task: asyncio.Task[None]) -> None:
        self.sends.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if self.failure is None:  # what the reader would have raised, had it awaited the send
            self.failure = task.exception()
            if self.reader is not None:
                self.reader.cancel()

    async def _on_send(self, frame: dict[str, Any], turn: Turn | None = None) -> dict[str, Any]:
        request_id = _request_id(frame)
        status, body = 200, {}
        try:
            user_id = frame.get("user_id")
            if not isinstance(user_id, str) or not m.re_id.fullmatch(user_id):
                raise ApiError(422, "invalid_request", "user_id malformed", field="frame.user_id")
            try:
                message = parse_send_message(frame.get("message"))
            except FrameError as exc:
                raise ApiError(422, "invalid_request", exc.detail, field=exc.field) from exc
            entries = await self.relay.accept_message(
                self.principal, user_id, message.message_id, message.envelopes, self.ip, turn
            )
            body = {  # models.SendResponse, built directly: this is the per-envelope path
                "message_id": message.message_id,
                "deliveries": [
                    {"device_id": e.recipient_device_id, "delivery_id": e.delivery_id}
                    for e in entries
                ],
            }
        except ApiError as exc:
            status, body = exc.status, exc.body()
        return {"type": "response", "request_id": request_id, "status": status, "body": body}


def _request_id(frame: dict[str, Any]) -> str | int | None:
    """The frame's ``request_id`` to echo: a string or an integer, else None."""
    request_id = frame.get("request_id")
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        return None
    return request_id


async def device_websocket(ws: WebSocket) -> None:
    relay: Relay = ws.app.state.relay
    header = ws.headers.get("authorization", "")
    token = (
        header[7:] if header.lower().startswith("bearer ") else ws.query_params.get("access_token")
    )
    raw_batch = ws.query_params.get("batch", "0")
    batch = int(raw_batch) if raw_batch.isdigit() and len(raw_batch) <= 3 else -1
    # Refusals complete the handshake and then close with the documented code: a close
    # *before* accept is an HTTP 403 on a real socket, which no client can tell apart
    # (issue 13 F-14; only the in-process test client used to report the code).
    if not 0 <= batch <= MAX_PUSH_BATCH:
        await ws.accept()
        await ws.close(code=CLOSE_BAD_REQUEST, reason="batch must be 0..64")
        return
    try:
        principal = await relay.authenticate(token)
    except ApiError as exc:
        event("websocket_refused", error=exc.error)
        await ws.accept()
        await ws.close(code=CLOSE_AUTH, reason=exc.error)
        return
    await ws.accept()
    event(
        "websocket_open",
        org_id=principal.org_id,
        sub=principal.user_id,
        device_id=principal.device_id,
    )
    await DeviceSocket(relay, ws, principal, batch).run()
    event("websocket_closed", org_id=principal.org_id, device_id=principal.device_id)
