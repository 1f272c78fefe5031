"""Signup is all-or-nothing in every account store: ``create_org_with_admin`` writes the
organisation, its admin user, the admin membership and the admin's TOTP enrolment together
(one transaction in SQLite, compensating deletes in MongoDB/FerretDB v1, one synchronous
step in memory). A refusal or a failure injected between the writes leaves no partial org,
no orphan user and no overwritten TOTP secret. Runs against every conformance factory."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from semafore.storage.memory import MemoryAccountStore
from semafore.storage.ports import (
    AccountStore,
    AlreadyExists,
    Membership,
    Org,
    Stores,
    TotpEnrolment,
    User,
)

pytestmark = pytest.mark.anyio

SECRET = b"\x01" * 20


class InjectedFault(RuntimeError):
    """The failure a test forces into the middle of a signup."""


class _FailingDict(dict[Any, Any]):
    def __setitem__(self, key: Any, value: Any) -> None:
        raise InjectedFault("injected: memberships write failed")


class _FailingCollection:
    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        if name in ("insert_one", "replace_one", "update_one", "insert_many"):
            async def fail(*args: Any, **kwargs: Any) -> Any:
                from pymongo.errors import ConnectionFailure

                raise ConnectionFailure("injected: memberships write failed")

            return fail
        return getattr(self._real, name)


class _FailingDatabase:
    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._real, name)
        return _FailingCollection(real) if name == "memberships" else real


@contextlib.contextmanager
def membership_write_fails(accounts: AccountStore) -> Iterator[None]:
    """Make the *last* signup write (the admin membership) fail, the adapter's own way."""
    if isinstance(accounts, MemoryAccountStore):
        saved = accounts.memberships
        accounts.memberships = _FailingDict(saved)
        try:
            yield
        finally:
            accounts.memberships = saved
        return
    conn = getattr(getattr(accounts, "db", None), "conn", None)
    if isinstance(conn, sqlite3.Connection):  # a real failure inside the transaction
        conn.execute(
            "CREATE TEMP TRIGGER fail_membership BEFORE INSERT ON memberships "
            "BEGIN SELECT RAISE(ABORT, 'injected: memberships write failed'); END"
        )
        try:
            yield
        finally:
            conn.execute("DROP TRIGGER fail_membership")
        return
    db = getattr(accounts, "db", None)
    if db is not None and type(db).__name__ == "AsyncDatabase":
        accounts.db = _FailingDatabase(db)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            accounts.db = db  # type: ignore[attr-defined]
        return
    raise AssertionError(f"no fault injector for {type(accounts).__name__}")


async def nothing_of(stores: Stores, org_id: str, user_id: str) -> None:
    acc = stores.accounts
    assert await acc.get_org(org_id) is None
    assert await acc.get_user(user_id) is None
    assert await acc.get_totp(user_id) is None
    assert await acc.get_membership(org_id, user_id) is None
    assert await acc.list_members(org_id) == []


async def test_signup_creates_org_admin_membership_and_totp(stores: Stores) -> None:
    acc = stores.accounts
    await acc.create_org_with_admin(
        Org("o1", "One", 5.0), User("ann", 5.0), TotpEnrolment("ann", SECRET)
    )
    org = await acc.get_org("o1")
    assert org is not None and org.name == "One" and org.created_at == 5.0
    assert await acc.get_user("ann") == User("ann", 5.0)
    assert await acc.get_membership("o1", "ann") == Membership("o1", "ann", "admin", 5.0)
    totp = await acc.get_totp("ann")
    assert totp is not None and totp.secret == SECRET


async def test_taken_org_id_creates_no_user(stores: Stores) -> None:
    acc = stores.accounts
    await acc.create_org(Org("o1", "Taken", 1.0))
    with pytest.raises(AlreadyExists):
        await acc.create_org_with_admin(
            Org("o1", "Mine", 2.0), User("ann", 2.0), TotpEnrolment("ann", SECRET)
        )
    assert await acc.get_user("ann") is None and await acc.get_totp("ann") is None
    assert (await acc.get_org("o1")) == Org("o1", "Taken", 1.0)
    assert await acc.list_members("o1") == []


async def test_taken_user_id_creates_no_org_and_keeps_their_totp(stores: Stores) -> None:
    acc = stores.accounts
    await acc.create_user(User("ann", 1.0))
    await acc.put_totp(TotpEnrolment("ann", b"\x02" * 20, 7))
    with pytest.raises(AlreadyExists):
        await acc.create_org_with_admin(
            Org("o2", "Two", 2.0), User("ann", 2.0), TotpEnrolment("ann", SECRET)
        )
    assert await acc.get_org("o2") is None
    assert await acc.list_members("o2") == []
    assert await acc.get_totp("ann") == TotpEnrolment("ann", b"\x02" * 20, 7)
    assert await acc.get_user("ann") == User("ann", 1.0)


async def test_a_failure_between_the_writes_leaves_no_partial_org(stores: Stores) -> None:
    with membership_write_fails(stores.accounts), pytest.raises(Exception) as failed:
        await stores.accounts.create_org_with_admin(
            Org("o3", "Three", 3.0), User("ann", 3.0), TotpEnrolment("ann", SECRET)
        )
    assert "injected" in str(failed.value)
    assert not isinstance(failed.value, AlreadyExists)
    await nothing_of(stores, "o3", "ann")
    # and the same signup works once the fault is gone
    await stores.accounts.create_org_with_admin(
        Org("o3", "Three", 4.0), User("ann", 4.0), TotpEnrolment("ann", SECRET)
    )
    assert [m.user_id for m in await stores.accounts.list_members("o3")] == ["ann"]


async def test_concurrent_signups_for_one_org_leave_one_admin_and_no_orphan(
    stores: Stores,
) -> None:
    acc = stores.accounts
    users = [f"u{i}" for i in range(6)]
    results = await asyncio.gather(
        *(
            acc.create_org_with_admin(Org("race", u, 1.0), User(u, 1.0), TotpEnrolment(u, SECRET))
            for u in users
        ),
        return_exceptions=True,
    )
    winners = [u for u, r in zip(users, results, strict=True) if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if r is not None)
    assert [m.user_id for m in await acc.list_members("race")] == winners
    for loser in set(users) - set(winners):
        assert await acc.get_user(loser) is None and await acc.get_totp(loser) is None


async def test_totp_must_belong_to_the_admin(stores: Stores) -> None:
    with pytest.raises(ValueError, match="totp"):
        await stores.accounts.create_org_with_admin(
            Org("o4", "Four", 1.0), User("ann", 1.0), TotpEnrolment("bob", SECRET)
        )
    await nothing_of(stores, "o4", "ann")
