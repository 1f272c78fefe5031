"""One probe per sabotage: the smallest run of real code that shows the defect (issue #11).

Each probe runs the product — an in-process relay on 127.0.0.1 with reference clients
(``tests/client/helpers.world``), or the protocol objects directly — and returns one plain,
comparable observation. :data:`PROBES` maps every catalogue name to its probe and to what the
probe observes with the sabotage off (the correct product) and on (the defect); the switch
tests (test_switches.py) check both, the guards (test_guards.py) assert the correct value as
a specification for defects no scenario can see.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import websockets

from semafore.client import DeviceClient
from semafore.client.content import Content
from semafore.client.device import Device
from semafore.client.errors import ClientError, ServerRejected
from semafore.protocol import smx1, x3dh
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import ProtocolError
from semafore.protocol.frame import is_smx1
from semafore.protocol.frame import parse as parse_frame
from semafore.protocol.keys import PreKeyBundle, PublicSignedPrekey
from semafore.protocol.primitives import hkdf
from semafore.protocol.ratchet import RatchetState
from semafore.protocol.x3dh import root_key
from tests.client.helpers import world
from tests.protocol.conversation import SK, new_pair
from tests.server.helpers import LogCapture

Observation = object


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def outcome(action: Callable[[], bytes | None]) -> str:
    """``"ok"`` or the SPEC §5 / client error name the action raised."""
    try:
        action()
    except (ProtocolError, ClientError) as exc:
        return type(exc).__name__
    return "ok"


def texts(client: DeviceClient) -> list[bytes]:
    return [r.content.body for r in client.inbox]


async def queued(client: DeviceClient) -> list[dict[str, Any]]:
    """The envelopes the relay holds for ``client`` (fetching does not remove them)."""
    page = await client.http.json("GET", "/v1/messages", params={"limit": 100})
    envelopes: list[dict[str, Any]] = page["envelopes"]
    return envelopes


# --- devices without a relay (protocol-level probes) ------------------------------------------


def devices(seed: str = "probe") -> tuple[Device, Device]:
    """Alice and Bob, each a fresh install, Alice with a session from Bob's bundle (OPK used)."""
    entropy = SeededEntropy(seed)
    alice = Device.create("alice", "phone", entropy.fork("alice"), 0.0, opk_count=2)
    bob = Device.create("bob", "phone", entropy.fork("bob"), 0.0, opk_count=2)
    bob.registration_id = alice.registration_id = 1
    alice.start_session(bob.keys.bundle("bob", "phone", "opk-0"), entropy.fork("a"), 0.0)
    bob.trust(alice.address, alice.keys.identity.ik.public, alice.keys.identity.sik.public, 0.0)
    return alice, bob


def _say(sender: Device, receiver: Device, text: bytes, entropy: SeededEntropy) -> bytes:
    envelope = sender.encrypt(receiver.address, text, entropy)
    receiver.decrypt(sender.address, envelope)
    return envelope


def forged_bundle_accepted() -> str:
    alice, bob = devices()
    good = bob.keys.bundle("bob", "phone")
    forged = PreKeyBundle(
        good.user_id,
        good.device_id,
        good.ik,
        good.sik,
        PublicSignedPrekey(good.spk.key_id, good.spk.public, bytes(64)),
        None,
    )
    return outcome(lambda: alice.start_session(forged, SeededEntropy("x"), 0.0))


def smx1_nonces_repeat() -> bool:
    alice, bob = devices()
    entropy = SeededEntropy("nonces")
    first, second = (alice.encrypt(bob.address, m, entropy) for m in (b"one", b"two"))
    return smx1.parse(first).nonce == smx1.parse(second).nonce


def dr_nonce_is_the_frame_counter() -> bool:
    alice, bob = devices()
    entropy = SeededEntropy("counter-nonce")
    _say(alice, bob, b"hello", entropy)
    _say(bob, alice, b"reply", entropy)
    frame = parse_frame(alice.encrypt(bob.address, b"on the ratchet", entropy))
    return frame.nonce == frame.n.to_bytes(12, "big")


def seized_state_reopens_received_frame() -> str:
    alice, bob = devices()
    entropy = SeededEntropy("fs")
    first = _say(alice, bob, b"one", entropy)
    _say(alice, bob, b"two", entropy)
    seized = Device.parse(bob.serialize())
    return outcome(lambda: seized.decrypt(alice.address, first))


def used_opk_still_on_device() -> bool:
    alice, bob = devices()
    _say(alice, bob, b"hello", SeededEntropy("opk"))
    return "opk-0" in bob.keys.opks


