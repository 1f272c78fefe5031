"""Provision a population on the target relay and pre-encrypt its traffic (the *corpus*).

Crypto must not throttle the load generator, yet the relay must see the traffic a real
client sends. So before locust starts, the reference client SDK (:mod:`semafore.client`)
signs up an organisation, installs every device (login, identity keys, signed prekey,
one-time prekeys: SPEC §1), fetches bundles from the relay like a client does, and encrypts
each device's outgoing messages ahead of time: one envelope per recipient device plus the
sync copies for the sender's own other devices (seed §4.2). Each device pair first completes
a handshake in memory (the recipient decrypts the SMX1 and replies, the sender decrypts the
reply), so what follows is a DR_V1 chain as in a live conversation; a broadcaster never hears
back, so its frames stay SMX1 (SPEC §2). Before the corpus is written, a census checks that
the relay holds every planned device with its registration id and identity key, so a run never
reports a population it does not have. The virtual devices then only replay the prepared
request bodies.

The corpus is a JSON document (``corpus.json``) plus attachment ciphertexts (``blobs/``);
it holds access material for the run's throw-away organisation and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import math
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loadtests.profile import Profile
from semafore.client import Account, DeviceClient, create_organisation, fixed_otp
from semafore.client.attachments import seal
from semafore.client.clock import SystemClock
from semafore.client.content import AttachmentPointer, Content, Kind
from semafore.client.device import Device, PrekeyPolicy
from semafore.client.errors import ServerRejected
from semafore.client.transport import RelayHttp
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import bundle_from_dict, device_address

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
TEST_OTP = "000000"
ADMIN_USER = "load-admin"
ADMIN_DEVICE = "console"
PLACEHOLDER_FILE_ID = "0" * 32
CONCURRENCY = 16
"""Provisioning requests in flight at once, over as many kept-alive connections."""
HTTP_TIMEOUT = 60.0  # provisioning on a slow backend (FerretDB/SQLite) is slow, not broken


class CorpusError(RuntimeError):
    """Provisioning failed; ``field`` names the step (``signup``, ``login``, ``bundles``…)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


