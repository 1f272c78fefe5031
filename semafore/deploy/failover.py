"""What a Sentinel failover does to acknowledged sends, measured Jepsen-style (issue #16 item
5, docs/backends.md "Cluster shape"): writers send through the relay's queue port
(:meth:`RedisQueueStore.enqueue_send`, the ledger-plus-queue script a relay's ``send`` runs),
the Redis primary is killed (SIGKILL) mid-stream, writers retry each unacknowledged send as a
relay client would (same send key, a fresh delivery id per attempt) until it is acknowledged,
and afterwards the queue is read back from the promoted replica.

Figures, as measured, never asserted to be zero:

- ``lost``: sends acknowledged to the writer whose envelope is not in the queue afterwards
  (with when each was acknowledged, relative to the kill);
- ``duplicated``: message ids queued more than once (a retry after a lost reply that the send
  ledger did not recognise);
- ``window``: from the kill until the first acknowledgement of an attempt begun after it (a
  reply already on its way when the primary died does not end the window), and
  ``failover``: until the Sentinels named the replica primary and it reports itself primary.

On the Redis Cluster topology (``SEMAFORE_REDIS_TOPOLOGY=cluster``) the primary killed is
the node serving the recipient's hash slot, its replica the node the cluster promotes
(``RedisClusterGroup.serving``, ``replicas_of``, ``wait_served``), with no Sentinel.

Why the queue port and not HTTP to a relay process: the relay acknowledges a send exactly when
``enqueue_send`` returns, and this isolates what the data tier loses from what the relay
process does; a run through ``semafore serve`` on this shape is listed as missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from semafore.deploy.cluster import ClusterShapeProvider
from semafore.deploy.errors import FaultError
from semafore.deploy.processes import ManagedProcess
from semafore.storage.ports import AlreadyExists, QueuedEnvelope, SendRecord
from semafore.storage.redis import RedisNamespace, RedisQueueStore, ReplicaWait, ReplicaWaitError
from semafore.storage.redis_cluster import slot_of

ORG = "failover-org"
SENDER = ("alice", "alice-phone")
RECIPIENT = ("bob", "bob-laptop")


@dataclass(frozen=True)
class FailoverFigures:
    """One run's measurements; times are seconds relative to the kill (negative: before)."""

    messages: int
    writers: int
    acknowledged: int
    attempts: int
    errors: int
    lost: tuple[str, ...]
    lost_acked_at: tuple[float, ...]
    duplicated: tuple[str, ...]
    window: float
    failover: float
    former_primary: int
    new_primary: int
    error_kinds: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "writers": self.writers,
            "acknowledged": self.acknowledged,
            "attempts": self.attempts,
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "lost": len(self.lost),
            "lost_acked_at_s": [round(t, 6) for t in self.lost_acked_at],
            "duplicated": len(self.duplicated),
            "window_s": round(self.window, 3),
            "failover_s": round(self.failover, 3),
            "former_primary_port": self.former_primary,
            "new_primary_port": self.new_primary,
        }


@dataclass(frozen=True)
class Tally:
    """What an acknowledgement record and the queue read back afterwards say: ``lost`` the
    acknowledged message ids absent from the queue (sorted) with ``lost_acked_at`` their
    acknowledgement times relative to the kill, ``duplicated`` the ids queued twice or more."""

    lost: tuple[str, ...]
    lost_acked_at: tuple[float, ...]
    duplicated: tuple[str, ...]


def tally(acked_at: Mapping[str, float], queued: Iterable[str], kill_time: float) -> Tally:
    """Compare the sends acknowledged (message id -> monotonic acknowledgement time) with the
    message ids of the envelopes queued afterwards (one per queued envelope)."""
    per_message = Counter(queued)
    lost = sorted(m for m in acked_at if per_message[m] == 0)
    return Tally(
        lost=tuple(lost),
        lost_acked_at=tuple(acked_at[m] - kill_time for m in lost),
        duplicated=tuple(sorted(m for m, n in per_message.items() if n > 1)),
    )


