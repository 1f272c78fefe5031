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

The oracle scans three *sources* (seed §4.5: plaintext absence on both sides of the relay):
the **wire** (every envelope the senders handed to the relay, and a SHA-256 match of every
envelope the receivers fetched against them), the relay's **stores** and its **logs**. A relay
the gate starts gives all three; an external relay gives the wire, plus whatever store
addresses and log files its operator grants (:class:`RelayAccess`). The report names each
source as scanned or not, so a wire-only scan is never mistaken for a full one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import sqlite3
import tempfile
import time
import urllib.error
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

import httpx
import pymongo
import redis
from bson.raw_bson import RawBSONDocument

from semafore.client import Account, create_organisation, enrol_members, fixed_otp
from semafore.client.clock import SystemClock
from semafore.client.errors import ClientError
from semafore.deploy import dumps
from semafore.deploy.data_tier import DataTier
from semafore.deploy.dumps import Spool, StoredFile, contains, whole
from semafore.deploy.harness_relay import relay_settings
from semafore.deploy.inprocess import serve_in_task
from semafore.deploy.settings import InfraSettings, ProviderKind
from semafore.gate.runner import Impl
from semafore.gate.transport import AdapterFailure, AdapterProcess
from semafore.gate.verdict import Verdict
from semafore.oracle import (
    TIER_LOG,
    TIER_MONGODB,
    TIER_OBJECT_STORE,
    TIER_REDIS,
    TIER_WIRE,
    Chunk,
    Oracle,
    OracleError,
    canary,
    file_stream,
    from_log_file,
)
from semafore.protocol import frame as drv1
from semafore.protocol import smx1
from semafore.protocol.address import DeviceAddress, address_argument
from semafore.protocol.entropy import SeededEntropy, SystemEntropy
from semafore.protocol.errors import ProtocolError
from semafore.server.oplog import configure_logging

if TYPE_CHECKING:
    from semafore.oracle import Chunk

LiveOp = Literal[
    "live.device.create",
    "live.register",
    "live.send",
    "live.receive",
    "live.reinstall",
    "session.digest",
]
"""The adapter operations the live run calls (docs/adapter-contract.md): ``_Cell.call`` takes
only these, so a step that calls another operation does not type-check until it is listed,
and an adapter lacking one is told which before any cell runs (issue 14 item 1: this list and
the reference adapter's had drifted apart; tests/gate/test_live_ops.py checks every listed
operation is called and the reference adapter implements all of them)."""
LIVE_OPS: tuple[LiveOp, ...] = get_args(LiveOp)
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
SOURCES = ("wire", "stores", "logs")


class LiveSetupError(Exception):
    """The gate could not set its organisation up on the relay (unreachable, not in test mode
    for the org, or the org or its admin already exists: use a new ``--org`` per run)."""


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
        """Every cell passed and the oracle found nothing wrong with what it could read (an
        unreadable source the operator named, stores or logs with no trace of this run, or a
        required source left unscanned fail the gate even when no cell did)."""
        cells_ok = bool(self.cells) and all(c.verdict is Verdict.PASS for c in self.cells)
        return cells_ok and self.oracle.get("passed", True) is not False

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
class _Observer:
    """What the gate learns during the conversations, for the oracle afterwards: canaries and
    identifiers to search for, the envelopes handed to the relay (the wire) and the SHA-256 of
    every envelope a receiver fetched."""

    register_canary: Callable[[str, bytes], None]
    register_identifier: Callable[[str, str], None]
    wire: list[tuple[str, bytes]] = field(default_factory=list)  # (location, body)
    fetched: list[tuple[str, str]] = field(default_factory=list)  # (location, sha256 hex)
    plaintexts: dict[str, str] = field(default_factory=dict)  # sha256 hex -> message label


