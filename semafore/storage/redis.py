"""Redis adapters (redis-py asyncio): per-device delivery queues, delivery proofs, rate-limit
counters, cross-replica push and presence — the real-time delivery primitives (seed §3.3,
docs/backends.md).

Layout under a key prefix ``P`` (one namespace per deployment or test). ``{...}`` is a Redis
Cluster hash tag: keys with the same tag hash to one slot, so one script may touch them
together (docs/backends.md "Cluster shape"). ``U`` is a user id, ``O`` an org id, both with
``%``, ``{``, ``}`` percent-escaped inside the tag:

- ``P:{u:U}:e:<delivery_id>`` hash: one envelope queued *to* user U, every field raw bytes
  (the body stays the exact ciphertext, so the plaintext oracle scanning Redis sees what the
  relay holds), plus ``queue`` (the device id)
- ``P:{u:U}:q:<device>`` zset: that device's queue, scored by ``P:{u:U}:seq`` (arrival order)
- ``P:{u:U}:o:<org>`` zset: U's queued ids of that org scored by ``received_at`` (retention)
- ``P:{u:U}:s:<org>\0<user>\0<device>\0U\0<message_id>`` string: a send ledger entry for
  recipient U (JSON of ids and the envelope-set digest, never a body) with a TTL
- ``P:{o:O}:so`` zset: the org's ledger entries (their key suffixes) by ``accepted_at``
- ``P:{o:O}:users`` set: users holding envelopes of the org (where retention looks)
- ``P:{o:O}:d:<delivery_id>`` hash: a delivery proof; ``P:{o:O}:dl`` zset (lexicographic
  paging), ``P:{o:O}:dt`` zset scored by ``delivered_at`` (retention)
- ``P:rl:{r:<key>}:<window index>`` counter with a TTL
- ``P:{u:U}:w`` / ``P:{o:O}:w`` string with a short TTL: a ``WAIT`` marker, Cluster only
  (:meth:`RedisQueueStore.enqueue_send` with ``wait``)
- ``P:presence:<user>\0<device>`` string, and the pub/sub channels ``P:push:...``

Why these owners: the relay's hot writes stay single-slot — a send to one user (its ledger
entry and every envelope to that user's devices), an ack, a proof, one rate-limit counter —
so each is one Lua script, atomic on the Redis server across every relay replica sharing it.
Every key a script touches comes in ``KEYS``, never built from ``ARGV``, which Redis Cluster
requires. What spans owners (several users in one enqueue, a broadcast, retention) is split
per slot on Cluster only; :class:`RedisQueueStore` says what stays atomic. Two hot scripts
span owners on one server (and behind Sentinel) only, to make each a single round trip: a send
with its rate-limit counters (:meth:`RedisQueueStore.enqueue_send_limited`) and an ack with
its delivery proofs (:meth:`RedisQueueStore.ack_delivered`); on Cluster each is the port's
separate calls. Durability is
Redis's: run it with ``appendfsync always`` (the ``local`` provider's ``redis_durable``) when
an acknowledged enqueue must survive a crash of Redis itself.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from semafore.storage.ports import (
    ALL_COUNTED,
    AlreadyExists,
    DeliveryProof,
    LimitRefused,
    NotDurable,
    QueuedEnvelope,
    QueueStore,
    RateDecision,
    RateHit,
    RateLimitStore,
    SendKey,
    SendRecord,
)
from semafore.storage.redis_cluster import is_cluster_url, parse_cluster_url, slot_of
from semafore.storage.redis_pipeline import AutoPipeline, Command, script_command
from semafore.storage.redis_sentinel import open_redis

T = TypeVar("T")

_Limits = tuple["RedisRateLimitStore", Sequence[RateHit], float]
"""A send's rate limits counted in its script: the store, the hits, ``now``."""

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



def _lua_names(names: Sequence[str]) -> str:
    """A Lua table literal of hash field names, built from the Python tuple the adapter
    reads them back with (one list): the names never travel as ARGV, only the values."""
    return "{" + ", ".join(f"'{name}'" for name in names) + "}"


# Every script below touches only keys passed in KEYS (Redis Cluster routes a script by its
# keys and refuses keys of several slots with CROSSSLOT); the Python side lays them out.
#
# Envelope writes shared by enqueue and enqueue_send. Per envelope 4 KEYS from KEYS[k0]:
# envelope hash, device queue, the user's sequence counter, the user's org index; 14 ARGV from
# ARGV[a0]: id, device, org, received_at, then the values of _ENV_FIELDS in order. Registry:
# r KEYS from KEYS[r0] (an org's set of users), r members from ARGV[m0].
_ENQUEUE_FNS = (
    "local env_fields = " + _lua_names(_ENV_FIELDS) + """
local function ids_free(k0, n)
  for i = 0, n - 1 do
    if redis.call('EXISTS', KEYS[k0 + i * 4]) == 1 then return false end
  end
  return true
end
local function write(k0, a0, n)
  for i = 0, n - 1 do
    local k, a = k0 + i * 4, a0 + i * 14
    local seq = redis.call('INCR', KEYS[k + 2])
    local fields = {}
    for j, name in ipairs(env_fields) do
      fields[#fields + 1] = name
      fields[#fields + 1] = ARGV[a + 3 + j]
    end
    fields[#fields + 1] = 'queue'
    fields[#fields + 1] = ARGV[a + 1]
    redis.call('HSET', KEYS[k], unpack(fields))
    redis.call('ZADD', KEYS[k + 1], seq, ARGV[a])
    redis.call('ZADD', KEYS[k + 3], ARGV[a + 3], ARGV[a])
  end
end
local function register(r0, m0, r)
  for i = 0, r - 1 do redis.call('SADD', KEYS[r0 + i], ARGV[m0 + i]) end
end
"""
)

# KEYS: registry (r), envelopes (4n). ARGV: n, r, registry members (r), envelopes (14n)
# -> 1 stored, 0 a delivery id exists (nothing written). All ids are checked first.
_ENQUEUE = (
    _ENQUEUE_FNS
    + """
local n, r = tonumber(ARGV[1]), tonumber(ARGV[2])
if not ids_free(1 + r, n) then return 0 end
register(1, 3, r)
write(1 + r, 3 + r, n)
return 1
"""
)

