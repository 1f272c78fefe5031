"""The scenario loader: valid files become typed models; invalid ones are rejected with the
file, line, column and offending key (docs/scenarios.md)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from semafore.protocol.address import DeviceAddress
from simulator.scenario import (
    Assertion,
    AssertionKind,
    Compromise,
    CompromiseKind,
    Expectation,
    Network,
    NetworkFault,
    ScenarioError,
    Send,
    load,
    loads,
)

BASE = """\
version: 1
name: demo
cites: ["seed §1.1"]
users:
  - {id: alice, devices: [phone, laptop]}
  - {id: bob, devices: [phone]}
steps:
"""


def scenario_text(steps: str, head: str = BASE) -> str:
    return head + textwrap.indent(textwrap.dedent(steps), "  ")


def rejected(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        loads(text, file="demo.yaml")
    return info.value


def test_a_valid_scenario_becomes_typed_steps() -> None:
    s = loads(
        scenario_text("""\
        - send: {from: alice/phone, to: bob, label: m, count: 3}
        - network: {fault: drop, scope: bob/phone, probability: 0.5, count: 4}
        - compromise: {kind: device, device: bob/phone, as: thief}
        - assert: {forward_secrecy: {adversary: thief}}
        - assert: {delivered_exactly_once: {messages: [m]}}
    """)
    )
    send, net, comp, fs, delivered = s.steps
    assert isinstance(send, Send) and send.sender == DeviceAddress("alice", "phone")
    assert send.to == ("bob",) and send.count == 3 and send.line == 8
    assert isinstance(net, Network) and net.fault is NetworkFault.DROP
    assert net.scope == DeviceAddress("bob", "phone") and net.count == 4
    assert isinstance(comp, Compromise) and comp.compromise is CompromiseKind.DEVICE
    assert isinstance(fs, Assertion) and fs.assertion is AssertionKind.FORWARD_SECRECY
    assert isinstance(delivered, Assertion) and delivered.messages.matches_label("m.2")
    assert not delivered.messages.matches_label("other.1")
    assert s.expect is Expectation.PASS
    assert s.initial_devices()[0] == DeviceAddress("alice", "phone")
    assert [x.index for x in s.steps] == [0, 1, 2, 3, 4]


def test_unknown_key_names_line_column_and_path() -> None:
    err = rejected(
        scenario_text("""\
        - send: {from: alice/phone, to: bob, label: m, colour: red}
        - assert: {delivered_exactly_once: {messages: all}}
    """)
    )
    assert (err.file, err.line, err.key) == ("demo.yaml", 8, "steps[0].send.colour")
    assert err.column is not None and err.column > 1
    assert "unknown key 'colour'" in str(err) and str(err).startswith("demo.yaml:8:")


def test_unknown_step_kind_is_named() -> None:
    err = rejected(scenario_text("- teleport: {device: alice/phone}\n"))
    assert err.key == "steps[0].teleport" and err.line == 8 and "unknown step kind" in err.message


def test_unknown_device_is_reported_where_it_is_used() -> None:
    err = rejected(
        scenario_text("""\
        - send: {from: alice/phone, to: bob, label: m}
        - send: {from: bob/tablet, to: alice, label: n}
        - assert: {delivered_exactly_once: {messages: all}}
    """)
    )
    assert err.key == "steps[1].send.from" and err.line == 9
    assert "does not exist" in err.message


def test_removed_device_cannot_send_later() -> None:
    err = rejected(
        scenario_text("""\
        - remove_device: {device: alice/laptop}
        - send: {from: alice/laptop, to: bob, label: m}
        - assert: {delivered_exactly_once: {messages: all}}
    """)
    )
    assert err.key == "steps[1].send.from" and "was removed" in err.message


def test_wrong_type_names_the_value_path() -> None:
    err = rejected(
        scenario_text("""\
        - send: {from: alice/phone, to: bob, label: m, count: many}
        - assert: {delivered_exactly_once: {messages: all}}
    """)
    )
    assert err.key == "steps[0].send.count" and err.line == 8


def test_assertion_on_unknown_adversary_is_rejected() -> None:
    err = rejected(scenario_text("- assert: {adversary_decrypts_nothing: {adversary: eve}}\n"))
    assert err.key == "steps[0].assert.adversary_decrypts_nothing.adversary"
    assert "no earlier compromise" in err.message


def test_device_assertion_needs_a_device_adversary() -> None:
    err = rejected(
        scenario_text("""\
        - compromise: {kind: server, as: root}
        - assert: {forward_secrecy: {adversary: root}}
    """)
    )
    assert "needs device" in err.message and err.line == 9


def test_exposure_requires_expect_exposed_and_vice_versa() -> None:
    steps = """\
        - send: {from: alice/phone, to: bob, label: m}
        - compromise: {kind: all_devices, user: bob, as: thief}
        - assert: {exposed: {adversary: thief, messages: all, documented: "seed §1.2"}}
    """
    err = rejected(scenario_text(steps))
    assert err.key == "expect" and "expect: exposed" in err.message
    ok = loads(scenario_text(steps, BASE.replace("users:", "expect: exposed\nusers:")))
    assert ok.expect is Expectation.EXPOSED
    err = rejected(
        scenario_text(
            "- assert: {sessions_converge: {devices: [alice/phone, bob/phone]}}\n",
            BASE.replace("users:", "expect: exposed\nusers:"),
        )
    )
    assert err.key == "expect"


def test_a_scenario_without_assertions_is_rejected() -> None:
    err = rejected(scenario_text("- send: {from: alice/phone, to: bob, label: m}\n"))
    assert err.key == "steps" and "can never fail" in err.message


@pytest.mark.parametrize(("step", "key", "fragment"), [
    ("send: {from: alice:phone, to: [], label: m}", "send.to", "non-empty"),
    ("send: {from: alice:phone, to: [bob, bob], label: m}", "send.to", "non-unique"),
    ("attach: {from: alice:phone, to: [], label: m}", "attach.to", "non-empty"),
    ("broadcast: {from: alice:phone, to: [bob, bob], label: m}", "broadcast.to", "non-unique"),
    ("replay: {message: m, to: [], times: 1}", "replay.to", "non-empty"),
    ("exhaust_opks: {devices: [bob:phone, bob:phone]}", "exhaust_opks.devices", "non-unique"),
])
def test_recipient_and_device_lists_are_non_empty_and_name_each_once(
        step: str, key: str, fragment: str) -> None:
    """The schema's shared ``users``, ``recipients`` and ``devices`` definitions (one per
    concept, referenced by every step kind that lists users or devices)."""
    err = rejected(scenario_text(f"- {step}\n"))
    assert err.key == f"steps[0].{key}" and fragment in err.message, (err.key, err.message)


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("version: 2\n", "version", "unsupported format version"),
        ("- a\n- b\n", "", "a scenario is a mapping"),
        ("version: 1\nname: x\nname: y\n", "name", "duplicate key"),
        ("version: [1\n", "", "not valid YAML"),
        ("", "", "empty file"),
    ],
)
def test_malformed_documents(text: str, key: str, fragment: str) -> None:
    err = rejected(text)
    assert err.key.removeprefix("<document>") == key and fragment in err.message
    assert err.line is not None


def test_duplicate_label_and_unknown_label() -> None:
    err = rejected(
        scenario_text("""\
        - send: {from: alice/phone, to: bob, label: m}
        - send: {from: alice/phone, to: bob, label: m}
        - assert: {delivered_exactly_once: {messages: all}}
    """)
    )
    assert err.key == "steps[1].send.label" and "already used" in err.message
    err = rejected(scenario_text("- assert: {delivered_exactly_once: {messages: [nope]}}\n"))
    assert err.key == "steps[0].assert.delivered_exactly_once.messages[0]"


def test_generated_fleet_and_concurrent_steps() -> None:
    head = BASE.replace("users:\n", "users:\n  - generate: {count: 12, prefix: u, devices: 2}\n")
    s = loads(
        scenario_text(
            """\
        - concurrently:
            - send: {from: u01/d1, to: u12, label: a}
            - send: {from: u12/d2, to: u01, label: b}
        - assert: {sessions_converge: {devices: [u01/d1, u12/d1]}}
    """,
            head,
        )
    )
    assert len(s.users) == 14 and s.user("u07").devices == ("d1", "d2")
    assert [x.kind for x in s.all_steps()] == ["concurrently", "send", "send", "assert"]


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def test_oracle_clean_needs_a_relay_side_view_to_scan() -> None:
    err = rejected(scenario_text("- assert: {oracle_clean: {}}\n"))
    assert err.key == "steps[0].assert.oracle_clean" and "cannot fail" in err.message
    err = rejected(
        scenario_text("""\
        - compromise: {kind: device, device: bob/phone, as: thief}
        - assert: {oracle_clean: {adversaries: [thief]}}
    """)
    )
    assert "needs server" in err.message
    ok = loads(
        scenario_text("""\
        - compromise: {kind: insider, as: ops}
        - assert: {oracle_clean: {}}
    """)
    )
    assert ok.assertions()[0].identifiers


def test_a_step_declares_the_error_it_expects_and_the_loader_keeps_it() -> None:
    s = loads(scenario_text("""\
        - send: {from: alice/phone, to: bob, label: m, expect: {error: message_id_reused}}
        - assert: {delivered_exactly_once: {messages: all, allow_empty: "nothing to deliver"}}
    """))
    send, check = s.steps
    assert send.expect is not None and send.expect.error == "message_id_reused"
    assert isinstance(check, Assertion) and check.allow_empty == "nothing to deliver"
    error = rejected(scenario_text("""\
        - send: {from: alice/phone, to: bob, label: m, expect: {code: x}}
        - assert: {delivered_exactly_once: {messages: all}}
    """))
    assert "expect" in error.key


@pytest.mark.parametrize(("body", "key", "fragment"), [
    ("{stat: skipped_keys}", "stat", "unknown stat 'skipped_keys'"),
    ("{stat: reconnects, at_least: 3, at_most: 1}", "at_most", "could never hold"),
    ("{stat: reconnects, at_least: 0}", "at_least", "can never fail"),
])
def test_a_mechanism_assertion_that_cannot_fail_or_names_no_stat_is_refused(
        body: str, key: str, fragment: str) -> None:
    error = rejected(scenario_text(f"""\
        - send: {{from: alice/phone, to: bob, label: m}}
        - assert: {{mechanism: {body}}}
    """))
    assert error.key.endswith(key) and fragment in error.message


def test_a_mechanism_assertion_defaults_to_at_least_once() -> None:
    s = loads(scenario_text("""\
        - send: {from: alice/phone, to: bob, label: m}
        - assert: {mechanism: {stat: skipped_keys_used}}
    """))
    check = s.steps[1]
    assert isinstance(check, Assertion) and check.assertion is AssertionKind.MECHANISM
    assert (check.stat, check.at_least, check.at_most) == ("skipped_keys_used", 1, None)


def test_metadata_not_exposed_needs_a_relay_side_adversary_and_classes() -> None:
    error = rejected(scenario_text("""\
        - compromise: {kind: device, device: bob/phone, as: thief}
        - assert: {metadata_not_exposed: {adversary: thief, sees: [timing]}}
    """))
    assert "adversary" in error.key and "needs" in error.message


def test_a_screenshot_names_a_device_and_an_earlier_message() -> None:
    error = rejected(scenario_text("""\
        - screenshot: {device: bob/phone, message: later}
        - send: {from: alice/phone, to: bob, label: later}
        - assert: {delivered_exactly_once: {messages: all}}
    """))
    assert error.key.endswith("screenshot.message") and "later" in error.message
