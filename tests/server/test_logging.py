"""Operational logs (seed §2.3): identifiers only as 8-hex SHA-256 prefixes, org_id raw,
enforced by the one processor ``redact``."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.server.oplog import HASHED_FIELDS, RAW_FIELDS, event, h8, redact
from tests.server.helpers import LogCapture, World


def test_h8_is_the_sha256_prefix() -> None:
    assert h8("alice") == hashlib.sha256(b"alice").hexdigest()[:8]


@pytest.mark.cites("ADR-0019")
def test_identifier_fields_become_h8_and_org_stays_raw() -> None:
    out = redact(
        {
            "org_id": "acme",
            "sub": "alice",
            "subject": "bob",
            "device_id": "phone",
            "message_id": "m1",
            "delivery_id": "d1",
            "group_id": "g1",
            "address": "alice:phone",
            "count": 3,
        }
    )
    assert out == {
        "org_id": "acme",
        "sub_h8": h8("alice"),
        "subject_h8": h8("bob"),
        "device_id_h8": h8("phone"),
        "message_id_h8": h8("m1"),
        "delivery_id_h8": h8("d1"),
        "group_id_h8": h8("g1"),
        "address_h8": h8("alice:phone"),
        "count": 3,
    }


@given(st.text(min_size=1, max_size=20).filter(lambda k: k not in RAW_FIELDS), st.text())
def test_unknown_string_fields_fail_closed(key: str, value: str) -> None:
    out = redact({key: value})
    assert list(out.values()) == [h8(value)]
    assert next(iter(out)).endswith("_h8")


def test_every_hashed_field_is_hashed() -> None:
    for name in HASHED_FIELDS:
        assert redact({name: "secret-id"}) == {f"{name}_h8": h8("secret-id")}


def test_log_lines_are_json_with_hashes(logs: LogCapture) -> None:
    event("demo", org_id="acme", sub="alice", user_id="alice", message_id="m-42", count=1)
    [line] = [e for e in logs.events() if e["event"] == "demo"]
    assert line["org_id"] == "acme" and line["sub_h8"] == h8("alice")
    raw = logs.lines()[-1]
    assert "alice" not in raw and "m-42" not in raw
    json.loads(raw)


def test_third_party_log_text_is_dropped(logs: LogCapture) -> None:
    logging.getLogger("uvicorn.error").warning("client alice:phone said %s", "secret")
    raw = logs.lines()[-1]
    assert "alice" not in raw and "secret" not in raw


@pytest.mark.cites("ADR-0019")
def test_a_whole_auth_flow_logs_no_raw_identifier(world: World, logs: LogCapture) -> None:
    world.signup("acme", "alice-7f1e")
    admin = world.login("acme", "alice-7f1e", "phone-93ab", admin=True)
    world.add_member(admin, "bob-c0de")
    world.login("acme", "bob-c0de", "laptop-11aa")
    text = "\n".join(logs.lines())
    assert "http_request" in text and '"org_id":"acme"' in text
    for raw in ("alice-7f1e", "phone-93ab", "bob-c0de", "laptop-11aa"):
        assert raw not in text
    assert h8("alice-7f1e") in text
