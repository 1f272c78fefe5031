"""Faults prove they fired (issue #11): every network fault a scenario declares gets a
:class:`~simulator.network.FaultRecord` that counts exactly what it did, and every infra
action on a server replica an :class:`~semafore.deploy.replica_record.InfraRecord` of
what it changed.

A fault that never acted (a ``match`` nobody requests, a device that sends nothing, a WebSocket
fault on HTTP traffic, a shuffle that kept the order) must say so: ``fired`` is False. HTTP
faults run in front of the recording upstream of test_network_http (what reached "the relay",
in which order, is observable exactly); WebSocket faults and replicas run real clients against
the real relay (a Fleet).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from semafore.deploy.inprocess_replicas import ReplicaState
from semafore.deploy.replica_record import InfraRecord
from simulator.fleet import Fleet
from simulator.network import ACTIONS, FaultRecord, LinkStats, Network
from tests.simulator.test_network import bodies, fleet_with, until
from tests.simulator.test_network_http import client, network


def run(body: Callable[[], Awaitable[None]]) -> None:
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    asyncio.run(body())  # type: ignore[arg-type]


def only(record: FaultRecord, **counts: int) -> None:
    """The record counts exactly ``counts`` and nothing else."""
    assert record.acted == Counter(counts), record.acted
    assert record.fired is any(counts.values())


# -- the record itself -------------------------------------------------------------------------


def test_describe_names_kind_scope_channel_direction_and_parameters() -> None:
    def record(kind: Any, **fields: Any) -> FaultRecord:
        base: dict[str, Any] = {"scope": "alice:phone", "channels": frozenset({"ws"}),
                                "directions": frozenset({"down"}), "match": None,
                                "probability": 1.0, "count": None, "installed_at": 0.0}
        return FaultRecord(kind, **{**base, **fields})

    assert record("reorder", window=4).describe() == \
        "reorder on alice:phone (ws down, window 4)"
    assert record("drop", scope=None, channels=frozenset({"http"}), match="PUT /v1/messages/",
                  directions=frozenset({"up", "down"}), probability=0.3, count=2,
                  delay_ms=500).describe() == \
        "drop on every device (http both, PUT /v1/messages/, after 500 ms, p=0.3, count 2)"
    assert record("delay", delay_ms=80, jitter_ms=20).describe() == \
        "delay on alice:phone (ws down, 80 ms +20 jitter)"
    assert record("cut", channels=frozenset({"ws", "http"})).describe() == \
        "cut on alice:phone (ws/http)"


def test_a_record_counts_only_known_actions() -> None:
    rec = FaultRecord("drop", None, frozenset({"ws"}), frozenset({"up"}), None, 1.0, None, 0.0)
    assert not rec.fired
    rec.note("ws_dropped")
    assert rec.fired and rec.acted == Counter(ws_dropped=1)
    with pytest.raises(ValueError, match="dropped_frames"):
        rec.note("dropped_frames")
    assert "refused" in ACTIONS and "ws_reordered" in ACTIONS


# -- HTTP: each fault counts what it did --------------------------------------------------------


def test_http_drop_counts_the_dropped_request_and_the_dropped_response() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            up = net.add_fault("drop", device="a:p", channel="http", direction="up", count=1)
            down = net.add_fault("drop", device="a:p", channel="http", direction="down",
                                 count=1)
            with pytest.raises(httpx.TransportError):
                await http.post("/a", content=b"lost on the way up")
            with pytest.raises(httpx.TransportError):
                await http.post("/a", content=b"answer lost")
            assert (await http.post("/a", content=b"through")).status_code == 200
            assert upstream.seen == ["POST /a answer lost", "POST /a through"]
            only(up, http_requests_dropped=1)
            only(down, http_responses_dropped=1)
            assert net.faults == [up, down]  # declaration order

    run(body)


def test_http_duplicate_counts_each_replayed_copy() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            rec = net.add_fault("duplicate", device="a:p", channel="http")
            for i in range(3):
                await http.post("/a", content=str(i).encode())
            assert len(upstream.seen) == 6
            only(rec, http_duplicated=3)  # a response is never duplicated: "both" acts up only

    run(body)


def test_a_duplicate_drawn_before_a_drop_of_the_same_request_did_nothing() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            dup = net.add_fault("duplicate", device="a:p", channel="http", direction="up")
            drop = net.add_fault("drop", device="a:p", channel="http", direction="up", count=1)
            with pytest.raises(httpx.TransportError):
                await http.post("/a", content=b"x")
            only(dup)  # the request never left: no copy of it either
            await http.post("/a", content=b"y")
            assert upstream.seen == ["POST /a y"] * 2
            only(dup, http_duplicated=1)
            only(drop, http_requests_dropped=1)

    run(body)


def test_http_delay_counts_only_the_matched_requests_and_a_zero_delay_nothing() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            late = net.add_fault("delay", device="a:p", channel="http", direction="up",
                                 match="POST /late", delay_ms=30)
            nothing = net.add_fault("delay", device="a:p", channel="http", direction="down")
            for path in ("/late", "/early", "/late/2", "/other"):
                await http.post(path, content=b"x")
            assert len(upstream.seen) == 4
            only(late, http_delayed=2)
            only(nothing)  # 0 ms +0 jitter: drawn for every response, delayed none

    run(body)


def held(stats: LinkStats, n: int) -> Callable[[], bool]:
    """The link has read ``n`` requests (each goes into the reorder window as it is read)."""
    return lambda: stats.http_requests == n


def test_http_reorder_counts_the_requests_released_out_of_their_arrival_position() -> None:
    async def trial(seed: int) -> tuple[list[str], int, int]:
        async with network(seed=seed, flush_s=30.0) as (net, upstream):
            rec = net.add_fault("reorder", device="a:p", channel="http", direction="up",
                                window=3)
            link = net.links["a:p"]
            names = ["A", "B", "C"]
            clients = [client(net) for _ in names]
            calls = []
            for arrived, (name, http) in enumerate(zip(names, clients, strict=True), 1):
                calls.append(asyncio.create_task(http.post("/r", content=name.encode())))
                await until(held(link.stats, arrived))  # in the window, in this order
            await asyncio.gather(*calls)
            for http in clients:
                await http.aclose()
            released = [seen.rsplit(" ", 1)[1] for seen in upstream.seen]
            moved = sum(1 for got, sent in zip(released, names, strict=True) if got != sent)
            assert rec.acted["http_reordered"] == link.stats.http_reordered
            return released, moved, rec.acted["http_reordered"]

    async def body() -> None:
        outcomes = [await trial(seed) for seed in range(1, 7)]
        for released, moved, counted in outcomes:
            assert sorted(released) == ["A", "B", "C"]
            assert counted == moved
        assert {moved == 0 for _, moved, _ in outcomes} == {True, False}  # both happen

    run(body)


def test_http_cut_counts_the_open_connection_it_aborted_and_each_refusal() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            await http.post("/a", content=b"keep-alive connection now open")
            rec = net.add_fault("cut", device="a:p", channel="http")
            await until(lambda: rec.acted["connections_cut"] == 1)
            for _ in range(2):
                async with client(net) as fresh:
                    with pytest.raises(httpx.TransportError):
                        await fresh.post("/a", content=b"refused")
            only(rec, connections_cut=1, refused=2)
            assert net.links["a:p"].stats.refused == 2 and net.links["a:p"].stats.cut == 1
            net.heal("a:p")
            assert rec.healed_at is not None
            async with client(net) as fresh:
                assert (await fresh.post("/a", content=b"healed")).status_code == 200
            only(rec, connections_cut=1, refused=2)  # healed: it acts no more
            assert upstream.seen == ["POST /a keep-alive connection now open", "POST /a healed"]

    run(body)


def test_a_global_rule_counts_on_one_record_for_every_device() -> None:
    async def body() -> None:
        async with network(devices=("a:p", "b:p")) as (net, upstream):
            rec = net.add_fault("drop", channel="http", direction="up", count=2)
            cut = net.add_fault("cut", channel="ws")  # no WebSocket here: nothing to cut
            for device in ("a:p", "b:p"):
                async with client(net, device) as http:
                    with pytest.raises(httpx.TransportError):
                        await http.post("/x", content=b"dropped")
            only(rec, http_requests_dropped=2)
            assert [link.stats.http_dropped_requests for link in net.links.values()] == [1, 1]
            only(cut)
            assert rec.scope is None and len(net.faults) == 2
            assert upstream.seen == []

    run(body)


# -- faults that never act -----------------------------------------------------------------------


def test_a_match_nobody_requests_and_a_ws_fault_on_http_traffic_never_fire() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            nobody = net.add_fault("drop", device="a:p", channel="http",
                                   match="PUT /v1/nobody")
            ws_only = net.add_fault("duplicate", device="a:p", channel="ws")
            for i in range(3):
                assert (await http.post("/a", content=str(i).encode())).status_code == 200
            assert len(upstream.seen) == 3  # traffic flowed, untouched
            only(nobody)
            only(ws_only)
            net.heal()
            assert nobody.healed_at is not None and ws_only.healed_at is not None

    run(body)


def test_heal_of_one_device_ends_only_its_records() -> None:
    async def body() -> None:
        async with network(devices=("a:p", "b:p")) as (net, _upstream):
            a = net.add_fault("delay", device="a:p", delay_ms=5)
            b = net.add_fault("cut", device="b:p")
            every = net.add_fault("drop", channel="ws")
            net.heal("a:p")
            assert a.healed_at is not None and b.healed_at is None and every.healed_at is None
            net.heal()
            assert b.healed_at is not None and every.healed_at is not None

    run(body)


def test_a_cut_on_a_device_without_a_link_cuts_nothing_and_says_so() -> None:
    async def body() -> None:
        net = Network("127.0.0.1", 9)
        rec = net.add_fault("cut", device="ghost:p")
        only(rec)
        assert net.faults == [rec]

    run(body)


# -- WebSocket: each fault counts what it did (real clients, real relay) ---------------------------


def test_ws_drop_duplicate_and_delay_count_the_envelope_frames_they_hit() -> None:
    async def body() -> None:
        fleet = await fleet_with(["alice:p", "bob:p"])
        try:
            net = fleet.network
            assert net is not None
            alice = fleet.client("alice:p")
            await alice.send_text("bob", b"bootstrap")
            assert await fleet.quiesce() == {}
            drop = net.add_fault("drop", device="bob:p", direction="down", count=1)
            dup = net.add_fault("duplicate", device="bob:p", direction="down")
            delay = net.add_fault("delay", device="bob:p", direction="down", delay_ms=20)
            silent = net.add_fault("drop", device="bob:p", direction="up")  # bob sends nothing
            for i in range(3):
                await alice.send_text("bob", f"m{i}".encode())
            await until(lambda: bob_has(fleet, 2))  # the first one was dropped
            only(drop, ws_dropped=1)
            only(dup, ws_duplicated=2)  # the dropped frame was not copied
            only(delay, ws_delayed=2)
            only(silent)  # acks go up, but no envelope ("send") frame did
            stats = net.links["bob:p"].stats
            assert (stats.dropped, stats.duplicated, stats.delayed) == (1, 2, 2)
        finally:
            await fleet.close()

    run(body)


def bob_has(fleet: Fleet, n: int) -> bool:
    return len(bodies(fleet, "bob:p")) - 1 >= n


async def _ws_reorder(seed: int) -> tuple[list[bytes], FaultRecord, int]:
    fleet = await fleet_with(["alice:p", "bob:p"], seed=seed)
    try:
        net = fleet.network
        assert net is not None
        net.reorder_flush_s = 30.0  # the window fills before any flush
        alice = fleet.client("alice:p")
        await alice.send_text("bob", b"bootstrap")
        assert await fleet.quiesce() == {}
        rec = net.add_fault("reorder", device="bob:p", direction="down", window=2)
        for i in range(2):
            await alice.send_text("bob", f"r{i}".encode())
        assert await fleet.quiesce(timeout=10) == {}
        return bodies(fleet, "bob:p")[1:], rec, net.links["bob:p"].stats.reordered
    finally:
        await fleet.close()


def test_a_reorder_whose_shuffle_keeps_the_order_counts_nothing() -> None:
    async def body() -> None:
        got, rec, reordered = await _ws_reorder(seed=1)  # seed 1 leaves the pair in place
        assert got == [b"r0", b"r1"]
        only(rec)
        assert reordered == 0  # the link's stats are as honest

    run(body)


def test_a_reorder_that_swaps_two_frames_counts_both() -> None:
    async def body() -> None:
        got, rec, reordered = await _ws_reorder(seed=4)  # seed 4 swaps them
        assert got == [b"r1", b"r0"]
        only(rec, ws_reordered=2)
        assert reordered == 2

    run(body)


def test_ws_cut_counts_the_socket_it_aborted_and_each_refused_reconnect() -> None:
    async def body() -> None:
        fleet = await fleet_with(["alice:p", "bob:p"])
        try:
            net = fleet.network
            assert net is not None
            bob = fleet.client("bob:p")
            rec = net.add_fault("cut", channel="ws")
            await until(lambda: rec.acted["refused"] >= 2)  # both devices try to reconnect
            assert rec.acted["connections_cut"] == 2  # one push socket per device
            assert rec.acted["refused"] == net.totals().refused
            assert set(rec.acted) <= {"connections_cut", "refused"}
            await fleet.client("alice:p").send_text("bob", b"over HTTP")  # not cut
            assert [r.content.body for r in await bob.poll()] == [b"over HTTP"]
            assert set(rec.acted) <= {"connections_cut", "refused"}
        finally:
            await fleet.close()

    run(body)


# -- replicas: each infra action counts what it changed ------------------------------------


async def _replica_fleet(pins: dict[str, int]) -> Fleet:
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    fleet = Fleet(seed=41, replicas=2, pins={**pins, "operator-org:console": 0})
    await fleet.start(["org"])
    await fleet.add_org("org", ["a", "b"])
    for ref in ("a:p", "b:p"):
        await fleet.add_device(ref, connect=True)
    await fleet.connect_all()
    return fleet


def _served(fleet: Fleet, index: int) -> int:
    """Connections the replica's relay (uvicorn) serves: one per client connection open
    through its front, seen from the other side of the front."""
    server: Any = fleet.replica(index)._server
    return len(server.server_state.connections)


def test_replica_stop_kill_and_start_count_what_they_changed() -> None:
    async def body() -> None:
        fleet = await _replica_fleet({"a:p": 0, "b:p": 1})
        try:
            b = fleet.client("b:p")
            open_before = _served(fleet, 1)
            assert open_before >= 1  # at least b's push socket
            stop = await fleet.stop_relay(replica=1)
            assert stop.acted == Counter(stopped=1, connections_closed=open_before)
            again = await fleet.stop_relay(replica=1)
            assert not again.fired and again.reason == "replica-1 is already stopped"
            assert again.describe() == \
                "stop replica 1: nothing changed (replica-1 is already stopped)"
            killed_stopped = await fleet.stop_relay(replica=1, kill=True)
            assert not killed_stopped.fired
            await until(lambda: b.connected)  # failed over to replica 0
            start = await fleet.start_relay(replica=1)
            assert start.acted == Counter(started=1) and start.replica == 1
            assert not (await fleet.start_relay(replica=1)).fired  # already running
            await b.disconnect()
            b.connect()
            await b.wait_connected(20)  # back on replica 1
            open_before = _served(fleet, 1)
            kill = await fleet.stop_relay(replica=1, kill=True)
            assert kill.acted == Counter(killed=1, connections_reset=open_before,
                                         in_flight_cancelled=1)  # b's push socket task
            restart = await fleet.restart_relay(replica=1)  # stopped: only started
            assert restart.acted == Counter(started=1) and restart.action == "restart"
            assert fleet.replica(1).state is ReplicaState.RUNNING
        finally:
            await fleet.close()

    run(body)


def _raw_request(path: str = "/v1/health") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + await reader.readexactly(length)


def test_a_pause_counts_what_its_frozen_front_holds_and_unpause_what_it_releases() -> None:
    async def body() -> None:
        fleet = await _replica_fleet({"a:p": 0, "b:p": 0})  # replica 1 serves only us
        try:
            host, port = fleet.replica(1).address
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_raw_request())
            assert (await _read_response(reader)).startswith(b"HTTP/1.1 200")
            pause = fleet.pause_replica(1)
            assert pause.acted == Counter(paused=1)
            again = fleet.pause_replica(1)
            assert not again.fired and again.reason == "replica-1 is already paused"
            writer.write(_raw_request())  # on the open connection: its bytes wait
            late_reader, late_writer = await asyncio.open_connection(host, port)  # accepted,
            late_writer.write(_raw_request())  # then held before the relay ever sees it
            request = len(_raw_request())
            await until(lambda: pause.acted["bytes_held"] == request
                        and pause.acted["connections_held"] == 1)
            unpause = fleet.unpause_replica(1)
            assert unpause.acted == Counter(resumed=1, bytes_released=request,
                                            connections_released=1)
            assert (await _read_response(reader)).startswith(b"HTTP/1.1 200")
            assert (await _read_response(late_reader)).startswith(b"HTTP/1.1 200")
            assert pause.acted == Counter(paused=1, bytes_held=request, connections_held=1)
            idle = fleet.unpause_replica(1)
            assert not idle.fired and idle.reason == "replica-1 is running, not paused"
            for w in (writer, late_writer):
                w.close()
        finally:
            await fleet.close()

    run(body)


def test_stopping_a_paused_replica_releases_what_it_held_then_stops_it() -> None:
    async def body() -> None:
        fleet = await _replica_fleet({"a:p": 0, "b:p": 0})
        try:
            host, port = fleet.replica(1).address
            pause = fleet.pause_replica(1)
            sock = socket.create_connection((host, port))
            try:
                await until(lambda: pause.acted["connections_held"] == 1)
                stop = await fleet.stop_relay(replica=1)
                assert stop.acted == Counter(resumed=1, connections_released=1, stopped=1,
                                             connections_closed=1)
            finally:
                sock.close()
        finally:
            await fleet.close()

    run(body)


def test_records_of_every_replica_add_up() -> None:
    whole = InfraRecord("stop", None)
    one = InfraRecord("stop", 0)
    one.note("stopped")
    one.note("connections_closed", 3)
    none = InfraRecord("stop", 1, reason="replica-1 is already stopped")
    whole.merge(one)
    whole.merge(none)
    assert whole.acted == Counter(stopped=1, connections_closed=3) and whole.fired
    assert whole.describe() == "stop every replica: stopped 1, connections_closed 3"
    with pytest.raises(ValueError, match="frames_dropped"):
        whole.note("frames_dropped")
    whole.note("stopped", 0)
    assert whole.acted == Counter(stopped=1, connections_closed=3)