@dataclass
class _Message:
    message_id: str
    sender: str  # address
    plaintext: bytes
    envelopes: dict[str, bytes] = field(default_factory=dict)  # recipient address -> body
    sync: dict[str, bytes] = field(default_factory=dict)  # sender's other device -> body


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
        observer: _Observer,
        prefix: str,
    ) -> None:
        self.prefix = prefix
        self.sender, self.receiver = sender, receiver
        self.relay_url, self.org = relay_url, org
        self.timeout_s = timeout_s
        self.procs = {
            "S": AdapterProcess(sender.command),
            "R": AdapterProcess(receiver.command),
        }
        self.devices: dict[DeviceAddress, _Device] = {}  # by cast name (alice:phone)
        self.nonces: dict[bytes, str] = {}
        self.sent: dict[str, _Message] = {}
        self.on_wire: set[str] = set()  # SHA-256 of every body live.send listed as delivered
        self.seq = 0
        self.entropy = SystemEntropy()
        self.observer = observer

    def users(self) -> list[str]:
        return [f"{self.prefix}-{u}" for u in ("alice", "bob", "erin", "frank", "carol", "dave")]

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop()

    # -- requests ------------------------------------------------------------------------

    def call(self, dev: _Device, op: LiveOp, args: Mapping[str, Any]) -> dict[str, Any]:
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
        self.devices[DeviceAddress(user, device)] = dev
        # raw identifiers may reach relay logs only as *_h8 hashes (seed §2.3); the device id
        # alone ("phone") is too common a word to search for, its user and address are not
        self.observer.register_identifier("sub", dev.user)
        self.observer.register_identifier("subject", dev.address)
        return dev

    def impl_of(self, address: Any) -> str:
        for dev in self.devices.values():
            if dev.address == address:
                return dev.impl
        return "unknown implementation"

    def d(self, name: DeviceAddress | str) -> _Device:
        """The cast device ``name`` (``alice:phone``, one address form: issue #14 item 1)."""
        return self.devices[address_argument(name, "name")]

    def send(self, src: _Device, to: _Device, *, deliver: bool = True) -> _Message:
        self.seq += 1
        message_id = f"{self.prefix}-m{self.seq}-{self.entropy.random_bytes(4, 'id').hex()}"
        value = _canary(self.entropy.random_bytes(16, "canary"))
        plaintext = value + f" {self.prefix} m{self.seq} {src.address}".encode()
        label = f"{self.sender.name}->{self.receiver.name} m{self.seq}"
        self.observer.register_canary(label, value)
        self.observer.register_identifier("message_id", message_id)
        self.observer.plaintexts[hashlib.sha256(plaintext).hexdigest()] = label
        result = self.call(
            src, "live.send",
            {"device": src.address, "to": to.user, "plaintext": plaintext.hex(),
             "message_id": message_id, "deliver": deliver},
        )
        envelopes = result.get("envelopes")
        if not isinstance(envelopes, list) or not envelopes:
            raise StepFailure(Verdict.FAIL, f"live.send of {message_id} returned no envelopes")
        msg = _Message(message_id, src.address, plaintext)
        for env in envelopes:  # recipients' envelopes and sync copies alike (contract §5)
            body = self._check_nonces(src, message_id, env)
            sync = env.get("sync", False)
            if not isinstance(sync, bool):
                raise StepFailure(Verdict.FAIL, f"live.send of {message_id}: 'sync' of the "
                                  f"envelope to {env.get('to')} is not a boolean",
                                  f"{message_id} -> {env.get('to')}")
            to_address = str(env.get("to"))
            self._check_addressee(src, to, message_id, to_address, sync)
            (msg.sync if sync else msg.envelopes)[to_address] = body
            if deliver:  # a "lost" message never reached the relay, so it is not on the wire
                kind = "sync copy " if sync else ""
                self.observer.wire.append(
                    (f"{message_id} {src.address} -> {kind}{to_address} (sent by {src.impl})",
                     body))
                self.on_wire.add(hashlib.sha256(body).hexdigest())
        if not msg.envelopes:
            raise StepFailure(Verdict.FAIL, f"live.send of {message_id} listed only sync copies, "
                              f"no envelope to {to.user}", message_id)
        self.sent[message_id] = msg
        return msg

    def _check_addressee(
        self, src: _Device, to: _Device, message_id: str, address: str, sync: bool
    ) -> None:
        """An envelope goes to a device of ``to`` or, marked ``sync``, to another device of
        the sender's own user (a sync copy, contract §5); anything else is a misdirected send."""
        user, _, device = address.rpartition(":")
        ok = (user == src.user and address != src.address) if sync else user == to.user
        if not device or not ok:
            what = f"a sync copy to {address!r} (not another device of {src.user})" if sync \
                else f"an envelope to {address!r} (not a device of {to.user})"
            raise StepFailure(Verdict.FAIL, f"{src.impl} ({src.address}) live.send of "
                              f"{message_id} listed {what}", f"{message_id} -> {address}")

    def expect_smx1(self, src: _Device, msg: _Message, to: _Device, why: str) -> None:
        sync = to.user == src.user
        body = (msg.sync if sync else msg.envelopes).get(to.address)
        label = f"{msg.message_id} -> {'sync copy ' if sync else ''}{to.address}"
        if body is None:
            what = "listed no sync copy" if sync else "sent no envelope"
            raise StepFailure(Verdict.FAIL, f"{src.impl} ({src.address}) {what} to "
                              f"{to.address}", label)
        if body[:4] != b"SMX1":
            raise StepFailure(
                Verdict.FAIL,
                f"{src.impl} ({src.address}) sent {body[:4]!r} to {to.address}, expected SMX1: "
                f"{why} (SPEC §2: SMX1 until the peer's first reply)",
                label,
            )

    def _check_nonces(self, src: _Device, message_id: str, env: Any) -> bytes:
        """A (key, nonce) pair must never repeat; a repeated nonce from one device, across
        every envelope it listed (sync copies included), is the visible symptom of nonce reuse
        (SPEC §3 draws a fresh nonce per frame). Returns the parsed body."""
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
        return body

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
            self._account(dev, item, envelope)
            if item.get("reset") is True:
                continue  # a SPEC §4 reset notice carries no message (accounted for above)
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

    def _account(self, dev: _Device, item: dict[str, Any], envelope: str) -> None:
        """Every envelope a receiver fetched must be one the gate scanned on the wire: a body
        some ``live.send`` listed (recipients' envelopes and sync copies alike), or a reset
        notice whose bytes the receiver reports (SPEC §4: sent by a device while *receiving*,
        so no ``live.send`` lists it). An unmatched fetch means an adapter hid an envelope
        it put on the wire (or the relay altered one): the cell fails, naming it."""
        digest = item.get("envelope_sha256")
        location = f"{envelope} fetched by {dev.address} ({dev.impl})"
        if not isinstance(digest, str):
            raise StepFailure(
                Verdict.FAIL, f"{dev.impl} ({dev.address}) live.receive reported {envelope} "
                "without envelope_sha256, so the wire scan cannot account for it", envelope)
        self.observer.fetched.append((location, digest))
        if item.get("reset") is True:
            body = item.get("body")
            try:
                raw = bytes.fromhex(body) if isinstance(body, str) else None
            except ValueError:
                raw = None
            if raw is None or hashlib.sha256(raw).hexdigest() != digest:
                raise StepFailure(
                    Verdict.FAIL, f"{dev.impl} ({dev.address}) reported a reset notice "
                    f"{envelope} whose 'body' is missing, not hex or not the envelope its "
                    "envelope_sha256 names", envelope)
            self.observer.wire.append((f"reset notice {location}", raw))
            self.on_wire.add(digest)
            return
        if digest in self.on_wire or digest in self.observer.plaintexts:
            return  # a plaintext-hash match is the oracle's hit, attributed after the run
        sender = item.get("from")
        raise StepFailure(
            Verdict.FAIL,
            f"unlisted envelope: {dev.address} fetched {envelope} (SHA-256 {digest[:16]}…), "
            f"but no live.send result of {self.impl_of(sender)} ({sender}) listed that body, so "
            "the wire scan never saw it; live.send must list every envelope it put on the "
            "wire, sync copies to the sender's own devices marked \"sync\": true "
            "(docs/adapter-contract.md §5), unless the relay altered it", envelope)

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
        alice, bob = self.d("alice:phone"), self.d("bob:phone")
        m1 = self.send(alice, bob)
        self.expect_smx1(alice, m1, bob, "a first message bootstraps the session")
        self.expect(bob, [m1])

    def reply(self) -> None:
        alice, bob = self.d("alice:phone"), self.d("bob:phone")
        m2 = self.send(bob, alice)
        self.expect(alice, [m2])
        self.digest_agree(alice, bob)

    def both_directions(self) -> None:
        alice, bob = self.d("alice:phone"), self.d("bob:phone")
        for src, dst in ((alice, bob), (bob, alice), (alice, bob)):
            self.expect(dst, [self.send(src, dst)])
        self.digest_agree(bob, alice)

    def out_of_order(self) -> None:
        alice, bob = self.d("alice:phone"), self.d("bob:phone")
        burst = [self.send(alice, bob) for _ in range(3)]
        self.expect(bob, burst, order="reverse")
        burst = [self.send(bob, alice) for _ in range(3)]
        self.expect(alice, burst, order="reverse")
        self.expect(bob, [self.send(alice, bob)])

    def lost_first(self) -> None:
        erin, frank = self.d("erin:phone"), self.d("frank:phone")
        self.send(erin, frank, deliver=False)  # lost: encrypted, never reaches the relay
        second = self.send(erin, frank)
        self.expect_smx1(erin, second, frank, "the first message was lost, so the peer has no "
                         "session yet and the resend must carry the X3DH header")
        self.expect(frank, [second])
        self.expect(erin, [self.send(frank, erin)])
        self.expect(frank, [self.send(erin, frank)])

    def simultaneous(self) -> None:
        carol, dave = self.d("carol:phone"), self.d("dave:phone")
        to_dave = self.send(carol, dave)
        to_carol = self.send(dave, carol)
        self.expect(dave, [to_dave])
        self.expect(carol, [to_carol])
        for src, dst in ((carol, dave), (dave, carol), (carol, dave)):
            self.expect(dst, [self.send(src, dst)])

    def fan_out(self) -> None:
        alice, bob = self.d("alice:phone"), self.d("bob:phone")
        alice2 = self.create("R", "alice", "laptop")  # each side: one device per implementation
        bob2 = self.create("S", "bob", "laptop")
        # receive first: an envelope the sender did not list fails where it was fetched
        first = "its first message to a new device"
        m = self.send(alice, bob)
        self.expect(bob, [m])
        self.expect(bob2, [m])
        self.expect(alice2, [m], sync_to=bob.user)
        self.expect_smx1(alice, m, bob2, first)
        self.expect_smx1(alice, m, alice2, first + " (a sync copy)")
        r = self.send(bob2, alice)
        self.expect(alice, [r])
        self.expect(alice2, [r])
        self.expect(bob, [r], sync_to=alice.user)
        for dev, what in ((alice2, first), (bob, first + " (a sync copy)")):
            self.expect_smx1(bob2, r, dev, what)

    def reinstall(self) -> None:
        alice, bob = self.d("alice:phone"), self.d("bob:phone")
        alice2, bob2 = self.d("alice:laptop"), self.d("bob:laptop")
        self.call(bob, "live.reinstall", {"device": bob.address})
        m = self.send(alice, bob)
        self.expect(bob, [m])
        self.expect(bob2, [m])
        self.expect(alice2, [m], sync_to=bob.user)
        self.expect_smx1(alice, m, bob, "bob's phone was reinstalled: a new identity")
        self.expect_smx1(alice, m, alice2, "alice's laptop never replied (a sync copy)")
        r = self.send(bob, alice)
        self.expect(alice, [r])
        self.expect(bob2, [r], sync_to=alice.user)
        self.expect_smx1(bob, r, bob2, "the reinstalled phone's first message to the laptop "
                         "(a sync copy)")