class SharedPool(httpx.AsyncBaseTransport):
    """One bounded pool of kept-alive connections that every provisioning client uses.

    The SDK gives each device its own connection pool (a real device is one client), so a
    population of 1,875 devices opened 1,875 TCP connections, each for two requests, and
    paid the connection set-up and a pool per device. The relay cannot tell the difference
    (each request stands alone and carries its own device's access token), so provisioning
    sends every device's requests over these ``CONCURRENCY`` connections instead. A client
    closing its own ``httpx.AsyncClient`` must not close the shared pool: the builder closes
    it once, after every client (:meth:`shutdown`)."""

    def __init__(self, size: int = CONCURRENCY) -> None:
        self._inner = httpx.AsyncHTTPTransport(
            verify=ssl.create_default_context(),
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """A client's close: the pool stays open for the other clients."""

    async def shutdown(self) -> None:
        await self._inner.aclose()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass
class Person:
    user_id: str
    device_ids: list[str]
    contacts: list[int]


def plan_people(profile: Profile, rng: random.Random) -> list[Person]:
    """Enough people that ``profile.users`` devices can be online (or ``profile.people``)."""
    people: list[Person] = []
    devices = 0
    wanted_people = profile.people
    if profile.broadcast.enabled:
        wanted_people = max(wanted_people or 0, profile.broadcast.recipients)
    wanted_people = max(wanted_people or 0, 2)  # somebody to talk to
    while devices < profile.users or len(people) < wanted_people:
        count = profile.population.draw_devices(rng)
        index = len(people)
        people.append(Person(f"u{index:05d}", [f"d{k}" for k in range(count)], []))
        devices += count
    return people


def assign_contacts(people: list[Person], active: set[int], count: int, rng: random.Random) -> None:
    """Each person's contacts: people with a device online in this run (so messages are
    delivered while measured), drawn from the ``2 × count`` nearest in the order people come
    online — teams, in effect — so that when a capacity search has only its first devices
    online, their conversations are mostly among online people too; topped up from everyone
    else when the run has too few people online."""
    order = sorted(active)
    position = {person: k for k, person in enumerate(order)}
    for index, person in enumerate(people):
        if index in position:
            k = position[index]
            low = max(0, min(k - count, len(order) - 2 * count - 1))
            window = [i for i in order[low : low + 2 * count + 1] if i != index]
        else:
            window = order
        online = [i for i in window if i != index]
        chosen = rng.sample(online, min(count, len(online)))
        if len(chosen) < count:
            rest = [i for i in range(len(people)) if i != index and i not in chosen]
            chosen += rng.sample(rest, min(count - len(chosen), len(rest)))
        person.contacts = chosen


def device_slots(people: list[Person]) -> list[tuple[int, str]]:
    """The order virtual devices come online: one device of every person before anyone's
    second, so a small run still talks across many people and users with several devices
    appear once the run is large enough."""
    depth = max(len(p.device_ids) for p in people)
    return [
        (i, p.device_ids[k])
        for k in range(depth)
        for i, p in enumerate(people)
        if k < len(p.device_ids)
    ]


class CorpusBuilder:
    """Runs the provisioning against ``url`` and writes ``corpus.json`` into ``out_dir``."""

    def __init__(
        self,
        profile: Profile,
        url: str,
        org_id: str,
        out_dir: Path,
        *,
        seed: str | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.profile = profile
        self.url = url.rstrip("/")
        self.org_id = org_id
        self.out_dir = out_dir
        self.seed = seed or uuid.uuid4().hex
        self.entropy = SeededEntropy(f"load:{self.seed}")
        self.rng = random.Random(self.seed)
        self.clock = SystemClock()
        self.progress = progress or (lambda step, done, total: None)
        self.accounts: dict[str, Account] = {}
        self.clients: dict[str, DeviceClient] = {}  # address -> client
        self.admin: DeviceClient | None = None
        self.admin_totp_secret = ""
        self.pool = SharedPool()
        self.on_relay: dict[str, dict[str, tuple[int, str]]] = {}
        """user id -> {device id: (registration id, IK)} as the relay last answered (the
        census, :meth:`_census`)."""

    # -- provisioning ----------------------------------------------------------------------

    async def _gather(self, step: str, jobs: list[Callable[[], Awaitable[None]]]) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)
        done = 0

        async def run(job: Callable[[], Awaitable[None]]) -> None:
            nonlocal done
            async with gate:
                await job()
            done += 1
            self.progress(step, done, len(jobs))

        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the rest
                for job in jobs:
                    group.create_task(run(job))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None

    async def _signup(self, people: list[Person]) -> None:
        try:
            org = await create_organisation(
                self.url, self.org_id, "SemaFore load run", ADMIN_USER, self.entropy.fork("org")
            )
        except Exception as exc:
            raise CorpusError("signup", f"{type(exc).__name__}: {exc}") from exc
        self.admin_totp_secret = str(org["totp_secret"])
        admin = Account(
            self.org_id, ADMIN_USER, self.url, self.entropy.fork, self.clock, fixed_otp(TEST_OTP),
            totp_secret=self.admin_totp_secret, opk_count=self.profile.prekeys.initial,
            client_options={"http": RelayHttp(self.url, self.entropy.fork("admin-http"),
                                              timeout=HTTP_TIMEOUT, transport=self.pool)},
        )
        self.accounts[ADMIN_USER] = admin
        self.admin = await admin.add_device(ADMIN_DEVICE, connect=False)
        await self._enrol(self.admin, people)

    async def _enrol(self, admin: DeviceClient, people: list[Person]) -> None:
        """Size the subscription, then add every member, ``CONCURRENCY`` at a time (the
        SDK's :func:`~semafore.client.enrol_members` adds them one after another; each
        addition is its own idempotent ``PUT``, so their order does not matter)."""
        await admin.http.json(
            "PUT", f"/v1/orgs/{self.org_id}/subscription",
            json={"plan": "enterprise", "seats": len(people) + 10},
        )

        async def add(user_id: str) -> None:
            try:
                await admin.http.json(
                    "PUT", f"/v1/orgs/{self.org_id}/members/{user_id}", json={"role": "member"}
                )
            except Exception as exc:
                raise CorpusError("enrol", f"{user_id}: {type(exc).__name__}: {exc}") from exc

        await self._gather("enrol members", [functools.partial(add, p.user_id) for p in people])

    async def _install(self, person: Person, device_id: str) -> None:
        """A fresh device: keys, login (registration id), publish keys (SPEC §1).

        The SDK retries a key upload whose answer timed out; on a slow backend the first
        attempt may have landed, and the retry then meets ``409 duplicate_key_id``. The keys
        are the same ones, so that answer is accepted once the relay confirms it holds them.
        """
        entropy = self.entropy.fork(f"device:{person.user_id}:{device_id}")
        device = Device.create(
            person.user_id, device_id, entropy, self.clock.now(),
            opk_count=self.profile.prekeys.initial,
        )
        client = DeviceClient(
            device, self.org_id, self.url, entropy, self.clock,
            prekeys=PrekeyPolicy(opk_batch=max(self.profile.prekeys.initial, 1)),
            http=RelayHttp(self.url, entropy, timeout=HTTP_TIMEOUT, transport=self.pool),
        )
        self.clients[device_address(person.user_id, device_id)] = client
        try:
            await client.login(TEST_OTP)
        except Exception as exc:
            raise CorpusError("login", f"{type(exc).__name__}: {exc}") from exc
        try:
            await client.publish_keys()
        except ServerRejected as exc:
            if exc.code != "duplicate_key_id":
                raise CorpusError("keys", f"{type(exc).__name__}: {exc}") from exc
            count = await client.http.json("GET", "/v1/keys")
            if count.get("spk_key_id") != device.keys.spk.key_id:
                raise CorpusError("keys", f"keys not stored after a retry: {exc}") from exc
        except Exception as exc:
            raise CorpusError("keys", f"{type(exc).__name__}: {exc}") from exc

    async def _sessions_with(self, sender: DeviceClient, user_id: str) -> None:
        """Fetch ``user_id``'s bundles from the relay (claims OPKs) and start sessions."""
        out = await sender.http.json("GET", f"/v1/keys/{user_id}")
        self._record(user_id, out["devices"])
        now = self.clock.now()
        for raw in out["devices"]:
            if raw["device_id"] == sender.device_id and user_id == sender.user_id:
                continue
            bundle = bundle_from_dict(raw, unb64)
            if not sender.device.has_session(bundle.address):
                sender.device.start_session(bundle, sender.entropy, now)

    def _record(self, user_id: str, devices: list[dict[str, Any]]) -> None:
        """Keep what the relay said it holds for ``user_id``'s devices (bundles or
        identities: both carry the registration id and IK) for the census."""
        self.on_relay[user_id] = {
            str(d["device_id"]): (int(d["registration_id"]), str(d["ik"])) for d in devices
        }

    async def _census(self, people: list[Person]) -> None:
        """Every planned device is on the relay under test, with the registration id it was
        given at login and the identity key it published (SPEC §1) — or provisioning fails.

        A population the relay does not fully hold would make a run quietly measure fewer
        devices than it reports (``devices_provisioned``) and its broadcasts fan out to
        fewer. The bundle fetches already made answer for most users; the rest are asked
        through ``GET /v1/identities/{user}``, which claims no one-time prekey (so the
        census does not spend the population's prekeys)."""
        assert self.admin is not None
        admin = self.admin

        async def ask(user_id: str) -> None:
            try:
                out = await admin.http.json("GET", f"/v1/identities/{user_id}")
            except ServerRejected as exc:
                if exc.code != "no_keys":
                    raise CorpusError("census", f"{user_id}: {exc}") from exc
                out = {"devices": []}
            self._record(user_id, out["devices"])

        unasked = [p.user_id for p in people if p.user_id not in self.on_relay]
        await self._gather("census", [functools.partial(ask, u) for u in unasked])
        missing = []
        for person in people:
            held = self.on_relay.get(person.user_id, {})
            for device_id in person.device_ids:
                client = self.clients.get(device_address(person.user_id, device_id))
                want = None if client is None else (
                    client.device.registration_id, b64(client.device.keys.identity.ik.public))
                if want is None or held.get(device_id) != want:
                    missing.append(device_address(person.user_id, device_id))
        if missing:
            total = sum(len(p.device_ids) for p in people)
            raise CorpusError(
                "devices", f"{len(missing)} of {total} planned devices are not registered on "
                f"the relay with their keys (first: {', '.join(missing[:5])})")

    def _handshake(self, sender: DeviceClient, recipient: Device, first: bytes) -> None:
        """The recipient reads the SMX1 and replies once; the sender reads the reply, so the
        sender's next frames to that device are DR_V1 (a live conversation, SPEC §2–§3)."""
        s = sender.device
        recipient.trust(s.address, s.keys.identity.ik.public, s.keys.identity.sik.public, 0.0)
        recipient.decrypt(s.address, first)
        reply = recipient.encrypt(s.address, b"\x00", self.entropy)
        s.decrypt(recipient.address, reply)

    # -- encryption ------------------------------------------------------------------------

    def _plaintext(self, message_id: str, size: int, pointer: AttachmentPointer | None) -> bytes:
        body = self.rng.randbytes(size)
        kind: Kind = "attachment" if pointer is not None else "text"
        return Content(message_id, kind, self.clock.now(), body, attachment=pointer).encode()

    def _encrypt_set(
        self,
        sender: DeviceClient,
        person_of: dict[str, Person],
        user_id: str,
        plaintext: bytes,
        handshaken: set[tuple[str, str]],
    ) -> list[dict[str, Any]]:
        envelopes = []
        for device_id in person_of[user_id].device_ids:
            if user_id == sender.user_id and device_id == sender.device_id:
                continue
            address = device_address(user_id, device_id)
            if (sender.address, address) not in handshaken:
                first = sender.device.encrypt(address, b"\x00", self.entropy)
                self._handshake(sender, self.clients[address].device, first)
                handshaken.add((sender.address, address))
                handshaken.add((address, sender.address))
            body = sender.device.encrypt(address, plaintext, self.entropy)
            envelopes.append(
                {
                    "device_id": device_id,
                    "registration_id": self.clients[address].device.registration_id,
                    "body": b64(body),
                }
            )
        return envelopes

    def _message(
        self,
        sender: DeviceClient,
        person_of: dict[str, Person],
        to: str,
        size: int,
        handshaken: set[tuple[str, str]],
        pointer: AttachmentPointer | None = None,
        blob: int | None = None,
    ) -> dict[str, Any]:
        message_id = uuid.UUID(bytes=self.rng.randbytes(16)).hex
        plaintext = self._plaintext(message_id, size, pointer)
        main = self._encrypt_set(sender, person_of, to, plaintext, handshaken)
        sync = self._encrypt_set(sender, person_of, sender.user_id, plaintext, handshaken)
        entry: dict[str, Any] = {
            "message_id": message_id,
            "to": to,
            "body": json.dumps(
                {"message_id": message_id, "envelopes": main}, separators=(",", ":")
            ),
            "envelopes": len(main),
            "sync": (
                json.dumps({"message_id": message_id, "envelopes": sync}, separators=(",", ":"))
                if sync
                else None
            ),
            "sync_envelopes": len(sync),
            "plaintext_bytes": size,
        }
        if blob is not None:
            entry["blob"] = blob
        return entry

    async def build(self) -> Path:
        """Provision and encrypt; returns the path of ``corpus.json``."""
        profile = self.profile
        self.out_dir.mkdir(parents=True, exist_ok=True)
        people = plan_people(profile, self.rng)
        person_of = {p.user_id: p for p in people}
        await self._signup(people)
        await self._gather(
            "install devices",
            [functools.partial(self._install, p, d) for p in people for d in p.device_ids],
        )
        slots = device_slots(people)
        online = slots[: max(profile.users, 1)]
        active_people = sorted({i for i, _ in online})
        assign_contacts(people, set(active_people), profile.population.contacts, self.rng)
        # Sessions: every online device with its contacts' devices and its own other devices.
        jobs: list[Callable[[], Awaitable[None]]] = []
        for i, device_id in online:
            person = people[i]
            sender = self.clients[device_address(person.user_id, device_id)]
            targets = [people[c].user_id for c in person.contacts]
            if len(person.device_ids) > 1:
                targets.append(person.user_id)
            for user_id in targets:
                jobs.append(functools.partial(self._sessions_with, sender, user_id))
        await self._gather("fetch bundles", jobs)

        blobs = self._blobs() if profile.behaviour.tasks.get("attachment") else []
        handshaken: set[tuple[str, str]] = set()
        devices_out = []
        for n, (i, device_id) in enumerate(online):
            person = people[i]
            sender = self.clients[device_address(person.user_id, device_id)]
            outbox = []
            attachments = []
            if profile.behaviour.tasks.get("send"):
                for _ in range(profile.messages_per_device):
                    to = people[self.rng.choice(person.contacts)].user_id
                    size = profile.message_size.draw(self.rng)
                    outbox.append(self._message(sender, person_of, to, size, handshaken))
            if blobs:
                for _ in range(max(1, profile.messages_per_device // 2)):
                    to = people[self.rng.choice(person.contacts)].user_id
                    k = self.rng.randrange(len(blobs))
                    pointer = AttachmentPointer(
                        PLACEHOLDER_FILE_ID, unb64(blobs[k]["key"]), unb64(blobs[k]["sha256"]),
                        blobs[k]["size"],
                    )
                    attachments.append(
                        self._message(sender, person_of, to, 16, handshaken, pointer, k)
                    )
            opk_batches = []
            batches = profile.prekeys.batches if profile.behaviour.tasks.get("replenish") else 0
            for _ in range(batches):
                batch = sender.device.keys.generate_opks(sender.entropy, profile.prekeys.batch)
                opk_batches.append(
                    [{"key_id": o.key_id, "pub": b64(o.keypair.public)} for o in batch]
                )
            devices_out.append(
                {
                    "slot": n,
                    "user_id": person.user_id,
                    "device_id": device_id,
                    "registration_id": sender.device.registration_id,
                    "own_devices": len(person.device_ids),
                    "contacts": [people[c].user_id for c in person.contacts],
                    "outbox": outbox,
                    "attachments": attachments,
                    "opk_batches": opk_batches,
                }
            )
            self.progress("encrypt", n + 1, len(online))
        admin = await self._admin_section(people) if profile.broadcast.enabled else None
        await self._census(people)
        corpus = {
            "version": CORPUS_VERSION,
            "profile": profile.name,
            "seed": self.seed,
            "url": self.url,
            "org_id": self.org_id,
            "otp": TEST_OTP,
            "people": len(people),
            "active_people": len(active_people),
            "total_devices": len(slots),
            "devices": devices_out,
            "admin": admin,
            "blobs": blobs,
        }
        path = self.out_dir / "corpus.json"
        path.write_text(json.dumps(corpus, separators=(",", ":")), encoding="utf-8")
        return path

    def _blobs(self) -> list[dict[str, Any]]:
        """Attachment ciphertexts sealed by the client (ADR-0157) and stored as files."""
        blob_dir = self.out_dir / "blobs"
        blob_dir.mkdir(exist_ok=True)
        out = []
        for k in range(self.profile.attachments.pool):
            size = self.profile.attachments.size.draw(self.rng)
            blob, key, digest = seal(self.rng.randbytes(size), self.entropy)
            (blob_dir / f"{k}.bin").write_bytes(blob)
            out.append({"file": f"blobs/{k}.bin", "size": len(blob), "sha256": b64(digest),
                        "key": b64(key)})
        return out

    async def _admin_section(self, people: list[Person]) -> dict[str, Any]:
        """The broadcaster: sessions with every recipient device, then whole broadcasts."""
        assert self.admin is not None
        admin = self.admin
        recipients = people[: self.profile.broadcast.recipients]
        await self._gather(
            "broadcast bundles",
            [functools.partial(self._sessions_with, admin, p.user_id) for p in recipients],
        )
        broadcasts = []
        for n in range(self.profile.broadcast.messages):
            message_id = uuid.UUID(bytes=self.rng.randbytes(16)).hex
            size = self.profile.message_size.draw(self.rng)
            plaintext = Content(
                message_id, "broadcast", self.clock.now(), self.rng.randbytes(size)
            ).encode()
            body_recipients = []
            deliveries = 0
            for person in recipients:
                envelopes = []
                for device_id in person.device_ids:
                    address = device_address(person.user_id, device_id)
                    envelopes.append(
                        {
                            "device_id": device_id,
                            "registration_id": self.clients[address].device.registration_id,
                            "body": b64(admin.device.encrypt(address, plaintext, self.entropy)),
                        }
                    )
                deliveries += len(envelopes)
                body_recipients.append({"user_id": person.user_id, "envelopes": envelopes})
            broadcasts.append(
                {
                    "message_id": message_id,
                    "body": json.dumps(
                        {"message_id": message_id, "recipients": body_recipients},
                        separators=(",", ":"),
                    ),
                    "deliveries": deliveries,
                }
            )
            self.progress("encrypt broadcasts", n + 1, self.profile.broadcast.messages)
        return {
            "user_id": admin.user_id,
            "device_id": admin.device_id,
            "refresh_token": admin.http.refresh_token,
            "broadcasts": broadcasts,
        }

    async def close(self) -> None:
        for account in self.accounts.values():
            await account.close()
        for client in list(self.clients.values()):
            await client.close()
        await self.pool.shutdown()


async def build_corpus(
    profile: Profile,
    url: str,
    org_id: str,
    out_dir: Path,
    *,
    seed: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    builder = CorpusBuilder(profile, url, org_id, out_dir, seed=seed, progress=progress)
    try:
        return await builder.build()
    finally:
        await builder.close()


def expected_sends(profile: Profile) -> int:
    """Rough number of sends a run makes (to size the corpus; replays beyond it)."""
    think = sum(profile.behaviour.think_time) / 2 or 0.05
    return math.ceil(profile.duration / think)
