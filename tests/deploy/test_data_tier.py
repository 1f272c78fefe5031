"""The harness's data tier (semafore.deploy.data_tier) and its in-process relay settings
(semafore.deploy.harness_relay): what the interop gate's live run and the simulator stand
their relay on, moved into the library so neither depends on the simulator (issue 14 item 2).
Backend providers (local, containers) are exercised by the simulator's backend-tier tests;
here the embedded tier, which every CI run uses, and the contract of the settings."""

from __future__ import annotations

import asyncio

import pytest

from semafore.client.clock import ManualClock
from semafore.deploy.data_tier import TIER_STORE, DataTier
from semafore.deploy.errors import SettingsError
from semafore.deploy.harness_relay import relay_settings
from semafore.deploy.settings import ProviderKind
from semafore.oracle import TIER_OBJECT_STORE
from semafore.server.settings import DEFAULT_RATE_LIMITS
from semafore.storage.ports import Org

CANARY = b"canary-7f3e-the-oracle-must-see-this"


def test_the_embedded_dump_holds_every_byte_written_to_the_stores() -> None:
    async def run() -> list[tuple[str, str, bytes]]:
        tier = DataTier("embedded", "t1")
        stores = await tier.start()
        await stores.accounts.create_org(Org("acme", CANARY.decode(), 0.0))
        await stores.blobs.put("attachment-1", b"\x00" + CANARY + b"\x00")
        chunks = await tier.dump()
        await tier.close()
        return [(c.tier, c.location, c.data) for c in chunks]

    chunks = asyncio.run(run())
    tiers_with_canary = {tier for tier, _, data in chunks if CANARY in data}
    assert tiers_with_canary == {TIER_STORE, TIER_OBJECT_STORE}


def test_the_embedded_tier_has_no_backend_to_fault() -> None:
    tier = DataTier("embedded", "t2")
    assert tier.backend("redis") is None


def test_an_unknown_provider_is_a_settings_error_naming_the_field() -> None:
    tier = DataTier("cloud", "t3")
    with pytest.raises(SettingsError) as caught:
        asyncio.run(tier.start())
    assert caught.value.field == "provider"
    assert "'cloud'" in caught.value.reason
    # the known names are ProviderKind's, each once (one list per concept, issue #14 item 1)
    known = caught.value.reason.split("(known: ", 1)[1].rstrip(")").split(", ")
    assert known == [kind.value for kind in ProviderKind]


def test_dump_before_start_is_refused() -> None:
    with pytest.raises(AssertionError, match="before start"):
        asyncio.run(DataTier("embedded", "t4").dump())


def test_harness_relay_settings_allow_test_otp_only_for_the_harness_orgs() -> None:
    clock = ManualClock(1000.0)
    settings = relay_settings(["org-a", "org-b"], clock)
    assert settings.test_mode and settings.test_orgs == frozenset({"org-a", "org-b"})
    assert settings.rate_limits.keys() == DEFAULT_RATE_LIMITS.keys()
    assert all(hits >= 10**6 for hits, _ in settings.rate_limits.values())
    clock.advance(5.0)
    assert settings.clock() == 1005.0


def test_harness_relay_settings_overrides_win() -> None:
    settings = relay_settings(["org-a"], ManualClock(), max_devices_per_user=3, test_mode=False)
    assert settings.max_devices_per_user == 3 and not settings.test_mode
