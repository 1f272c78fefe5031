"""Identity-only key lookup: ``GET /v1/identities/{user_id}[/{device_id}]`` answers each
device's identity keys (IK, SIK) and registration id for pinning/verifying (TOFU) and claims
nothing: the bundle fetch is the only operation that spends a one-time prekey. Same
authorisation, rate-limit bucket and organisation isolation as the bundle fetch."""

from __future__ import annotations

import base64
from typing import Any

from tests.server.helpers import DeviceSession, World


def _org(world: World) -> tuple[DeviceSession, DeviceSession, DeviceSession]:
    world.signup("acme", "alice")
    alice = world.login("acme", "alice", "phone", admin=True)
    world.add_member(alice, "bob")
    return alice, world.login("acme", "bob", "b1"), world.login("acme", "bob", "b2")


def opk_count(world: World, session: DeviceSession) -> int:
    count: int = world.client.get("/v1/keys", headers=session.headers).json()["opk_count"]
    return count


def identities(world: World, viewer: DeviceSession, path: str) -> Any:
    return world.client.get(f"/v1/identities/{path}", headers=viewer.headers)


def test_identities_of_every_device_and_no_opk_claimed(world: World) -> None:
    alice, bob1, bob2 = _org(world)
    keys1 = world.publish_keys(bob1, opks=3)
    keys2 = world.publish_keys(bob2, opks=2)
    for _ in range(5):
        r = identities(world, alice, "bob")
        assert r.status_code == 200, r.text
    out = r.json()
    assert out["user_id"] == "bob"
    assert out["devices"] == [
        {
            "user_id": "bob",
            "device_id": d.device_id,
            "registration_id": d.registration_id,
            "ik": base64.b64encode(k.identity.ik.public).decode(),
            "sik": base64.b64encode(k.identity.sik.public).decode(),
        }
        for d, k in ((bob1, keys1), (bob2, keys2))
    ]
    assert (opk_count(world, bob1), opk_count(world, bob2)) == (3, 2)  # nothing claimed
    one = identities(world, alice, "bob/b2").json()["devices"]
    assert [d["device_id"] for d in one] == ["b2"]
    assert opk_count(world, bob2) == 2
    world.client.get("/v1/keys/bob/b2", headers=alice.headers)  # the bundle fetch does claim
    assert opk_count(world, bob2) == 1


def test_devices_without_keys_are_left_out_and_none_is_404(world: World) -> None:
    alice, bob1, _ = _org(world)
    r = identities(world, alice, "bob")
    assert r.status_code == 404 and r.json()["error"] == "no_keys"
    world.publish_keys(bob1)
    assert [d["device_id"] for d in identities(world, alice, "bob").json()["devices"]] == ["b1"]
    assert identities(world, alice, "bob/b2").status_code == 404


def test_identity_lookup_needs_a_token_and_stays_in_the_organisation(world: World) -> None:
    _, bob1, _ = _org(world)
    world.publish_keys(bob1)
    assert world.client.get("/v1/identities/bob").status_code == 401
    world.signup("globex", "gary")
    gary = world.login("globex", "gary", "phone", admin=True)
    r = identities(world, gary, "bob")
    assert r.status_code == 404 and r.json()["error"] == "unknown_user"
    assert identities(world, gary, "bob/b1").status_code == 404
    r = identities(world, bob1, "bad%20id")
    assert r.status_code == 422


def test_identity_lookup_shares_the_key_fetch_rate_limit(world: World) -> None:
    world.relay.settings.rate_limits["keys"] = (3, 60.0)
    alice, bob1, _ = _org(world)
    world.publish_keys(bob1)
    codes = [
        world.client.get("/v1/keys/bob", headers=alice.headers).status_code,
        identities(world, alice, "bob").status_code,
        identities(world, alice, "bob/b1").status_code,
        identities(world, alice, "bob").status_code,
    ]
    assert codes == [200, 200, 200, 429]
    assert world.client.get("/v1/keys/bob", headers=alice.headers).status_code == 429
