"""The live interop matrix (SPEC §7, seed §4.5): every ordered pair of platform adapters holds a
scripted conversation through one relay, then the plaintext-absence oracle (SPEC §8) scans
everything the relay held.

Static vectors catch byte drift; desynchronisation bugs only show when two implementations
converse. For a cell ``sender → receiver`` the *sender* implementation hosts alice's phone and
the *receiver* implementation bob's phone (and, for fan-out, each side's second device comes
from the other implementation). Each implementation of a cell runs in its own adapter
process, so ``A → A`` is two processes talking. Loss and reordering are the gate's doing: a
message "lost" is encrypted but never handed to the relay (``live.send`` with
``deliver: false``), and the receiver is told in which order to open what it fetched.

Every request has a deadline; a hung, crashing or garbling adapter fails its cell with that
verdict and the gate moves on. An adapter without the live operations gets ``unsupported``
cells, never a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from semafore.gate.runner import Impl
from semafore.gate.transport import AdapterFailure, AdapterProcess
from semafore.gate.verdict import Verdict
from semafore.protocol import frame as drv1
from semafore.protocol import smx1
from semafore.protocol.entropy import SystemEntropy
from semafore.protocol.errors import ProtocolError

LIVE_OPS = (
    "live.device.create",
    "live.register",
    "live.send",
    "live.receive",
    "live.reinstall",
    "session.digest",
)
DEFAULT_TIMEOUT_S = 20.0
STARTUP_BUDGET_S = 30.0  # a fresh adapter's first answer (capabilities) may take this long
DEFAULT_ORG = "live-gate"
STEPS = (
    "setup",
    "bootstrap",
    "reply",
    "both-directions",
    "out-of-order",
    "lost-first-message",
    "simultaneous-initiation",
    "fan-out",
    "reinstall",
    "oracle",
)


class StepFailure(Exception):
    """A step of a cell did not go as scripted; ``envelope`` names the envelope involved."""

    def __init__(self, verdict: Verdict, detail: str, envelope: str | None = None) -> None:
        super().__init__(detail)
        self.verdict = verdict
        self.detail = detail
        self.envelope = envelope


@dataclass
class CellResult:
    """One ordered pair: rows are the sender implementation, columns the receiver."""

    sender: str
    receiver: str
    verdict: Verdict = Verdict.PASS
    step: str | None = None
    envelope: str | None = None
    detail: str = ""
    steps_passed: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.sender}->{self.receiver}"

    def fail(self, step: str, failure: StepFailure) -> None:
        if self.verdict is Verdict.PASS:
            self.verdict, self.step = failure.verdict, step
            self.detail, self.envelope = failure.detail, failure.envelope

    def to_json(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "receiver": self.receiver,
            "verdict": self.verdict.value,
            "step": self.step,
            "envelope": self.envelope,
            "detail": self.detail,
            "steps_passed": self.steps_passed,
            "duration_ms": round(self.duration_s * 1000, 3),
        }


@dataclass
class LiveReport:
    impls: list[Impl]
    relay: str
    cells: list[CellResult] = field(default_factory=list)
    capabilities: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    oracle: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.cells) and all(c.verdict is Verdict.PASS for c in self.cells)

    def cell(self, sender: str, receiver: str) -> CellResult:
        for c in self.cells:
            if (c.sender, c.receiver) == (sender, receiver):
                return c
        raise KeyError(f"{sender}->{receiver}")

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "pass" if self.passed else "fail",
            "relay": self.relay,
            "impls": [{"name": i.name, "command": i.command} for i in self.impls],
            "capabilities": self.capabilities,
            "cells": [c.to_json() for c in self.cells],
            "oracle": self.oracle,
        }


# -- one adapter device, seen from the gate ----------------------------------------------------


@dataclass
class _Device:
    user: str
    device: str
    proc: AdapterProcess
    impl: str

    @property
    def address(self) -> str:
        return f"{self.user}:{self.device}"


@dataclass
class _Message:
    message_id: str
    sender: str  # address
    plaintext: bytes
    envelopes: dict[str, bytes] = field(default_factory=dict)  # recipient address -> body


class _Cell:
    """The scripted conversation of one ordered pair (see ``docs/gate.md``, live matrix)."""

    def __init__(
        self,
        index: int,
        sender: Impl,
        receiver: Impl,
        relay_url: str,
        org: str,
        timeout_s: float,
        register_canary: Callable[[str, bytes], None],
        register_identifier: Callable[[str, str], None],
    ) -> None:
        self.prefix = f"c{index}"
        self.sender, self.receiver = sender, receiver
        self.relay_url, self.org = relay_url, org
        self.timeout_s = timeout_s
        self.procs = {
            "S": AdapterProcess(sender.command),
            "R": AdapterProcess(receiver.command),
        }
        self.devices: dict[str, _Device] = {}
        self.nonces: dict[bytes, str] = {}
        self.sent: dict[str, _Message] = {}
        self.seq = 0
        self.entropy = SystemEntropy()
        self.register_canary = register_canary
        self.register_identifier = register_identifier

    def users(self) -> list[str]:
        return [f"{self.prefix}-{u}" for u in ("alice", "bob", "erin", "frank", "carol", "dave")]

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop()

    # -- requests ------------------------------------------------------------------------

    def call(self, dev: _Device, op: str, args: Mapping[str, Any]) -> dict[str, Any]:
        try:
            if not dev.proc.running:  # start-up (imports, JIT…) gets its own, larger budget
                dev.proc.request("capabilities", {}, time.monotonic() + max(
                    self.timeout_s, STARTUP_BUDGET_S))
            response = dev.proc.request(op, args, time.monotonic() + self.timeout_s)
        except AdapterFailure as exc:
            detail = f"{dev.impl} ({dev.address}) {op}: {exc.detail}"
            raise StepFailure(exc.verdict, detail) from None
        if response.get("ok") is not True:
            name = str(response.get("error"))
            verdict = Verdict.UNSUPPORTED if name == "Unsupported" else Verdict.FAIL
            raise StepFailure(
                verdict,
                f"{dev.impl} ({dev.address}) {op} answered {name}: {response.get('detail', '')}",
            )
        result = response["result"]
        assert isinstance(result, dict)
        return result

    def create(self, side: str, user: str, device: str) -> _Device:
        impl = self.sender if side == "S" else self.receiver
        dev = _Device(f"{self.prefix}-{user}", device, self.procs[side], impl.name)
        self.call(dev, "live.device.create", {"user_id": dev.user, "device_id": device})
        self.call(
            dev, "live.register",
            {"device": dev.address, "relay": self.relay_url, "org": self.org, "otp": "000000"},
        )
        self.devices[f"{user}/{device}"] = dev
        # raw identifiers may reach relay logs only as *_h8 hashes (seed §2.3); the device id
        # alone ("phone") is too common a word to search for, its user and address are not
        self.register_identifier("sub", dev.user)
        self.register_identifier("subject", dev.address)
        return dev

    def impl_of(self, address: Any) -> str:
        for dev in self.devices.values():
            if dev.address == address:
                return dev.impl
        return "unknown implementation"

    def d(self, name: str) -> _Device:
        return self.devices[name]

    def send(self, src: _Device, to: _Device, *, deliver: bool = True) -> _Message:
        self.seq += 1
        message_id = f"{self.prefix}-m{self.seq}-{self.entropy.random_bytes(4, 'id').hex()}"
        value = _canary(self.entropy.random_bytes(16, "canary"))
        plaintext = value + f" {self.prefix} m{self.seq} {src.address}".encode()
        self.register_canary(f"{self.sender.name}->{self.receiver.name} m{self.seq}", value)
        self.register_identifier("message_id", message_id)
        result = self.call(
            src, "live.send",
            {"device": src.address, "to": to.user, "plaintext": plaintext.hex(),
             "message_id": message_id, "deliver": deliver},
        )
        envelopes = result.get("envelopes")
        if not isinstance(envelopes, list) or not envelopes:
            raise StepFailure(Verdict.FAIL, f"live.send of {message_id} returned no envelopes")
        for env in envelopes:
            self._check_nonces(src, message_id, env)
        msg = _Message(message_id, src.address, plaintext,
                       {str(e.get("to")): bytes.fromhex(e["body"]) for e in envelopes})
        self.sent[message_id] = msg
        return msg

    def expect_smx1(self, src: _Device, msg: _Message, to: _Device, why: str) -> None:
        body = msg.envelopes.get(to.address)
        label = f"{msg.message_id} -> {to.address}"
        if body is None:
            raise StepFailure(Verdict.FAIL, f"{src.impl} sent no envelope to {to.address}", label)
        if body[:4] != b"SMX1":
            raise StepFailure(
                Verdict.FAIL,
                f"{src.impl} ({src.address}) sent {body[:4]!r} to {to.address}, expected SMX1: "
                f"{why} (SPEC §2: SMX1 until the peer's first reply)",
                label,
            )

    def _check_nonces(self, src: _Device, message_id: str, env: Any) -> None:
        """A (key, nonce) pair must never repeat; a repeated nonce from one device is the
        visible symptom of nonce reuse (SPEC §3 draws a fresh nonce per frame)."""
        if not isinstance(env, dict) or not isinstance(env.get("body"), str):
            raise StepFailure(Verdict.FAIL, f"live.send of {message_id}: envelope without body")
        label = f"{message_id} -> {env.get('to')}"
        try:
            body = bytes.fromhex(env["body"])
            nonces = _nonces(body)
        except (ValueError, ProtocolError) as exc:
            raise StepFailure(
                Verdict.FAIL, f"{src.impl} sent a malformed envelope: {exc}", label
            ) from None
        for nonce in nonces:
            key = src.address.encode() + b"|" + nonce
            if key in self.nonces:
                raise StepFailure(
                    Verdict.FAIL,
                    f"nonce reuse: {src.impl} ({src.address}) sent nonce {nonce.hex()} in "
                    f"{label} and before in {self.nonces[key]}",
                    label,
                )
            self.nonces[key] = label

    def expect(
        self, dev: _Device, messages: list[_Message], *, order: str = "queue",
        sync_to: str | None = None,
    ) -> None:
        """Receive on ``dev``: every listed message arrives with its exact plaintext, and no
        envelope fails to decrypt (each failure names its envelope)."""
        result = self.call(dev, "live.receive", {"device": dev.address, "order": order})
        items = result.get("messages")
        if not isinstance(items, list):
            raise StepFailure(Verdict.FAIL, "live.receive result has no 'messages' list")
        got: dict[str, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict):
                raise StepFailure(Verdict.FAIL, "live.receive: a message is not an object")
            envelope = (
                f"{item.get('message_id')} from {item.get('from')} "
                f"(sent by {self.impl_of(item.get('from'))}, delivery {item.get('delivery_id')})"
            )
            if item.get("error") is not None:
                raise StepFailure(
                    Verdict.FAIL,
                    f"{dev.impl} ({dev.address}) could not open {envelope}: {item['error']}"
                    + (f" — {item['detail']}" if item.get("detail") else ""),
                    envelope,
                )
            got[str(item.get("message_id"))] = item
        for msg in messages:
            item = got.get(msg.message_id)
            if item is None:
                raise StepFailure(
                    Verdict.FAIL,
                    f"{dev.impl} ({dev.address}) did not receive {msg.message_id} from "
                    f"{msg.sender}; received {sorted(got)}",
                    f"{msg.message_id} from {msg.sender}",
                )
            if item.get("from") != msg.sender or item.get("plaintext") != msg.plaintext.hex():
                raise StepFailure(
                    Verdict.FAIL,
                    f"{dev.impl} ({dev.address}) opened {msg.message_id} as from "
                    f"{item.get('from')!r} with a different plaintext",
                    f"{msg.message_id} from {msg.sender}",
                )
            if sync_to is not None and item.get("sync_to") != sync_to:
                raise StepFailure(
                    Verdict.FAIL,
                    f"{dev.address}: sync copy of {msg.message_id} names conversation "
                    f"{item.get('sync_to')!r}, expected {sync_to!r}",
                    f"{msg.message_id} from {msg.sender}",
                )

    def digest_agree(self, a: _Device, b: _Device) -> None:
        da = self.call(a, "session.digest", {"device": a.address, "remote": b.address})
        db = self.call(b, "session.digest", {"device": b.address, "remote": a.address})
        if da.get("digest") != db.get("digest"):
            raise StepFailure(
                Verdict.FAIL,
                f"session digests differ after a round trip: {a.impl} {a.address} "
                f"{da.get('digest')} vs {b.impl} {b.address} {db.get('digest')}",
            )

    # -- the script ------------------------------------------------------------------------

    def steps(self) -> Iterator[tuple[str, Callable[[], None]]]:
        yield "setup", self.setup
        yield "bootstrap", self.bootstrap
        yield "reply", self.reply
        yield "both-directions", self.both_directions
        yield "out-of-order", self.out_of_order
        yield "lost-first-message", self.lost_first
        yield "simultaneous-initiation", self.simultaneous
        yield "fan-out", self.fan_out
        yield "reinstall", self.reinstall

    def setup(self) -> None:
        for side, user in (("S", "alice"), ("R", "bob"), ("S", "erin"), ("R", "frank"),
                           ("S", "carol"), ("R", "dave")):
            self.create(side, user, "phone")

    def bootstrap(self) -> None:
        alice, bob = self.d("alice/phone"), self.d("bob/phone")
        m1 = self.send(alice, bob)
        self.expect_smx1(alice, m1, bob, "a first message bootstraps the session")
        self.expect(bob, [m1])

    def reply(self) -> None:
        alice, bob = self.d("alice/phone"), self.d("bob/phone")
        m2 = self.send(bob, alice)
        self.expect(alice, [m2])
        self.digest_agree(alice, bob)

    def both_directions(self) -> None:
        alice, bob = self.d("alice/phone"), self.d("bob/phone")
        for src, dst in ((alice, bob), (bob, alice), (alice, bob)):
            self.expect(dst, [self.send(src, dst)])
        self.digest_agree(bob, alice)

    def out_of_order(self) -> None:
        alice, bob = self.d("alice/phone"), self.d("bob/phone")
        burst = [self.send(alice, bob) for _ in range(3)]
        self.expect(bob, burst, order="reverse")
        burst = [self.send(bob, alice) for _ in range(3)]
        self.expect(alice, burst, order="reverse")
        self.expect(bob, [self.send(alice, bob)])

    def lost_first(self) -> None:
        erin, frank = self.d("erin/phone"), self.d("frank/phone")
        self.send(erin, frank, deliver=False)  # lost: encrypted, never reaches the relay
        second = self.send(erin, frank)
        self.expect_smx1(erin, second, frank, "the first message was lost, so the peer has no "
                         "session yet and the resend must carry the X3DH header")
        self.expect(frank, [second])
        self.expect(erin, [self.send(frank, erin)])
        self.expect(frank, [self.send(erin, frank)])

    def simultaneous(self) -> None:
        carol, dave = self.d("carol/phone"), self.d("dave/phone")
        to_dave = self.send(carol, dave)
        to_carol = self.send(dave, carol)
        self.expect(dave, [to_dave])
        self.expect(carol, [to_carol])
        for src, dst in ((carol, dave), (dave, carol), (carol, dave)):
            self.expect(dst, [self.send(src, dst)])

    def fan_out(self) -> None:
        alice, bob = self.d("alice/phone"), self.d("bob/phone")
        alice2 = self.create("R", "alice", "laptop")  # each side: one device per implementation
        bob2 = self.create("S", "bob", "laptop")
        m = self.send(alice, bob)
        self.expect(bob, [m])
        self.expect(bob2, [m])
        self.expect(alice2, [m], sync_to=bob.user)
        r = self.send(bob2, alice)
        self.expect(alice, [r])
        self.expect(alice2, [r])
        self.expect(bob, [r], sync_to=alice.user)

    def reinstall(self) -> None:
        alice, bob = self.d("alice/phone"), self.d("bob/phone")
        self.call(bob, "live.reinstall", {"device": bob.address})
        m = self.send(alice, bob)
        self.expect(bob, [m])
        self.expect(self.d("bob/laptop"), [m])
        self.expect(alice, [self.send(bob, alice)])


def _canary(random16: bytes) -> bytes:
    from simulator.oracle import canary

    return canary(random16)


def _nonces(body: bytes) -> list[bytes]:
    """The AEAD nonces an envelope carries: SMX1 outer nonce (its inner frame is sealed), or
    the DR_V1 frame nonce."""
    if body[:4] == b"SMX1":
        return [smx1.parse(body).nonce]
    return [drv1.parse(body).nonce]


def _capabilities(impl: Impl, timeout_s: float) -> tuple[dict[str, Any] | None, str | None]:
    proc = AdapterProcess(impl.command)
    try:
        response = proc.request("capabilities", {}, time.monotonic() + timeout_s)
    except AdapterFailure as exc:
        return None, f"{exc.verdict.value}: {exc.detail}"
    finally:
        proc.stop()
    if response.get("ok") is not True or not isinstance(response.get("result"), dict):
        return None, f"capabilities answered {response.get('error')}"
    return dict(response["result"]), None


def run_cell(
    index: int,
    sender: Impl,
    receiver: Impl,
    relay_url: str,
    org: str,
    timeout_s: float,
    register_canary: Callable[[str, bytes], None],
    register_identifier: Callable[[str, str], None],
    enrol: Callable[[list[str]], None],
) -> CellResult:
    """Run one cell's script to its first failure (later steps depend on the state)."""
    result = CellResult(sender.name, receiver.name)
    started = time.monotonic()
    cell = _Cell(index, sender, receiver, relay_url, org, timeout_s, register_canary,
                 register_identifier)
    try:
        enrol(cell.users())
        for name, step in cell.steps():
            try:
                step()
            except StepFailure as failure:
                result.fail(name, failure)
                break
            result.steps_passed.append(name)
    finally:
        cell.close()
        result.duration_s = time.monotonic() - started
    return result