# The send: from KEYS[k] the ledger entry, ledger index (x: 0 or 1), registry (r), envelopes
# (4n); from ARGV[a] ttl ms, record, send key suffix, accepted_at, x, n, r, registry members,
# envelopes -> {1} recorded and queued; {0, record} already recorded (nothing written); {-1} a
# delivery id exists (nothing written). SET NX with a TTL is the ledger's insert-if-absent; the
# same script queues, so the ledger entry and its envelopes exist together or not at all.
_SEND_FN = """
local function send(k, a)
  local ttl, record, key, at = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local x, n, r = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local recorded = redis.call('GET', KEYS[k])
  if recorded then return {0, recorded} end
  local k0 = k + 1 + x + r
  if not ids_free(k0, n) then return {-1} end
  redis.call('SET', KEYS[k], record, 'PX', ttl, 'NX')
  if x == 1 then redis.call('ZADD', KEYS[k + 1], at, key) end
  register(k + 1 + x, a + 7, r)
  write(k0, a + 7 + r, n)
  return {1}
end
"""

# Rate-limit counters: h KEYS from KEYS[k], per counter (limit, ttl ms) from ARGV[a]. Counted
# in order, stopping at the first that is full -> its 1-based position, 0 if all counted.
_HIT_EACH_FN = """
local function hit_each(k, a, h)
  for i = 0, h - 1 do
    local key = KEYS[k + i]
    local count = tonumber(redis.call('GET', key) or '0')
    if count >= tonumber(ARGV[a + 2 * i]) then return i + 1 end
    count = redis.call('INCR', key)
    if count == 1 then redis.call('PEXPIRE', key, ARGV[a + 2 * i + 1]) end
  end
  return 0
end
"""

_ENQUEUE_SEND = _ENQUEUE_FNS + _SEND_FN + "return send(1, 1)\n"

# The relay's send with its rate limits (RedisQueueStore.enqueue_send_limited): KEYS: the h
# counters, then the send's; ARGV: h, (limit, ttl ms) per counter, then the send's ->
# {-2, position} a counter was full (the send not tried: nothing of it written), else the
# send's answer. One script, so one round trip where there were two (limits, then send).
_ENQUEUE_SEND_LIMITED = (
    _ENQUEUE_FNS
    + _SEND_FN
    + _HIT_EACH_FN
    + """
local h = tonumber(ARGV[1])
local refused = hit_each(1, 2, h)
if refused > 0 then return {-2, refused} end
return send(1 + h, 2 + 2 * h)
"""
)

# Remove envelopes of one user. Per id 3 KEYS: envelope hash, the device queue it is in,
# its org index. ARGV: before ('' = no age condition), ids... An id is removed only if it is
# in that queue (and, with ``before``, indexed earlier than it) -> the ids removed.
_REMOVE = """
local before = ARGV[1]
local removed = {}
for i = 2, #ARGV do
  local id, k = ARGV[i], (i - 2) * 3 + 1
  if redis.call('ZSCORE', KEYS[k + 1], id) then
    local at = redis.call('ZSCORE', KEYS[k + 2], id)
    if before == '' or (at and tonumber(at) < tonumber(before)) then
      redis.call('ZREM', KEYS[k + 1], id)
      redis.call('ZREM', KEYS[k + 2], id)
      redis.call('DEL', KEYS[k])
      removed[#removed + 1] = id
    end
  end
end
return removed
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

# Delivery proofs of one org. KEYS: the org's paging index, its retention index, then one
# proof hash per proof. ARGV: per proof its id, delivered_at and the values of _PROOF_FIELDS
# (11 each) -> how many were stored (a proof hash that exists is kept as it is).
_RECORD_EACH = (
    "local proof_fields = " + _lua_names(_PROOF_FIELDS) + """
