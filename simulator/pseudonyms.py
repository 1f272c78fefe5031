"""Seed §2.3 against reality: how many logged identifiers a log reader turns back into ids.

Seed §2.3 says that after the ADR-0019 hardening, identifiers reach the relay's operational
logs only as ``*_h8`` SHA-256 prefixes, so "a server-side adversary inspecting operational
logs sees substantially less". Issue 13 F-12 measured otherwise: an unkeyed prefix of a
guessable id is reversed by hashing guesses. This module is that adversary:

1. :func:`logged_ids` collects every identifier value in the log lines of an adversary's view:
   each ``*_h8`` pseudonym (a list field counts each element), and each identifier written
   raw under one of the relay's identifier field names (``oplog.HASHED_FIELDS``), which needs
   no reversing at all; the organisation ids the lines show raw (seed §2.3 keeps them raw by
   design) seed the dictionary's org-bound role accounts;
2. :func:`reverse` hashes a dictionary of guessable ids (:mod:`simulator.guessable_ids`) the
   way the documented scheme does, with the relay's own :func:`semafore.server.oplog.h8` and
   no key (the reader does not hold the relay's ``log_hash`` secret: it is kept out of the
   log and data tiers), then tries ``user:device`` / ``user/device`` composites of what it
   reversed; it reports the share of logged values reversed, per field too;
3. :func:`assess` turns that share into the ``log_pseudonyms`` assertion's outcome:
   ``reversed_at_least`` is a documented exposure (``exposed`` when the measured share reaches
   it), ``reversed_at_most`` a guarantee (``held`` when it stays under). Zero logged values is
   ``inconclusive``: no evidence is never a pass (issue #11).

A 32-bit prefix also matches some dictionary entry by chance (about ``dictionary size /
2^32`` per value, ~1e-4 for the full list): under ``log_hash: keyed`` that is the whole
measured share, and it is what "near 0" means.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from semafore.server.oplog import HASHED_FIELDS, h8
from simulator.guessable_ids import DEVICE_NAMES, guessable_ids
from simulator.oracle import TIER_LOG, Chunk
from simulator.report.model import Outcome
from simulator.scenario.model import Assertion


@dataclass(frozen=True)
class LoggedId:
    """One identifier value in one log line: a pseudonym, or an id the relay wrote raw."""

    field: str  # the log field as written: "user_id_h8", or "user_id" when raw
    value: str
    location: str
    raw: bool = False


@dataclass
class LogIds:
    """What the log lines of a view show about identities."""

    values: list[LoggedId] = field(default_factory=list)
    orgs: set[str] = field(default_factory=set)
    lines: int = 0  # JSON log lines read


def logged_ids(chunks: Iterable[Chunk]) -> LogIds:
    """Every identifier value in the log-tier chunks (one JSON object per line; a line that is
    not one is not the relay's and is skipped)."""
    out = LogIds()
    for chunk in chunks:
        if chunk.tier != TIER_LOG:
            continue
        for line in chunk.data.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            out.lines += 1
            for key, value in record.items():
                if key == "org_id" and isinstance(value, str):
                    out.orgs.add(value)
                elif key.endswith("_h8"):
                    items = value if isinstance(value, list) else [value]
                    out.values.extend(LoggedId(key, v, chunk.location) for v in items
                                      if isinstance(v, str))
                elif key in HASHED_FIELDS and isinstance(value, str):
                    out.values.append(LoggedId(key, value, chunk.location, raw=True))
    return out


@dataclass
class Reversal:
    """The measured share, overall and per field, with the reversed pseudonyms."""

    values: int  # identifier values in the logs (occurrences)
    reversed: int  # of them: raw, or a pseudonym the dictionary reversed
    distinct: int
    distinct_reversed: int
    raw: int
    dictionary: int  # candidate ids hashed
    by_field: dict[str, tuple[int, int]]  # field -> (values, reversed)
    found: dict[str, str]  # pseudonym -> the id it was reversed to

    @property
    def share(self) -> float:
        return self.reversed / self.values if self.values else 0.0


def reverse(ids: LogIds, *, size: int | None = None, seed: int = 0) -> Reversal:
    """Reverse the pseudonyms in ``ids`` with :func:`guessable_ids` (``size``, ``seed``) and
    the seed §2.3 unkeyed prefix."""
    dictionary = guessable_ids(orgs=ids.orgs, size=size, seed=seed)
    pseudonyms = {i.value for i in ids.values if not i.raw}
    found: dict[str, str] = {}
    for candidate in dictionary:
        digest = h8(candidate)
        if digest in pseudonyms and digest not in found:
            found[digest] = candidate
    left = pseudonyms - found.keys()
    if left:  # composite identity markers: the people reversed, on the usual devices
        for person in sorted(set(found.values())):
            for device in DEVICE_NAMES:
                for composite in (f"{person}:{device}", f"{person}/{device}"):
                    digest = h8(composite)
                    if digest in left:
                        found[digest] = composite
                        left.discard(digest)
    by_field: dict[str, tuple[int, int]] = {}
    reversed_total = 0
    for item in ids.values:
        hit = item.raw or item.value in found
        reversed_total += hit
        count, hits = by_field.get(item.field, (0, 0))
        by_field[item.field] = (count + 1, hits + hit)
    raw_values = {i.value for i in ids.values if i.raw}
    return Reversal(values=len(ids.values), reversed=reversed_total,
                    distinct=len(pseudonyms) + len(raw_values),
                    distinct_reversed=len(found) + len(raw_values),
                    raw=sum(1 for i in ids.values if i.raw), dictionary=len(dictionary),
                    by_field=by_field, found=found)


def assess(step: Assertion, chunks: Iterable[Chunk], *,
           seed: int) -> tuple[Outcome, str, list[str]]:
    """The ``log_pseudonyms`` assertion over an adversary's view (``seed``: the scenario's,
    unless the step names a dictionary seed)."""
    ids = logged_ids(chunks)
    if not ids.values:
        return (Outcome.INCONCLUSIVE, f"0 identifier values in {ids.lines} log line(s) of the "
                "view: nothing to reverse", [])
    chosen = seed if step.dictionary_seed is None else step.dictionary_seed
    result = reverse(ids, size=step.dictionary_size, seed=chosen)
    summary = (f"{result.reversed} of {result.values} logged identifier values "
               f"({result.share:.1%}) reversed with a {result.dictionary}-id dictionary "
               f"({result.distinct_reversed} of {result.distinct} distinct; {result.raw} "
               "written raw)")
    if step.reversed_at_least is not None:
        bound = step.reversed_at_least
        outcome = Outcome.EXPOSED if result.share >= bound else Outcome.VIOLATED
        summary += f"; exposure needs at least {bound:.1%}"
    else:
        bound = step.reversed_at_most if step.reversed_at_most is not None else 0.0
        outcome = Outcome.HELD if result.share <= bound else Outcome.VIOLATED
        summary += f"; at most {bound:.1%} allowed"
    if step.documented:
        summary += f" ({step.documented})"
    evidence = [f"{name}: {hits} of {count} reversed"
                for name, (count, hits) in sorted(result.by_field.items())]
    evidence += [f"{digest} = {ident}" for digest, ident in sorted(result.found.items())][:20]
    evidence += [f"raw {i.field}: {i.value} at {i.location}" for i in ids.values if i.raw][:10]
    return outcome, summary, evidence
