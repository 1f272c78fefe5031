"""Cross-replica push over Redis pub/sub: the Redis adapter of the relay's push port
(:class:`semafore.server.push.PushPort`; seed §3.4, docs/backends.md "Cross-replica push").

It lives in the deploy layer, not in ``semafore.server`` (issue 14 item 1): the relay knows
only the port, and whoever wires several relays to one Redis (:mod:`semafore.deploy.stores`,
``BackendHandles.push_hub``) picks this implementation. The same in-process fast path as
:class:`~semafore.server.push.PushHub` for devices connected to this replica, plus a Redis
pub/sub wake-up for every other recipient device. Each replica holds ONE pattern subscription
on ``<prefix>:push:*`` (not one connection per device); a wake-up for a device connected here
makes its socket pull the queue from the store and push what is not yet in flight. Presence
(which replica holds a device) is kept in Redis with a TTL the replica refreshes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from semafore.server.oplog import event
from semafore.server.push import CHANGED, DROP, Connection, PushHub
from semafore.storage.ports import QueuedEnvelope
from semafore.storage.redis import RedisQueueStore

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

    from semafore.storage.redis import RedisPresence, RedisPush, RedisQueueStore


class RedisPushHub(PushHub):
    """Cross-replica push over Redis pub/sub on the deployment's namespace.

    ``publish`` hands envelopes to local sockets at once and queues a wake-up for every
    recipient device not connected here; one background task sends the pending wake-ups as
    a pipelined burst of PUBLISHes (coalesced per device). One listener task per replica reads
    the pattern subscription; a burst of wake-ups for one device becomes one queue pull.
    After a Redis outage the listener resubscribes and wakes every local device, since
    wake-ups published meanwhile were lost (pub/sub is at-most-once; the queue is not).
    """

    def __init__(
        self,
        push: RedisPush,
        presence: RedisPresence,
        replica: str,
        *,
        presence_ttl: float = 30.0,
        reconnect_delay: float = 0.2,
    ) -> None:
        super().__init__()
        self.push = push
        self.presence = presence
        self.replica = replica
        self.presence_ttl = presence_ttl
        self.reconnect_delay = reconnect_delay
        self._pattern = push.channel("", "").removesuffix("\x00") + "*"
        self._queue: RedisQueueStore | None = None  # reads woken envelopes by id
        self._channel_prefix = self._pattern[:-1].encode()
        self._pending: dict[tuple[str, str], list[str] | None] = {}  # None: disconnect
        self._changed_users: set[str] = set()  # user_changed notices to publish
        self._pending_event = asyncio.Event()
        self._presence_dirty: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.subscribed = asyncio.Event()
        self.stats = {"published": 0, "received": 0, "woken": 0, "resubscribed": 0}

    # --- the PushPort ---------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        super().register(conn)
        self._presence_dirty.add((conn.user_id, conn.device_id))
        self._pending_event.set()

    def unregister(self, conn: Connection) -> None:
        super().unregister(conn)
        key = (conn.user_id, conn.device_id)
        if not self.connected(*key):
            self._presence_dirty.add(key)
            self._pending_event.set()

    def publish(self, envelopes: Iterable[QueuedEnvelope]) -> None:
        for env in envelopes:
            key = (env.recipient_user_id, env.recipient_device_id)
            conns = self._connections.get(key)
            if conns:
                for conn in conns:
                    conn.outbox.put_nowait(env)
            else:
                ids = self._pending.setdefault(key, [])
                if ids is not None:
                    ids.append(env.delivery_id)
        if self._pending:
            self._pending_event.set()

    def disconnect_device(self, user_id: str, device_id: str) -> None:
        super().disconnect_device(user_id, device_id)
        self._pending[(user_id, device_id)] = None  # and on any other replica
        self._pending_event.set()

    announces_changes = True

    def user_changed(self, user_id: str) -> None:
        self._changed_users.add(user_id)
        self._pending_event.set()

    async def start(self) -> None:
        if self._tasks:
            return
        self._closing = False
        self._tasks = [
            asyncio.create_task(self._listen(), name="push-listen"),
            asyncio.create_task(self._publisher(), name="push-publish"),
            asyncio.create_task(self._refresh_presence(), name="push-presence"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), 10.0)

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        self._closing = True  # redis-py may turn our cancel into a TimeoutError (an OSError)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            for user_id, device_id in self.local_devices():
                await self.presence.offline(user_id, device_id, self.replica)

    # --- background work ------------------------------------------------------------------

    async def _publisher(self) -> None:
        """Send pending wake-ups and presence changes, one pipelined round-trip per burst."""
        client = self.push.ns.push_client
        while not self._closing:
            await self._pending_event.wait()
            self._pending_event.clear()
            pending, self._pending = self._pending, {}
            dirty, self._presence_dirty = self._presence_dirty, set()
            changed, self._changed_users = self._changed_users, set()
            try:
                if dirty:
                    await self._write_presence(dirty)
                if pending or changed:
                    async with client.pipeline(transaction=False) as pipe:
                        for user_id in changed:
                            pipe.publish(self.push.channel(user_id, ""), CHANGED)
                        for (user_id, device_id), ids in pending.items():
                            payload = DROP if ids is None else " ".join(ids).encode()
                            pipe.publish(self.push.channel(user_id, device_id), payload)
                        await pipe.execute()
                    self.stats["published"] += len(pending)
            except (RedisError, OSError) as exc:
                if self._closing:
                    return
                # lost wake-ups cost latency only: the recipient's replica wakes every local
                # device when its own subscription comes back, and fetch always works
                event("push_publish_failed", logging.WARNING, error=type(exc).__name__)
                self._changed_users |= changed  # a lost change notice would cost staleness
                self._pending_event.set()
                await asyncio.sleep(self.reconnect_delay)

    async def _write_presence(self, devices: Iterable[tuple[str, str]]) -> None:
        for user_id, device_id in devices:
            if self.connected(user_id, device_id):
                await self.presence.online(user_id, device_id, self.replica, self.presence_ttl)
            else:
                await self.presence.offline(user_id, device_id, self.replica)

    async def _refresh_presence(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.presence_ttl / 3)
            self._presence_dirty.update(self.local_devices())
            self._pending_event.set()

    async def _listen(self) -> None:
        first = True
        while not self._closing:
            pubsub = self.push.ns.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._pattern)
                self.subscribed.set()
                if pubsub.connection is not None:  # redis-py reconnects and resubscribes
                    pubsub.connection.register_connect_callback(self._resubscribed)
                if not first:
                    self._resubscribed(None)
                first = False
                await self._read(pubsub)
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                if self._closing:
                    return
                event("push_subscription_lost", logging.WARNING, error=type(exc).__name__)
                await asyncio.sleep(self.reconnect_delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _resubscribed(self, _connection: object) -> None:
        """Wake every local device: wake-ups published while we were away are gone."""
        self.stats["resubscribed"] += 1
        event("push_resubscribed", logging.INFO, devices=len(self._connections))
        for device in self.local_devices():
            self.wake_local(*device)
        self._announce(None)  # change notices of the gap are gone too

    async def _read(self, pubsub: PubSub) -> None:
        while not self._closing:  # redis-py can swallow a cancel while it reads
            message = await pubsub.get_message(timeout=1.0)
            woken: dict[tuple[str, str], list[str] | None] = {}
            while message is not None:
                device = self._device_of(message)
                if device is not None and device[1] == "":  # a user_changed notice
                    self._announce(device[0])
                elif device is not None and self.connected(*device):
                    self.stats["received"] += 1
                    data = bytes(message["data"])
                    ids = woken.setdefault(device, [])
                    if data == DROP:
                        woken[device] = None
                    elif ids is not None:
                        ids.extend(data.decode().split())
                message = await pubsub.get_message(timeout=0.0)
            if woken:
                await self._deliver(woken)

    async def _deliver(self, woken: dict[tuple[str, str], list[str] | None]) -> None:
        """Read exactly the woken envelopes from the queue (an acked one is gone and skipped)
        and hand them to the device's sockets, whose writer skips those already in flight.
        Reading by id, not the queue head, cannot resurrect an envelope acked meanwhile."""
        wanted = [(device, ids) for device, ids in woken.items() if ids]
        for (user_id, device_id), ids in woken.items():
            if ids is None:
                super().disconnect_device(user_id, device_id)
        if not wanted:
            return
        if self._queue is None:
            self._queue = RedisQueueStore(self.push.ns)
        found = await self._queue.get_envelopes(
            [(user_id, i) for (user_id, _), ids in wanted for i in ids or ()]
        )
        for (user_id, device_id), ids in wanted:
            envelopes = [found[i] for i in ids or () if i in found]
            for conn in self._connections.get((user_id, device_id), ()):
                for env in envelopes:
                    conn.outbox.put_nowait(env)
            self.stats["woken"] += 1

    def _device_of(self, message: dict[str, Any]) -> tuple[str, str] | None:
        if message.get("type") != "pmessage":
            return None
        channel = message["channel"]
        channel = channel if isinstance(channel, bytes) else str(channel).encode()
        if not channel.startswith(self._channel_prefix):
            return None
        user, sep, device = channel[len(self._channel_prefix) :].decode().partition("\x00")
        return (user, device) if sep else None
