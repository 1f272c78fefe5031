"""Push port: which devices hold a live WebSocket, and waking them when envelopes arrive.

The queue in the store stays the source of truth (an envelope is deleted only on ack,
docs/server.md "Delivery"); a hub only shortcuts delivery to connected devices, so a lost
wake-up costs latency (the next refill or fetch), never an envelope. Two implementations of
:class:`PushPort`:

- :class:`PushHub` (in-process, the embedded default): one relay process, envelopes handed
  straight to the device's socket.
- ``semafore.deploy.redis_push.RedisPushHub`` (several replicas on one Redis, seed §3.4,
  docs/backends.md): a Redis adapter of this port, so it lives with the deployment code that
  wires relays to Redis, not here (issue 14 item 1). The relay itself never imports Redis.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from semafore.storage.ports import QueuedEnvelope

REFILL = "refill"  # outbox item: pull this device's queue from the store (websocket.py)
DROP = b"x"  # disconnect payload: the device was removed or its session ended
CHANGED = b"u"  # on the channel of (user, ""): the user's account facts changed
# (device ids are never empty, so that channel is no device's; account_cache.py)
# any other payload: the space-separated delivery ids newly queued for the device

PUSH_BUFFER = 64
"""Envelopes one socket's outbox holds at most (issue 13 F-5). Beyond that, a publish stands
them in with a single :data:`REFILL`: the store still holds every envelope, so the socket
pulls them when it is ready instead of the hub buffering them without bound."""

OutboxItem = QueuedEnvelope | dict[str, Any] | str | None


class PushOutbox(asyncio.Queue[OutboxItem]):
    """A socket's outbox whose envelopes are bounded: back-pressure towards the hub.

    Replies (dicts), refills and the close marker always go in (the socket's own reader
    makes at most one reply per frame it read, so those are bounded by its reading); the
    ``limit``-th waiting envelope and any after it become one ``REFILL``."""

    def __init__(self, limit: int = PUSH_BUFFER) -> None:
        super().__init__()
        self.limit = limit
        self.envelopes = 0
        self.overflowed = False  # a REFILL stands in for dropped envelopes

    def put_nowait(self, item: OutboxItem) -> None:
        if isinstance(item, QueuedEnvelope):
            if self.envelopes >= self.limit:
                if not self.overflowed:
                    self.overflowed = True
                    super().put_nowait(REFILL)
                return
            self.envelopes += 1
        super().put_nowait(item)

    def get_nowait(self) -> OutboxItem:
        item = super().get_nowait()
        if isinstance(item, QueuedEnvelope):
            self.envelopes -= 1
        elif item == REFILL:
            self.overflowed = False
        return item


class Connection:
    """One device's live socket: envelopes to push (and, from the socket's own reader,
    ready-made text frames) are put on ``outbox``; ``None`` closes it gracefully (after
    what is queued), :meth:`evict` at once."""

    _opened = itertools.count()

    def __init__(self, user_id: str, device_id: str) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.outbox = PushOutbox()
        self.serial = next(self._opened)  # opening order: the oldest socket is evicted first
        self.evicted = asyncio.Event()
        self.evict_code = 0

    def close(self) -> None:
        self.outbox.put_nowait(None)

    def evict(self, code: int) -> None:
        """Close this socket with ``code`` now, even while its writer waits on a peer that
        does not read (websocket.py watches ``evicted``)."""
        self.evict_code = code
        self.evicted.set()

    def wake(self) -> None:
        """Ask the socket's writer to pull the queue from the store (envelopes queued by
        another replica: only their ids crossed Redis, the store holds the bytes)."""
        self.outbox.put_nowait(REFILL)


class PushPort(Protocol):
    """What the relay needs from a push hub (semafore/server/relay.py, websocket.py)."""

    announces_changes: bool
    """Whether :meth:`user_changed` reaches every replica sharing the stores: only then may
    the relay cache account facts (account_cache.py). A plain :class:`PushHub` cannot know
    of other processes on the same store (two ``serve`` on one SQLite file), so False."""

    def register(self, conn: Connection) -> None: ...

    def unregister(self, conn: Connection) -> None: ...

    def publish(self, envelopes: Iterable[QueuedEnvelope]) -> None:
        """Called after the envelopes are durably enqueued; never blocks the sender."""
        ...

    def disconnect_device(self, user_id: str, device_id: str) -> None: ...

    def user_changed(self, user_id: str) -> None:
        """The user's memberships, devices, keys or sessions changed here: tell every other
        replica, whose ``AccountCache`` drops the user (semafore/server/account_cache.py)."""
        ...

    def on_user_changed(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(user_id)`` for each change another replica announces, and
        ``listener(None)`` when announcements may have been lost (resubscribed)."""
        ...

    def device_connections(self, user_id: str, device_id: str) -> list[Connection]:
        """The device's sockets on this relay process, oldest first."""
        ...

    def connected(self, user_id: str, device_id: str) -> bool:
        """Whether this relay process holds a live socket for the device."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class PushHub:
    """In-process hub: the embedded default, and the local fast path of the Redis hub
    (``semafore.deploy.redis_push``)."""

    announces_changes = False

    def __init__(self) -> None:
        self._connections: dict[tuple[str, str], set[Connection]] = {}
        self._user_listeners: list[Callable[[str | None], None]] = []

    def register(self, conn: Connection) -> None:
        self._connections.setdefault((conn.user_id, conn.device_id), set()).add(conn)

    def unregister(self, conn: Connection) -> None:
        key = (conn.user_id, conn.device_id)
        conns = self._connections.get(key)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._connections[key]

    def publish(self, envelopes: Iterable[QueuedEnvelope]) -> None:
        for env in envelopes:
            for conn in self._connections.get((env.recipient_user_id, env.recipient_device_id), ()):
                conn.outbox.put_nowait(env)

    def disconnect_device(self, user_id: str, device_id: str) -> None:
        for conn in list(self._connections.get((user_id, device_id), ())):
            conn.close()

    def user_changed(self, user_id: str) -> None:
        return None  # one process: the relay that made the change already dropped it

    def on_user_changed(self, listener: Callable[[str | None], None]) -> None:
        self._user_listeners.append(listener)

    def _announce(self, user_id: str | None) -> None:
        for listener in self._user_listeners:
            listener(user_id)

    def device_connections(self, user_id: str, device_id: str) -> list[Connection]:
        conns = self._connections.get((user_id, device_id), ())
        return sorted(conns, key=lambda c: c.serial)

    def connected(self, user_id: str, device_id: str) -> bool:
        return bool(self._connections.get((user_id, device_id)))

    def wake_local(self, user_id: str, device_id: str) -> bool:
        conns = self._connections.get((user_id, device_id), ())
        for conn in conns:
            conn.wake()
        return bool(conns)

    def local_devices(self) -> list[tuple[str, str]]:
        return list(self._connections)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
