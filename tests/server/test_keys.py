"""Key directory (SPEC §1): publish, verify SPK signatures, claim one OPK per device per
fetch atomically, count, rotate; cross-organisation fetches refused."""

from __future__ import annotations

import asyncio
import base64
import threading
from typing import Any

import httpx
import pytest

from semafore.deploy.inprocess import serve_in_thread
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import DeviceKeys, PreKeyBundle, PublicOneTimePrekey, PublicSignedPrekey
from semafore.server.settings import Settings, unlimited_rate_limits
from semafore.storage.ports import Stores
from tests.server.helpers import World, b64, key_upload


def _bundle(d: dict[str, Any]) -> PreKeyBundle:
    raw = base64.b64decode
    opk = d["opk"]
    return PreKeyBundle(
        d["user_id"],
        d["device_id"],
        raw(d["ik"]),
        raw(d["sik"]),
        PublicSignedPrekey(d["spk"]["key_id"], raw(d["spk"]["pub"]), raw(d["spk"]["sig"])),
        PublicOneTimePrekey(opk["key_id"], raw(opk["pub"])) if opk else None,
    )


def _org(world: World) -> tuple[Any, Any, Any]:
    world.signup("acme", "alice")
    alice = world.login("acme", "alice", "phone", admin=True)
    world.add_member(alice, "bob")
    bob1 = world.login("acme", "bob", "b1")
    bob2 = world.login("acme", "bob", "b2")
    return alice, bob1, bob2


@pytest.mark.cites("SPEC §1 r4")
def test_fetch_returns_every_device_bundle_claiming_one_opk_each(world: World) -> None:
    alice, bob1, bob2 = _org(world)
    keys1 = world.publish_keys(bob1, opks=2)
    world.publish_keys(bob2, opks=1)
    r = world.client.get("/v1/keys/bob", headers=alice.headers)
    assert r.status_code == 200
    devices = r.json()["devices"]
    assert [d["device_id"] for d in devices] == ["b1", "b2"]
    first = _bundle(devices[0])
    first.verify()  # the signature the relay hands out is the device's own
    assert first.ik == keys1.identity.ik.public
    assert first.opk is not None and first.opk.key_id == "opk-0"
    assert devices[0]["registration_id"] == bob1.registration_id
    again = world.client.get("/v1/keys/bob", headers=alice.headers).json()["devices"]
    assert again[0]["opk"]["key_id"] == "opk-1" and again[1]["opk"] is None
    third = world.client.get("/v1/keys/bob/b1", headers=alice.headers).json()["devices"]
    assert [d["device_id"] for d in third] == ["b1"] and third[0]["opk"] is None
    count = world.client.get("/v1/keys", headers=bob1.headers).json()
    assert count == {"opk_count": 0, "spk_key_id": "spk-0"}


@pytest.mark.cites("ADR-0053")
def test_bad_spk_signature_is_rejected_and_nothing_stored(world: World) -> None:
    _, bob1, _ = _org(world)
    keys = DeviceKeys.generate(SeededEntropy("x"), opk_count=3)
    body = key_upload(keys)
    sig = bytearray(base64.b64decode(body["spk"]["sig"]))
    sig[0] ^= 1
    body["spk"]["sig"] = b64(bytes(sig))
    r = world.client.put("/v1/keys", json=body, headers=bob1.headers)
    assert r.status_code == 422
    assert r.json() == {
        "error": "invalid_signature",
        "field": "body.spk.sig",
        "detail": "SPK signature does not verify",
    }
    assert world.client.get("/v1/keys", headers=bob1.headers).json()["opk_count"] == 0
    # Signature valid for another identity key (the relay-pairing attack SPEC §1 blocks).
    other = DeviceKeys.generate(SeededEntropy("y"))
    body = key_upload(keys)
    body["ik"] = b64(other.identity.ik.public)
    r = world.client.put("/v1/keys", json=body, headers=bob1.headers)
    assert r.status_code == 422 and r.json()["error"] == "invalid_signature"


def test_malformed_keys_name_the_field(world: World) -> None:
    _, bob1, _ = _org(world)
    body = key_upload(DeviceKeys.generate(SeededEntropy("z"), opk_count=1))
    cases = {
        "body.ik": {**body, "ik": b64(b"short")},
        "body.sik": {**body, "sik": "!!!notbase64!!!"},
        "body.spk.key_id": {**body, "spk": {**body["spk"], "key_id": "bad\x07id"}},
        "body.opks.0.pub": {**body, "opks": [{"key_id": "k", "pub": b64(bytes(33))}]},
        "body.extra": {**body, "extra": 1},
    }
    for field, bad in cases.items():
        r = world.client.put("/v1/keys", json=bad, headers=bob1.headers)
        assert r.status_code == 422, field
        assert r.json()["field"] == field
    dup = {**body, "opks": [body["opks"][0], body["opks"][0]]}
    r = world.client.put("/v1/keys", json=dup, headers=bob1.headers)
    assert r.status_code == 422 and r.json()["field"] == "body.opks.1.key_id"
    assert world.client.get("/v1/keys", headers=bob1.headers).json()["spk_key_id"] is None


