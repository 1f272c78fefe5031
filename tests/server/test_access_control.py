"""Access control in one place: queues are per device, organisations never see each other,
admin surfaces need an admin token of *that* organisation. (Token forgery, refresh reuse and
the test-OTP bypass are in test_auth.py; cross-org keys/attachments in their own files.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.helpers import DeviceSession, World, b64


@pytest.fixture
def org(world: World) -> dict[str, DeviceSession]:
    world.signup("acme", "alice")
    world.signup("globex", "gary")
    a1 = world.login("acme", "alice", "a1", admin=True)
    g1 = world.login("globex", "gary", "g1", admin=True)
    world.add_member(a1, "bob")
    sessions = {
        "a1": a1,
        "g1": g1,
        "b1": world.login("acme", "bob", "b1"),
        "b2": world.login("acme", "bob", "b2"),
    }
    for device in ("b1", "b2"):  # recipient devices have keys (docs/server.md)
        world.publish_keys(sessions[device], opks=0)
    return sessions


def test_a_device_never_reads_or_acks_another_devices_queue(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    envs = [
        {
            "device_id": s.device_id,
            "registration_id": s.registration_id,
            "body": b64(b"SMX1" + bytes(80)),
        }
        for s in (b1, b2)
    ]
    r = world.client.put(
        "/v1/messages/bob", json={"message_id": "m", "envelopes": envs}, headers=a1.headers
    )
    deliveries = {d["device_id"]: d["delivery_id"] for d in r.json()["deliveries"]}
    mine = world.client.get("/v1/messages", headers=b2.headers).json()["envelopes"]
    assert [e["delivery_id"] for e in mine] == [deliveries["b2"]]
    # b2 (same user!) acks b1's delivery id: nothing happens to b1's queue.
    r = world.client.post(
        "/v1/messages/ack", json={"delivery_ids": [deliveries["b1"]]}, headers=b2.headers
    )
    assert r.json() == {"acked": []}
    assert (
        world.client.delete(f"/v1/messages/ack/{deliveries['b1']}", headers=a1.headers).status_code
        == 404
    )
    assert len(world.client.get("/v1/messages", headers=b1.headers).json()["envelopes"]) == 1
    # The WebSocket of b2 pushes only b2's envelope.
    with world.client.websocket_connect("/v1/websocket", headers=b2.headers) as ws:
        assert ws.receive_json()["delivery_id"] == deliveries["b2"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/orgs/acme", None),
        ("get", "/v1/orgs/acme/members", None),
        ("put", "/v1/orgs/acme/members/gary", {"role": "admin"}),
        ("delete", "/v1/orgs/acme/members/bob", None),
        ("put", "/v1/orgs/acme/subscription", {"plan": "trial", "seats": 5}),
        ("get", "/v1/orgs/acme/audit", None),
        ("get", "/v1/orgs/acme/audit/export", None),
        ("get", "/v1/orgs/acme/deliveries", None),
        ("get", "/v1/orgs/acme/retention", None),
        ("put", "/v1/orgs/acme/retention", {"audit_max_age": 3600}),
    ],
)
def test_another_orgs_admin_is_refused_everywhere(
    world: World, org: dict[str, DeviceSession], method: str, path: str, body: Any
) -> None:
    r = world.client.request(method.upper(), path, headers=org["g1"].headers, json=body)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    member = world.client.request(method.upper(), path, headers=org["b1"].headers, json=body)
    assert member.status_code == 403 or (path == "/v1/orgs/acme" and member.status_code == 200)


def test_removed_member_loses_the_organisation(world: World, org: dict[str, DeviceSession]) -> None:
    a1, b1 = org["a1"], org["b1"]
    assert world.client.delete("/v1/orgs/acme/members/bob", headers=a1.headers).status_code == 204
    r = world.client.get("/v1/messages", headers=b1.headers)
    assert r.status_code == 401 and r.json()["error"] == "token_revoked"
    r = world.client.post("/v1/auth/refresh", json={"refresh_token": b1.refresh_token})
    assert r.status_code == 401 and r.json()["error"] == "token_revoked"
    assert world.client.get("/v1/keys/alice", headers=a1.headers).status_code == 404  # no keys yet
    r = world.client.get("/v1/keys/bob", headers=a1.headers)
    assert r.status_code == 404 and r.json()["error"] == "unknown_user"


def test_unauthenticated_requests_are_401_everywhere(world: World) -> None:
    for method, path in (
        ("GET", "/v1/messages"),
        ("GET", "/v1/devices"),
        ("GET", "/v1/keys/alice"),
        ("PUT", "/v1/keys"),
        ("POST", "/v1/attachments"),
        ("GET", "/v1/orgs/acme/audit"),
    ):
        r = world.client.request(method, path)
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"] == "Bearer"
