"""A relay on a real loopback socket (uvicorn) and HTTP clients from chosen loopback source
addresses: what the account-plane findings of issue 13 are tested through, because the
in-process test client hides what a real socket does (handshake codes, client addresses)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from semafore.deploy.inprocess import RunningRelay, serve_in_thread
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import DeviceKeys
from semafore.server.relay import Relay
from semafore.server.settings import Settings
from semafore.server.totp import totp
from semafore.storage.memory import memory_stores
from tests.server.helpers import FakeClock, key_upload

VICTIM = "127.0.0.1"
STRANGER = "127.0.0.2"
"""Loopback source addresses: the relay sees two different clients (both reach 127.0.0.1)."""


@dataclass
class Session:
    org_id: str
    user_id: str
    device_id: str
    access_token: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class SocketWorld:
    server: RunningRelay
    clock: FakeClock
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    totp_secrets: dict[str, bytes] = field(default_factory=dict)

    @property
    def relay(self) -> Relay:
        return self.server.relay

    def http(self, address: str = VICTIM) -> httpx.Client:
        if address not in self.clients:
            transport = httpx.HTTPTransport(local_address=address)
            self.clients[address] = httpx.Client(
                base_url=self.server.url, transport=transport, timeout=10.0
            )
        return self.clients[address]

    def signup(self, org_id: str, admin: str, address: str = VICTIM) -> None:
        r = self.http(address).post(
            "/v1/orgs", json={"org_id": org_id, "name": org_id, "admin_user_id": admin}
        )
        assert r.status_code == 201, r.text
        secret = r.json()["totp_secret"]
        self.totp_secrets[admin] = base64.b32decode(secret + "=" * (-len(secret) % 8))

    def otp(self, org_id: str, user_id: str, address: str = VICTIM) -> str:
        """Ask for a code from ``address``; the code the relay delivered (its outbox)."""
        self.relay.otp_outbox.codes.pop((org_id, user_id), None)
        r = self.http(address).post("/v1/auth/otp", json={"org_id": org_id, "user_id": user_id})
        assert r.status_code == 202, r.text
        return self.relay.otp_outbox.codes[(org_id, user_id)]

    def login_request(
        self, org_id: str, user_id: str, device_id: str, otp: str, *,
        address: str = VICTIM, admin: bool = False,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "org_id": org_id, "user_id": user_id, "device_id": device_id, "otp": otp,
        }
        if admin:
            body["totp"] = totp(self.totp_secrets[user_id], self.clock.now)
            self.clock.advance(30)  # next TOTP step for the next admin login
        return self.http(address).post("/v1/auth/login", json=body)

    def login(
        self, org_id: str, user_id: str, device_id: str, *,
        address: str = VICTIM, admin: bool = False, otp: str | None = None,
    ) -> Session:
        code = otp if otp is not None else self.otp(org_id, user_id, address)
        r = self.login_request(org_id, user_id, device_id, code, address=address, admin=admin)
        assert r.status_code == 200, r.text
        t = r.json()
        return Session(org_id, user_id, device_id, t["access_token"], t["role"])

    def publish_keys(self, session: Session) -> None:
        """``PUT /v1/keys`` with fresh keys: only a device with keys is in its user's
        recipient device set (docs/server.md "Recipient device set")."""
        seed = f"{session.user_id}:{session.device_id}"
        keys = DeviceKeys.generate(SeededEntropy(seed), opk_count=0)
        r = self.http().put("/v1/keys", json=key_upload(keys), headers=session.headers)
        assert r.status_code == 200, r.text

    def put_member(self, admin: Session, user_id: str, role: str = "member") -> httpx.Response:
        return self.http().put(
            f"/v1/orgs/{admin.org_id}/members/{user_id}", json={"role": role},
            headers=admin.headers,
        )

    def audit(self, admin: Session) -> list[dict[str, Any]]:
        r = self.http().get(f"/v1/orgs/{admin.org_id}/audit", headers=admin.headers)
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()["events"]
        return events


@contextmanager
def socket_world(**overrides: Any) -> Iterator[SocketWorld]:
    clock = FakeClock()
    settings = Settings(**{"clock": clock, "retention_interval": 0.0, **overrides})
    stores = memory_stores()
    with serve_in_thread(settings, stores) as server:
        world = SocketWorld(server, clock)
        try:
            yield world
        finally:
            for client in world.clients.values():
                client.close()
