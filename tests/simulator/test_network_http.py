"""HTTP faults of the network layer (issue 5): whole requests (``up``) and responses (``down``)
are dropped, delayed, duplicated and reordered, deterministically from the seed.

The first half drives a :class:`~simulator.network.Network` in front of a small recording
HTTP/1.1 server (real sockets, real httpx), so what reached "the relay" and in which order is
observable exactly. The second half runs real clients against the real relay (a
:class:`~simulator.fleet.Fleet`) for the cases that matter to the product: a send whose answer
is lost, duplicated sends and acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import pytest

from simulator.fleet import Fleet
from simulator.network import Network

T = TypeVar("T")


def run(body: Callable[[], Awaitable[T]]) -> T:
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    return asyncio.run(body())  # type: ignore[arg-type]


# -- a recording upstream ---------------------------------------------------------------------


@dataclass
class Upstream:
    """An HTTP/1.1 keep-alive server that records every request it answers, in order.

    ``GET /chunked`` answers with a chunked body, ``GET /close`` with a body delimited by
    closing the connection, ``POST /slow`` after ``slow_s``; everything else echoes JSON."""

    seen: list[str] = field(default_factory=list)
    slow_s: float = 0.0
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ")
                headers = {k.lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if path == "/slow":
                    await asyncio.sleep(self.slow_s)
                self.seen.append(f"{method} {path} {body.decode()}".strip())
                if path == "/chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                elif path == "/close":
                    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil EOF")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    out = json.dumps({"n": len(self.seen), "echo": body.decode()}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(out), out))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def network(seed: int = 5, devices: tuple[str, ...] = ("a:p",),
                  flush_s: float = 0.25) -> AsyncIterator[tuple[Network, Upstream]]:
    upstream = Upstream()
    await upstream.start()
    net = Network("127.0.0.1", upstream.port, seed=seed, reorder_flush_s=flush_s)
    for device in devices:
        await net.link(device)
    try:
        yield net, upstream
    finally:
        await net.close()
        await upstream.close()


def client(net: Network, device: str = "a:p") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=net.links[device].url, timeout=10.0)


# -- framing -----------------------------------------------------------------------------------


def test_unfaulted_http_passes_byte_for_byte_keepalive_chunked_and_close_delimited() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            assert (await http.post("/a", content=b"one")).json() == {"n": 1, "echo": "one"}
            assert (await http.post("/a", content=b"two")).json() == {"n": 2, "echo": "two"}
            assert (await http.get("/chunked")).content == b"hello world"
            assert (await http.get("/close")).content == b"until EOF"
            assert (await http.post("/a", content=b"3")).json()["n"] == 5
            assert upstream.seen[2:4] == ["GET /chunked", "GET /close"]
            link = net.links["a:p"]
            assert link.stats.http_requests == 5
            assert link.stats.connections == 2  # keep-alive, then a new one after the close
            ups = [c.data for c in net.captured if c.direction == "up" and c.channel == "http"]
            assert len(ups) == 5 and ups[0].startswith(b"POST /a HTTP/1.1") and \
                ups[0].endswith(b"\r\n\r\none")  # whole requests, body included

    run(body)


# -- each fault --------------------------------------------------------------------------------


def test_dropped_request_never_reaches_the_relay_and_the_client_sees_a_reset() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            net.add_fault("drop", device="a:p", channel="http", direction="up", count=1)
            with pytest.raises(httpx.TransportError):
                await http.post("/a", content=b"lost")
            assert upstream.seen == []
            assert (await http.post("/a", content=b"retry")).json()["n"] == 1  # count lapsed
            assert upstream.seen == ["POST /a retry"]
            assert net.links["a:p"].stats.http_dropped_requests == 1

    run(body)


def test_drop_with_delay_ms_is_a_loss_the_client_notices_by_its_timeout() -> None:
    async def body() -> None:
        async with network() as (net, upstream):
            net.add_fault("drop", device="a:p", channel="http", direction="up", count=1,
                          delay_ms=30_000)
            async with httpx.AsyncClient(base_url=net.links["a:p"].url, timeout=0.2) as http:
                with pytest.raises(httpx.ReadTimeout):  # silence, not a reset
                    await http.post("/a", content=b"lost")
                assert upstream.seen == []
                assert (await http.post("/a", content=b"next")).status_code == 200

    run(body)


def test_dropped_response_is_lost_after_the_relay_processed_the_request() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            net.add_fault("drop", device="a:p", channel="http", direction="down", count=1)
            with pytest.raises(httpx.TransportError):
                await http.put("/v1/messages/bob", content=b"m1")
            assert upstream.seen == ["PUT /v1/messages/bob m1"]  # the relay did it
            assert (await http.put("/v1/messages/bob", content=b"m1")).json()["n"] == 2
            assert net.links["a:p"].stats.http_dropped_responses == 1

    run(body)


def test_duplicated_request_reaches_the_relay_twice_and_the_client_gets_one_answer() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            net.add_fault("duplicate", device="a:p", channel="http", direction="both")
            first = await http.post("/v1/messages/ack", content=b"d1")
            assert first.json() == {"n": 1, "echo": "d1"}  # the original's answer
            assert upstream.seen == ["POST /v1/messages/ack d1"] * 2  # replayed before it
            second = await http.post("/v1/messages/ack", content=b"d2")
            assert second.json()["n"] == 3  # no stray answer left on the keep-alive connection
            assert net.links["a:p"].stats.http_duplicated == 2

    run(body)


def test_delayed_request_is_overtaken_by_a_concurrent_one() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            net.add_fault("delay", device="a:p", channel="http", direction="up",
                          match="POST /late", delay_ms=300)
            late = asyncio.create_task(http.post("/late", content=b"A"))
            await asyncio.sleep(0.05)
            await http.post("/early", content=b"B")
            await late
            assert upstream.seen == ["POST /early B", "POST /late A"]
            assert net.links["a:p"].stats.http_delayed == 1

    run(body)


def test_delayed_response_arrives_after_a_concurrent_one() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            net.add_fault("delay", device="a:p", channel="http", direction="down",
                          match="POST /late", delay_ms=300)
            order: list[str] = []

            async def call(path: str) -> None:
                await http.post(path, content=b"x")
                order.append(path)

            late = asyncio.create_task(call("/late"))
            await asyncio.sleep(0.05)
            await call("/early")
            await late
            assert upstream.seen[0] == "POST /late x"  # the relay answered it first ...
            assert order == ["/early", "/late"]  # ... but its answer came last

    run(body)


def test_match_limits_a_fault_to_one_method_and_path_prefix() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            net.add_fault("drop", device="a:p", channel="http", match="PUT /v1/messages/")
            assert (await http.get("/v1/messages")).status_code == 200
            assert (await http.post("/v1/messages/bob", content=b"x")).status_code == 200
            with pytest.raises(httpx.TransportError):
                await http.put("/v1/messages/bob", content=b"x")
            assert upstream.seen == ["GET /v1/messages", "POST /v1/messages/bob x"]
            with pytest.raises(ValueError, match="channel"):
                net.add_fault("drop", match="GET /", channel="both")

    run(body)


def test_ws_only_fault_leaves_http_alone() -> None:
    async def body() -> None:
        async with network() as (net, upstream), client(net) as http:
            net.add_fault("drop", device="a:p", channel="ws")
            assert (await http.post("/a", content=b"kept")).status_code == 200
            assert upstream.seen == ["POST /a kept"]

    run(body)


def _reorder_trial(seed: int) -> list[str]:
    """Two devices send one request each at the same moment under a global reorder."""

    async def body() -> list[str]:
        async with network(seed=seed, devices=("a:p", "b:p"), flush_s=30.0) as (net, upstream):
            record = net.add_fault("reorder", channel="http", direction="up", window=4)
            async with client(net, "a:p") as a, client(net, "b:p") as b:
                await asyncio.gather(
                    a.post("/a", content=b"a1"), b.post("/b", content=b"b1"),
                    a.post("/a", content=b"a2"), b.post("/b", content=b"b2"),
                )
            # only units released out of their arrival position count (never exactly one)
            moved = sum(link.stats.http_reordered for link in net.links.values())
            assert moved == record.acted["http_reordered"] and moved in (0, 2, 3, 4)
            return upstream.seen

    return run(body)


def test_reorder_releases_concurrent_requests_one_by_one_in_a_seeded_order() -> None:
    orders = {seed: _reorder_trial(seed) for seed in (1, 2, 3, 4)}
    for seen in orders.values():
        assert sorted(seen) == ["POST /a a1", "POST /a a2", "POST /b b1", "POST /b b2"]
    assert _reorder_trial(3) == orders[3]  # same seed, same order, whatever the loop did
    assert len({tuple(o) for o in orders.values()}) > 1  # and the seed does decide it


def test_reorder_window_is_flushed_when_idle_and_on_heal() -> None:
    async def body() -> None:
        async with network(flush_s=0.1) as (net, upstream), client(net) as http:
            net.add_fault("reorder", device="a:p", channel="http", window=5)
            assert (await http.post("/a", content=b"alone")).status_code == 200  # flushed
            net.heal("a:p")
            net.add_fault("reorder", device="a:p", channel="http", direction="up", window=5)
            net.reorder_flush_s = 30.0
            pending = asyncio.create_task(http.post("/a", content=b"held"))
            await asyncio.sleep(0.1)
            assert upstream.seen == ["POST /a alone"]
            net.heal("a:p")
            assert (await pending).status_code == 200
            assert upstream.seen == ["POST /a alone", "POST /a held"]

    run(body)


def test_http_fault_draws_are_deterministic_per_seed_and_independent_of_ws() -> None:
    async def trial(seed: int, ws_noise: bool) -> list[str]:
        async with network(seed=seed) as (net, upstream), client(net) as http:
            net.add_fault("drop", device="a:p", channel="http", direction="up",
                          probability=0.5)
            if ws_noise:  # WebSocket draws come from another stream: they shift nothing
                for _ in range(7):
                    net.links["a:p"].rng.random()
            for i in range(16):
                with contextlib.suppress(httpx.TransportError):
                    await http.post("/a", content=str(i).encode())
            return upstream.seen

    async def body() -> None:
        first, again, noisy = await trial(9, False), await trial(9, False), await trial(9, True)
        assert first == again == noisy and 0 < len(first) < 16
        assert await trial(10, False) != first

    run(body)


def test_cut_of_the_ws_channel_keeps_http_working() -> None:
    async def body() -> None:
        fleet = Fleet(seed=4, network=True, capture=True)
        await fleet.start(["org"])
        await fleet.add_org("org", ["alice", "bob"])
        for ref in ("alice:p", "bob:p"):
            await fleet.add_device(ref, connect=True)
        await fleet.connect_all()
        try:
            net = fleet.network
            assert net is not None
            net.add_fault("cut", channel="ws")
            bob = fleet.client("bob:p")
            for _ in range(100):
                if not bob.connected:
                    break
                await asyncio.sleep(0.02)
            assert not bob.connected
            await fleet.client("alice:p").send_text("bob", b"over HTTP")  # PUT, not a frame
            got = await bob.poll()
            assert [r.content.body for r in got] == [b"over HTTP"]
            assert net.links["bob:p"].stats.refused + net.links["bob:p"].stats.cut > 0
        finally:
            await fleet.close()

    run(body)


# -- the product cases, real relay ----------------------------------------------------------


async def _pair(seed: int) -> Fleet:
    fleet = Fleet(seed=seed, network=True, capture=True)
    await fleet.start(["org"])
    await fleet.add_org("org", ["alice", "bob"])
    for ref in ("alice:p", "bob:p"):
        await fleet.add_device(ref, connect=True)
    await fleet.connect_all()
    alice = fleet.client("alice:p")
    await alice.send_text("bob", b"bootstrap")
    assert await fleet.quiesce(timeout=15) == {}
    await alice.disconnect()  # alice's sends now go over HTTP (PUT /v1/messages/{user})
    return fleet


async def _lost_send_response(seed: int) -> tuple[list[bytes], int, int]:
    """Alice sends once; the relay's answer to her PUT is lost; her client retries."""
    fleet = await _pair(seed)
    try:
        assert fleet.network is not None
        fleet.network.add_fault("drop", device="alice:p", channel="http", direction="down",
                                match="PUT /v1/messages/", count=1)
        alice, bob = fleet.client("alice:p"), fleet.client("bob:p")
        await alice.send_text("bob", b"sent once, answered late")
        assert alice.http.retries >= 1
        assert fleet.network.links["alice:p"].stats.http_dropped_responses == 1
        assert await fleet.quiesce(timeout=15) == {}
        await bob.poll()  # whatever else the relay queued for bob is fetched and processed
        return [r.content.body for r in bob.inbox], bob.counters.duplicates, alice.http.retries
    finally:
        await fleet.close()