def frame_beyond_max_skip() -> str:
    alice, bob = devices()
    entropy = SeededEntropy("skip")
    _say(alice, bob, b"hello", entropy)
    _say(bob, alice, b"hi", entropy)
    for _ in range(1001):  # encrypted, never sent: a gap of 1001 keys
        alice.encrypt(bob.address, b"gap", entropy)
    too_far = alice.encrypt(bob.address, b"too far", entropy)
    return outcome(lambda: bob.decrypt(alice.address, too_far))


def identity_change_reported() -> tuple[bool, int]:
    alice, bob = devices()
    fresh = Device.create("bob", "phone", SeededEntropy("reinstall"), 0.0)
    ids = fresh.keys.identity
    changed = alice.trust(bob.address, ids.ik.public, ids.sik.public, 1.0)
    return changed, len(alice.identity_changes)


def second_message_before_reply_is_smx1() -> bool:
    alice, bob = devices()
    entropy = SeededEntropy("resend")
    alice.encrypt(bob.address, b"one", entropy)
    return is_smx1(alice.encrypt(bob.address, b"two", entropy))


def in_flight_smx1_after_spk_rotation() -> str:
    alice, bob = devices()
    in_flight = alice.encrypt(bob.address, b"in flight", SeededEntropy("spk"))
    bob.rotate_spk(SeededEntropy("rotate"), 1.0)
    return outcome(lambda: bob.decrypt(alice.address, in_flight))


def earlier_frame_after_a_later_one() -> str:
    alice, bob = devices()
    entropy = SeededEntropy("reorder")
    first, second = (alice.encrypt(bob.address, m, entropy) for m in (b"one", b"two"))
    bob.decrypt(alice.address, second)
    return outcome(lambda: bob.decrypt(alice.address, first))


def crossed_bootstraps_converge() -> bool:
    entropy = SeededEntropy("cross")
    alice = Device.create("alice", "phone", entropy.fork("alice"), 0.0)
    bob = Device.create("bob", "phone", entropy.fork("bob"), 0.0)
    alice.start_session(bob.keys.bundle("bob", "phone", "opk-0"), entropy, 0.0)
    bob.start_session(alice.keys.bundle("alice", "phone", "opk-0"), entropy, 0.0)
    a_first = alice.encrypt(bob.address, b"a-first", entropy)
    b_first = bob.encrypt(alice.address, b"b-first", entropy)
    bob.decrypt(alice.address, a_first)
    alice.decrypt(bob.address, b_first)
    for sender, receiver in ((alice, bob), (bob, alice), (alice, bob)):
        _say(sender, receiver, b"again", entropy)
    mine, theirs = alice.sessions[bob.address].current, bob.sessions[alice.address].current
    assert mine is not None and theirs is not None
    return mine.ratchet.digest() == theirs.ratchet.digest()


def replayed_smx1() -> str:
    alice, bob = devices()
    first = _say(alice, bob, b"first contact", SeededEntropy("replay"))
    return outcome(lambda: bob.decrypt(alice.address, first))


def stale_reset_tears_down_session() -> bool:
    alice, bob = devices()
    entropy = SeededEntropy("reset")
    _say(alice, bob, b"hello", entropy)
    _say(bob, alice, b"hi", entropy)
    forged = b"SRS1" + hashlib.sha256(b"not the current key").digest()
    return alice.handle_reset(bob.address, forged)


# --- the ratchet alone ------------------------------------------------------------------------


def ratchet_key_after_a_round_trip_is_new() -> bool:
    pair = new_pair("dh-step")
    first = pair.alice.encrypt(b"one", pair.entropy)
    pair.bob.decrypt(first)
    pair.alice.decrypt(pair.bob.encrypt(b"back", pair.entropy))
    third = pair.alice.encrypt(b"three", pair.entropy)
    return parse_frame(first).ratchet_key != parse_frame(third).ratchet_key


def root_key_moved() -> bool:
    pair = new_pair("root")
    pair.bob.decrypt(pair.alice.encrypt(b"one", pair.entropy))
    pair.alice.decrypt(pair.bob.encrypt(b"back", pair.entropy))
    return pair.alice.rk != root_key(SK)


def frame_opens_under_another_ad() -> str:
    pair = new_pair("ad")
    frame = pair.alice.encrypt(b"bound to AD", pair.entropy)
    other = RatchetState.parse(pair.bob.serialize())
    other.ad = b"another session's AD" + bytes(44)
    return outcome(lambda: other.decrypt(frame))


