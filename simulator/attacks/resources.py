"""Attacks on the relay's resources (issue 13 F-5, F-6, F-7, F-9): sockets, queues,
one-time prekeys, connections. Each asserts a documented bound (docs/server.md "Limits"),
named by a parameter so a relay configured otherwise can be replayed with its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import websockets
from websockets.exceptions import ConnectionClosed

from semafore.protocol.address import DeviceAddress
from simulator.attacks.accounts import junk_drv1
from simulator.attacks.base import Arena, Outcome, Request
from simulator.attacks.wire import Session, Wire, close_quietly


async def _insider(wire: Wire, arena: Arena, request: Request, device: str) -> Session:
    """A session of the attacking member (``actor``) on a device of the attack's own."""
    assert request.actor is not None  # the loader requires it (AttackSpec.needs_actor)
    return await wire.must_login(arena.org_of[request.actor], request.actor,
                                 f"{device}-{arena.tag}")


async def socket_amplification(arena: Arena, request: Request) -> Outcome:
    """F-5: open many WebSockets with one device's token and read none of them; the relay
    must keep at most its per-device cap open (a newer one closes the oldest, 4409)."""
    out = Outcome()
    wanted, bound = request.count("sockets"), request.count("max_open")
    sockets: list[websockets.ClientConnection] = []
    async with Wire(arena, arena.attacker_address) as wire:
        _, _, boss = await wire.own_org("sockets")
        try:
            for _ in range(wanted):
                try:
                    sockets.append(await wire.open_socket(boss.access_token))
                    out.answer("open a socket", 101)
                except (OSError, websockets.InvalidStatus, TimeoutError) as exc:
                    out.answer("open a socket", getattr(getattr(exc, "response", None),
                                                        "status_code", 0), type(exc).__name__)
            await asyncio.sleep(request.number("settle_s"))
            closes: Counter[str] = Counter()
            for ws in sockets:
                try:
                    await asyncio.wait_for(ws.recv(), 0.2)
                except ConnectionClosed as exc:
                    closes[str(exc.rcvd.code if exc.rcvd else "no close frame")] += 1
                except TimeoutError:
                    closes["open"] += 1
            out.notes += [f"sockets {state}: {n}" for state, n in sorted(closes.items())]
            if closes["open"] > bound:
                out.gained(f"{closes['open']} sockets held open on one device (bound "
                           f"{bound})")
            elif len(sockets) <= bound:
                out.undecided = (f"only {len(sockets)} socket(s) opened: the cap of {bound} "
                                 "was never tested")
        finally:
            await close_quietly(sockets)
    return out


async def queue_flood(arena: Arena, request: Request) -> Outcome:
    """F-6: as a member, send junk to one user as fast as the relay takes it; the relay
    must refuse beyond its per-sender queue quota (429 + Retry-After)."""
    assert request.victim is not None
    out = Outcome()
    sends, size = request.count("sends"), request.count("size")
    bound = request.count("max_accepted")
    async with Wire(arena, arena.attacker_address) as wire:
        me = await _insider(wire, arena, request, "flood")
        found = await wire.call("GET", f"/v1/identities/{request.victim}", token=me.access_token)
        out.answer("look up the victim's devices", found.status, found.code)
        if not found.ok:
            out.undecided = f"the victim's devices could not be looked up ({found.status})"
            return out
        devices = [(d["device_id"], d["registration_id"]) for d in found.body["devices"]]
        accepted = 0
        for i in range(sends):
            answer = await wire.call("PUT", f"/v1/messages/{request.victim}",
                                     token=me.access_token, json={
                "message_id": f"flood-{arena.tag}-{i}",
                "envelopes": [{"device_id": d, "registration_id": r, "body": junk_drv1(size)}
                              for d, r in devices]})
            out.answer("flooding send", answer.status, answer.code)
            accepted += answer.ok
            if answer.status == 429 and answer.retry_after is None:
                out.notes.append("a 429 without Retry-After")
        out.notes.append(f"accepted {accepted} of {sends} sends of {size} bytes")
        if accepted > bound:
            out.gained(f"queued {accepted} messages ({accepted * size} bytes) into "
                       f"{request.victim}'s queue (bound {bound})")
        elif not any(k.endswith(" 429 rate_limited") for k in out.answers):
            out.undecided = (f"no send was refused 429: {accepted} accepted never reached the "
                             "quota (send more than it)")
    return out


