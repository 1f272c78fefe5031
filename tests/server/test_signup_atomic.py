"""``POST /v1/orgs`` is all-or-nothing: a store failure in the middle of a signup leaves no
organisation without its admin and no admin without organisation, so the same signup can
simply be retried (issue #3; the port method is ``AccountStore.create_org_with_admin``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from semafore.server.app import create_app
from semafore.server.settings import Settings
from semafore.storage.memory import memory_stores
from semafore.storage.ports import Stores
from semafore.storage.sqlite import sqlite_stores
from tests.storage.test_signup_atomic import membership_write_fails

SIGNUP = {"org_id": "acme", "name": "Acme", "admin_user_id": "alice"}


@pytest.fixture(params=["memory", "sqlite"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    opened = memory_stores() if request.param == "memory" else sqlite_stores(
        str(tmp_path / "relay.sqlite3")
    )
    yield opened
    asyncio.run(opened.close())


def test_failed_signup_leaves_nothing_and_can_be_retried(stores: Stores) -> None:
    app = create_app(Settings(retention_interval=0.0), stores)
    with TestClient(app, raise_server_exceptions=False) as client:
        with membership_write_fails(stores.accounts):
            r = client.post("/v1/orgs", json=SIGNUP)
        assert r.status_code == 500
        acc = stores.accounts
        assert client.portal is not None
        assert client.portal.call(acc.get_org, "acme") is None
        assert client.portal.call(acc.get_user, "alice") is None
        assert client.portal.call(acc.get_totp, "alice") is None
        r = client.post("/v1/orgs", json=SIGNUP)  # the retry is not "org_exists"
        assert r.status_code == 201, r.text
        members = client.portal.call(acc.list_members, "acme")
        assert [(m.user_id, m.role) for m in members] == [("alice", "admin")]
