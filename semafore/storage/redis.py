"""Redis adapters (redis-py asyncio): per-device delivery queues, delivery proofs, rate-limit
counters, cross-replica push and presence — the real-time delivery primitives (seed §3.3,
docs/backends.md).

Layout under a key prefix ``P`` (one namespace per deployment or test):

- ``P:e:<delivery_id>``  hash: one queued envelope, every field raw bytes (the body stays the
  exact ciphertext, so the plaintext oracle scanning Redis sees what the relay holds)
- ``P:q:<user>\\0<device>`` zset: that device's queue, scored by a global arrival counter
- ``P:o:<org>``          zset: the org's queued ids scored by ``received_at`` (retention)
- ``P:d:<delivery_id>``  hash: a delivery proof; ``P:dl:<org>`` zset (lexicographic paging),
  ``P:dt:<org>`` zset scored by ``delivered_at`` (retention)
- ``P:s:<org>\\0<user>\\0<device>\\0<recipient>\\0<message_id>`` string: a send ledger
  entry (JSON of ids and the envelope-set digest, never a body) with a TTL; ``P:so:<org>``
  zset of those suffixes scored by ``accepted_at`` (retention)
- ``P:rl:<key>:<window index>`` counter with a TTL

Each multi-key change is one Lua script, so it is atomic on the Redis server — across every
server replica sharing the Redis, not only within one event loop. Durability is Redis's: run
it with ``appendfsync always`` (the ``local`` provider's ``redis_durable``) when an
acknowledged enqueue must survive a crash of Redis itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from semafore.storage.ports import (
    ALL_COUNTED,
    AlreadyExists,
    DeliveryProof,
    QueuedEnvelope,
    QueueStore,
    RateDecision,
    RateHit,
    RateLimitStore,
    SendKey,
    SendRecord,
)
from semafore.storage.redis_sentinel import open_redis

_ENV_FIELDS = (
    "org_id",
    "message_id",
    "kind",
    "sender_user_id",
    "sender_device_id",
    "recipient_user_id",
    "recipient_device_id",
    "body",
    "envelope_hash",
    "received_at",
)

# Envelope writes shared by enqueue and enqueue_send. From ARGV[first]: per envelope its id,
# queue key suffix, org, received_at, then field/value pairs (20 values).
_ENQUEUE_FNS = """
local stride = 4 + 20
local function ids_free(p, n, first)
  for i = 0, n - 1 do
    if redis.call('EXISTS', p .. ':e:' .. ARGV[first + i * stride]) == 1 then return false end
  end
  return true