async def opk_drain(arena: Arena, request: Request) -> Outcome:
    """F-9: as a member, fetch one user's bundles over and over, each claiming a one-time
    prekey per device; the relay must stop one requester at its per-pair quota."""
    assert request.victim is not None
    out = Outcome()
    bound = request.count("max_claims")
    claimed: Counter[str] = Counter()
    dry: set[str] = set()
    async with Wire(arena, arena.attacker_address) as wire:
        me = await _insider(wire, arena, request, "drain")
        for _ in range(request.count("fetches")):
            answer = await wire.call("GET", f"/v1/keys/{request.victim}", token=me.access_token)
            out.answer("claiming bundle fetch", answer.status, answer.code)
            if answer.ok:
                for d in answer.body["devices"]:
                    if d.get("opk"):
                        claimed[d["device_id"]] += 1
                    else:
                        dry.add(d["device_id"])
    victim = request.victim  # asserted above; a closure does not keep the narrowing

    def of(device: str) -> DeviceAddress:  # reports name a device user:device (SPEC §2)
        return DeviceAddress(victim, device)

    out.notes += [f"claimed {n} OPK(s) of {of(d)}" for d, n in sorted(claimed.items())]
    for device, n in sorted(claimed.items()):
        if n > bound:
            out.gained(f"claimed {n} one-time prekeys of {of(device)} (bound {bound})")
    for device in sorted(dry):
        out.gained(f"{of(device)} ran out of one-time prekeys")
    if not out.succeeded and not claimed:
        out.undecided = f"no one-time prekey of {request.victim} was claimed at all"
    elif not out.succeeded and not any(k.endswith(" 429 rate_limited") for k in out.answers):
        out.undecided = "no fetch was refused 429: the quota was never reached"
    return out


async def slowloris(arena: Arena, request: Request) -> Outcome:
    """F-7: open connections that trickle a request head a line at a time and never finish
    it, while a legitimate client keeps asking; the relay must close the trickling ones
    after its header timeout and keep serving."""
    out = Outcome()
    host, port = arena.url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
    hold, trickle = request.number("hold_s"), request.number("trickle_s")
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(request.count("connections")):
            try:
                reader, writer = await asyncio.open_connection(
                    host, int(port), local_addr=(arena.attacker_address, 0))
            except OSError as exc:
                out.answer("open a connection", 0, type(exc).__name__)
                continue
            writer.write(b"GET /v1/health HTTP/1.1\r\nHost: relay\r\n")
            conns.append((reader, writer))
            out.answer("open a trickling connection", 0)
        loop = asyncio.get_running_loop()
        deadline, served, probes = loop.time() + hold, 0, 0
        async with Wire(arena, arena.legit_address) as legit:
            while loop.time() < deadline:
                for _, writer in conns:
                    if not writer.is_closing():
                        with contextlib.suppress(OSError):
                            writer.write(b"X-Trickle: 1\r\n")
                probes += 1
                with contextlib.suppress(OSError, TimeoutError):
                    served += (await legit.call("GET", "/v1/health")).ok
                await asyncio.sleep(trickle)
        out.legit["legitimate requests served during the hold"] = served == probes
        if not conns:
            out.undecided = "no trickling connection could be opened"
        out.notes.append(f"legitimate requests served: {served} of {probes}")
        held = 0
        answers: Counter[str] = Counter()
        for reader, _ in conns:
            try:
                data = await asyncio.wait_for(reader.read(256), 0.05)
            except TimeoutError:
                held += 1
                continue
            except OSError:
                data = b""
            answers["408" if b" 408 " in data[:20] else ("closed" if not data else "other")] += 1
        out.notes += [f"connections {k} by the relay: {v}" for k, v in sorted(answers.items())]
        out.notes.append(f"connections still held after {hold:g} s: {held}")
        if held:
            out.gained(f"{held} of {len(conns)} trickling connections held for {hold:g} s")
    finally:
        for _, writer in conns:
            writer.close()
    return out
