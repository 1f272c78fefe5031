"""The ``log_pseudonyms`` assertion (issue 13 item 5, F-12): seed §2.3's pseudonymous log
identifiers, measured as the share of logged identifier values a log reader reverses with a
dictionary of guessable ids. Unkeyed SHA-256 prefixes are reversed (exposed, as documented);
``log_hash: keyed`` brings the share to chance; zero values is never a pass; and each verdict
turns red when the relay is wrong (forced back to sha256, or logging ids raw)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore import sabotage
from semafore.server.oplog import SHA256_LOG_HASH, LogHash, redact
from simulator.executor import run_scenario
from simulator.guessable_ids import (
    DEVICE_NAMES,
    FIRST_NAMES,
    ROLE_NAMES,
    SURNAMES,
    guessable_ids,
)
from simulator.oracle import TIER_LOG, TIER_WIRE, Chunk
from simulator.pseudonyms import assess, logged_ids, reverse
from simulator.report import Outcome, Verdict
from simulator.scenario import AssertionKind, Scenario, ScenarioError, load, loads
from simulator.scenario.model import Assertion

ROOT = Path(__file__).resolve().parents[2] / "scenarios"
EXPOSED_FILE = ROOT / "out-of-scope" / "log-pseudonyms.yaml"
KEYED_FILE = ROOT / "threats" / "log-pseudonyms-keyed.yaml"
KEYED = LogHash("keyed", b"a deployment secret of 32 bytes!")

# Ids as real directories name people and devices, and ids nobody would guess.
GUESSABLE = ["olivia.smith", "jpatel", "m.garcia", "noah", "iphone", "laptop-2", "pixel-8"]
RANDOM = [f"usr-{secrets.token_hex(6)}" for _ in range(7)]


def _log(records: Sequence[Mapping[str, object]],
         log_hash: LogHash = SHA256_LOG_HASH) -> list[Chunk]:
    """Log lines as the relay writes them: the fields through its one processor."""
    return [Chunk(TIER_LOG, f"relay.log:line {n}", json.dumps(redact(r, log_hash)).encode())
            for n, r in enumerate(records, start=1)]


def _step(**fields: object) -> Assertion:
    return Assertion(index=0, line=1, assertion=AssertionKind.LOG_PSEUDONYMS,
                     adversary="root", **fields)  # type: ignore[arg-type]


# --- the dictionary ---------------------------------------------------------------------------


def test_the_dictionary_holds_the_usual_directory_and_device_formats() -> None:
    words = set(guessable_ids(orgs=["acme"]))
    for plausible in ("olivia", "olivia.smith", "osmith", "o.smith", "smith.olivia",
                      "olivia_smith", "oliviasmith", "olivias-iphone", "laptop-2", "phone2",
                      "iphone-15", "pixel8", "galaxy-s23", "work-laptop", "operator-acme",
                      "acme-admin", "admin", "olivia7", "jsmith3", "john.smith3"):
        assert plausible in words, plausible
    assert not any(r in words for r in RANDOM)


def test_each_word_list_names_each_word_once() -> None:
    for words in (FIRST_NAMES, SURNAMES, ROLE_NAMES, DEVICE_NAMES):
        assert len(set(words)) == len(words)


def test_the_dictionary_is_reproducible_capped_and_seeded() -> None:
    full = guessable_ids()
    assert len(full) == len(set(full)) > 400_000
    assert guessable_ids() == full
    capped = guessable_ids(size=5_000, seed=1)
    assert len(capped) == 5_000 and capped == guessable_ids(size=5_000, seed=1)
    assert capped[:100] == full[:100]  # the most likely candidates come first, whole
    assert guessable_ids(size=5_000, seed=2) != capped  # the crossing tier is sampled
    with pytest.raises(ValueError, match="size"):
        guessable_ids(size=0)


# --- reading the logs -------------------------------------------------------------------------


@given(st.dictionaries(st.sampled_from(["user_id", "device_id", "sub", "event_id", "peer"]),
                       st.text(min_size=1, max_size=12), min_size=1))
def test_every_identifier_value_the_relay_logs_is_collected(fields: dict[str, str]) -> None:
    ids = logged_ids(_log([{"org_id": "acme", **fields}]))
    assert len(ids.values) == len(fields) and ids.orgs == {"acme"}
    assert all(not i.raw and i.field.endswith("_h8") for i in ids.values)


def test_lists_raw_identifiers_and_foreign_lines_are_read_as_they_are() -> None:
    chunks = [
        *_log([{"sender": ["olivia.smith", "jpatel"]}]),
        Chunk(TIER_LOG, "relay.log:line 9", b'{"event":"login","user_id":"noah"}'),
        Chunk(TIER_LOG, "relay.log:line 10", b"Traceback (most recent call last):"),
        Chunk(TIER_WIRE, "wire #0", b'{"user_id_h8":"0a1b2c3d"}'),  # not a log line
    ]
    ids = logged_ids(chunks)
    assert [(i.field, i.raw) for i in ids.values] == [
        ("sender_h8", False), ("sender_h8", False), ("user_id", True)]
    assert ids.lines == 2


# --- reversing --------------------------------------------------------------------------------


def test_unkeyed_prefixes_of_guessable_ids_are_reversed_and_random_ids_are_not() -> None:
    records = [{"user_id": u, "device_id": d} for u, d in itertools.pairwise(GUESSABLE)]
    records += [{"user_id": r} for r in RANDOM]
    result = reverse(logged_ids(_log(records)))
    assert result.reversed == 2 * len(GUESSABLE) - 2
    assert result.values == 2 * len(GUESSABLE) - 2 + len(RANDOM)
    assert set(result.found.values()) == set(GUESSABLE)


def test_org_qualified_accounts_are_reversed_once_the_org_is_seen_raw() -> None:
    """A multi-tenant directory spells accounts ``<org>.alice``, ``alice@<org>``…; org ids
    are raw in the log (seed §2.3), so the reader qualifies its names with each org it saw —
    and with no org line it cannot (the dictionary is generic, not the cast)."""
    ids = ["ext-7f3a.alice", "bob@ext-7f3a", "ext-7f3a/admin", "ext-7f3a.olivia"]
    with_org = reverse(logged_ids(_log([{"org_id": "ext-7f3a", "user_id": u} for u in ids])))
    assert set(with_org.found.values()) == set(ids)
    without = reverse(logged_ids(_log([{"user_id": u} for u in ids])))
    assert without.reversed == 0


def test_composite_markers_are_reversed_from_the_people_found() -> None:
    result = reverse(logged_ids(_log([{"user_id": "olivia.smith"},
                                      {"address": "olivia.smith:iphone"}])))
    assert result.share == 1.0 and "olivia.smith:iphone" in result.found.values()


def test_keyed_prefixes_of_the_same_ids_are_not_reversed() -> None:
    records = [{"user_id": u, "device_id": "phone"} for u in GUESSABLE]
    assert reverse(logged_ids(_log(records))).share == 1.0
    assert reverse(logged_ids(_log(records, KEYED))).share == 0.0


def test_an_identifier_written_raw_counts_as_reversed() -> None:
    chunks = [Chunk(TIER_LOG, "relay.log:line 1", b'{"user_id":"x-unguessable-1"}')]
    result = reverse(logged_ids(chunks))
    assert (result.raw, result.reversed, result.share) == (1, 1, 1.0)


# --- the assertion's outcome ------------------------------------------------------------------


def test_zero_logged_values_is_inconclusive_never_a_pass() -> None:
    no_ids = _log([{"event": "relay_started", "test_mode": True}])
    for step in (_step(reversed_at_most=0.01), _step(reversed_at_least=0.5)):
        outcome, summary, _ = assess(step, no_ids, seed=1)
        assert outcome is Outcome.INCONCLUSIVE and "0 identifier values" in summary
        assert assess(step, [], seed=1)[0] is Outcome.INCONCLUSIVE


def test_the_bounds_decide_exposed_held_or_violated() -> None:
    guessable = _log([{"user_id": u} for u in GUESSABLE])
    keyed = _log([{"user_id": u} for u in GUESSABLE], KEYED)
    outcome, summary, evidence = assess(_step(reversed_at_least=0.5, documented="seed §2.3"),
                                        guessable, seed=1)
    assert outcome is Outcome.EXPOSED and "(100.0%)" in summary and "seed §2.3" in summary
    assert "user_id_h8: 7 of 7 reversed" in evidence
    assert assess(_step(reversed_at_least=0.5), keyed, seed=1)[0] is Outcome.VIOLATED
    assert assess(_step(reversed_at_most=0.01), keyed, seed=1)[0] is Outcome.HELD
    assert assess(_step(reversed_at_most=0.01), guessable, seed=1)[0] is Outcome.VIOLATED


# --- the scenario format ----------------------------------------------------------------------


def _scenario(assertion: str, *, expect: str = "pass", infrastructure: str = "",
              compromise: str = "server") -> str:
    return f"""
