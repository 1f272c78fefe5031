"""The attacker's side of the public API: HTTP from a chosen loopback source address, login
codes from the relay's test OTP or its OTP sink, TOTP for admins, WebSockets.

Nothing here reaches into a relay object: every call is an HTTP request or a WebSocket to
``Arena.url`` (issue 13 item 6: the scenarios replay against any relay by URL).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from semafore.client.account import totp_code
from semafore.server.otp_sink import read_codes, sink_size
from simulator.attacks.base import Arena, AttackError

SINK_POLL_S = 0.02
SINK_WAIT_S = 5.0


@dataclass
class Answer:
    """One HTTP answer: status, the typed error code (if any) and the JSON body."""

    status: int
    code: str | None
    body: Any
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Session:
    """A logged-in device's tokens."""

    user_id: str
    org_id: str
    device_id: str
    access_token: str
    role: str


@dataclass
class Wire:
    """HTTP to the relay from one loopback source address (``async with``)."""

    arena: Arena
    address: str
    client: httpx.AsyncClient = field(init=False)
    _totp_steps: dict[str, int] = field(default_factory=dict)

    async def __aenter__(self) -> Wire:
        transport = httpx.AsyncHTTPTransport(local_address=self.address, retries=0)
        self.client = httpx.AsyncClient(base_url=self.arena.url, transport=transport,
                                        timeout=10.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, *, token: str | None = None,
                   json: Any = None) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.request(method, path, json=json, headers=headers)
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("error") if isinstance(body, dict) else None
        return Answer(response.status_code, code if isinstance(code, str) else None, body,
                      response.headers.get("retry-after"))

    # -- logging in ----------------------------------------------------------------------

    async def request_code(self, org_id: str, user_id: str) -> Answer:
        return await self.call("POST", "/v1/auth/otp", json={"org_id": org_id, "user_id": user_id})

    async def code_for(self, org_id: str, user_id: str) -> str:
        """A login code for (org, user) at this address: the test OTP for a test org, else
        one requested now and read from the relay's OTP sink."""
        if org_id in self.arena.test_orgs:
            return self.arena.test_otp
        sink = self.arena.otp_sink
        if sink is None:
            raise AttackError("otp_sink", f"org {org_id!r} is not a test org and the relay "
                              "has no OTP sink to read its codes from (--relay-otp-sink DIR)")
        offset = sink_size(sink)
        asked = await self.request_code(org_id, user_id)
        if not asked.ok:
            raise AttackError("otp", f"the relay refused a login code for {user_id}@{org_id}: "
                              f"{asked.status} {asked.code}")
        return await self.read_sink(org_id, user_id, offset)

    async def read_sink(self, org_id: str, user_id: str, offset: int) -> str:
        """The newest code the sink received for (org, user, this address) after ``offset``."""
        assert self.arena.otp_sink is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SINK_WAIT_S
        while True:
            codes = [c.code for c in read_codes(self.arena.otp_sink, offset)
                     if (c.org_id, c.user_id, c.address) == (org_id, user_id, self.address)]
            if codes:
                return codes[-1]
            if loop.time() > deadline:
                raise AttackError("otp_sink", f"no code for {user_id}@{org_id} reached "
                                  f"{self.arena.otp_sink} within {SINK_WAIT_S:g} s")
            await asyncio.sleep(SINK_POLL_S)

    def totp(self, secret: str) -> str:
        """A TOTP code on the relay's clock for a step this wire has not used (ADR-0161)."""
        for offset in (-1, 0, 1):
            code, step = totp_code(secret, self.arena.clock(), offset)
            if step > self._totp_steps.get(secret, -1):
                self._totp_steps[secret] = step
                return code
        raise AttackError("totp", "three TOTP steps used in this window")

    async def login(self, org_id: str, user_id: str, device_id: str, *, otp: str | None = None,
                    totp_secret: str | None = None) -> tuple[Answer, Session | None]:
        code = otp if otp is not None else await self.code_for(org_id, user_id)
        body: dict[str, Any] = {"org_id": org_id, "user_id": user_id, "device_id": device_id,
                                "otp": code}
        if totp_secret is not None:
            body["totp"] = self.totp(totp_secret)
        answer = await self.call("POST", "/v1/auth/login", json=body)
        if not answer.ok:
            return answer, None
        b = answer.body
        return answer, Session(user_id, org_id, device_id, str(b["access_token"]), str(b["role"]))

    async def must_login(self, org_id: str, user_id: str, device_id: str,
                         totp_secret: str | None = None) -> Session:
        answer, session = await self.login(org_id, user_id, device_id, totp_secret=totp_secret)
        if session is None:
            raise AttackError("login", f"{user_id}@{org_id} could not log in: {answer.status} "
                              f"{answer.code}")
        return session

    async def own_org(self, base: str) -> tuple[str, str, Session]:
        """Sign up an organisation of the attacker's own (anyone may) and log its admin in
        with TOTP: (org id, admin user id, admin session)."""
        org_id, admin = f"{base}-{self.arena.tag}", f"{base}-boss-{self.arena.tag}"
        signed = await self.call("POST", "/v1/orgs", json={"org_id": org_id, "name": base,
                                                           "admin_user_id": admin})
        if not signed.ok:
            raise AttackError("signup", f"could not sign up {org_id}: {signed.status} "
                              f"{signed.code}")
        secret = str(signed.body["totp_secret"])
        session = await self.must_login(org_id, admin, "console", totp_secret=secret)
        await self.call("PUT", f"/v1/orgs/{org_id}/subscription", token=session.access_token,
                        json={"plan": "enterprise", "seats": 50})
        return org_id, admin, session

    # -- WebSockets ----------------------------------------------------------------------

    def ws_url(self) -> str:
        return self.arena.url.replace("http://", "ws://", 1).rstrip("/") + "/v1/websocket"

    async def open_socket(self, token: str) -> websockets.ClientConnection:
        return await websockets.connect(
            self.ws_url(), additional_headers={"Authorization": f"Bearer {token}"},
            compression=None, open_timeout=10, ping_interval=None,
            local_addr=(self.address, 0),
        )


async def close_quietly(sockets: list[websockets.ClientConnection]) -> None:
    for ws in sockets:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 1.0)
