"""Test helpers: a controllable clock, captured JSON logs, and a client-side "world" that
signs up orgs, logs devices in and publishes real keys through the public API only."""

from __future__ import annotations

import base64
import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import DeviceKeys
from semafore.server.app import create_app
from semafore.server.oplog import configure_logging
from semafore.server.relay import Relay
from semafore.server.settings import Settings
from semafore.server.totp import totp
from semafore.storage.ports import Stores


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LogCapture:
    """Every JSON line the relay writes, for the redaction and plaintext scans."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = configure_logging(self.stream, logging.DEBUG)

    def lines(self) -> list[str]:
        return [line for line in self.stream.getvalue().splitlines() if line]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@dataclass
class DeviceSession:
    org_id: str
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str
    registration_id: int
    role: str
    keys: DeviceKeys | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class World:
    client: TestClient
    clock: FakeClock
    stores: Stores
    totp_secrets: dict[str, bytes] = field(default_factory=dict)
    seed: int = 0

    @property
    def relay(self) -> Relay:
        relay: Relay = self.client.app.state.relay  # type: ignore[attr-defined]
        return relay

    def signup(self, org_id: str, admin: str) -> dict[str, Any]:
        r = self.client.post(
            "/v1/orgs", json={"org_id": org_id, "name": f"{org_id} Ltd", "admin_user_id": admin}
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        secret = body["totp_secret"]
        self.totp_secrets[admin] = base64.b32decode(secret + "=" * (-len(secret) % 8))
        return body

    def totp_code(self, user_id: str) -> str:
        return totp(self.totp_secrets[user_id], self.clock.now)

    def otp(self, org_id: str, user_id: str) -> str:
        r = self.client.post("/v1/auth/otp", json={"org_id": org_id, "user_id": user_id})
        assert r.status_code == 202, r.text
        return self.relay.otp_outbox.codes[(org_id, user_id)]

    def login(
        self, org_id: str, user_id: str, device_id: str, *, admin: bool = False
    ) -> DeviceSession:
        body: dict[str, Any] = {
            "org_id": org_id,
            "user_id": user_id,
            "device_id": device_id,
            "otp": self.otp(org_id, user_id),
        }
        if admin:
            body["totp"] = self.totp_code(user_id)
            self.clock.advance(30)  # next TOTP step for the next admin login
        r = self.client.post("/v1/auth/login", json=body)
        assert r.status_code == 200, r.text
        t = r.json()
        return DeviceSession(
            org_id,
            user_id,
            device_id,
            t["access_token"],
            t["refresh_token"],
            t["registration_id"],
            t["role"],
        )

    def add_member(self, admin: DeviceSession, user_id: str, role: str = "member") -> None:
        r = self.client.put(
            f"/v1/orgs/{admin.org_id}/members/{user_id}", json={"role": role}, headers=admin.headers
        )
        assert r.status_code == 200, r.text

    def join(self, admin: DeviceSession, member: DeviceSession, role: str = "member") -> None:
        """``admin``'s org invites ``member`` (a user of another org), who accepts from
        their own session: the only way a user comes to belong to a second organisation."""
        r = self.client.put(
            f"/v1/orgs/{admin.org_id}/members/{member.user_id}",
            json={"role": role},
            headers=admin.headers,
        )
        assert r.status_code == 202 and r.json()["status"] == "invited", r.text
        r = self.client.post(f"/v1/invitations/{admin.org_id}", headers=member.headers)
        assert r.status_code == 200, r.text

    def switch_org(
        self, session: DeviceSession, org_id: str, totp: str | None = None
    ) -> Any:
        """``POST /v1/auth/switch-org`` with a fresh login code for (org_id, user)."""
        body: dict[str, Any] = {"org_id": org_id, "otp": self.otp(org_id, session.user_id)}
        if totp is not None:
            body["totp"] = totp
        return self.client.post("/v1/auth/switch-org", json=body, headers=session.headers)

    def publish_keys(self, session: DeviceSession, opks: int = 5) -> DeviceKeys:
        self.seed += 1
        keys = DeviceKeys.generate(SeededEntropy(f"device-{self.seed}"), opk_count=opks)
        r = self.client.put("/v1/keys", json=key_upload(keys), headers=session.headers)
        assert r.status_code == 200, r.text
        session.keys = keys
        return keys


def key_upload(keys: DeviceKeys) -> dict[str, Any]:
    spk = keys.spk
    return {
        "ik": b64(keys.identity.ik.public),
        "sik": b64(keys.identity.sik.public),
        "spk": {"key_id": spk.key_id, "pub": b64(spk.keypair.public), "sig": b64(spk.signature)},
        "opks": [{"key_id": k, "pub": b64(o.keypair.public)} for k, o in keys.opks.items()],
    }


def messaging_org(world: World) -> dict[str, DeviceSession]:
    """Org ``acme``: alice (a1, a2; admin), bob (b1, b2) and carol (c1), all logged in with
    keys published (only keyed devices are in a recipient device set: docs/server.md)."""
    world.signup("acme", "alice")
    a1 = world.login("acme", "alice", "a1", admin=True)
    a2 = world.login("acme", "alice", "a2", admin=True)
    world.add_member(a1, "bob")
    world.add_member(a1, "carol")
    b1 = world.login("acme", "bob", "b1")
    b2 = world.login("acme", "bob", "b2")
    c1 = world.login("acme", "carol", "c1")
    org = {"a1": a1, "a2": a2, "b1": b1, "b2": b2, "c1": c1}
    for session in org.values():
        world.publish_keys(session, opks=0)
    return org


def make_world(stores: Stores, **settings: Any) -> tuple[World, TestClient]:
    clock = FakeClock()
    merged: dict[str, Any] = {"clock": clock, "retention_interval": 0.0, **settings}
    app = create_app(Settings(**merged), stores)
    client = TestClient(app)
    return World(client, clock, stores), client
