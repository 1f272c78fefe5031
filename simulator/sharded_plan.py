"""The seeded traffic plan of a sharded fleet, and the audit of what arrived against it
(issue 16 item 6, docs/simulator.md "Sharded fleet").

The plan is a pure function of its parameters: the same seed gives the same users, devices,
shard assignment, messages (sender device, recipient user, message id, body) and therefore
the same expected deliveries, whichever process computes it. That is what lets the
coordinator and every shard process agree without shipping the plan around, and what a
reproducibility test compares.

Expected deliveries follow the relay's fan-out as the client drives it (seed §4.2, SPEC §4):
a message to a user is one envelope per device of that user plus one sync copy per *other*
device of the sender's own user. Every device is registered before the first send, so the
device sets are fixed and the expectation is exact.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

ORG = "fleet"
"""The one organisation every planned user belongs to."""

DIGEST_BYTES = 8


def message_id(index: int) -> str:
    """The planned message ``index``'s id (relay message ids allow ``[A-Za-z0-9._-]``)."""
    return f"m{index:07d}"


def message_index(mid: str) -> int:
    """The plan index behind :func:`message_id`; ``ValueError`` for an id the plan never made."""
    if len(mid) != 8 or not mid.startswith("m") or not mid[1:].isdigit():
        raise ValueError(f"{mid!r} is not a planned message id")
    return int(mid[1:])


def body_of(seed: int, index: int) -> bytes:
    """The plaintext of planned message ``index``: 64 bytes derived from the seed, so every
    message is distinct and a receiver's plaintext can be checked without the plan."""
    digest = hashlib.sha256(f"semafore-fleet:{seed}:{index}".encode()).hexdigest()
    return f"{message_id(index)}:{digest}"[:64].encode()


def digest_of(body: bytes) -> bytes:
    """What a shard reports per decrypted message instead of the whole plaintext."""
    return hashlib.blake2b(body, digest_size=DIGEST_BYTES).digest()


def delivery_key(sender_user: str, mid: str) -> str:
    """One delivery's name at a device, as :class:`simulator.fleet.Ledger` names it."""
    return f"{sender_user}/{mid}"


@dataclass(frozen=True)
class PlannedMessage:
    index: int
    sender: str  # device address "user:device"
    recipient: str  # user id

    @property
    def sender_user(self) -> str:
        return self.sender.split(":", 1)[0]

    @property
    def message_id(self) -> str:
        return message_id(self.index)