@dataclass(frozen=True)
class _Primary:
    """The primary a run kills, its replica (paused to model lag) and how to wait for that
    replica's promotion (the port of the new primary)."""

    port: int
    process: ManagedProcess
    replica: ManagedProcess | None
    wait_promoted: Callable[[], int]


def _primary(provider: ClusterShapeProvider, ns: RedisNamespace) -> _Primary:
    """The Sentinel topology's primary, or the Redis Cluster node serving the recipient's
    queues (the key's hash tag is the store's own, :meth:`RedisNamespace.user`)."""
    cluster = provider.redis_cluster
    if cluster is not None:
        slot = slot_of(ns.user(RECIPIENT[0]))
        node = cluster.serving(slot)
        standby = cluster.replicas_of(node.port)
        return _Primary(node.port, node.process, standby[0].process if standby else None,
                        lambda: cluster.wait_served(slot, node.port).port)
    group = provider.group()
    port = group.primary_port()
    return _Primary(port, group.node(port).process,
                    group.replica.process if group.replica is not None else None,
                    lambda: group.wait_promoted(port))


def _envelope(message_id: str, now: float, body_size: int) -> QueuedEnvelope:
    body = f"ciphertext-of-{message_id}".encode().ljust(body_size, b".")
    return QueuedEnvelope(
        delivery_id=uuid.uuid4().hex,
        org_id=ORG,
        message_id=message_id,
        kind="message",
        sender_user_id=SENDER[0],
        sender_device_id=SENDER[1],
        recipient_user_id=RECIPIENT[0],
        recipient_device_id=RECIPIENT[1],
        body=body,
        envelope_hash=hashlib.sha256(body).digest(),
        received_at=now,
    )


def _record(envelope: QueuedEnvelope) -> SendRecord:
    return SendRecord(
        org_id=ORG,
        sender_user_id=SENDER[0],
        sender_device_id=SENDER[1],
        recipient=RECIPIENT[0],
        message_id=envelope.message_id,
        digest=envelope.envelope_hash,
        deliveries=((RECIPIENT[0], RECIPIENT[1], envelope.delivery_id),),
        accepted_at=envelope.received_at,
        expires_at=envelope.received_at + 3600,
    )


