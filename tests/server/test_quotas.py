"""Issue 13 F-6 and F-9, through a real loopback socket: queue quotas per sender and per
recipient, attachment and screenshot rate limits, and per-target OPK claim quotas, every one
answered ``429 rate_limited`` with ``Retry-After`` and refused before anything is written.
The buckets live in the one table, ``semafore.server.settings.DEFAULT_RATE_LIMITS``."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import DeviceKeys
from semafore.server.settings import (
    DEFAULT_RATE_LIMITS,
    RateLimits,
    Settings,
    unlimited_rate_limits,
)
from tests.server.helpers import key_upload
from tests.server.socket_world import STRANGER, Session, SocketWorld, socket_world

BODY = b"DRV1" + bytes(68)  # the smallest well-formed DR_V1 envelope


def limits(**buckets: tuple[int, float]) -> RateLimits:
    """The production table with the named buckets tightened (so a test reaches them)."""
    return {**unlimited_rate_limits(), **buckets}


@pytest.fixture
def org() -> Iterator[tuple[SocketWorld, dict[str, Session]]]:
    """acme: admin alice and members bob, carol, dave, each logged in on one device; the
    limits are set per test on the running relay's table."""
    with socket_world(rate_limits=limits()) as world:
        world.signup("acme", "alice")
        alice = world.login("acme", "alice", "a1", admin=True)
        sessions = {"alice": alice}
        for user in ("bob", "carol", "dave"):
            assert world.put_member(alice, user).status_code == 200
            sessions[user] = world.login("acme", user, user[0] + "1")
            world.publish_keys(sessions[user])  # a recipient device has keys
        yield world, sessions


def tighten(world: SocketWorld, **buckets: tuple[int, float]) -> None:
    world.relay.settings.rate_limits.update(buckets)


def registration_id(world: SocketWorld, who: Session, user: str) -> int:
    r = world.http().get("/v1/devices", headers=who.headers)
    assert r.status_code == 200, r.text
    return int(r.json()["devices"][0]["registration_id"])


def send(world: SocketWorld, sender: Session, to: Session, message_id: str) -> httpx.Response:
    rid = registration_id(world, to, to.user_id)
    return world.http().put(
        f"/v1/messages/{to.user_id}",
        json={"message_id": message_id, "envelopes": [
            {"device_id": to.device_id, "registration_id": rid,
             "body": base64.b64encode(BODY).decode()}]},
        headers=sender.headers,
    )


def queued(world: SocketWorld, who: Session) -> int:
    r = world.http().get("/v1/messages?limit=100", headers=who.headers)
    assert r.status_code == 200, r.text
    return len(r.json()["envelopes"])


