"""Push across in-process relay replicas: the embedded stand-in for Redis pub/sub.

Several relays in one process on the same in-memory stores (seed §3.4, scaled out; the
simulator's ``replicas:``) must push across each other the way production replicas do over
Redis (:class:`semafore.deploy.redis_push.RedisPushHub`): each replica has a
:class:`BusPushHub` on one :class:`LocalPushBus`; a recipient device not connected to the
sending replica is woken on every other live replica, whose socket pulls its queue from the
shared store (only ids cross, as on Redis), and account changes are announced to every other
replica's account cache (``semafore.server.account_cache``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from semafore.server.push import PushHub
from semafore.storage.ports import QueuedEnvelope


class LocalPushBus:
    """The embedded stand-in for Redis pub/sub between in-process replicas."""

    def __init__(self) -> None:
        self.hubs: list[BusPushHub] = []

    def hub(self) -> BusPushHub:
        return BusPushHub(self)


class BusPushHub(PushHub):
    """One replica's hub on a :class:`LocalPushBus`: local sockets get envelopes at once (as
    :class:`PushHub`); a recipient device not connected here is woken on every other live
    replica, whose socket pulls its queue from the shared store (``RedisPushHub``'s semantics)."""

    def __init__(self, bus: LocalPushBus) -> None:
        super().__init__()
        self.bus = bus

    def publish(self, envelopes: Iterable[QueuedEnvelope]) -> None:
        remote: set[tuple[str, str]] = set()
        for env in envelopes:
            key = (env.recipient_user_id, env.recipient_device_id)
            conns = self._connections.get(key)
            if conns:
                for conn in conns:
                    conn.outbox.put_nowait(env)
            else:
                remote.add(key)
        for peer in list(self.bus.hubs):
            if peer is not self:
                for key in sorted(remote):
                    peer.wake_local(*key)

    def disconnect_device(self, user_id: str, device_id: str) -> None:
        for hub in [self, *(h for h in self.bus.hubs if h is not self)]:
            PushHub.disconnect_device(hub, user_id, device_id)

    announces_changes = True

    def user_changed(self, user_id: str) -> None:
        """Every other replica's account cache drops the user (account_cache.py)."""
        for peer in list(self.bus.hubs):
            if peer is not self:
                peer._announce(user_id)

    async def start(self) -> None:
        if self not in self.bus.hubs:
            self.bus.hubs.append(self)

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.bus.hubs.remove(self)
