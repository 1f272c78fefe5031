"""Step kind ``assert``: A check at this point of the timeline (delivery, sessions, adversaries,
oracle…).

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import (
    MECHANISM_STATS,
    Assertion,
    AssertionKind,
    CompromiseKind,
    MetadataClass,
    Step,
)
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT, Validation

SCHEMA: dict[str, Any] = {"$ref": "#/$defs/assertion"}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def validate(check: Validation, body: Any, path: PathT) -> None:
    """One assertion kind, its body checked against that kind's schema."""
    check.assertion(body, (*path, "assert"))


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    akind = next(iter(b))
    body = b[akind] or {}
    q = (*p, akind)
    kind = AssertionKind(akind)
    fields: dict[str, Any] = {"assertion": kind}
    if "messages" in body:
        fields["messages"] = builder.selector(body["messages"], (*q, "messages"))
    if "devices" in body:
        fields["devices"] = builder.devices_of(body["devices"], (*q, "devices"), ever=True)
    if "device" in body:
        fields["devices"] = builder.devices_of(body["device"], (*q, "device"), ever=True)
    if "error" in body:
        fields["error"] = body["error"]
    passive = (
        CompromiseKind.SERVER,
        CompromiseKind.NETWORK,
        CompromiseKind.INSIDER,
        CompromiseKind.SUBPOENA,
        CompromiseKind.DATABASE,
    )
    device_kinds = (CompromiseKind.DEVICE,)
    needs: dict[AssertionKind, tuple[CompromiseKind, ...]] = {
        AssertionKind.ADVERSARY_DECRYPTS_NOTHING: passive,
        AssertionKind.COMPROMISE_SCOPE: (CompromiseKind.DEVICE, CompromiseKind.ALL_DEVICES),
        AssertionKind.FORWARD_SECRECY: device_kinds,
        AssertionKind.POST_COMPROMISE_SECURITY: device_kinds,
        # the adversaries whose view holds the relay's operational logs
        AssertionKind.LOG_PSEUDONYMS: (
            CompromiseKind.SERVER,
            CompromiseKind.INSIDER,
            CompromiseKind.SUBPOENA,
        ),
    }
    if "adversary" in body:
        builder.adversary(body["adversary"], (*q, "adversary"), *needs.get(kind, ()))
        fields["adversary"] = body["adversary"]
    if "adversaries" in body:
        for i, name in enumerate(body["adversaries"]):
            builder.adversary(name, (*q, "adversaries", i), *passive)
        fields["adversaries"] = tuple(body["adversaries"])
    elif kind is AssertionKind.ORACLE_CLEAN and not any(
        c.compromise in passive for c in builder.adversaries.values()
    ):
        raise builder.ctx.error(
            q,
            "oracle_clean scans relay-side views, and no earlier "
            "compromise step creates one: add e.g. "
            "'compromise: {kind: server, as: relay}' (else it scans nothing "
            "and cannot fail)",
        )
    for key in ("round_trips", "identifiers", "documented", "allow_empty", "at_least", "at_most"):
        if key in body:
            fields[key] = body[key]
    if "sees" in body:
        fields["sees"] = tuple(MetadataClass(s) for s in body["sees"])
    if kind is AssertionKind.METADATA_NOT_EXPOSED:
        if "adversary" not in body or not body.get("sees"):
            raise builder.ctx.error(
                q, "metadata_not_exposed names an 'adversary' and what it must not see ('sees')"
            )
        builder.adversary(body["adversary"], (*q, "adversary"), *passive)
    if kind is AssertionKind.ATTACK_FAILED:
        if body["attack"] not in builder.attacks:
            raise builder.ctx.error(
                (*q, "attack"), f"no earlier attack step is named {body['attack']!r}"
            )
        fields["attack"] = body["attack"]
    if kind is AssertionKind.MECHANISM:
        stat = body["stat"]
        if stat not in MECHANISM_STATS:
            raise builder.ctx.error(
                (*q, "stat"), f"unknown stat {stat!r} (known: {sorted(MECHANISM_STATS)})"
            )
        fields["stat"] = stat
        if "at_least" not in body and "at_most" not in body:
            fields["at_least"] = 1  # the mechanism happened at least once
        low, high = fields.get("at_least"), fields.get("at_most")
        if low is not None and high is not None and low > high:
            raise builder.ctx.error(
                (*q, "at_most"),
                f"at_most {high} is below at_least {low}: the assertion could never hold",
            )
        if low == 0 and high is None:
            raise builder.ctx.error((*q, "at_least"), "at_least: 0 without at_most can never fail")
    if kind is AssertionKind.LOG_PSEUDONYMS:
        fields.update(_log_pseudonyms(builder, body, q))
    if kind is AssertionKind.FAILOVER:
        if not builder.primary_faulted:
            raise builder.ctx.error(
                q, "failover measures the sends around a redis-primary (or "
                "redis-cluster-primary) fault, and no earlier infra step kills or stops one "
                "(else it measures nothing)")
        for key in ("acked_lost_at_most", "duplicated_at_most"):
            if key in body:
                fields[key] = body[key]
        if "window_at_most_s" in body:
            fields["window_at_most_s"] = float(body["window_at_most_s"])
    if kind is AssertionKind.RECOVERED_WITHIN:
        fields["exchanges"] = body["exchanges"]
        fields["after"] = builder.known_label(body["after"], (*q, "after"))
    return Assertion(**c, **fields)


def _log_pseudonyms(builder: Builder, body: dict[str, Any], q: PathT) -> dict[str, Any]:
    """``log_pseudonyms``: exactly one bound (an exposure or a guarantee, never both:
    one assertion has one outcome), and the dictionary's size and seed."""
    bounds = [k for k in ("reversed_at_least", "reversed_at_most") if k in body]
    if len(bounds) != 1:
        raise builder.ctx.error(
            q,
            "log_pseudonyms takes exactly one of reversed_at_least "
            "(the documented exposure) or reversed_at_most (a guarantee)",
        )
    dictionary = body.get("dictionary", {})
    return {
        bounds[0]: float(body[bounds[0]]),
        "dictionary_size": dictionary.get("size"),
        "dictionary_seed": dictionary.get("seed"),
    }


async def run(ex: Execution, step: Assertion) -> None:
    await ex.assertion(step)


register(
    StepKind(
        name="assert",
        model=Assertion,
        summary=(
            "A check at this point of the timeline (delivery, sessions, adversaries, oracle…)."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
        validate=validate,
    )
)
