"""Step kind ``attack``: An attacker acting only through the relay's public API (simulator.attacks;
docs/threats.md): kind names the attack, as labels it for attack_failed, actor is the cast user
it acts as (insiders), victim the cast user it targets, params its bounded knobs.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.attacks import ATTACKS
from simulator.scenario.model import Attack, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "as"],
    "description": "An attacker acting only through the relay's public API "
    "(simulator.attacks; docs/threats.md): kind names the attack, as labels it "
    "for attack_failed, actor is the cast user it acts as (insiders), victim "
    "the cast user it targets, params its bounded knobs.",
    "properties": {
        "kind": {"type": "string", "pattern": "^[a-z0-9_]+$"},
        "as": {"$ref": "#/$defs/id"},
        "actor": {"$ref": "#/$defs/id"},
        "victim": {"$ref": "#/$defs/id"},
        "params": {
            "type": "object",
            "additionalProperties": {"type": ["integer", "number", "string"]},
        },
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    """An attack step, checked against its registry entry (simulator.attacks) and the
    relay it needs: a scenario whose attack could not fail on its relay is refused."""
    spec = ATTACKS.get(b["kind"])
    if spec is None:
        raise builder.ctx.error(
            (*p, "kind"), f"unknown attack {b['kind']!r} (known: {sorted(ATTACKS)})"
        )
    name = b["as"]
    if name in builder.attacks:
        raise builder.ctx.error((*p, "as"), f"attack {name!r} already exists")
    who: dict[str, str | None] = {}
    for role, needed in (("actor", spec.needs_actor), ("victim", spec.needs_victim)):
        if needed and role not in b:
            raise builder.ctx.error(p, f"attack {spec.name} needs a cast user as {role!r}")
        if not needed and role in b:
            raise builder.ctx.error((*p, role), f"attack {spec.name} takes no {role!r}")
        who[role] = builder.user_ids(b[role], (*p, role))[0] if role in b else None
    actor, victim = who["actor"], who["victim"]
    if actor is not None and victim is not None:
        if builder.users[actor].org != builder.users[victim].org:
            raise builder.ctx.error(
                (*p, "victim"),
                f"{actor} attacks from inside the victim's organisation: {victim} is in another",
            )
        if actor == victim:
            raise builder.ctx.error((*p, "victim"), "an attacker does not attack itself")
    params: dict[str, int | float | str] = {}
    for key, value in b.get("params", {}).items():
        param = spec.params.get(key)
        if param is None:
            raise builder.ctx.error(
                (*p, "params", key),
                f"unknown parameter {key!r} of {spec.name} (known: {sorted(spec.params)})",
            )
        problem = param.check(value)
        if problem is not None:
            raise builder.ctx.error((*p, "params", key), problem)
        params[key] = value
    _attack_needs(builder, spec.name, p, victim, params)
    step = Attack(
        **c,
        attack=spec.name,
        name=name,
        actor=actor,
        victim=victim,
        params=tuple(sorted(params.items())),
    )
    builder.attacks[name] = step
    return step


def _attack_needs(
    builder: Builder, kind: str, p: PathT, victim: str | None, params: dict[str, int | float | str]
) -> None:
    """What the attack needs from the relay configuration (``infrastructure.relay``)."""
    spec = ATTACKS[kind]
    test_orgs = builder.relay.test_orgs_for(tuple(builder.orgs))
    if spec.needs_limits and builder.relay.rate_limits != "default":
        raise builder.ctx.error(
            p,
            f"attack {kind} tests the relay's rate limits and "
            "quotas: set infrastructure.relay.rate_limits: default",
        )
    if spec.needs_non_test_victim and victim is not None and builder.users[victim].org in test_orgs:
        raise builder.ctx.error(
            (*p, "victim"),
            f"{victim}'s org is on the test-OTP allow-list "
            "(infrastructure.relay.test_orgs): leave it off",
        )
    if kind == "test_otp_escape":
        org = str(params.get("test_org", spec.params["test_org"].default))
        if org not in test_orgs or org in builder.orgs:
            raise builder.ctx.error(
                (*p, "params", "test_org"),
                f"{org!r} must be on "
                "infrastructure.relay.test_orgs and not an organisation "
                "of the cast (the attacker claims it)",
            )
    for count, bound in (
        ("sends", "max_accepted"),
        ("fetches", "max_claims"),
        ("sockets", "max_open"),
    ):
        if count in spec.params and bound in spec.params:
            n, most = (params.get(k, spec.params[k].default) for k in (count, bound))
            if float(n) <= float(most):
                raise builder.ctx.error(
                    (*p, "params", count),
                    f"{count} {n} never exceeds {bound} {most}: the attack could not fail",
                )
    hold = params.get("hold_s", spec.params["hold_s"].default) if kind == "slowloris" else 0
    limit = builder.relay.header_timeout_s
    if kind == "slowloris" and (limit is None or float(hold) <= limit):
        raise builder.ctx.error(
            (*p, "params", "hold_s"),
            "hold_s must be longer than infrastructure.relay.header_timeout_s (set it)",
        )


async def run(ex: Execution, step: Attack) -> None:
    await ex.attack(step)


register(
    StepKind(
        name="attack",
        model=Attack,
        summary=(
            "An attacker acting only through the relay's public API (simulator.attacks; "
            "docs/threats.md): kind names the attack, as labels it for attack_failed, actor "
            "is the cast user it acts as (insiders), victim the cast user it targets, params "
            "its bounded knobs."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