end
local function write(p, n, first)
  for i = 0, n - 1 do
    local base = first + i * stride
    local id, queue, org, at = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
    local seq = redis.call('INCR', p .. ':seq')
    local fields = {}
    for j = 0, 19 do fields[#fields + 1] = ARGV[base + 4 + j] end
    fields[#fields + 1] = 'queue'
    fields[#fields + 1] = queue
    redis.call('HSET', p .. ':e:' .. id, unpack(fields))
    redis.call('ZADD', p .. ':q:' .. queue, seq, id)
    redis.call('ZADD', p .. ':o:' .. org, at, id)
  end
end
"""

# ARGV: prefix, n, envelopes... -> 1 stored, 0 a delivery id exists (nothing written).
# All ids are checked before anything is written.
_ENQUEUE = (
    _ENQUEUE_FNS
    + """
local p, n = ARGV[1], tonumber(ARGV[2])
if not ids_free(p, n, 3) then return 0 end
write(p, n, 3)
return 1
"""
)

# ARGV: prefix, send key suffix, org, accepted_at, ttl ms, record, n, envelopes...
# -> {1} recorded and queued; {0, record} already recorded (nothing written); {-1} a delivery
# id exists (nothing written). SET NX with a TTL is the ledger's insert-if-absent; the same
# script queues, so the ledger entry and its envelopes exist together or not at all.
_ENQUEUE_SEND = (
    _ENQUEUE_FNS
    + """
local p, send, org, at, ttl, record = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local n = tonumber(ARGV[7])
local key = p .. ':s:' .. send
local recorded = redis.call('GET', key)
if recorded then return {0, recorded} end
if not ids_free(p, n, 8) then return {-1} end
redis.call('SET', key, record, 'PX', ttl, 'NX')
redis.call('ZADD', p .. ':so:' .. org, at, send)
write(p, n, 8)
return {1}
"""
)

# ARGV: prefix, org, before -> count of ledger entries forgotten
_EXPIRE_SENDS = """
local p, org, before = ARGV[1], ARGV[2], ARGV[3]
local sends = redis.call('ZRANGEBYSCORE', p .. ':so:' .. org, '-inf', '(' .. before)
local gone = 0
for _, send in ipairs(sends) do
  gone = gone + redis.call('DEL', p .. ':s:' .. send)
  redis.call('ZREM', p .. ':so:' .. org, send)
end
return gone
"""

# Remove one envelope everywhere; shared by ack / expire / device deletion.
_REMOVE = """
local function remove(p, id)
  local key = p .. ':e:' .. id
  local meta = redis.call('HMGET', key, 'queue', 'org_id')
  if not meta[1] then return 0 end
  redis.call('ZREM', p .. ':q:' .. meta[1], id)
  redis.call('ZREM', p .. ':o:' .. meta[2], id)
  redis.call('DEL', key)
  return 1
end
"""

# ARGV: prefix, queue suffix, ids... -> ids removed (only those in this device's queue)
_ACK = (
    _REMOVE
    + """
local p, queue = ARGV[1], ARGV[2]
local removed = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', p .. ':q:' .. queue, id) then
    if remove(p, id) == 1 then removed[#removed + 1] = id end
  end
end
return removed
"""
)

# ARGV: prefix, org, before -> count
_EXPIRE = (
    _REMOVE
    + """
local p, org, before = ARGV[1], ARGV[2], ARGV[3]
local ids = redis.call('ZRANGEBYSCORE', p .. ':o:' .. org, '-inf', '(' .. before)
for _, id in ipairs(ids) do remove(p, id) end
return #ids
"""
)

# ARGV: prefix, queue suffix -> count
_DROP_QUEUE = (
    _REMOVE
    + """
local p, queue = ARGV[1], ARGV[2]
local ids = redis.call('ZRANGE', p .. ':q:' .. queue, 0, -1)
for _, id in ipairs(ids) do remove(p, id) end
redis.call('DEL', p .. ':q:' .. queue)
return #ids
"""
)

# ARGV: prefix, id, org, delivered_at, field/value pairs... -> 1 stored, 0 exists
_RECORD = """
local p, id, org, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = p .. ':d:' .. id
if redis.call('EXISTS', key) == 1 then return 0 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
redis.call('ZADD', p .. ':dl:' .. org, 0, id)
redis.call('ZADD', p .. ':dt:' .. org, at, id)
return 1
"""

# ARGV: prefix, org, before -> count
_EXPIRE_DELIVERIES = """
local p, org, before = ARGV[1], ARGV[2], ARGV[3]
local ids = redis.call('ZRANGEBYSCORE', p .. ':dt:' .. org, '-inf', '(' .. before)
for _, id in ipairs(ids) do
  redis.call('DEL', p .. ':d:' .. id)
  redis.call('ZREM', p .. ':dl:' .. org, id)
  redis.call('ZREM', p .. ':dt:' .. org, id)
end
return #ids
"""

# KEYS: counter. ARGV: limit, ttl ms -> count after this hit (not incremented past limit)
_HIT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then return count + 1 end
count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return count
"""

_HIT_EACH = """
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= limit then return i end
  count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, ARGV[2 * i]) end
end
return 0
"""

_PROOF_FIELDS = (
    "org_id",
    "message_id",
    "envelope_hash",
    "sender_user_id",
    "sender_device_id",
    "recipient_user_id",
    "recipient_device_id",
    "received_at",
    "delivered_at",
)


def _queue(user_id: str, device_id: str) -> str:
    return f"{user_id}\x00{device_id}"


def _send_key(key: SendKey) -> str:
    return "\x00".join(key)


def _send_record(key: SendKey, value: object) -> SendRecord:
    data = json.loads(_raw(value))
    return SendRecord(
        *key,
        digest=bytes.fromhex(data["digest"]),
        deliveries=tuple((str(u), str(d), str(i)) for u, d, i in data["deliveries"]),
        accepted_at=float(data["accepted_at"]),
        expires_at=float(data["expires_at"]),
    )


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _f(value: float) -> str:
    return repr(float(value))


class RedisNamespace:
    """A client plus a key prefix; every adapter of one deployment shares it."""

    def __init__(self, url: str, prefix: str) -> None:
        if not prefix or any(c in prefix for c in "*?[]"):
            raise ValueError("prefix: must be non-empty and free of glob characters")
        # A Redis restart (failover, crash, the simulator's kill -9) drops every pooled
        # connection: retry connection errors with backoff for ~5 s instead of failing the
        # request. A retried script never writes twice: each re-checks its preconditions, so
        # a retry whose first run took effect reports the conflict (AlreadyExists) instead.
        # A redis+sentinel:// URL follows the primary through a failover (redis_sentinel).
        self.client: aioredis.Redis = open_redis(
            url,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=10),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=5,
        )
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def dump(self) -> list[tuple[str, bytes]]:
        """Every key of this namespace with its raw value(s) (hash fields/values, members)."""
        out: list[tuple[str, bytes]] = []
        async for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            kind = _s(await self.client.type(key))
            if kind == "hash":
                values = await self.client.hgetall(key)
                data = b"\x00".join(_raw(b) for kv in values.items() for b in kv)
            elif kind == "zset":
                data = b"\x00".join(_raw(m) for m in await self.client.zrange(key, 0, -1))
            elif kind == "string":
                data = _raw(await self.client.get(key) or b"")
            else:
                data = _raw(await self.client.dump(key) or b"")
            out.append((f"redis:{key!r}", _raw(key) + b"\x00" + data))
        return out

    async def drop(self) -> None:
        async for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            await self.client.delete(key)

    async def close(self) -> None:
        await self.client.aclose()


class RedisQueueStore(QueueStore):
    def __init__(self, ns: RedisNamespace) -> None:
        self.ns = ns
        client = ns.client
        self._enqueue = client.register_script(_ENQUEUE)
        self._ack = client.register_script(_ACK)
        self._expire = client.register_script(_EXPIRE)
        self._drop_queue = client.register_script(_DROP_QUEUE)
        self._record = client.register_script(_RECORD)
        self._expire_deliveries = client.register_script(_EXPIRE_DELIVERIES)
        self._enqueue_send = client.register_script(_ENQUEUE_SEND)
        self._expire_sends = client.register_script(_EXPIRE_SENDS)

    async def dump(self) -> list[tuple[str, bytes]]:
        return await self.ns.dump()

    @staticmethod
    def _envelope_args(envelopes: Sequence[QueuedEnvelope]) -> list[Any]:
        ids = [e.delivery_id for e in envelopes]
        if len(set(ids)) != len(ids):
            raise AlreadyExists("delivery_id")
        args: list[Any] = [len(envelopes)]
        for e in envelopes:
            args += [
                e.delivery_id,
                _queue(e.recipient_user_id, e.recipient_device_id),
                e.org_id,
                _f(e.received_at),
            ]
            for name in _ENV_FIELDS:
                value = getattr(e, name)
                args += [name, _f(value) if isinstance(value, float) else value]
        return args

    async def enqueue_send(
        self, record: SendRecord, envelopes: Sequence[QueuedEnvelope]
    ) -> SendRecord | None:
        r = record
        value = json.dumps(
            {
                "digest": r.digest.hex(),
                "deliveries": [list(d) for d in r.deliveries],
                "accepted_at": r.accepted_at,
                "expires_at": r.expires_at,
            }
        )
        ttl_ms = max(1, math.ceil((r.expires_at - r.accepted_at) * 1000))
        args = [
            self.ns.prefix,
            _send_key(r.key),
            r.org_id,
            _f(r.accepted_at),
            ttl_ms,
            value,
            *self._envelope_args(envelopes),
        ]
        result = await self._enqueue_send(args=args)
        if int(result[0]) == 1:
            return None
        if int(result[0]) == -1:
            raise AlreadyExists("delivery_id")
        return _send_record(r.key, result[1])

    async def get_send(self, key: SendKey) -> SendRecord | None:
        value = await self.ns.client.get(self.ns.key("s", _send_key(key)))
        return _send_record(key, value) if value is not None else None

    async def expire_sends(self, org_id: str, before: float) -> int:
        return int(await self._expire_sends(args=[self.ns.prefix, org_id, _f(before)]))

    async def enqueue(self, envelopes: Sequence[QueuedEnvelope]) -> None:
        args = self._envelope_args(envelopes)
        if not envelopes:
            return
        if not await self._enqueue(args=[self.ns.prefix, *args]):
            raise AlreadyExists("delivery_id")

    @staticmethod
    def _envelope(delivery_id: str, raw: dict[bytes, bytes]) -> QueuedEnvelope:
        f = {k.decode(): v for k, v in raw.items()}
        return QueuedEnvelope(
            delivery_id=delivery_id,
            org_id=_s(f["org_id"]),
            message_id=_s(f["message_id"]),
            kind=cast(Any, _s(f["kind"])),
            sender_user_id=_s(f["sender_user_id"]),
            sender_device_id=_s(f["sender_device_id"]),
            recipient_user_id=_s(f["recipient_user_id"]),
            recipient_device_id=_s(f["recipient_device_id"]),
            body=bytes(f["body"]),
            envelope_hash=bytes(f["envelope_hash"]),
            received_at=float(f["received_at"]),
        )

    async def get_envelopes(self, delivery_ids: Sequence[str]) -> dict[str, QueuedEnvelope]:
        """The still-queued envelopes among ``delivery_ids``, by id, in one round trip (an
        acked or expired one is absent). For the cross-replica push hub, which is woken with
        ids only (``semafore.deploy.redis_push.RedisPushHub``): reading by id, not the queue head,
        cannot resurrect an envelope acked meanwhile."""
        wanted = list(dict.fromkeys(delivery_ids))
        if not wanted:
            return {}
        async with self.ns.client.pipeline(transaction=False) as pipe:
            for delivery_id in wanted:
                pipe.hgetall(self.ns.key("e", delivery_id))
            rows = await pipe.execute()
        return {i: self._envelope(i, row) for i, row in zip(wanted, rows, strict=True) if row}

    async def fetch(self, user_id: str, device_id: str, limit: int) -> list[QueuedEnvelope]:
        if limit <= 0:
            return []
        ids = await self.ns.client.zrange(
            self.ns.key("q", _queue(user_id, device_id)), 0, limit - 1
        )
        if not ids:
            return []
        async with self.ns.client.pipeline(transaction=True) as pipe:
            for delivery_id in ids:
                pipe.hgetall(self.ns.key("e", _s(delivery_id)))
            rows = await pipe.execute()
        return [self._envelope(_s(i), row) for i, row in zip(ids, rows, strict=True) if row]

    async def ack(
        self, user_id: str, device_id: str, delivery_ids: Sequence[str]
    ) -> list[QueuedEnvelope]:
        wanted = list(dict.fromkeys(delivery_ids))
        if not wanted:
            return []
        queue = _queue(user_id, device_id)
        # read first (the envelopes are returned), then remove atomically; only ids the script
        # actually removed are returned, so a concurrent ack never reports one twice
        async with self.ns.client.pipeline(transaction=True) as pipe:
            for delivery_id in wanted:
                pipe.hgetall(self.ns.key("e", delivery_id))
            rows = await pipe.execute()
        removed = {_s(i) for i in await self._ack(args=[self.ns.prefix, queue, *wanted])}
        return [
            self._envelope(i, row)
            for i, row in zip(wanted, rows, strict=True)
            if i in removed and row
        ]

    async def count(self, user_id: str, device_id: str) -> int:
        return int(await self.ns.client.zcard(self.ns.key("q", _queue(user_id, device_id))))

    async def delete_device_queue(self, user_id: str, device_id: str) -> int:
        return int(await self._drop_queue(args=[self.ns.prefix, _queue(user_id, device_id)]))

    async def expire(self, org_id: str, before: float) -> int:
        return int(await self._expire(args=[self.ns.prefix, org_id, _f(before)]))

    def _proof_args(self, proof: DeliveryProof) -> list[Any]:
        args: list[Any] = [self.ns.prefix, proof.delivery_id, proof.org_id, _f(proof.delivered_at)]
        for name in _PROOF_FIELDS:
            value = getattr(proof, name)
            args += [name, _f(value) if isinstance(value, float) else value]
        return args

    async def record_delivery(self, proof: DeliveryProof) -> None:
        if not await self._record(args=self._proof_args(proof)):
            raise AlreadyExists(proof.delivery_id)

    async def record_deliveries(self, proofs: Sequence[DeliveryProof]) -> int:
        if not proofs:
            return 0
        async with self.ns.client.pipeline(transaction=False) as pipe:
            for proof in proofs:
                await self._record(args=self._proof_args(proof), client=pipe)
            recorded = await pipe.execute()
        return sum(1 for r in recorded if r)

    async def list_deliveries(
        self, org_id: str, after: str | None, limit: int
    ) -> list[DeliveryProof]:
        if limit <= 0:
            return []
        low = "-" if after is None else f"({after}"
        ids = await self.ns.client.zrangebylex(self.ns.key("dl", org_id), low, "+", 0, limit)
        async with self.ns.client.pipeline(transaction=True) as pipe:
            for delivery_id in ids:
                pipe.hgetall(self.ns.key("d", _s(delivery_id)))
            rows = await pipe.execute()
        out = []
        for delivery_id, raw in zip(ids, rows, strict=True):
            if not raw:
                continue
            f = {k.decode(): v for k, v in raw.items()}
            out.append(
                DeliveryProof(
                    _s(delivery_id),
                    _s(f["org_id"]),
                    _s(f["message_id"]),
                    bytes(f["envelope_hash"]),
                    _s(f["sender_user_id"]),
                    _s(f["sender_device_id"]),
                    _s(f["recipient_user_id"]),
                    _s(f["recipient_device_id"]),
                    float(f["received_at"]),
                    float(f["delivered_at"]),
                )
            )
        return out

    async def expire_deliveries(self, org_id: str, before: float) -> int:
        return int(await self._expire_deliveries(args=[self.ns.prefix, org_id, _f(before)]))


class RedisRateLimitStore(RateLimitStore):
    """Fixed windows: one counter per key and window, expiring with the window."""

    def __init__(self, ns: RedisNamespace) -> None:
        self.ns = ns
        self._hit = ns.client.register_script(_HIT)
        self._hit_each = ns.client.register_script(_HIT_EACH)

    async def hit(self, key: str, limit: int, window: float, now: float) -> RateDecision:
        index = int(now // window)
        ttl_ms = max(1, math.ceil(window * 1000)) + 1000
        count = int(
            await self._hit(keys=[self.ns.key("rl", key, str(index))], args=[limit, ttl_ms])
        )
        if count > limit:
            return RateDecision(False, max(1, math.ceil((index + 1) * window - now)))
        return RateDecision(True, 0)

    async def hit_each(self, hits: Sequence[RateHit], now: float) -> tuple[int, RateDecision]:
        keys: list[str] = []
        args: list[int] = []
        for key, limit, window in hits:
            keys.append(self.ns.key("rl", key, str(int(now // window))))
            args += [limit, max(1, math.ceil(window * 1000)) + 1000]
        refused = int(await self._hit_each(keys=keys, args=args))  # 1-based, 0: none
        if not refused:
            return ALL_COUNTED, RateDecision(True, 0)
        window = hits[refused - 1][2]
        index = int(now // window)
        return refused - 1, RateDecision(False, max(1, math.ceil((index + 1) * window - now)))


class RedisPush:
    """Cross-replica push: the replica holding a device's connection subscribes to its channel;
    any replica that enqueued an envelope for it publishes the delivery id. A hint only — the
    queue is the source of truth, so a lost hint costs latency (the next fetch), never data."""

    def __init__(self, ns: RedisNamespace) -> None:
        self.ns = ns

    def channel(self, user_id: str, device_id: str) -> str:
        return self.ns.key("push", _queue(user_id, device_id))

    async def notify(self, user_id: str, device_id: str, delivery_id: str) -> int:
        """Publish; return how many replicas were listening for that device."""
        return int(await self.ns.client.publish(self.channel(user_id, device_id), delivery_id))

    async def listen(self, user_id: str, device_id: str) -> AsyncIterator[str]:
        """Delivery ids pushed for this device, until the iterator is closed."""
        pubsub = self.ns.client.pubsub()
        await pubsub.subscribe(self.channel(user_id, device_id))
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield _s(message["data"])
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]


class RedisPresence:
    """Which replica holds a device's connection, as a key with a TTL the replica refreshes
    (a crashed replica's entries lapse by themselves)."""

    def __init__(self, ns: RedisNamespace) -> None:
        self.ns = ns

    async def online(self, user_id: str, device_id: str, replica: str, ttl: float) -> None:
        await self.ns.client.set(
            self.ns.key("presence", _queue(user_id, device_id)), replica, px=max(1, int(ttl * 1000))
        )

    async def offline(self, user_id: str, device_id: str, replica: str) -> bool:
        """Clear the entry only if this replica still owns it (a reconnect elsewhere wins)."""
        key = self.ns.key("presence", _queue(user_id, device_id))
        script = self.ns.client.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) "
            "else return 0 end"
        )
        return bool(await script(keys=[key], args=[replica]))

    async def where(self, user_id: str, device_id: str) -> str | None:
        value = await self.ns.client.get(self.ns.key("presence", _queue(user_id, device_id)))
        return _s(value) if value is not None else None
