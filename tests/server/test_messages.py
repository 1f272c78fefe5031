"""Messages (seed §4.2): per-device envelope sets with Signal's 409 missing/extra and 410
stale answers, per-device queues, WebSocket push and HTTP fetch, ack-then-delete, a
SHA-256 envelope hash per delivery, and broadcasts (ADR-0055, ADR-0158)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.server.helpers import DeviceSession, World, b64, messaging_org

BODY = b"DRV1" + bytes(range(68))


def env(
    session: DeviceSession, body: bytes = BODY, registration_id: int | None = None
) -> dict[str, Any]:
    return {
        "device_id": session.device_id,
        "registration_id": registration_id or session.registration_id,
        "body": b64(body),
    }


@pytest.fixture
def org(world: World) -> dict[str, DeviceSession]:
    return messaging_org(world)


def send(
    world: World, sender: DeviceSession, user: str, envs: list[dict[str, Any]], mid: str = "m1"
) -> Any:
    return world.client.put(
        f"/v1/messages/{user}", json={"message_id": mid, "envelopes": envs}, headers=sender.headers
    )


def test_envelope_set_must_cover_exactly_the_current_devices(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2, c1 = org["a1"], org["b1"], org["b2"], org["c1"]
    r = send(world, a1, "bob", [env(b1)])
    assert r.status_code == 409
    assert r.json()["missing"] == ["b2"] and r.json()["extra"] == []
    r = send(world, a1, "bob", [env(b1), env(b2), {**env(c1), "device_id": "ghost"}])
    assert r.status_code == 409 and r.json()["extra"] == ["ghost"] and r.json()["missing"] == []
    r = send(world, a1, "bob", [env(b1), env(b2, registration_id=b2.registration_id + 1)])
    assert r.status_code == 410 and r.json()["stale"] == ["b2"]
    for device in ("b1", "b2"):
        assert (
            world.client.get("/v1/messages", headers=org[device].headers).json()["envelopes"] == []
        )
    r = send(world, a1, "bob", [env(b1), env(b2)])
    assert r.status_code == 200
    assert sorted(d["device_id"] for d in r.json()["deliveries"]) == ["b1", "b2"]


def test_sync_copies_go_to_the_senders_other_devices_only(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, a2 = org["a1"], org["a2"]
    r = send(world, a1, "alice", [env(a1), env(a2)])
    assert r.status_code == 409 and r.json()["extra"] == ["a1"]
    assert send(world, a1, "alice", [env(a2)]).status_code == 200
    assert len(world.client.get("/v1/messages", headers=a2.headers).json()["envelopes"]) == 1


def test_fetch_then_ack_deletes_and_records_a_delivery_proof(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    assert send(world, a1, "bob", [env(b1), env(b2)], mid="hello-1").status_code == 200
    got = world.client.get("/v1/messages", headers=b1.headers).json()
    [e] = got["envelopes"]
    assert got["more"] is False
    assert base64.b64decode(e["body"]) == BODY
    assert base64.b64decode(e["envelope_hash"]) == hashlib.sha256(BODY).digest()
    assert (e["sender_user_id"], e["sender_device_id"], e["message_id"]) == (
        "alice",
        "a1",
        "hello-1",
    )
    # Not deleted by fetching: at-least-once until acknowledged.
    assert world.client.get("/v1/messages", headers=b1.headers).json()["envelopes"] == [e]
    # Another device cannot ack (or see) b1's envelope.
    assert (
        world.client.delete(f"/v1/messages/ack/{e['delivery_id']}", headers=b2.headers).status_code
        == 404
    )
    r = world.client.post(
        "/v1/messages/ack", json={"delivery_ids": [e["delivery_id"]]}, headers=b1.headers
    )
    assert r.json() == {"acked": [e["delivery_id"]]}
    assert world.client.get("/v1/messages", headers=b1.headers).json()["envelopes"] == []
    proofs = world.client.get("/v1/orgs/acme/deliveries", headers=a1.headers).json()["deliveries"]
    [proof] = proofs
    assert proof["delivery_id"] == e["delivery_id"] and proof["envelope_hash"] == e["envelope_hash"]
    assert world.client.get("/v1/orgs/acme/deliveries", headers=b1.headers).status_code == 403


def test_queue_paging(world: World, org: dict[str, DeviceSession]) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    for i in range(5):
        assert send(world, a1, "bob", [env(b1), env(b2)], mid=f"m{i}").status_code == 200
    page = world.client.get("/v1/messages?limit=3", headers=b1.headers).json()
    assert [e["message_id"] for e in page["envelopes"]] == ["m0", "m1", "m2"] and page["more"]


def test_envelope_bodies_are_checked_but_opaque(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    r = send(world, a1, "bob", [env(b1, body=b"PLAINTEXT hello"), env(b2)])
    assert r.status_code == 422 and r.json()["field"] == "body.envelopes.0.body"
    r = send(world, a1, "bob", [env(b1), {**env(b2), "body": "bm90IHBhZGRlZA"}])
    assert r.status_code == 422 and r.json()["field"] == "body.envelopes.1.body"
    r = send(world, a1, "bob", [env(b1), env(b1)])
    assert r.status_code == 422 and r.json()["field"] == "body.envelopes.1.device_id"
    world.relay.settings.__dict__["max_envelope_bytes"] = 100
    r = send(world, a1, "bob", [env(b1, body=b"SMX1" + bytes(200)), env(b2)])
    assert r.status_code == 413
    assert world.client.get("/v1/messages", headers=b1.headers).json()["envelopes"] == []


def test_unknown_and_cross_org_recipients_are_404(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1 = org["a1"], org["b1"]
    assert send(world, a1, "nobody", [env(b1)]).status_code == 404
    world.signup("globex", "gary")
    gary = world.login("globex", "gary", "g1", admin=True)
    assert send(world, gary, "bob", [env(b1)]).status_code == 404


def test_websocket_pushes_backlog_then_live_and_deletes_on_ack(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    assert send(world, a1, "bob", [env(b1), env(b2)], mid="before").status_code == 200
    with world.client.websocket_connect("/v1/websocket", headers=b1.headers) as ws:
        first = ws.receive_json()
        assert first["type"] == "envelope" and first["message_id"] == "before"
        assert send(world, a1, "bob", [env(b1), env(b2)], mid="live").status_code == 200
        second = ws.receive_json()
        assert second["message_id"] == "live"
        ws.send_json(
            {
                "type": "ack",
                "delivery_ids": [first["delivery_id"], second["delivery_id"]],
            }
        )
        acked = ws.receive_json()
        assert acked == {
            "type": "acked",
            "delivery_ids": [first["delivery_id"], second["delivery_id"]],
        }
    assert world.client.get("/v1/messages", headers=b1.headers).json()["envelopes"] == []
    assert len(world.client.get("/v1/messages", headers=b2.headers).json()["envelopes"]) == 2


def test_unacked_envelopes_are_redelivered_on_reconnect(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    assert send(world, a1, "bob", [env(b1), env(b2)]).status_code == 200
    with world.client.websocket_connect("/v1/websocket", headers=b1.headers) as ws:
        first = ws.receive_json()
    with world.client.websocket_connect("/v1/websocket", headers=b1.headers) as ws:
        assert ws.receive_json()["delivery_id"] == first["delivery_id"]


def test_websocket_send_shares_the_http_validation(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    with world.client.websocket_connect("/v1/websocket", headers=a1.headers) as ws:
        ws.send_json(
            {
                "type": "send",
                "request_id": "r1",
                "user_id": "bob",
                "message": {"message_id": "w1", "envelopes": [env(b1)]},
            }
        )
        r = ws.receive_json()
        assert r["type"] == "response" and r["request_id"] == "r1" and r["status"] == 409
        assert r["body"]["missing"] == ["b2"]
        ws.send_json(
            {
                "type": "send",
                "request_id": "r2",
                "user_id": "bob",
                "message": {"message_id": "w1", "envelopes": [env(b1), env(b2)]},
            }
        )
        assert ws.receive_json()["status"] == 200
        ws.send_json(
            {
                "type": "send",
                "request_id": "r3",
                "user_id": "bob",
                "message": {"message_id": "w2", "envelopes": [{**env(b1), "body": 5}]},
            }
        )
        bad = ws.receive_json()
        assert bad["status"] == 422 and bad["body"]["field"] == "frame.message.envelopes.0.body"
        ws.send_text("not json")
        assert ws.receive_json()["error"] == "invalid_frame"
    assert len(world.client.get("/v1/messages", headers=b1.headers).json()["envelopes"]) == 1


def test_websocket_refuses_bad_tokens(world: World, org: dict[str, DeviceSession]) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        with (
            pytest.raises(WebSocketDisconnect),
            world.client.websocket_connect("/v1/websocket", headers=headers) as ws,
        ):
            ws.receive_json()


@pytest.mark.cites("ADR-0055", "ADR-0158")
def test_broadcast_is_admin_only_validated_per_recipient_and_audited(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, a2, b1, b2, c1 = org["a1"], org["a2"], org["b1"], org["b2"], org["c1"]
    recipients = [
        {"user_id": "bob", "envelopes": [env(b1), env(b2)]},
        {"user_id": "carol", "envelopes": [env(c1)]},
        {"user_id": "alice", "envelopes": [env(a2)]},
    ]
    body = {"message_id": "announce-1", "recipients": recipients}
    r = world.client.post("/v1/broadcasts", json=body, headers=b1.headers)
    assert r.status_code == 403
    partial = {
        "message_id": "x",
        "recipients": [recipients[0], {"user_id": "carol", "envelopes": [env(b1)]}],
    }
    r = world.client.post("/v1/broadcasts", json=partial, headers=a1.headers)
    assert r.status_code == 409
    assert r.json()["mismatched"] == [{"user_id": "carol", "missing": ["c1"], "extra": ["b1"]}]
    stale = {
        "message_id": "x",
        "recipients": [
            {"user_id": "carol", "envelopes": [env(c1, registration_id=c1.registration_id + 1)]}
        ],
    }
    r = world.client.post("/v1/broadcasts", json=stale, headers=a1.headers)
    assert r.status_code == 410 and r.json()["stale_users"] == [
        {"user_id": "carol", "stale": ["c1"]}
    ]
    assert (
        world.client.get("/v1/messages", headers=b1.headers).json()["envelopes"] == []
    )  # nothing half-written
    r = world.client.post("/v1/broadcasts", json=body, headers=a1.headers)
    assert r.status_code == 200 and r.json() == {
        "message_id": "announce-1",
        "recipients": 3,
        "deliveries": 4,
    }
    [got] = world.client.get("/v1/messages", headers=c1.headers).json()["envelopes"]
    assert got["kind"] == "broadcast"
    audit = world.client.get("/v1/orgs/acme/audit?event_type=broadcast", headers=a1.headers).json()
    [event] = audit["events"]
    assert event["details"] == {"message_id": "announce-1", "recipients": 3, "deliveries": 4}
    assert event["actor_user_id"] == "alice"


def test_send_is_rate_limited(world: World, org: dict[str, DeviceSession]) -> None:
    world.relay.settings.rate_limits["send"] = (2, 60.0)
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    codes = [send(world, a1, "bob", [env(b1), env(b2)], mid=f"m{i}").status_code for i in range(3)]
    assert codes == [200, 200, 429]


def test_opt_in_batching_puts_ready_envelopes_in_one_frame(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    for i in range(3):
        assert send(world, a1, "bob", [env(b1), env(b2)], mid=f"q{i}").status_code == 200
    with world.client.websocket_connect("/v1/websocket?batch=2", headers=b1.headers) as ws:
        first, second = ws.receive_json(), ws.receive_json()
        assert first["type"] == second["type"] == "envelopes"
        assert [e["message_id"] for e in first["envelopes"] + second["envelopes"]] == [
            "q0",
            "q1",
            "q2",
        ]
        assert len(first["envelopes"]) == 2
    with world.client.websocket_connect("/v1/websocket", headers=b2.headers) as ws:
        assert ws.receive_json()["type"] == "envelope"  # default: one frame per envelope
    for bad in ("65", "x", "-1"):
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            world.client.websocket_connect(f"/v1/websocket?batch={bad}", headers=b1.headers) as ws,
        ):
            ws.receive_json()
        assert closed.value.code == 4400


def test_batched_socket_answers_every_send_in_order(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    with world.client.websocket_connect("/v1/websocket?batch=8", headers=a1.headers) as ws:
        for n in range(5):
            ws.send_json(
                {
                    "type": "send",
                    "request_id": n,
                    "user_id": "bob",
                    "message": {"message_id": f"b{n}", "envelopes": [env(b1), env(b2)]},
                }
            )
        answered: list[Any] = []
        while len(answered) < 5:
            frame = ws.receive_json()
            frames = frame["frames"] if frame["type"] == "batch" else [frame]
            answered.extend(f["request_id"] for f in frames if f["status"] == 200)
    assert answered == [0, 1, 2, 3, 4]
