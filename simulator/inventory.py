"""Metadata inventory: what each adversary saw besides content (seed §2.2, §2.5).

The seed documents that the server processes routing identifiers, timings and volumes, and that
an adversary reading the database tier sees the communication graph. The inventory shows these
as facts per scenario and per adversary instead of leaving them implicit:

- **routing identifiers** — which registered identifiers (users, devices, messages,
  deliveries, groups, organisations) appear in the view raw, and which only as the 8-hex
  SHA-256 prefix logs use (pseudonymous but linkable);
- **communication graph** — pairs of users whose identifiers appear together, with a message
  or delivery identifier, in one stored item (an envelope document, a Redis queue entry, a
  log line about one send, a wire record): who talked to whom;
- **timing** — how many timestamped observations the view holds (BSON dates, ISO-8601 and
  epoch ``ts`` fields, wire records with capture times) and the span they cover;
- **volume** — items and bytes per tier.

Every class is judged on **message-bearing items** only: items that carry a message or
delivery identifier of the run (an envelope document, a queue entry, a log line about one send,
a wire record of a send). Logins and key uploads also carry user and device ids and timestamps,
but they say nothing about who talked to whom, when, or how much; counting them made
``metadata_exposed`` hold in a run that sent nothing (issue #11). The evidence is the exposed
items themselves: identifiers seen with a message, pairs, times, counts.

The executor supplies the identifiers it used (:class:`Identifier`) and the view's chunks
(:class:`simulator.oracle.Chunk`); this module only searches and counts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import ahocorasick_rs
import bson

from simulator.oracle import TIER_LOG, TIER_MONGODB, TIER_WIRE, Chunk, h8
from simulator.scenario.model import MetadataClass

CATEGORIES = ("user", "device", "message", "delivery", "group", "org", "file")
_IDENT_CHAR = re.compile(rb"[A-Za-z0-9_-]")
_ISO = re.compile(rb"\b(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)")
_EPOCH_TS = re.compile(rb'"(?:ts|time|timestamp|at|[a-z_]+_at)"\s*:\s*(\d{10}(?:\.\d+)?)')


@dataclass(frozen=True)
class Identifier:
    """A routing identifier the run used: ``value`` as the server saw it, ``owner`` the
    scenario-level name (``alice``, ``alice/phone``, ``m.3``) and, for users and devices,
    ``user`` (the user it belongs to, for the communication graph)."""

    category: str
    value: str
    owner: str
    user: str | None = None


@dataclass
class AdversaryInventory:
    adversary: str
    kind: str
    raw: dict[str, list[str]] = field(default_factory=dict)  # category -> owners seen raw
    hashed: dict[str, list[str]] = field(default_factory=dict)  # category -> owners seen as h8
    where: dict[str, list[str]] = field(default_factory=dict)  # owner -> tiers ("log:h8")
    graph: list[tuple[str, str]] = field(default_factory=list)  # user pairs, sorted
    graph_pseudonymous: bool = False  # the graph is only visible through h8 prefixes
    timestamps: int = 0
    first_seen: str | None = None
    last_seen: str | None = None
    items: dict[str, int] = field(default_factory=dict)  # tier -> items
    bytes: dict[str, int] = field(default_factory=dict)  # tier -> bytes
    routed: list[str] = field(default_factory=list)  # owners seen in message-bearing items
    message_items: dict[str, int] = field(default_factory=dict)  # tier -> message-bearing items
    message_bytes: dict[str, int] = field(default_factory=dict)
    message_times: list[str] = field(default_factory=list)  # ISO times of message-bearing items

    def sees(self, what: MetadataClass) -> bool:
        """Whether this view demonstrably holds that class of metadata about messages."""
        return bool(self.evidence(what))

    def evidence(self, what: MetadataClass) -> list[str]:
        """The exposed items themselves (empty: not exposed)."""
        if what is MetadataClass.ROUTING_IDENTIFIERS:
            return [f"{owner} ({', '.join(self.where.get(owner, []))})" for owner in self.routed]
        if what is MetadataClass.COMMUNICATION_GRAPH:
            mark = " (pseudonymous: h8 only)" if self.graph_pseudonymous else ""
            return [f"{a} - {b}{mark}" for a, b in self.graph]
        if what is MetadataClass.TIMING:
            if not self.message_times:
                return []
            return [f"{len(self.message_times)} timed message observation(s) from "
                    f"{self.message_times[0]} to {self.message_times[-1]}",
                    *self.message_times[:10]]
        return [f"{tier}: {n} message-bearing item(s), {self.message_bytes.get(tier, 0)} bytes"
                for tier, n in sorted(self.message_items.items()) if n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "adversary": self.adversary, "kind": self.kind, "raw": self.raw,
            "hashed": self.hashed, "where": self.where,
            "graph": [list(edge) for edge in self.graph],
            "graph_pseudonymous": self.graph_pseudonymous, "timestamps": self.timestamps,
            "first_seen": self.first_seen, "last_seen": self.last_seen, "items": self.items,
            "bytes": self.bytes, "routed": self.routed, "message_items": self.message_items,
            "message_bytes": self.message_bytes, "message_times": self.message_times,
            "sees": {m.value: self.sees(m) for m in MetadataClass},
        }


def build(
    adversary: str, kind: str, chunks: Iterable[Chunk], identifiers: Iterable[Identifier],
    *, wire_times: Iterable[float] = (),
) -> AdversaryInventory:
    """Search ``identifiers`` (raw and as h8) in ``chunks`` and count timings and volumes.

    ``wire_times`` are capture times (epoch seconds) of the wire records in the view, which a
    network observer sees even though the bytes are opaque.
    """
    inv = AdversaryInventory(adversary, kind)
    idents = _disambiguated(identifiers)
    patterns: list[bytes] = []
    meta: list[tuple[Identifier, bool]] = []  # (identifier, hashed?)
    for ident in idents:
        if ident.category not in CATEGORIES:
            raise ValueError(f"unknown identifier category {ident.category!r}")
        patterns.append(ident.value.encode("utf-8"))
        meta.append((ident, False))
        patterns.append(h8(ident.value).encode("ascii"))
        meta.append((ident, True))
    automaton = ahocorasick_rs.BytesAhoCorasick(patterns) if patterns else None
    raw: dict[str, set[str]] = {}
    hashed: dict[str, set[str]] = {}
    where: dict[str, set[str]] = {}
    edges: set[tuple[str, str]] = set()
    raw_edges: set[tuple[str, str]] = set()
    # every timestamp counts, but only how many and the first and last are reported: kept
    # as such, so a view of millions of log lines costs three numbers, not a list
    seen = _Span()
    seen.add(wire_times)
    routed_owners: set[str] = set()
    message_times: list[float] = []
    for chunk in chunks:
        inv.items[chunk.tier] = inv.items.get(chunk.tier, 0) + 1
        inv.bytes[chunk.tier] = inv.bytes.get(chunk.tier, 0) + len(chunk.data)
        stamps = _timestamps(chunk)
        seen.add(stamps)
        if automaton is None:
            continue
        owners_here: set[str] = set()
        users_here: dict[str, bool] = {}  # user -> seen raw
        routed = False
        data = chunk.data
        for pattern, start, end in automaton.find_matches_as_indexes(data, overlapping=True):
            ident, is_hash = meta[pattern]
            before, after = data[start - 1 : start], data[end : end + 1]
            if (before and _IDENT_CHAR.match(before)) or (after and _IDENT_CHAR.match(after)):
                continue
            (hashed if is_hash else raw).setdefault(ident.category, set()).add(ident.owner)
            owners_here.add(ident.owner)
            where.setdefault(ident.owner, set()).add(f"{chunk.tier}:h8" if is_hash else chunk.tier)
            if ident.category in ("message", "delivery"):
                routed = True
            if ident.user is not None:
                users_here[ident.user] = users_here.get(ident.user, False) or not is_hash
        if routed:
            routed_owners |= owners_here
            inv.message_items[chunk.tier] = inv.message_items.get(chunk.tier, 0) + 1
            inv.message_bytes[chunk.tier] = inv.message_bytes.get(chunk.tier, 0) + len(chunk.data)
            message_times.extend(stamps)
            if chunk.tier == TIER_WIRE and "t=" in chunk.location:
                with contextlib.suppress(ValueError):
                    message_times.append(float(chunk.location.rsplit("t=", 1)[1]))
        # An edge needs users *and* a message or delivery in the same item (an envelope, a
        # delivery record, a log line about one send): a user list is not a conversation.
        users = sorted(users_here) if routed else []
        for i, a in enumerate(users):
            for b in users[i + 1 :]:
                edges.add((a, b))
                if users_here[a] and users_here[b]:
                    raw_edges.add((a, b))
    inv.raw = {k: sorted(v) for k, v in sorted(raw.items())}
    inv.hashed = {k: sorted(v - raw.get(k, set())) for k, v in sorted(hashed.items())
                  if v - raw.get(k, set())}
    inv.where = {k: sorted(v) for k, v in sorted(where.items())}
    inv.graph = sorted(edges)
    inv.routed = sorted(routed_owners)
    inv.message_times = [_iso(t) for t in sorted(message_times)]
    inv.graph_pseudonymous = bool(edges) and not raw_edges
    if seen.count:
        inv.timestamps = seen.count
        inv.first_seen = _iso(seen.first)
        inv.last_seen = _iso(seen.last)
    return inv


@dataclass
class _Span:
    """How many timestamps, the earliest and the latest."""

    count: int = 0
    first: float = float("inf")
    last: float = float("-inf")

    def add(self, stamps: Iterable[float]) -> None:
        for stamp in stamps:
            self.count += 1
            self.first = min(self.first, stamp)
            self.last = max(self.last, stamp)


def _disambiguated(identifiers: Iterable[Identifier]) -> list[Identifier]:
    """One identifier per (category, value). A value several owners share (device ``phone``
    of alice and of bob) names them all and belongs to no single user: it must not draw an
    edge of the communication graph."""
    grouped: dict[tuple[str, str], list[Identifier]] = {}
    for ident in identifiers:
        grouped.setdefault((ident.category, ident.value), []).append(ident)
    out = []
    for (category, value), group in grouped.items():
        owners = sorted({i.owner for i in group})
        users = {i.user for i in group}
        out.append(Identifier(category, value, " | ".join(owners),
                              users.pop() if len(users) == 1 else None))
    return out


def _iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).isoformat(timespec="milliseconds")


def _timestamps(chunk: Chunk) -> list[float]:
    out: list[float] = []
    if chunk.tier == TIER_MONGODB:
        out.extend(_bson_dates(chunk.data))
    for match in _ISO.finditer(chunk.data):
        text = match.group(1).decode("ascii").replace(" ", "T").replace("Z", "+00:00")
        try:
            when = _dt.datetime.fromisoformat(text)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.UTC)
        out.append(when.timestamp())
    if chunk.tier in (TIER_LOG, TIER_WIRE) or chunk.data[:1] == b"{":
        out.extend(float(m.group(1)) for m in _EPOCH_TS.finditer(chunk.data))
    return out


def _bson_dates(data: bytes) -> list[float]:
    try:
        doc = bson.decode(data)
    except Exception:  # not a BSON document (a raw oplog slice, a foreign dump)
        return []
    found: list[float] = []

    def walk(value: object) -> None:
        if isinstance(value, _dt.datetime):
            when = value if value.tzinfo else value.replace(tzinfo=_dt.UTC)
            found.append(when.timestamp())
        elif isinstance(value, dict):
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list | tuple):
            for inner in value:
                walk(inner)

    walk(doc)
    return found

