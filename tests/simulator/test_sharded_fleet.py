"""The sharded fleet (issue 16 item 6): a seeded plan run over shard processes against a relay
process, audited delivery by delivery: every expected envelope decrypted to its plaintext,
and every gap named. The audit must go red when the relay loses envelopes, when a client
sends what a device cannot open, and when a shard dies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.sharded import ShardedFleet, ShardError
from simulator.sharded_plan import FleetPlan, audit, body_of, delivery_key, digest_of

plans = st.builds(FleetPlan, seed=st.integers(0, 2**32), devices=st.integers(4, 60),
                  messages=st.integers(0, 80), per_user=st.integers(1, 3),
                  contacts=st.integers(0, 4))


def perfect(plan: FleetPlan) -> dict[str, dict[str, bytes]]:
    """What every device would report had it decrypted everything the plan expects."""
    return {device: {key: digest_of(body_of(plan.seed, int(key.split("/m")[1])))
                     for key in keys}
            for device, keys in plan.expected.items()}


# -- the plan ------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(plans)
def test_the_plan_is_a_function_of_its_parameters(plan: FleetPlan) -> None:
    again = FleetPlan(plan.seed, plan.devices, plan.messages, plan.per_user, plan.contacts)
    assert again.plan == plan.plan
    assert again.expected == plan.expected


def test_another_seed_is_another_plan() -> None:
    assert FleetPlan(1, 100, 50).plan != FleetPlan(2, 100, 50).plan


@settings(max_examples=30, deadline=None)
@given(plans)
def test_a_message_reaches_its_recipients_devices_and_the_senders_other_devices(
        plan: FleetPlan) -> None:
    for message in plan.plan:
        assert message.recipient != message.sender_user
        reached = set(plan.recipients(message))
        assert reached == (set(plan.devices_of[message.recipient])
                           | set(plan.devices_of[message.sender_user]) - {message.sender})
        for device in reached:
            assert delivery_key(message.sender_user, message.message_id) in plan.expected[device]
    assert plan.envelopes == sum(len(plan.recipients(m)) for m in plan.plan)


@settings(max_examples=30, deadline=None)
@given(plans, st.integers(1, 8))
def test_shards_split_devices_and_sends_without_overlap(plan: FleetPlan, shards: int) -> None:
    devices = [plan.shard_devices(i, shards) for i in range(shards)]
    assert sorted(d for part in devices for d in part) == sorted(plan.addresses)
    assert max(map(len, devices)) - min(map(len, devices)) <= 1
    sends = [plan.shard_sends(i, shards) for i in range(shards)]
    assert sorted(m.index for part in sends for m in part) == list(range(plan.messages))
    for i, part in enumerate(sends):
        assert all(m.sender in devices[i] for m in part)


def test_contacts_keep_each_user_to_its_conversations() -> None:
    plan = FleetPlan(7, 200, 2000, contacts=2)
    talks: dict[str, set[str]] = {}
    for message in plan.plan:
        talks.setdefault(message.sender_user, set()).add(message.recipient)
    assert max(len(peers) for peers in talks.values()) <= 2


# -- the audit -----------------------------------------------------------------------------

def test_the_audit_passes_exactly_the_planned_deliveries() -> None:
    plan = FleetPlan(3, 30, 60)
    result = audit(plan, perfect(plan))
    assert result.ok and result.missing_count == 0
    assert result.delivered == plan.envelopes


def test_the_audit_names_a_missing_a_wrong_and_an_unplanned_delivery() -> None:
    plan = FleetPlan(3, 30, 60)
    received = perfect(plan)
    devices = sorted(d for d in received if len(received[d]) >= 2)
    lost_at, garbled_at = devices[0], devices[1]
    lost = sorted(received[lost_at])[0]
    del received[lost_at][lost]
    garbled = sorted(received[garbled_at])[0]
    received[garbled_at][garbled] = digest_of(b"not what was sent")
    received[garbled_at]["u99999/m9999999"] = digest_of(b"never planned")

    result = audit(plan, received)

    assert not result.ok
    assert result.missing == {lost_at: [lost]}
    assert result.wrong_plaintext == {garbled_at: [garbled]}
    assert result.unexpected == {garbled_at: ["u99999/m9999999"]}
    assert result.delivered == plan.envelopes - 2
    assert f"{lost_at} missed {lost}" in result.describe()


# -- sharded runs (real relay process, real shard processes, real crypto) ------------------

@pytest.mark.timeout(600)  # 36 s on two quiet cores, 2.5 min on busy ones
def test_a_2000_device_sharded_fleet_decrypts_every_envelope_to_its_plaintext() -> None:
    plan = FleetPlan(seed=16, devices=2000, messages=2000, contacts=3)
    with ShardedFleet(plan, shards=2, opk_count=10, drain_idle=10.0,
                      phase_timeout=400.0) as fleet:
        run = fleet.run()
    assert run.audit.describe() == ""
    assert run.send_failures == []
    assert run.missing == 0
    assert run.audit.delivered == run.envelopes == plan.envelopes
    assert run.counters["received"] == plan.envelopes
    assert set(run.received) == {device for device, keys in plan.expected.items() if keys}
    assert run.traffic.relay > 0 and run.traffic.shards.protocol > 0


def test_the_same_seed_gives_the_same_received_sets() -> None:
    runs = []
    for _ in range(2):
        with ShardedFleet(FleetPlan(seed=5, devices=24, messages=80, contacts=2),
                          shards=2, opk_count=5, drain_idle=5.0) as fleet:
            runs.append(fleet.run())
    first, second = runs
    assert first.ok and second.ok
    assert first.received == second.received == perfect(first.plan)


def test_a_relay_that_loses_the_sync_copies_turns_the_run_red_naming_them() -> None:
    plan = FleetPlan(seed=9, devices=24, messages=60, contacts=2)
    with ShardedFleet(plan, shards=2, opk_count=5, drain_idle=3.0,
                      relay_sabotage=("relay.drops_sync_copies",)) as fleet:
        run = fleet.run()
    assert not run.ok and run.missing > 0
    for device, keys in run.audit.missing.items():
        for key in keys:  # only sync copies were lost: every gap is from the device's own user
            assert key.split("/", 1)[0] == device.split(":", 1)[0]
    assert run.missing == sum(len(plan.devices_of[m.sender_user]) - 1 for m in plan.plan)


def test_a_shard_whose_devices_cannot_open_what_arrives_turns_the_run_red() -> None:
    plan = FleetPlan(seed=11, devices=24, messages=60, contacts=2)
    with ShardedFleet(plan, shards=2, opk_count=5, drain_idle=3.0,
                      shard_sabotage=("client.same_envelope_for_all_devices",)) as fleet:
        run = fleet.run()
    assert not run.ok and run.missing > 0
    assert run.counters["undecryptable"] > 0


def test_a_shard_that_dies_mid_run_is_named_not_reported_as_delivered() -> None:
    plan = FleetPlan(seed=13, devices=24, messages=60, contacts=2)
    fleet = ShardedFleet(plan, shards=2, opk_count=5, drain_idle=3.0)

    def kill_shard_one(line: str) -> None:
        if line.startswith("set-up done"):
            fleet._shards[1].process.kill()

    fleet.progress = kill_shard_one
    with fleet, pytest.raises(ShardError) as caught:
        fleet.run()
    assert caught.value.shard == 1
