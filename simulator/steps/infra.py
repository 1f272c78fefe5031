"""Step kind ``infra``: Stop, kill, pause or restart a backend or a relay replica (optionally
during a send).

``target: redis-primary`` is the Redis server the Sentinels name primary when the step runs
(``provider.redis_primary()``, docs/backends.md "Cluster shape"): a scenario naming it must
declare ``requires: {shape: cluster}``, and may only ``kill`` or ``stop`` it
(:data:`~simulator.scenario.model.PRIMARY_ACTIONS`).

``target: redis-cluster-primary`` with ``user: U`` is the Redis Cluster node serving the hash
slot of U's queues when the step runs (``provider.redis_cluster_primary(key)``, the key carrying
U's hash tag as the relay's store builds it): the node whose loss takes U's queued envelopes
through the cluster's own failover. It needs ``requires: {shape: cluster, redis: cluster}`` and
takes ``kill`` or ``stop`` only, as ``redis-primary``.

``target: seaweedfs-volume`` is one SeaweedFS volume server of the cluster shape: ``volume: N``
by index, or ``holding: LABEL``, a server holding a copy of an earlier attachment's blob,
resolved when the step runs (``SeaweedCluster.holders``) — the fault a replicated object store
must survive (ADR-0157 attachment blobs, seed §3.5 availability). Also cluster shape only.

``target: redis-replication-link`` is the replica's replication connection to the primary
(``provider.replication_link()``): ``cut`` partitions it — the relay keeps writing to the
primary, the replica gets none of it — and ``heal`` ends that; nothing else applies to a link,
and ``cut``/``heal`` apply to nothing else (:data:`~simulator.scenario.model.LINK_ACTIONS`).
Cluster shape with Sentinel only.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from semafore.deploy.seaweed_cluster import VOLUME_SERVERS
from semafore.deploy.settings import RedisTopology, Shape
from simulator.scenario.model import (
    LINK_ACTIONS,
    PRIMARY_ACTIONS,
    Infra,
    InfraAction,
    InfraTarget,
    Step,
)
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {"enum": [a.value for a in InfraAction]},
        "target": {"enum": [t.value for t in InfraTarget]},
        "replica": {
            "description": "target server only: the replica index "
            "(0-based, below "
            "infrastructure.server_replicas); omitted: "
            "every replica",
            "type": "integer",
            "minimum": 0,
        },
        "during": {"$ref": "#/$defs/label"},
        "user": {
            "description": "target redis-cluster-primary only: the user whose queues' hash "
            "slot picks the node",
            "$ref": "#/$defs/id",
        },
        "volume": {
            "description": "target seaweedfs-volume only: the volume server's index (0-based, "
            f"below {VOLUME_SERVERS})",
            "type": "integer",
            "minimum": 0,
        },
        "holding": {"$ref": "#/$defs/label"},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["action", "target"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    during = b.get("during")
    if during is not None:
        builder.known_label(during, (*p, "during"))
    target = InfraTarget(b["target"])
    action = InfraAction(b["action"])
    user = b.get("user")
    if target is InfraTarget.REDIS_CLUSTER_PRIMARY:
        _cluster_node(builder, p, action, user)
    elif user is not None:
        raise builder.ctx.error(
            (*p, "user"), f"'user' applies to target redis-cluster-primary only "
            f"({target.value} is not picked by a user's hash slot)")
    volume, holding = b.get("volume"), b.get("holding")
    if target is InfraTarget.SEAWEEDFS_VOLUME:
        _volume_server(builder, p, volume, holding)
    else:
        for key, value in (("volume", volume), ("holding", holding)):
            if value is not None:
                raise builder.ctx.error(
                    (*p, key), f"'{key}' applies to target seaweedfs-volume only "
                    f"({target.value} is not a volume server)")
    _link(builder, p, target, action)
    if target is InfraTarget.REDIS_PRIMARY:
        if builder.shape is not Shape.CLUSTER:
            raise builder.ctx.error(
                (*p, "target"),
                "redis-primary is the primary of a replicated Redis: the scenario must "
                "declare 'requires: {shape: cluster}' (a single Redis has no failover)",
            )
        if builder.redis is RedisTopology.CLUSTER:
            raise builder.ctx.error(
                (*p, "target"),
                "redis-primary is the primary the Sentinels name; under 'requires.redis: "
                "cluster' each slot range has its own: name one with 'target: "
                "redis-cluster-primary, user: USER'",
            )
        _takes_primary_actions(builder, p, action, "redis-primary",
                               "'the current primary' is another server")
    replica = b.get("replica")
    if replica is not None and target is not InfraTarget.SERVER:
        raise builder.ctx.error(
            (*p, "replica"),
            f"'replica' applies to target server only ({target.value} is one instance)",
        )
    if replica is not None and replica >= builder.server_replicas:
        raise builder.ctx.error(
            (*p, "replica"),
            f"replica {replica} does not exist: the scenario runs {builder.server_replicas} "
            f"server replica(s), numbered 0-{builder.server_replicas - 1} "
            "(infrastructure.server_replicas)",
        )
    return Infra(**c, action=action, target=target, replica=replica, during=during, user=user,
                 volume=volume, holding=holding)


def _link(builder: Builder, p: PathT, target: InfraTarget, action: InfraAction) -> None:
    """``cut``/``heal`` act on a link and a link takes nothing else; the replication link
    exists only where Sentinel replicates Redis (the cluster shape, not a Redis Cluster)."""
    is_link = target is InfraTarget.REDIS_REPLICATION_LINK
    if is_link != (action in LINK_ACTIONS):
        allowed = ", ".join(a.value for a in LINK_ACTIONS)
        raise builder.ctx.error(
            (*p, "action"),
            f"{target.value} takes {allowed} only" if is_link
            else f"{action.value} applies to target redis-replication-link only "
                 f"({target.value} is a process: stop, kill or pause it)")
    if is_link and (builder.shape is not Shape.CLUSTER
                    or builder.redis is RedisTopology.CLUSTER):
        raise builder.ctx.error(
            (*p, "target"),
            "redis-replication-link is the Sentinel-watched replica's link to its primary: "
            "the scenario must declare 'requires: {shape: cluster}' (Redis under Sentinel)")


def _volume_server(builder: Builder, p: PathT, volume: int | None, holding: str | None) -> None:
    """A ``seaweedfs-volume`` step names exactly one volume server of the cluster shape: by
    index below :data:`VOLUME_SERVERS`, or as the holder of an earlier ``attach``'s blob."""
    if builder.shape is not Shape.CLUSTER:
        raise builder.ctx.error(
            (*p, "target"),
            "seaweedfs-volume is one volume server of a replicated SeaweedFS: the scenario "
            "must declare 'requires: {shape: cluster}' (the single shape runs one weed server)",
        )
    if (volume is None) == (holding is None):
        raise builder.ctx.error(
            (*p, "target"), "seaweedfs-volume needs exactly one of 'volume: N' (an index) or "
            "'holding: LABEL' (the server holding that attachment's blob)")
    if volume is not None and volume >= VOLUME_SERVERS:
        raise builder.ctx.error(
            (*p, "volume"), f"volume server {volume} does not exist: the cluster shape runs "
            f"{VOLUME_SERVERS}, numbered 0-{VOLUME_SERVERS - 1}")
    if holding is not None and holding not in builder.attachments:
        what = ("is a message, not an attachment" if holding in builder.labels
                else "is not the label of an earlier attach step")
        raise builder.ctx.error((*p, "holding"), f"holding {holding!r}: {what}")


