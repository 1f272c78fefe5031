"""A real relay on a loopback port and accounts on it, for the client's integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from semafore.client import Account, DeviceClient, ManualClock, create_organisation, enrol_members
from semafore.client.account import fixed_otp
from semafore.deploy.inprocess import RunningRelay
from semafore.protocol.entropy import SeededEntropy
from semafore.server.settings import Settings, unlimited_rate_limits
from semafore.storage.memory import memory_stores
from simulator.fleet import serve_relay

ORG = "acme"


@dataclass
class World:
    server: RunningRelay
    clock: ManualClock
    entropy: SeededEntropy
    admin: Account
    accounts: dict[str, Account] = field(default_factory=dict)

    def account(self, user_id: str) -> Account:
        acc = self.accounts.get(user_id)
        if acc is None:
            acc = self.accounts[user_id] = Account(
                ORG, user_id, self.server.url, self.entropy.fork, self.clock, fixed_otp()
            )
        return acc

    async def device(self, user_id: str, device_id: str, *, connect: bool = False) -> DeviceClient:
        return await self.account(user_id).add_device(device_id, connect=connect)


@contextlib.asynccontextmanager
async def world(users: list[str], seed: str = "client-tests") -> AsyncIterator[World]:
    clock = ManualClock()
    settings = Settings(
        test_mode=True,
        test_orgs=frozenset({ORG}),
        rate_limits=unlimited_rate_limits(),
        retention_interval=0,
        clock=clock.now,
    )
    stores = memory_stores()
    entropy = SeededEntropy(seed)
    async with serve_relay(settings, stores) as server:
        org = await create_organisation(server.url, ORG, "Acme", "admin", entropy.fork("org"))
        admin = Account(
            ORG, "admin", server.url, entropy.fork, clock, fixed_otp(),
            totp_secret=str(org["totp_secret"]),
        )
        admin_device = await admin.add_device("console", connect=False)
        await enrol_members(admin_device, ORG, users, seats=len(users) + 1)
        w = World(server, clock, entropy, admin)
        try:
            yield w
        finally:
            for acc in w.accounts.values():
                await acc.close()
            await admin.close()
    await stores.close()
