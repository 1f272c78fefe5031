"""Attachments (ADR-0157, ADR-0054): ciphertext only, declared size and SHA-256 checked, no
plaintext metadata accepted, 413 over the limit, downloads only for authorised devices of
the same organisation. Screenshot reports (ADR-0159): hashes only, audited."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from tests.server.helpers import DeviceSession, World, b64

OCTET = {"content-type": "application/octet-stream"}


@pytest.fixture
def org(world: World) -> dict[str, DeviceSession]:
    world.signup("acme", "alice")
    a1 = world.login("acme", "alice", "a1", admin=True)
    world.add_member(a1, "bob")
    world.add_member(a1, "eve")
    return {
        "a1": a1,
        "b1": world.login("acme", "bob", "b1"),
        "e1": world.login("acme", "eve", "e1"),
    }


def declare(
    world: World, who: DeviceSession, data: bytes, recipients: list[str], **extra: object
) -> httpx.Response:
    body = {
        "size": len(data),
        "sha256": b64(hashlib.sha256(data).digest()),
        "recipients": recipients,
        **extra,
    }
    response: httpx.Response = world.client.post("/v1/attachments", json=body, headers=who.headers)
    return response


@pytest.mark.cites("ADR-0157", "ADR-0054")
def test_upload_and_authorised_download(world: World, org: dict[str, DeviceSession]) -> None:
    data = os.urandom(5000)
    r = declare(world, org["a1"], data, ["bob"])
    assert r.status_code == 201
    file_id = r.json()["file_id"]
    headers = {**org["a1"].headers, **OCTET}
    assert (
        world.client.put(f"/v1/attachments/{file_id}", content=data, headers=headers).status_code
        == 204
    )
    got = world.client.get(f"/v1/attachments/{file_id}", headers=org["b1"].headers)
    assert got.status_code == 200 and got.content == data
    assert got.headers["x-content-sha256"] == b64(hashlib.sha256(data).digest())
    # eve is in the org but not a recipient: indistinguishable from a missing file.
    assert (
        world.client.get(f"/v1/attachments/{file_id}", headers=org["e1"].headers).status_code == 404
    )
    # Immutable once uploaded.
    assert (
        world.client.put(f"/v1/attachments/{file_id}", content=data, headers=headers).status_code
        == 409
    )


@pytest.mark.cites("ADR-0157")
def test_plaintext_metadata_is_refused(world: World, org: dict[str, DeviceSession]) -> None:
    for extra in ({"filename": "secret-plan.pdf"}, {"mime_type": "image/png"}, {"caption": "hi"}):
        r = declare(world, org["a1"], b"x", [], **extra)
        assert r.status_code == 422
        assert r.json()["field"] == f"body.{next(iter(extra))}"


def test_size_hash_and_type_are_checked_and_nothing_is_stored(
    world: World, org: dict[str, DeviceSession]
) -> None:
    data = b"\x00ciphertext" * 10
    file_id = declare(world, org["a1"], data, ["bob"]).json()["file_id"]
    url = f"/v1/attachments/{file_id}"
    headers = {**org["a1"].headers, **OCTET}
    r = world.client.put(url, content=data + b"!", headers=headers)
    assert r.status_code == 413 and r.json()["error"] == "size_exceeds_declared"
    r = world.client.put(url, content=data[:-1], headers=headers)
    assert r.status_code == 422 and r.json()["error"] == "size_mismatch"
    r = world.client.put(url, content=bytes(len(data)), headers=headers)
    assert r.status_code == 422 and r.json()["error"] == "sha256_mismatch"
    r = world.client.put(
        url, content=data, headers={**org["a1"].headers, "content-type": "image/png"}
    )
    assert r.status_code == 415
    assert world.client.get(url, headers=org["b1"].headers).status_code == 404
    # Only the uploader may upload.
    assert (
        world.client.put(url, content=data, headers={**org["b1"].headers, **OCTET}).status_code
        == 404
    )


def test_declared_size_over_the_limit_is_413(world: World, org: dict[str, DeviceSession]) -> None:
    body = {
        "size": world.relay.settings.max_attachment_bytes + 1,
        "sha256": b64(bytes(32)),
        "recipients": [],
    }
    r = world.client.post("/v1/attachments", json=body, headers=org["a1"].headers)
    assert r.status_code == 413 and r.json()["field"] == "body.size"


def test_cross_org_download_is_refused(world: World, org: dict[str, DeviceSession]) -> None:
    data = b"cipher"
    file_id = declare(world, org["a1"], data, ["bob"]).json()["file_id"]
    world.client.put(
        f"/v1/attachments/{file_id}", content=data, headers={**org["a1"].headers, **OCTET}
    )
    world.signup("globex", "gary")
    gary = world.login("globex", "gary", "g1", admin=True)
    world.join(gary, org["b1"])
    bob_in_globex = world.switch_org(org["b1"], "globex")
    token = {"Authorization": f"Bearer {bob_in_globex.json()['access_token']}"}
    # Same person, token scoped to another organisation: no access to acme's files.
    assert world.client.get(f"/v1/attachments/{file_id}", headers=token).status_code == 404
    assert world.client.get(f"/v1/attachments/{file_id}", headers=gary.headers).status_code == 404


@pytest.mark.cites("ADR-0159")
def test_screenshot_reports_are_hash_only_and_audited(
    world: World, org: dict[str, DeviceSession]
) -> None:
    report = {
        "peer_user_id": "bob",
        "screenshot_sha256": b64(hashlib.sha256(b"png").digest()),
        "message_ids": ["m1", "m2"],
        "captured_at": 1_800_000_000.5,
    }
    r = world.client.post(
        "/v1/screenshots", json={**report, "image": b64(b"PNG...")}, headers=org["e1"].headers
    )
    assert r.status_code == 422 and r.json()["field"] == "body.image"
    r = world.client.post("/v1/screenshots", json=report, headers=org["e1"].headers)
    assert r.status_code == 201
    audit = world.client.get(
        "/v1/orgs/acme/audit?event_type=screenshot_report", headers=org["a1"].headers
    )
    [event] = audit.json()["events"]
    assert event["actor_user_id"] == "eve" and event["subject_user_id"] == "bob"
    assert event["details"]["screenshot_sha256"] == report["screenshot_sha256"]
    assert event["details"]["report_id"] == r.json()["report_id"]
