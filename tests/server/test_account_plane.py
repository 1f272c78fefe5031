"""Issue 13, items 1–2: organisation isolation and a login strangers cannot break, attacked
through a real loopback socket (uvicorn), from two client addresses.

- F-1: the test OTP logs in only members of an allow-listed test org who belong to no other
  org (ADR-0164); switch-org and TOTP enrolment need proof valid for the target org
  (ADR-0161).
- F-2: a user of one org joins another only by accepting an invitation from their own
  session; every membership change is audited in every org the user belongs to.
- F-3/F-4: login throttles and codes are bound to (org, user, client address); a code dies
  after ``otp_max_failures`` wrong guesses and the guessing address backs off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from semafore.server.login_guard import backoff, codes_within, guess_chance
from semafore.server.sealing import MAGIC, unseal
from semafore.server.settings import Settings
from tests.server.socket_world import STRANGER, VICTIM, Session, SocketWorld, socket_world

TEST_OTP = "000000"


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.fixture
def world() -> Iterator[SocketWorld]:
    """acme is a real org (alice admin, bob member); qa is an allow-listed test org."""
    with socket_world(test_mode=True, test_orgs=frozenset({"qa"})) as w:
        w.signup("acme", "alice")
        alice = w.login("acme", "alice", "a1", admin=True)
        assert w.put_member(alice, "bob").status_code == 200
        yield w


def acme_admin(world: SocketWorld) -> Session:
    return world.login("acme", "alice", "a-console", admin=True)


# --- F-1: the test OTP stays inside its test org ---------------------------------------------


def test_a_test_org_cannot_pull_in_a_real_orgs_user_and_log_them_in(world: SocketWorld) -> None:
    world.signup("qa", "mallory", address=STRANGER)
    mallory = world.login("qa", "mallory", "m1", address=STRANGER, admin=True, otp=TEST_OTP)
    assert mallory.role == "admin"  # the test OTP works for a test org's own user
    r = world.put_member(mallory, "bob")
    assert r.status_code == 202 and r.json()["status"] == "invited"  # not a member
    for org in ("qa", "acme"):
        r = world.login_request(org, "bob", "evil", TEST_OTP, address=STRANGER)
        assert r.status_code == 401 and r.json()["error"] == "invalid_credentials", org


def test_the_test_otp_stops_working_for_a_user_who_also_joined_a_real_org(
    world: SocketWorld,
) -> None:
    world.signup("qa", "mallory")
    mallory = world.login("qa", "mallory", "m1", admin=True, otp=TEST_OTP)
    bob = world.login("acme", "bob", "b1")
    assert world.put_member(mallory, "bob").status_code == 202
    assert world.http().post("/v1/invitations/qa", headers=bob.headers).status_code == 200
    r = world.login_request("qa", "bob", "b2", TEST_OTP)
    assert r.status_code == 401  # ADR-0164: bob belongs to another org too
    assert world.login("qa", "bob", "b2").org_id == "qa"  # a real code still works


def test_switch_org_needs_a_code_for_the_target_org(world: SocketWorld) -> None:
    world.signup("qa", "mallory")
    mallory = world.login("qa", "mallory", "m1", admin=True, otp=TEST_OTP)
    bob = world.login("acme", "bob", "b1")
    assert world.put_member(mallory, "bob").status_code == 202
    assert world.http().post("/v1/invitations/qa", headers=bob.headers).status_code == 200
    http = world.http()
    for otp in (TEST_OTP, "123456"):
        r = http.post("/v1/auth/switch-org", json={"org_id": "qa", "otp": otp},
                      headers=bob.headers)
        assert r.status_code == 401 and r.json()["error"] == "invalid_credentials"
    code = world.otp("qa", "bob")
    r = http.post("/v1/auth/switch-org", json={"org_id": "qa", "otp": code}, headers=bob.headers)
    assert r.status_code == 200 and r.json()["org_id"] == "qa"


def test_totp_enrolment_needs_a_fresh_code_for_an_admin_and_is_audited(
    world: SocketWorld,
) -> None:
    alice = acme_admin(world)
    assert world.put_member(alice, "carol", role="admin").status_code == 200
    assert world.put_member(alice, "dave").status_code == 200
    carol = world.login("acme", "carol", "c1")
    dave = world.login("acme", "dave", "d1")
    assert carol.role == "member"  # admin rights wait for TOTP (ADR-0161)
    http = world.http()
    r = http.post("/v1/auth/totp", json={"otp": world.otp("acme", "dave")}, headers=dave.headers)
    assert r.status_code == 403  # a member has no TOTP to enrol
    r = http.post("/v1/auth/totp", json={"otp": "123456"}, headers=carol.headers)
    assert r.status_code == 401  # a session alone (e.g. stolen) cannot plant a TOTP
    r = http.post("/v1/auth/totp", json={"otp": world.otp("acme", "carol")},
                  headers=carol.headers)
    assert r.status_code == 201
    enrolled = [e for e in world.audit(alice) if e["event_type"] == "totp_enrolled"]
    assert [(e["subject_user_id"], e["details"]) for e in enrolled] == [
        ("carol", {"in_org": "acme"})
    ]


def test_totp_seeds_are_sealed_at_rest_under_the_settings_key(world: SocketWorld) -> None:
    relay = world.relay
    stored = relay.stores.accounts.totp["alice"]  # type: ignore[attr-defined]
    seed = world.totp_secrets["alice"]
    assert stored.secret.startswith(MAGIC) and seed not in stored.secret
    assert unseal(relay.settings.totp_key, "alice", stored.secret) == seed
    with pytest.raises(Exception, match="does not open"):
        unseal(relay.settings.totp_key, "bob", stored.secret)  # bound to its user
    dump = asyncio.run(relay.stores.dump())  # what a reader of the store sees
    assert not [where for where, data in dump if seed in data]


# --- F-2: membership needs the user's consent ------------------------------------------------


def test_an_org_cannot_enrol_list_drain_or_message_another_orgs_user(
    world: SocketWorld,
) -> None:
    world.signup("globex", "gary", address=STRANGER)
    gary = world.login("globex", "gary", "g1", address=STRANGER, admin=True)
    bob = world.login("acme", "bob", "b1")
    r = world.put_member(gary, "bob")
    assert r.status_code == 202 and r.json() == {
        "user_id": "bob", "role": "member", "joined_at": None, "status": "invited",
    }
    http = world.http(STRANGER)
    members = http.get("/v1/orgs/globex/members", headers=gary.headers).json()["members"]
    assert [x["user_id"] for x in members] == ["gary"]
    for path in ("/v1/keys/bob", "/v1/keys/bob/identities"):
        assert http.get(path, headers=gary.headers).status_code == 404, path
    send = {"message_id": "m1", "envelopes": [
        {"device_id": "b1", "registration_id": 1, "body": "U01YMQ=="}]}
    assert http.put("/v1/messages/bob", json=send, headers=gary.headers).status_code == 404
    assert http.delete("/v1/orgs/globex/members/bob", headers=gary.headers).status_code == 404
    # bob's own session is untouched, and he can see and decline the invitation
    pending = world.http().get("/v1/invitations", headers=bob.headers).json()["invitations"]
    assert [(i["org_id"], i["invited_by"]) for i in pending] == [("globex", "gary")]
    assert world.http().delete("/v1/invitations/globex", headers=bob.headers).status_code == 204
    assert world.http().post("/v1/invitations/globex", headers=bob.headers).status_code == 404


def test_membership_changes_are_audited_in_every_org_of_the_user(world: SocketWorld) -> None:
    alice = acme_admin(world)
    world.signup("globex", "gary")
    gary = world.login("globex", "gary", "g1", admin=True)
    bob = world.login("acme", "bob", "b1")
    assert world.put_member(gary, "bob").status_code == 202
    assert world.http().post("/v1/invitations/globex", headers=bob.headers).status_code == 200
    assert world.put_member(gary, "bob", role="admin").status_code == 200
    r = world.http().delete("/v1/orgs/globex/members/bob", headers=gary.headers)
    assert r.status_code == 204
    seen_in_acme = [
        (e["details"]["action"], e["details"].get("in_org"))
        for e in world.audit(alice)
        if e["event_type"] == "membership_change" and e["subject_user_id"] == "bob"
    ]
    assert seen_in_acme == [
        ("added", None), ("joined", "globex"), ("role_changed", "globex"), ("removed", "globex"),
    ]
    # globex ended bob's globex sessions only: his acme session still works
    assert world.http().get("/v1/devices", headers=bob.headers).status_code == 200


def test_a_user_id_no_org_holds_any_more_starts_empty(world: SocketWorld) -> None:
    alice = acme_admin(world)
    bob = world.login("acme", "bob", "b1")
    r = world.http().delete("/v1/orgs/acme/members/bob", headers=alice.headers)
    assert r.status_code == 204
    assert world.http().get("/v1/devices", headers=bob.headers).status_code == 401
    world.signup("globex", "gary")
    gary = world.login("globex", "gary", "g1", admin=True)
    r = world.put_member(gary, "bob")
    assert r.status_code == 200 and r.json()["status"] == "member"
    fresh = world.login("globex", "bob", "x1")
    devices = world.http().get("/v1/devices", headers=fresh.headers).json()["devices"]
    assert [d["device_id"] for d in devices] == ["x1"]  # not the former member's b1


# --- F-3 / F-4: a login strangers cannot break -----------------------------------------------


def test_strangers_neither_lock_out_nor_burn_a_victims_code(world: SocketWorld) -> None:
    code = world.otp("acme", "bob", VICTIM)
    stranger = world.http(STRANGER)
    statuses = set()
    for i in range(40):
        org = "acme" if i % 2 else "no-such-org"
        statuses.add(stranger.post("/v1/auth/otp", json={"org_id": org, "user_id": "bob"})
                     .status_code)
        body = {"org_id": "acme", "user_id": "bob", "device_id": "evil", "otp": wrong(code)}
        statuses.add(stranger.post("/v1/auth/login", json=body).status_code)
    assert 429 in statuses  # the stranger is throttled or backed off ...
    session = world.login("acme", "bob", "b1", otp=code)  # ... the victim is not
    assert session.role == "member"


def test_a_code_dies_after_k_wrong_guesses_and_the_address_backs_off(
    world: SocketWorld,
) -> None:
    k = world.relay.settings.otp_max_failures
    for strikes, wait in ((1, 60), (2, 120)):
        code = world.otp("acme", "bob", STRANGER)
        for _ in range(k):
            r = world.login_request("acme", "bob", "evil", wrong(code), address=STRANGER)
            assert r.status_code == 401
        r = world.login_request("acme", "bob", "evil", code, address=STRANGER)
        assert r.status_code == 429 and r.json()["error"] == "otp_backoff"
        assert r.headers["Retry-After"] == str(wait), strikes
        r = world.http(STRANGER).post("/v1/auth/otp", json={"org_id": "acme", "user_id": "bob"})
        assert r.status_code == 429  # no new code either while backing off
        world.clock.advance(wait)
    assert world.login("acme", "bob", "b1", address=VICTIM).role == "member"


def test_non_members_back_off_exactly_like_members(world: SocketWorld) -> None:
    """A decoy challenge for a non-member: the backoff cannot tell who exists."""
    answers = {}
    for user in ("bob", "nobody"):
        stranger = world.http(STRANGER)
        assert stranger.post("/v1/auth/otp", json={"org_id": "acme", "user_id": user}
                             ).status_code == 202
        codes = []
        for guess in ("111111", "222222", "333333", "444444"):
            body = {"org_id": "acme", "user_id": user, "device_id": "d", "otp": guess}
            r = stranger.post("/v1/auth/login", json=body)
            codes.append((r.status_code, r.json()["error"]))
        answers[user] = codes
    assert answers["bob"] == answers["nobody"]
    assert answers["bob"][-1] == (429, "otp_backoff")


def test_the_chance_of_guessing_a_code_within_30_days_is_below_a_thousandth() -> None:
    settings = Settings()
    assert backoff(settings, 1) == 60 and backoff(settings, 3) == 240
    assert backoff(settings, 40) == settings.otp_backoff_cap
    assert codes_within(settings, 30 * 86400) == 187
    assert guess_chance(settings) == pytest.approx(1 - (1 - 3e-6) ** 187)
    assert guess_chance(settings) < 1e-3
    # the bound is computed from the settings: a 1 h cap would not meet the aim
    assert guess_chance(Settings(otp_backoff_cap=3600.0)) > 1e-3