def test_lost_send_response_client_retries_and_the_message_is_shown_once() -> None:
    inbox, _, _ = run(lambda: _lost_send_response(21))
    assert inbox == [b"bootstrap", b"sent once, answered late"]


def test_lost_send_response_retry_is_not_queued_twice_by_the_relay() -> None:
    """The relay's send ledger answers the retry with the original deliveries (docs/server.md
    "Messages": idempotent sends), so bob receives one copy and has nothing to drop."""
    inbox, duplicates, retries = run(lambda: _lost_send_response(21))
    assert retries >= 1
    assert inbox == [b"bootstrap", b"sent once, answered late"]
    assert duplicates == 0


def test_duplicated_send_and_ack_requests_are_harmless() -> None:
    async def body() -> None:
        fleet = await _pair(22)
        try:
            net = fleet.network
            assert net is not None
            bob = fleet.client("bob:p")
            await bob.disconnect()  # bob fetches and acks over HTTP
            net.add_fault("duplicate", channel="http", direction="up")
            alice = fleet.client("alice:p")
            for i in range(3):
                await alice.send_text("bob", f"d{i}".encode())
            got = await bob.poll()
            assert [r.content.body for r in got] == [b"d0", b"d1", b"d2"]
            assert await bob.poll() == []  # duplicated acks deleted nothing twice, nothing left
            page = await bob.http.json("GET", "/v1/messages")
            assert page["envelopes"] == []
            stats = net.totals()
            assert stats.http_duplicated >= 3 + 2  # 3 PUTs, then GETs and acks
            net.heal()
            await alice.send_text("bob", b"after")
            assert [r.content.body for r in await bob.poll()] == [b"after"]
        finally:
            await fleet.close()

    run(body)


@pytest.mark.parametrize("garbage", [
    b"PUT /a HTTP/1.1\r\nContent-Length: many\r\n\r\n",
    b"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"PUT /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
])
def test_malformed_request_closes_that_connection_only(garbage: bytes) -> None:
    async def body() -> None:
        async with network() as (net, upstream):
            reader, writer = await asyncio.open_connection("127.0.0.1", net.links["a:p"].port)
            writer.write(garbage)
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, nothing answered
            writer.close()
            assert upstream.seen == []
            async with client(net) as http:  # the link still serves the next connection
                assert (await http.post("/a", content=b"ok")).status_code == 200

    run(body)
