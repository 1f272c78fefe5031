"""One pipelined RESP connection for the auto-pipeline's hot path (issue #16 item 4,
docs/backends.md "Benchmark: embedded vs real backends").

Why: with the relay's Redis round trips already down to one per send and one per ack
(``RedisQueueStore.enqueue_send_limited``, ``ack_delivered``) and the commands of one
event-loop tick coalesced (:mod:`semafore.storage.redis_pipeline`), a py-spy profile of a
``local`` relay replica still put about a third of its CPU in redis-py's pipeline machinery:
a pooled connection checked out per pipeline, each argument encoded in Python, each reply read
by its own coroutine under its own timeout. Measured on the build machine with the relay's
script shape (one ``EVALSHA`` of 32 arguments, 6 per pipeline): 52.6 µs of client CPU per
command through redis-py, 10.5 µs through this connection.

What it is: an :class:`asyncio.Protocol` on one TCP connection. A batch of commands is packed
by hiredis's C packer and written with one ``write()``; replies are parsed by hiredis's C
reader as bytes arrive and handed to the batches in the order they were written (Redis answers
one connection's commands in order), so batches from several flushes may be in flight at once.
Each reply gets what redis-py's pipeline would have given it: the client's response callback
(``HGETALL`` → dict...) and redis-py's own error classes (``NOSCRIPT`` →
:class:`~redis.exceptions.NoScriptError`...), as values, not raised (``raise_on_error=False``).

What it keeps from the client it serves (:func:`wire_for`): the address (for Sentinel, the
primary the Sentinels name on **every** (re)connect, as
:class:`~semafore.storage.redis_sentinel.PrimaryFollowingConnection` does), the credentials,
the database, the socket timeout and the retry policy (a lost connection fails every batch in
flight with :class:`~redis.exceptions.ConnectionError`; each is retried on a new connection
by the client's :class:`~redis.asyncio.retry.Retry`, then becomes
:class:`~semafore.storage.redis_cluster.RedisUnavailable`). Behind Sentinel a ``READONLY``
reply (a demoted primary) drops the connection and retries, as redis-py does.

It speaks the protocol version redis-py's connection would (RESP3 unless the client asked
for RESP2: redis-py 8's default, whose replies its callbacks turn back into the familiar
shapes) and parses with the same hiredis reader, so the replies are the ones redis-py would
have returned (tests/storage/test_redis_wire.py compares them command by command).

Only for what it can serve exactly: plain TCP and redis-py's own connection classes, with a
username/password. TLS (``rediss://``), a Unix socket, a credential provider or another
connection class keep redis-py's pipeline (``wire_for`` answers None).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, InvalidResponse, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import DEFAULT_RESP_VERSION

from semafore.storage.redis_cluster import MISCONFIGURED, RedisUnavailable, translated
from semafore.storage.redis_sentinel import PrimaryFollowingConnection

__all__ = ["Wire", "wire_for"]

_SUPPORTED = (Connection, PrimaryFollowingConnection)


def _parse_error(message: str) -> Exception:
    """redis-py's mapping of an error reply to its exception class, so a caller sees the
    same :class:`~redis.exceptions.NoScriptError` or ``ReadOnlyError`` either way."""
    error: Exception = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    return error


@dataclass
class _Batch:
    future: asyncio.Future[list[Any]]
    count: int
    replies: list[Any] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    """The connection: writes batches, hands replies to them in order.

    While a write is unanswered, batches submitted meanwhile wait and then leave together in
    one write when its last reply arrives (at most one write in flight): under load the
    batches grow by themselves, and a loopback ``send()`` that wakes the Redis process costs
    far more CPU than the bytes it carries (the profile in the module docstring); idle, a
    batch is written at once, so the added latency is at most one round trip."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(protocolError=InvalidResponse, replyError=_parse_error)
        self.batches: deque[_Batch] = deque()
        """Every batch not yet answered, in write order: the written ones, then the held."""
        self.held: list[bytes] = []
        """The packed batches waiting for the write in flight to be answered."""
        self.writes = 0
        """Writes made so far (tests read it: held batches leave together)."""
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def submit(self, packed: bytes, count: int) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None:
            future.set_exception(RedisConnectionError("Connection closed."))
            return future
        self.batches.append(_Batch(future, count))
        self.held.append(packed)
        if not self.unanswered:
            self._write_held()
        return future

    @property
    def unanswered(self) -> int:
        """Batches written whose replies have not all arrived."""
        return len(self.batches) - len(self.held)

    def _write_held(self) -> None:
        assert self.transport is not None
        data = self.held[0] if len(self.held) == 1 else b"".join(self.held)
        self.held = []
        self.writes += 1
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not False:
                if not self.unanswered:
                    raise InvalidResponse("a reply nobody asked for")
                batch = self.batches[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.count:
                    self.batches.popleft()
                    if not batch.future.done():  # its waiter may have timed out
                        batch.future.set_result(batch.replies)
        except InvalidResponse as exc:  # the stream is out of step: nothing after is sound
            self.fail(RedisConnectionError(f"Protocol error from Redis: {exc}"))
            return
        if not self.unanswered and self.held and not self.closed:
            self._write_held()

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self.closed = True
        self._fail_pending(RedisConnectionError(f"Connection closed by server{reason}."))

    def fail(self, error: Exception) -> None:
        """Drop the connection; every batch in flight gets ``error``."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._fail_pending(error)

    def _fail_pending(self, error: Exception) -> None:
        self.held = []
        while self.batches:
            batch = self.batches.popleft()
            if not batch.future.done():
                batch.future.set_exception(error)


class Wire:
    """Batches of commands over one pipelined connection to the server ``client`` talks to
    (module docstring). Built by :func:`wire_for`."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        self._sentinel = isinstance(pool, SentinelConnectionPool)
        self._host = str(kwargs.get("host", "localhost"))
        self._port = int(kwargs.get("port", 6379))
        self._db = int(kwargs.get("db", 0) or 0)
        self._username: str | None = kwargs.get("username")
        self._password: str | None = kwargs.get("password")
        self._resp = int(kwargs.get("protocol") or DEFAULT_RESP_VERSION)
        self._name: str | None = kwargs.get("client_name")
        self._connect_timeout: float | None = kwargs.get("socket_connect_timeout")
        self._timeout: float | None = kwargs.get("socket_timeout")
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._queued = 0  # batches waiting to take the connection (see _connected)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connections = 0
        """Connections opened so far (tests read it: one serves many batches)."""

    async def execute(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The replies of ``commands`` in order, errors as values (redis-py's pipeline with
        ``raise_on_error=False``); a connection the client's retries cannot restore raises
        :class:`RedisUnavailable`."""
        if not commands:
            return []
        try:
            packed = b"".join(hiredis.pack_command(tuple(c)) for c in commands)
        except TypeError as exc:  # redis-py's own error for an argument it cannot encode
            raise DataError(f"Invalid input in a command: {exc}") from exc
        retry = self.client.get_retry()

        async def attempt() -> list[Any]:
            return await self._attempt(packed, len(commands))

        async def run() -> list[Any]:
            if retry is None:
                return await attempt()
            return await retry.call_with_retry(attempt, self._on_failure, _retryable)

        replies = await translated("PIPELINE", run, RedisUnavailable)
        callbacks = self.client.response_callbacks
        for i, (command, reply) in enumerate(zip(commands, replies, strict=True)):
            name = str(command[0]).upper()
            if name in callbacks and not isinstance(reply, Exception):
                replies[i] = callbacks[name](reply)
        return replies

    async def _attempt(self, packed: bytes, count: int) -> list[Any]:
        protocol = await self._connected()
        future = protocol.submit(packed, count)
        try:
            if self._timeout is None:
                replies = await future
            else:
                async with asyncio.timeout(self._timeout):
                    replies = await future
        except TimeoutError as exc:  # later replies would be read as this batch's
            protocol.fail(RedisConnectionError("the connection was dropped after a timeout"))
            raise RedisTimeoutError(f"Timeout reading from {self._host}:{self._port}") from exc
        if self._sentinel and any(isinstance(r, ReadOnlyError) for r in replies):
            protocol.fail(RedisConnectionError("the primary was demoted"))
            raise RedisConnectionError("The previous master is now a slave")
        return replies

    async def _on_failure(self, error: BaseException) -> None:
        """Between retries: nothing to undo (a failed batch's connection is already closed,
        and the next attempt opens a new one)."""

    async def _connected(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a connection (and a lock) serve the loop they were made in
            self._protocol, self._connecting, self._loop = None, asyncio.Lock(), loop
        if self._protocol is not None and not self._protocol.closed and not self._queued:
            return self._protocol
        assert self._connecting is not None
        # concurrent batches share the one new connection, and take it in the order they came:
        # a batch arriving once it is up but before the batches that waited for it have been
        # written would overtake them (the relay relies on the order: AutoPipeline.ordered)
        self._queued += 1
        try:
            async with self._connecting:
                if self._protocol is None or self._protocol.closed:
                    self._protocol = await self._connect()
                return self._protocol
        finally:
            self._queued -= 1

    async def _connect(self) -> _Protocol:
        host, port = self._host, self._port
        pool = self.client.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            host, port = await pool.get_master_address()  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, protocol = await loop.create_connection(_Protocol, host, port)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"Error connecting to {host}:{port}: {exc}") from exc
        self.connections += 1
        # what redis-py's connection says first (its on_connect): the protocol version
        # (RESP3 unless the client asked for 2, so replies have the shapes its callbacks
        # expect), the credentials, the name, the database
        handshake: list[tuple[Any, ...]] = []
        credentials = () if self._password is None else (self._username or "default",
                                                        self._password)
        if self._resp == 3:
            handshake.append(("HELLO", 3, *(("AUTH", *credentials) if credentials else ())))
        elif credentials:
            handshake.append(("AUTH", *credentials[1 if self._username is None else 0:]))
        if self._name:
            handshake.append(("CLIENT", "SETNAME", self._name))
        if self._db:
            handshake.append(("SELECT", self._db))
        if handshake:
            packed = b"".join(hiredis.pack_command(c) for c in handshake)
            replies = await protocol.submit(packed, len(handshake))
            error = next((r for r in replies if isinstance(r, Exception)), None)
            if error is not None:  # wrong credentials or database: not retried, as redis-py
                protocol.fail(RedisConnectionError("handshake refused"))
                raise error
        return protocol

    async def aclose(self) -> None:
        """Close the connection (batches still in flight fail)."""
        if self._protocol is not None:
            self._protocol.fail(RedisConnectionError("Connection closed by the client."))
            self._protocol = None


def _retryable(error: Exception) -> bool:
    """Wrong credentials are not retried (redis-py's ``AuthenticationError`` is a
    ``ConnectionError``, but waiting will not fix it)."""
    return not isinstance(error, MISCONFIGURED)


def wire_for(client: aioredis.Redis) -> Wire | None:
    """A :class:`Wire` to ``client``'s server, or None where it could not serve exactly what
    redis-py would (module docstring): TLS, a Unix socket, a credential provider, another
    connection class."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if pool.connection_class not in _SUPPORTED:
        return None
    if kwargs.get("credential_provider") or kwargs.get("legacy_responses", True) is not True:
        return None
    return Wire(client)