def _canary(random16: bytes) -> bytes:
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
    observer: _Observer,
    enrol: Callable[[list[str]], None],
    prefix: str | None = None,
) -> CellResult:
    """Run one cell's script to its first failure (later steps depend on the state). User
    names start with ``prefix`` (default ``c<index>``)."""
    result = CellResult(sender.name, receiver.name)
    started = time.monotonic()
    cell = _Cell(index, sender, receiver, relay_url, org, timeout_s, observer,
                 prefix or f"c{index}")
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


# -- what the oracle scans ----------------------------------------------------------------------


class RelayAccessError(ValueError):
    """Store or log access that cannot be used as given; ``field`` names the option."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class RelayAccess:
    """What an external relay's operator lets the gate read after the run (seed §4.5).

    Stores are read through their own clients, every document, key and object as the relay
    wrote it (:mod:`semafore.deploy.dumps`). ``namespace`` narrows them to one deployment the
    way ``semafore serve --store backends:NS`` lays it out: MongoDB database ``NS``, Redis keys
    ``NS:*``, SeaweedFS files under ``/semafore/NS`` (without it the gate reads every database,
    key and file the credentials can list). ``files`` are raw data files or directories (a
    SQLite database, an RDB snapshot, volume files) read as bytes. ``logs`` are log files or
    directories of them (``.gz`` rotations included), scanned line by line, with the check
    that identifiers appear only as ``*_h8`` hashes.
    """

    mongodb_url: str | None = None
    redis_url: str | None = None
    seaweedfs_filer_url: str | None = None
    namespace: str | None = None
    files: tuple[Path, ...] = ()
    logs: tuple[Path, ...] = ()
    origin: str = "options"  # where the store addresses came from: "options" or "environment"

    def __post_init__(self) -> None:
        for name, url in (("--relay-mongo", self.mongodb_url), ("--relay-redis", self.redis_url),
                          ("--relay-seaweed", self.seaweedfs_filer_url)):
            if url is not None and not urlsplit(url).netloc:
                raise RelayAccessError(name, f"{redact(url)!r} is not a URL with a host")
        if self.namespace is not None and (
            not self.namespace or any(not (c.isalnum() or c in "_-") for c in self.namespace)
        ):
            raise RelayAccessError("--relay-namespace", "letters, digits, '_' and '-' only")
        for name, paths in (("--relay-log", self.logs), ("--relay-store-file", self.files)):
            for path in paths:
                if not path.exists():
                    raise RelayAccessError(name, f"{path} does not exist")

    @property
    def stores_given(self) -> bool:
        return bool(self.mongodb_url or self.redis_url or self.seaweedfs_filer_url or self.files)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RelayAccess | None:
        """The store URLs of ``SEMAFORE_PROVIDER=external`` (what ``semafore backends up``
        prints and :func:`semafore.deploy.replicas.endpoints_from_env` reads) and
        ``SEMAFORE_NAMESPACE``; ``None`` for any other provider."""
        env = os.environ if env is None else env
        settings = InfraSettings.from_env(env)
        if settings.provider is not ProviderKind.EXTERNAL:
            return None
        return cls(settings.mongodb_url or None, settings.redis_url or None,
                   settings.seaweedfs_filer_url or None,
                   env.get("SEMAFORE_NAMESPACE") or None, origin="environment")


def redact(url: str) -> str:
    """``url`` without its credentials: reports name the store, never its password. The
    host part is kept as written: a ``redis+sentinel://`` URL lists several ``HOST:PORT``
    (which ``urlsplit(...).port`` cannot read)."""
    parts = urlsplit(url)
    _, at, hosts = parts.netloc.rpartition("@")
    return parts._replace(netloc=hosts).geturl() if at else url


@dataclass
class SourceScan:
    """One oracle source (``wire``, ``stores`` or ``logs``): the parts read (part ->
    description), the parts not read (part -> why), what failed, and the chunks to scan."""

    name: str
    parts: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # coverage limits within a scanned part
    chunks: list[Chunk] = field(default_factory=list)
    # files (tier, path) the oracle reads block by block when it runs, never whole: an
    # operator's relay log or store export can be gigabytes (issue #12 item 3)
    streams: list[tuple[str, Path]] = field(default_factory=list)
    # store dumps (tier, semafore.deploy.dumps.Spool) kept on disk until the oracle runs
    spools: list[tuple[str, Any]] = field(default_factory=list)
    streamed_bytes: int = 0
    hits: list[dict[str, Any]] = field(default_factory=list)  # found outside the byte scan

    @property
    def scanned(self) -> bool:
        return bool(self.parts)

    def held_chunks(self) -> list[Chunk]:
        """Everything this source read, as the oracle's chunks in memory: what a test
        fixture *holds* (``simulator/pytest_plugin.py``; the gate's own judge and the
        simulator's external-relay views stream instead, ``simulator.external``). Streamed files
        come back one chunk per log line (``path:line N``, whole-file gzip/bz2/xz undone as
        read) or whole; spooled store dumps one chunk per item, and the spools are removed."""
        held = list(self.chunks)
        for tier, path in self.streams:
            if tier == TIER_LOG:
                held.extend(from_log_file(str(path)))
            else:
                blocks, _ = file_stream(path)
                held.append(Chunk(tier, str(path), b"".join(blocks)))
        for tier, spool in self.spools:
            try:
                held.extend(Chunk(tier, str(item.source), whole(item).data) for item in spool)
            finally:
                spool.close()
        self.spools = []
        return held

    def why_not(self) -> str:
        """The parts not read and why, e.g. ``redis not given (--relay-redis)``."""
        return "; ".join(why if part == self.name else f"{part} {why}"
                         for part, why in self.missing.items())

    def to_json(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "parts": self.parts,
            "not_scanned": self.missing,
            "errors": self.errors,
            "notes": self.notes,
            "items": len(self.chunks) + len(self.streams) + sum(len(s) for _, s in self.spools),
            "bytes": sum(len(c.data) for c in self.chunks) + self.streamed_bytes
            + sum(s.bytes for _, s in self.spools),
        }


_TIER_SOURCE = {"wire": "wire", "log": "logs"}  # every other tier is a store


def source_of(tier: str) -> str:
    return _TIER_SOURCE.get(tier, "stores")


def _wire_source(observer: _Observer) -> SourceScan:
    """The network adversary's view: the bodies senders handed to the relay (recipients'
    envelopes and sync copies, contract §5), the reset notices receivers reported, and every
    fetched envelope matched by SHA-256 against them (adapters report fetched envelopes by
    hash only). A fetched envelope whose hash is a message's plaintext is a hit; one matching
    nothing already failed its cell (an adapter hid it), and it is an error here too: its
    bytes went unscanned, so the wire scan is incomplete."""
    scan = SourceScan("wire")
    scan.chunks = [Chunk(TIER_WIRE, location, body) for location, body in observer.wire]
    sent = {hashlib.sha256(body).hexdigest() for _, body in observer.wire}
    matched, unmatched = 0, []
    for location, digest in observer.fetched:
        if digest in sent:
            matched += 1
        elif digest in observer.plaintexts:
            scan.hits.append({"tier": TIER_WIRE, "location": f"fetched {location}", "offset": 0,
                              "encoding": "raw (SHA-256 of the whole fetched envelope)",
                              "label": observer.plaintexts[digest], "kind": "canary"})
        else:
            unmatched.append(location)
    size = sum(len(c.data) for c in scan.chunks)
    scan.parts["sent"] = f"{len(scan.chunks)} envelopes the senders handed to the relay " \
                         f"({size} bytes)"
    scan.parts["fetched"] = f"{len(observer.fetched)} envelopes the receivers fetched, " \
                            f"{matched} byte-identical (SHA-256) to a scanned one"
    if unmatched:
        scan.missing["fetched"] = f"{len(unmatched)} fetched envelope(s) no live.send listed"
        scan.errors.append(
            f"{len(unmatched)} fetched envelope(s) match no listed one, so their bytes were "
            "not scanned (an adapter's live.send hid them, or the relay altered them; their "
            f"cells failed): {'; '.join(unmatched[:5])}" + (" …" if len(unmatched) > 5 else ""))
    return scan


def _dump_mongodb(url: str, database: str | None) -> Iterator[Any]:
    """Every document of ``database`` (or of every database, with the oplog, when ``None``),
    one at a time."""
    if database is None:
        yield from dumps.iter_mongodb(url)
        return

    client: pymongo.MongoClient[RawBSONDocument] = pymongo.MongoClient(
        url, document_class=RawBSONDocument, serverSelectionTimeoutMS=10_000)
    try:
        db = client[database]
        for name in db.list_collection_names():
            for doc in db[name].find({}):
                yield dumps.Item(f"mongodb:{database}.{name}/{doc.get('_id', '?')!r}",
                                 bytes(doc.raw))
    finally:
        client.close()


def _dump_redis(url: str, namespace: str | None) -> Iterator[Any]:
    """Every key (or only ``NAMESPACE:*`` keys of the URL's database, so credentials limited
    to the relay's key pattern suffice) with its DUMP payload and logical value, on every
    copy a ``redis+sentinel://`` URL leads to (the primary now, then each replica:
    :func:`semafore.deploy.dumps.redis_copies`)."""
    if namespace is None:
        yield from dumps.iter_redis(url)
        return
    for copy in dumps.redis_copies(url):
        client = redis.Redis.from_url(copy.url, socket_timeout=10)
        db = client.connection_pool.connection_kwargs.get("db", 0)
        try:  # the namespace is [A-Za-z0-9_-]+ (RelayAccess), so the pattern has no other glob
            for key in client.scan_iter(match=f"{namespace}:*", count=dumps.PAGE):
                dumped = client.dump(key)
                if dumped is None:  # expired or deleted between SCAN and DUMP
                    continue
                kind = client.type(key)
                kind_s = kind.decode() if isinstance(kind, bytes) else str(kind)
                base = f"{copy.label}:{db}:{key!r}"
                yield dumps.Item(f"{base}:key", bytes(key))
                yield dumps.Item(f"{base}:dump", bytes(dumped))
                yield dumps.Item(f"{base}:{kind_s}", dumps._redis_value(client, key, kind_s))
        finally:
            client.close()


def _dump_seaweedfs(filer_url: str, namespace: str | None) -> Iterator[Any]:
    if namespace is None:
        yield from dumps.iter_seaweedfs(filer_url)
        return

    try:
        paths = dumps.seaweedfs_files(filer_url, f"/semafore/{namespace}")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        paths = []  # the namespace has stored no object yet (attachments only)
    for path in paths:  # a large file is spooled to disk as it is read (dumps.filer_file)
        yield from dumps.filer_file(filer_url, path)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def _census(path: Path, needle: bytes) -> tuple[int, int, int]:
    """(bytes, lines, mentions of ``needle``) of a file read block by block (whole-file
    gzip/bz2/xz undone), so a multi-gigabyte log costs one block of memory; ``OSError`` (or
    ``EOFError``) if it cannot be read."""
    size = lines = mentions = 0
    carry = last = b""
    blocks, _ = file_stream(path)
    for block in blocks:
        size += len(block)
        lines += block.count(b"\n")
        last = block[-1:]
        joined = carry + block  # a mention split across two blocks is counted once
        mentions += joined.count(needle)
        carry = joined[-(len(needle) - 1):] if len(needle) > 1 else b""
        mentions -= carry.count(needle)  # wholly in the carry: counted again with the next
    return size, lines + (1 if size and last != b"\n" else 0), mentions


def _store_source(access: RelayAccess, org: str) -> SourceScan:
    """Dump the stores ``access`` names. A store that cannot be read is an error, and so are
    stores that hold no trace of this run's organisation (a wrong address or namespace would
    otherwise pass as a clean scan)."""
    scan = SourceScan("stores")
    ns = access.namespace
    scope = f" namespace {ns}" if ns else " (everything the credentials list)"
    origin = " [from SEMAFORE_* environment]" if access.origin == "environment" else ""
    dumpers: list[tuple[str, str, str | None, str, Callable[[str, str | None], Iterator[Any]]]] = [
        ("mongodb", TIER_MONGODB, access.mongodb_url, "--relay-mongo", _dump_mongodb),
        ("redis", TIER_REDIS, access.redis_url, "--relay-redis", _dump_redis),
        ("seaweedfs", TIER_OBJECT_STORE, access.seaweedfs_filer_url, "--relay-seaweed",
         _dump_seaweedfs),
    ]
    needle = org.encode()
    mentioned = 0
    # each dump is spooled to disk as it is read, one item in memory at a time, and scanned
    # from there when the oracle runs (issue #12 item 3)
    for part, tier, url, option, dump in dumpers:
        if url is None:
            scan.missing[part] = f"not given ({option})"
            continue
        spool = Spool()
        mentions = 0
        try:
            for item in dump(url, ns):
                mentions += contains(spool.add(item), needle)
        except Exception as exc:  # any client failure is reported as such, never a crash
            spool.close()
            scan.errors.append(f"{part} at {redact(url)}: could not be read: "
                               f"{type(exc).__name__}: {exc}")
            continue
        scan.spools.append((tier, spool))
        mentioned += mentions
        scan.parts[part] = (f"{redact(url)}{scope}{origin}: {len(spool)} items, "
                            f"{spool.bytes} bytes, {mentions} mention org {org}")
    if access.files:
        for root in access.files:
            files = _files(root)
            # copied now, while the relay runs: a database file is rewritten when it stops (a
            # SQLite WAL is checkpointed and removed, taking freed pages' old contents)
            spool = Spool()
            mentions = sum(contains(spool.add(StoredFile(str(f), f)), needle) for f in files)
            # an SQLite database is also read as its holder reads it, row by row (WAL
            # applied): the metadata inventory needs record boundaries a page does not show
            databases = [f for f in files if dumps.is_sqlite(f)]
            rows = 0
            for database in databases:
                try:
                    for item in dumps.iter_sqlite_rows(database):
                        mentions += contains(spool.add(item), needle)
                        rows += 1
                except (sqlite3.DatabaseError, OSError) as exc:
                    scan.errors.append(f"{database}: its rows could not be read: {exc}")
            scan.spools.append(("file", spool))
            mentioned += mentions
            as_rows = (f" ({len(databases)} SQLite database(s) also read as {rows} rows)"
                       if databases else "")
            scan.parts[f"files:{root}"] = (
                f"{len(files)} files{as_rows}, {spool.bytes} bytes, {mentions} mention org "
                f"{org}")
    else:
        scan.missing["files"] = "not given (--relay-store-file)"
    if scan.parts and not mentioned:
        scan.errors.append(f"the stores read hold no trace of this run's organisation {org!r}: "
                           "a wrong address or namespace? (a scan of someone else's data "
                           "proves nothing)")
    return scan


def _log_source(paths: tuple[Path, ...], org: str) -> SourceScan:
    """Log files, streamed line by line when the oracle runs (whole-file gzip undone as it is
    read; memory is one block, however long the log); the logs must mention this run's
    organisation (org_id stays raw in logs), or they are not this relay's logs of this run."""
    scan = SourceScan("logs")
    mentions = 0
    for root in paths:
        lines = 0
        files = _files(root)
        for file in files:
            try:
                _, counted, mentioned = _census(file, org.encode())
            except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
                scan.errors.append(f"log {file}: could not be read: {exc}")
                continue
            lines += counted
            mentions += mentioned
            scan.streams.append((TIER_LOG, file))
        scan.parts[str(root)] = f"{len(files)} file(s), {lines} lines"
    if scan.parts and not mentions:
        scan.errors.append(f"no log line mentions this run's organisation {org!r}: not this "
                           "relay's log, or logging above INFO?")
    return scan