@dataclass(frozen=True)
class FleetPlan:
    """``devices`` devices (``per_user`` per user) and ``messages`` messages, from ``seed``.

    ``contacts`` > 0 gives each user that many seeded contacts and every message goes to one
    of its sender's contacts (conversations: sessions are reused, as in real messaging);
    0 picks any other user (almost every message then opens a new session)."""

    seed: int
    devices: int
    messages: int
    per_user: int = 2
    contacts: int = 0

    def __post_init__(self) -> None:
        if self.devices < 2 or self.per_user < 1:
            raise ValueError("devices: at least 2; per_user: at least 1")
        if self.messages < 0:
            raise ValueError("messages: 0 or more")
        if len(self.users) < 2:
            raise ValueError("devices/per_user must make at least two users (a message "
                             "goes to another user)")
        if self.contacts < 0:
            raise ValueError("contacts: 0 or more")

    @cached_property
    def users(self) -> list[str]:
        return [f"u{i:05d}" for i in range(-(-self.devices // self.per_user))]

    @cached_property
    def addresses(self) -> list[str]:
        """Every device address, in plan order."""
        return [f"{u}:d{j}" for u in self.users for j in range(self.per_user)][: self.devices]

    @cached_property
    def devices_of(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for address in self.addresses:
            out.setdefault(address.split(":", 1)[0], []).append(address)
        return out

    @cached_property
    def plan(self) -> list[PlannedMessage]:
        rng = random.Random(f"semafore-fleet-plan:{self.seed}")
        users = [u for u in self.users if u in self.devices_of]
        contacts: dict[str, list[str]] = {}
        if self.contacts:
            for user in users:
                others = rng.sample(users, min(self.contacts + 1, len(users)))
                contacts[user] = [o for o in others if o != user][: self.contacts]
        out = []
        for index in range(self.messages):
            sender = rng.choice(self.addresses)
            user = sender.split(":", 1)[0]
            if self.contacts:
                to = rng.choice(contacts[user])
            else:
                to = rng.choice(users)
                while to == user:
                    to = rng.choice(users)
            out.append(PlannedMessage(index, sender, to))
        return out

    def recipients(self, message: PlannedMessage) -> list[str]:
        """The devices ``message`` reaches: the recipient's, and the sender's siblings."""
        siblings = [d for d in self.devices_of[message.sender_user] if d != message.sender]
        return [*self.devices_of[message.recipient], *siblings]

    @cached_property
    def expected(self) -> dict[str, set[str]]:
        """Device address -> the delivery keys it must decrypt."""
        out: dict[str, set[str]] = {a: set() for a in self.addresses}
        for message in self.plan:
            key = delivery_key(message.sender_user, message.message_id)
            for device in self.recipients(message):
                out[device].add(key)
        return out

    @property
    def envelopes(self) -> int:
        return sum(len(keys) for keys in self.expected.values())

    def shard_of(self, address: str, shards: int) -> int:
        """The shard process running ``address``: by plan position, round-robin (stable for
        a given plan and shard count, and balanced to within one device)."""
        return self.position[address] % shards

    @cached_property
    def position(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self.addresses)}

    def shard_devices(self, shard: int, shards: int) -> list[str]:
        return [a for a in self.addresses if self.shard_of(a, shards) == shard]

    def shard_sends(self, shard: int, shards: int) -> list[PlannedMessage]:
        return [m for m in self.plan if self.shard_of(m.sender, shards) == shard]


@dataclass
class Audit:
    """What arrived measured against the plan, each gap named by device and delivery."""

    missing: dict[str, list[str]] = field(default_factory=dict)
    wrong_plaintext: dict[str, list[str]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)
    delivered: int = 0

    @property
    def missing_count(self) -> int:
        return sum(len(v) for v in self.missing.values())

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_plaintext or self.unexpected)

    def describe(self, limit: int = 10) -> str:
        """The first ``limit`` gaps of each kind, e.g. ``u00001:d0 missed u00007/m0000042``."""
        lines = []
        for label, gaps in (("missed", self.missing), ("decrypted a wrong plaintext of",
                            self.wrong_plaintext), ("got unplanned", self.unexpected)):
            shown = 0
            for device in sorted(gaps):
                for key in gaps[device]:
                    if shown < limit:
                        lines.append(f"{device} {label} {key}")
                    shown += 1
            if shown > limit:
                lines.append(f"... and {shown - limit} more {label}")
        return "\n".join(lines)


def audit(plan: FleetPlan, received: Mapping[str, Mapping[str, bytes]]) -> Audit:
    """Compare ``received`` (device -> delivery key -> :func:`digest_of` its plaintext) with
    the plan: every expected delivery must be there, decrypted to its planned plaintext, and
    nothing else may be."""
    out = Audit()
    for device, want in plan.expected.items():
        got = received.get(device, {})
        missing = sorted(want - got.keys())
        if missing:
            out.missing[device] = missing
        wrong = []
        for key in sorted(want & got.keys()):
            if got[key] != digest_of(body_of(plan.seed, message_index(key.split("/", 1)[1]))):
                wrong.append(key)
            else:
                out.delivered += 1
        if wrong:
            out.wrong_plaintext[device] = wrong
        extra = sorted(got.keys() - want)
        if extra:
            out.unexpected[device] = extra
    for device in sorted(set(received) - set(plan.expected)):
        out.unexpected[device] = sorted(received[device])
    return out


def merge(parts: Iterable[Mapping[str, Mapping[str, bytes]]]) -> dict[str, dict[str, bytes]]:
    """The shards' received maps as one (a device lives on one shard)."""
    out: dict[str, dict[str, bytes]] = {}
    for part in parts:
        for device, keys in part.items():
            out.setdefault(device, {}).update(keys)
    return out
