"""Property-based API fuzzing of the served OpenAPI document (schemathesis): every generated
request, valid or not, gets a documented status with a body matching the documented schema;
never a 5xx. Callers are authenticated (a fresh token per case) so the fuzzer reaches the
handlers, not just the 401 gate. The fast tier is bounded (a few examples per operation);
the ``slow`` tier adds schemathesis' boundary-value coverage phase and more examples."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from semafore.server.app import create_app
from semafore.server.settings import Settings, unlimited_rate_limits
from semafore.server.tokens import Principal, issue_access, new_family_id
from semafore.storage.memory import memory_stores
from semafore.storage.ports import Device, Membership, Org, Role, User


def _app() -> Any:
    stores = memory_stores()
    app_settings = Settings(retention_interval=0, rate_limits=unlimited_rate_limits())

    async def seed() -> None:
        now = time.time()
        await stores.accounts.create_org(Org("0", "Fuzz org", now))
        roles: tuple[tuple[str, Role], ...] = (("0", "admin"), ("1", "member"))
        for user, role in roles:
            await stores.accounts.create_user(User(user, now))
            await stores.accounts.put_membership(Membership("0", user, role, now))
            await stores.accounts.add_device(Device(user, "0", 1, now))

    asyncio.run(seed())
    return create_app(app_settings, stores)


def _token(app: Any, user: str) -> str:
    relay = app.state.relay
    principal = Principal(user, "0", "0", "admin" if user == "0" else "member", new_family_id())
    token: str = issue_access(relay.settings, principal, relay.now())
    return token


def schema_under_test(coverage: bool, max_examples: int) -> BaseSchema:
    config = SchemathesisConfig.from_dict(
        {
            "phases": {
                "examples": {"enabled": coverage},
                "coverage": {"enabled": coverage},
                "stateful": {"enabled": False},
            },
            "generation": {"max-examples": max_examples},
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", _app(), config=config)


fast = schema_under_test(coverage=False, max_examples=8)


def call_as(case: Any, app: Any, user: str) -> None:
    headers = dict(case.headers or {})
    headers.setdefault("Authorization", f"Bearer {_token(app, user)}")
    case.call_and_validate(headers=headers)


@fast.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_openapi_document(case: Any) -> None:
    call_as(case, fast.app, "0")
