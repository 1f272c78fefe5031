"""Audit (seed §2.4): admin-only, org-scoped query with filters and paging, NDJSON SIEM
export; retention (ADRs 0093–0097): the enforcement job really removes expired data from the
store files; rate limits on auth per IP and per account."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from semafore.storage.sqlite import sqlite_stores
from tests.server.helpers import DeviceSession, World, b64, make_world


@pytest.fixture
def two_orgs(world: World) -> dict[str, DeviceSession]:
    world.signup("acme", "alice")
    world.signup("globex", "gary")
    alice = world.login("acme", "alice", "a1", admin=True)
    gary = world.login("globex", "gary", "g1", admin=True)
    world.add_member(alice, "bob")
    world.add_member(alice, "bob", role="admin")
    world.client.put(
        "/v1/orgs/acme/subscription",
        json={"plan": "enterprise", "seats": 50},
        headers=alice.headers,
    )
    world.add_member(gary, "gina")
    return {"alice": alice, "gary": gary, "bob": world.login("acme", "bob", "b1")}


def test_audit_records_the_documented_event_types(
    world: World, two_orgs: dict[str, DeviceSession]
) -> None:
    alice = two_orgs["alice"]
    events = world.client.get("/v1/orgs/acme/audit", headers=alice.headers).json()["events"]
    types = [e["event_type"] for e in events]
    assert types == [
        "signup",
        "device_added",
        "membership_change",
        "role_change",
        "subscription_change",
        "device_added",
    ]
    assert [e["seq"] for e in events] == list(range(1, 7))
    assert all(e["org_id"] == "acme" and e["schema_version"] == 1 for e in events)
    sub = events[4]
    assert sub["details"] == {
        "plan": "enterprise",
        "seats": 50,
        "previous_plan": "standard",
        "previous_seats": 25,
    }
    assert events[3]["subject_user_id"] == "bob" and events[3]["details"] == {
        "role": "admin",
        "previous_role": "member",
    }


def test_audit_filters_and_paging(world: World, two_orgs: dict[str, DeviceSession]) -> None:
    h = two_orgs["alice"].headers
    q = world.client.get
    assert [
        e["event_type"]
        for e in q("/v1/orgs/acme/audit?event_type=device_added", headers=h).json()["events"]
    ] == ["device_added"] * 2
    both = q("/v1/orgs/acme/audit?event_type=signup&event_type=role_change", headers=h).json()[
        "events"
    ]
    assert [e["event_type"] for e in both] == ["signup", "role_change"]
    assert len(q("/v1/orgs/acme/audit?subject_user_id=bob", headers=h).json()["events"]) == 3
    page1 = q("/v1/orgs/acme/audit?limit=4", headers=h).json()
    assert page1["next_after_seq"] == 4
    page2 = q(f"/v1/orgs/acme/audit?limit=4&after_seq={page1['next_after_seq']}", headers=h).json()
    assert [e["seq"] for e in page2["events"]] == [5, 6] and page2["next_after_seq"] is None
    now = world.clock.now
    assert q(f"/v1/orgs/acme/audit?since={now + 1}", headers=h).json()["events"] == []
    r = q("/v1/orgs/acme/audit?event_type=login", headers=h)
    assert r.status_code == 422 and r.json()["field"] == "query.event_type.0"


def test_audit_is_admin_only_and_never_crosses_orgs(
    world: World, two_orgs: dict[str, DeviceSession]
) -> None:
    gary, bob = two_orgs["gary"], two_orgs["bob"]
    for path in ("/v1/orgs/acme/audit", "/v1/orgs/acme/audit/export", "/v1/orgs/acme/retention"):
        assert world.client.get(path, headers=gary.headers).status_code == 403
        assert world.client.get(path, headers=bob.headers).status_code == 403  # bob: admin w/o TOTP
    events = world.client.get("/v1/orgs/globex/audit", headers=gary.headers).json()["events"]
    assert {e["org_id"] for e in events} == {"globex"}
    assert all(e["actor_user_id"] != "alice" for e in events)


def test_siem_export_streams_ndjson_from_a_cursor(
    world: World, two_orgs: dict[str, DeviceSession]
) -> None:
    h = two_orgs["alice"].headers
    r = world.client.get("/v1/orgs/acme/audit/export", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 7))
    assert set(lines[0]) == {
        "schema_version",
        "event_id",
        "seq",
        "org_id",
        "event_type",
        "at",
        "actor_user_id",
        "actor_device_id",
        "subject_user_id",
        "details",
    }
    tail = world.client.get("/v1/orgs/acme/audit/export?after_seq=5", headers=h).text.splitlines()
    assert [json.loads(x)["seq"] for x in tail] == [6]


def test_auth_is_rate_limited_per_ip_with_retry_after(world: World) -> None:
    world.relay.settings.rate_limits["auth"] = (3, 60.0)
    codes = []
    for i in range(4):
        r = world.client.post("/v1/auth/otp", json={"org_id": "acme", "user_id": f"u{i}"})
        codes.append(r.status_code)
    assert codes == [202, 202, 202, 429]
    assert r.headers["Retry-After"].isdigit() and r.json()["error"] == "rate_limited"
    world.clock.advance(60)
    assert (
        world.client.post("/v1/auth/otp", json={"org_id": "acme", "user_id": "u9"}).status_code
        == 202
    )


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[tuple[World, Path]]:
    path = tmp_path / "relay.sqlite3"
    stores = sqlite_stores(str(path))
    w, client = make_world(stores)
    with client:
        yield w, path
    asyncio.run(stores.close())


def _store_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


@pytest.mark.cites("ADR-0093", "ADR-0094", "ADR-0095", "ADR-0097")
def test_retention_really_deletes_expired_data_from_the_store(
    sqlite_world: tuple[World, Path],
) -> None:
    world, path = sqlite_world
    world.signup("acme", "alice")
    alice = world.login("acme", "alice", "a1", admin=True)
    world.add_member(alice, "bob")
    bob = world.login("acme", "bob", "b1")
    world.publish_keys(bob, opks=0)  # a recipient device has keys (docs/server.md)
    old_env = b"DRV1" + b"EXPIRED-ENVELOPE-CANARY-1f9d" * 4
    old_file = b"EXPIRED-ATTACHMENT-CANARY-77ab" * 10
    env = {"device_id": "b1", "registration_id": bob.registration_id, "body": b64(old_env)}
    assert (
        world.client.put(
            "/v1/messages/bob",
            json={"message_id": "old", "envelopes": [env]},
            headers=alice.headers,
        ).status_code
        == 200
    )
    decl = {
        "size": len(old_file),
        "sha256": b64(hashlib.sha256(old_file).digest()),
        "recipients": ["bob"],
    }
    file_id = world.client.post("/v1/attachments", json=decl, headers=alice.headers).json()[
        "file_id"
    ]
    assert (
        world.client.put(
            f"/v1/attachments/{file_id}",
            content=old_file,
            headers={**alice.headers, "content-type": "application/octet-stream"},
        ).status_code
        == 204
    )
    policy = {"envelope_max_age": 3600, "attachment_max_age": 7200, "audit_max_age": 86400}
    r = world.client.put("/v1/orgs/acme/retention", json=policy, headers=alice.headers)
    assert r.status_code == 200 and r.json() == {"org_id": "acme", **policy}
    assert old_env in _store_bytes(path) or old_env in b"".join(
        d for _, d in asyncio.run(world.stores.dump())
    )

    world.clock.advance(3601)  # the envelope is expired, the attachment not yet
    report = asyncio.run(world.relay.enforce_retention())
    assert report.envelopes == 1 and report.attachments == 0
    assert old_env not in _store_bytes(path)
    bob = world.login("acme", "bob", "b1")  # access tokens live 15 minutes
    assert world.client.get("/v1/messages", headers=bob.headers).json()["envelopes"] == []
    assert world.client.get(f"/v1/attachments/{file_id}", headers=bob.headers).status_code == 200

    world.clock.advance(3600)
    assert asyncio.run(world.relay.enforce_retention()).attachments == 1
    bob = world.login("acme", "bob", "b1")
    assert world.client.get(f"/v1/attachments/{file_id}", headers=bob.headers).status_code == 404
    assert old_file not in _store_bytes(path)
    dump = asyncio.run(world.stores.dump())
    assert not [where for where, data in dump if old_file in data or old_env in data]

    world.clock.advance(86400)
    assert asyncio.run(world.relay.enforce_retention()).audit_events == 4
    alice = world.login("acme", "alice", "a1", admin=True)
    events = world.client.get("/v1/orgs/acme/audit", headers=alice.headers).json()["events"]
    assert events == []  # all four events were older than a day; seq keeps counting after
    world.add_member(alice, "carol")
    [event] = world.client.get("/v1/orgs/acme/audit", headers=alice.headers).json()["events"]
    assert event["seq"] == 5


@pytest.mark.cites("ADR-0093", "ADR-0094", "ADR-0095", "ADR-0097")
def test_retention_policy_validation(world: World) -> None:
    world.signup("acme", "alice")
    alice = world.login("acme", "alice", "a1", admin=True)
    r = world.client.put(
        "/v1/orgs/acme/retention", json={"envelope_max_age": 5}, headers=alice.headers
    )
    assert r.status_code == 422 and r.json()["field"] == "body.envelope_max_age"
    r = world.client.get("/v1/orgs/acme/retention", headers=alice.headers).json()
    assert r == {
        "org_id": "acme",
        "envelope_max_age": None,
        "attachment_max_age": None,
        "audit_max_age": None,
    }