local per = 2 + #proof_fields
local stored = 0
for i = 3, #KEYS do
  local a = (i - 3) * per + 1
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local fields = {}
    for j, name in ipairs(proof_fields) do
      fields[#fields + 1] = name
      fields[#fields + 1] = ARGV[a + 1 + j]
    end
    redis.call('HSET', KEYS[i], unpack(fields))
    redis.call('ZADD', KEYS[1], 0, ARGV[a])
    redis.call('ZADD', KEYS[2], ARGV[a + 1], ARGV[a])
    stored = stored + 1
  end
end
return stored
"""
)

# An ack with its delivery proofs (RedisQueueStore.ack_delivered), one server only: it spans
# the user's slot and the org's. KEYS: the device queue, the user's index of org O, O's paging
# and retention indexes, then per id its envelope hash and its proof hash. ARGV: O,
# delivered_at, ids... An id in that queue whose envelope is of org O is removed (as _REMOVE)
# and proven (as _RECORD_EACH: an existing proof is kept) -> {{id, envelope fields...}...
# removed, {ids in the queue of another org (left as they are)}}.
_ACK_DELIVERED = (
    "local proof_fields = " + _lua_names(_PROOF_FIELDS) + """
local org, at = ARGV[1], ARGV[2]
local removed, other = {}, {}
for i = 3, #ARGV do
  local id, k = ARGV[i], 5 + (i - 3) * 2
  if redis.call('ZSCORE', KEYS[1], id) then
    local row = redis.call('HGETALL', KEYS[k])
    local env = {}
    for j = 1, #row, 2 do env[row[j]] = row[j + 1] end
    if env['org_id'] ~= org then
      other[#other + 1] = id
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      redis.call('DEL', KEYS[k])
      if redis.call('EXISTS', KEYS[k + 1]) == 0 then
        env['delivered_at'] = at
        local fields = {}
        for _, name in ipairs(proof_fields) do
          fields[#fields + 1] = name
          fields[#fields + 1] = env[name]
        end
        redis.call('HSET', KEYS[k + 1], unpack(fields))
        redis.call('ZADD', KEYS[3], 0, id)
        redis.call('ZADD', KEYS[4], at, id)
      end
      removed[#removed + 1] = {id, row}
    end
  end
end
return {removed, other}
"""
)

# KEYS: the org's paging index, its retention index, then one proof hash per id.
# ARGV: before, ids... (read from the retention index) -> count forgotten
_EXPIRE_DELIVERIES = """
local before = tonumber(ARGV[1])
local gone = 0
for i = 2, #ARGV do
  local at = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if at and tonumber(at) < before then
    redis.call('DEL', KEYS[i + 1])
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    gone = gone + 1
  end
end
return gone
"""

# KEYS: counter. ARGV: limit, ttl ms -> count after this hit (not incremented past limit)
_HIT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then return count + 1 end
count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return count
"""

_HIT_EACH = _HIT_EACH_FN + "return hit_each(1, 1, #KEYS)\n"



# KEYS: one ledger entry. ARGV: before -> 1 forgotten (accepted before ``before``), else 0.
# Checked against the entry itself, so an entry recorded anew under the same key since the
# index was read is kept.
_FORGET_SEND = """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
if tonumber(cjson.decode(value)['accepted_at']) < tonumber(ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: one sorted set. ARGV: before, members... -> members removed whose score is < before
_UNINDEX = """
local gone = 0
for i = 2, #ARGV do
  local at = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if at and tonumber(at) < tonumber(ARGV[1]) then
    gone = gone + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return gone
"""


def _queue(user_id: str, device_id: str) -> str:
    return f"{user_id}\x00{device_id}"


def _tag(kind: str, value: str) -> str:
    """A Redis Cluster hash tag ``{kind:value}``: keys sharing it hash to one slot. ``%``,
    ``{`` and ``}`` in ``value`` are percent-escaped, so the tag ends where intended and two
    different values never share a tag text (the escaping is injective)."""
    escaped = value.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return f"{{{kind}:{escaped}}}"


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
    """A client plus a key prefix; every adapter of one deployment shares it.

    Key names are built here, one method per owner, so the hash tags (the module docstring's
    layout) have one definition: :meth:`user` (a user's queues, envelopes, ledger entries
    *to* them), :meth:`org` (an org's delivery proofs, ledger index, user registry),
    :meth:`rate` (one rate-limit subject)."""

    def __init__(self, url: str, prefix: str) -> None:
        if not prefix or any(c in prefix for c in "*?[]{}"):
            raise ValueError("prefix: must be non-empty and free of glob and hash-tag characters")
        # A Redis restart (failover, crash, the simulator's kill -9) drops every pooled
        # connection: retry connection errors with backoff for ~5 s instead of failing the
        # request. A retried script never writes twice: each re-checks its preconditions, so
        # a retry whose first run took effect reports the conflict (AlreadyExists) instead.
        # A redis+sentinel:// URL follows the primary through a failover (redis_sentinel); a
        # redis+cluster:// URL routes each key to its slot's node (redis_cluster). A Redis
        # Cluster failover (cluster-node-timeout, the replica's election, the slot-map
        # refresh) took 3.6-9.6 s here, longer than those ~7 s: there, ride out ~17 s.
        retries = 20 if is_cluster_url(url) else 10
        options: dict[str, Any] = {
            "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError],
            "health_check_interval": 5,
        }
        self.client: aioredis.Redis = open_redis(url, **options)
        self._subscriber: aioredis.Redis | None = None
        if is_cluster_url(url):
            # redis-py's asyncio ClusterPubSub cannot PSUBSCRIBE (8.1); classic pub/sub is
            # cluster-wide (a PUBLISH on any node reaches subscribers on every node), so
            # subscriptions go through one plain connection to the first seed node
            host, port = parse_cluster_url(url).nodes[0]
            self._subscriber = aioredis.Redis(host=host, port=port, **options)
        self.cluster = self._subscriber is not None
        """True on a Redis Cluster: a multi-key change is then split into one step per slot
        (:meth:`by_slot`); on one server every change stays one script."""
        self.prefix = prefix
        self.pipeline = None if self.cluster else AutoPipeline(self.client)
        """Coalesces the commands of one event-loop tick into one round trip (redis_pipeline);
        None on Cluster, whose pipeline cannot carry scripts: calls go to the client."""

    async def script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a registered script: auto-pipelined on one server, routed to its slot on
        Cluster."""
        if self.pipeline is None:
            return await script(keys=keys, args=args)
        return await self.pipeline.one(script_command(script, keys, args))

    async def commands(self, *commands: tuple[Any, ...]) -> list[Any]:
        """The replies of plain commands (``("HGETALL", key)``...), in one round trip:
        auto-pipelined on one server, a cluster pipeline (one trip per node) on Cluster."""
        if not commands:
            return []
        if self.pipeline is not None:
            return await self.pipeline.run([Command(c) for c in commands])
        async with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def user(self, user_id: str, *parts: str) -> str:
        return self.key(_tag("u", user_id), *parts)

    def org(self, org_id: str, *parts: str) -> str:
        return self.key(_tag("o", org_id), *parts)

    def rate(self, subject: str, window_index: int) -> str:
        return self.key("rl", _tag("r", subject), str(window_index))

    def by_slot(self, items: Sequence[T], key: Callable[[T], str]) -> list[list[T]]:
        """``items`` grouped so that one group's keys can go to one script: everything in one
        group on a single server, one group per hash slot (in first-seen order) on Cluster."""
        if not items:
            return []
        if not self.cluster:
            return [list(items)]
        groups: dict[int, list[T]] = {}
        for item in items:
            groups.setdefault(slot_of(key(item)), []).append(item)
        return list(groups.values())

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
            elif kind == "set":
                data = b"\x00".join(sorted(_raw(m) for m in await self.client.smembers(key)))
            elif kind == "string":
                data = _raw(await self.client.get(key) or b"")
            else:
                data = _raw(await self.client.dump(key) or b"")
            out.append((f"redis:{key!r}", _raw(key) + b"\x00" + data))
        return out

    async def drop(self) -> None:
        async for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            await self.client.delete(key)

    @property
    def push_client(self) -> aioredis.Redis:
        """The client for pub/sub (:class:`RedisPush`, the cross-replica hub): publish and
        subscribe. :attr:`client` itself, or on Cluster a plain client of the first seed node
        (redis-py's cluster pipeline cannot carry PUBLISH; that node must stay up: while it is
        down pushes are lost, the queue still has the envelopes)."""
        return self._subscriber or self.client

    def pubsub(self, **options: Any) -> PubSub:
        """A pub/sub object on :attr:`push_client`."""
        return self.push_client.pubsub(**options)

    async def close(self) -> None:
        if self.pipeline is not None:
            await self.pipeline.close()
        await self.client.aclose()
        if self._subscriber is not None:
            await self._subscriber.aclose()


class ReplicaWaitError(NotDurable):
    """A send was written on the primary but fewer than ``wanted`` replicas confirmed it
    within the timeout (Redis ``WAIT``): it is **not** acknowledged. The write stays on the
    primary (a retry under the same send key replays it once a replica has it, or records it
    anew on a promoted replica that never got it); ``confirmed`` is how many did."""

    def __init__(self, wanted: int, confirmed: int, timeout: float) -> None:
        super().__init__(
            f"wait_replicas: {confirmed} of {wanted} replicas confirmed within {timeout:g} s"
        )
        self.wanted = wanted
        self.confirmed = confirmed
        self.timeout = timeout


@dataclass(frozen=True)
class ReplicaWait:
    """Acknowledge a send only once ``replicas`` replicas have it (``WAIT replicas
    timeout``), else :class:`ReplicaWaitError` after ``timeout`` seconds. Why: replication
    is asynchronous, so without it a failover can lose acknowledged sends (docs/backends.md
    "Failover under delivery"). It bounds that loss to both copies dying together; Redis
    documents that WAIT does not make Redis strongly consistent. Sentinel topology: WAIT on
    the primary. Redis Cluster: WAIT on the node of each slot the send wrote (a cluster
    formed without replicas, ``RedisClusterGroup(replicas=0)``, can never confirm one, so
    every send there is refused)."""

    replicas: int
    timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("replicas: at least 1 (no ReplicaWait means do not wait)")
        if not 0 < self.timeout <= 60:
            raise ValueError("timeout: within (0, 60] seconds")

    @classmethod
    def parse(cls, text: str) -> ReplicaWait:
        """``N`` or ``N/TIMEOUT_SECONDS`` (``SEMAFORE_REDIS_WAIT``, e.g. ``1/0.5``); a
        :class:`ValueError` names the bad part (``replicas`` or ``timeout``)."""
        replicas, slash, timeout = text.strip().partition("/")
        try:
            count = int(replicas)
        except ValueError:
            raise ValueError(f"replicas: {replicas!r} is not a whole number") from None
        if not slash:
            return cls(count)
        try:
            seconds = float(timeout)
        except ValueError:
            raise ValueError(f"timeout: {timeout!r} is not a number of seconds") from None
        return cls(count, seconds)  # NaN and inf fail __post_init__'s bound

    def as_text(self) -> str:
        """The form :meth:`parse` reads (a child relay's environment)."""
        return f"{self.replicas}/{self.timeout:g}"


class RedisQueueStore(QueueStore):
    """Delivery queues, the send ledger and delivery proofs (module docstring: key layout).

    On one server every port method that changes several keys is one Lua script, as before
    Cluster support. On a Redis Cluster (``redis+cluster://``) a script may only touch one
    slot, so the keys are hash-tagged by owner and a change spanning owners runs per slot:

    - atomic on Cluster too: a send to one user with its ledger entry (the relay's
      ``send``: entry and envelopes share the recipient's tag), an enqueue for one user, an
      ack, a delivery proof, each user's part of an expiry;
    - per slot on Cluster: an enqueue for several users and a broadcast send (``recipient``
      ``*``) write each user's envelopes atomically, then the ledger entry; a refusal or a
      lost race deletes what this call wrote (compensation), but a fetch in between can see
      those envelopes. The org registry (``users``) is written before the envelopes and the
      ledger index after the entry, so a crash between steps leaves only an extra registry
      member or an entry that its own TTL still expires;
    - expiries (``expire``, ``expire_sends``) read an index, then change each owner's keys in
      its own step, on one server too: each removal re-checks its condition, so an entry
      written since the index was read is never removed.

    ``wait`` (:class:`ReplicaWait`): :meth:`enqueue_send` returns only once that many
    replicas have the send, its replay included, else raises :class:`ReplicaWaitError`. On
    Cluster every slot the send wrote (each recipient's envelopes, the ledger entry, the
    org's index and registry) is confirmed by its own node's replicas before the answer.
    """

    def __init__(self, ns: RedisNamespace, *, wait: ReplicaWait | None = None) -> None:
        self.ns = ns
        self.wait = wait
        client = ns.client
        self._enqueue = client.register_script(_ENQUEUE)
        self._remove = client.register_script(_REMOVE)
        self._record_each = client.register_script(_RECORD_EACH)
        self._expire_deliveries = client.register_script(_EXPIRE_DELIVERIES)
        self._enqueue_send = client.register_script(_ENQUEUE_SEND)
        self._enqueue_send_limited = client.register_script(_ENQUEUE_SEND_LIMITED)
        self._ack_delivered = client.register_script(_ACK_DELIVERED)
        self._forget_send = client.register_script(_FORGET_SEND)
        self._unindex = client.register_script(_UNINDEX)

    @property
    def pipelines_sends(self) -> bool:
        """On one server or behind Sentinel without ``WAIT``: a send's first step appends its
        one script to the auto-pipeline, whose batches leave in order on one connection
        (:mod:`semafore.storage.redis_wire`) and whose ``NOSCRIPT`` repairs keep that order
        (``AutoPipeline.ordered``). Not on Cluster (a send may register its users first, a
        round trip before its script), with ``WAIT`` (a send and its ``WAIT`` are two
        steps) nor over redis-py's pipelines (TLS...: each may take another connection)."""
        pipeline = self.ns.pipeline
        return (pipeline is not None and pipeline.ordered and not self.ns.cluster
                and self.wait is None)

    async def dump(self) -> list[tuple[str, bytes]]:
        return await self.ns.dump()

    async def _scripts(
        self, script: AsyncScript, calls: Sequence[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Run ``script`` once per (keys, args): pipelined on one server; on Cluster, where
        redis-py cannot pipeline scripts, as concurrent calls (each routed to its slot)."""
        if self.ns.pipeline is None:
            return list(await asyncio.gather(*(script(keys=k, args=a) for k, a in calls)))
        return await self.ns.pipeline.run([script_command(script, k, a) for k, a in calls])

    # -- key layout -----------------------------------------------------------------------------

    def _envelope_key(self, user_id: str, delivery_id: str) -> str:
        return self.ns.user(user_id, "e", delivery_id)

    def _queue_key(self, user_id: str, device_id: str) -> str:
        return self.ns.user(user_id, "q", device_id)

    def _org_index(self, user_id: str, org_id: str) -> str:
        return self.ns.user(user_id, "o", org_id)

    def _registry(self, org_id: str) -> str:
        return self.ns.org(org_id, "users")

    def _ledger(self, key: SendKey) -> str:
        return self.ns.user(key[3], "s", _send_key(key))

    def _ledger_index(self, org_id: str) -> str:
        return self.ns.org(org_id, "so")

    def _removal_keys(self, user_id: str, device_id: str, org_id: str, delivery_id: str
                      ) -> list[str]:
        return [
            self._envelope_key(user_id, delivery_id),
            self._queue_key(user_id, device_id),
            self._org_index(user_id, org_id),
        ]

    # -- writes ---------------------------------------------------------------------------------

    def _envelope_args(self, envelopes: Sequence[QueuedEnvelope]) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = []
        for e in envelopes:
            user = e.recipient_user_id
            keys += [
                self._envelope_key(user, e.delivery_id),
                self._queue_key(user, e.recipient_device_id),
                self.ns.user(user, "seq"),
                self._org_index(user, e.org_id),
            ]
            args += [e.delivery_id, e.recipient_device_id, e.org_id, _f(e.received_at)]
            for name in _ENV_FIELDS:
                value = getattr(e, name)
                args.append(_f(value) if isinstance(value, float) else value)
        return keys, args

    def _registry_args(self, envelopes: Sequence[QueuedEnvelope]) -> tuple[list[str], list[str]]:
        pairs = dict.fromkeys((e.org_id, e.recipient_user_id) for e in envelopes)
        return [self._registry(org) for org, _ in pairs], [user for _, user in pairs]

    @staticmethod
    def _check_unique(envelopes: Sequence[QueuedEnvelope]) -> None:
        ids = [e.delivery_id for e in envelopes]
        if len(set(ids)) != len(ids):
            raise AlreadyExists("delivery_id")

    async def _register(self, envelopes: Sequence[QueuedEnvelope]) -> None:
        """Cluster: the org registry before the envelopes (idempotent; a crash after it
        leaves a member whose index is empty, which expiry skips)."""
        keys, users = self._registry_args(envelopes)
        async with self.ns.client.pipeline(transaction=False) as pipe:
            for key, user in zip(keys, users, strict=True):
                pipe.sadd(key, user)
            await pipe.execute()

    async def _any_taken(self, envelopes: Sequence[QueuedEnvelope]) -> bool:
        async with self.ns.client.pipeline(transaction=False) as pipe:
            for e in envelopes:
                pipe.exists(self._envelope_key(e.recipient_user_id, e.delivery_id))
            return any(await pipe.execute())

    async def _write_groups(self, envelopes: Sequence[QueuedEnvelope]) -> None:
        """Cluster, several slots: each user's envelopes in one script; all ids checked first,
        and a group refused by a racing writer undoes the groups written before it."""
        if await self._any_taken(envelopes):
            raise AlreadyExists("delivery_id")
        written: list[QueuedEnvelope] = []
        for group in self.ns.by_slot(envelopes, lambda e: self.ns.user(e.recipient_user_id)):
            keys, args = self._envelope_args(group)
            if not await self._enqueue(keys=keys, args=[len(group), 0, *args]):
                await self._undo(written)
                raise AlreadyExists("delivery_id")
            written += group

    async def _undo(self, envelopes: Sequence[QueuedEnvelope]) -> None:
        """Compensation on Cluster: delete envelopes this call queued."""
        for group in self.ns.by_slot(envelopes, lambda e: self.ns.user(e.recipient_user_id)):
            keys = [k for e in group for k in self._removal_keys(
                e.recipient_user_id, e.recipient_device_id, e.org_id, e.delivery_id)]
            await self._remove(keys=keys, args=["", *(e.delivery_id for e in group)])

    async def enqueue(self, envelopes: Sequence[QueuedEnvelope]) -> None:
        self._check_unique(envelopes)
        if not envelopes:
            return
        if not self.ns.cluster:
            reg_keys, users = self._registry_args(envelopes)
            keys, args = self._envelope_args(envelopes)
            if not await self.ns.script(
                self._enqueue, [*reg_keys, *keys], [len(envelopes), len(reg_keys), *users, *args]
            ):
                raise AlreadyExists("delivery_id")
            return
        await self._register(envelopes)
        await self._write_groups(envelopes)

    async def enqueue_send(
        self, record: SendRecord, envelopes: Sequence[QueuedEnvelope]
    ) -> SendRecord | None:
        return await self._send(record, envelopes, None)

    async def enqueue_send_limited(
        self,
        record: SendRecord,
        envelopes: Sequence[QueuedEnvelope],
        ratelimits: RateLimitStore,
        hits: Sequence[RateHit],
        now: float,
    ) -> SendRecord | None:
        """The relay's send with its rate limits in **one** script, so one round trip (was
        two: ``hit_each``, then the send), when ``ratelimits`` is the
        :class:`RedisRateLimitStore` of this namespace on one server or behind Sentinel:
        the counters are counted first and a full one answers :class:`LimitRefused` before
        the send is tried, as the port's two calls would (issue #16 item 4).

        On a Redis Cluster it stays two calls (the port's default): each counter carries its
        own hash tag (``{r:...}``), on another slot than the recipient's send, and one
        script may touch one slot only. The default too for another rate-limit store, and
        for an envelope set repeating a delivery id (counted, then refused, as there)."""
        ids = {e.delivery_id for e in envelopes}
        if (not hits or self.ns.cluster or len(ids) != len(envelopes)
                or not isinstance(ratelimits, RedisRateLimitStore) or ratelimits.ns is not self.ns):
            return await super().enqueue_send_limited(record, envelopes, ratelimits, hits, now)
        return await self._send(record, envelopes, (ratelimits, hits, now))

    async def _send(
        self, record: SendRecord, envelopes: Sequence[QueuedEnvelope], limits: _Limits | None
    ) -> SendRecord | None:
        """:meth:`enqueue_send`; with ``limits`` (one server only) its counters are counted
        first in the same script (:meth:`enqueue_send_limited`)."""
        r = record
        self._check_unique(envelopes)
        value = orjson.dumps(  # json.dumps was 3% of a `local` relay's CPU (a py-spy profile)
            {
                "digest": r.digest.hex(),
                "deliveries": [list(d) for d in r.deliveries],
                "accepted_at": r.accepted_at,
                "expires_at": r.expires_at,
            }
        )
        ttl_ms = max(1, math.ceil((r.expires_at - r.accepted_at) * 1000))
        ledger, index, send = self._ledger(r.key), self._ledger_index(r.org_id), _send_key(r.key)
        head: list[Any] = [ttl_ms, value, send, _f(r.accepted_at)]
        if not self.ns.cluster:  # one script: entry, index, registry and envelopes together
            reg_keys, users = self._registry_args(envelopes)
            keys, args = self._envelope_args(envelopes)
            call = ([ledger, index, *reg_keys, *keys],
                    [*head, 1, len(envelopes), len(reg_keys), *users, *args])
            if limits is not None:  # the counters first, in the same script
                counters = limits[0].counters(limits[1], limits[2])
                call = ([*(k for k, _ in counters), *call[0]],
                        [len(counters), *(a for _, pair in counters for a in pair), *call[1]])
                script = self._enqueue_send_limited
            else:
                script = self._enqueue_send
            if self.wait is None:
                return self._send_result(r, await self.ns.script(script, *call), limits)
            return await self._send_and_wait(r, ledger, script, call, self.wait, limits)
        await self._register(envelopes)
        groups = self.ns.by_slot(envelopes, lambda e: self.ns.user(e.recipient_user_id))
        together = not groups or (
            len(groups) == 1 and slot_of(ledger) == slot_of(self.ns.user(
                groups[0][0].recipient_user_id)))
        # what a WAIT must cover on Cluster: the entry's slot, the org's (index, registry)
        # and each recipient's (envelopes), one marker write in each
        markers = [self.ns.user(r.key[3], "w"), self.ns.org(r.org_id, "w"),
                   *(self.ns.user(g[0].recipient_user_id, "w") for g in groups)]
        if together:  # the relay's send to one user: entry and envelopes in one script
            keys, args = self._envelope_args(envelopes)
            call = ([ledger, *keys], [*head, 0, len(envelopes), 0, *args])
            if self.wait is not None:
                return await self._send_and_wait_on_slots(r, call, markers, self.wait)
            result = await self._enqueue_send(keys=call[0], args=call[1])
        else:  # a broadcast: each user's envelopes, then the entry (docstring)
            recorded = await self.ns.client.get(ledger)
            if recorded is not None:
                if self.wait is not None:
                    await self._confirm_slots([], markers, self.wait)
                return _send_record(r.key, recorded)
            await self._write_groups(envelopes)
            result = await self._enqueue_send(keys=[ledger], args=[*head, 0, 0, 0])
            if int(result[0]) != 1:
                await self._undo(envelopes)
        outcome = self._send_result(r, result)
        index_entry = ("ZADD", index, _f(r.accepted_at), send)
        if self.wait is not None:  # the index rides with the markers, after the entry
            await self._confirm_slots([index_entry] if outcome is None else [], markers,
                                      self.wait)
        elif outcome is None:  # the index after the entry: a crash between leaves the TTL
            await self.ns.client.zadd(index, {send: r.accepted_at})
        return outcome

    async def _send_and_wait_on_slots(
        self, record: SendRecord, call: tuple[list[str], list[Any]], markers: list[str],
        wait: ReplicaWait,
    ) -> SendRecord | None:
        """Cluster, a send to one user: the script and ``WAIT`` in one cluster pipeline,
        so both go on one connection to the slot's node (WAIT counts replicas that have
        *that connection's* writes); then the index and the other slots' markers, confirmed
        the same way (:meth:`_confirm_slots`). ``EVAL`` rather than ``EVALSHA``: a promoted
        replica may not have the script loaded, and a pipeline cannot load it on NOSCRIPT."""
        script = self._enqueue_send.script
        [result], confirmed = await self._write_and_wait(
            [(call[0][0], ("EVAL", script, len(call[0]), *call[0], *call[1]))], wait)
        outcome = self._send_result(record, result)
        index = self._ledger_index(record.org_id)
        entry = [("ZADD", index, _f(record.accepted_at), _send_key(record.key))]
        if outcome is None:  # that WAIT confirmed the entry's slot
            written = slot_of(call[0][0])
            await self._confirm_slots(entry, [m for m in markers if slot_of(m) != written],
                                      wait, confirmed)
        else:  # a replay wrote nothing: the entry's marker covers the recorded send
            await self._confirm_slots([], markers, wait)
        return outcome

    async def _confirm_slots(
        self, writes: list[tuple[Any, ...]], markers: list[str], wait: ReplicaWait,
        confirmed: int | None = None,
    ) -> None:
        """``writes`` (each with its key second) and a short-lived marker in each of
        ``markers``' slots, then ``WAIT`` on every node they went to; raise
        :class:`ReplicaWaitError` unless every node (and ``confirmed``, an earlier count)
        reached ``wait.replicas``. Why a marker: WAIT counts what replicas have of the
        waiting connection's writes, and a primary replicates in order, so a replica that
        has the marker has every earlier write on that node, whichever connection made it."""
        ttl_ms = max(1000, round(wait.timeout * 2000))
        steps = [(str(w[1]), w) for w in writes]
        slots = {slot_of(key) for key, _ in steps}
        for marker in markers:
            if slot_of(marker) not in slots:
                slots.add(slot_of(marker))
                steps.append((marker, ("SET", marker, "1", "PX", ttl_ms)))
        _, least = await self._write_and_wait(steps, wait)
        if confirmed is not None:
            least = min(least, confirmed)
        if least < wait.replicas:
            raise ReplicaWaitError(wait.replicas, least, wait.timeout)

    async def _write_and_wait(
        self, steps: Sequence[tuple[str, tuple[Any, ...]]], wait: ReplicaWait,
    ) -> tuple[list[Any], int]:
        """Each (key, command) of ``steps`` on its key's node, then one ``WAIT`` per node
        after that node's commands, all in one cluster pipeline (one connection per node,
        commands in order): the replies and the fewest replicas any node confirmed."""
        cluster = cast(RedisCluster, self.ns.client)
        timeout_ms = max(1, round(wait.timeout * 1000))
        nodes: dict[str, ClusterNode] = {}
        async with cluster.pipeline() as pipe:
            for key, command in steps:
                pipe.execute_command(*command)
                node = cluster.get_node_from_key(key)
                if node is None:
                    raise ReplicaWaitError(wait.replicas, 0, wait.timeout)
                nodes.setdefault(node.name, node)
            for node in nodes.values():
                pipe.execute_command("WAIT", wait.replicas, timeout_ms, target_nodes=node)
            replies = list(await pipe.execute())
        counts = [int(c) for c in replies[len(steps):]]
        return replies[:len(steps)], min(counts, default=wait.replicas)

    async def _send_and_wait(
        self, record: SendRecord, ledger: str, script: AsyncScript,
        call: tuple[list[str], list[Any]], wait: ReplicaWait, limits: _Limits | None,
    ) -> SendRecord | None:
        """The send script and ``WAIT`` pipelined on one connection (WAIT counts replicas
        that have *this connection's* writes). A replay wrote nothing, so it rewrites the
        entry as it is (``XX KEEPTTL``) and waits for that: replication is ordered, so a
        replica holding the rewrite holds the original send too. A send refused by its
        rate limits (``limits``) wrote nothing to acknowledge: refused whatever WAIT says."""
        timeout_ms = max(1, round(wait.timeout * 1000))
        async with self.ns.client.pipeline(transaction=False) as pipe:
            await script(keys=call[0], args=call[1], client=pipe)
            pipe.execute_command("WAIT", wait.replicas, timeout_ms)
            result, confirmed = await pipe.execute()
        outcome = self._send_result(record, result, limits)
        if outcome is not None:
            async with self.ns.client.pipeline(transaction=False) as pipe:
                pipe.set(ledger, result[1], xx=True, keepttl=True)
                pipe.execute_command("WAIT", wait.replicas, timeout_ms)
                _, confirmed = await pipe.execute()
        if int(confirmed) < wait.replicas:
            raise ReplicaWaitError(wait.replicas, int(confirmed), wait.timeout)
        return outcome

    @staticmethod
    def _send_result(
        record: SendRecord, result: Sequence[Any], limits: _Limits | None = None
    ) -> SendRecord | None:
        if int(result[0]) == 1:
            return None
        if int(result[0]) == -2 and limits is not None:  # a counter was full: nothing sent
            index = int(result[1]) - 1
            raise LimitRefused(index, RedisRateLimitStore.refusal(limits[1], index, limits[2]))
        if int(result[0]) == -1:
            raise AlreadyExists("delivery_id")
        return _send_record(record.key, result[1])

    async def get_send(self, key: SendKey) -> SendRecord | None:
        value = await self.ns.client.get(self._ledger(key))
        return _send_record(key, value) if value is not None else None

    async def expire_sends(self, org_id: str, before: float) -> int:
        index = self._ledger_index(org_id)
        sends = [_s(m) for m in await self.ns.client.zrangebyscore(index, "-inf", f"({before}")]
        if not sends:
            return 0
        gone = await self._scripts(self._forget_send, [
            ([self._ledger(cast(SendKey, tuple(send.split("\x00"))))], [_f(before)])
            for send in sends
        ])
        await self._unindex(keys=[index], args=[_f(before), *sends])
        return sum(int(g) for g in gone)

    # -- reads ----------------------------------------------------------------------------------

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

    async def _rows(self, user_id: str, delivery_ids: Sequence[str]) -> list[dict[bytes, bytes]]:
        return await self.ns.commands(
            *(("HGETALL", self._envelope_key(user_id, i)) for i in delivery_ids)
        )

    async def get_envelopes(
        self, wanted: Sequence[tuple[str, str]]
    ) -> dict[str, QueuedEnvelope]:
        """The still-queued envelopes among ``wanted`` (recipient user id, delivery id)
        pairs, by delivery id, in one round trip per node (an acked or expired one is
        absent). For the cross-replica push hub, which is woken per device with ids
        (``semafore.deploy.redis_push.RedisPushHub``): reading by id, not the queue head,
        cannot resurrect an envelope acked meanwhile. The user names the envelope's slot."""
        pairs = list(dict.fromkeys(wanted))
        if not pairs:
            return {}
        rows = await self.ns.commands(
            *(("HGETALL", self._envelope_key(user_id, i)) for user_id, i in pairs)
        )
        return {i: self._envelope(i, row) for (_, i), row in zip(pairs, rows, strict=True) if row}

    async def fetch(self, user_id: str, device_id: str, limit: int) -> list[QueuedEnvelope]:
        if limit <= 0:
            return []
        [page] = await self.ns.commands(("ZRANGE", self._queue_key(user_id, device_id), 0,
                                         limit - 1))
        ids = [_s(i) for i in page]
        if not ids:
            return []
        rows = await self._rows(user_id, ids)
        return [self._envelope(i, row) for i, row in zip(ids, rows, strict=True) if row]

    async def ack(
        self, user_id: str, device_id: str, delivery_ids: Sequence[str]
    ) -> list[QueuedEnvelope]:
        wanted = list(dict.fromkeys(delivery_ids))
        if not wanted:
            return []
        # read first (the envelopes are returned, and each names its org index), then remove
        # atomically; only ids the script actually removed are returned, so a concurrent ack
        # never reports one twice
        rows = await self._rows(user_id, wanted)
        present = {i: self._envelope(i, row) for i, row in zip(wanted, rows, strict=True) if row}
        if not present:
            return []
        keys = [k for i, e in present.items()
                for k in self._removal_keys(user_id, device_id, e.org_id, i)]
        removed = {_s(i) for i in await self.ns.script(self._remove, keys, ["", *present])}
        return [e for i, e in present.items() if i in removed]

    async def ack_delivered(
        self,
        user_id: str,
        device_id: str,
        org_id: str,
        delivery_ids: Sequence[str],
        delivered_at: float,
    ) -> list[QueuedEnvelope]:
        """The ack and its proofs in **one** script on one server or behind Sentinel: one
        round trip where :meth:`ack` and :meth:`record_deliveries` take three (read, remove,
        prove), and no crash between removal and proof (issue #16 item 4). The script
        covers envelopes of ``org_id``, whose proof keys the call names; any other org's
        (a user in two orgs on one device id) are left to the port's default, as on Cluster,
        where the user's and the org's keys are on different slots."""
        wanted = list(dict.fromkeys(delivery_ids))
        if self.ns.cluster or not wanted:
            return await super().ack_delivered(user_id, device_id, org_id, wanted, delivered_at)
        keys = [self._queue_key(user_id, device_id), self._org_index(user_id, org_id),
                self.ns.org(org_id, "dl"), self.ns.org(org_id, "dt")]
        for delivery_id in wanted:
            keys += [self._envelope_key(user_id, delivery_id),
                     self.ns.org(org_id, "d", delivery_id)]
        removed, other = await self.ns.script(
            self._ack_delivered, keys, [org_id, _f(delivered_at), *wanted])
        acked = [self._envelope(_s(i), dict(zip(row[::2], row[1::2], strict=True)))
                 for i, row in removed]
        if other:
            acked += await super().ack_delivered(
                user_id, device_id, org_id, [_s(i) for i in other], delivered_at)
            position = {i: n for n, i in enumerate(wanted)}
            acked.sort(key=lambda e: position[e.delivery_id])
        return acked

    async def count(self, user_id: str, device_id: str) -> int:
        [count] = await self.ns.commands(("ZCARD", self._queue_key(user_id, device_id)))
        return int(count)

    async def delete_device_queue(self, user_id: str, device_id: str) -> int:
        """Read the queue and remove what was read, until it is empty: the removal re-checks
        queue membership, so an envelope queued meanwhile is removed by the next round, never
        left without its hash or index entry."""
        queue = self._queue_key(user_id, device_id)
        total = 0
        while ids := [_s(i) for i in await self.ns.client.zrange(queue, 0, 999)]:
            async with self.ns.client.pipeline(transaction=False) as pipe:
                for delivery_id in ids:
                    pipe.hget(self._envelope_key(user_id, delivery_id), "org_id")
                orgs = await pipe.execute()
            keys = [k for i, org in zip(ids, orgs, strict=True)
                    for k in self._removal_keys(user_id, device_id, _s(org or ""), i)]
            removed = await self._remove(keys=keys, args=["", *ids])
            total += len(removed)
            if not removed:  # an id without its hash (never written so): drop it from the queue
                await self.ns.client.zrem(queue, *ids)
        return total

    async def expire(self, org_id: str, before: float) -> int:
        """Per user of the org's registry: read its org index, then remove what is older than
        ``before`` in one script on that user's slot."""
        total = 0
        for raw_user in await self.ns.client.smembers(self._registry(org_id)):
            user = _s(raw_user)
            index = self._org_index(user, org_id)
            ids = [_s(i) for i in await self.ns.client.zrangebyscore(index, "-inf", f"({before}")]
            if not ids:
                continue
            async with self.ns.client.pipeline(transaction=False) as pipe:
                for delivery_id in ids:
                    pipe.hget(self._envelope_key(user, delivery_id), "queue")
                devices = await pipe.execute()
            keys = [k for i, device in zip(ids, devices, strict=True)
                    for k in self._removal_keys(user, _s(device or ""), org_id, i)]
            total += len(await self._remove(keys=keys, args=[_f(before), *ids]))
        return total

    # -- delivery proofs (one org's keys share the org's tag) ----------------------------------

    def _proofs_call(self, proofs: Sequence[DeliveryProof]) -> tuple[list[str], list[Any]]:
        """``_RECORD_EACH``'s keys and args for proofs of one org."""
        org = proofs[0].org_id
        keys = [self.ns.org(org, "dl"), self.ns.org(org, "dt")]
        args: list[Any] = []
        for proof in proofs:
            keys.append(self.ns.org(org, "d", proof.delivery_id))
            args += [proof.delivery_id, _f(proof.delivered_at)]
            for name in _PROOF_FIELDS:
                value = getattr(proof, name)
                args.append(_f(value) if isinstance(value, float) else value)
        return keys, args

    async def record_delivery(self, proof: DeliveryProof) -> None:
        if not await self.ns.script(self._record_each, *self._proofs_call([proof])):
            raise AlreadyExists(proof.delivery_id)

    async def record_deliveries(self, proofs: Sequence[DeliveryProof]) -> int:
        """One script per org (an ack's proofs are usually all of one org): the proofs of an
        org share its hash tag, so this is one script on Cluster too."""
        by_org: dict[str, list[DeliveryProof]] = {}
        for proof in proofs:
            by_org.setdefault(proof.org_id, []).append(proof)
        calls = [self._proofs_call(group) for group in by_org.values()]
        return sum(int(n) for n in await self._scripts(self._record_each, calls))

    async def list_deliveries(
        self, org_id: str, after: str | None, limit: int
    ) -> list[DeliveryProof]:
        if limit <= 0:
            return []
        low = "-" if after is None else f"({after}"
        ids = await self.ns.client.zrangebylex(self.ns.org(org_id, "dl"), low, "+", 0, limit)
        async with self.ns.client.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(self.ns.org(org_id, "d", _s(delivery_id)))
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
        retention = self.ns.org(org_id, "dt")
        ids = [_s(i) for i in await self.ns.client.zrangebyscore(retention, "-inf", f"({before}")]
        if not ids:
            return 0
        keys = [self.ns.org(org_id, "dl"), retention, *(self.ns.org(org_id, "d", i) for i in ids)]
        return int(await self._expire_deliveries(keys=keys, args=[_f(before), *ids]))


class RedisRateLimitStore(RateLimitStore):
    """Fixed windows: one counter per key and window, expiring with the window. Each subject's
    counters carry its hash tag; :meth:`hit_each` is one script on one server and, on
    Cluster, one check-and-count per subject in order (each atomic, the sequence not: another
    request's hits can interleave, which a fixed-window limit tolerates)."""

    def __init__(self, ns: RedisNamespace) -> None:
        self.ns = ns
        self._hit = ns.client.register_script(_HIT)
        self._hit_each = ns.client.register_script(_HIT_EACH)

    async def hit(self, key: str, limit: int, window: float, now: float) -> RateDecision:
        index = int(now // window)
        ttl_ms = max(1, math.ceil(window * 1000)) + 1000
        count = int(await self.ns.script(self._hit, [self.ns.rate(key, index)], [limit, ttl_ms]))
        if count > limit:
            return RateDecision(False, max(1, math.ceil((index + 1) * window - now)))
        return RateDecision(True, 0)

    def counters(self, hits: Sequence[RateHit], now: float) -> list[tuple[str, list[int]]]:
        """Each hit's counter key and its (limit, ttl ms): what ``hit_each`` takes in Lua,
        here and in the send script that counts a send's limits
        (:meth:`RedisQueueStore.enqueue_send_limited`)."""
        return [
            (self.ns.rate(key, int(now // window)), [limit, math.ceil(window * 1000) + 1000])
            for key, limit, window in hits
        ]

    @staticmethod
    def refusal(hits: Sequence[RateHit], index: int, now: float) -> RateDecision:
        """The decision for ``hits[index]``, found full at ``now``: retry when its window
        ends."""
        window = hits[index][2]
        return RateDecision(False, max(1, math.ceil((int(now // window) + 1) * window - now)))

    async def hit_each(self, hits: Sequence[RateHit], now: float) -> tuple[int, RateDecision]:
        calls = self.counters(hits, now)
        # one server: one script for all; Cluster: one script per subject, in order
        steps = [calls] if not self.ns.cluster else [[call] for call in calls]
        refused, done = 0, 0  # refused: 1-based, 0: none
        for step in steps:
            answer = int(await self.ns.script(
                self._hit_each, [k for k, _ in step], [a for _, pair in step for a in pair]))
            if answer:
                refused = done + answer
                break
            done += len(step)
        if not refused:
            return ALL_COUNTED, RateDecision(True, 0)
        return refused - 1, self.refusal(hits, refused - 1, now)


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
        channel = self.channel(user_id, device_id)
        return int(await self.ns.push_client.publish(channel, delivery_id))

    async def listen(self, user_id: str, device_id: str) -> AsyncIterator[str]:
        """Delivery ids pushed for this device, until the iterator is closed."""
        pubsub = self.ns.pubsub()
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