def _cluster_node(builder: Builder, p: PathT, action: InfraAction, user: str | None) -> None:
    """A ``redis-cluster-primary`` step: a Redis Cluster under the cluster shape, a declared
    user whose slot picks the node, and a fault that takes the node away (a failover makes
    "the node serving the slot" another one, so anything else would not undo the fault)."""
    if builder.shape is not Shape.CLUSTER or builder.redis is not RedisTopology.CLUSTER:
        raise builder.ctx.error(
            (*p, "target"),
            "redis-cluster-primary is a node of a Redis Cluster: the scenario must declare "
            "'requires: {shape: cluster, redis: cluster}'",
        )
    if user is None:
        raise builder.ctx.error(
            (*p, "target"), "redis-cluster-primary needs 'user: U': the node is the one "
            "serving the hash slot of U's queues")
    builder.user_ids(user, (*p, "user"))
    _takes_primary_actions(builder, p, action, "redis-cluster-primary",
                           "the node serving the slot is another one")


async def run(ex: Execution, step: Infra) -> None:
    # a step armed ``during`` a send hits from inside that send (Execution._with_armed_infra);
    # it runs here only if the send never reached its midpoint
    if step.during is not None and ex.pending_infra.get(step.during) is step:
        del ex.pending_infra[step.during]
        await ex.apply_infra(step)
    elif step.during is None:
        await ex.apply_infra(step)


register(
    StepKind(
        name="infra",
        model=Infra,
        summary=(
            "Stop, kill, pause or restart a backend or a relay replica (optionally during a send)."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)


def _takes_primary_actions(builder: Builder, p: PathT, action: InfraAction, target: str,
                           after: str) -> None:
    """A primary target (resolved when the step runs) takes only the actions that take it
    away (:data:`PRIMARY_ACTIONS`): after a failover ``after``, so a start or restart would not
    undo the fault. Marks that a primary is faulted, for the ``failover`` assertion."""
    if action not in PRIMARY_ACTIONS:
        allowed = ", ".join(a.value for a in PRIMARY_ACTIONS)
        raise builder.ctx.error(
            (*p, "action"),
            f"{target} takes {allowed} only: after a failover {after}, so {action.value} "
            "would not undo the fault",
        )
    builder.primary_faulted = True
