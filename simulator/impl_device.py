"""Scenario devices backed by an adapter process (issue #15 item 1, contract §5).

A device assigned to an implementation other than ``reference`` (simulator.assignment) is a
*live device* of that implementation's adapter process: one process per implementation per
scenario run hosts all of its devices, driven with the contract's live operations
(docs/adapter-contract.md §5), exactly as ``semafore gate live`` drives them. The adapter
reaches the relay through the device's own proxy link (simulator.network), so network
faults and the wire capture act on it as on a reference device (issue #15 item 2: "network
faults stay in the harness's per-device proxy").

What the executor gets back is in its own vocabulary: each message a ``live.receive``
reports becomes a :class:`~semafore.client.client.Received` (same ledger, same assertions),
each per-envelope failure a :class:`~semafore.client.client.ClientEvent`.

A step the contract gives an adapter no operation for, or an optional operation the adapter
does not list in ``capabilities.ops``, makes the scenario ``unsupported`` naming the step,
the device and the operation (:func:`unsupported_steps`); never a pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from semafore.client.client import ClientEvent, Received
from semafore.client.content import KINDS, Content, Kind
from semafore.gate.transport import AdapterFailure, AdapterProcess
from semafore.gate.verdict import Verdict
from semafore.protocol.address import AddressError, DeviceAddress
from simulator.adversary import Attempt, CapturedEnvelope
from simulator.assignment import REFERENCE, Implementation
from simulator.scenario.model import (
    Assertion,
    AssertionKind,
    Attach,
    Compromise,
    Concurrently,
    ExhaustOpks,
    Network,
    Replay,
    Restore,
    Scenario,
    Step,
)
from simulator.steps import kind_of

REQUEST_TIMEOUT_S = 60.0
"""Budget of one live operation (a send with 409/410 repairs through a faulty proxy)."""

TEST_OTP = "000000"
"""The relay's test OTP (ADR-0164): the simulated organisations are in test mode."""

CLIENT_COUNTED_STATS = frozenset({
    "duplicates_dropped", "undecryptable", "skipped_keys_used", "resets_sent",
    "identity_changes_seen", "device_set_retries", "reconnects",
})
"""``mechanism`` stats counted inside the reference client (simulator.executor._stats) and
reported by an adapter device through ``live.stats`` (contract §5), under these names. With a
device of an adapter that does not list ``live.stats`` the count is a lower bound: it can
show ``at_least`` (the executor holds it when the other devices alone reach it) and never
``at_most`` (``unsupported``), never a count that silently leaves devices out passed off as
the whole."""



class ImplError(Exception):
    """An adapter device could not do what a step asked; ``name`` is the contract error
    name (SPEC §5 or ``RelayError``) or the transport verdict, ``field`` the operation."""

    def __init__(self, op: str, name: str, detail: str) -> None:
        super().__init__(f"{op}: {name}: {detail}")
        self.field = op
        self.name = name
        self.detail = detail


