"""Relay replicas in the simulator (issue 5: "stop/kill/restart server replicas"; seed §3.4):
N in-process relays on one set of stores, push across them, devices assigned to a replica and
failing over when it is down; pause holds everything until unpause."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.deploy.inprocess_replicas import ReplicaError, ReplicaState
from simulator.fleet import Fleet
from simulator.placement import assign, preference


@given(seed=st.integers(0, 2**32), count=st.integers(1, 8),
       address=st.from_regex(r"[a-z]{1,8}:[a-z0-9]{1,6}", fullmatch=True))
def test_assignment_is_a_pure_function_of_seed_address_and_count(
    seed: int, count: int, address: str
) -> None:
    first = assign(seed, address, count)
    assert 0 <= first < count
    assert assign(seed, address, count) == first
    order = preference(first, count)
    assert order[0] == first and sorted(order) == list(range(count))


def test_a_pin_overrides_the_seeded_assignment() -> None:
    assert assign(1, "alice:phone", 3, {"alice:phone": 2}) == 2
    assert assign(1, "bob:phone", 3, {"alice:phone": 2}) == assign(1, "bob:phone", 3)


def test_seeded_assignment_spreads_devices_over_the_replicas() -> None:
    counts = [0, 0, 0]
    for i in range(300):
        counts[assign(7, f"u{i}:d", 3)] += 1
    assert min(counts) > 60  # every replica gets a fair share


def test_a_pin_outside_the_replica_set_is_refused() -> None:
    with pytest.raises(ValueError, match="replica 2"):
        Fleet(replicas=2, pins={"alice:phone": 2})
    with pytest.raises(ValueError, match="aimed at a url"):
        Fleet(replicas=2, url="http://127.0.0.1:9")


async def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def _two_replica_fleet(seed: int) -> Fleet:
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    fleet = Fleet(seed=seed, replicas=2, pins={"a:p": 0, "b:p": 1})
    await fleet.start(["org"])
    await fleet.add_org("org", ["a", "b"])
    await fleet.add_device("a:p", connect=True)
    await fleet.add_device("b:p", connect=True)
    await fleet.connect_all()
    return fleet


def _run(body: Callable[[Fleet], Awaitable[None]], seed: int) -> None:
    async def main() -> None:
        fleet = await _two_replica_fleet(seed)
        try:
            await body(fleet)
        finally:
            await fleet.close()

    asyncio.run(main())


def _connections(fleet: Fleet, index: int) -> int:
    """Live device sockets held by one replica's relay (its push hub's registry)."""
    app: Any = fleet.replica(index).app
    return sum(len(c) for c in app.state.relay.hub._connections.values())


def test_devices_on_different_replicas_get_pushes_across_replicas() -> None:
    async def body(fleet: Fleet) -> None:
        assert fleet.route("a:p")[0] == fleet.replica(0).address
        assert fleet.route("b:p")[0] == fleet.replica(1).address
        assert _connections(fleet, 0) == 1 and _connections(fleet, 1) == 1  # a on 0, b on 1
        await fleet.client("a:p").send_text("b", b"across replicas")
        assert await fleet.quiesce(timeout=20, idle=10) == {}
        assert [r.content.body for r in fleet.client("b:p").inbox] == [b"across replicas"]

    _run(body, seed=31)


def test_killed_replica_devices_fail_over_and_nothing_is_lost_or_duplicated() -> None:
    async def body(fleet: Fleet) -> None:
        a, b = fleet.client("a:p"), fleet.client("b:p")
        await a.send_text("b", b"before")
        assert await fleet.quiesce(timeout=20, idle=10) == {}
        reconnects = b.counters.reconnects
        await fleet.stop_relay(replica=1, kill=True)
        assert fleet.replica(1).state is ReplicaState.STOPPED
        await _eventually(lambda: b.counters.reconnects > reconnects and b.connected)
        assert _connections(fleet, 0) == 2  # b failed over to replica 0
        for i in range(5):
            await a.send_text("b", f"during #{i}".encode())
        assert await fleet.quiesce(timeout=30, idle=10) == {}
        bodies = [r.content.body for r in b.inbox]
        assert bodies == [b"before"] + [f"during #{i}".encode() for i in range(5)]

    _run(body, seed=32)


def test_a_killed_replica_resets_connections_while_a_stopped_one_closes_them() -> None:
    async def body(fleet: Fleet) -> None:
        b = fleet.client("b:p")
        ws = b._ws
        assert ws is not None
        await fleet.stop_relay(replica=1)
        await _eventually(lambda: ws.close_code is not None)
        assert ws.close_code == 1012  # graceful: the relay said "service restart"
        await _eventually(lambda: b.connected)
        await fleet.start_relay(replica=1)
        await b.disconnect()
        b.connect()
        await b.wait_connected(20)
        assert _connections(fleet, 1) == 1  # back on its own replica once it is up
        killed = b._ws
        assert killed is not None
        await fleet.stop_relay(replica=1, kill=True)
        await _eventually(lambda: killed.close_code is not None)
        assert killed.close_code == 1006  # abnormal: no close frame, the connection was reset

    _run(body, seed=33)


def test_a_paused_replica_holds_a_send_until_unpause() -> None:
    async def body(fleet: Fleet) -> None:
        a, b = fleet.client("a:p"), fleet.client("b:p")
        fleet.pause_replica(0)
        assert fleet.replica(0).state is ReplicaState.PAUSED
        send = asyncio.ensure_future(a.send_text("b", b"held by the pause"))
        await asyncio.sleep(3.0)  # past the client's WebSocket send timeout (2 s)
        assert not send.done()  # nothing answered: the request hangs, the socket stays open
        assert b.inbox == []
        assert a.connected
        fleet.unpause_replica(0)
        await asyncio.wait_for(send, 30)
        assert await fleet.quiesce(timeout=20, idle=10) == {}
        assert [r.content.body for r in b.inbox] == [b"held by the pause"]  # exactly once

    _run(body, seed=34)


def test_a_paused_recipient_replica_delivers_after_unpause() -> None:
    async def body(fleet: Fleet) -> None:
        a, b = fleet.client("a:p"), fleet.client("b:p")
        fleet.pause_replica(1)
        await a.send_text("b", b"queued while b's replica sleeps")
        await asyncio.sleep(1.0)
        assert b.inbox == [] and b.connected  # nothing pushed, nothing reset
        fleet.unpause_replica(1)
        assert await fleet.quiesce(timeout=20, idle=10) == {}
        assert [r.content.body for r in b.inbox] == [b"queued while b's replica sleeps"]

    _run(body, seed=35)


def test_replica_state_changes_are_checked() -> None:
    async def body(fleet: Fleet) -> None:
        with pytest.raises(ReplicaError, match="replica 5 does not exist"):
            fleet.replica(5)
        idle = fleet.unpause_replica(0)  # running: nothing to continue, nothing changes
        assert not idle.fired and idle.reason == "replica-0 is running, not paused"
        await fleet.stop_relay(replica=0)
        with pytest.raises(ReplicaError, match="not running"):  # no process to signal
            fleet.pause_replica(0)
        with pytest.raises(ReplicaError, match="not paused"):
            fleet.unpause_replica(0)

    _run(body, seed=36)


def test_a_replica_whose_port_is_taken_does_not_start_and_leaves_nothing_running() -> None:
    async def body(fleet: Fleet) -> None:
        replica = fleet.replica(1)
        await fleet.stop_relay(replica=1)
        squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(replica.address)  # another process took the port meanwhile
        squatter.listen()
        try:
            with pytest.raises(ReplicaError, match="stays busy"):
                await fleet.start_relay(replica=1)
            assert replica.state is ReplicaState.STOPPED
        finally:
            squatter.close()
        await fleet.start_relay(replica=1)
        assert fleet.replica(1).state is ReplicaState.RUNNING

    _run(body, seed=37)