def forged_frame_leaves_state_unchanged() -> bool:
    pair = new_pair("forged")
    pair.bob.decrypt(pair.alice.encrypt(b"one", pair.entropy))
    forged = bytearray(pair.alice.encrypt(b"two", pair.entropy))
    forged[-1] ^= 1
    before = pair.bob.serialize()
    outcome(lambda: pair.bob.decrypt(bytes(forged)))
    return pair.bob.serialize() == before


def sk_covers_every_dh() -> bool:
    dh = tuple(hashlib.sha256(bytes([i])).digest() for i in range(4))
    return x3dh.shared_key(dh) == hkdf(b"\xff" * 32 + b"".join(dh), bytes(32), x3dh.X3DH_INFO, 32)


# --- relay and clients over real sockets ------------------------------------------------------


async def retried_send_queued() -> int:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        bob = await w.device("bob", "phone")
        sent = await alice.send_text("bob", b"once")
        envelope = {
            "device_id": "phone",
            "registration_id": bob.device.registration_id,
            "body": b64(sent.envelopes["bob:phone"]),
        }
        retry = {"message_id": sent.message_id, "envelopes": [envelope]}
        await alice.http.json("PUT", "/v1/messages/bob", json=retry)  # the answer was lost
        return len(await queued(bob))


async def envelopes_queued_for_one_send() -> int:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        bob = await w.device("bob", "phone")
        await alice.send_text("bob", b"once")
        return len(await queued(bob))


async def each_device_reads_its_own_envelope() -> tuple[list[bytes], list[bytes]]:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        phone = await w.device("bob", "phone")
        tablet = await w.device("bob", "tablet")
        await alice.send_text("bob", b"to both")
        await phone.poll()
        await tablet.poll()
        return texts(phone), texts(tablet)


async def raw_identifier_in_relay_logs() -> bool:
    logs = LogCapture()
    async with world(["alice", "bobby-7f3e"]) as w:
        alice = await w.device("alice", "laptop-91c2")
        bob = await w.device("bobby-7f3e", "phone-55aa")
        await alice.send_text("bobby-7f3e", b"hello")
        await bob.poll()
    raw = ('"bobby-7f3e"', '"laptop-91c2"', '"phone-55aa"')
    return any(ident in line for line in logs.lines() for ident in raw)


async def sync_copy_reaches_own_other_device() -> list[bytes]:
    async with world(["alice", "bob"]) as w:
        phone = await w.device("alice", "phone")
        laptop = await w.device("alice", "laptop")
        await w.device("bob", "phone")
        await phone.send_text("bob", b"synced")
        await laptop.poll()
        return texts(laptop)


async def pushed_but_unacked_still_queued() -> int:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        bob = await w.device("bob", "phone")
        await alice.send_text("bob", b"pushed, never processed")
        headers = {"Authorization": f"Bearer {bob.http.access_token}"}
        async with websockets.connect(bob.ws_url, additional_headers=headers) as ws:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["type"] == "envelope"
        # the device crashed before processing it: nothing was acked
        return len(await queued(bob))


async def queued_in_the_shared_store() -> int:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        await w.device("bob", "phone")
        await alice.send_text("bob", b"stored")
        return await w.server.relay.stores.queues.count("bob", "phone")


async def devices_listed_after_removal() -> list[str]:
    async with world(["bob"]) as w:
        phone = await w.device("bob", "phone")
        await w.device("bob", "tablet")
        await w.account("bob").remove_device("tablet")
        return sorted(await phone.own_devices())


async def message_after_reinstall() -> tuple[int, list[bytes]]:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        await w.device("bob", "phone")
        await alice.send_text("bob", b"old install")
        fresh = await w.account("bob").reinstall_device("phone")
        sent = await alice.send_text("bob", b"new install")
        await fresh.poll()
        return sent.attempts, texts(fresh)


async def two_initiators_get_the_same_opk() -> bool:
    async with world(["alice", "bob", "carol"]) as w:
        alice = await w.device("alice", "phone")
        carol = await w.device("carol", "phone")
        await w.device("bob", "phone")
        first = await alice.http.json("GET", "/v1/keys/bob/phone")
        second = await carol.http.json("GET", "/v1/keys/bob/phone")
        return bool(first["devices"][0]["opk"] == second["devices"][0]["opk"])


