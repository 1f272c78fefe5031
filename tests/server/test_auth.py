"""Accounts and authentication: OTP login, TOTP for admins (ADR-0161), rotating refresh
tokens with reuse detection and an absolute bound (ADR-0163), switch-org for members only,
and the test-OTP bypass scoped to test mode + allow-listed orgs (ADR-0164)."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from semafore.server.totp import hotp, matching_step, totp
from tests.server.helpers import World


def test_rfc6238_reference_vectors() -> None:
    # RFC 6238 Appendix B (SHA-1, 8 digits) and RFC 4226 Appendix D (6 digits).
    secret = b"12345678901234567890"
    assert hotp(secret, 59 // 30, digits=8) == "94287082"
    assert hotp(secret, 1111111109 // 30, digits=8) == "07081804"
    assert hotp(secret, 20000000000 // 30, digits=8) == "65353130"
    assert [hotp(secret, i) for i in range(3)] == ["755224", "287082", "359152"]
    assert matching_step(secret, totp(secret, 1000.0), 1030.0) == 33
    assert matching_step(secret, totp(secret, 1000.0), 1100.0) is None


@pytest.mark.cites("ADR-0161")
def test_signup_then_admin_login_requires_totp(world: World) -> None:
    world.signup("acme", "alice")
    otp = world.otp("acme", "alice")
    r = world.client.post(
        "/v1/auth/login",
        json={"org_id": "acme", "user_id": "alice", "device_id": "phone", "otp": otp},
    )
    assert r.status_code == 401 and r.json()["error"] == "totp_required"
    # The OTP was consumed by that attempt: one guess per challenge.
    session = world.login("acme", "alice", "phone", admin=True)
    assert session.role == "admin"
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    assert claims["aud"] == "semafore-client" and claims["org"] == "acme"
    assert claims["sub"] == "alice" and claims["dev"] == "phone"


@pytest.mark.cites("ADR-0161")
def test_totp_code_cannot_be_replayed(world: World) -> None:
    world.signup("acme", "alice")
    code = world.totp_code("alice")
    body = {"org_id": "acme", "user_id": "alice", "device_id": "phone", "totp": code}
    first = world.client.post("/v1/auth/login", json={**body, "otp": world.otp("acme", "alice")})
    assert first.status_code == 200
    again = world.client.post("/v1/auth/login", json={**body, "otp": world.otp("acme", "alice")})
    assert again.status_code == 401 and again.json()["error"] == "invalid_totp"


def test_wrong_otp_and_unknown_accounts_look_the_same(world: World) -> None:
    world.signup("acme", "alice")
    world.otp("acme", "alice")
    for org, user in (("acme", "alice"), ("acme", "nobody"), ("nope", "alice")):
        r = world.client.post(
            "/v1/auth/login",
            json={"org_id": org, "user_id": user, "device_id": "d", "otp": "123456"},
        )
        assert r.status_code == 401 and r.json()["error"] == "invalid_credentials"
    assert (
        world.client.post("/v1/auth/otp", json={"org_id": "x", "user_id": "y"}).status_code == 202
    )


def test_expired_otp_is_refused(world: World) -> None:
    world.signup("acme", "alice")
    admin = world.login("acme", "alice", "phone", admin=True)
    world.add_member(admin, "bob")
    otp = world.otp("acme", "bob")
    world.clock.advance(301)
    r = world.client.post(
        "/v1/auth/login", json={"org_id": "acme", "user_id": "bob", "device_id": "d", "otp": otp}
    )
    assert r.status_code == 401


@pytest.mark.cites("ADR-0164")
def test_test_otp_refused_outside_test_mode(world: World) -> None:
    world.signup("qa", "alice")
    admin = world.login("qa", "alice", "phone", admin=True)
    world.add_member(admin, "bob")
    world.otp("qa", "bob")  # a real challenge is pending; "000000" is simply a wrong guess
    r = world.client.post(
        "/v1/auth/login", json={"org_id": "qa", "user_id": "bob", "device_id": "d", "otp": "000000"}
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_credentials"


@pytest.mark.cites("ADR-0164")
def test_test_otp_only_for_allow_listed_org_in_test_mode(test_mode_world: World) -> None:
    w = test_mode_world
    for org in ("qa", "prod"):
        w.signup(org, f"admin-{org}")
        admin = w.login(org, f"admin-{org}", "phone", admin=True)
        w.add_member(admin, f"bob-{org}")
    ok = w.client.post(
        "/v1/auth/login",
        json={"org_id": "qa", "user_id": "bob-qa", "device_id": "d", "otp": "000000"},
    )
    assert ok.status_code == 200
    refused = w.client.post(
        "/v1/auth/login",
        json={"org_id": "prod", "user_id": "bob-prod", "device_id": "d", "otp": "000000"},
    )
    assert refused.status_code == 401
    assert w.client.get("/v1/health").json() == {"status": "ok", "test_mode": True}


@pytest.mark.cites("ADR-0163")
def test_refresh_rotates_and_reuse_revokes_the_family(world: World) -> None:
    world.signup("acme", "alice")
    s = world.login("acme", "alice", "phone", admin=True)
    r1 = world.client.post("/v1/auth/refresh", json={"refresh_token": s.refresh_token})
    assert r1.status_code == 200
    rotated = r1.json()
    assert rotated["refresh_token"] != s.refresh_token
    # The old token again: reuse. The whole family dies, including the rotated tokens.
    reuse = world.client.post("/v1/auth/refresh", json={"refresh_token": s.refresh_token})
    assert reuse.status_code == 401 and reuse.json()["error"] == "refresh_reused"
    dead = world.client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert dead.status_code == 401 and dead.json()["error"] == "token_revoked"
    auth = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert world.client.get("/v1/devices", headers=auth).status_code == 401


@pytest.mark.cites("ADR-0163")
def test_refresh_family_has_an_absolute_lifetime(world: World) -> None:
    world.signup("acme", "alice")
    s = world.login("acme", "alice", "phone", admin=True)
    token = s.refresh_token
    for _ in range(6):  # rotate every 6 days: each token is fresh, the family is not
        world.clock.advance(6 * 86400)
        r = world.client.post("/v1/auth/refresh", json={"refresh_token": token})
        if r.status_code != 200:
            break
        token = r.json()["refresh_token"]
    assert r.status_code == 401 and r.json()["error"] == "token_expired"
    assert world.clock.now - 1_800_000_000.0 <= 36 * 86400


@pytest.mark.cites("ADR-0163")
def test_access_tokens_expire(world: World) -> None:
    world.signup("acme", "alice")
    s = world.login("acme", "alice", "phone", admin=True)
    assert world.client.get("/v1/devices", headers=s.headers).status_code == 200
    world.clock.advance(901)
    r = world.client.get("/v1/devices", headers=s.headers)
    assert r.status_code == 401 and r.json()["error"] == "token_expired"


def _forge(claims: dict[str, object], key: bytes, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize(
    "attack",
    [
        "alg_none",
        "wrong_key",
        "wrong_audience",
        "wrong_issuer",
        "refresh_as_access",
        "garbage",
        "missing_claims",
    ],
)
def test_forged_tokens_are_refused(world: World, attack: str) -> None:
    world.signup("acme", "alice")
    s = world.login("acme", "alice", "phone", admin=True)
    genuine = jwt.decode(s.access_token, options={"verify_signature": False})
    secret = world.relay.settings.jwt_secret
    if attack == "alg_none":
        header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        token = f"{header}.{_b64url(json.dumps(genuine).encode())}."
    elif attack == "wrong_key":
        token = _forge(genuine, b"k" * 32)
    elif attack == "wrong_audience":
        token = _forge({**genuine, "aud": "someone-else"}, secret)
    elif attack == "wrong_issuer":
        token = _forge({**genuine, "iss": "evil"}, secret)
    elif attack == "refresh_as_access":
        token = s.refresh_token
    elif attack == "missing_claims":
        token = _forge({k: v for k, v in genuine.items() if k != "fam"}, secret)
    else:
        token = "not.a.jwt"
    r = world.client.get("/v1/devices", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, attack
    assert r.json()["error"] in ("invalid_token", "token_expired")


def test_switch_org_only_for_members(world: World) -> None:
    world.signup("acme", "alice")
    world.signup("globex", "gary")
    acme_admin = world.login("acme", "alice", "phone", admin=True)
    globex_admin = world.login("globex", "gary", "phone", admin=True)
    world.add_member(acme_admin, "bob")
    bob = world.login("acme", "bob", "laptop")
    r = world.client.post(
        "/v1/auth/switch-org", json={"org_id": "globex", "otp": "123456"}, headers=bob.headers
    )
    assert r.status_code == 403 and r.json()["error"] == "not_a_member"
    world.join(globex_admin, bob)
    r = world.switch_org(bob, "globex")
    assert r.status_code == 200
    token = r.json()
    assert token["org_id"] == "globex" and token["role"] == "member"
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["org"] == "globex"


@pytest.mark.cites("ADR-0161")
def test_switch_org_to_an_admin_role_needs_totp(world: World) -> None:
    world.signup("acme", "alice")
    world.signup("globex", "gary")
    gary = world.login("globex", "gary", "phone", admin=True)
    alice = world.login("acme", "alice", "phone", admin=True)
    world.join(gary, alice, role="admin")
    r = world.switch_org(alice, "globex")
    assert r.status_code == 401 and r.json()["error"] == "totp_required"
    r = world.switch_org(alice, "globex", totp=world.totp_code("alice"))
    assert r.status_code == 200 and r.json()["role"] == "admin"


def test_promoted_admin_without_totp_gets_member_rights_until_enrolled(world: World) -> None:
    world.signup("acme", "alice")
    admin = world.login("acme", "alice", "phone", admin=True)
    world.add_member(admin, "bob", role="admin")
    bob = world.login("acme", "bob", "laptop")
    assert bob.role == "member"
    early_refresh = bob.refresh_token
    assert world.client.get("/v1/orgs/acme/members", headers=bob.headers).status_code == 403
    enrol = {"otp": world.otp("acme", "bob")}
    r = world.client.post("/v1/auth/totp", json=enrol, headers=bob.headers)
    assert r.status_code == 201
    secret = r.json()["totp_secret"]
    world.totp_secrets["bob"] = base64.b32decode(secret + "=" * (-len(secret) % 8))
    enrol = {"otp": world.otp("acme", "bob")}
    assert world.client.post("/v1/auth/totp", json=enrol, headers=bob.headers).status_code == 409
    # Enrolling proves nothing: refreshing the member-role family must not yield admin.
    r = world.client.post("/v1/auth/refresh", json={"refresh_token": early_refresh})
    assert r.status_code == 200 and r.json()["role"] == "member"
    bob = world.login("acme", "bob", "laptop", admin=True)
    assert bob.role == "admin"
    assert world.client.get("/v1/orgs/acme/members", headers=bob.headers).status_code == 200


def test_logout_and_device_removal_revoke_sessions(world: World) -> None:
    world.signup("acme", "alice")
    phone = world.login("acme", "alice", "phone", admin=True)
    laptop = world.login("acme", "alice", "laptop", admin=True)
    assert world.client.post("/v1/auth/logout", headers=laptop.headers).status_code == 204
    assert world.client.get("/v1/devices", headers=laptop.headers).status_code == 401
    laptop = world.login("acme", "alice", "laptop", admin=True)
    devices = world.client.get("/v1/devices", headers=phone.headers).json()["devices"]
    assert [d["device_id"] for d in devices] == ["laptop", "phone"]
    assert world.client.delete("/v1/devices/laptop", headers=phone.headers).status_code == 204
    assert world.client.get("/v1/devices", headers=laptop.headers).status_code == 401
    r = world.client.post("/v1/auth/refresh", json={"refresh_token": laptop.refresh_token})
    assert r.status_code == 401
    assert world.client.delete("/v1/devices/laptop", headers=phone.headers).status_code == 404


def test_demoted_admin_loses_admin_api_at_once(world: World) -> None:
    world.signup("acme", "alice")
    alice = world.login("acme", "alice", "phone", admin=True)
    world.add_member(alice, "carol", role="admin")
    r = world.client.put(
        "/v1/orgs/acme/members/alice", json={"role": "member"}, headers=alice.headers
    )
    assert r.status_code == 200
    assert world.client.get("/v1/orgs/acme/members", headers=alice.headers).status_code == 403


def test_last_admin_cannot_leave(world: World) -> None:
    world.signup("acme", "alice")
    alice = world.login("acme", "alice", "phone", admin=True)
    r = world.client.put(
        "/v1/orgs/acme/members/alice", json={"role": "member"}, headers=alice.headers
    )
    assert r.status_code == 409 and r.json()["error"] == "last_admin"
    assert (
        world.client.delete("/v1/orgs/acme/members/alice", headers=alice.headers).status_code == 409
    )


def test_signup_conflicts_and_validation_name_the_field(world: World) -> None:
    world.signup("acme", "alice")
    r = world.client.post("/v1/orgs", json={"org_id": "acme", "name": "x", "admin_user_id": "z"})
    assert r.status_code == 409 and r.json()["field"] == "body.org_id"
    r = world.client.post("/v1/orgs", json={"org_id": "a b", "name": "x", "admin_user_id": "z"})
    assert r.status_code == 422 and r.json()["field"] == "body.org_id"
    r = world.client.post(
        "/v1/orgs", json={"org_id": "o", "name": "x", "admin_user_id": "z", "plan": "free"}
    )
    assert r.status_code == 422 and r.json()["field"] == "body.plan"
    r = world.client.post(
        "/v1/orgs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"] == "invalid_json"