def test_identity_keys_of_a_device_never_change(world: World) -> None:
    _, bob1, _ = _org(world)
    world.publish_keys(bob1)
    other = DeviceKeys.generate(SeededEntropy("other"))
    r = world.client.put("/v1/keys", json=key_upload(other), headers=bob1.headers)
    assert r.status_code == 409 and r.json()["error"] == "identity_mismatch"


def test_opk_replenish_and_spk_rotation(world: World) -> None:
    alice, bob1, _ = _org(world)
    keys = world.publish_keys(bob1, opks=1)
    new = keys.generate_opks(SeededEntropy("more"), 3)
    body = {"opks": [{"key_id": o.key_id, "pub": b64(o.keypair.public)} for o in new]}
    r = world.client.post("/v1/keys/opks", json=body, headers=bob1.headers)
    assert r.status_code == 200 and r.json()["opk_count"] == 4
    r = world.client.post("/v1/keys/opks", json=body, headers=bob1.headers)
    assert r.status_code == 409 and r.json()["error"] == "duplicate_key_id"
    assert world.client.get("/v1/keys", headers=bob1.headers).json()["opk_count"] == 4
    spk = keys.rotate_spk(SeededEntropy("rot"))
    rot = {"key_id": spk.key_id, "pub": b64(spk.keypair.public), "sig": b64(spk.signature)}
    r = world.client.put("/v1/keys/spk", json=rot, headers=bob1.headers)
    assert r.status_code == 200 and r.json()["spk_key_id"] == "spk-1"
    fetched = world.client.get("/v1/keys/bob/b1", headers=alice.headers).json()["devices"][0]
    _bundle(fetched).verify()
    assert fetched["spk"]["key_id"] == "spk-1"
    forged = {**rot, "key_id": "spk-9"}  # relabelled: the signature binds the key id
    r = world.client.put("/v1/keys/spk", json=forged, headers=bob1.headers)
    assert r.status_code == 422 and r.json()["field"] == "body.sig"


def test_cross_org_key_fetch_is_refused(world: World) -> None:
    _, bob1, _ = _org(world)
    world.publish_keys(bob1)
    world.signup("globex", "gary")
    gary = world.login("globex", "gary", "phone", admin=True)
    r = world.client.get("/v1/keys/bob", headers=gary.headers)
    assert r.status_code == 404 and r.json()["error"] == "unknown_user"
    assert world.client.get("/v1/keys/nobody", headers=gary.headers).status_code == 404


def test_key_fetch_is_rate_limited_per_account(world: World) -> None:
    world.relay.settings.rate_limits["keys"] = (3, 60.0)
    alice, bob1, _ = _org(world)
    world.publish_keys(bob1)
    codes = [world.client.get("/v1/keys/bob", headers=alice.headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = world.client.get("/v1/keys/bob", headers=alice.headers)
    assert 1 <= int(r.headers["Retry-After"]) <= 60 and r.json()["error"] == "rate_limited"


@pytest.mark.cites("SPEC §1 r4")
def test_concurrent_fetches_over_real_sockets_never_share_an_opk(any_stores: Stores) -> None:
    settings = Settings(  # 50 claims of one target: far beyond the OPK quotas (F-9)
        test_mode=True, test_orgs=frozenset({"qa"}), retention_interval=0,
        rate_limits=unlimited_rate_limits(),
    )
    with serve_in_thread(settings, any_stores) as server:
        with httpx.Client(base_url=server.url) as http:
            r = http.post("/v1/orgs", json={"org_id": "qa", "name": "QA", "admin_user_id": "adm"})
            assert r.status_code == 201
            secret = r.json()["totp_secret"]
            from semafore.server.totp import totp

            raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
            login = {"org_id": "qa", "user_id": "adm", "device_id": "d", "otp": "000000"}
            admin = http.post("/v1/auth/login", json={**login, "totp": totp(raw, settings.clock())})
            assert admin.status_code == 200, admin.text
            auth = {"Authorization": f"Bearer {admin.json()['access_token']}"}
            assert http.put(
                "/v1/orgs/qa/members/bob", json={"role": "member"}, headers=auth
            ).is_success
            bob = http.post("/v1/auth/login", json={**login, "user_id": "bob", "device_id": "b1"})
            bob_auth = {"Authorization": f"Bearer {bob.json()['access_token']}"}
            keys = DeviceKeys.generate(SeededEntropy("bob"), opk_count=40)
            assert http.put("/v1/keys", json=key_upload(keys), headers=bob_auth).is_success
        claimed: list[str | None] = []
        lock = threading.Lock()

        def fetcher() -> None:
            with httpx.Client(base_url=server.url) as mine:
                for _ in range(25):
                    r = mine.get("/v1/keys/bob", headers=auth)
                    assert r.status_code == 200, r.text
                    opk = r.json()["devices"][0]["opk"]
                    with lock:
                        claimed.append(opk["key_id"] if opk else None)

        threads = [threading.Thread(target=fetcher) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    got = [c for c in claimed if c is not None]
    assert len(claimed) == 50 and len(got) == 40
    assert len(set(got)) == 40
    assert sorted(got) == sorted(keys.opks)
    asyncio.run(any_stores.close())
