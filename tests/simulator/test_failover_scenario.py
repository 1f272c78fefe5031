"""Scenarios on the cluster shape (issue #16 item 5): ``requires: {shape: cluster}``, the
``redis-primary`` infra target and the ``failover`` assertion (simulator.failover), and
``desync/redis-primary-failover-during-delivery`` run for real on the local provider's Redis
primary + replica + three Sentinels.

The run tests start real redis-server, weed and FerretDB from .tools (locally a missing tool
skips them, in CI it fails them: semafore.deploy.testing). Each failover assertion is shown
red against a relay with a real defect: one that queues every envelope twice
(``relay.duplicate_delivery``), one that acknowledges sync copies it never queues
(``relay.drops_sync_copies``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.deploy.data_tier import DataTier
from semafore.deploy.errors import SettingsError
from semafore.deploy.settings import CLUSTER_PROVIDERS, ProviderKind, Shape
from simulator.executor import run_scenario
from simulator.external import ExternalRelay
from simulator.failover import SendSample, judge, measure, wire_deliveries
from simulator.report.model import Outcome, ScenarioResult, reason
from simulator.scenario import InfraTarget, load, loads
from tests.simulator.cluster_demo import demo, failover_of, rejected, run_on_local

ROOT = Path(__file__).resolve().parents[2]
FAILOVER = ROOT / "scenarios/desync/redis-primary-failover-during-delivery.yaml"

KILL = "  - infra: {action: kill, target: redis-primary, during: m}\n"
CLUSTER = "providers: [local]\nrequires: {shape: cluster}\n"


def scenario(head: str = CLUSTER, steps: str = KILL) -> str:
    return demo(head, steps)


# -- requires: {shape: cluster} ---------------------------------------------------------------


def test_a_cluster_scenario_runs_only_where_the_cluster_shape_runs() -> None:
    s = loads(scenario(head="requires: {shape: cluster}\n"))
    assert s.requires.shape is Shape.CLUSTER
    for kind in ProviderKind:
        why = s.runs_on(kind)
        if kind in CLUSTER_PROVIDERS:
            assert why is None
        else:
            assert why is not None and why.startswith("requires.shape:") and kind.value in why
            unmet = s.unmet_requirement(kind)
            assert unmet is not None and unmet.field == "requires.shape"


def test_without_requires_the_shape_is_left_to_the_environment() -> None:
    s = loads(scenario(head="", steps=""))
    assert s.requires.shape is None
    assert all(s.unmet_requirement(kind) is None for kind in ProviderKind)


def test_a_cluster_requirement_no_listed_provider_can_meet_is_refused_at_load() -> None:
    err = rejected(scenario(head="providers: [embedded, external]\nrequires: {shape: cluster}\n"))
    assert err.key == "requires.shape" and "cluster shape" in err.message


@pytest.mark.parametrize("body", ["{shape: ring}", "{}", "{shape: cluster, nodes: 3}"])
def test_a_malformed_requires_block_names_the_key(body: str) -> None:
    err = rejected(scenario(head=f"providers: [local]\nrequires: {body}\n"))
    assert err.key.startswith("requires")


def test_redis_primary_needs_the_cluster_requirement() -> None:
    err = rejected(scenario(head="providers: [local]\n"))
    assert err.key == "steps[1].infra.target" and "requires: {shape: cluster}" in err.message


@pytest.mark.parametrize("action", ["start", "restart", "pause", "unpause"])
def test_redis_primary_can_only_be_taken_away(action: str) -> None:
    err = rejected(scenario(steps=f"  - infra: {{action: {action}, target: redis-primary}}\n"))
    assert err.key == "steps[1].infra.action" and action in err.message


def test_the_failover_assertion_needs_an_earlier_primary_fault() -> None:
    err = rejected(scenario(steps="  - assert: {failover: {}}\n" + KILL))
    assert err.key == "steps[1].assert.failover" and "redis-primary" in err.message
    s = loads(scenario(steps=KILL + "  - assert: {failover: {duplicated_at_most: 2}}\n"))
    failover = s.assertions()[0]
    assert (failover.acked_lost_at_most, failover.duplicated_at_most,
            failover.window_at_most_s) == (0, 2, None)


def test_the_catalogue_scenario_requires_the_cluster_and_kills_the_primary() -> None:
    s = load(FAILOVER)
    assert s.requires.shape is Shape.CLUSTER
    assert s.providers == (ProviderKind.LOCAL, ProviderKind.CONTAINERS)
    assert any(getattr(step, "target", None) is InfraTarget.REDIS_PRIMARY
               for step in s.all_steps())


def test_a_run_where_the_cluster_cannot_run_is_refused_naming_the_field() -> None:
    anywhere = loads(scenario(head="requires: {shape: cluster}\n"))  # every provider listed
    result = run_scenario(anywhere, provider=ProviderKind.EMBEDDED)
    assert result.skipped is not None and result.skipped.startswith("requires.shape:")
    assert result.verdict.value == "skipped" and not result.timeline  # nothing ran


def test_an_external_relay_cannot_meet_a_shape_requirement() -> None:
    why = ExternalRelay("http://127.0.0.1:9", "x").unsupported(load(FAILOVER))
    assert any(reason.startswith("requires.shape: cluster") for reason in why), why
    plain = loads(scenario(head="", steps=""))
    assert ExternalRelay("http://127.0.0.1:9", "x").unsupported(plain) == []


@pytest.mark.parametrize("kind", [k for k in ProviderKind if k not in CLUSTER_PROVIDERS])
def test_the_data_tier_never_starts_a_smaller_shape_than_required(kind: ProviderKind) -> None:
    tier = DataTier(kind.value, "ns", shape=Shape.CLUSTER)
    with pytest.raises(SettingsError) as caught:
        asyncio.run(tier.start())
    assert caught.value.field == "SEMAFORE_SHAPE"
    assert tier.provider is None and tier.stores is None  # nothing was started


# -- the figures (simulator.failover) ----------------------------------------------------------

_devices = st.sampled_from(["bob:phone", "bob:laptop", "alice:laptop"])


@st.composite
def _runs(draw: st.DrawFn) -> tuple[list[SendSample], dict[tuple[str, str], int],
                                     dict[tuple[str, str], list[str]]]:
    samples, shown, handed = [], {}, {}
    for i in range(draw(st.integers(0, 12))):
        acked = draw(st.booleans())
        begun = float(i * 100)
        intended = frozenset(draw(st.sets(_devices, min_size=1)))
        samples.append(SendSample(f"m.{i}", f"id{i}", begun, begun + 50 if acked else None,
                                  intended))
        for device in intended:
            shown[(device, f"id{i}")] = draw(st.integers(0, 2))
            handed[(device, f"id{i}")] = draw(st.lists(st.sampled_from(["d1", "d2"]),
                                                       max_size=3))
    return samples, shown, handed


@given(run=_runs(), fault=st.floats(0, 1300))
def test_the_figures_count_what_each_definition_says(run: Any, fault: float) -> None:
    samples, shown, handed = run
    f = measure(samples, shown, handed, fault)
    pairs = [(s, d) for s in samples for d in s.intended]
    lost = {f"{s.label} -> {d}" for s, d in pairs
            if s.acked_ms is not None and shown[(d, s.message_id)] == 0}
    twice = {f"{s.label} -> {d}" for s, d in pairs
             if shown[(d, s.message_id)] > 1 or len(set(handed[(d, s.message_id)])) > 1}
    assert set(f.acked_lost) == lost
    assert {p.split(": shown")[0] for p in f.duplicated} == twice
    assert f.redelivered == sum(len(h) - len(set(h)) for h in handed.values())
    after = [s.acked_ms for s in samples if s.acked_ms is not None and s.begun_ms > fault]
    assert f.window_s == ((min(after) - fault) / 1000 if after else None)
    assert f.acked_before + f.acked_after == f.acknowledged


def _sample(i: int, begun: float, acked: float | None) -> SendSample:
    return SendSample(f"s.{i}", f"id{i}", begun, acked, frozenset({"bob:phone"}))


def test_nothing_sent_across_the_fault_is_inconclusive_never_a_pass() -> None:
    before_only = [_sample(1, 0, 10), _sample(2, 20, 30)]
    shown = {("bob:phone", "id1"): 1, ("bob:phone", "id2"): 1}
    for samples, fault in ((before_only, 100.0), (before_only, -5.0), ([], 0.0)):
        verdict = judge(measure(samples, shown, {}, fault), acked_lost_at_most=0,
                        duplicated_at_most=0, window_at_most_s=None)
        assert verdict.held is None


def test_each_bound_fails_when_exceeded() -> None:
    samples = [_sample(1, 0, 10), _sample(2, 200, 2700), _sample(3, 2800, 2900)]
    clean = {("bob:phone", "id1"): 1, ("bob:phone", "id2"): 1, ("bob:phone", "id3"): 1}
    figures = measure(samples, clean, {}, 100.0)
    assert figures.window_s == pytest.approx(2.6)
    ok = judge(figures, acked_lost_at_most=0, duplicated_at_most=0, window_at_most_s=30)
    assert ok.held is True
    assert judge(figures, acked_lost_at_most=0, duplicated_at_most=0,
                 window_at_most_s=1.0).held is False
    lost = judge(measure(samples, {**clean, ("bob:phone", "id2"): 0}, {}, 100.0),
                 acked_lost_at_most=0, duplicated_at_most=0, window_at_most_s=None)
    assert lost.held is False and "acked_lost 1 > 0" in lost.summary
    assert lost.evidence == ["acknowledged, never shown: s.2 -> bob:phone"]
    queued_twice = {("bob:phone", "id3"): ["d1", "d2"]}
    dup = judge(measure(samples, clean, queued_twice, 100.0), acked_lost_at_most=0,
                duplicated_at_most=0, window_at_most_s=None)
    assert dup.held is False and "duplicated 1 > 0" in dup.summary
    # the same delivery handed again (its ack never recorded) is redelivery, not a duplicate
    again = measure(samples, clean, {("bob:phone", "id3"): ["d1", "d1"]}, 100.0)
    assert again.duplicated == () and again.redelivered == 1


def test_an_unacknowledged_send_is_neither_lost_nor_kept() -> None:
    samples = [_sample(1, 0, 10), _sample(2, 200, None), _sample(3, 300, 400)]
    shown = {("bob:phone", "id1"): 1, ("bob:phone", "id3"): 1}
    figures = measure(samples, shown, {}, 100.0)
    assert figures.acked_lost == () and figures.unacknowledged == ("s.2",)


def test_deliveries_are_read_from_push_frames_and_split_http_pages() -> None:
    ws = json.dumps({"type": "envelope", "delivery_id": "d1", "message_id": "m1",
                     "body": "x"}).encode()
    page = json.dumps({"envelopes": [{"delivery_id": "d2", "message_id": "m1"},
                                     {"delivery_id": "d3", "message_id": "m2"}]},
                      separators=(",", ":")).encode()
    http = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + page
    handed = wire_deliveries([("bob:phone", ws), ("bob:laptop", http[:70]),
                              ("bob:phone", ws), ("bob:laptop", http[70:])])
    assert handed == {("bob:phone", "m1"): ["d1", "d1"], ("bob:laptop", "m1"): ["d2"],
                      ("bob:laptop", "m2"): ["d3"]}


# -- the scenario on the local provider's cluster shape -----------------------------------------

def _run_on_cluster(switch: str | None = None) -> ScenarioResult:
    return run_on_local(FAILOVER, switch)


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.timeout(600)
def test_the_primary_is_killed_mid_stream_and_nothing_acknowledged_is_lost_or_doubled() -> None:
    result = _run_on_cluster()
    assert result.verdict.value == "pass", (result.error, reason(result),
                                            [(a.kind, a.summary) for a in result.assertions])
    outcome, summary, figures = failover_of(result)
    assert outcome is Outcome.HELD, summary
    assert figures["acked_lost"] == 0 and figures["duplicated"] == 0
    assert figures["acked_before_fault"] > 0 and figures["acked_after_fault"] > 0
    assert figures["window_s"] > 0  # reported, never bounded here (no timing assertions)
    [kill] = [e for e in result.timeline if e.kind == "infra"]
    assert kill.summary.startswith("kill redis-primary during stream (local provider)")
    assert {f.fired for f in result.faults} == {True}


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("switch", "figure"), [
    ("relay.duplicate_delivery", "duplicated"),
    ("relay.drops_sync_copies", "acked_lost"),
])
def test_a_relay_defect_turns_the_failover_verdict_red(switch: str, figure: str) -> None:
    result = _run_on_cluster(switch)
    outcome, summary, figures = failover_of(result)
    assert outcome is Outcome.VIOLATED, summary
    assert figures[figure] > 0 and f"{figure} {figures[figure]} > 0" in summary
    assert result.verdict.value == "fail"