async def external_sources(access: RelayAccess | None, org: str) -> list[SourceScan]:
    """The ``stores`` and ``logs`` sources of a relay by URL, read as far as ``access``
    grants (an operator's explicit consent, docs/gate.md): store dumps spooled to disk, log
    files listed for streaming, and for each part not read, why. Organisation ``org`` must
    be mentioned, else the data is not this relay's and a clean scan would prove nothing."""
    access = access or RelayAccess()
    if access.stores_given:
        stores = await asyncio.to_thread(_store_source, access, org)
    else:
        stores = SourceScan("stores", missing={
            "stores": "not given (--relay-mongo, --relay-redis, --relay-seaweed, "
                      "--relay-store-file or SEMAFORE_PROVIDER=external URLs)"})
    if access.logs:
        logs = await asyncio.to_thread(_log_source, access.logs, org)
    else:
        logs = SourceScan("logs", missing={"logs": "not given (--relay-log)"})
    return [stores, logs]


async def run_live(
    impls: list[Impl],
    relay: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    org: str = DEFAULT_ORG,
    on_cell: Callable[[CellResult], None] | None = None,
    access: RelayAccess | None = None,
    require: tuple[str, ...] = (),
) -> LiveReport:
    """The whole matrix on one relay: ``embedded`` (in-process, memory stores), ``local``
    (in-process relay on the local backend provider) or an external base URL, whose stores
    and logs the oracle reads as far as ``access`` allows. A source in ``require`` that was
    not scanned fails the gate."""
    unknown = [name for name in require if name not in SOURCES]
    if unknown:
        raise ValueError(f"unknown oracle source(s) {unknown}; known: {', '.join(SOURCES)}")
    report = LiveReport(list(impls), relay)
    missing: dict[str, str] = {}
    for impl in impls:
        caps, error = await asyncio.to_thread(_capabilities, impl, timeout_s)
        report.capabilities[impl.name] = caps
        if caps is None:
            missing[impl.name] = f"capabilities failed: {error}"
            continue
        ops = caps.get("ops") if isinstance(caps.get("ops"), list) else []
        lacking: list[str] = [op for op in LIVE_OPS if op not in (ops or [])]
        if lacking:
            missing[impl.name] = f"does not implement {', '.join(lacking)}"

    oracle = Oracle()

    def register_canary(label: str, value: bytes) -> None:
        with contextlib.suppress(OracleError):
            oracle.register_canary(label, value)

    identifiers: set[str] = set()

    def register_identifier(kind: str, value: str) -> None:
        with contextlib.suppress(OracleError):
            oracle.register_identifier(kind, value)
            identifiers.add(value)

    observer = _Observer(register_canary, register_identifier)
    async with _relay(relay, org, access) as (url, admin, collect):
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
                    # user ids are global on a relay, and an external one outlives the run
                    prefix = (f"c{index}" if relay in (ProviderKind.EMBEDDED, ProviderKind.LOCAL)
                              else f"{org}-c{index}")
                    cell = await asyncio.to_thread(
                        run_cell, index, sender, receiver, url, org, timeout_s, observer, enrol,
                        prefix,
                    )
                report.cells.append(cell)
                if on_cell is not None:
                    on_cell(cell)
        sources = [_wire_source(observer), *await collect()]
    await asyncio.to_thread(_judge, report, oracle, sources, require, len(identifiers))
    return report


