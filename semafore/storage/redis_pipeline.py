"""Auto-pipelining for the Redis adapters: the commands that concurrent requests issue in one
event-loop tick leave as **one** pipeline (one ``send()``, one reply read) instead of one round
trip each (issue #16 item 4, docs/backends.md "Benchmark: embedded vs real backends").

Why: on the 2-core build machine a py-spy profile of a relay replica on the ``local``
backends put ~31% of its samples in the ``send()`` of redis-py's socket writes; a loopback
write that wakes another process costs far more CPU than building the command. A relay with
many sockets in flight issues several commands per tick (rate-limit counters, send scripts,
acks of other sockets); coalescing them pays the system call once per tick.

What stays as it was: each unit (one command, or the commands one adapter call needs, e.g.
the ``HGETALL``s of an ack) gets exactly the replies it would get alone, and a reply that is
an error raises for that unit only. A pipeline is not a transaction; every write the adapters
send is one Lua script (atomic by itself), so interleaving units of different requests in one
pipeline changes nothing a unit can observe. Units submitted in one tick are written in
submission order on one connection, so Redis runs them in that order. Scripts go as
``EVALSHA``; a ``NOSCRIPT`` reply (a restarted or flushed Redis) loads the script and re-runs
just those commands (``NOSCRIPT`` means the command did not run). Connection errors are
retried by the client's :class:`redis.asyncio.retry.Retry` like any pipeline.

The pipelines go over the auto-pipeline's own pipelined connection
(:mod:`semafore.storage.redis_wire`: hiredis packs and parses, batches in flight share one
connection), or redis-py's pipeline where that connection could not serve exactly (TLS...).

Single server and Sentinel only: redis-py's cluster pipeline cannot carry scripts, so on a
Redis Cluster the adapters call the client directly (:class:`semafore.storage.redis.
RedisNamespace`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from semafore.storage.redis_wire import wire_for


@dataclass
class Command:
    """One Redis command of a unit: its arguments and, for ``EVALSHA``, the script (so a
    ``NOSCRIPT`` reply can load it)."""

    args: tuple[Any, ...]
    script: AsyncScript | None = None


def script_command(script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Command:
    """``EVALSHA sha numkeys keys... args...`` for a registered script."""
    return Command(("EVALSHA", script.sha, len(keys), *keys, *args), script)


@dataclass
class _Unit:
    commands: list[Command]
    future: asyncio.Future[list[Any]]
    replies: list[Any] = field(default_factory=list)


class AutoPipeline:
    """Coalesce the units submitted during one event-loop tick into one pipeline.

    ``stats`` counts ``pipelines`` sent and ``units`` carried (the ratio is the coalescing
    the benchmark's load achieved; tests read it to see that concurrent calls shared a trip).
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.wire = wire_for(client)
        """The pipelined connection the pipelines go over (:mod:`semafore.storage.redis_wire`);
        None where it cannot serve exactly what redis-py would (TLS...): redis-py's pipeline."""
        self._pending: list[_Unit] = []
        self._scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        self.stats = {"pipelines": 0, "units": 0}
        self._last_done: asyncio.Future[None] | None = None  # the latest pipeline's end
        self._in_flight = 0  # pipelines sent and not finished (their reloads included)
        self._hold: asyncio.Future[None] | None = None  # set while a NOSCRIPT is repaired

    @property
    def ordered(self) -> bool:
        """Units take effect in the order submitted, across pipelines: one FIFO connection
        (the wire), and a ``NOSCRIPT`` repaired before anything sent later runs (:meth:`_send`).
        Not over redis-py's pipelines, which may each take another pooled connection."""
        return self.wire is not None

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """The replies of ``commands`` (in order), sent with whatever else this tick sends."""
        loop = asyncio.get_running_loop()
        unit = _Unit(list(commands), loop.create_future())
        self._pending.append(unit)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_soon)
        return await unit.future

    async def one(self, command: Command) -> Any:
        """The reply of one command (see :meth:`run`)."""
        return (await self.run([command]))[0]

    def _flush_soon(self) -> None:
        self._scheduled = False
        units, self._pending = self._pending, []
        if not units:
            return
        task = asyncio.get_running_loop().create_task(self._flush(units))
        self._flushes.add(task)  # held until done: a task without a reference may vanish
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, units: list[_Unit]) -> None:
        try:
            await self._send(units)
        except BaseException as exc:  # every waiter hears of it, then it propagates
            for unit in units:
                if not unit.future.done():
                    unit.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for unit in units:
            if unit.future.done():  # its caller was cancelled meanwhile
                continue
            error = next((r for r in unit.replies if isinstance(r, Exception)), None)
            if error is not None:
                unit.future.set_exception(error)
            else:
                unit.future.set_result(unit.replies)

    async def _send(self, units: list[_Unit]) -> None:
        """One pipeline of ``units``, and its repair if the server lost its scripts.

        ``NOSCRIPT`` means the command did not run; re-running it later must not let anything
        submitted after it run first (:attr:`ordered`: a socket's sends are queued in the order
        started). So, over the wire: the first ``NOSCRIPT`` holds every pipeline not yet sent;
        each pipeline already in flight (all of them ``NOSCRIPT`` too: nothing loaded a script
        since) repairs in the order sent, its ``SCRIPT LOAD`` and re-runs in one write on the
        same connection; the held pipelines leave once the last one has."""
        while self._hold is not None:
            await asyncio.shield(self._hold)
        commands = [c for unit in units for c in unit.commands]
        previous, done = self._last_done, asyncio.get_running_loop().create_future()
        self._last_done = done
        self._in_flight += 1
        try:
            replies = await self._pipeline(commands)
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if missing:  # the server lost its scripts: load them, re-run what did not run
                await self._repair(commands, replies, missing, previous)
        finally:
            self._in_flight -= 1
            done.set_result(None)
            if self._last_done is done:
                self._last_done = None
            if self._hold is not None and self._in_flight == 0:
                self._hold.set_result(None)
                self._hold = None
        self.stats["pipelines"] += 1
        self.stats["units"] += len(units)
        position = 0
        for unit in units:
            unit.replies = replies[position : position + len(unit.commands)]
            position += len(unit.commands)

    async def _repair(
        self, commands: list[Command], replies: list[Any], missing: list[int],
        previous: asyncio.Future[None] | None,
    ) -> None:
        scripts = {id(commands[i].script): commands[i].script for i in missing}
        loads = [s for s in scripts.values() if s is not None]
        if self.wire is None:  # redis-py's pipelines: no order across them to keep
            for script in loads:
                script.sha = await self.client.script_load(script.script)
            retried = await self._pipeline([_with_sha(commands[i]) for i in missing])
        else:
            if self._hold is None:
                self._hold = asyncio.get_running_loop().create_future()
            if previous is not None:  # pipelines sent before this one repair first
                await asyncio.shield(previous)
            answers = await self.wire.execute(
                [("SCRIPT", "LOAD", script.script) for script in loads]
                + [_with_sha(commands[i]).args for i in missing]
            )
            for script, sha in zip(loads, answers, strict=False):
                if isinstance(sha, Exception):
                    raise sha
                script.sha = sha if isinstance(sha, str) else bytes(sha).decode()
            retried = answers[len(loads):]
        for i, reply in zip(missing, retried, strict=True):
            replies[i] = reply

    async def _pipeline(self, commands: Sequence[Command]) -> list[Any]:
        if self.wire is not None:
            return await self.wire.execute([c.args for c in commands])
        async with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command.args)
            return list(await pipe.execute(raise_on_error=False))

    async def close(self) -> None:
        """Wait for pipelines already sent (their callers are owed replies)."""
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        if self.wire is not None:
            await self.wire.aclose()


def _with_sha(command: Command) -> Command:
    """The command again with its script's current sha (after a ``SCRIPT LOAD``)."""
    if command.script is None:
        return command
    return Command(("EVALSHA", command.script.sha, *command.args[2:]), command.script)