version: 1
name: t
description: log pseudonyms
cites: ["seed §2.3"]
expect: {expect}
organisations: [{{id: acme}}]
users:
  - {{id: olivia.smith, org: acme, devices: [iphone]}}
  - {{id: jpatel, org: acme, devices: [laptop]}}
{infrastructure}
steps:
  - send: {{from: olivia.smith/iphone, to: jpatel, label: hi}}
  - compromise: {{kind: {compromise}, as: root}}
  - assert: {{log_pseudonyms: {{adversary: root, {assertion}}}}}
"""


def test_the_loader_reads_bounds_dictionary_and_log_hash() -> None:
    scenario = loads(_scenario("reversed_at_most: 0.01, dictionary: {size: 1000, seed: 4}",
                               infrastructure="infrastructure: {log_hash: keyed, placement: "
                                              "{olivia.smith/iphone: 0}}"))
    [step] = scenario.assertions()
    assert (step.reversed_at_most, step.dictionary_size, step.dictionary_seed) == (0.01, 1000, 4)
    assert not step.is_exposure
    assert scenario.infrastructure.log_hash == "keyed"
    assert scenario.infrastructure.placement  # placing devices keeps the log hash
    exposed = loads(_scenario("reversed_at_least: 0.5", expect="exposed"))
    assert exposed.assertions()[0].is_exposure
    assert exposed.infrastructure.log_hash == "sha256"


@pytest.mark.parametrize(("text", "message"), [
    (_scenario("reversed_at_least: 0.5"), "expect: exposed"),
    (_scenario("reversed_at_most: 0.01, reversed_at_least: 0.5"), "exactly one"),
    (_scenario("documented: seed"), "exactly one"),
    (_scenario("reversed_at_most: 0.01", compromise="network"), "needs server"),
    (_scenario("reversed_at_most: 0.01, allow_empty: fine"), "unknown key 'allow_empty'"),
    (_scenario("reversed_at_most: 1.5"), "log_pseudonyms.reversed_at_most"),
    (_scenario("reversed_at_most: 0.1", infrastructure="infrastructure: {log_hash: md5}"),
     "infrastructure.log_hash"),
])
def test_the_loader_refuses_a_log_pseudonyms_that_could_not_mean_anything(
        text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        loads(text)


# --- the catalogue scenarios turn red on a wrong relay -----------------------------------------


def _forced_sha256(scenario: Scenario) -> Scenario:
    return dataclasses.replace(scenario, infrastructure=dataclasses.replace(
        scenario.infrastructure, log_hash="sha256"))


def _outcome(result: object, kind: str) -> tuple[Outcome, str]:
    [found] = [a for a in result.assertions if a.kind == kind]  # type: ignore[attr-defined]
    return found.outcome, found.summary


@pytest.mark.cites("seed §2.3", "ADR-0019")
def test_the_keyed_scenario_holds_and_fails_on_a_relay_forced_back_to_sha256() -> None:
    scenario = load(KEYED_FILE)
    result = run_scenario(scenario)
    outcome, summary = _outcome(result, "log_pseudonyms")
    assert result.verdict is Verdict.PASS and outcome is Outcome.HELD, summary
    forced = run_scenario(_forced_sha256(scenario))
    outcome, summary = _outcome(forced, "log_pseudonyms")
    assert outcome is Outcome.VIOLATED and forced.verdict is Verdict.FAIL, summary


@pytest.mark.cites("seed §2.3", "ADR-0019")
def test_the_keyed_scenario_fails_on_a_relay_that_logs_raw_ids() -> None:
    with sabotage.switched_on("relay.logs_raw_ids"):
        result = run_scenario(load(KEYED_FILE))
    outcome, summary = _outcome(result, "log_pseudonyms")
    assert outcome is Outcome.VIOLATED and "0 written raw" not in summary, summary
    assert _outcome(result, "oracle_clean")[0] is Outcome.VIOLATED
    assert result.verdict is Verdict.FAIL


@pytest.mark.slow
@pytest.mark.cites("seed §2.3", "seed §2.5")
def test_the_exposed_scenario_measures_and_a_raw_logging_relay_is_caught_by_the_oracle() -> None:
    result = run_scenario(load(EXPOSED_FILE))
    outcome, summary = _outcome(result, "log_pseudonyms")
    assert result.verdict is Verdict.EXPOSED and outcome is Outcome.EXPOSED, summary
    with sabotage.switched_on("relay.logs_raw_ids"):
        raw = run_scenario(load(EXPOSED_FILE))
    assert _outcome(raw, "oracle_clean")[0] is Outcome.VIOLATED
    assert raw.verdict is Verdict.FAIL