def _counted(source: SourceScan, blocks: Iterator[bytes]) -> Iterator[bytes]:
    for block in blocks:
        source.streamed_bytes += len(block)
        yield block


def _judge(report: LiveReport, oracle: Any, sources: list[SourceScan],
           require: tuple[str, ...], identifiers: int) -> None:
    """Scan every source's chunks and files in one scan (files streamed block by block),
    attribute hits to the cells whose canary leaked, and record exactly which sources were
    and were not read."""
    scanner = oracle.scanner()
    for source in sources:
        for chunk in source.chunks:
            scanner.add(chunk)
    for source in sources:
        for tier, path in source.streams:
            try:
                blocks, prefix = file_stream(path)
                scanner.add_stream(tier, str(path), _counted(source, blocks), prefix)
            except (OSError, EOFError) as exc:  # changed or removed since it was listed
                source.errors.append(f"{path}: could not be read: {exc}")
        for tier, spool in source.spools:  # store dumps, one item (or file block) at a time
            scanner.add_dump(tier, spool)
            spool.close()
    scan = scanner.finish()
    hits = [h.to_dict() for h in scan.hits] + [h for s in sources for h in s.hits]
    errors = [f"{s.name}: {e}" for s in sources for e in s.errors]
    for name in require:
        source = next(s for s in sources if s.name == name)
        if not source.scanned:
            errors.append(f"{name}: required (--require-source) but not scanned: "
                          f"{source.why_not()}")
    by_source: dict[str, list[dict[str, Any]]] = {s.name: [] for s in sources}
    for hit in hits:
        by_source.setdefault(source_of(str(hit["tier"])), []).append(hit)
    report.oracle = {
        "ran": True,
        "passed": not hits and not errors,
        "clean": not hits,
        # a wire scan that missed fetched envelopes is incomplete even though it ran
        "complete": all(s.scanned and not (s.name == "wire" and s.missing) for s in sources),
        "scanned": [s.name for s in sources if s.scanned],
        "not_scanned": {s.name: s.why_not() for s in sources if not s.scanned},
        "sources": {s.name: {**s.to_json(), "hits": len(by_source.get(s.name, []))}
                    for s in sources},
        "errors": errors,
        "canaries": sum(1 for s in oracle.secrets if s.kind == "canary"),
        "identifiers": identifiers,  # searched raw in log lines (seed §2.3)
        "bytes_by_tier": dict(scan.bytes_by_tier),
        "items_by_tier": dict(scan.items_by_tier),
        "hits": hits,
    }
    for hit in hits:
        for cell in report.cells:
            if hit["kind"] == "canary" and str(hit["label"]).startswith(cell.key + " "):
                cell.fail("oracle", StepFailure(
                    Verdict.FAIL, f"plaintext canary of {hit['label']} found in {hit['tier']} "
                    f"{hit['location']} ({hit['encoding']})", envelope=str(hit["label"])))
    if hits and all(c.verdict is Verdict.PASS for c in report.cells) and report.cells:
        report.cells[0].fail("oracle", StepFailure(Verdict.FAIL, f"oracle hit: {hits[0]}"))


