"""A device connected to a relay: register, keep prekeys healthy, send, receive (SPEC §2–§4).

:class:`DeviceClient` wraps one :class:`~semafore.client.device.Device` and its connection to
any relay URL (the reference relay or a platform's own). Sending a message to a user
encrypts it once per recipient device and once per *own other* device (the sync copy), one
envelope each (seed §4.2); the relay's 409 (missing/extra devices) and 410 (stale
registration) are answered by refreshing the device list and bundles and retrying, as
Signal clients do. Receiving runs over the device WebSocket (reconnecting with exponential
back-off) or by polling ``GET /v1/messages``; duplicates are dropped by message id, and an
undecryptable frame is answered with a ``reset`` notice (SPEC §4).

All randomness comes from the injected :class:`Entropy` and all time from the injected
:class:`Clock`; sends from one device are serialised, so a seeded run is reproducible.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from semafore import sabotage
from semafore.client import attachments
from semafore.client.clock import Clock
from semafore.client.content import AttachmentPointer, Content, Kind, decode, sync_field
from semafore.client.device import Device, PrekeyPolicy
from semafore.client.errors import (
    ClientError,
    DeliveryFailed,
    MalformedContent,
    RecipientsFailed,
    ServerRejected,
    TransportError,
)
from semafore.client.expect import (
    DECRYPTION_ERROR_KINDS,
    DEFAULT_TIMEOUT,
    Expectations,
    ExpectationTimeout,
    sender_argument,
    sender_matches,
)
from semafore.client.transport import RETRY_STATUSES, RelayHttp
from semafore.protocol.address import DeviceAddress
from semafore.protocol.entropy import Entropy
from semafore.protocol.errors import (
    DuplicateMessage,
    ProtocolError,
    UntrustedIdentity,
)
from semafore.protocol.frame import is_smx1
from semafore.protocol.keys import bundle_from_dict, device_address
from semafore.protocol.session_cipher import RESET_MAGIC

log = logging.getLogger(__name__)

MAX_DEVICE_SET_RETRIES = 4
ACK_BATCH = 100
MAX_ACK_DELAY = 5.0  # well under the relay's ws_stall_timeout (30 s by default)
_ACKS_DUE: dict[str, Any] = {}  # put on the push queue when a delayed ack is due
DEFAULT_PUSH_BATCH = 64  # envelopes per pushed frame the SDK asks for (0: one frame each)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class Received:
    """One decrypted message as the application sees it."""

    sender_user_id: str
    sender_device_id: str
    delivery_id: str
    kind: str  # the relay's envelope kind: "message" or "broadcast"
    content: Content
    at: float

    @property
    def sender(self) -> str:
        return device_address(self.sender_user_id, self.sender_device_id)


@dataclass(frozen=True)
class ClientEvent:
    """Something a scenario may want to assert on (failures, resets, identity changes)."""

    kind: str
    at: float
    peer: str | None = None
    detail: str = ""
    message_id: str | None = None


Recipients = str | Iterable[str]
"""Whom a message goes to: one user id, or several (one message to all of them, issue #11)."""


@dataclass(frozen=True)
class SendResult:
    """One message as it was handed to the relay (or, withheld, encrypted).

    ``envelopes`` holds every envelope of the message, address -> bytes as sent: one per
    device of every recipient user and the sync copies to this user's other devices, which
    ``sync`` names (so a caller can tell them apart). ``attempts`` counts the requests that
    carried it, device-set repairs (409/410) included."""

    message_id: str
    envelopes: dict[str, bytes]
    attempts: int
    sync: frozenset[str] = frozenset()


@dataclass
class Counters:
    sent_messages: int = 0
    sent_envelopes: int = 0
    received: int = 0
    duplicates: int = 0
    undecryptable: int = 0
    resets_sent: int = 0
    resets_honoured: int = 0
    device_set_retries: int = 0
    bundles_fetched: int = 0
    opks_uploaded: int = 0
    spk_rotations: int = 0
    reconnects: int = 0
    push_frames: int = 0  # WebSocket frames that carried pushed envelopes


@dataclass
class _Directory:
    """What this device believes a user's devices are: device id -> registration id."""

    devices: dict[str, int] = field(default_factory=dict)


class DeviceClient:
    def __init__(
        self,
        device: Device,
        org_id: str,
        base_url: str,
        entropy: Entropy,
        clock: Clock,
        *,
        prekeys: PrekeyPolicy | None = None,
        http: RelayHttp | None = None,
        ws_url: str | None = None,
        on_receive: Callable[[DeviceClient, Received], None] | None = None,
        on_event: Callable[[DeviceClient, ClientEvent], None] | None = None,
        on_sent: Callable[[DeviceClient, str, str, dict[str, bytes]], None] | None = None,
        persist: Callable[[bytes], None] | None = None,
        use_websocket_send: bool = True,
        ws_send_timeout: float | None = None,
        auto_prekeys: bool = True,
        push_batch: int = DEFAULT_PUSH_BATCH,
        ack_delay: float = 0.0,
        sibling_lookup: bool = False,
    ) -> None:
        if not 0 <= push_batch <= 64:
            raise ValueError("push_batch must be 0..64 (docs/server.md, WebSocket)")
        if ws_send_timeout is not None and not ws_send_timeout > 0:
            raise ValueError("ws_send_timeout must be > 0 s: an unbounded write to a relay "
                             "that stopped reading hangs forever (docs/client.md)")
        if not 0.0 <= ack_delay <= MAX_ACK_DELAY:
            raise ValueError(f"ack_delay must be 0..{MAX_ACK_DELAY:g} s (the relay closes a "
                             "socket whose full window stays unacked, docs/server.md)")
        self.device = device
        self.org_id = org_id
        self.entropy = entropy
        self.clock = clock
        self.prekeys = prekeys or PrekeyPolicy()
        self.http = http or RelayHttp(base_url, entropy)
        self.ws_url = ws_url or _ws_url(base_url)
        self.on_receive = on_receive
        self.on_event = on_event
        self.on_sent = on_sent
        self.persist = persist
        self.use_websocket_send = use_websocket_send
        # Bounds each push-socket write (send_frame) and a WebSocket send's wait for its
        # reply; by default the HTTP timeout, so a send takes as long either way.
        self.ws_send_timeout = (
            ws_send_timeout if ws_send_timeout is not None else self.http.timeout
        )
        self.auto_prekeys = auto_prekeys
        # Batched push (docs/server.md "WebSocket"): the relay packs whatever is ready into one
        # ``envelopes`` frame and ready replies into one ``batch`` frame; 0 asks for one frame
        # per envelope (what a per-frame network fault model needs, simulator/network.py).
        self.push_batch = push_batch
        # Pushed envelopes are acked when the push queue runs dry (0, the default: one ack
        # frame, and one ``acked`` reply, per envelope when they trickle in), or up to
        # ``ack_delay`` seconds later, so that one frame acks what arrived meanwhile
        # (ACK_BATCH at most, flushed at once when full). A fleet uses it (docs/simulator.md
        # "Sharded fleet"); an envelope stays queued at the relay until acked, so a socket
        # lost in between only means it is pushed again and dropped as a duplicate.
        self.ack_delay = ack_delay
        # An unknown SMX1 sender is looked up for its whole user (``GET /v1/identities/
        # {user}``) when set, pinning the siblings too, so a sibling's first SMX1 needs no
        # lookup (a fleet's cost, docs/simulator.md "Sharded fleet"). Off by default: it
        # changes which identities a device has pinned when, and with it the pinned live
        # transcript every platform reproduces (vectors/dr-v1-live-result.json, SPEC §6).
        self.sibling_lookup = sibling_lookup
        self._ack_timer: asyncio.TimerHandle | None = None
        self.inbox: list[Received] = []
        self.events: list[ClientEvent] = []
        self.counters = Counters()
        self.directory: dict[str, _Directory] = {}
        self.role = "member"
        self._send_lock = asyncio.Lock()
        self._receive_lock = asyncio.Lock()
        self._ws: ClientConnection | None = None
        self._ws_task: asyncio.Task[None] | None = None
        self._ws_connected = asyncio.Event()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._acks: list[str] = []
        self._request_seq = 0
        self._stopping = False
        self.expectations = Expectations(lambda: self.address)

    # -- identity --------------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        return self.device.user_id

    @property
    def device_id(self) -> str:
        return self.device.device_id

    @property
    def address(self) -> str:
        return self.device.address

    def _event(
        self, kind: str, peer: str | None = None, detail: str = "", message_id: str | None = None
    ) -> None:
        ev = ClientEvent(kind, self.clock.now(), peer, detail, message_id)
        self.events.append(ev)
        if self.on_event is not None:
            self.on_event(self, ev)
        self.expectations.notify()

    def _save(self) -> None:
        if self.persist is not None:
            self.persist(self.device.serialize())

    # -- registration and prekeys ----------------------------------------------------------

    async def login(self, otp: str, totp: str | None = None) -> dict[str, Any]:
        """``POST /v1/auth/login``; the relay assigns this device's registration id."""
        body: dict[str, Any] = {
            "org_id": self.org_id,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "otp": otp,
        }
        if totp is not None:
            body["totp"] = totp
        pair: dict[str, Any] = await self.http.json("POST", "/v1/auth/login", json=body, auth=False)
        self.http.set_tokens(pair)
        self.device.registration_id = int(pair["registration_id"])
        self.role = str(pair.get("role", "member"))
        return pair

    async def publish_keys(self) -> int:
        """``PUT /v1/keys``: identity, current SPK and up to 100 OPKs; returns the OPK count."""
        keys = self.device.keys
        opks = list(keys.opks.values())[: self.prekeys.opk_batch]
        body = {
            "ik": b64(keys.identity.ik.public),
            "sik": b64(keys.identity.sik.public),
            "spk": {
                "key_id": keys.spk.key_id,
                "pub": b64(keys.spk.keypair.public),
                "sig": b64(keys.spk.signature),
            },
            "opks": [{"key_id": o.key_id, "pub": b64(o.keypair.public)} for o in opks],
        }
        count = await self.http.json("PUT", "/v1/keys", json=body)
        self.counters.opks_uploaded += len(opks)
        self._save()
        if sabotage.active("client.backs_up_state_to_relay"):  # TEST ONLY (semafore.sabotage)
            await self._upload_unencrypted(self.device.serialize())
        return int(count["opk_count"])

    async def register(self, otp: str, totp: str | None = None) -> None:
        await self.login(otp, totp)
        await self.publish_keys()

    async def maintain_prekeys(self) -> dict[str, int]:
        """Top up OPKs below the low-water mark; rotate the SPK when due (Signal's cadence)."""
        count = await self.http.json("GET", "/v1/keys")
        uploaded = 0
        new = self.device.opks_to_upload(int(count["opk_count"]), self.entropy, self.prekeys)
        for start in range(0, len(new), 100):
            batch = new[start : start + 100]
            await self.http.json(
                "POST",
                "/v1/keys/opks",
                json={"opks": [{"key_id": o.key_id, "pub": b64(o.keypair.public)} for o in batch]},
            )
            uploaded += len(batch)
        self.counters.opks_uploaded += uploaded
        rotated = 0
        if self.device.spk_due(self.clock.now(), self.prekeys):
            await self.rotate_spk()
            rotated = 1
        if uploaded or rotated:
            self._save()
        return {"opks_uploaded": uploaded, "spk_rotated": rotated}

    async def _replenish_after_bootstrap(self, smx1_body: bytes) -> None:
        """A peer bootstrapped with us: if it found no OPK (flags 0x00, SPEC §2) or few are
        left locally, check the relay's count and top up (Signal clients do the same)."""
        no_opk = len(smx1_body) > 4 and smx1_body[4] == 0
        if no_opk or len(self.device.keys.opks) <= self.prekeys.opk_low_water:
            try:
                await self.maintain_prekeys()
            except ClientError as exc:
                self._event("prekey_upkeep_failed", None, exc.detail)

    async def rotate_spk(self) -> str:
        """New signed prekey, published; the previous ones stay for SMX1s in flight."""
        self.device.rotate_spk(self.entropy, self.clock.now())
        spk = self.device.keys.spk
        await self.http.json(
            "PUT",
            "/v1/keys/spk",
            json={"key_id": spk.key_id, "pub": b64(spk.keypair.public), "sig": b64(spk.signature)},
        )
        self.counters.spk_rotations += 1
        self._save()
        return spk.key_id

    async def own_devices(self) -> dict[str, int]:
        """``GET /v1/devices``: this user's devices (for sync copies), self excluded."""
        listing = await self.http.json("GET", "/v1/devices")
        devices = {
            d["device_id"]: int(d["registration_id"])
            for d in listing["devices"]
            if d["device_id"] != self.device_id
        }
        self._set_directory(self.user_id, devices)
        return devices

    async def remove_device(self, device_id: str) -> None:
        await self.http.json("DELETE", f"/v1/devices/{device_id}")

    # -- device directory ------------------------------------------------------------------

    def _set_directory(self, user_id: str, devices: dict[str, int]) -> None:
        entry = self.directory.setdefault(user_id, _Directory())
        for gone in set(entry.devices) - set(devices):
            self.device.forget_device(device_address(user_id, gone))
        entry.devices = dict(devices)

    async def _fetch_bundles(self, user_id: str, device_id: str | None = None) -> None:
        """Fetch bundles (claims one OPK each), pin identities, start sessions with them."""
        path = f"/v1/keys/{user_id}" + (f"/{device_id}" if device_id else "")
        try:
            out = await self.http.json("GET", path)
        except ServerRejected as exc:
            if exc.status == 404 and exc.code == "no_keys":
                if device_id is None:
                    self._set_directory(user_id, {})
                return
            raise
        entry = self.directory.setdefault(user_id, _Directory())
        now = self.clock.now()
        for raw in out["devices"]:
            if raw["device_id"] == self.device_id and user_id == self.user_id:
                continue
            bundle = bundle_from_dict(raw, unb64)
            self.counters.bundles_fetched += 1
            address = bundle.address
            known = self.device.known_identity(address)
            changed = known is not None and (known.ik, known.sik) != (bundle.ik, bundle.sik)
            try:
                self.device.start_session(bundle, self.entropy, now)
            except UntrustedIdentity:
                self._event("identity_rejected", address)
                raise
            if changed:
                self._event("identity_changed", address)
            entry.devices[bundle.device_id] = int(raw["registration_id"])

    async def _prepare(self, user_id: str) -> dict[str, int]:
        """The devices to encrypt to for ``user_id``, each with a session."""
        entry = self.directory.get(user_id)
        if entry is None:
            if user_id == self.user_id:
                await self.own_devices()
            else:
                await self._fetch_bundles(user_id)
            entry = self.directory.setdefault(user_id, _Directory())
        for device_id in list(entry.devices):
            if not self.device.has_session(device_address(user_id, device_id)):
                await self._fetch_bundles(user_id, device_id)
        return {
            d: r
            for d, r in entry.devices.items()
            if self.device.has_session(device_address(user_id, d))
        }

    # -- sending ---------------------------------------------------------------------------

    def new_message_id(self) -> str:
        return self.entropy.random_bytes(16, "message_id").hex()

    async def _send_envelopes(
        self, user_id: str, message_id: str, envelopes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        request = {"message_id": message_id, "envelopes": envelopes}
        if self.use_websocket_send and self._ws is not None and self._ws_connected.is_set():
            try:
                return await self._ws_send(user_id, request)
            except (ConnectionClosed, TransportError, TimeoutError):
                pass  # fall back to HTTP; a duplicate is dropped by message id
            except ServerRejected as exc:
                if exc.status not in RETRY_STATUSES:
                    raise  # 409/410 and friends: the caller repairs the device set
                # a transient relay failure: HTTP retries it with back-off
        result: dict[str, Any] = await self.http.json(
            "PUT", f"/v1/messages/{user_id}", json=request
        )
        return result

    async def send_content(
        self, user_id: Recipients, content: Content, *, withhold: bool = False
    ) -> SendResult:
        """Encrypt ``content`` for every device of each recipient user and, as ONE sync copy
        naming every peer (``sync_to``), for this user's other devices; send it, handling
        409/410 (one envelope per device, one request per user).

        A message to several users is one message under one message id (issue #11): the
        relay's send ledger admits one envelope set per (sender device, recipient user,
        message id) (issue #3), so the sync copy must be sent once, not once per recipient.
        Own user among the recipients: its other devices get that sync copy (a message to
        oneself only is a plain send to one's other devices). A user that cannot be reached
        does not stop the others: :class:`RecipientsFailed` reports it after the rest.

        ``withhold`` encrypts (advancing every chain) but never hands the envelopes to the
        transport: a client that crashed after encrypting (how a scenario opens a gap)."""
        users = _recipient_users(user_id)
        peers = [u for u in users if u != self.user_id]
        async with self._send_lock:
            envelopes: dict[str, bytes] = {}
            attempts = 0
            failures: dict[str, Exception] = {}
            targets = peers or users
            for user in targets:
                try:
                    sent = await self._send_to_user(user, content, withhold=withhold)
                except (ClientError, ProtocolError) as exc:
                    if len(targets) == 1:
                        raise
                    failures[user] = exc
                    continue
                envelopes.update(sent.envelopes)
                attempts += sent.attempts
            sync: frozenset[str] = frozenset()
            if peers and len(failures) < len(peers):
                copied = await self._send_sync(peers, content, withhold=withhold)
                envelopes.update(copied.envelopes)
                attempts += copied.attempts
                sync = frozenset(copied.envelopes)
            self.counters.sent_messages += 1
            self._save()
            result = SendResult(content.message_id, envelopes, attempts, sync)
        if failures:
            raise RecipientsFailed(result, failures)
        return result

    async def _send_to_user(
        self, user_id: str, content: Content, *, allow_empty: bool = False,
        withhold: bool = False,
    ) -> SendResult:
        plaintext = content.encode()
        for attempt in range(1, MAX_DEVICE_SET_RETRIES + 2):
            devices = await self._prepare(user_id)
            if not devices:
                if allow_empty:  # nothing to send: only the refused requests count
                    return SendResult(content.message_id, {}, attempt - 1)
                raise DeliveryFailed(
                    f"{user_id} has no device with published keys", field="user_id"
                )
            sent: dict[str, bytes] = {}
            envelopes = []
            for device_id in sorted(devices):
                address = device_address(user_id, device_id)
                if sent and sabotage.active("client.same_envelope_for_all_devices"):  # TEST ONLY
                    body = next(iter(sent.values()))  # encrypted once, for the first device
                else:
                    body = self.device.encrypt(address, plaintext, self.entropy)
                sent[address] = body
                envelopes.append(
                    {
                        "device_id": device_id,
                        "registration_id": devices[device_id],
                        "body": b64(body),
                    }
                )
            if withhold:
                return SendResult(content.message_id, sent, attempt)
            message_id = content.message_id
            if sabotage.active("client.push_preview"):  # TEST ONLY (semafore.sabotage)
                message_id = _with_preview(message_id, content.body)
            try:
                await self._send_envelopes(user_id, message_id, envelopes)
            except ServerRejected as exc:
                if not await self._repair_device_set(user_id, exc):
                    raise
                self.counters.device_set_retries += 1
                continue
            self.counters.sent_envelopes += len(envelopes)
            if self.on_sent is not None:
                self.on_sent(self, user_id, content.message_id, sent)
            return SendResult(content.message_id, sent, attempt)
        raise DeliveryFailed(
            f"device set of {user_id} kept changing after {MAX_DEVICE_SET_RETRIES} retries",
            field="devices",
        )

    async def _repair_device_set(self, user_id: str, exc: ServerRejected) -> bool:
        """409: add missing / drop extra devices; 410: stale devices re-registered (new
        identity): archive their sessions and fetch fresh bundles. False if not a device-set
        error."""
        body = exc.body if isinstance(exc.body, dict) else {}
        entry = self.directory.setdefault(user_id, _Directory())
        if exc.status == 409 and exc.code == "mismatched_devices":
            for gone in body.get("extra", []):
                entry.devices.pop(gone, None)
                self.device.forget_device(device_address(user_id, gone))
                self._event("device_removed_seen", device_address(user_id, gone))
            missing = body.get("missing", [])
            if sabotage.active("client.ignores_409_missing"):  # TEST ONLY (semafore.sabotage)
                missing = []
            for new in missing:
                await self._fetch_bundles(user_id, new)
                self._event("device_added_seen", device_address(user_id, new))
            return True
        if exc.status == 410 and exc.code == "stale_devices":
            for stale in body.get("stale", []):
                self.device.forget_device(device_address(user_id, stale))
                entry.devices.pop(stale, None)
                await self._fetch_bundles(user_id, stale)
                self._event("device_stale", device_address(user_id, stale))
            return True
        return False

    async def _send_sync(
        self, peers: Iterable[str], content: Content, *, withhold: bool = False
    ) -> SendResult:
        """The one sync copy of a message to this user's other devices, naming every peer
        of the conversation (``content.sync_field``); empty when there are none.

        A cached list with siblings is kept: the relay's 409 ``missing`` corrects it on this
        very send. An *empty* one is re-read every time (``GET /v1/devices``): with no
        envelope to send there is no request the relay could refuse, so a cached "no other
        device" would starve a sibling added since of every sync copy. Only single-device
        users pay that request, and it claims nothing."""
        sync = dataclasses.replace(content, sync_to=sync_field(peers))
        known = self.directory.get(self.user_id)
        if known is None or not known.devices:
            await self.own_devices()
        return await self._send_to_user(self.user_id, sync, allow_empty=True, withhold=withhold)

    def _content(
        self,
        kind: Kind,
        body: bytes = b"",
        *,
        attachment: AttachmentPointer | None = None,
        receipt_for: Iterable[str] = (),
        message_id: str | None = None,
    ) -> Content:
        return Content(
            message_id=message_id or self.new_message_id(),
            kind=kind,
            sent_at=self.clock.now(),
            body=body,
            attachment=attachment,
            receipt_for=tuple(receipt_for),
        )

    async def send_text(
        self, user_id: Recipients, body: bytes, *, message_id: str | None = None,
        withhold: bool = False,
    ) -> SendResult:
        """One text message to one user or several (see :meth:`send_content`)."""
        return await self.send_content(
            user_id, self._content("text", body, message_id=message_id), withhold=withhold
        )

    async def send_receipt(self, user_id: str, message_ids: Iterable[str]) -> SendResult:
        return await self.send_content(user_id, self._content("receipt", receipt_for=message_ids))

    async def send_attachment(
        self, user_id: Recipients, data: bytes, caption: bytes = b""
    ) -> tuple[SendResult, AttachmentPointer]:
        """Encrypt ``data`` client-side, upload the ciphertext once (ADR-0157), send the
        pointer to every user as one message (:meth:`send_content`: one message id, one
        sync copy)."""
        users = _recipient_users(user_id)
        blob, key, digest = attachments.seal(data, self.entropy)
        if sabotage.active("client.uploads_plaintext_attachment"):  # TEST ONLY (semafore.sabotage)
            blob, digest = data, hashlib.sha256(data).digest()  # the "encrypt" step skipped
        created = await self.http.json(
            "POST",
            "/v1/attachments",
            json={"size": len(blob), "sha256": b64(digest), "recipients": users},
        )
        file_id = str(created["file_id"])
        await self.http.call(
            "PUT",
            f"/v1/attachments/{file_id}",
            content=blob,
            headers={"Content-Type": "application/octet-stream"},
        )
        pointer = AttachmentPointer(file_id, key, digest, len(data))
        content = self._content("attachment", caption, attachment=pointer)
        return await self.send_content(users, content), pointer

    async def fetch_attachment(self, pointer: AttachmentPointer) -> bytes:
        """Download the ciphertext, check its SHA-256, decrypt."""
        response = await self.http.call("GET", f"/v1/attachments/{pointer.file_id}")
        return attachments.open_blob(response.content, pointer)

    async def broadcast(self, user_ids: Iterable[str], body: bytes) -> str:
        """Admin broadcast (ADR-0158): per-recipient-device envelopes for every user, sent
        in one all-or-nothing request; 409/410 per user are repaired and retried."""
        users = sorted(set(user_ids) - {self.user_id})
        content = self._content("broadcast", body)
        plaintext = content.encode()
        async with self._send_lock:
            for _ in range(MAX_DEVICE_SET_RETRIES + 1):
                recipients = []
                for user_id in users:
                    devices = await self._prepare(user_id)
                    envelopes = [
                        {
                            "device_id": d,
                            "registration_id": r,
                            "body": b64(
                                self.device.encrypt(
                                    device_address(user_id, d), plaintext, self.entropy
                                )
                            ),
                        }
                        for d, r in sorted(devices.items())
                    ]
                    if envelopes:
                        recipients.append({"user_id": user_id, "envelopes": envelopes})
                try:
                    await self.http.json(
                        "POST",
                        "/v1/broadcasts",
                        json={"message_id": content.message_id, "recipients": recipients},
                    )
                except ServerRejected as exc:
                    refusal = exc.body if isinstance(exc.body, dict) else {}
                    if exc.status == 409 and exc.code == "mismatched_devices":
                        for item in refusal.get("mismatched", []):
                            sub = ServerRejected(409, exc.code, exc.detail, item)
                            await self._repair_device_set(item["user_id"], sub)
                    elif exc.status == 410 and exc.code == "stale_devices":
                        for item in refusal.get("stale_users", []):
                            sub = ServerRejected(410, exc.code, exc.detail, item)
                            await self._repair_device_set(item["user_id"], sub)
                    else:
                        raise
                    self.counters.device_set_retries += 1
                    continue
                self.counters.sent_messages += 1
                self.counters.sent_envelopes += sum(len(r["envelopes"]) for r in recipients)
                self._save()
                return content.message_id
        raise DeliveryFailed("broadcast device sets kept changing", field="recipients")

    async def report_screenshot(
        self, peer_user_id: str, screenshot: bytes, message_ids: Iterable[str] = ()
    ) -> str:
        """ADR-0159: only the screenshot's SHA-256 and message ids leave the device."""
        out = await self.http.json(
            "POST",
            "/v1/screenshots",
            json={
                "peer_user_id": peer_user_id,
                "screenshot_sha256": b64(hashlib.sha256(screenshot).digest()),
                "message_ids": list(message_ids),
                "captured_at": self.clock.now(),
            },
        )
        if sabotage.active("client.screenshot_carries_image"):  # TEST ONLY (semafore.sabotage)
            await self._upload_unencrypted(screenshot)  # "evidence" for the admin
        return str(out["report_id"])

    async def _upload_unencrypted(self, data: bytes) -> str:
        """TEST ONLY (:mod:`semafore.sabotage`): store ``data`` as an attachment nobody
        else may read, *unencrypted* — the upload behind the state-backup and screenshot
        sabotages; the product never calls it."""
        created = await self.http.json(
            "POST",
            "/v1/attachments",
            json={"size": len(data), "sha256": b64(hashlib.sha256(data).digest())},
        )
        file_id = str(created["file_id"])
        await self.http.call("PUT", f"/v1/attachments/{file_id}", content=data,
                             headers={"Content-Type": "application/octet-stream"})
        return file_id

    async def _send_reset(self, sender_user: str, sender_device: str, reset: bytes) -> None:
        """Send the SPEC §4 ``reset`` notice to the one device whose frame failed.

        The notice is a bare ``SRS1`` envelope, its own kind of send at the relay (no
        content, so no device set to cover): it reaches the sender even when this device has
        no session left, which is exactly when it is needed. A relay that only routes
        SMX1/DR_V1 answers ``unknown_envelope_type``; then, while a session with the sender
        can still send, the same notice travels end to end as a content message of kind
        ``reset`` (the sender applies the same rule either way).
        """
        address = device_address(sender_user, sender_device)
        registration_id = await self._registration_id(sender_user, sender_device)
        if registration_id is None:
            self._event("reset_refused", address, "unknown_device")
            return
        envelope = {"device_id": sender_device, "registration_id": registration_id,
                    "body": b64(reset)}
        try:
            await self.http.json(
                "PUT",
                f"/v1/messages/{sender_user}",
                json={"message_id": self.new_message_id(), "envelopes": [envelope]},
            )
        except ServerRejected as exc:
            if exc.code == "unknown_envelope_type" and self.device.has_session(address):
                await self._send_reset_e2e(sender_user, address, reset)
            else:  # 409/410: the device is gone or re-registered; its next SMX1 is fresh
                self._event("reset_refused", address, exc.code)
            return
        self.counters.resets_sent += 1
        self._event("reset_sent", address)

    async def _send_reset_e2e(self, sender_user: str, address: str, reset: bytes) -> None:
        try:
            async with self._send_lock:
                await self._send_to_user(sender_user, self._content("reset", reset))
        except (ClientError, ProtocolError) as failed:
            self._event("reset_refused", address, str(failed))
            return
        self.counters.resets_sent += 1
        self._event("reset_sent", address, "e2e")

    async def _registration_id(self, user_id: str, device_id: str) -> int | None:
        """The registration id the relay expects for ``user_id:device_id``, if it exists."""
        entry = self.directory.get(user_id)
        if entry is not None and device_id in entry.devices:
            return entry.devices[device_id]
        try:  # the identity-only lookup: a reset must not spend the peer's OPK
            found = await self.fetch_identities(user_id, device_id)
        except ClientError:
            return None
        return found[device_id][0] if device_id in found else None

    # -- receiving -------------------------------------------------------------------------

    async def fetch_identities(
        self, user_id: str, device_id: str | None = None
    ) -> dict[str, tuple[int, bytes, bytes]]:
        """``GET /v1/identities/{user}[/{device}]``: device id -> (registration id, IK, SIK).

        The identity-only lookup: unlike a bundle fetch it claims none of the peer's
        one-time prekeys, so pinning or verifying an identity costs the peer nothing."""
        path = f"/v1/identities/{user_id}" + (f"/{device_id}" if device_id else "")
        out = await self.http.json("GET", path)
        return {
            str(raw["device_id"]): (
                int(raw["registration_id"]), unb64(str(raw["ik"])), unb64(str(raw["sik"]))
            )
            for raw in out["devices"]
        }

    async def _pin_sender(self, user_id: str, device_id: str) -> bool:
        """Look up and pin a sender's identity (SMX1 carries none, SPEC §2): TOFU through
        the identity-only lookup, so no OPK of the sender is claimed.

        With ``sibling_lookup`` one lookup answers for every device of the sender's user
        (``GET /v1/identities/{user}``): a user's devices write to the same peers, so a
        sibling's first SMX1 then needs no lookup of its own; that is the same pinning a
        bundle fetch for the user does. The sender's identity is checked (a change is an
        event, or refused under STRICT); a sibling is only pinned when none is known for it
        yet, and a known one is checked when its own SMX1 arrives, exactly as before."""
        address = device_address(user_id, device_id)
        before = self.device.known_identity(address)
        try:
            found = await (self.fetch_identities(user_id) if self.sibling_lookup
                           else self.fetch_identities(user_id, device_id))
        except ServerRejected:
            return False
        for found_device, (registration_id, ik, sik) in found.items():
            found_address = device_address(user_id, found_device)
            if found_address == self.address:
                continue  # this device itself, in a lookup of its own user
            if found_device != device_id and self.device.known_identity(found_address):
                continue  # a sibling already pinned: its own SMX1 checks it
            try:
                changed = self.device.trust(found_address, ik, sik, self.clock.now())
            except UntrustedIdentity:
                self._event("identity_rejected", found_address)
                continue
            if changed:
                self._event("identity_changed", found_address)
            # Reply over this session, not a new bootstrap: the sender is a device we know
            # (a partial list is completed by the relay's 409 on the first send).
            entry = self.directory.setdefault(user_id, _Directory())
            entry.devices.setdefault(found_device, registration_id)
        after = self.device.known_identity(address)
        return after is not None and after != before

    async def process_envelope(self, env: dict[str, Any]) -> Received | None:
        """Decrypt one queued envelope (``EnvelopeOut`` shape) and queue its ack."""
        async with self._receive_lock:
            try:
                return await self._process(env)
            finally:
                self._acks.append(str(env["delivery_id"]))

    async def _process(self, env: dict[str, Any]) -> Received | None:
        sender_user = str(env["sender_user_id"])
        sender_device = str(env["sender_device_id"])
        sender = device_address(sender_user, sender_device)
        try:
            body = unb64(str(env["body"]))
        except ValueError:
            self._event("malformed_envelope", sender, "body")
            return None
        if body[:4] == RESET_MAGIC:
            if self.device.handle_reset(sender, body):
                self.counters.resets_honoured += 1
                self._event("reset_honoured", sender)
            else:
                self._event("reset_ignored", sender)
            return None
        if self.device.needs_identity(sender, body):
            await self._pin_sender(sender_user, sender_device)
        plaintext: bytes | None = None
        try:
            plaintext = self.device.decrypt(sender, body)
        except DuplicateMessage:
            self.counters.duplicates += 1
            self._event("duplicate_frame", sender, "DuplicateMessage", env.get("message_id"))
            return None
        except UntrustedIdentity as exc:
            self._event("untrusted_identity", sender, exc.name, env.get("message_id"))
            return None
        except ProtocolError as exc:
            if is_smx1(body) and await self._pin_sender(sender_user, sender_device):
                with contextlib.suppress(ProtocolError):  # reinstalled sender, new identity
                    plaintext = self.device.decrypt(sender, body)
            if plaintext is None:
                self.counters.undecryptable += 1
                self._event("undecryptable", sender, exc.name, env.get("message_id"))
                reset = self.device.reset_for(body)
                if reset is not None:
                    await self._send_reset(sender_user, sender_device, reset)
                self._save()
                return None
        assert plaintext is not None
        if sabotage.active("client.logs_session_keys"):  # TEST ONLY (semafore.sabotage)
            current = self.device.sessions[sender].current
            if current is not None and current.ratchet.ckr is not None:
                log.debug("frame from %s opened; chain key %s", sender, current.ratchet.ckr.hex())
        if is_smx1(body) and self.auto_prekeys:
            await self._replenish_after_bootstrap(body)
        try:
            content = decode(plaintext)
        except MalformedContent as exc:
            self._event("malformed_content", sender, exc.field or "")
            return None
        seen = not self.device.first_time_seen(f"{sender_user}/{content.message_id}")
        if seen and not sabotage.active("client.no_duplicate_detection"):  # TEST ONLY
            self.counters.duplicates += 1
            self._event("duplicate_message", sender, content.message_id)
            return None
        if content.kind == "reset":
            if self.device.handle_reset(sender, content.body):
                self.counters.resets_honoured += 1
                self._event("reset_honoured", sender, "e2e")
            else:
                self._event("reset_ignored", sender, "e2e")
            return None
        if sender_user == self.user_id and sender_device not in self.directory.get(
            self.user_id, _Directory()
        ).devices:
            self.directory.pop(self.user_id, None)  # a new own device: refresh before next sync
        received = Received(
            sender_user, sender_device, str(env["delivery_id"]), str(env.get("kind", "message")),
            content, self.clock.now(),
        )
        self.inbox.append(received)
        self.counters.received += 1
        if self.on_receive is not None:
            self.on_receive(self, received)
        self.expectations.notify()
        return received

    async def flush_acks(self) -> None:
        """Acknowledge processed envelopes (only then does the relay delete them)."""
        while self._acks:
            batch, self._acks = self._acks[:ACK_BATCH], self._acks[ACK_BATCH:]
            if self._ws is not None and self._ws_connected.is_set():
                try:
                    await self.send_frame({"type": "ack", "delivery_ids": batch},
                                          operation="ack")
                    continue
                except (ConnectionClosed, TransportError):
                    pass  # over HTTP instead; an ack of an id already acked is harmless
            await self.http.json("POST", "/v1/messages/ack", json={"delivery_ids": batch})
        self._save()

    async def poll(self, limit: int = 100) -> list[Received]:
        """Fetch the queue over HTTP until empty, decrypting and acking as we go."""
        out: list[Received] = []
        while True:
            page = await self.http.json("GET", "/v1/messages", params={"limit": limit})
            for env in page["envelopes"]:
                received = await self.process_envelope(env)
                if received is not None:
                    out.append(received)
            await self.flush_acks()
            if not page["more"]:
                return out

    # -- WebSocket -------------------------------------------------------------------------

    def connect(self) -> None:
        """Start the push loop (reconnects with exponential back-off until :meth:`close`)."""
        if self._ws_task is None or self._ws_task.done():
            self._stopping = False
            self._ws_task = asyncio.create_task(self._ws_loop(), name=f"ws:{self.address}")

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._ws_connected.wait(), timeout)

    @property
    def connected(self) -> bool:
        return self._ws_connected.is_set()

    async def _ws_loop(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                async with websockets.connect(
                    _with_batch(self.ws_url, self.push_batch),
                    additional_headers={"Authorization": f"Bearer {self.http.access_token}"},
                    compression=None,  # frames must be independent: the fault layer drops some
                    max_size=4 * 1024 * 1024,
                    open_timeout=10,
                    ping_interval=None,
                ) as ws:
                    self._ws = ws
                    self._ws_connected.set()
                    attempt = 0
                    await self._ws_read(ws)
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    with contextlib.suppress(ClientError):
                        await self.http.refresh()
            except (OSError, WebSocketException, TimeoutError) as exc:
                if isinstance(exc, ConnectionClosed) and exc.rcvd and exc.rcvd.code == 4401:
                    with contextlib.suppress(ClientError):
                        await self.http.refresh()
            finally:
                self._ws_connected.clear()
                self._ws = None
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(TransportError("websocket closed", field="connection"))
                self._pending.clear()
            if self._stopping:
                return
            self.counters.reconnects += 1
            await self.http.sleep(self.http.backoff.delay(min(attempt, 10), self.entropy))
            attempt += 1

    async def _ws_read(self, ws: ClientConnection) -> None:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        worker = asyncio.create_task(self._ws_worker(queue))
        try:
            async for raw in ws:
                try:
                    frame = _parse(raw)
                except ValueError:
                    self._event("malformed_frame", None, "json")
                    continue
                if not isinstance(frame, dict):
                    continue
                if frame.get("type") == "batch":  # several replies in one frame
                    for sub in frame.get("frames") or []:
                        if isinstance(sub, dict):
                            self._ws_dispatch(sub, queue)
                else:
                    self._ws_dispatch(frame, queue)
        finally:
            if self._ack_timer is not None:
                self._ack_timer.cancel()
                self._ack_timer = None
            queue.put_nowait(None)
            await asyncio.gather(worker, return_exceptions=True)

    def _ws_dispatch(
        self, frame: dict[str, Any], queue: asyncio.Queue[dict[str, Any] | None]
    ) -> None:
        kind = frame.get("type")
        if kind == "envelope":
            self.counters.push_frames += 1
            queue.put_nowait(frame)
        elif kind == "envelopes":  # a batched push (several envelopes, one frame)
            self.counters.push_frames += 1
            for item in frame.get("envelopes") or []:
                if isinstance(item, dict):
                    queue.put_nowait(item)
        elif kind in ("response", "queue_empty"):  # queue_empty answers watch_queue
            fut = self._pending.pop(str(frame.get("request_id")), None)
            if fut is not None and not fut.done():
                fut.set_result(frame)
        elif kind == "error":
            self._event("ws_error", None, str(frame.get("error")))

    async def _ws_worker(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        while True:
            frame = await queue.get()
            if frame is None:
                return
            if frame is not _ACKS_DUE:
                try:
                    await self.process_envelope(frame)
                except ClientError as exc:
                    self._event("receive_failed", None, exc.detail)
            else:
                self._ack_timer = None
            if not self._acks:
                continue
            if len(self._acks) >= ACK_BATCH or frame is _ACKS_DUE or (
                    queue.empty() and not self.ack_delay):
                if self._ack_timer is not None:
                    self._ack_timer.cancel()
                    self._ack_timer = None
                with contextlib.suppress(ClientError, ConnectionClosed):
                    await self.flush_acks()
            elif self._ack_timer is None and queue.empty():
                self._ack_timer = asyncio.get_running_loop().call_later(
                    self.ack_delay, queue.put_nowait, _ACKS_DUE)

    async def send_frame(self, frame: dict[str, Any], *, operation: str) -> None:
        """Write one frame on the push socket within ``ws_send_timeout``. Why bounded: a
        write waits while the socket's buffers are full, so a relay that stopped reading (a
        stalled process, a half-open connection) would hang the caller forever. On the
        timeout the socket is dropped, as the relay drops a device that stops reading
        (docs/server.md, ``ws_stall_timeout``), and the push loop reconnects with back-off.

        :class:`TransportError` naming ``operation`` (``send``, ``ack``, ``watch_queue``):
        ``field="ws_send_timeout"`` on the timeout, ``field="connection"`` without a socket;
        ``ConnectionClosed`` if the socket closes meanwhile."""
        ws = self._ws
        if ws is None:
            raise TransportError(f"websocket {operation}: not connected", field="connection")
        try:
            await asyncio.wait_for(ws.send(_frame(frame)), self.ws_send_timeout)
        except TimeoutError:
            ws.transport.abort()
            raise TransportError(
                f"websocket {operation}: frame not written within {self.ws_send_timeout:g} s "
                "(the relay stopped reading; socket dropped)",
                field="ws_send_timeout",
            ) from None

    async def _ws_send(self, user_id: str, request: dict[str, Any]) -> dict[str, Any]:
        self._request_seq += 1
        request_id = f"r{self._request_seq}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        try:
            await self.send_frame({"type": "send", "request_id": request_id,
                                   "user_id": user_id, "message": request}, operation="send")
            frame = await asyncio.wait_for(fut, self.ws_send_timeout)
        finally:
            self._pending.pop(request_id, None)
        status = int(frame.get("status", 500))
        body = frame.get("body")
        if status >= 400:
            code = body.get("error", "http_error") if isinstance(body, dict) else "http_error"
            detail = body.get("detail", "") if isinstance(body, dict) else ""
            raise ServerRejected(status, str(code), str(detail), body)
        return body if isinstance(body, dict) else {}

    # -- expectations (tests: semafore.client.expect, docs/pytest-plugin.md) -----------------

    async def wait_for_message(
        self, *, sender: str | DeviceAddress | None = None, text: str | bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Received:
        """The first message from ``sender`` (a user, or one device: a ``DeviceAddress`` or
        ``user:device``) whose body is ``text`` that no earlier wait returned, as soon as it is
        in (``inbox`` indexes are the claims: the inbox only grows); raises ExpectationTimeout
        listing what arrived instead."""
        from_ = sender_argument(sender)
        body = text.encode("utf-8") if isinstance(text, str) else text
        claimed = self.expectations.claimed_messages

        def found() -> Received | None:
            for index, received in enumerate(self.inbox):
                if index in claimed or (body is not None and received.content.body != body):
                    continue
                if sender_matches(from_, received.sender_user_id, received.sender):
                    claimed.add(index)
                    return received
            return None

        what = "a message" + (f" from {from_}" if from_ else "") + (
            f" saying {text!r}" if text is not None else "")
        return await self.expectations.until(
            found, timeout=timeout, expected=what, field="message",
            arrived=lambda: self.expectations.unclaimed(self.inbox, self.events))

    async def wait_for_decryption_error(
        self, *, sender: str | DeviceAddress | None = None, error: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ClientEvent:
        """The first unclaimed frame this device could not open (``DECRYPTION_ERROR_KINDS``)
        from ``sender`` (as for :meth:`wait_for_message`), with SPEC §5 name ``error`` (e.g.
        ``BadMac``) if given."""
        from_ = sender_argument(sender)
        claimed = self.expectations.claimed_events

        def found() -> ClientEvent | None:
            for index, ev in enumerate(self.events):
                if index in claimed or ev.kind not in DECRYPTION_ERROR_KINDS:
                    continue
                user, _, _device = (ev.peer or "").partition(":")
                if (error is None or ev.detail == error) and sender_matches(
                        from_, user, ev.peer or ""):
                    claimed.add(index)
                    return ev
            return None

        what = "a decryption error" + (f" {error}" if error else "") + (
            f" on a frame from {from_}" if from_ else "")
        return await self.expectations.until(
            found, timeout=timeout, expected=what, field="decryption_error",
            arrived=lambda: self.expectations.unclaimed(self.inbox, self.events))

    async def wait_for_queue_drained(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until the relay says this device's queue is empty (``watch_queue`` →
        ``queue_empty``, docs/server.md "WebSocket"): everything accepted for it before the
        call has been pushed, processed and acked. Survives a reconnect within ``timeout``."""
        if self._ws_task is None:
            raise TransportError("connect() first: the relay tells a connected device",
                                 field="connection")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            self._request_seq += 1
            request_id = f"q{self._request_seq}"
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            try:
                await asyncio.wait_for(self._ws_connected.wait(), remaining)
                if self._ws is None:
                    continue
                self._pending[request_id] = fut
                await self.send_frame({"type": "watch_queue", "request_id": request_id},
                                      operation="watch_queue")
                await asyncio.wait_for(fut, deadline - loop.time())
                return
            except (ConnectionClosed, TransportError):
                await asyncio.sleep(0)  # the socket dropped: ask again once it is back
            except TimeoutError:
                break
            finally:
                self._pending.pop(request_id, None)
        raise ExpectationTimeout(
            self.address, "the relay to report its queue empty", timeout,
            self.expectations.unclaimed(self.inbox, self.events), "queue_drained")

    async def disconnect(self) -> None:
        """Stop the push socket (the device goes offline); HTTP stays usable."""
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._ws_task is not None:
            self._ws_task.cancel()
            await asyncio.gather(self._ws_task, return_exceptions=True)
            self._ws_task = None
        self._ws_connected.clear()
        self._ws = None

    async def close(self) -> None:
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._ws_task is not None:
            self._ws_task.cancel()
            await asyncio.gather(self._ws_task, return_exceptions=True)
            self._ws_task = None
        with contextlib.suppress(ClientError, ConnectionClosed):
            if self._acks:
                await self.flush_acks()
        await self.http.close()


def _recipient_users(user_id: Recipients) -> list[str]:
    """The distinct recipient users, sorted: one message to a set of users is the same
    message whatever order they were listed in (and so is its seeded encryption)."""
    users = sorted({user_id} if isinstance(user_id, str) else set(user_id))
    if not users:
        raise DeliveryFailed("a message needs at least one recipient user", field="user_id")
    return users


def _with_preview(message_id: str, body: bytes) -> str:
    """TEST ONLY (sabotage ``client.push_preview``): the message id with a notification
    preview of the text appended, in the characters a relay message id allows."""
    preview = re.sub(r"[^A-Za-z0-9._-]", "_", body[:40].decode("utf-8", "replace"))
    return f"{message_id}-{preview}"[:128]


def _with_batch(ws_url: str, batch: int) -> str:
    if not batch:
        return ws_url
    return f"{ws_url}{'&' if '?' in ws_url else '?'}batch={batch}"


def _ws_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/v1/websocket"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/v1/websocket"
    raise ValueError(f"base URL must be http(s): {base_url!r}")


def _frame(frame: dict[str, Any]) -> str:
    """One WebSocket text frame: compact JSON, as the relay writes its own (orjson: the
    frames a fleet sends per envelope are the harness's cost, issue 16 item 6)."""
    return orjson.dumps(frame).decode()


def _parse(raw: str | bytes) -> Any:
    """A received frame's JSON: orjson for speed, the stdlib parser for what orjson refuses
    but JSON allows (integers beyond 64 bits); ``ValueError`` if it is no JSON at all."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
