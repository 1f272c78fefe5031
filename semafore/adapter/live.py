"""Live operations of the reference adapter (SPEC §7, docs/adapter-contract.md "Live operations").

The live interop gate (``semafore gate live``) drives real devices of several platforms through
one relay. Each device here is a :class:`~semafore.client.DeviceClient` (keys, sessions, HTTP
to the relay); the adapter process hosts any number of them under their address
``user:device``. The client is asynchronous, the contract is one request at a time, so every
operation runs to completion on one private event loop before the answer is written.

The E2E plaintext of a live message is the reference content encoding (``"SFC1" ||`` canonical
JSON of kind ``text`` whose ``body`` is the gate's plaintext and ``id`` its message id), so two
platforms agree on what the receiver must find.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from semafore.adapter.args import Args, BadArgument
from semafore.client.client import DeviceClient, SendResult
from semafore.client.clock import SystemClock
from semafore.client.device import Device, IdentityPolicy, PrekeyPolicy
from semafore.client.errors import (
    ClientError,
    MalformedClientState,
    RecipientsFailed,
    ServerRejected,
)
from semafore.protocol import secrets as protocol_secrets
from semafore.protocol.entropy import Entropy, SeededEntropy, SystemEntropy
from semafore.protocol.errors import NoSession, ProtocolError
from semafore.protocol.keys import device_address

T = TypeVar("T")

DEFAULT_OPK_COUNT = 20

MAX_PENDING_SECRETS = 200_000
"""``live.secrets`` holds at most this many unreported secrets; beyond, it counts drops."""


class RelayFailure(ProtocolError):
    """The relay refused a request or could not be reached (detail: status and code).

    Not a SPEC §5 name on purpose: the gate reports it as the adapter failing the step."""

    name = "RelayError"


@dataclass
class _LiveDevice:
    user_id: str
    device_id: str
    seed: str | None
    opk_count: int
    generation: int
    device: Device
    entropy: Entropy
    client: DeviceClient | None = None
    relay: str | None = None
    org: str | None = None
    otp: str | None = None

    @property
    def address(self) -> str:
        return device_address(self.user_id, self.device_id)

    def connected(self) -> DeviceClient:
        if self.client is None:
            raise NoSession(f"device {self.address!r} is not registered", field="args.device")
        return self.client


def _entropy(seed: str | None, user_id: str, device_id: str, generation: int) -> Entropy:
    if seed is None:
        return SystemEntropy()
    return SeededEntropy(f"{seed}:{user_id}:{device_id}:{generation}")


class LiveOps:
    """Devices of this adapter process, keyed by address, and the loop they run on."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._devices: dict[str, _LiveDevice] = {}
        self.clock = SystemClock()
        self._secrets: list[tuple[str, bytes]] | None = None  # None: not asked yet
        self._secrets_dropped = 0
        self._reporting = contextlib.ExitStack()

    def handlers(self) -> dict[str, Callable[[Args], dict[str, Any]]]:
        """The live operations this adapter serves, by their contract names
        (docs/adapter-contract.md): the one list of them. ``ReferenceAdapter`` registers
        exactly these, so ``capabilities`` reports what is served (issue 14 item 1: a
        separate tuple of names had been kept beside the registry)."""
        return {
            "live.device.create": self.create,
            "live.register": self.register,
            "live.send": self.send,
            "live.receive": self.receive,
            "live.reinstall": self.reinstall,
            "live.close": self.close,
            "live.state.export": self.export_state,
            "live.state.import": self.import_state,
            "live.secrets": self.secrets,
            "live.stats": self.stats,
        }

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()  # on first use: vector runs need none
        try:
            return self._loop.run_until_complete(coro)
        except ServerRejected as exc:
            raise RelayFailure(f"relay answered {exc.status} {exc.code}", field="relay") from exc
        except ClientError as exc:
            raise RelayFailure(f"{type(exc).__name__}: {exc}", field="relay") from exc

    def _device(self, args: Args) -> _LiveDevice:
        address = args.text("device")
        try:
            return self._devices[address]
        except KeyError:
            raise NoSession(f"no live device {address!r}", field="args.device") from None

    def _fresh(
        self, user_id: str, device_id: str, seed: str | None, opk_count: int, generation: int
    ) -> tuple[Device, Entropy]:
        entropy = _entropy(seed, user_id, device_id, generation)
        device = Device.create(
            user_id, device_id, entropy, self.clock.now(), opk_count=opk_count,
            policy=IdentityPolicy.ACCEPT_AND_NOTIFY,
        )
        return device, entropy

    def _connect(self, live: _LiveDevice) -> DeviceClient:
        assert live.relay is not None and live.org is not None
        live.client = DeviceClient(
            live.device, live.org, live.relay, live.entropy, self.clock,
            prekeys=PrekeyPolicy(opk_batch=max(live.opk_count, 1)), use_websocket_send=False,
        )
        return live.client

    # -- operations ------------------------------------------------------------------------

    def create(self, args: Args) -> dict[str, Any]:
        user_id, device_id = args.text("user_id"), args.text("device_id")
        seed = args.optional_text("seed")
        opk_count = args.integer("opk_count") if args.has("opk_count") else DEFAULT_OPK_COUNT
        if not 1 <= opk_count <= 100:
            raise BadArgument("opk_count must be 1..100", field="args.opk_count")
        address = device_address(user_id, device_id)
        if address in self._devices:
            raise BadArgument(f"device {address!r} already exists", field="args.device_id")
        device, entropy = self._fresh(user_id, device_id, seed, opk_count, 0)
        live = _LiveDevice(user_id, device_id, seed, opk_count, 0, device, entropy)
        self._devices[address] = live
        return {"device": address, "bundle": _public_bundle(live.device)}

    def register(self, args: Args) -> dict[str, Any]:
        live = self._device(args)
        relay = args.text("relay").rstrip("/")
        if not relay.startswith(("http://", "https://")):
            raise BadArgument("relay must be an http(s) base URL", field="args.relay")
        if live.client is not None:
            raise BadArgument(f"{live.address!r} is already registered", field="args.device")
        live.relay, live.org, live.otp = relay, args.text("org"), args.text("otp")
        client = self._connect(live)
        self._run(client.register(live.otp, args.optional_text("totp")))
        return {"registration_id": client.device.registration_id}

    def send(self, args: Args) -> dict[str, Any]:
        client = self._device(args).connected()
        to = args.users("to")
        peers = {u for u in to if u != client.device.user_id}
        plaintext = args.hex("plaintext")
        message_id = args.text("message_id")
        deliver = args.flag("deliver", True)
        # every batch the relay accepted for this message, as the client handed it over: the
        # recipients' envelopes and the sync copies to this user's other devices alike (the
        # gate scans what went on the wire, contract §5 ``live.send``)
        on_wire: dict[str, tuple[bytes, bool]] = {}

        def sent(_: DeviceClient, user_id: str, sent_id: str, bodies: dict[str, bytes]) -> None:
            if sent_id == message_id:
                for address, body in bodies.items():
                    on_wire[address] = (body, user_id == client.device.user_id and bool(peers))

        async def send() -> tuple[SendResult, dict[str, str]]:
            try:
                return await client.send_text(
                    to, plaintext, message_id=message_id, withhold=not deliver), {}
            except RecipientsFailed as exc:  # some users reached, the rest named
                return exc.result, {u: f"{type(e).__name__}: {e}" for u, e in exc.failures.items()}

        client.on_sent = sent
        try:
            result, failed = self._run(send())
        finally:
            client.on_sent = None
        if not deliver:  # withheld: nothing reached the relay; the recipients' bodies only
            on_wire = {address: (body, address in result.sync)
                       for address, body in result.envelopes.items()}
        envelopes: list[dict[str, Any]] = []
        for address, (body, sync) in sorted(on_wire.items(), key=lambda kv: (kv[1][1], kv[0])):
            envelope: dict[str, Any] = {"to": address, "body": body.hex()}
            if sync:
                envelope["sync"] = True
            envelopes.append(envelope)
        out = {"message_id": result.message_id, "delivered": deliver, "envelopes": envelopes}
        if failed:
            out["failed"] = failed
        return out

    def receive(self, args: Args) -> dict[str, Any]:
        client = self._device(args).connected()
        order = args.optional_text("order") or "queue"
        if order not in ("queue", "reverse"):
            raise BadArgument("order must be 'queue' or 'reverse'", field="args.order")
        if not args.flag("fetch", True):
            return {"messages": []}  # no push socket here: only a fetch delivers (contract §5)
        return {"messages": self._run(self._receive(client, order))}

    async def _receive(self, client: DeviceClient, order: str) -> list[dict[str, Any]]:
        envelopes: list[dict[str, Any]] = []
        while True:
            page = await client.http.json("GET", "/v1/messages", params={"limit": 100})
            envelopes.extend(page["envelopes"])
            if not page["more"] or len(envelopes) >= 1000:
                break
        if order == "reverse":
            envelopes.reverse()
        out: list[dict[str, Any]] = []
        for env in envelopes:
            before = len(client.events)
            received = await client.process_envelope(env)
            sender = device_address(str(env["sender_user_id"]), str(env["sender_device_id"]))
            item: dict[str, Any] = {
                "from": sender,
                "delivery_id": str(env["delivery_id"]),
                "envelope_sha256": _sha(env["body"]),
            }
            if received is not None:
                item["message_id"] = received.content.message_id
                item["plaintext"] = received.content.body.hex()
                if received.content.sync_to is not None:
                    item["sync_to"] = received.content.sync_to
                if received.content.kind != "text":
                    item["kind"] = received.content.kind
                if received.content.receipt_for:
                    item["rcpt"] = list(received.content.receipt_for)
                if received.content.attachment is not None:  # the app fetches the blob
                    try:
                        data = await client.fetch_attachment(received.content.attachment)
                        item["attachment"] = data.hex()
                    except (ClientError, ProtocolError) as exc:
                        item["attachment_error"] = f"{type(exc).__name__}: {exc}"
                out.append(item)
                continue
            events = client.events[before:]
            if any(e.kind in _RESET_EVENTS for e in events):
                # a SPEC §4 reset notice: no live.send put it on the wire (a device sent it
                # while receiving), so its bytes are reported here for the gate's wire scan
                item["reset"] = True
                item["body"] = base64.b64decode(str(env["body"])).hex()
                out.append(item)
                continue
            failures = [e for e in events if e.kind in _FAILURE_EVENTS]
            if not failures:
                continue  # a duplicate or a receipt: nothing to show
            item["message_id"] = env.get("message_id")
            item["error"] = _FAILURE_EVENTS[failures[0].kind] or failures[0].detail
            item["detail"] = f"{failures[0].kind}: {failures[0].detail}"
            out.append(item)
        await client.flush_acks()
        return out

    def reinstall(self, args: Args) -> dict[str, Any]:
        """Wipe and reinstall under the same address: unregister, new keys, register again."""
        live = self._device(args)
        client = live.connected()
        with contextlib.suppress(RelayFailure):
            self._run(client.remove_device(live.device_id))
        self._run(client.close())
        live.generation += 1
        live.device, live.entropy = self._fresh(
            live.user_id, live.device_id, live.seed, live.opk_count, live.generation
        )
        fresh = self._connect(live)
        assert live.otp is not None
        self._run(fresh.register(live.otp))
        return {
            "device": live.address,
            "bundle": _public_bundle(live.device),
            "registration_id": live.device.registration_id,
        }

    def digest(self, args: Args) -> dict[str, Any]:
        live = self._device(args)
        remote = args.text("remote")
        record = live.device.sessions.get(remote)
        if record is None or record.current is None:
            raise NoSession(f"no session with {remote!r}", field="args.remote")
        return {"digest": record.current.ratchet.digest().hex()}

    def export_state(self, args: Args) -> dict[str, Any]:
        """The device's whole state as a backup holds it (keys, identities, sessions; never
        the random source): the reference's own serialization, opaque to the harness."""
        return {"state": self._device(args).device.serialize().hex()}

    def import_state(self, args: Args) -> dict[str, Any]:
        """Put an exported state onto the device: its own (a restore keeps the relay login)
        or another device's of the same user (a clone: unregister, log in again, publish the
        cloned identity and prekeys). The device keeps its own random source."""
        live = self._device(args)
        try:
            restored = Device.parse(args.hex("state"))
        except (MalformedClientState, ValueError, KeyError, TypeError, ProtocolError) as exc:
            raise BadArgument(f"not an exported state: {exc}", field="args.state") from None
        if restored.user_id != live.user_id:
            raise BadArgument(f"a state of {restored.address!r} cannot go onto "
                              f"{live.address!r} (another user)", field="args.state")
        clone = restored.device_id != live.device_id
        live.device = dataclasses.replace(restored, device_id=live.device_id,
                                          registration_id=live.device.registration_id)
        if live.client is not None:
            live.client.device = live.device
            if clone:
                assert live.otp is not None
                self._run(live.client.remove_device(live.device_id))
                self._run(live.client.register(live.otp))
        return {"device": live.address, "bundle": _public_bundle(live.device),
                "registration_id": live.device.registration_id}

    def secrets(self, args: Args) -> dict[str, Any]:
        """Every secret this process derived since the last call (kinds of SPEC §8's
        registry, semafore.protocol.secrets), for the harness's oracle. The first call
        switches reporting on and answers nothing."""
        if self._secrets is None:
            self._secrets = []
            self._reporting.enter_context(protocol_secrets.reporting(self._collect))
            return {"secrets": [], "dropped": 0}
        out = [{"kind": kind, "value": value.hex()} for kind, value in self._secrets]
        dropped, self._secrets_dropped = self._secrets_dropped, 0
        self._secrets.clear()
        return {"secrets": out, "dropped": dropped}

    def stats(self, args: Args) -> dict[str, Any]:
        """The device's client counters under the names of the simulator's mechanism
        statistics (contract §5 ``live.stats``): a harness adds them to its own devices'
        counts, so a bound over every device can be shown. ``push_open``: whether the device
        holds a push socket now (this adapter's devices fetch over HTTP only)."""
        client = self._device(args).connected()
        counters = client.counters
        return {
            "duplicates_dropped": counters.duplicates,
            "undecryptable": counters.undecryptable,
            "skipped_keys_used": client.device.skipped_keys_used,
            "resets_sent": counters.resets_sent,
            "identity_changes_seen": len(client.device.identity_changes),
            "device_set_retries": counters.device_set_retries,
            "reconnects": counters.reconnects,
            "push": False,  # never: its event loop runs only inside a request
            "push_open": client.connected,
        }

    def _collect(self, kind: str, value: bytes) -> None:
        assert self._secrets is not None
        if len(self._secrets) >= MAX_PENDING_SECRETS:
            self._secrets_dropped += 1
        else:
            self._secrets.append((kind, bytes(value)))

    def close(self, args: Args) -> dict[str, Any]:
        live = self._device(args)
        if live.client is not None:
            self._run(live.client.close())
        del self._devices[live.address]
        return {}


_FAILURE_EVENTS: dict[str, str | None] = {
    "undecryptable": None,  # detail is the SPEC §5 name
    "untrusted_identity": "UntrustedIdentity",
    "malformed_envelope": "MalformedEnvelope",
    "malformed_content": "MalformedEnvelope",
    # a frame whose key is gone: the gate never redelivers, so this is a lost message
    "duplicate_frame": "DuplicateMessage",
}


_RESET_EVENTS = ("reset_honoured", "reset_ignored")  # a bare SRS1 or an e2e ``reset`` content


def _sha(body_b64: Any) -> str:
    return hashlib.sha256(base64.b64decode(str(body_b64))).hexdigest()


def _public_bundle(device: Device) -> dict[str, Any]:
    keys = device.keys
    return {
        "ik": keys.identity.ik.public.hex(),
        "sik": keys.identity.sik.public.hex(),
        "spk": {
            "key_id": keys.spk.key_id,
            "pub": keys.spk.keypair.public.hex(),
            "sig": keys.spk.signature.hex(),
        },
        "opk_count": len(keys.opks),
    }


__all__ = ["LiveOps", "RelayFailure"]