@contextlib.asynccontextmanager
async def _organisation(url: str, org: str) -> Any:
    """Sign ``org`` up at ``url`` and yield ``enrol(users)`` (its admin makes them members).

    Members log in with the relay's test OTP, so the relay must run in test mode with ``org``
    allow-listed (ADR-0164); a relay the gate starts is configured that way."""
    entropy = SeededEntropy(f"live-gate:{time.time()}")
    admin_id = f"{org}-admin"
    try:
        created = await create_organisation(url, org, "Live gate", admin_id, entropy.fork("org"))
    except (ClientError, httpx.HTTPError, OSError) as exc:
        raise LiveSetupError(
            f"signing up organisation {org!r} at {url} failed: {exc} (use a new --org per run; "
            f"the relay must run in test mode with --test-org {org})") from exc
    admin = Account(org, admin_id, url, entropy.fork, SystemClock(), fixed_otp(),
                    totp_secret=created["totp_secret"])
    try:
        try:
            console = await admin.add_device("console", connect=False)
        except (ClientError, httpx.HTTPError, OSError) as exc:
            raise LiveSetupError(
                f"the admin of {org!r} could not log in at {url}: {exc} (is the relay in test "
                f"mode with --test-org {org}?)") from exc

        async def enrol(users: list[str]) -> None:
            await enrol_members(console, org, users, seats=10_000)

        yield enrol
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _relay(relay: str, org: str, access: RelayAccess | None = None) -> Any:
    """Yield ``(url, enrol(users), collect())``: the relay's base URL, how to make users
    members of ``org``, and the oracle's store and log sources after the run (in-process for
    relays started here; for an external relay whatever ``access`` grants)."""
    if relay.startswith(("http://", "https://")):
        url = relay.rstrip("/")
        async with _organisation(url, org) as enrol:

            async def collect_external() -> list[SourceScan]:
                return await external_sources(access, org)

            yield url, enrol, collect_external
        return
    if relay not in (ProviderKind.EMBEDDED, ProviderKind.LOCAL):
        raise ValueError(f"--relay must be a URL, 'embedded' or 'local', got {relay!r}")
    if access is not None:
        raise RelayAccessError("--relay", "store and log options are for an external relay URL; "
                               f"the {relay} relay's stores and logs are always scanned")

    # the relay logs to a temporary file, not to memory: a long matrix's log is read back
    # as a stream when the oracle runs (issue #12 item 3, docs/oracle.md "Streaming")
    log_dir = tempfile.TemporaryDirectory(prefix="semafore-livegate-")
    log_path = Path(log_dir.name) / "relay.log"
    logs = log_path.open("w", encoding="utf-8")
    handler = configure_logging(logs, logging.INFO)
    infra = DataTier(relay, f"livegate{int(time.time()) % 10**6}")
    stores = await infra.start()
    # test OTP for the gate's org only, no rate limits (every device shares 127.0.0.1)
    settings = relay_settings([org], SystemClock())
    try:
        async with serve_in_task(settings, stores) as srv, _organisation(srv.url, org) as enrol:

            async def collect() -> list[SourceScan]:
                store = SourceScan("stores")
                # spooled to disk now, one item in memory at a time; the judge streams them
                store.spools = list(await infra.spool())
                totals: dict[str, tuple[int, int]] = {}
                for tier, spool in store.spools:
                    items, size = totals.get(tier, (0, 0))
                    totals[tier] = (items + len(spool), size + spool.bytes)
                for tier in sorted(totals) or ["store"]:
                    items, size = totals.get(tier, (0, 0))
                    store.parts[tier] = (f"in-process {relay} relay's {tier}: {items} items, "
                                         f"{size} bytes")
                log = SourceScan("logs")
                logs.flush()
                # counted, then copied into a spool as it stands now (no await between: the
                # relay's loop logs nothing in between); the judge streams the copy line by
                # line after the relay and this file are gone
                _, lines, _ = _census(log_path, org.encode())
                spool = Spool()
                spool.add(StoredFile("relay.log", log_path))
                log.spools.append((TIER_LOG, spool))
                log.parts["relay.log"] = f"in-process {relay} relay's log: {lines} lines"
                return [store, log]

            yield srv.url, enrol, collect
    finally:
        await infra.close()
        # what the library logs from now on goes nowhere instead of to a removed file
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(io.StringIO())
        logs.close()
        log_dir.cleanup()