def assert_429(r: httpx.Response, bucket: str) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "rate_limited" and bucket in r.json()["detail"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60


# --- the one table ----------------------------------------------------------------------------


def test_unlimited_tables_are_derived_from_the_one_table() -> None:
    unlimited = unlimited_rate_limits(7)
    assert unlimited.keys() == DEFAULT_RATE_LIMITS.keys()
    assert all(unlimited[b] == (7, w) for b, (_, w) in DEFAULT_RATE_LIMITS.items())


def test_a_table_missing_a_bucket_is_refused_naming_it() -> None:
    table = {b: v for b, v in DEFAULT_RATE_LIMITS.items() if b != "opk_target"}
    with pytest.raises(ValueError, match="opk_target"):
        Settings(rate_limits=table)


# --- F-6: queue quotas ------------------------------------------------------------------------


def test_one_sender_fills_one_queue_only_up_to_its_quota(
    org: tuple[SocketWorld, dict[str, Session]],
) -> None:
    world, s = org
    tighten(world, queue_sender=(3, 60.0))
    assert [send(world, s["alice"], s["bob"], f"m{i}").status_code for i in range(3)] == [200] * 3
    assert_429(send(world, s["alice"], s["bob"], "m3"), "queue_sender")
    assert queued(world, s["bob"]) == 3  # the refused send queued nothing
    # the quota is per (sender, recipient): another sender, or another recipient, is served
    assert send(world, s["carol"], s["bob"], "c0").status_code == 200
    assert send(world, s["alice"], s["carol"], "a0").status_code == 200
    # a retry of an accepted send is answered from the ledger, not counted again
    assert send(world, s["alice"], s["bob"], "m0").status_code == 200
    world.clock.advance(60)  # the next window
    assert send(world, s["alice"], s["bob"], "m3").status_code == 200
    assert queued(world, s["bob"]) == 5


def test_all_senders_together_fill_one_queue_only_up_to_its_quota(
    org: tuple[SocketWorld, dict[str, Session]],
) -> None:
    world, s = org
    tighten(world, queue_recipient=(4, 60.0))
    for sender in ("alice", "carol"):
        for i in range(2):
            assert send(world, s[sender], s["bob"], f"{sender}{i}").status_code == 200
    assert_429(send(world, s["dave"], s["bob"], "d0"), "queue_recipient")
    assert queued(world, s["bob"]) == 4
    assert send(world, s["dave"], s["carol"], "d1").status_code == 200  # another queue


def test_the_websocket_send_frame_meets_the_same_queue_quota(
    org: tuple[SocketWorld, dict[str, Session]],
) -> None:
    world, s = org
    tighten(world, queue_sender=(1, 60.0))
    rid = registration_id(world, s["bob"], "bob")
    statuses = []
    with connect(world.server.ws_url, additional_headers=s["alice"].headers,
                 open_timeout=5) as ws:
        for i in range(2):
            ws.send(json.dumps({"type": "send", "request_id": i, "user_id": "bob", "message": {
                "message_id": f"w{i}", "envelopes": [
                    {"device_id": "b1", "registration_id": rid,
                     "body": base64.b64encode(BODY).decode()}]}}))
            reply: dict[str, Any] = json.loads(ws.recv(timeout=5))
            statuses.append((reply["status"], reply["body"].get("error")))
    assert statuses == [(200, None), (429, "rate_limited")]
    assert queued(world, s["bob"]) == 1


# --- F-6: attachments and screenshot reports --------------------------------------------------


def test_attachment_declarations_and_uploads_share_a_rate_limit(
    org: tuple[SocketWorld, dict[str, Session]],
) -> None:
    world, s = org
    tighten(world, attachments=(3, 60.0))
    data = b"ciphertext" * 10
    declaration = {"size": len(data), "sha256": base64.b64encode(
        hashlib.sha256(data).digest()).decode(), "recipients": ["bob"]}
    http, headers = world.http(), s["alice"].headers
    first = http.post("/v1/attachments", json=declaration, headers=headers)
    assert first.status_code == 201, first.text
    upload = http.put(f"/v1/attachments/{first.json()['file_id']}", content=data,
                      headers={**headers, "Content-Type": "application/octet-stream"})
    assert upload.status_code == 204, upload.text
    assert http.post("/v1/attachments", json=declaration, headers=headers).status_code == 201
    assert_429(http.post("/v1/attachments", json=declaration, headers=headers), "attachments")
    # counted per account and per client address: another account elsewhere is served
    other = world.http(STRANGER).post("/v1/attachments", json=declaration,
                                      headers=s["bob"].headers)
    assert other.status_code == 201


def test_screenshot_reports_are_rate_limited(
    org: tuple[SocketWorld, dict[str, Session]],
) -> None:
    world, s = org
    tighten(world, screenshots=(2, 60.0))
    report = {"peer_user_id": "bob", "screenshot_sha256": base64.b64encode(bytes(32)).decode(),
              "message_ids": ["m1"], "captured_at": 1_800_000_000.0}
    codes = [world.http().post("/v1/screenshots", json=report, headers=s["alice"].headers)
             for _ in range(3)]
    assert [r.status_code for r in codes[:2]] == [201, 201]
    assert_429(codes[2], "screenshots")
    audited = [e for e in world.audit(s["alice"]) if e["event_type"] == "screenshot_report"]
    assert len(audited) == 2  # the refused report wrote nothing


# --- F-9: OPK claims per target ---------------------------------------------------------------


def test_one_time_prekeys_are_claimed_per_target_only_up_to_its_quotas(
    org: tuple[SocketWorld, dict[str, Session]],
) -> None:
    world, s = org
    tighten(world, opk_pair=(2, 60.0), opk_target=(3, 60.0))
    keys = DeviceKeys.generate(SeededEntropy("bob-b1"), opk_count=20)
    opks = {"opks": key_upload(keys)["opks"]}  # bob's identity and SPK are published already
    assert world.http().post("/v1/keys/opks", json=opks, headers=s["bob"].headers).is_success

    def fetch(who: str) -> httpx.Response:
        return world.http().get("/v1/keys/bob", headers=s[who].headers)

    assert [fetch("alice").status_code for _ in range(2)] == [200, 200]
    assert_429(fetch("alice"), "opk_pair")  # one requester: its pair quota
    assert fetch("carol").status_code == 200
    assert_429(fetch("dave"), "opk_target")  # everyone together: the target's quota
    opks = world.http().get("/v1/keys", headers=s["bob"].headers).json()["opk_count"]
    assert opks == 20 - 3  # refused fetches claimed nothing
    # identity lookups claim no OPK and are not counted against the target
    assert world.http().get("/v1/identities/bob", headers=s["dave"].headers).status_code == 200
    world.clock.advance(60)
    assert fetch("dave").status_code == 200
