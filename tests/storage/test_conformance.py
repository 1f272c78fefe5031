"""Storage conformance: the behaviour every adapter of ``semafore.storage.ports`` must show.

Runs unchanged against every factory in ``tests/storage/factory_*.py`` (see conftest.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from semafore.storage.ports import (
    AlreadyExists,
    AttachmentMeta,
    AuditEvent,
    AuditQuery,
    DeliveryProof,
    Device,
    IdentityRecord,
    Invitation,
    Membership,
    NotFound,
    OneTimePrekeyRecord,
    Org,
    OtpChallenge,
    QueuedEnvelope,
    RefreshToken,
    RetentionPolicy,
    SendRecord,
    SignedPrekeyRecord,
    Stores,
    TotpEnrolment,
    User,
)

pytestmark = pytest.mark.anyio

CANARY = b"CANARY-\x00\xffstored-ciphertext-7f3a9c"


def envelope(delivery_id: str, *, user: str = "bob", device: str = "d1", org: str = "o1",
             at: float = 100.0, body: bytes = b"\x01ciphertext") -> QueuedEnvelope:
    return QueuedEnvelope(
        delivery_id=delivery_id,
        org_id=org,
        message_id=f"m-{delivery_id}",
        kind="message",
        sender_user_id="alice",
        sender_device_id="a1",
        recipient_user_id=user,
        recipient_device_id=device,
        body=body,
        envelope_hash=bytes(32),
        received_at=at,
    )


def found(dump: list[tuple[str, bytes]], needle: bytes) -> list[str]:
    return [where for where, data in dump if needle in data]


# --- accounts -------------------------------------------------------------------------------


async def test_orgs_are_unique_and_updatable(stores: Stores) -> None:
    org = Org("o1", "Org One", 1.0)
    await stores.accounts.create_org(org)
    with pytest.raises(AlreadyExists):
        await stores.accounts.create_org(replace(org, name="other"))
    assert await stores.accounts.get_org("o1") == org
    assert await stores.accounts.get_org("nope") is None
    await stores.accounts.update_org(replace(org, plan="enterprise", seats=500))
    assert (await stores.accounts.get_org("o1")) == replace(org, plan="enterprise", seats=500)
    with pytest.raises(NotFound):
        await stores.accounts.update_org(Org("nope", "x", 1.0))
    await stores.accounts.create_org(Org("o0", "Zero", 2.0))
    assert [o.org_id for o in await stores.accounts.list_orgs()] == ["o0", "o1"]


async def test_users_memberships_and_roles(stores: Stores) -> None:
    acc = stores.accounts
    await acc.create_user(User("alice", 1.0))
    with pytest.raises(AlreadyExists):
        await acc.create_user(User("alice", 2.0))
    assert await acc.get_user("alice") == User("alice", 1.0)
    await acc.put_membership(Membership("o1", "alice", "member", 1.0))
    await acc.put_membership(Membership("o2", "alice", "admin", 2.0))
    await acc.put_membership(Membership("o1", "bob", "member", 3.0))
    await acc.put_membership(Membership("o1", "alice", "admin", 1.0))  # role change = upsert
    assert await acc.get_membership("o1", "alice") == Membership("o1", "alice", "admin", 1.0)
    assert [m.org_id for m in await acc.list_memberships("alice")] == ["o1", "o2"]
    assert [m.user_id for m in await acc.list_members("o1")] == ["alice", "bob"]
    assert await acc.delete_membership("o1", "bob") is True
    assert await acc.delete_membership("o1", "bob") is False
    assert await acc.get_membership("o1", "bob") is None


async def test_devices(stores: Stores) -> None:
    acc = stores.accounts
    await acc.add_device(Device("alice", "d2", 7, 1.0))
    await acc.add_device(Device("alice", "d1", 8, 1.0))
    await acc.add_device(Device("bob", "d1", 9, 1.0))
    with pytest.raises(AlreadyExists):
        await acc.add_device(Device("alice", "d1", 10, 2.0))
    assert await acc.get_device("alice", "d1") == Device("alice", "d1", 8, 1.0)
    assert [d.device_id for d in await acc.list_devices("alice")] == ["d1", "d2"]
    assert await acc.delete_device("alice", "d1") is True
    assert await acc.delete_device("alice", "d1") is False
    assert [d.device_id for d in await acc.list_devices("alice")] == ["d2"]
    assert await acc.list_devices("carol") == []


async def test_totp_steps_only_move_forward(stores: Stores) -> None:
    acc = stores.accounts
    assert await acc.advance_totp_step("alice", 5) is False  # not enrolled
    await acc.put_totp(TotpEnrolment("alice", b"\x00secret\xff"))
    assert await acc.advance_totp_step("alice", 5) is True
    assert await acc.advance_totp_step("alice", 5) is False  # replay of the same code
    assert await acc.advance_totp_step("alice", 4) is False
    assert await acc.advance_totp_step("alice", 6) is True
    assert await acc.get_totp("alice") == TotpEnrolment("alice", b"\x00secret\xff", 6)


async def test_retention_policy(stores: Stores) -> None:
    assert await stores.accounts.get_retention("o1") is None
    policy = RetentionPolicy("o1", 3600, None, 86400)
    await stores.accounts.put_retention(policy)
    assert await stores.accounts.get_retention("o1") == policy
    await stores.accounts.put_retention(replace(policy, envelope_max_age=60))
    assert (await stores.accounts.get_retention("o1")) == replace(policy, envelope_max_age=60)


# --- tokens ---------------------------------------------------------------------------------


async def test_refresh_use_reports_reuse(stores: Stores) -> None:
    token = RefreshToken(b"\x01" * 32, "fam1", "alice", "o1", "d1", 10.0, 1000.0)
    await stores.tokens.put_refresh(token)
    with pytest.raises(AlreadyExists):
        await stores.tokens.put_refresh(token)
    assert await stores.tokens.use_refresh(b"\x02" * 32) is None
    first = await stores.tokens.use_refresh(token.token_hash)
    assert first is not None and first.token == token and first.reused is False
    second = await stores.tokens.use_refresh(token.token_hash)
    assert second is not None and second.reused is True


async def test_refresh_use_is_atomic_under_concurrency(stores: Stores) -> None:
    token = RefreshToken(b"\x03" * 32, "fam1", "alice", "o1", "d1", 10.0, 1000.0)
    await stores.tokens.put_refresh(token)
    uses = await asyncio.gather(*(stores.tokens.use_refresh(token.token_hash) for _ in range(8)))
    assert sum(1 for u in uses if u is not None and not u.reused) == 1


async def test_family_and_device_revocation(stores: Stores) -> None:
    tokens = stores.tokens
    await tokens.put_refresh(RefreshToken(b"a" * 32, "fam1", "alice", "o1", "d1", 1.0, 9.0))
    await tokens.put_refresh(RefreshToken(b"b" * 32, "fam2", "alice", "o1", "d2", 1.0, 9.0))
    await tokens.put_refresh(RefreshToken(b"c" * 32, "fam3", "bob", "o1", "d1", 1.0, 9.0))
    assert await tokens.is_family_revoked("fam1") is False
    await tokens.revoke_family("fam1")
    await tokens.revoke_family("fam1")  # idempotent
    assert await tokens.is_family_revoked("fam1") is True
    await tokens.revoke_device("alice", "d2")
    assert await tokens.is_family_revoked("fam2") is True
    assert await tokens.is_family_revoked("fam3") is False


async def test_otp_challenge_is_taken_once(stores: Stores) -> None:
    tokens = stores.tokens
    assert await tokens.take_otp("o1", "alice", "ip1") is None
    await tokens.put_otp(OtpChallenge("o1", "alice", b"h1", 50.0, "ip1"))
    await tokens.put_otp(OtpChallenge("o1", "alice", b"h2", 60.0, "ip1"))  # replaces
    taken = await tokens.take_otp("o1", "alice", "ip1")
    assert taken == OtpChallenge("o1", "alice", b"h2", 60.0, "ip1")
    assert await tokens.take_otp("o1", "alice", "ip1") is None


# --- key directory --------------------------------------------------------------------------


async def test_identity_and_signed_prekey(stores: Stores) -> None:
    keys = stores.keys
    identity = IdentityRecord("bob", "d1", b"\x11" * 32, b"\x22" * 32)
    await keys.put_identity(identity)
    assert await keys.get_identity("bob", "d1") == identity
    assert await keys.get_identity("bob", "d2") is None
    spk = SignedPrekeyRecord("spk-0", b"\x33" * 32, b"\x44" * 64)
    await keys.set_spk("bob", "d1", spk)
    assert await keys.get_spk("bob", "d1") == spk
    rotated = SignedPrekeyRecord("spk-1", b"\x55" * 32, b"\x66" * 64)
    await keys.set_spk("bob", "d1", rotated)
    assert await keys.get_spk("bob", "d1") == rotated


async def test_opks_are_claimed_once_oldest_first(stores: Stores) -> None:
    keys = stores.keys
    batch = [OneTimePrekeyRecord(f"opk-{i}", bytes([i]) * 32) for i in range(3)]
    await keys.add_opks("bob", "d1", batch)
    assert await keys.opk_count("bob", "d1") == 3
    assert await keys.opk_count("bob", "d2") == 0
    claimed = [await keys.claim_opk("bob", "d1") for _ in range(4)]
    assert claimed == [*batch, None]
    assert await keys.opk_count("bob", "d1") == 0


async def test_opk_batch_with_duplicate_adds_nothing(stores: Stores) -> None:
    keys = stores.keys
    await keys.add_opks("bob", "d1", [OneTimePrekeyRecord("opk-0", b"\x00" * 32)])
    with pytest.raises(AlreadyExists):
        await keys.add_opks(
            "bob",
            "d1",
            [OneTimePrekeyRecord("opk-1", b"\x01" * 32), OneTimePrekeyRecord("opk-0", b"\x02" * 3)],
        )
    with pytest.raises(AlreadyExists):
        await keys.add_opks(
            "bob",
            "d1",
            [OneTimePrekeyRecord("opk-7", b"\x01" * 32), OneTimePrekeyRecord("opk-7", b"\x02" * 3)],
        )
    assert await keys.opk_count("bob", "d1") == 1
    # The same key id under another device is independent.
    await keys.add_opks("bob", "d2", [OneTimePrekeyRecord("opk-0", b"\x03" * 32)])


async def test_concurrent_claims_never_share_an_opk(stores: Stores) -> None:
    keys = stores.keys
    await keys.add_opks(
        "bob", "d1", [OneTimePrekeyRecord(f"opk-{i}", bytes([i]) * 32) for i in range(20)]
    )
    results = await asyncio.gather(*(keys.claim_opk("bob", "d1") for _ in range(50)))
    got = [r.key_id for r in results if r is not None]
    assert len(got) == 20 and len(set(got)) == 20
    assert results.count(None) == 30


async def test_device_key_deletion(stores: Stores) -> None:
    keys = stores.keys
    await keys.put_identity(IdentityRecord("bob", "d1", b"\x11" * 32, b"\x22" * 32))
    await keys.set_spk("bob", "d1", SignedPrekeyRecord("s", b"\x33" * 32, b"\x44" * 64))
    await keys.add_opks("bob", "d1", [OneTimePrekeyRecord("o", b"\x55" * 32)])
    await keys.delete_device_keys("bob", "d1")
    assert await keys.get_identity("bob", "d1") is None
    assert await keys.get_spk("bob", "d1") is None
    assert await keys.opk_count("bob", "d1") == 0


# --- queues ---------------------------------------------------------------------------------


async def test_queue_fetch_is_ordered_and_non_destructive(stores: Stores) -> None:
    q = stores.queues
    await q.enqueue([envelope("e2"), envelope("e1"), envelope("e3", device="d2")])
    await q.enqueue([envelope("e0")])
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["e2", "e1", "e0"]
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 2)] == ["e2", "e1"]
    assert await q.fetch("bob", "d1", 0) == []
    assert await q.count("bob", "d1") == 3
    assert await q.fetch("bob", "d1", 10) == [envelope("e2"), envelope("e1"), envelope("e0")]


async def test_enqueue_is_all_or_nothing(stores: Stores) -> None:
    q = stores.queues
    await q.enqueue([envelope("e1")])
    with pytest.raises(AlreadyExists):
        await q.enqueue([envelope("e2"), envelope("e1", device="d9")])
    with pytest.raises(AlreadyExists):
        await q.enqueue([envelope("e3"), envelope("e3", device="d9")])
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["e1"]
    assert await q.count("bob", "d9") == 0


async def test_ack_deletes_only_from_the_named_device_queue(stores: Stores) -> None:
    q = stores.queues
    await q.enqueue([envelope("e1"), envelope("e2"), envelope("x1", user="carol")])
    assert await q.ack("carol", "d1", ["e1"]) == []  # another device's envelope: untouched
    assert await q.ack("bob", "d2", ["e1"]) == []
    acked = await q.ack("bob", "d1", ["e1", "e1", "nope"])
    assert [e.delivery_id for e in acked] == ["e1"]
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["e2"]
    assert await q.ack("bob", "d1", ["e1"]) == []  # second ack is a no-op


async def test_device_queue_deletion_and_expiry(stores: Stores) -> None:
    q = stores.queues
    await q.enqueue(
        [
            envelope("old", at=10.0),
            envelope("new", at=20.0),
            envelope("other-org", at=10.0, org="o2", user="zed"),
            envelope("d2", device="d2", at=30.0),
        ]
    )
    assert await q.expire("o1", before=15.0) == 1
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["new"]
    assert await q.count("zed", "d1") == 1
    assert await q.delete_device_queue("bob", "d2") == 1
    assert await q.count("bob", "d2") == 0


# --- the send ledger (idempotent sends, issue #3) ----------------------------------------


def send_record(*delivery_ids: str, message_id: str = "m1", device: str = "a1",
                org: str = "o1", at: float = 100.0, digest: bytes = b"\x11" * 32,
                recipient: str = "bob") -> SendRecord:
    return SendRecord(
        org_id=org,
        sender_user_id="alice",
        sender_device_id=device,
        recipient=recipient,
        message_id=message_id,
        digest=digest,
        deliveries=tuple(("bob", f"d{i}", d) for i, d in enumerate(delivery_ids, 1)),
        accepted_at=at,
        expires_at=at + 3600.0,
    )


async def test_a_send_is_recorded_with_its_envelopes_once(stores: Stores) -> None:
    q = stores.queues
    first = send_record("e1", "e2")
    assert await q.get_send(("o1", "alice", "a1", "bob", "m1")) is None
    assert await q.enqueue_send(first, [envelope("e1"), envelope("e2", device="d2")]) is None
    assert await q.get_send(("o1", "alice", "a1", "bob", "m1")) == first
    retry = send_record("r1", "r2", digest=b"\x22" * 32, at=150.0)
    assert await q.enqueue_send(retry, [envelope("r1"), envelope("r2", device="d2")]) == first
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["e1"]
    assert [e.delivery_id for e in await q.fetch("bob", "d2", 10)] == ["e2"]
    # the retry changed nothing
    assert await q.get_send(("o1", "alice", "a1", "bob", "m1")) == first


async def test_the_ledger_key_is_org_sender_device_recipient_and_message_id(
    stores: Stores,
) -> None:
    q = stores.queues
    assert await q.enqueue_send(send_record("e1"), [envelope("e1")]) is None
    others = [
        send_record("e2", message_id="m2"),
        send_record("e3", device="a2"),
        send_record("e4", org="o2"),
        send_record("e5", recipient="alice"),  # a sync copy shares the message id
        send_record("e6", recipient="*"),  # a broadcast
    ]
    for i, record in enumerate(others, 2):
        assert await q.enqueue_send(record, [envelope(f"e{i}", org=record.org_id)]) is None
    assert await q.count("bob", "d1") == 6
    assert await q.get_send(("o2", "alice", "a1", "bob", "m1")) == others[2]
    assert await q.get_send(("o1", "alice", "a1", "*", "m1")) == others[4]
    assert await q.get_send(("o1", "alice", "a2", "bob", "m1")) == others[1]
    assert await q.get_send(("o1", "carol", "a1", "bob", "m1")) is None


async def test_a_refused_enqueue_records_no_send(stores: Stores) -> None:
    q = stores.queues
    await q.enqueue([envelope("taken")])
    with pytest.raises(AlreadyExists):
        await q.enqueue_send(send_record("new", "taken"), [envelope("new"), envelope("taken")])
    assert await q.get_send(("o1", "alice", "a1", "bob", "m1")) is None
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["taken"]
    # the key is still free: the corrected send is recorded
    assert await q.enqueue_send(send_record("fresh"), [envelope("fresh")]) is None


async def test_concurrent_twins_queue_exactly_once(stores: Stores) -> None:
    q = stores.queues
    twins = [send_record(f"t{i}a", f"t{i}b") for i in range(12)]
    results = await asyncio.gather(
        *(q.enqueue_send(r, [envelope(r.deliveries[0][2]), envelope(r.deliveries[1][2],
                                                                     device="d2")])
          for r in twins)
    )
    winners = [r for r, result in zip(twins, results, strict=True) if result is None]
    assert len(winners) == 1
    assert all(result in (None, winners[0]) for result in results)
    assert await q.count("bob", "d1") == 1 and await q.count("bob", "d2") == 1
    assert await q.get_send(("o1", "alice", "a1", "bob", "m1")) == winners[0]


async def test_send_ledger_expiry_is_per_org_and_by_acceptance_time(stores: Stores) -> None:
    q = stores.queues
    await q.enqueue_send(send_record("e1", message_id="old", at=10.0), [envelope("e1")])
    await q.enqueue_send(send_record("e2", message_id="new", at=20.0), [envelope("e2")])
    await q.enqueue_send(
        send_record("e3", message_id="old", org="o2", at=10.0), [envelope("e3", org="o2")]
    )
    assert await q.expire_sends("o1", before=15.0) == 1
    assert await q.get_send(("o1", "alice", "a1", "bob", "old")) is None
    assert await q.get_send(("o1", "alice", "a1", "bob", "new")) is not None
    assert await q.get_send(("o2", "alice", "a1", "bob", "old")) is not None
    assert await q.expire_sends("o1", before=15.0) == 0
    assert await q.count("bob", "d1") == 3  # envelopes have their own retention
    # an expired key is free again: a later send under it is a new send
    assert await q.enqueue_send(send_record("e4", message_id="old", at=30.0),
                                [envelope("e4")]) is None


async def test_the_ledger_holds_no_body(stores: Stores) -> None:
    q = stores.queues
    await q.enqueue_send(send_record("e1"), [envelope("e1", body=CANARY)])
    assert found(await stores.dump(), CANARY)
    await q.ack("bob", "d1", ["e1"])
    await stores.compact()
    assert found(await stores.dump(), CANARY) == []
    assert await q.get_send(("o1", "alice", "a1", "bob", "m1")) is not None


async def test_delivery_proofs(stores: Stores) -> None:
    q = stores.queues
    proofs = [
        DeliveryProof(f"p{i}", "o1", f"m{i}", bytes([i]) * 32, "alice", "a1", "bob", "d1",
                      10.0 + i, 20.0 + i)
        for i in range(5)
    ]
    for proof in proofs:
        await q.record_delivery(proof)
    await q.record_delivery(replace(proofs[0], delivery_id="z", org_id="o2"))
    with pytest.raises(AlreadyExists):
        await q.record_delivery(proofs[0])
    assert await q.list_deliveries("o1", None, 2) == proofs[:2]
    assert await q.list_deliveries("o1", "p1", 10) == proofs[2:]
    assert await q.expire_deliveries("o1", before=22.0) == 2
    assert await q.list_deliveries("o1", None, 10) == proofs[2:]
    assert [p.delivery_id for p in await q.list_deliveries("o2", None, 10)] == ["z"]


# --- attachments and blobs ------------------------------------------------------------------


async def test_attachment_metadata(stores: Stores) -> None:
    a = stores.attachments
    meta = AttachmentMeta("f1", "o1", "alice", "a1", 123, b"\x99" * 32, ("bob", "carol"), 5.0)
    await a.put_meta(meta)
    with pytest.raises(AlreadyExists):
        await a.put_meta(meta)
    assert await a.get_meta("f1") == meta
    assert await a.mark_committed("f1") is True
    assert await a.mark_committed("nope") is False
    assert await a.get_meta("f1") == replace(meta, committed=True)
    await a.put_meta(replace(meta, file_id="f2", created_at=50.0))
    await a.put_meta(replace(meta, file_id="f3", org_id="o2", created_at=1.0))
    assert await a.expired("o1", before=10.0) == ["f1"]
    assert await a.delete_meta("f1") is True
    assert await a.delete_meta("f1") is False
    assert await a.get_meta("f1") is None


async def test_blobs_are_binary_safe(stores: Stores) -> None:
    b = stores.blobs
    data = bytes(range(256)) * 10
    await b.put("k1", data)
    assert await b.get("k1") == data
    await b.put("k1", b"\x00")
    assert await b.get("k1") == b"\x00"
    assert await b.get("k2") is None
    assert await b.delete("k1") is True
    assert await b.delete("k1") is False


# --- audit ----------------------------------------------------------------------------------


async def test_audit_sequence_filters_and_paging(stores: Stores) -> None:
    audit = stores.audit
    stored = []
    for i in range(6):
        event = AuditEvent(
            org_id="o1",
            event_type="signup" if i % 2 == 0 else "role_change",
            at=100.0 + i,
            actor_user_id="alice" if i < 3 else "bob",
            subject_user_id="carol",
            details={"n": i, "nested": {"ok": True}},
        )
        stored.append(await audit.append(event))
    other = await audit.append(AuditEvent(org_id="o2", event_type="signup", at=100.0))
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5, 6]
    assert other.seq == 1
    assert len({e.event_id for e in stored}) == 6 and all(e.event_id for e in stored)
    assert await audit.query(AuditQuery("o1", limit=100)) == stored
    page1 = await audit.query(AuditQuery("o1", limit=4))
    page2 = await audit.query(AuditQuery("o1", after_seq=page1[-1].seq, limit=4))
    assert page1 + page2 == stored
    assert await audit.query(AuditQuery("o1", event_types=("signup",))) == stored[0::2]
    assert await audit.query(AuditQuery("o1", actor_user_id="bob")) == stored[3:]
    assert await audit.query(AuditQuery("o1", subject_user_id="dave")) == []
    assert await audit.query(AuditQuery("o1", since=102.0, until=104.0)) == stored[2:4]
    assert await audit.query(AuditQuery("o2")) == [other]
    assert await audit.query(AuditQuery("o3")) == []


async def test_audit_expiry_keeps_sequence_monotonic(stores: Stores) -> None:
    audit = stores.audit
    for i in range(3):
        await audit.append(AuditEvent(org_id="o1", event_type="signup", at=float(i)))
    await audit.append(AuditEvent(org_id="o2", event_type="signup", at=0.0))
    assert await audit.expire("o1", before=10.0) == 3
    assert await audit.query(AuditQuery("o1")) == []
    again = await audit.append(AuditEvent(org_id="o1", event_type="signup", at=20.0))
    assert again.seq == 4
    assert len(await audit.query(AuditQuery("o2"))) == 1


# --- rate limits ----------------------------------------------------------------------------


async def test_rate_limit_windows(stores: Stores) -> None:
    rl = stores.ratelimits
    decisions = [await rl.hit("ip:1", 3, 10.0, 101.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after == 9
    assert (await rl.hit("ip:2", 3, 10.0, 101.0)).allowed is True
    assert (await rl.hit("ip:1", 3, 10.0, 109.5)).retry_after == 1
    assert (await rl.hit("ip:1", 3, 10.0, 110.0)).allowed is True


# --- what an adversary holding the store sees -----------------------------------------------


async def test_dump_sees_stored_bytes_and_not_deleted_ones(stores: Stores) -> None:
    q = stores.queues
    await q.enqueue([envelope("e1", body=CANARY), envelope("e2", body=CANARY + b"-2", at=5.0)])
    await stores.blobs.put("f1", b"BLOB" + CANARY)
    dump = await stores.dump()
    assert found(dump, CANARY), "dump must expose stored ciphertext (oracle not blind)"
    await q.ack("bob", "d1", ["e1"])
    await q.expire("o1", before=50.0)
    await stores.blobs.delete("f1")
    await stores.compact()
    assert found(await stores.dump(), CANARY) == []


# --- one message to several users (issue #11) ------------------------------------------------


async def test_one_message_id_to_several_users_is_one_ledger_entry_per_recipient(
    stores: Stores,
) -> None:
    """A message to bob and carol from alice's device a1 is sent as one envelope set per
    recipient user plus one sync copy to alice's own other device, all under one message
    id: each is its own ledger entry, each replays as itself, and another set under any one
    of those keys still finds the recorded send (whose digest the relay compares)."""
    q = stores.queues
    sets = {"bob": ("b1", "b2"), "carol": ("c1",), "alice": ("a2",)}  # alice: the sync copy

    def record(user: str, prefix: str, digest: bytes) -> tuple[SendRecord, list[QueuedEnvelope]]:
        ids = [f"{prefix}-{user}-{device}" for device in sets[user]]
        sent = replace(
            send_record(recipient=user, digest=digest),
            deliveries=tuple((user, d, i) for d, i in zip(sets[user], ids, strict=True)),
        )
        return sent, [envelope(i, user=user, device=d)
                      for d, i in zip(sets[user], ids, strict=True)]

    digests = {user: bytes([n]) * 32 for n, user in enumerate(sets, 1)}
    accepted = {}
    for user in sets:
        accepted[user], entries = record(user, "e", digests[user])
        assert await q.enqueue_send(accepted[user], entries) is None, user
    for user in sets:  # independent entries: each key holds its own recipient's send
        assert await q.get_send(("o1", "alice", "a1", user, "m1")) == accepted[user]
    for user in sets:  # a retry (same set, new delivery ids) replays the original only
        retry, entries = record(user, "r", digests[user])
        assert await q.enqueue_send(retry, entries) == accepted[user], user
    other, entries = record("carol", "x", b"\xee" * 32)  # another set under carol's key
    recorded = await q.enqueue_send(other, entries)
    assert recorded == accepted["carol"] and recorded.digest != other.digest
    for user, devices in sets.items():  # nothing but the first sends was queued
        for device in devices:
            assert [e.delivery_id for e in await q.fetch(user, device, 10)] == [
                f"e-{user}-{device}"
            ]


# --- issue 13: account plane (organisation isolation, login guard) ----------------------------


async def test_otp_challenges_are_bound_to_their_address(stores: Stores) -> None:
    """A stranger's request (another address) neither replaces nor burns the victim's code."""
    tokens = stores.tokens
    victim = OtpChallenge("o1", "alice", b"victim", 60.0, "10.0.0.1")
    await tokens.put_otp(victim)
    await tokens.put_otp(OtpChallenge("o1", "alice", b"stranger", 60.0, "10.0.0.2"))
    assert await tokens.fail_otp("o1", "alice", "10.0.0.2") is not None
    assert await tokens.take_otp("o1", "alice", "10.0.0.2") is not None
    assert await tokens.get_otp("o1", "alice", "10.0.0.1") == victim
    assert await tokens.get_otp("o2", "alice", "10.0.0.1") is None


async def test_otp_failures_count_atomically_and_backoff_fields_round_trip(
    stores: Stores,
) -> None:
    tokens = stores.tokens
    assert await tokens.fail_otp("o1", "bob", "ip") is None  # nothing to count
    await tokens.put_otp(OtpChallenge("o1", "bob", b"h", 60.0, "ip", 0, 2, 0.0))
    results = await asyncio.gather(*(tokens.fail_otp("o1", "bob", "ip") for _ in range(5)))
    assert sorted(r.failures for r in results if r is not None) == [1, 2, 3, 4, 5]
    stored = await tokens.get_otp("o1", "bob", "ip")
    assert stored == OtpChallenge("o1", "bob", b"h", 60.0, "ip", 5, 2, 0.0)
    dead = OtpChallenge("o1", "bob", b"", 900.0, "ip", 3, 3, 900.0)
    await tokens.put_otp(dead)
    assert await tokens.get_otp("o1", "bob", "ip") == dead


async def test_member_revocation_is_per_organisation(stores: Stores) -> None:
    tokens = stores.tokens
    for fam, org, dev in (("fa", "o1", "d1"), ("fb", "o2", "d1"), ("fc", "o1", "d2")):
        await tokens.put_refresh(RefreshToken(fam.encode(), fam, "alice", org, dev, 1.0, 99.0))
    await tokens.put_refresh(RefreshToken(b"fd", "fd", "bob", "o1", "d1", 1.0, 99.0))
    await tokens.revoke_member("o1", "alice")
    assert await tokens.is_family_revoked("fa") is True
    assert await tokens.is_family_revoked("fc") is True
    assert await tokens.is_family_revoked("fb") is False  # alice's session in o2 stays
    assert await tokens.is_family_revoked("fd") is False


async def test_invitations(stores: Stores) -> None:
    acc = stores.accounts
    assert await acc.get_invitation("o1", "alice") is None
    assert await acc.list_invitations("alice") == []
    first = Invitation("o2", "alice", "member", "gary", 10.0, 99.0)
    await acc.put_invitation(first)
    await acc.put_invitation(Invitation("o1", "alice", "member", "olga", 11.0, 98.0))
    again = Invitation("o1", "alice", "admin", "olga", 12.0, 97.0)
    await acc.put_invitation(again)  # upsert
    await acc.put_invitation(Invitation("o1", "bob", "member", "olga", 12.0, 97.0))
    assert await acc.get_invitation("o1", "alice") == again
    assert await acc.list_invitations("alice") == [again, first]
    assert await acc.delete_invitation("o1", "alice") is True
    assert await acc.delete_invitation("o1", "alice") is False
    assert await acc.list_invitations("alice") == [first]


async def test_totp_enrolment_can_be_deleted(stores: Stores) -> None:
    acc = stores.accounts
    assert await acc.delete_totp("alice") is False
    await acc.put_totp(TotpEnrolment("alice", b"sealed"))
    await acc.put_totp(TotpEnrolment("bob", b"other"))
    assert await acc.delete_totp("alice") is True
    assert await acc.get_totp("alice") is None
    assert await acc.get_totp("bob") == TotpEnrolment("bob", b"other")
