"""SPEC §4 reset notices at the relay: a third envelope type, ``"SRS1" || ratchet key``
(exactly 36 bytes, so it can carry no content), addressed to the one device whose key it
names. The relay still validates every byte it routes and still never sees plaintext."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.helpers import DeviceSession, World, b64

RESET = b"SRS1" + bytes(range(32))
DRV1 = b"DRV1" + bytes(range(68))


def env(session: DeviceSession, body: bytes = RESET, **over: Any) -> dict[str, Any]:
    return {
        "device_id": session.device_id,
        "registration_id": session.registration_id,
        "body": b64(body),
        **over,
    }


@pytest.fixture
def org(world: World) -> dict[str, DeviceSession]:
    world.signup("acme", "alice")
    a1 = world.login("acme", "alice", "a1", admin=True)
    world.add_member(a1, "bob")
    world.add_member(a1, "carol")
    sessions = {
        "a1": a1,
        "b1": world.login("acme", "bob", "b1"),
        "b2": world.login("acme", "bob", "b2"),
        "c1": world.login("acme", "carol", "c1"),
    }
    for session in sessions.values():  # recipient devices have keys (docs/server.md)
        world.publish_keys(session, opks=0)
    return sessions


def send(world: World, sender: DeviceSession, user: str, envs: list[dict[str, Any]]) -> Any:
    return world.client.put(
        f"/v1/messages/{user}", json={"message_id": "r1", "envelopes": envs},
        headers=sender.headers,
    )


def queue(world: World, session: DeviceSession) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = world.client.get(
        "/v1/messages", headers=session.headers
    ).json()["envelopes"]
    return out


@pytest.mark.cites("SPEC §4 r3")
def test_reset_goes_to_the_named_device_only_with_kind_reset(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    r = send(world, a1, "bob", [env(b2)])  # not every device of bob: fine for a reset
    assert r.status_code == 200, r.text
    assert [d["device_id"] for d in r.json()["deliveries"]] == ["b2"]
    assert queue(world, b1) == []
    (got,) = queue(world, b2)
    assert got["kind"] == "reset" and got["sender_device_id"] == "a1"
    assert got["body"] == b64(RESET)


def test_a_message_still_has_to_cover_every_device(
    world: World, org: dict[str, DeviceSession]
) -> None:
    r = send(world, org["a1"], "bob", [env(org["b2"], DRV1)])
    assert r.status_code == 409 and r.json()["missing"] == ["b1"]


@pytest.mark.parametrize(
    "body",
    [b"SRS1", b"SRS1" + bytes(31), b"SRS1" + bytes(33), b"SRS1" + b"hello world" * 10],
    ids=["magic-only", "31-byte-key", "33-byte-key", "text-after-magic"],
)
@pytest.mark.cites("SPEC §4 r3")
def test_reset_of_any_other_length_is_refused_naming_the_field(
    world: World, org: dict[str, DeviceSession], body: bytes
) -> None:
    r = send(world, org["a1"], "bob", [env(org["b1"], body)])
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "malformed_reset"
    assert r.json()["field"] == "body.envelopes.0.body"
    assert queue(world, org["b1"]) == []


def test_reset_and_message_envelopes_never_mix_in_one_send(
    world: World, org: dict[str, DeviceSession]
) -> None:
    r = send(world, org["a1"], "bob", [env(org["b1"], DRV1), env(org["b2"])])
    assert r.status_code == 422
    assert r.json()["error"] == "mixed_envelope_types"
    assert r.json()["field"] == "body.envelopes.1.body"


def test_reset_to_an_unknown_or_re_registered_device_is_409_or_410(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1 = org["a1"], org["b1"]
    r = send(world, a1, "bob", [env(b1, device_id="ghost")])
    assert r.status_code == 409 and r.json()["extra"] == ["ghost"] and r.json()["missing"] == []
    r = send(world, a1, "bob", [env(b1, registration_id=b1.registration_id + 1)])
    assert r.status_code == 410 and r.json()["stale"] == ["b1"]


def test_reset_between_a_users_own_devices(world: World, org: dict[str, DeviceSession]) -> None:
    b1, b2 = org["b1"], org["b2"]
    assert send(world, b1, "bob", [env(b2)]).status_code == 200
    assert send(world, b1, "bob", [env(b1)]).json()["extra"] == ["b1"]  # never to itself


def test_broadcast_refuses_reset_bodies(world: World, org: dict[str, DeviceSession]) -> None:
    a1, c1 = org["a1"], org["c1"]
    r = world.client.post(
        "/v1/broadcasts",
        json={"message_id": "b1", "recipients": [{"user_id": "carol", "envelopes": [env(c1)]}]},
        headers=a1.headers,
    )
    assert r.status_code == 422 and r.json()["error"] == "unknown_envelope_type"
    assert r.json()["field"] == "body.recipients.0.envelopes.0.body"


def test_websocket_send_of_a_reset_shares_the_http_validation(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1 = org["a1"], org["b1"]
    with world.client.websocket_connect("/v1/websocket", headers=a1.headers) as ws:
        for i, body in enumerate((RESET, RESET[:20])):
            ws.send_json(
                {"type": "send", "request_id": f"q{i}", "user_id": "bob",
                 "message": {"message_id": f"r{i}", "envelopes": [env(b1, body)]}}
            )
            reply = ws.receive_json()
            while reply.get("type") != "response":
                reply = ws.receive_json()
            if i == 0:
                assert reply["status"] == 200, reply
            else:
                assert reply["status"] == 422 and reply["body"]["error"] == "malformed_reset"
    assert [e["kind"] for e in queue(world, b1)] == ["reset"]
