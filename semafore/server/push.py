"""In-process push hub: which devices hold a live WebSocket, and waking them on enqueue.

The queue in the store stays the source of truth (an envelope is deleted only on ack); the
hub only shortcuts delivery to connected devices. With several relay replicas this becomes a
pub/sub port (Redis), which is why the hub is deliberately this small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from semafore.storage.ports import QueuedEnvelope


class Connection:
    """One device's live socket: envelopes to push (and, from the socket's own reader,
    ready-made text frames) are put on ``outbox``; ``None`` closes it."""

    def __init__(self, user_id: str, device_id: str) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.outbox: asyncio.Queue[QueuedEnvelope | dict[str, Any] | str | None] = asyncio.Queue()

    def close(self) -> None:
        self.outbox.put_nowait(None)


class PushHub:
    def __init__(self) -> None:
        self._connections: dict[tuple[str, str], set[Connection]] = {}

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

    def connected(self, user_id: str, device_id: str) -> bool:
        return bool(self._connections.get((user_id, device_id)))
