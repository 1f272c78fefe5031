"""MongoDB adapters (pymongo's asyncio client): accounts, tokens, key directory, attachment
metadata and audit — the product's primary store (seed §3.3, docs/backends.md).

Atomicity rests on the two primitives every MongoDB wire server gets right — an insert into a
unique ``_id`` (exactly one concurrent insert wins) and a ``delete_one`` by ``_id`` (exactly one
concurrent delete reports ``deleted_count == 1``) — and not on ``findAndModify`` or a filtered
``update_one``: the storage conformance suite caught FerretDB v1 (the MongoDB stand-in on
machines without ``mongod``) handing one OPK to two concurrent ``find_one_and_delete`` callers
and letting several concurrent compare-and-set updates all succeed. So an OPK claim is
"find the oldest, delete it by ``_id``, retry if someone else did", a refresh-token use is an
insert into ``refresh_uses`` (a duplicate means "reused"), and an OTP take deletes by
``_id`` plus a per-write nonce. All are exact on mongod as well. FerretDB has no multi-document
transactions either: the one multi-document write, an OPK batch, is checked first and
compensated if a concurrent batch wins the unique index. Binary fields are stored as BSON
binary, raw, so the plaintext oracle scanning the database sees exactly the ciphertext the
relay holds.

TTL indexes (``purge_at``) physically remove dead OTP challenges and refresh tokens one grace
period after they expire; where the server lacks TTL indexes (FerretDB v1) the port semantics
are unchanged — expiry is always enforced by the caller comparing ``expires_at`` with ``now``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from semafore.storage.ports import (
    AccountStore,
    AlreadyExists,
    AttachmentMeta,
    AttachmentStore,
    AuditEvent,
    AuditQuery,
    AuditStore,
    Device,
    IdentityRecord,
    Invitation,
    KeyStore,
    Membership,
    NotFound,
    OneTimePrekeyRecord,
    Org,
    OtpChallenge,
    RefreshToken,
    RefreshUse,
    RetentionPolicy,
    SignedPrekeyRecord,
    TokenStore,
    TotpEnrolment,
    User,
    check_signup,
)

log = logging.getLogger(__name__)

Doc = dict[str, Any]
TTL_GRACE = 3600.0
"""Seconds a dead record may linger before the TTL monitor removes it."""

_NOT_IMPLEMENTED = 238  # FerretDB's answer to an index option it lacks


def _purge_at(expires_at: float) -> datetime:
    """When a TTL index may delete a record: one grace period after it is dead *and* after it
    was written (a record written with a long-past expiry is not purged under the caller)."""
    now = datetime.now(UTC).timestamp()
    return datetime.fromtimestamp(max(expires_at, now) + TTL_GRACE, UTC)


SEP = "\x1f"
"""Joins the parts of composite ``_id`` strings (ids never hold control characters). Not
NUL: PostgreSQL's jsonb cannot store U+0000, so FerretDB's ``postgresql`` handler refused
those documents (``unsupported Unicode escape sequence``)."""


class MongoDatabase:
    """One database of one client; owns the indexes. ``await open()`` before use."""

    def __init__(self, url: str, database: str) -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(url, tz_aware=True)
        self.db: AsyncDatabase[Doc] = self.client[database]
        self.name = database
        self.ttl_indexes = False

    async def open(self) -> MongoDatabase:
        """Create every index (idempotent): unique keys the ports rely on, sort keys, TTLs."""
        db = self.db
        unique = {
            "memberships": [("org_id", ASCENDING), ("user_id", ASCENDING)],
            "devices": [("user_id", ASCENDING), ("device_id", ASCENDING)],
            "identities": [("user_id", ASCENDING), ("device_id", ASCENDING)],
            "spks": [("user_id", ASCENDING), ("device_id", ASCENDING)],
            "opks": [("user_id", ASCENDING), ("device_id", ASCENDING), ("key_id", ASCENDING)],
            "audit": [("org_id", ASCENDING), ("seq", ASCENDING)],
        }
        for collection, keys in unique.items():
            await db[collection].create_index(keys, unique=True)
        await db.memberships.create_index([("user_id", ASCENDING), ("org_id", ASCENDING)])
        await db.opks.create_index(
            [("user_id", ASCENDING), ("device_id", ASCENDING), ("seq", ASCENDING)]
        )
        await db.refresh.create_index([("user_id", ASCENDING), ("device_id", ASCENDING)])
        await db.refresh.create_index([("user_id", ASCENDING), ("org_id", ASCENDING)])
        await db.invitations.create_index([("user_id", ASCENDING), ("org_id", ASCENDING)])
        await db.attachments.create_index([("org_id", ASCENDING), ("created_at", ASCENDING)])
        await db.audit.create_index([("org_id", ASCENDING), ("at", ASCENDING)])
        self.ttl_indexes = True
        for collection in ("otps", "otp_guesses", "refresh", "refresh_uses"):
            try:
                await db[collection].create_index("purge_at", expireAfterSeconds=0)
            except OperationFailure as exc:
                if exc.code != _NOT_IMPLEMENTED:
                    raise
                self.ttl_indexes = False
        if not self.ttl_indexes:
            log.info(
                "mongodb without TTL indexes; expiry stays caller-enforced",
                extra={"database": self.name},
            )
        return self

    async def next_seq(self, counter: str, count: int = 1) -> int:
        """Reserve ``count`` numbers of a named counter; return the last one.

        Two first-ever upserts of a counter race to insert it (DuplicateKeyError, on mongod
        too): the loser retries and finds it. Where ``$inc`` is not atomic (FerretDB) two
        callers may draw the same number; callers that need uniqueness guard it with a unique
        index and draw again (see MongoAuditStore.append).
        """
        while True:
            try:
                doc = await self.db.counters.find_one_and_update(
                    {"_id": counter},
                    {"$inc": {"value": count}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                continue
            assert doc is not None
            return int(doc["value"])

    async def dump(self) -> list[tuple[str, bytes]]:
        """Every document of this database as raw BSON (what a database reader sees)."""
        out: list[tuple[str, bytes]] = []
        raw = self.client.get_database(self.name).with_options(
            codec_options=self.db.codec_options.with_options(document_class=RawBSONDocument)
        )
        for collection in sorted(await raw.list_collection_names()):
            async for doc in raw[collection].find({}):
                out.append((f"mongodb:{self.name}.{collection}/{doc['_id']!r}", bytes(doc.raw)))
        return out

    async def drop(self) -> None:
        await self.client.drop_database(self.name)

    async def close(self) -> None:
        await self.client.close()


class _Part:
    def __init__(self, database: MongoDatabase) -> None:
        self.database = database
        self.db = database.db


class MongoAccountStore(_Part, AccountStore):
    async def create_org(self, org: Org) -> None:
        try:
            await self.db.orgs.insert_one(
                {
                    "_id": org.org_id,
                    "name": org.name,
                    "created_at": org.created_at,
                    "plan": org.plan,
                    "seats": org.seats,
                }
            )
        except DuplicateKeyError:
            raise AlreadyExists(org.org_id) from None

    async def create_org_with_admin(self, org: Org, admin: User, totp: TotpEnrolment) -> None:
        """Compensated, not transactional: FerretDB v1 has no multi-document transactions.

        Writes user, org, TOTP, then the admin membership last (it is what grants access:
        until it exists the org has no member and nobody can log in to it). Any failure
        deletes what this call wrote, newest first, and re-raises. A crash of the relay
        itself between the writes can still leave an unreachable org or user id behind."""
        check_signup(org, admin, totp)
        written: list[tuple[str, Doc]] = []
        try:
            await self.create_user(admin)
            written.append(("users", {"_id": admin.user_id}))
            await self.create_org(org)
            written.append(("orgs", {"_id": org.org_id}))
            written.append(("totp", {"_id": admin.user_id}))  # before: a half write counts
            await self.put_totp(totp)
            written.append(("memberships", {"org_id": org.org_id, "user_id": admin.user_id}))
            await self.put_membership(
                Membership(org.org_id, admin.user_id, "admin", org.created_at)
            )
        except BaseException:
            for collection, key in reversed(written):
                with contextlib.suppress(PyMongoError):
                    await getattr(self.db, collection).delete_one(key)
            raise

    @staticmethod
    def _org(doc: Doc) -> Org:
        return Org(doc["_id"], doc["name"], doc["created_at"], doc["plan"], doc["seats"])

    async def get_org(self, org_id: str) -> Org | None:
        doc = await self.db.orgs.find_one({"_id": org_id})
        return self._org(doc) if doc else None

    async def update_org(self, org: Org) -> None:
        result = await self.db.orgs.update_one(
            {"_id": org.org_id},
            {
                "$set": {
                    "name": org.name,
                    "created_at": org.created_at,
                    "plan": org.plan,
                    "seats": org.seats,
                }
            },
        )
        if result.matched_count == 0:
            raise NotFound(org.org_id)

    async def list_orgs(self) -> list[Org]:
        return [self._org(d) async for d in self.db.orgs.find({}).sort("_id", ASCENDING)]

    async def create_user(self, user: User) -> None:
        try:
            await self.db.users.insert_one({"_id": user.user_id, "created_at": user.created_at})
        except DuplicateKeyError:
            raise AlreadyExists(user.user_id) from None

    async def get_user(self, user_id: str) -> User | None:
        doc = await self.db.users.find_one({"_id": user_id})
        return User(doc["_id"], doc["created_at"]) if doc else None

    async def put_membership(self, membership: Membership) -> None:
        await self.db.memberships.replace_one(
            {"org_id": membership.org_id, "user_id": membership.user_id},
            {
                "org_id": membership.org_id,
                "user_id": membership.user_id,
                "role": membership.role,
                "joined_at": membership.joined_at,
            },
            upsert=True,
        )

    @staticmethod
    def _membership(doc: Doc) -> Membership:
        return Membership(doc["org_id"], doc["user_id"], doc["role"], doc["joined_at"])

    async def get_membership(self, org_id: str, user_id: str) -> Membership | None:
        doc = await self.db.memberships.find_one({"org_id": org_id, "user_id": user_id})
        return self._membership(doc) if doc else None

    async def list_memberships(self, user_id: str) -> list[Membership]:
        cursor = self.db.memberships.find({"user_id": user_id}).sort("org_id", ASCENDING)
        return [self._membership(d) async for d in cursor]

    async def list_members(self, org_id: str) -> list[Membership]:
        cursor = self.db.memberships.find({"org_id": org_id}).sort("user_id", ASCENDING)
        return [self._membership(d) async for d in cursor]

    async def delete_membership(self, org_id: str, user_id: str) -> bool:
        result = await self.db.memberships.delete_one({"org_id": org_id, "user_id": user_id})
        return result.deleted_count == 1

    async def add_device(self, device: Device) -> None:
        try:
            await self.db.devices.insert_one(
                {
                    "user_id": device.user_id,
                    "device_id": device.device_id,
                    "registration_id": device.registration_id,
                    "created_at": device.created_at,
                }
            )
        except DuplicateKeyError:
            raise AlreadyExists(device.device_id) from None

    @staticmethod
    def _device(doc: Doc) -> Device:
        return Device(doc["user_id"], doc["device_id"], doc["registration_id"], doc["created_at"])

    async def get_device(self, user_id: str, device_id: str) -> Device | None:
        doc = await self.db.devices.find_one({"user_id": user_id, "device_id": device_id})
        return self._device(doc) if doc else None

    async def list_devices(self, user_id: str) -> list[Device]:
        cursor = self.db.devices.find({"user_id": user_id}).sort("device_id", ASCENDING)
        return [self._device(d) async for d in cursor]

    async def delete_device(self, user_id: str, device_id: str) -> bool:
        result = await self.db.devices.delete_one({"user_id": user_id, "device_id": device_id})
        return result.deleted_count == 1

    async def put_totp(self, enrolment: TotpEnrolment) -> None:
        await self.db.totp.replace_one(
            {"_id": enrolment.user_id},
            {"secret": enrolment.secret, "last_step": enrolment.last_step},
            upsert=True,
        )

    async def get_totp(self, user_id: str) -> TotpEnrolment | None:
        doc = await self.db.totp.find_one({"_id": user_id})
        return TotpEnrolment(user_id, bytes(doc["secret"]), doc["last_step"]) if doc else None

    async def delete_totp(self, user_id: str) -> bool:
        result = await self.db.totp.delete_one({"_id": user_id})
        return result.deleted_count == 1

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        current = await self.db.totp.find_one({"_id": user_id})
        if current is None or step <= current["last_step"]:
            return False
        try:  # one acceptance per (user, step), even where update_one is not a true CAS
            await self.db.totp_steps.insert_one({"_id": f"{user_id}{SEP}{step}"})
        except DuplicateKeyError:
            return False
        result = await self.db.totp.update_one(
            {"_id": user_id, "last_step": {"$lt": step}}, {"$set": {"last_step": step}}
        )
        return result.modified_count == 1

    async def put_retention(self, policy: RetentionPolicy) -> None:
        await self.db.retention.replace_one(
            {"_id": policy.org_id},
            {
                "envelope_max_age": policy.envelope_max_age,
                "attachment_max_age": policy.attachment_max_age,
                "audit_max_age": policy.audit_max_age,
            },
            upsert=True,
        )

    async def get_retention(self, org_id: str) -> RetentionPolicy | None:
        doc = await self.db.retention.find_one({"_id": org_id})
        if doc is None:
            return None
        return RetentionPolicy(
            org_id, doc["envelope_max_age"], doc["attachment_max_age"], doc["audit_max_age"]
        )

    async def put_invitation(self, invitation: Invitation) -> None:
        i = invitation
        await self.db.invitations.replace_one(
            {"_id": f"{i.org_id}{SEP}{i.user_id}"},
            {
                "org_id": i.org_id,
                "user_id": i.user_id,
                "role": i.role,
                "invited_by": i.invited_by,
                "invited_at": i.invited_at,
                "expires_at": i.expires_at,
            },
            upsert=True,
        )

    @staticmethod
    def _invitation(doc: Doc) -> Invitation:
        return Invitation(
            doc["org_id"], doc["user_id"], doc["role"], doc["invited_by"], doc["invited_at"],
            doc["expires_at"],
        )

    async def get_invitation(self, org_id: str, user_id: str) -> Invitation | None:
        doc = await self.db.invitations.find_one({"_id": f"{org_id}{SEP}{user_id}"})
        return self._invitation(doc) if doc else None

    async def list_invitations(self, user_id: str) -> list[Invitation]:
        cursor = self.db.invitations.find({"user_id": user_id}).sort("org_id", ASCENDING)
        return [self._invitation(d) async for d in cursor]

    async def delete_invitation(self, org_id: str, user_id: str) -> bool:
        result = await self.db.invitations.delete_one({"_id": f"{org_id}{SEP}{user_id}"})
        return result.deleted_count == 1


class MongoTokenStore(_Part, TokenStore):
    async def put_refresh(self, token: RefreshToken) -> None:
        try:
            await self.db.refresh.insert_one(
                {
                    "_id": token.token_hash,
                    "family_id": token.family_id,
                    "user_id": token.user_id,
                    "org_id": token.org_id,
                    "device_id": token.device_id,
                    "issued_at": token.issued_at,
                    "family_expires_at": token.family_expires_at,
                    "purge_at": _purge_at(token.family_expires_at),
                }
            )
        except DuplicateKeyError:
            raise AlreadyExists("refresh token") from None

    async def use_refresh(self, token_hash: bytes) -> RefreshUse | None:
        doc = await self.db.refresh.find_one({"_id": token_hash})
        if doc is None:
            return None
        token = RefreshToken(
            bytes(doc["_id"]),
            doc["family_id"],
            doc["user_id"],
            doc["org_id"],
            doc["device_id"],
            doc["issued_at"],
            doc["family_expires_at"],
        )
        try:  # exactly one concurrent caller inserts the use marker
            await self.db.refresh_uses.insert_one(
                {"_id": token_hash, "purge_at": _purge_at(token.family_expires_at)}
            )
        except DuplicateKeyError:
            return RefreshUse(token, True)
        return RefreshUse(token, False)

    async def revoke_family(self, family_id: str) -> None:
        await self.db.revoked.update_one(
            {"_id": family_id}, {"$set": {"revoked": True}}, upsert=True
        )

    async def is_family_revoked(self, family_id: str) -> bool:
        return await self.db.revoked.find_one({"_id": family_id}) is not None

    async def revoke_device(self, user_id: str, device_id: str) -> None:
        families = await self.db.refresh.distinct(
            "family_id", {"user_id": user_id, "device_id": device_id}
        )
        for family_id in families:
            await self.revoke_family(family_id)

    async def revoke_member(self, org_id: str, user_id: str) -> None:
        families = await self.db.refresh.distinct(
            "family_id", {"user_id": user_id, "org_id": org_id}
        )
        for family_id in families:
            await self.revoke_family(family_id)

    @staticmethod
    def _otp_key(org_id: str, user_id: str, address: str) -> str:
        return f"{org_id}{SEP}{user_id}{SEP}{address}"

    @staticmethod
    def _otp(doc: Doc) -> OtpChallenge:
        return OtpChallenge(
            doc["org_id"], doc["user_id"], bytes(doc["code_hash"]), doc["expires_at"],
            doc["address"], doc["failures"], doc["strikes"], doc["locked_until"],
        )

    async def put_otp(self, challenge: OtpChallenge) -> None:
        c = challenge
        await self.db.otps.replace_one(
            {"_id": self._otp_key(c.org_id, c.user_id, c.address)},
            {
                "org_id": c.org_id,
                "user_id": c.user_id,
                "address": c.address,
                "code_hash": c.code_hash,
                "expires_at": c.expires_at,
                "failures": c.failures,
                "strikes": c.strikes,
                "locked_until": c.locked_until,
                "nonce": secrets.token_hex(8),
                "purge_at": _purge_at(max(c.expires_at, c.locked_until)),
            },
            upsert=True,
        )

    async def _counted(self, doc: Doc) -> OtpChallenge:
        """The challenge with its failure count read from the claimed markers too: the
        stored count's ``$max`` is a read-modify-write on FerretDB, so a lagging writer can
        leave it below the number of failures claimed (markers are claimed contiguously from
        the stored count, one per failure, so their number is the count)."""
        claimed = await self.db.otp_guesses.count_documents(
            {"otp": doc["_id"], "nonce": doc["nonce"]})
        return self._otp({**doc, "failures": max(doc["failures"], claimed)})

    async def get_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        doc = await self.db.otps.find_one({"_id": self._otp_key(org_id, user_id, address)})
        return await self._counted(doc) if doc else None

    async def take_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        key = self._otp_key(org_id, user_id, address)
        while True:
            doc = await self.db.otps.find_one({"_id": key})
            if doc is None:
                return None
            # the nonce changes on every put: a replacement in between makes this delete miss
            # and the loop read the new challenge, so no caller gets a stale one
            deleted = await self.db.otps.delete_one({"_id": key, "nonce": doc["nonce"]})
            if deleted.deleted_count == 1:
                return await self._counted(doc)

    async def fail_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        """Each count of a challenge (per ``nonce``: per put) is claimed by exactly one
        caller through a unique marker, since ``$inc`` is not atomic on FerretDB; the stored
        count only moves up (``$max``) and a lagging one is skipped past."""
        key = self._otp_key(org_id, user_id, address)
        doc = await self.db.otps.find_one({"_id": key})
        if doc is None:
            return None
        failures = doc["failures"]
        while True:
            failures += 1
            try:
                await self.db.otp_guesses.insert_one(
                    {"_id": f"{key}{SEP}{doc['nonce']}{SEP}{failures}", "otp": key,
                     "nonce": doc["nonce"], "purge_at": doc["purge_at"]}
                )
            except DuplicateKeyError:
                continue
            break
        await self.db.otps.update_one(
            {"_id": key, "nonce": doc["nonce"]}, {"$max": {"failures": failures}}
        )
        doc["failures"] = failures
        return self._otp(doc)


class MongoKeyStore(_Part, KeyStore):
    async def put_identity(self, identity: IdentityRecord) -> None:
        key = {"user_id": identity.user_id, "device_id": identity.device_id}
        await self.db.identities.replace_one(
            key, {**key, "ik": identity.ik, "sik": identity.sik}, upsert=True
        )

    async def get_identity(self, user_id: str, device_id: str) -> IdentityRecord | None:
        doc = await self.db.identities.find_one({"user_id": user_id, "device_id": device_id})
        if doc is None:
            return None
        return IdentityRecord(user_id, device_id, bytes(doc["ik"]), bytes(doc["sik"]))

    async def set_spk(self, user_id: str, device_id: str, spk: SignedPrekeyRecord) -> None:
        key = {"user_id": user_id, "device_id": device_id}
        await self.db.spks.replace_one(
            key,
            {**key, "key_id": spk.key_id, "public": spk.public, "signature": spk.signature},
            upsert=True,
        )

    async def get_spk(self, user_id: str, device_id: str) -> SignedPrekeyRecord | None:
        doc = await self.db.spks.find_one({"user_id": user_id, "device_id": device_id})
        if doc is None:
            return None
        return SignedPrekeyRecord(doc["key_id"], bytes(doc["public"]), bytes(doc["signature"]))

    async def add_opks(
        self, user_id: str, device_id: str, opks: Sequence[OneTimePrekeyRecord]
    ) -> None:
        ids = [o.key_id for o in opks]
        if len(set(ids)) != len(ids):
            raise AlreadyExists("opk key_id")
        if not opks:
            return
        owner = {"user_id": user_id, "device_id": device_id}
        if await self.db.opks.find_one({**owner, "key_id": {"$in": ids}}) is not None:
            raise AlreadyExists("opk key_id")
        last = await self.database.next_seq("opk", len(opks))
        docs = [
            {**owner, "key_id": o.key_id, "public": o.public, "seq": last - len(opks) + 1 + i}
            for i, o in enumerate(opks)
        ]
        try:
            await self.db.opks.insert_many(docs, ordered=True)
        except DuplicateKeyError:
            # a concurrent batch took one of these ids between the check and the insert:
            # undo the part of this batch that went in (all or nothing)
            await self.db.opks.delete_many({**owner, "seq": {"$in": [d["seq"] for d in docs]}})
            raise AlreadyExists("opk key_id") from None
        except OperationFailure as exc:  # BulkWriteError with duplicate-key write errors
            await self.db.opks.delete_many({**owner, "seq": {"$in": [d["seq"] for d in docs]}})
            if "E11000" in str(exc) or getattr(exc, "code", None) == 11000:
                raise AlreadyExists("opk key_id") from None
            raise

    async def claim_opk(self, user_id: str, device_id: str) -> OneTimePrekeyRecord | None:
        owner = {"user_id": user_id, "device_id": device_id}
        while True:
            cursor = self.db.opks.find(owner).sort("seq", ASCENDING).limit(8)
            candidates = [doc async for doc in cursor]
            if not candidates:
                return None
            for doc in candidates:  # the oldest this caller manages to delete is its own
                if (await self.db.opks.delete_one({"_id": doc["_id"]})).deleted_count == 1:
                    return OneTimePrekeyRecord(doc["key_id"], bytes(doc["public"]))

    async def opk_count(self, user_id: str, device_id: str) -> int:
        return await self.db.opks.count_documents({"user_id": user_id, "device_id": device_id})

    async def published_devices(self, user_id: str) -> set[str]:
        # no joins in FerretDB v1: two reads by the (user_id, device_id) index, intersected
        only = {"user_id": user_id}
        projection = {"_id": 0, "device_id": 1}
        with_spk = {d["device_id"] async for d in self.db.spks.find(only, projection)}
        if not with_spk:
            return set()
        identified = {d["device_id"] async for d in self.db.identities.find(only, projection)}
        return with_spk & identified

    async def delete_device_keys(self, user_id: str, device_id: str) -> None:
        key = {"user_id": user_id, "device_id": device_id}
        for collection in ("identities", "spks", "opks"):
            await self.db[collection].delete_many(key)


class MongoAttachmentStore(_Part, AttachmentStore):
    async def put_meta(self, meta: AttachmentMeta) -> None:
        try:
            await self.db.attachments.insert_one(
                {
                    "_id": meta.file_id,
                    "org_id": meta.org_id,
                    "owner_user_id": meta.owner_user_id,
                    "owner_device_id": meta.owner_device_id,
                    "size": meta.size,
                    "sha256": meta.sha256,
                    "recipients": list(meta.recipients),
                    "created_at": meta.created_at,
                    "committed": meta.committed,
                }
            )
        except DuplicateKeyError:
            raise AlreadyExists(meta.file_id) from None

    async def get_meta(self, file_id: str) -> AttachmentMeta | None:
        doc = await self.db.attachments.find_one({"_id": file_id})
        if doc is None:
            return None
        return AttachmentMeta(
            doc["_id"],
            doc["org_id"],
            doc["owner_user_id"],
            doc["owner_device_id"],
            doc["size"],
            bytes(doc["sha256"]),
            tuple(doc["recipients"]),
            doc["created_at"],
            doc["committed"],
        )

    async def mark_committed(self, file_id: str) -> bool:
        result = await self.db.attachments.update_one(
            {"_id": file_id}, {"$set": {"committed": True}}
        )
        return result.matched_count == 1

    async def delete_meta(self, file_id: str) -> bool:
        return (await self.db.attachments.delete_one({"_id": file_id})).deleted_count == 1

    async def expired(self, org_id: str, before: float) -> list[str]:
        cursor = self.db.attachments.find(
            {"org_id": org_id, "created_at": {"$lt": before}}, {"_id": 1}
        )
        return sorted([d["_id"] async for d in cursor])


class MongoAuditStore(_Part, AuditStore):
    async def append(self, event: AuditEvent) -> AuditEvent:
        event_id = event.event_id or uuid.uuid4().hex
        while True:
            # the counter's $inc is not atomic on FerretDB: two appends may draw the same
            # number; the unique (org_id, seq) index lets exactly one keep it, the other redraws
            seq = await self.database.next_seq(f"audit:{event.org_id}")
            try:
                await self.db.audit.insert_one(
                    {
                        "org_id": event.org_id,
                        "seq": seq,
                        "event_type": event.event_type,
                        "at": event.at,
                        "actor_user_id": event.actor_user_id,
                        "actor_device_id": event.actor_device_id,
                        "subject_user_id": event.subject_user_id,
                        "details": event.details,
                        "event_id": event_id,
                        "schema_version": event.schema_version,
                    }
                )
                break
            except DuplicateKeyError:
                continue
        return AuditEvent(
            event.org_id,
            event.event_type,
            event.at,
            event.actor_user_id,
            event.actor_device_id,
            event.subject_user_id,
            event.details,
            event_id,
            seq,
            event.schema_version,
        )

    async def query(self, query: AuditQuery) -> list[AuditEvent]:
        where: Doc = {"org_id": query.org_id, "seq": {"$gt": query.after_seq}}
        if query.event_types:
            where["event_type"] = {"$in": list(query.event_types)}
        if query.actor_user_id is not None:
            where["actor_user_id"] = query.actor_user_id
        if query.subject_user_id is not None:
            where["subject_user_id"] = query.subject_user_id
        at: Doc = {}
        if query.since is not None:
            at["$gte"] = query.since
        if query.until is not None:
            at["$lt"] = query.until
        if at:
            where["at"] = at
        if query.limit <= 0:
            return []
        cursor = self.db.audit.find(where).sort("seq", ASCENDING).limit(query.limit)
        return [
            AuditEvent(
                d["org_id"],
                d["event_type"],
                d["at"],
                d["actor_user_id"],
                d["actor_device_id"],
                d["subject_user_id"],
                d["details"],
                d["event_id"],
                d["seq"],
                d["schema_version"],
            )
            async for d in cursor
        ]

    async def expire(self, org_id: str, before: float) -> int:
        result = await self.db.audit.delete_many({"org_id": org_id, "at": {"$lt": before}})
        return result.deleted_count
