"""Conformance: ``RateLimitStore.hit_each`` counts a send's counters in order, as ``hit``
each, and stops at the first refused one (the relay's per-IP/per-account and per-sender/
per-recipient counters in one call; Redis makes it one script). Every adapter."""

from __future__ import annotations

import pytest

from semafore.storage.ports import ALL_COUNTED, RateDecision, Stores

pytestmark = pytest.mark.anyio


async def test_every_counter_is_counted_while_all_allow(stores: Stores) -> None:
    rl = stores.ratelimits
    hits = (("a", 2, 60.0), ("b", 3, 60.0))
    assert await rl.hit_each(hits, 120.0) == (ALL_COUNTED, RateDecision(True, 0))
    assert await rl.hit_each(hits, 130.0) == (ALL_COUNTED, RateDecision(True, 0))
    # both were counted twice: "a" is full, "b" has one hit left
    assert (await rl.hit("a", 2, 60.0, 131.0)).allowed is False
    assert (await rl.hit("b", 3, 60.0, 131.0)).allowed is True
    assert (await rl.hit("b", 3, 60.0, 131.0)).allowed is False


async def test_the_first_refused_counter_stops_the_chain(stores: Stores) -> None:
    rl = stores.ratelimits
    assert (await rl.hit("first", 1, 60.0, 120.0)).allowed
    refused, decision = await rl.hit_each((("first", 1, 60.0), ("second", 1, 60.0)), 125.0)
    assert refused == 0 and decision == RateDecision(False, 55)  # window [120, 180)
    assert (await rl.hit("second", 1, 60.0, 126.0)).allowed  # never counted by the chain
    refused, decision = await rl.hit_each((("third", 5, 10.0), ("second", 1, 60.0)), 127.0)
    assert refused == 1 and decision == RateDecision(False, 53)
    assert (await rl.hit("third", 1, 10.0, 127.0)).allowed is False  # "third" was counted


async def test_windows_are_per_counter(stores: Stores) -> None:
    rl = stores.ratelimits
    hits = (("short", 1, 10.0), ("long", 5, 600.0))
    assert (await rl.hit_each(hits, 100.0))[0] == ALL_COUNTED
    assert (await rl.hit_each(hits, 105.0))[0] == 0  # "short" full until 110
    assert (await rl.hit_each(hits, 111.0))[0] == ALL_COUNTED  # a new short window