async def unsigned_spk_upload_status() -> int:
    async with world(["alice"]) as w:
        alice = await w.device("alice", "phone")
        spk = {"key_id": "spk-forged", "pub": b64(bytes(range(32))), "sig": b64(bytes(64))}
        try:
            await alice.http.json("PUT", "/v1/keys/spk", json=spk)
        except ServerRejected as exc:
            return exc.status
        return 200


async def chain_key_hex_in_client_logs() -> bool:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, logger = Keep(logging.DEBUG), logging.getLogger("semafore.client")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            bob = await w.device("bob", "phone")
            await alice.send_text("bob", b"hello")
            await bob.poll()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    secret_like = re.compile(r"[0-9a-f]{64}|[A-Za-z0-9+/]{43}=")
    return any(secret_like.search(r.getMessage()) for r in records)


async def attachment_plaintext_in_blob() -> bool:
    data = b"attachment plaintext " * 20
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        bob = await w.device("bob", "phone")
        _, pointer = await alice.send_attachment("bob", data)
        blob = await bob.http.call("GET", f"/v1/attachments/{pointer.file_id}")
        return data in blob.content


async def _relay_holds(w: Any, needle: bytes) -> bool:
    dump = await w.server.relay.stores.dump()
    return any(needle in data for _, data in dump)


async def screenshot_image_at_relay() -> bool:
    image = b"PNG screenshot of the conversation " * 8
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        await w.device("bob", "phone")
        await alice.report_screenshot("bob", image)
        return await _relay_holds(w, image)


async def device_state_at_relay() -> bool:
    async with world(["alice"]) as w:
        await w.device("alice", "phone")
        return await _relay_holds(w, b"SFD\x01")


async def same_message_id_twice_shown() -> int:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        bob = await w.device("bob", "phone")
        sent = await alice.send_text("bob", b"once")
        await bob.poll()
        again = Content(message_id=sent.message_id, kind="text", sent_at=1.0, body=b"once")
        body = alice.device.encrypt("bob:phone", again.encode(), alice.entropy)
        await bob.process_envelope(
            {
                "delivery_id": "redelivered",
                "message_id": sent.message_id,
                "kind": "message",
                "sender_user_id": "alice",
                "sender_device_id": "phone",
                "body": b64(body),
            }
        )
        return len(bob.inbox)


async def send_after_a_device_was_added() -> str:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        await w.device("bob", "phone")
        await alice.send_text("bob", b"before")
        await w.device("bob", "tablet")
        try:
            sent = await alice.send_text("bob", b"after")
        except ClientError as exc:
            return type(exc).__name__
        return ",".join(sorted(a for a in sent.envelopes if a.startswith("bob:")))


async def distinct_envelopes_per_device() -> int:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        await w.device("bob", "phone")
        await w.device("bob", "tablet")
        sent = await alice.send_text("bob", b"per device")
        return len({body for address, body in sent.envelopes.items() if address.startswith("bob:")})


async def relay_message_id_is_the_clients() -> bool:
    async with world(["alice", "bob"]) as w:
        alice = await w.device("alice", "phone")
        bob = await w.device("bob", "phone")
        sent = await alice.send_text("bob", b"cnrypreview and some words")
        return bool([e["message_id"] for e in await queued(bob)] == [sent.message_id])


# --- account plane (issue 13 item 6): the threat scenario's own attack ------------------------