async def measure_failover(
    provider: ClusterShapeProvider,
    *,
    messages: int = 2000,
    writers: int = 4,
    kill_after: int = 500,
    namespace: str = "failover",
    deadline: float = 60.0,
    body_size: int = 64,
    pause_replica_at: int | None = None,
    wait: ReplicaWait | None = None,
) -> FailoverFigures:
    """Send ``messages`` sends from ``writers`` concurrent writers; SIGKILL the primary once
    ``kill_after`` are acknowledged; wait for every send to be acknowledged (each retried
    until then, at most ``deadline`` seconds in all) and read the queue back.

    ``pause_replica_at`` models a lagging replica (a stalled host, a congested link): the
    replica is SIGSTOPped once that many sends are acknowledged and resumed right after the
    kill, so the primary dies holding replication output the replica never read. With
    ``body_size`` large enough that this exceeds the kernel's socket buffers, acknowledged
    sends exist only in the dead primary's memory: what asynchronous replication can lose.

    ``wait`` runs the store with :class:`ReplicaWait` (a send is acknowledged only once that
    many replicas have it). A send the primary wrote but no replica confirmed is then refused
    (:class:`ReplicaWaitError`, retried like any error); each refused attempt before the kill
    counts toward ``pause_replica_at`` and ``kill_after`` like an acknowledgement (a stalled
    replica stops every acknowledgement, so the thresholds count writes the primary took);
    after the failover the killed primary is started again so Sentinel makes it the new
    primary's replica, without which every later send would wait for a replica that is gone."""
    if pause_replica_at is not None and not 0 < pause_replica_at < kill_after:
        raise FaultError(f"pause_replica_at must be within 1..{kill_after - 1}")
    if not 0 < kill_after < messages:
        raise FaultError(f"kill_after must be within 1..{messages - 1}, got {kill_after}")
    url = provider.endpoints.redis_url
    assert url is not None
    ns = RedisNamespace(url, namespace)
    store = RedisQueueStore(ns, wait=wait)
    primary = _primary(provider, ns)
    former = primary.port
    acked_at: dict[str, float] = {}
    progress = 0  # acknowledged sends, plus attempts refused by ``wait`` before the kill
    begun_after_kill: list[float] = []
    errors: Counter[str] = Counter()
    attempts = 0
    killed = asyncio.Event()
    kill_time = 0.0
    promoted: asyncio.Future[int] | None = None
    promoted_at = 0.0

    async def watch_failover() -> int:
        nonlocal promoted_at
        port = await asyncio.to_thread(primary.wait_promoted)
        promoted_at = time.monotonic()
        if wait is not None:  # the former primary rejoins as the new primary's replica
            await asyncio.to_thread(primary.process.start)
        return port
    next_id = iter(range(messages))
    stop_at = time.monotonic() + deadline

    async def kill_primary() -> None:
        nonlocal kill_time, promoted
        kill_time = time.monotonic()
        primary.process.kill()
        if pause_replica_at is not None and primary.replica is not None:
            primary.replica.resume()
        killed.set()
        promoted = asyncio.ensure_future(watch_failover())

    async def took() -> None:
        """The primary took a write: pause the replica or kill at the thresholds."""
        nonlocal progress
        progress += 1
        if progress == pause_replica_at and primary.replica is not None:
            primary.replica.pause()
        if progress == kill_after and not killed.is_set():
            await kill_primary()

    async def send(message_id: str) -> None:
        nonlocal attempts
        while time.monotonic() < stop_at:
            envelope = _envelope(message_id, time.time(), body_size)
            attempts += 1
            begun = time.monotonic()
            try:
                await store.enqueue_send(_record(envelope), [envelope])
            except ReplicaWaitError as exc:
                errors[type(exc).__name__] += 1
                if not killed.is_set():
                    await took()
                continue
            # AttributeError: redis-py 8.1's asyncio RedisCluster, when a node dies under
            # concurrent commands, can close a connection another task is writing on
            # ('NoneType' object has no attribute 'writelines'); a relay answers that 500,
            # which a client retries (RETRY_STATUSES). Counted in error_kinds, never hidden.
            except (RedisError, AlreadyExists, OSError, AttributeError) as exc:
                errors[type(exc).__name__] += 1
                await asyncio.sleep(0.02)
                continue
            acked_at[message_id] = time.monotonic()
            if killed.is_set() and begun > kill_time:
                begun_after_kill.append(acked_at[message_id])
            await took()
            return
        raise FaultError(f"send {message_id} not acknowledged within {deadline} s")

    async def writer() -> None:
        for index in next_id:
            await send(f"m{index:06d}")

    try:
        await asyncio.gather(*(writer() for _ in range(writers)))
        assert promoted is not None  # kill_after < messages: the kill happened
        new = await promoted
        queued = await store.fetch(RECIPIENT[0], RECIPIENT[1], messages * 2 + 10)
        await ns.drop()
    finally:
        await ns.close()
    counted = tally(acked_at, (e.message_id for e in queued), kill_time)
    return FailoverFigures(
        messages=messages,
        writers=writers,
        acknowledged=len(acked_at),
        attempts=attempts,
        errors=sum(errors.values()),
        lost=counted.lost,
        lost_acked_at=counted.lost_acked_at,
        duplicated=counted.duplicated,
        window=min(begun_after_kill) - kill_time if begun_after_kill else float("nan"),
        failover=promoted_at - kill_time,
        former_primary=former,
        new_primary=new,
        error_kinds=dict(errors),
    )
