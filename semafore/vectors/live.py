"""``vectors/dr-v1-live-result.json`` (SPEC §6): a transcript of a seeded live run.

A fixed script runs three users and five devices, real clients (:mod:`semafore.client`)
against the reference relay in this process over real sockets on 127.0.0.1: first contacts
(SMX1, resent until the first reply), replies (DR_V1), sync copies to the sender's own
devices, a read receipt, an SPK rotation, a device reinstall (410 then a fresh bootstrap with
a new identity) and a long one-way chain. After every action each device polls its queue in a
fixed order, so the run is sequential and every byte follows from the seed.

The file records every envelope *as the relay stored it* (captured at the relay's queue port
when enqueued), the seeds and key material that reproduce it (each device installation's
entropy seed and identity/prekey private keys), what each device decrypted, the final SPEC §7
session digests, and negative cases (a replay, a tampered header) checked against the final
states. :func:`verify` re-runs the script with the file's seed and requires identical bytes;
``semafore vectors verify`` does so as part of the full check.

This replay lives in the library, not the simulator (issue 14 item 2): the vectors check
needs it and the library never imports the simulator. It sets the run up the way the
simulator's fleet does (the same entropy forks, clock and prekey policy), which is what makes
the pinned bytes reproducible by either.

Run ``python -m semafore.vectors.live generate|verify [PATH]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semafore import shipped
from semafore.client import Account, DeviceClient, ManualClock, create_organisation
from semafore.client.account import enrol_members, fixed_otp
from semafore.client.device import PrekeyPolicy
from semafore.deploy.harness_relay import relay_settings
from semafore.deploy.inprocess import serve_in_task
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import ProtocolError
from semafore.protocol.frame import is_drv1
from semafore.storage.memory import memory_stores
from semafore.storage.ports import QueuedEnvelope, Stores

FILE = "dr-v1-live-result.json"
VERSION = 1
DEFAULT_SEED = 20260525
DEFAULT_PATH = shipped.vectors_dir() / FILE
ORG = "live"
OPERATOR = f"operator-{ORG}"
"""The organisation's admin, who signs it up and enrols the users (never a sender)."""
OPK_COUNT = 4
USERS = {"alice": ["phone", "laptop"], "bob": ["phone", "tablet"], "carol": ["phone"]}

Action = tuple[str, ...]
SCRIPT: tuple[Action, ...] = (
    ("send", "alice/phone", "bob", "first contact: SMX1 to both of bob's devices"),
    ("send", "alice/phone", "bob", "still no reply: SMX1 again, same EK_A"),
    ("send", "bob/tablet", "alice", "reply from the tablet: DR_V1 to alice/phone"),
    ("send", "carol/phone", "alice", "carol bootstraps with both of alice's devices"),
    ("send", "alice/laptop", "carol", "a reply from the other device of alice"),
    ("receipt", "bob/phone", "alice"),
    ("rotate_spk", "bob/phone"),
    ("send", "carol/phone", "bob", "bootstrap against bob/phone's rotated SPK"),
    ("reinstall", "carol/phone"),
    ("send", "alice/phone", "carol", "carol reinstalled: 410, new identity, fresh SMX1"),
    ("send", "carol/phone", "alice", "the reinstalled device answers"),
    ("chain", "bob/phone", "alice", "5"),
    ("send", "alice/laptop", "bob", "after the one-way chain"),
)


class LiveVectorError(Exception):
    """The pinned transcript and a fresh run disagree (or the file is malformed)."""


@dataclass
class Recorded:
    seq: int
    env: QueuedEnvelope


def _fork_seed(root: bytes, label: str) -> bytes:
    return hmac.digest(root, b"fork:" + label.encode(), hashlib.sha256)


