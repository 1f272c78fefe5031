"""Scenario fields of network faults (docs/scenarios.md): ``channel`` and ``match`` load into
the model, and every misuse is a load error naming the field and its line."""

from __future__ import annotations

import pytest

from simulator.scenario import Network, NetworkFault, ScenarioError, loads

HEAD = """\
version: 1
name: demo
cites: ["seed §4.1"]
users:
  - {id: alice, devices: [phone]}
  - {id: bob, devices: [phone]}
steps:
"""


def network_step(fields: str) -> str:
    return (HEAD + f"  - network: {{{fields}}}\n"
            + "  - send: {from: alice/phone, to: bob, label: m}\n"
            + "  - assert: {delivered_exactly_once: {messages: all}}\n")


def test_channel_and_match_load_into_the_model() -> None:
    step = loads(network_step('fault: drop, scope: alice/phone, channel: http, direction: down, '
                              'match: "PUT /v1/messages/", count: 1'), file="d.yaml").steps[0]
    assert isinstance(step, Network)
    assert (step.fault, step.channel, step.direction, step.match, step.count) == (
        NetworkFault.DROP, "http", "down", "PUT /v1/messages/", 1)


def test_a_fault_acts_on_both_channels_by_default() -> None:
    step = loads(network_step("fault: duplicate"), file="d.yaml").steps[0]
    assert isinstance(step, Network) and step.channel == "both" and step.match is None


@pytest.mark.parametrize(("fields", "key", "words"), [
    ('fault: drop, match: "PUT /v1/messages/"', "steps[0].network.match", "channel: http"),
    ('fault: drop, channel: ws, match: "GET /"', "steps[0].network.match", "channel: http"),
    ('fault: cut, channel: http, match: "GET /"', "steps[0].network.match", "whole connections"),
    ("fault: drop, channel: udp", "steps[0].network.channel", ""),
    ('fault: drop, channel: http, match: "put /v1"', "steps[0].network.match", ""),
    ('fault: drop, channel: http, match: "PUT v1/messages"', "steps[0].network.match", ""),
])
def test_misused_fields_are_rejected_with_the_field_and_line(fields: str, key: str,
                                                             words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        loads(network_step(fields), file="d.yaml")
    err = info.value
    assert err.key == key and err.line == 8
    assert words in err.message
