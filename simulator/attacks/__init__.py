"""Account-plane threat attacks (issue 13 item 6): one registry, one function per attack.

A scenario declares ``attack: {kind: NAME, as: LABEL, actor: USER, victim: USER, params:
{...}}`` (docs/threats.md) and asserts ``attack_failed: {attack: LABEL}``. :data:`ATTACKS`
is the one list of attacks: the loader validates names and parameters against it, the
executor runs them through :func:`run_attack`, and :func:`judge` turns an
:class:`~simulator.attacks.base.Outcome` into the assertion's verdict. Every attack acts
only through the relay's public API at ``Arena.url`` (:mod:`simulator.attacks.wire`), so a
scenario replays against an external relay by URL as well as the in-process one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from simulator.attacks.accounts import (
    cross_org_enrolment,
    otp_guessing,
    stranger_lockout,
    test_otp_escape,
)
from simulator.attacks.base import (
    Arena,
    AttackError,
    AttackSpec,
    Outcome,
    Param,
    ParamValue,
    Request,
)
from simulator.attacks.resources import opk_drain, queue_flood, slowloris, socket_amplification

__all__ = [
    "ATTACKS",
    "Arena",
    "AttackError",
    "AttackSpec",
    "Outcome",
    "Param",
    "Request",
    "judge",
    "request_for",
    "run_attack",
]

ATTACKS: dict[str, AttackSpec] = {
    spec.name: spec
    for spec in (
        AttackSpec(
            "test_otp_escape", "F-1",
            "log in as a real org's user with the fixed test OTP, through an unclaimed "
            "allow-listed test org (ADR-0164)",
            needs_actor=False, needs_victim=True,
            params={"test_org": Param(str, "sandbox", doc="an allow-listed test org id "
                                      "nobody has claimed (infrastructure.relay.test_orgs)")},
            run=test_otp_escape, needs_non_test_victim=True,
        ),
        AttackSpec(
            "cross_org_enrolment", "F-2",
            "as another org's admin, add the victim, then list, drain and message them",
            needs_actor=False, needs_victim=True, params={}, run=cross_org_enrolment,
        ),
        AttackSpec(
            "stranger_lockout", "F-3",
            "from another address, flood code requests and wrong guesses naming the victim; "
            "the victim must still log in with the code asked for before",
            needs_actor=False, needs_victim=True,
            params={"requests": Param(int, 40, 1, 200, "requests naming the victim"),
                    "ghost_org": Param(str, "ghost", doc="a made-up org id (tagged per run)")},
            run=stranger_lockout, needs_limits=True,
        ),
        AttackSpec(
            "otp_guessing", "F-4",
            "ask for the victim's code, guess wrong, then try the right one (the OTP sink "
            "stands in for luck): it must be dead",
            needs_actor=False, needs_victim=True,
            params={"guesses": Param(int, 10, 1, 25, "wrong guesses before the right code")},
            run=otp_guessing, needs_non_test_victim=True,
        ),
        AttackSpec(
            "socket_amplification", "F-5",
            "open many WebSockets with one device token and read none",
            needs_actor=False, needs_victim=False,
            params={"sockets": Param(int, 12, 2, 64, "sockets opened on one device"),
                    "max_open": Param(int, 4, 1, 64, "the per-device cap asserted "
                                      "(Settings.max_sockets_per_device)"),
                    "settle_s": Param(float, 0.5, 0.0, 5.0, "wait before counting")},
            run=socket_amplification,
        ),
        AttackSpec(
            "queue_flood", "F-6",
            "as a member, send junk into one user's queue as fast as the relay takes it",
            needs_actor=True, needs_victim=True,
            params={"sends": Param(int, 150, 1, 1000, "sends attempted"),
                    "size": Param(int, 512, 64, 65536, "bytes per envelope"),
                    "max_accepted": Param(int, 120, 1, 1000, "the per-sender queue quota "
                                          "asserted (rate_limits.queue_sender)")},
            run=queue_flood, needs_limits=True,
        ),
        AttackSpec(
            "opk_drain", "F-9",
            "as a member, fetch one user's bundles over and over, claiming their one-time "
            "prekeys",
            needs_actor=True, needs_victim=True,
            params={"fetches": Param(int, 30, 1, 200, "claiming bundle fetches"),
                    "max_claims": Param(int, 6, 1, 200, "OPK claims per device asserted "
                                        "(rate_limits.opk_pair)")},
            run=opk_drain, needs_limits=True,
        ),
        AttackSpec(
            "slowloris", "F-7",
            "hold connections that trickle a request head, while a legitimate client asks",
            needs_actor=False, needs_victim=False,
            params={"connections": Param(int, 40, 1, 200, "trickling connections"),
                    "hold_s": Param(float, 5.0, 0.5, 60.0, "how long to trickle (longer than "
                                    "the relay's header timeout)"),
                    "trickle_s": Param(float, 0.5, 0.05, 10.0, "seconds between lines")},
            run=slowloris,
        ),
    )
}
"""Every attack a scenario can name."""


def request_for(name: str, actor: str | None, victim: str | None,
                params: Mapping[str, ParamValue]) -> Request:
    """The attack's request with defaults filled in (the loader checked names and values)."""
    spec = ATTACKS[name]
    filled = {key: params.get(key, p.default) for key, p in spec.params.items()}
    return Request(actor, victim, filled)


async def run_attack(name: str, arena: Arena, request: Request) -> Outcome:
    """Run one attack within ``arena.deadline_s`` (a slower one is cut off: what it did so
    far is lost, and the run reports the timeout)."""
    return await asyncio.wait_for(ATTACKS[name].run(arena, request), arena.deadline_s)


def judge(outcome: Outcome) -> tuple[bool | None, str]:
    """``(True, why)`` when the attack failed with evidence (attempts > 0, nothing gained,
    every legitimate check passed); ``(False, why)`` when it gained anything or a legitimate
    user stopped working; ``(None, why)`` when it made no attempt or its run shows nothing
    either way (``Outcome.undecided``): inconclusive."""
    broken = [check for check, ok in outcome.legit.items() if not ok]
    if outcome.succeeded or broken:
        gained = "; ".join(outcome.gains + [f"legit check failed: {c}" for c in broken])
        return False, f"the attack succeeded after {outcome.attempts} attempt(s): {gained}"
    if outcome.attempts == 0:
        return None, "the attack made no attempt: nothing shows the relay resisting it"
    if outcome.undecided is not None:
        return None, f"the attack shows nothing either way: {outcome.undecided}"
    legit = f"; {len(outcome.legit)} legitimate check(s) passed" if outcome.legit else ""
    return True, f"the attack failed after {outcome.attempts} attempt(s), gaining nothing{legit}"
