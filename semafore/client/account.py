"""A user with several devices, and the organisation bootstrap an admin performs.

Each device of an :class:`Account` is its own :class:`DeviceClient` with its own keys,
sessions, token and socket (seed §4.2: devices are independent peers); the account only
creates, re-installs and removes them. Logging in needs a one-time code: :data:`OtpSource`
abstracts where it comes from (the relay's test OTP under ADR-0164, a test mail catcher,
or a human). Admins also present an RFC 6238 TOTP (ADR-0161), computed here.
"""

from __future__ import annotations

import base64
import hmac
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from semafore.client.client import DeviceClient
from semafore.client.clock import Clock
from semafore.client.device import Device, IdentityPolicy, PrekeyPolicy
from semafore.client.errors import ServerRejected
from semafore.client.transport import RelayHttp
from semafore.protocol.entropy import Entropy

OtpSource = Callable[[str, str], Awaitable[str]]
"""``(org_id, user_id) -> code``: how a login obtains its one-time password."""
EntropyFor = Callable[[str], Entropy]
"""``label -> entropy``: one independent stream per device installation."""
UrlFor = Callable[[str], str]
"""``device address -> base URL``: lets the simulator route each device through its proxy."""

TOTP_STEP = 30


def totp_code(secret_b32: str, now: float, offset_steps: int = 0) -> tuple[str, int]:
    """RFC 6238 (HMAC-SHA1, 30 s, 6 digits): the code and its time step."""
    secret = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    step = int(now // TOTP_STEP) + offset_steps
    mac = hmac.digest(secret, struct.pack(">Q", step), "sha1")
    offset = mac[-1] & 0x0F
    code = (int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF) % 10**6
    return f"{code:06d}", step


def fixed_otp(code: str = "000000") -> OtpSource:
    """The relay's test OTP (works only on a relay in test mode for allow-listed orgs)."""

    async def source(org_id: str, user_id: str) -> str:
        return code

    return source


class Account:
    def __init__(
        self,
        org_id: str,
        user_id: str,
        url_for: UrlFor | str,
        entropy_for: EntropyFor,
        clock: Clock,
        otp: OtpSource,
        *,
        totp_secret: str | None = None,
        prekeys: PrekeyPolicy | None = None,
        opk_count: int = 20,
        policy: IdentityPolicy = IdentityPolicy.ACCEPT_AND_NOTIFY,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self._url_for = url_for if callable(url_for) else (lambda _addr, u=url_for: u)
        self.entropy_for = entropy_for
        self.clock = clock
        self.otp = otp
        self.totp_secret = totp_secret
        self.prekeys = prekeys or PrekeyPolicy(opk_batch=max(opk_count, 1))
        self.opk_count = opk_count
        self.policy = policy
        self.client_options = client_options or {}
        self.devices: dict[str, DeviceClient] = {}
        self.installs: dict[str, int] = {}
        self._last_totp_step = -1

    def url_for(self, address: str) -> str:
        return self._url_for(address)

    def _totp(self) -> str | None:
        """A TOTP code for a step not used before (the relay refuses a replayed step)."""
        if self.totp_secret is None:
            return None
        for offset in (-1, 0, 1):
            code, step = totp_code(self.totp_secret, self.clock.now(), offset)
            if step > self._last_totp_step:
                self._last_totp_step = step
                return code
        raise ServerRejected(429, "totp_steps_exhausted", "wait for the next TOTP step")

    async def add_device(self, device_id: str, *, connect: bool = True) -> DeviceClient:
        """Install a device: fresh keys, login (the relay assigns the registration id),
        publish keys, and (optionally) open its push socket."""
        generation = self.installs.get(device_id, 0)
        self.installs[device_id] = generation + 1
        label = f"device:{self.user_id}:{device_id}:{generation}"
        entropy = self.entropy_for(label)
        device = Device.create(
            self.user_id, device_id, entropy, self.clock.now(), opk_count=self.opk_count,
            policy=self.policy,
        )
        address = device.address
        base = self.url_for(address)
        client = DeviceClient(
            device,
            self.org_id,
            base,
            entropy,
            self.clock,
            prekeys=self.prekeys,
            **self.client_options,
        )
        async def login_again() -> None:
            await client.login(await self.otp(self.org_id, self.user_id), self._totp())

        client.http.reauthenticate = login_again
        for attempt in range(3):
            try:
                await client.register(await self.otp(self.org_id, self.user_id), self._totp())
                break
            except ServerRejected as exc:
                # The relay refuses a TOTP step another session of this admin already used
                # (ADR-0161 replay protection); the next call offers the next step.
                if exc.code != "invalid_totp" or self.totp_secret is None or attempt == 2:
                    raise
        self.devices[device_id] = client
        if connect:
            client.connect()
        return client

    async def remove_device(self, device_id: str) -> None:
        """Unregister the device at the relay (its queue and keys go) and close it."""
        client = self.devices.pop(device_id)
        try:
            await client.remove_device(device_id)
        finally:
            await client.close()

    async def reinstall_device(self, device_id: str, *, connect: bool = True) -> DeviceClient:
        """Wipe and reinstall: a new identity under the same device id (peers see 410 and,
        on their next bundle fetch, an identity change)."""
        await self.remove_device(device_id)
        return await self.add_device(device_id, connect=connect)

    async def close(self) -> None:
        for client in list(self.devices.values()):
            await client.close()
        self.devices.clear()


async def create_organisation(
    base_url: str,
    org_id: str,
    name: str,
    admin_user_id: str,
    entropy: Entropy,
    *,
    seats: int | None = None,
) -> dict[str, Any]:
    """``POST /v1/orgs``: sign up an organisation; returns the admin's TOTP secret."""
    http = RelayHttp(base_url, entropy)
    try:
        out: dict[str, Any] = await http.json(
            "POST",
            "/v1/orgs",
            json={"org_id": org_id, "name": name, "admin_user_id": admin_user_id},
            auth=False,
        )
    finally:
        await http.close()
    if seats is not None:
        out["seats_requested"] = seats
    return out


async def enrol_members(
    admin: DeviceClient, org_id: str, user_ids: list[str], *, seats: int, plan: str = "enterprise"
) -> None:
    """As an admin device: size the subscription and add members (idempotent)."""
    await admin.http.json(
        "PUT", f"/v1/orgs/{org_id}/subscription", json={"plan": plan, "seats": seats}
    )
    for user_id in user_ids:
        if user_id == admin.user_id:
            continue
        await admin.http.json(
            "PUT", f"/v1/orgs/{org_id}/members/{user_id}", json={"role": "member"}
        )