def attack_verdict(stem: str) -> Callable[[], str]:
    """The ``attack_failed`` outcome of ``threats/account-plane/<stem>.yaml`` on the
    in-process relay: the attack itself, through the relay's public API, is the probe."""

    def run() -> str:
        from pathlib import Path

        from simulator.executor import run_scenario
        from simulator.scenario import load

        folder = Path(__file__).resolve().parents[2] / "scenarios" / "threats" / "account-plane"
        result = run_scenario(load(folder / f"{stem}.yaml"))
        return next(a.outcome.value for a in result.assertions if a.kind == "attack_failed")

    return run


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A probe and what it observes with its sabotage off (correct) and on (defective)."""

    run: Callable[[], Observation | Awaitable[Observation]]
    off: Observation
    on: Observation

    def observe(self) -> Observation:
        result = self.run()
        if asyncio.iscoroutine(result):
            return asyncio.run(result)
        return result


PROBES: dict[str, Probe] = {
    "relay.ledger_off": Probe(retried_send_queued, 1, 2),
    "relay.duplicate_delivery": Probe(envelopes_queued_for_one_send, 1, 2),
    "relay.wrong_device": Probe(
        each_device_reads_its_own_envelope, ([b"to both"], [b"to both"]), ([], [])
    ),
    "relay.logs_raw_ids": Probe(raw_identifier_in_relay_logs, False, True),
    "relay.drops_sync_copies": Probe(sync_copy_reaches_own_other_device, [b"synced"], []),
    "relay.delete_on_push": Probe(pushed_but_unacked_still_queued, 1, 0),
    "relay.queue_in_process_memory": Probe(queued_in_the_shared_store, 1, 0),
    "relay.removed_device_stays_registered": Probe(devices_listed_after_removal, [], ["tablet"]),
    "relay.ignores_stale_registration": Probe(
        message_after_reinstall, (2, [b"new install"]), (1, [])
    ),
    "relay.opk_served_twice": Probe(two_initiators_get_the_same_opk, False, True),
    "relay.accepts_bad_spk_signature": Probe(unsigned_spk_upload_status, 422, 200),
    "relay.test_otp_any_org": Probe(attack_verdict("test-otp-escape"), "held", "violated"),
    "relay.enrol_without_consent": Probe(
        attack_verdict("cross-org-enrolment"), "held", "violated"
    ),
    "relay.login_throttle_by_user": Probe(attack_verdict("stranger-lockout"), "held", "violated"),
    "relay.otp_unlimited_guesses": Probe(attack_verdict("otp-guessing"), "held", "violated"),
    "relay.socket_cap_off": Probe(attack_verdict("socket-amplification"), "held", "violated"),
    "relay.queue_quota_off": Probe(attack_verdict("queue-flood"), "held", "violated"),
    "relay.opk_quota_per_requester": Probe(attack_verdict("opk-drain"), "held", "violated"),
    "relay.header_timeout_off": Probe(attack_verdict("slowloris"), "held", "violated"),
    "client.skips_spk_signature": Probe(forged_bundle_accepted, "InvalidSignature", "ok"),
    "client.reuses_gcm_nonce": Probe(smx1_nonces_repeat, False, True),
    "client.counter_nonce": Probe(dr_nonce_is_the_frame_counter, False, True),
    "client.keep_used_message_keys": Probe(
        seized_state_reopens_received_frame, "DuplicateMessage", "ok"
    ),
    "client.keeps_used_opk": Probe(used_opk_still_on_device, False, True),
    "client.accepts_beyond_max_skip": Probe(frame_beyond_max_skip, "TooManySkipped", "ok"),
    "client.logs_session_keys": Probe(chain_key_hex_in_client_logs, False, True),
    "client.ignores_identity_change": Probe(identity_change_reported, (True, 1), (False, 0)),
    "client.never_resends_smx1": Probe(second_message_before_reply_is_smx1, True, False),
    "client.uploads_plaintext_attachment": Probe(attachment_plaintext_in_blob, False, True),
    "client.screenshot_carries_image": Probe(screenshot_image_at_relay, False, True),
    "client.deletes_previous_spk": Probe(in_flight_smx1_after_spk_rotation, "ok", "UnknownPrekey"),
    "client.drops_skipped_keys": Probe(earlier_frame_after_a_later_one, "ok", "DuplicateMessage"),
    "client.no_duplicate_detection": Probe(same_message_id_twice_shown, 1, 2),
    "client.tiebreak_broken": Probe(crossed_bootstraps_converge, True, False),
    "client.ignores_409_missing": Probe(
        send_after_a_device_was_added, "bob:phone,bob:tablet", "DeliveryFailed"
    ),
    "client.same_envelope_for_all_devices": Probe(distinct_envelopes_per_device, 2, 1),
    "client.backs_up_state_to_relay": Probe(device_state_at_relay, False, True),
    "client.push_preview": Probe(relay_message_id_is_the_clients, True, False),
    "protocol.no_dh_ratchet_step": Probe(ratchet_key_after_a_round_trip_is_new, True, False),
    "protocol.root_key_not_updated": Probe(root_key_moved, True, False),
    "protocol.ad_not_bound": Probe(frame_opens_under_another_ad, "DecryptionFailed", "ok"),
    "protocol.replayed_smx1_new_session": Probe(replayed_smx1, "DuplicateMessage", "UnknownPrekey"),
    "protocol.x3dh_drops_dh1": Probe(sk_covers_every_dh, True, False),
    "protocol.reset_ignores_ratchet_key": Probe(stale_reset_tears_down_session, False, True),
    "protocol.non_transactional_decrypt": Probe(forged_frame_leaves_state_unchanged, True, False),
}