@dataclass
class RelayHandle:
    """A relay the gate talks to, and (for relays it started) what it can scan afterwards."""

    url: str
    dump: Callable[[], list[Any]] | None = None  # oracle chunks of the data tier + logs


async def run_live(
    impls: list[Impl],
    relay: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    org: str = DEFAULT_ORG,
    on_cell: Callable[[CellResult], None] | None = None,
) -> LiveReport:
    """The whole matrix on one relay: ``embedded`` (in-process, memory stores), ``local``
    (in-process relay on the local backend provider) or an external base URL."""
    from simulator.oracle import Chunk, Oracle, OracleError

    report = LiveReport(list(impls), relay)
    missing: dict[str, str] = {}
    for impl in impls:
        caps, error = await asyncio.to_thread(_capabilities, impl, timeout_s)
        report.capabilities[impl.name] = caps
        if caps is None:
            missing[impl.name] = f"capabilities failed: {error}"
            continue
        ops = caps.get("ops") if isinstance(caps.get("ops"), list) else []
        lacking = [op for op in LIVE_OPS if op not in (ops or [])]
        if lacking:
            missing[impl.name] = f"does not implement {', '.join(lacking)}"

    oracle = Oracle()

    def register_canary(label: str, value: bytes) -> None:
        with contextlib.suppress(OracleError):
            oracle.register_canary(label, value)

    def register_identifier(kind: str, value: str) -> None:
        with contextlib.suppress(OracleError):
            oracle.register_identifier(kind, value)

    async with _relay(relay, org) as (url, admin, dump):
        loop = asyncio.get_running_loop()

        def enrol(users: list[str]) -> None:
            if admin is not None:
                asyncio.run_coroutine_threadsafe(admin(users), loop).result(timeout_s * 4)

        index = 0
        for sender in impls:
            for receiver in impls:
                index += 1
                lacking = [f"{n} {missing[n]}" for n in (sender.name, receiver.name)
                           if n in missing]
                if lacking:
                    cell = CellResult(sender.name, receiver.name, Verdict.UNSUPPORTED, "setup",
                                      detail="; ".join(dict.fromkeys(lacking)))
                else:
                    cell = await asyncio.to_thread(
                        run_cell, index, sender, receiver, url, org, timeout_s,
                        register_canary, register_identifier, enrol,
                    )
                report.cells.append(cell)
                if on_cell is not None:
                    on_cell(cell)
        chunks: list[Chunk] = list(await dump()) if dump is not None else []
    if dump is None:
        report.oracle = {"ran": False, "reason": "external relay: no store or log access"}
        return report
    scan = await asyncio.to_thread(oracle.scan, chunks)
    hits = [h.to_dict() for h in scan.hits]
    report.oracle = {
        "ran": True,
        "clean": scan.clean,
        "canaries": sum(1 for s in oracle.secrets if s.kind == "canary"),
        "bytes_by_tier": dict(scan.bytes_by_tier),
        "items_by_tier": dict(scan.items_by_tier),
        "hits": hits,
    }
    for hit in scan.hits:
        for cell in report.cells:
            if hit.kind == "canary" and hit.label.startswith(cell.key + " "):
                cell.fail("oracle", StepFailure(
                    Verdict.FAIL, f"plaintext canary of {hit.label} found in {hit.tier} "
                    f"{hit.location} ({hit.encoding})", envelope=hit.label))
    if scan.hits and all(c.verdict is Verdict.PASS for c in report.cells):
        report.cells[0].fail("oracle", StepFailure(
            Verdict.FAIL, f"oracle hit: {hits[0]}"))
    return report