class AdapterHost:
    """One adapter process for one implementation, shared by its devices in a run. Requests
    are serialised (the contract is one request at a time) and run off the event loop, so
    the in-process relay keeps serving while the adapter talks to it."""

    def __init__(self, impl: Implementation) -> None:
        self.impl = impl
        self.process = AdapterProcess(impl.command)
        self._lock = asyncio.Lock()
        self._ops: frozenset[str] | None = None
        self.dead: str | None = None

    async def call(self, op: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if self.dead is not None:  # a restarted process would have lost every device
            raise ImplError(op, "crash", f"{self.impl.name} adapter already failed: {self.dead}")
        async with self._lock:
            try:
                response = await asyncio.to_thread(
                    self.process.request, op, dict(args), time.monotonic() + REQUEST_TIMEOUT_S)
            except AdapterFailure as exc:
                self.dead = f"{exc.verdict.value}: {exc.detail}"
                raise ImplError(op, exc.verdict.value, exc.detail) from None
        if response.get("ok") is not True:
            raise ImplError(op, str(response.get("error")), str(response.get("detail", "")))
        result: dict[str, Any] = response["result"]
        return result

    async def ops(self) -> frozenset[str]:
        """The operations ``capabilities`` lists (asked once)."""
        if self._ops is None:
            result = await self.call("capabilities", {})
            self._ops = frozenset(str(op) for op in result.get("ops", ()))
        return self._ops

    async def attack(self, address: str, state: bytes,
                     identities: Mapping[str, tuple[bytes, bytes]],
                     envelopes: Iterable[CapturedEnvelope]) -> list[Attempt]:
        """``live.state.attack``: what an adversary holding ``address``'s exported ``state``
        reads of the captured envelopes (in wire order), as :class:`DeviceAdversary` does with
        a reference state; the adapter opens them, since only it reads its state."""
        ordered = sorted(envelopes, key=lambda e: e.seq)
        result = await self.call("live.state.attack", {
            "state": state.hex(),
            "identities": [{"address": a, "ik": ik.hex(), "sik": sik.hex()}
                           for a, (ik, sik) in sorted(identities.items())],
            "envelopes": [{"sender": e.sender, "recipient": e.recipient, "body": e.body.hex()}
                          for e in ordered]})
        opened = result["plaintexts"]
        if not isinstance(opened, list) or len(opened) != len(ordered):
            raise ImplError("live.state.attack", Verdict.PROTOCOL.value,
                            "plaintexts must list one entry per envelope")
        return [Attempt(env, "outbound" if env.sender == address else "inbound"
                        if env.recipient == address else "third-party",
                        None if pt is None else bytes.fromhex(str(pt)))
                for env, pt in zip(ordered, opened, strict=True)]

    async def secrets(self) -> list[tuple[str, bytes]]:
        """``live.secrets``: what the adapter derived since the last call (the first call
        switches reporting on). Dropped secrets are an error: the oracle would miss them."""
        result = await self.call("live.secrets", {})
        if result.get("dropped"):
            raise ImplError("live.secrets", "dropped",
                            f"{result['dropped']} secret(s) dropped before they were reported")
        return [(str(s["kind"]), bytes.fromhex(str(s["value"]))) for s in result["secrets"]]

    def close(self) -> None:
        self.process.stop()


@dataclass
class AdapterDevice:
    """One scenario device living in an adapter process (contract §5 ``live.*``)."""

    host: AdapterHost
    user_id: str
    device_id: str
    org: str
    relay: str  # the device's proxy link URL
    seed: str
    identity: tuple[bytes, bytes] = (b"", b"")  # (ik, sik) public keys
    sent: list[tuple[str, str, bytes]] = field(default_factory=list)  # (to, message id, body)
    # message id -> the attachment it received, as the adapter fetched and opened it (or why
    # it could not)
    attachments: dict[str, bytes | str] = field(default_factory=dict)
    push: bool = False  # keeps a push socket (live.stats): delivery needs no fetch

    @property
    def address(self) -> str:
        return str(DeviceAddress(self.user_id, self.device_id))

    @property
    def implementation(self) -> str:
        return self.host.impl.name

    def _learn(self, bundle: Mapping[str, Any]) -> None:
        self.identity = (bytes.fromhex(str(bundle["ik"])), bytes.fromhex(str(bundle["sik"])))

    async def install(self, otp: str = TEST_OTP,
                      totp: Callable[[], str | None] | None = None) -> None:
        """``live.device.create`` then ``live.register`` through the device's proxy link,
        with the one-time code the fleet's OTP source gives (the test OTP, or the relay's
        OTP sink for an organisation off the test allow-list) and, for an admin, a TOTP code
        from ``totp`` (ADR-0161): a step another session of the admin used is refused
        (``invalid_totp``), and the next code is offered, as the reference account does."""
        created = await self.host.call("live.device.create", {
            "user_id": self.user_id, "device_id": self.device_id, "seed": self.seed})
        self._learn(created["bundle"])
        args: dict[str, Any] = {
            "device": self.address, "relay": self.relay, "org": self.org, "otp": otp}
        for attempt in range(3):
            code = totp() if totp is not None else None
            if code is not None:
                args["totp"] = code
            try:
                await self.host.call("live.register", args)
                return
            except ImplError as exc:
                if code is None or "invalid_totp" not in exc.detail or attempt == 2:
                    raise

    async def reinstall(self) -> None:
        result = await self.host.call("live.reinstall", {"device": self.address})
        self._learn(result["bundle"])

    async def send(self, to: Sequence[str], plaintext: bytes, message_id: str,
                   deliver: bool) -> tuple[dict[str, bytes], dict[str, str]]:
        """Every envelope the send encrypted, address -> bytes (contract: recipients and
        sync copies the relay accepted; with ``deliver: false`` what was encrypted), and the
        users of a message to several that it did not reach, user -> why (``failed``)."""
        result = await self.host.call("live.send", {
            "device": self.address, "to": to[0] if len(to) == 1 else list(to),
            "plaintext": plaintext.hex(), "message_id": message_id, "deliver": deliver})
        out = {str(e["to"]): bytes.fromhex(str(e["body"])) for e in result["envelopes"]}
        self.sent.extend((address, message_id, body) for address, body in out.items())
        failed = {str(user): str(why) for user, why in (result.get("failed") or {}).items()}
        return out, failed

    async def receive(self, now: float, fetch: bool = True
                      ) -> tuple[list[Received], list[ClientEvent]]:
        """Open and acknowledge what is pending (``live.receive``): with ``fetch`` the
        queue over HTTP too, else only what the device's push socket delivered."""
        result = await self.host.call("live.receive", {"device": self.address,
                                                       "fetch": fetch})
        shown: list[Received] = []
        events: list[ClientEvent] = []
        for item in result["messages"]:
            sender = str(item["from"])
            try:
                origin = DeviceAddress.parse(sender)
            except AddressError as exc:
                raise ImplError("live.receive", Verdict.PROTOCOL.value, str(exc)) from None
            if item.get("reset"):
                events.append(ClientEvent("reset_honoured", now, sender, "reset notice"))
            elif item.get("error") == "DuplicateMessage":  # as the reference client names it
                events.append(ClientEvent("duplicate_frame", now, sender, "DuplicateMessage",
                                          item.get("message_id")))
            elif "error" in item:
                events.append(ClientEvent("undecryptable", now, sender, str(item["error"]),
                                          item.get("message_id")))
            elif "message_id" not in item:
                continue  # a notice without a message: nothing shown
            else:
                kind = str(item.get("kind", "text"))
                if kind not in KINDS:
                    raise ImplError("live.receive", Verdict.PROTOCOL.value,
                                    f"unknown content kind {kind!r}")
                message_id = str(item["message_id"])
                content = Content(message_id, cast(Kind, kind), now,
                                  bytes.fromhex(str(item.get("plaintext", ""))),
                                  receipt_for=tuple(str(r) for r in item.get("rcpt") or ()),
                                  sync_to=item.get("sync_to"))
                if "attachment" in item:  # fetched and opened by the adapter, as its app does
                    self.attachments[message_id] = bytes.fromhex(str(item["attachment"]))
                elif kind == "attachment":
                    self.attachments[message_id] = str(item.get("attachment_error",
                                                                "no attachment reported"))
                shown.append(Received(origin.user, origin.device, str(item["delivery_id"]),
                                      "broadcast" if kind == "broadcast" else "message",
                                      content, now))
        return shown, events

    async def receipt(self, to: str, message_ids: Sequence[str]
                      ) -> tuple[str, dict[str, bytes]]:
        """``live.receipt``: a read receipt for ``message_ids`` to every device of ``to``;
        (receipt's message id, envelopes)."""
        result = await self.host.call("live.receipt", {
            "device": self.address, "to": to, "message_ids": list(message_ids)})
        message_id = str(result["message_id"])
        return message_id, self._sent(message_id, result)

    async def screenshot(self, peer: str, image: bytes, message_ids: Sequence[str]) -> str:
        """``live.screenshot``: report a screenshot (its hash and message ids); the report id."""
        result = await self.host.call("live.screenshot", {
            "device": self.address, "peer": peer, "image": image.hex(),
            "message_ids": list(message_ids)})
        return str(result["report_id"])

    async def remove(self) -> None:
        """``live.remove``: unregister at the relay and forget the device."""
        await self.host.call("live.remove", {"device": self.address})

    async def attach(self, to: Sequence[str], data: bytes, caption: bytes
                     ) -> tuple[str, dict[str, bytes], dict[str, str], str, bytes]:
        """``live.attach``: (message id, envelopes, failed users, file id, blob key)."""
        result = await self.host.call("live.attach", {
            "device": self.address, "to": list(to), "data": data.hex(),
            "caption": caption.hex()})
        message_id = str(result["message_id"])
        failed = {str(u): str(why) for u, why in (result.get("failed") or {}).items()}
        return (message_id, self._sent(message_id, result), failed, str(result["file_id"]),
                bytes.fromhex(str(result["key"])))

    async def broadcast(self, to: Sequence[str], body: bytes) -> tuple[str, dict[str, bytes]]:
        """``live.broadcast``: (message id, envelopes)."""
        result = await self.host.call("live.broadcast", {
            "device": self.address, "to": list(to), "plaintext": body.hex()})
        message_id = str(result["message_id"])
        return message_id, self._sent(message_id, result)

    async def rotate_spk(self, keep_previous: bool) -> tuple[str, str]:
        """``live.spk.rotate``: (previous key id, new key id)."""
        result = await self.host.call("live.spk.rotate", {
            "device": self.address, "keep_previous": keep_previous})
        return str(result["previous"]), str(result["key_id"])

    async def replenish(self) -> int:
        """``live.opks.replenish``: how many one-time prekeys it uploaded."""
        result = await self.host.call("live.opks.replenish", {"device": self.address})
        return int(result["uploaded"])

    def _sent(self, message_id: str, result: Mapping[str, Any]) -> dict[str, bytes]:
        out = {str(e["to"]): bytes.fromhex(str(e["body"])) for e in result["envelopes"]}
        self.sent.extend((address, message_id, body) for address, body in out.items())
        return out

    async def stats(self) -> dict[str, int]:
        """``live.stats``: the device's counters of :data:`CLIENT_COUNTED_STATS` (what the
        executor adds to its reference clients' counts)."""
        result = await self.host.call("live.stats", {"device": self.address})
        missing = CLIENT_COUNTED_STATS - result.keys()
        if missing:
            raise ImplError("live.stats", Verdict.PROTOCOL.value,
                            f"the answer lacks {', '.join(sorted(missing))}")
        self.push = bool(result.get("push"))
        return {name: int(result[name]) for name in CLIENT_COUNTED_STATS}

    async def export_state(self) -> bytes:
        """``live.state.export``: the device's whole state (keys, sessions), opaque."""
        result = await self.host.call("live.state.export", {"device": self.address})
        return bytes.fromhex(str(result["state"]))

    async def import_state(self, state: bytes) -> None:
        """``live.state.import``: replace the device's state with an exported one (its own:
        a rollback; another device's of the same user: a clone)."""
        result = await self.host.call("live.state.import",
                                      {"device": self.address, "state": state.hex()})
        self._learn(result["bundle"])

    async def digest(self, remote: str) -> bytes | None:
        """The SPEC §7 digest of the current session with ``remote`` (None: no session)."""
        try:
            result = await self.host.call("session.digest",
                                          {"device": self.address, "remote": remote})
        except ImplError as exc:
            if exc.name == "NoSession":
                return None
            raise
        return bytes.fromhex(str(result["digest"]))

    async def close(self) -> None:
        if self.host.dead is None:
            await self.host.call("live.close", {"device": self.address})


def _devices_of(step: Step) -> list[str]:
    refs = []
    for name in ("sender", "device"):
        ref = getattr(step, name, None)
        if ref is not None:
            refs.append(ref)
    refs.extend(getattr(step, "devices", ()) or ())
    return [str(r) for r in refs]


def unsupported_steps(scenario: Scenario, assignment: Mapping[str, str],
                      ops: Mapping[str, frozenset[str]]) -> list[str]:
    """Why the scenario cannot run with this assignment, one line per step (empty: it can).

    ``ops``: implementation name -> operations its adapter lists in ``capabilities``."""
    adapter_devices = {d: n for d, n in assignment.items() if n != REFERENCE}
    if not adapter_devices:
        return []
    out: list[str] = []
    uncounted = {d for d, n in adapter_devices.items()
                 if "live.stats" not in ops.get(n, frozenset())}

    def why(step: Step, device: str, what: str) -> None:
        kind = "replay" if isinstance(step, Replay) else step.kind  # Replay.kind is the frame
        out.append(f"step {kind} (line {step.line}) on {device} "
                   f"[{adapter_devices[device]}]: {what}")

    for step in scenario.all_steps():
        if isinstance(step, Concurrently):
            continue
        mine = [d for d in _devices_of(step) if d in adapter_devices]
        if isinstance(step, Attach):  # a receiving adapter device fetches and opens it
            for user in step.to:
                for device in (d for d in adapter_devices
                               if DeviceAddress.parse(d).user == user
                               and "live.attach" not in ops.get(adapter_devices[d], frozenset())):
                    why(step, device, "receiving an attachment (an adapter without live.attach "
                        "need not fetch the blob)")
        if isinstance(step, ExhaustOpks) and step.replenish:
            for device in mine:
                if "live.opks.replenish" not in ops.get(adapter_devices[device], frozenset()):
                    why(step, device, "the adapter does not list live.opks.replenish")
        if isinstance(step, Restore) and step.onto is not None:
            mine.append(str(step.onto))
            mine = [d for d in mine if d in adapter_devices]
            if len({adapter_devices.get(d, REFERENCE) for d in
                    (str(step.device), str(step.onto))}) > 1:
                out.append(f"step restore (line {step.line}): a clone across implementations "
                           "(the exported state is the implementation's own format)")
        op = kind_of(step).adapter_op
        if op is not None:
            for device in mine:
                if op not in ops.get(adapter_devices[device], frozenset()):
                    why(step, device, f"the adapter does not list {op}")
        if isinstance(step, Compromise) and step.device is not None:
            device = str(step.device)
            if device in adapter_devices and not {"live.state.export", "live.state.attack"} <= \
                    ops.get(adapter_devices[device], frozenset()):
                why(step, device, "an adversary holding the device's state needs live.state."
                    "export and live.state.attack (the state is the adapter's own format)")
        if isinstance(step, Replay):
            targets = [str(r) for r in step.to] or list(adapter_devices)
            for device in (t for t in targets if t in uncounted):
                why(step, device, "a replay is injected on the push socket, which an adapter "
                    "without live.stats does not report holding")
        if isinstance(step, Network) and step.channel == "ws" and step.scope is not None:
            device = str(step.scope)
            if device in uncounted:
                why(step, device, "a push-socket fault on a device of an adapter without "
                    "live.stats (no push socket reported) would never act")
        if isinstance(step, Assertion):
            if step.assertion is AssertionKind.MECHANISM and step.stat in CLIENT_COUNTED_STATS \
                    and step.at_most is not None and uncounted:
                out.append(f"step assert (line {step.line}): mechanism stat {step.stat} "
                           f"<= {step.at_most} is counted inside the reference client; adapter "
                           f"devices ({', '.join(sorted(uncounted))}) report no such "
                           "count (no live.stats), so no upper bound can be shown")
            if step.assertion is AssertionKind.SESSIONS_CONVERGE:
                for device in mine:
                    if "session.digest" not in ops.get(adapter_devices[device], frozenset()):
                        why(step, device, "the adapter does not list session.digest")
    return out


__all__ = [
    "CLIENT_COUNTED_STATS",
    "AdapterDevice",
    "AdapterHost",
    "ImplError",
    "unsupported_steps",
]