class _Cast:
    """The script's organisation on the relay at ``url``: the operator signs it up and enrols
    the users; each user is an :class:`~semafore.client.Account` whose device installations
    draw entropy forked from the seed by label, exactly as the simulator's fleet forks it."""

    def __init__(self, seed: int, url: str, clock: ManualClock) -> None:
        self.entropy = SeededEntropy(f"semafore-sim:{seed}")
        self.clock = clock
        self.url = url
        self.accounts: dict[str, Account] = {}
        self.admin: Account | None = None

    async def enrol(self, users: list[str]) -> None:
        signup = await create_organisation(self.url, ORG, ORG, OPERATOR,
                                           self.entropy.fork(f"org:{ORG}"))
        self.admin = Account(ORG, OPERATOR, self.url, self.entropy.fork, self.clock, fixed_otp(),
                             totp_secret=str(signup["totp_secret"]), opk_count=1)
        console = await self.admin.add_device("console", connect=False)
        await enrol_members(console, ORG, users, seats=len(users) + 2)
        for user in users:
            self.accounts[user] = Account(
                ORG, user, self.url, self.entropy.fork, self.clock, fixed_otp(),
                opk_count=OPK_COUNT,
                prekeys=PrekeyPolicy(opk_batch=OPK_COUNT, opk_low_water=max(1, OPK_COUNT // 4)),
            )

    def client(self, ref: str) -> DeviceClient:
        user, _, device = ref.partition("/")
        return self.accounts[user].devices[device]

    async def close(self) -> None:
        for account in [*self.accounts.values(), *([self.admin] if self.admin else [])]:
            await account.close()


async def _run(seed: int) -> dict[str, Any]:
    stores = memory_stores()
    clock = ManualClock()  # the relay's and every client's: timestamps and TOTP steps replay
    async with serve_in_task(relay_settings([ORG], clock), stores) as relay:
        return await _script(seed, stores, _Cast(seed, relay.url, clock))


async def _script(seed: int, stores: Stores, cast: _Cast) -> dict[str, Any]:
    recorded: list[Recorded] = []
    enqueue = stores.queues.enqueue

    async def recording_enqueue(entries: Sequence[QueuedEnvelope]) -> None:
        await enqueue(entries)
        for entry in entries:
            recorded.append(Recorded(len(recorded), entry))

    stores.queues.enqueue = recording_enqueue  # type: ignore[method-assign,assignment]
    installs: list[dict[str, Any]] = []
    decrypted: list[dict[str, Any]] = []
    order = [f"{u}/{d}" for u, devices in USERS.items() for d in devices]

    live: dict[str, tuple[dict[str, Any], DeviceClient]] = {}  # device -> current install

    def note_later_prekeys() -> None:
        """Prekeys made after installation (SPK rotation, OPK top-up), so an independent
        implementation can open every SMX1 of the run with the recorded key material."""
        for record, client in live.values():
            keys = client.device.keys
            spks = [keys.spk, *keys.previous_spks.values()]
            known_spks = {record["spk"]["key_id"], *(k["key_id"] for k in record["later_spks"])}
            for spk in spks:
                if spk.key_id not in known_spks:
                    record["later_spks"].append(
                        {"key_id": spk.key_id, "private": spk.keypair.private.hex()})
                    known_spks.add(spk.key_id)
            known_opks = {k["key_id"] for k in (*record["opks"], *record["later_opks"])}
            for opk in keys.opks.values():
                if opk.key_id not in known_opks:
                    record["later_opks"].append(
                        {"key_id": opk.key_id, "private": opk.keypair.private.hex()})

    def note_install(client: DeviceClient) -> None:
        account = cast.accounts[client.user_id]
        generation = account.installs[client.device_id] - 1
        label = f"device:{client.user_id}:{client.device_id}:{generation}"
        keys = client.device.keys
        installs.append({
            "device": f"{client.user_id}/{client.device_id}",
            "entropy_label": label,
            "entropy_seed": _fork_seed(cast.entropy._seed, label).hex(),
            "ik_private": keys.identity.ik.private.hex(),
            "ik_public": keys.identity.ik.public.hex(),
            "sik_seed": keys.identity.sik.private.hex(),
            "sik_public": keys.identity.sik.public.hex(),
            "spk": {"key_id": keys.spk.key_id, "private": keys.spk.keypair.private.hex()},
            "opks": [{"key_id": o.key_id, "private": o.keypair.private.hex()}
                     for o in keys.opks.values()],
            "later_spks": [],
            "later_opks": [],
        })
        live[f"{client.user_id}/{client.device_id}"] = (installs[-1], client)

    async def poll_all() -> None:
        for ref in order:
            client = cast.client(ref)
            for got in await client.poll():
                decrypted.append({
                    "device": ref,
                    "from": f"{got.sender_user_id}/{got.sender_device_id}",
                    "message_id": got.content.message_id,
                    "kind": got.content.kind,
                    "sync_to": got.content.sync_to,
                    "body": got.content.body.decode("utf-8", "replace"),
                    "receipt_for": list(got.content.receipt_for),
                })

    try:
        await cast.enrol(list(USERS))
        for ref in order:
            user, device = ref.split("/")
            note_install(await cast.accounts[user].add_device(device, connect=False))
        for action in SCRIPT:
            cast.clock.advance(1.0)
            verb = action[0]
            if verb == "send":
                await cast.client(action[1]).send_text(action[2], action[3].encode())
            elif verb == "chain":
                for i in range(int(action[3])):
                    await cast.client(action[1]).send_text(action[2], f"chain {i}".encode())
            elif verb == "receipt":
                ids = [d["message_id"] for d in decrypted if d["device"] == action[1]
                       and d["from"].startswith(action[2] + "/")]
                await cast.client(action[1]).send_receipt(action[2], ids)
            elif verb == "rotate_spk":
                await cast.client(action[1]).rotate_spk()
            elif verb == "reinstall":
                user, device = action[1].split("/")
                note_install(await cast.accounts[user].reinstall_device(device, connect=False))
            note_later_prekeys()  # before polling: a top-up may follow a bootstrap
            await poll_all()
            note_later_prekeys()
        sessions = _digests(cast, order)
        negatives = _negatives(cast, recorded)
    finally:
        await cast.close()
    envelopes: list[dict[str, Any]] = [{
        "seq": r.seq,
        "message_id": r.env.message_id,
        "kind": r.env.kind,
        "from": f"{r.env.sender_user_id}/{r.env.sender_device_id}",
        "to": f"{r.env.recipient_user_id}/{r.env.recipient_device_id}",
        "body": r.env.body.hex(),
        "envelope_hash": r.env.envelope_hash.hex(),
    } for r in recorded]
    transcript = hashlib.sha256(b"".join(
        hashlib.sha256(bytes.fromhex(e["body"])).digest() for e in envelopes)).hexdigest()
    return {
        "file": FILE,
        "version": VERSION,
        "spec": "SPEC.md §6",
        "description": "Transcript of a seeded multi-user, multi-device run against the "
                       "reference relay: every envelope as the relay stored it. Re-running "
                       "semafore.vectors.live with input.seed must reproduce identical bytes.",
        "cases": [{
            "id": "live-run-1",
            "description": "3 users, 5 devices: first contacts, SMX1 resends, replies, sync "
                           "copies, a read receipt, an SPK rotation, a reinstall (410 and a new "
                           "identity), a one-way chain",
            "input": {
                "seed": seed,
                "entropy": "SeededEntropy('semafore-sim:<seed>').fork(entropy_label) per "
                           "device installation; clock starts at 1767225600 and advances 1 s "
                           "before each action",
                "organisation": ORG,
                "users": USERS,
                "script": [list(a) for a in SCRIPT],
                "installs": installs,
            },
            "expected": {
                "envelopes": envelopes,
                "transcript_sha256": transcript,
                "decrypted": decrypted,
                "session_digests": sessions,
            },
        }],
        "negative": negatives,
    }


def _digests(cast: _Cast, order: list[str]) -> list[dict[str, str]]:
    out = []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            ca, cb = cast.client(a), cast.client(b)
            ra, rb = ca.device.sessions.get(cb.address), cb.device.sessions.get(ca.address)
            if ra and rb and ra.current and rb.current:
                out.append({"a": a, "b": b,
                            "a_digest": ra.current.ratchet.digest().hex(),
                            "b_digest": rb.current.ratchet.digest().hex()})
    return out


def _negatives(cast: _Cast, recorded: list[Recorded]) -> list[dict[str, Any]]:
    """Replay and tamper the last DR_V1 envelope against its recipient's final state."""
    last = next(r for r in reversed(recorded) if is_drv1(r.env.body))
    env = last.env
    recipient = cast.client(f"{env.recipient_user_id}/{env.recipient_device_id}")
    sender = f"{env.sender_user_id}:{env.sender_device_id}"
    tampered = bytearray(env.body)
    tampered[43] ^= 0x01  # N (bytes 40..44) + 1: covered by the AEAD's associated data
    out = []
    for case_id, body in (("replayed-last-drv1", env.body), ("tampered-n", bytes(tampered))):
        state = recipient.device.serialize()
        try:
            recipient.device.decrypt(sender, body)
            error = "none"
        except ProtocolError as exc:
            error = exc.name
        if recipient.device.serialize() != state:
            raise LiveVectorError(f"{case_id}: a refused envelope changed the session state")
        out.append({"id": case_id,
                    "input": {"after_case": "live-run-1", "envelope_seq": last.seq,
                              "to": f"{env.recipient_user_id}/{env.recipient_device_id}",
                              "from": sender.replace(":", "/"), "body": body.hex()},
                    "expected_error": error})
    return out


def render(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=False) + "\n").encode()


def build(seed: int = DEFAULT_SEED) -> bytes:
    """Run the script and return the file's bytes."""
    for name in ("semafore.server", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return render(asyncio.run(_run(seed)))


def generate(path: str | Path = DEFAULT_PATH, seed: int = DEFAULT_SEED) -> Path:
    target = Path(path)
    target.write_bytes(build(seed))
    return target


def verify(path: str | Path = DEFAULT_PATH) -> None:
    """Re-run with the file's seed; raise :class:`LiveVectorError` naming the first difference."""
    pinned = Path(path).read_bytes()
    try:
        doc = json.loads(pinned)
        seed = int(doc["cases"][0]["input"]["seed"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LiveVectorError(f"{path}: not a live-result vector file ({exc})") from exc
    fresh = build(seed)
    if fresh == pinned:
        return
    new = json.loads(fresh)
    old_env = doc["cases"][0]["expected"]["envelopes"]
    new_env = new["cases"][0]["expected"]["envelopes"]
    for a, b in zip(old_env, new_env, strict=False):
        if a != b:
            raise LiveVectorError(f"envelope #{a['seq']} ({a['from']} -> {a['to']}) differs")
    if len(old_env) != len(new_env):
        raise LiveVectorError(f"{len(old_env)} envelopes pinned, {len(new_env)} produced")
    raise LiveVectorError("envelopes agree but other recorded values differ")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("generate", "verify"):
        sys.stderr.write("usage: python -m semafore.vectors.live generate|verify [PATH]\n")
        return 2
    path = Path(args[1]) if len(args) > 1 else DEFAULT_PATH
    if args[0] == "generate":
        sys.stdout.write(f"wrote {generate(path)}\n")
        return 0
    try:
        verify(path)
    except LiveVectorError as exc:
        sys.stderr.write(f"{path}: FAILED: {exc}\n")
        return 1
    sys.stdout.write(f"{path}: OK (a fresh seeded run reproduced every byte)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
