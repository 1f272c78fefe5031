"""The metadata inventory (seed §2.2, §2.5) reports what a view holds as facts: routing
identifiers raw or only as 8-hex prefixes, the communication graph from co-occurrence, timings
(BSON dates, ISO-8601, epoch ``ts``) and volumes."""

from __future__ import annotations

import datetime as dt
import json

import bson
import pytest

from simulator.inventory import Identifier, build
from simulator.oracle import TIER_LOG, TIER_MONGODB, TIER_WIRE, Chunk, h8
from simulator.scenario import MetadataClass

IDS = [
    Identifier("user", "u-alice-1", "alice", user="alice"),
    Identifier("user", "u-bob-22", "bob", user="bob"),
    Identifier("user", "u-carol-3", "carol", user="carol"),
    Identifier("device", "d-alice-phone", "alice/phone", user="alice"),
    Identifier("message", "msg-0001", "m.1"),
    Identifier("org", "acme", "acme"),
]


def test_database_view_shows_graph_identifiers_timing_and_volume() -> None:
    when = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    doc = bson.encode(
        {
            "_id": "msg-0001",
            "sender": "u-alice-1",
            "recipient": "u-bob-22",
            "org_id": "acme",
            "created": when,
            "body": b"\x00opaque",
        }
    )
    other = bson.encode({"_id": "x", "user": "u-carol-3"})
    inv = build(
        "db",
        "database",
        [Chunk(TIER_MONGODB, "sf.envelopes/1", doc), Chunk(TIER_MONGODB, "sf.users/3", other)],
        IDS,
    )
    assert inv.raw == {"message": ["m.1"], "org": ["acme"], "user": ["alice", "bob", "carol"]}
    assert inv.graph == [("alice", "bob")] and not inv.graph_pseudonymous
    assert inv.timestamps == 1 and inv.first_seen == "2026-05-01T12:00:00.000+00:00"
    assert inv.items == {TIER_MONGODB: 2} and inv.bytes[TIER_MONGODB] == len(doc) + len(other)
    assert all(inv.sees(m) for m in MetadataClass)
    assert inv.to_dict()["sees"]["communication_graph"] is True


def test_hashed_logs_show_a_pseudonymous_graph_only() -> None:
    line = json.dumps(
        {
            "ts": 1767225600.5,
            "event": "deliver",
            "sender_h8": h8("u-alice-1"),
            "recipient_h8": h8("u-bob-22"),
            "message_id_h8": h8("msg-0001"),
            "org_id": "acme",
        }
    )
    inv = build("ops", "insider", [Chunk(TIER_LOG, "server.log:line 1", line.encode())], IDS)
    assert inv.raw == {"org": ["acme"]}
    assert inv.hashed == {"message": ["m.1"], "user": ["alice", "bob"]}
    assert inv.where["alice"] == ["log:h8"] and inv.where["acme"] == ["log"]
    assert inv.graph == [("alice", "bob")] and inv.graph_pseudonymous
    assert inv.timestamps == 1 and inv.first_seen is not None


def test_opaque_wire_with_no_message_shows_nothing_about_messages() -> None:
    """Traffic that cannot be tied to any message of the run is no evidence of message
    timing or volume (issue #11: metadata_exposed held in a run that sent nothing)."""
    chunks = [Chunk(TIER_WIRE, f"#{i} up", bytes([i]) * 300) for i in range(5)]
    inv = build("tap", "network", chunks, IDS, wire_times=[1.0, 2.0, 3.5])
    assert not any(inv.sees(m) for m in MetadataClass)
    assert inv.bytes == {TIER_WIRE: 1500} and inv.timestamps == 3


def test_wire_records_of_a_send_show_timing_and_volume_as_the_items_themselves() -> None:
    chunks = [Chunk(TIER_WIRE, f"wire #{i} a:p up ws t={10.0 + i}", b'{"message_id":"msg-0001"}')
              for i in range(2)] + [Chunk(TIER_WIRE, "wire #2 a:p up ws t=13.0", b"\x00" * 40)]
    inv = build("tap", "network", chunks, IDS)
    assert inv.sees(MetadataClass.TIMING) and inv.sees(MetadataClass.VOLUME)
    assert inv.evidence(MetadataClass.VOLUME) == ["wire: 2 message-bearing item(s), 50 bytes"]
    assert len(inv.message_times) == 2


def test_users_listed_together_without_a_message_are_not_an_edge() -> None:
    roster = Chunk(TIER_MONGODB, "sf.users/all", b"u-alice-1 u-bob-22 u-carol-3")
    inv = build("db", "database", [roster], IDS)
    assert inv.raw == {"user": ["alice", "bob", "carol"]} and inv.graph == []


def test_a_value_shared_by_several_owners_names_them_all_and_draws_no_edge() -> None:
    ids = [
        *IDS,
        Identifier("device", "phone", "bob/phone", user="bob"),
        Identifier("device", "phone", "carol/phone", user="carol"),
    ]
    doc = Chunk(TIER_MONGODB, "sf.envelopes/2", b"msg-0001 u-alice-1 phone")
    inv = build("db", "database", [doc], ids)
    assert inv.raw["device"] == ["bob/phone | carol/phone"]
    assert inv.graph == []  # alice with an ambiguous device: no edge to bob or carol


def test_identifier_inside_a_longer_token_is_not_seen() -> None:
    inv = build("x", "database", [Chunk(TIER_MONGODB, "d", b"xu-alice-1x u-bob-223")], IDS)
    assert inv.raw == {}


def test_empty_view_sees_nothing() -> None:
    inv = build("x", "subpoena", [], IDS)
    assert not any(inv.sees(m) for m in MetadataClass)


def test_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError, match="category"):
        build("x", "server", [], [Identifier("colour", "red", "red")])