@contextlib.asynccontextmanager
async def _organisation(url: str, org: str) -> Any:
    """Sign ``org`` up at ``url`` and yield ``enrol(users)`` (its admin makes them members).

    Members log in with the relay's test OTP, so the relay must run in test mode with ``org``
    allow-listed (ADR-0164); a relay the gate starts is configured that way."""
    from semafore.client import Account, create_organisation, enrol_members, fixed_otp
    from semafore.client.clock import SystemClock
    from semafore.protocol.entropy import SeededEntropy

    entropy = SeededEntropy(f"live-gate:{time.time()}")
    created = await create_organisation(url, org, "Live gate", "gate-admin", entropy.fork("org"))
    admin = Account(org, "gate-admin", url, entropy.fork, SystemClock(), fixed_otp(),
                    totp_secret=created["totp_secret"])
    try:
        console = await admin.add_device("console", connect=False)

        async def enrol(users: list[str]) -> None:
            await enrol_members(console, org, users, seats=10_000)

        yield enrol
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _relay(relay: str, org: str) -> Any:
    """Yield ``(url, enrol(users), dump())``: the relay's base URL, how to make users members
    of ``org``, and (for relays started here; else ``None``) the oracle chunks of its stores
    and logs."""
    if relay.startswith(("http://", "https://")):
        url = relay.rstrip("/")
        async with _organisation(url, org) as enrol:
            yield url, enrol, None
        return
    if relay not in ("embedded", "local"):
        raise ValueError(f"--relay must be a URL, 'embedded' or 'local', got {relay!r}")
    from semafore.client.clock import SystemClock
    from semafore.server.oplog import configure_logging
    from semafore.server.runner import serve_in_task
    from simulator.executor import Infrastructure
    from simulator.fleet import relay_settings
    from simulator.oracle import TIER_LOG, Chunk

    logs = io.StringIO()
    configure_logging(logs, logging.INFO)
    infra = Infrastructure(relay, f"livegate{int(time.time()) % 10**6}")
    stores = await infra.start()
    # test OTP for the gate's org only, no rate limits (every device shares 127.0.0.1)
    settings = relay_settings([org], SystemClock())  # type: ignore[arg-type]
    try:
        async with serve_in_task(settings, stores) as srv, _organisation(srv.url, org) as enrol:

            async def dump() -> list[Chunk]:
                chunks = await infra.dump()
                chunks += [Chunk(TIER_LOG, f"log:{i}", line.encode())
                           for i, line in enumerate(logs.getvalue().splitlines()) if line]
                return chunks

            yield srv.url, enrol, dump
    finally:
        await infra.close()
