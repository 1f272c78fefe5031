"""SQLite adapters (stdlib ``sqlite3``): the embedded, persistent store of ``semafore serve``.

One connection per database file, WAL mode, one ``BEGIN IMMEDIATE`` transaction per port
method, so every method is atomic even across processes sharing the file (the OPK claim is a
``DELETE ... RETURNING`` inside that transaction). Calls run inline on the event loop:
a local SQLite statement costs microseconds, less than a thread hop would, and a lock keeps
the connection safe when the relay runs in a background thread.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from semafore.storage.memory import MemoryRateLimitStore
from semafore.storage.ports import (
    AccountStore,
    AlreadyExists,
    AttachmentMeta,
    AttachmentStore,
    AuditEvent,
    AuditQuery,
    AuditStore,
    BlobStore,
    DeliveryProof,
    Device,
    IdentityRecord,
    Invitation,
    KeyStore,
    Membership,
    NotFound,
    OneTimePrekeyRecord,
    Org,
    OtpChallenge,
    QueuedEnvelope,
    QueueStore,
    RateDecision,
    RateLimitStore,
    RefreshToken,
    RefreshUse,
    RetentionPolicy,
    SendKey,
    SendRecord,
    SignedPrekeyRecord,
    Stores,
    TokenStore,
    TotpEnrolment,
    User,
    check_signup,
)

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (org_id TEXT PRIMARY KEY, name TEXT NOT NULL,
  created_at REAL NOT NULL, plan TEXT NOT NULL, seats INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS memberships (org_id TEXT NOT NULL, user_id TEXT NOT NULL,
  role TEXT NOT NULL, joined_at REAL NOT NULL, PRIMARY KEY (org_id, user_id));
CREATE INDEX IF NOT EXISTS memberships_user ON memberships (user_id);
CREATE TABLE IF NOT EXISTS devices (user_id TEXT NOT NULL, device_id TEXT NOT NULL,
  registration_id INTEGER NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (user_id, device_id));
CREATE TABLE IF NOT EXISTS totp (user_id TEXT PRIMARY KEY, secret BLOB NOT NULL,
  last_step INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS retention (org_id TEXT PRIMARY KEY, envelope_max_age INTEGER,
  attachment_max_age INTEGER, audit_max_age INTEGER);
CREATE TABLE IF NOT EXISTS refresh_tokens (token_hash BLOB PRIMARY KEY, family_id TEXT NOT NULL,
  user_id TEXT NOT NULL, org_id TEXT NOT NULL, device_id TEXT NOT NULL, issued_at REAL NOT NULL,
  family_expires_at REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS refresh_device ON refresh_tokens (user_id, device_id);
CREATE TABLE IF NOT EXISTS revoked_families (family_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS otp_challenges (org_id TEXT NOT NULL, user_id TEXT NOT NULL,
  address TEXT NOT NULL, code_hash BLOB NOT NULL, expires_at REAL NOT NULL,
  failures INTEGER NOT NULL, strikes INTEGER NOT NULL, locked_until REAL NOT NULL,
  PRIMARY KEY (org_id, user_id, address));
CREATE INDEX IF NOT EXISTS refresh_member ON refresh_tokens (user_id, org_id);
CREATE TABLE IF NOT EXISTS invitations (org_id TEXT NOT NULL, user_id TEXT NOT NULL,
  role TEXT NOT NULL, invited_by TEXT NOT NULL, invited_at REAL NOT NULL,
  expires_at REAL NOT NULL, PRIMARY KEY (org_id, user_id));
CREATE INDEX IF NOT EXISTS invitations_user ON invitations (user_id);
CREATE TABLE IF NOT EXISTS identities (user_id TEXT NOT NULL, device_id TEXT NOT NULL,
  ik BLOB NOT NULL, sik BLOB NOT NULL, PRIMARY KEY (user_id, device_id));
CREATE TABLE IF NOT EXISTS spks (user_id TEXT NOT NULL, device_id TEXT NOT NULL,
  key_id TEXT NOT NULL, public BLOB NOT NULL, signature BLOB NOT NULL,
  PRIMARY KEY (user_id, device_id));
CREATE TABLE IF NOT EXISTS opks (seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL,
  device_id TEXT NOT NULL, key_id TEXT NOT NULL, public BLOB NOT NULL,
  UNIQUE (user_id, device_id, key_id));
CREATE TABLE IF NOT EXISTS envelopes (seq INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id TEXT NOT NULL UNIQUE, org_id TEXT NOT NULL, message_id TEXT NOT NULL,
  kind TEXT NOT NULL, sender_user_id TEXT NOT NULL, sender_device_id TEXT NOT NULL,
  recipient_user_id TEXT NOT NULL, recipient_device_id TEXT NOT NULL, body BLOB NOT NULL,
  envelope_hash BLOB NOT NULL, received_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS envelopes_queue
  ON envelopes (recipient_user_id, recipient_device_id, seq);
CREATE INDEX IF NOT EXISTS envelopes_age ON envelopes (org_id, received_at);
CREATE TABLE IF NOT EXISTS deliveries (delivery_id TEXT PRIMARY KEY, org_id TEXT NOT NULL,
  message_id TEXT NOT NULL, envelope_hash BLOB NOT NULL, sender_user_id TEXT NOT NULL,
  sender_device_id TEXT NOT NULL, recipient_user_id TEXT NOT NULL,
  recipient_device_id TEXT NOT NULL, received_at REAL NOT NULL, delivered_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_org ON deliveries (org_id, delivery_id);
CREATE TABLE IF NOT EXISTS sends (org_id TEXT NOT NULL, sender_user_id TEXT NOT NULL,
  sender_device_id TEXT NOT NULL, recipient TEXT NOT NULL, message_id TEXT NOT NULL,
  digest BLOB NOT NULL, deliveries TEXT NOT NULL, accepted_at REAL NOT NULL,
  expires_at REAL NOT NULL,
  PRIMARY KEY (org_id, sender_user_id, sender_device_id, recipient, message_id))
  WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sends_age ON sends (org_id, accepted_at);
CREATE TABLE IF NOT EXISTS attachments (file_id TEXT PRIMARY KEY, org_id TEXT NOT NULL,
  owner_user_id TEXT NOT NULL, owner_device_id TEXT NOT NULL, size INTEGER NOT NULL,
  sha256 BLOB NOT NULL, recipients TEXT NOT NULL, created_at REAL NOT NULL,
  committed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit (org_id TEXT NOT NULL, seq INTEGER NOT NULL,
  event_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL, at REAL NOT NULL,
  actor_user_id TEXT, actor_device_id TEXT, subject_user_id TEXT, details TEXT NOT NULL,
  schema_version INTEGER NOT NULL, PRIMARY KEY (org_id, seq));
CREATE TABLE IF NOT EXISTS audit_seq (org_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rate_windows (key TEXT PRIMARY KEY, window INTEGER NOT NULL,
  count INTEGER NOT NULL);
"""


class SqliteDatabase:
    """The shared connection; ``tx()`` is one ``BEGIN IMMEDIATE`` … ``COMMIT``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed (retention)
        self.conn.executescript(SCHEMA)
        with self.tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self.conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Cursor]:
        """A single read statement: atomic on its own, and takes no write lock."""
        with self._lock:
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def compact(self) -> None:
        """Checkpoint and truncate the WAL so deleted rows survive in no file.

        With ``secure_delete`` on, freed cells are zeroed in the main file; without the
        checkpoint their old page images would still sit in the WAL.
        """
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def dump(self) -> list[tuple[str, bytes]]:
        """Every row of every table as bytes, plus the raw database and WAL files."""
        out: list[tuple[str, bytes]] = []
        with self._lock:
            tables = [
                r[0]
                for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                for i, row in enumerate(self.conn.execute(f'SELECT * FROM "{table}"')):  # noqa: S608
                    parts = [
                        v if isinstance(v, bytes) else str(v).encode("utf-8") for v in row
                    ]
                    out.append((f"sqlite:{table}:{i}", b"\x1f".join(parts)))
        for suffix in ("", "-wal"):
            try:
                with open(self.path + suffix, "rb") as fh:
                    out.append((f"file:{self.path}{suffix}", fh.read()))
            except FileNotFoundError:
                pass
        return out


class _Port:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db


class SqliteAccountStore(_Port, AccountStore):
    async def create_org(self, org: Org) -> None:
        try:
            with self.db.tx() as cur:
                cur.execute(
                    "INSERT INTO orgs VALUES (?, ?, ?, ?, ?)",
                    (org.org_id, org.name, org.created_at, org.plan, org.seats),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(org.org_id) from exc

    async def create_org_with_admin(self, org: Org, admin: User, totp: TotpEnrolment) -> None:
        """One ``BEGIN IMMEDIATE`` transaction: every row or none (also across processes)."""
        check_signup(org, admin, totp)
        with self.db.tx() as cur:
            taken = cur.execute(
                "SELECT 'org' FROM orgs WHERE org_id = ? UNION ALL "
                "SELECT 'user' FROM users WHERE user_id = ?",
                (org.org_id, admin.user_id),
            ).fetchone()
            if taken is not None:
                raise AlreadyExists(org.org_id if taken[0] == "org" else admin.user_id)
            cur.execute(
                "INSERT INTO orgs VALUES (?, ?, ?, ?, ?)",
                (org.org_id, org.name, org.created_at, org.plan, org.seats),
            )
            cur.execute("INSERT INTO users VALUES (?, ?)", (admin.user_id, admin.created_at))
            cur.execute(
                "INSERT OR REPLACE INTO totp VALUES (?, ?, ?)",
                (totp.user_id, totp.secret, totp.last_step),
            )
            cur.execute(
                "INSERT INTO memberships VALUES (?, ?, 'admin', ?)",
                (org.org_id, admin.user_id, org.created_at),
            )

    async def get_org(self, org_id: str) -> Org | None:
        with self.db.read() as cur:
            row = cur.execute("SELECT * FROM orgs WHERE org_id = ?", (org_id,)).fetchone()
        return Org(*row) if row else None

    async def update_org(self, org: Org) -> None:
        with self.db.tx() as cur:
            cur.execute(
                "UPDATE orgs SET name = ?, plan = ?, seats = ? WHERE org_id = ?",
                (org.name, org.plan, org.seats, org.org_id),
            )
            if cur.rowcount == 0:
                raise NotFound(org.org_id)

    async def list_orgs(self) -> list[Org]:
        with self.db.read() as cur:
            rows = cur.execute("SELECT * FROM orgs ORDER BY org_id").fetchall()
        return [Org(*r) for r in rows]

    async def create_user(self, user: User) -> None:
        try:
            with self.db.tx() as cur:
                cur.execute("INSERT INTO users VALUES (?, ?)", (user.user_id, user.created_at))
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(user.user_id) from exc

    async def get_user(self, user_id: str) -> User | None:
        with self.db.read() as cur:
            row = cur.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return User(*row) if row else None

    async def put_membership(self, membership: Membership) -> None:
        m = membership
        with self.db.tx() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO memberships VALUES (?, ?, ?, ?)",
                (m.org_id, m.user_id, m.role, m.joined_at),
            )

    async def get_membership(self, org_id: str, user_id: str) -> Membership | None:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT * FROM memberships WHERE org_id = ? AND user_id = ?", (org_id, user_id)
            ).fetchone()
        return Membership(*row) if row else None

    async def list_memberships(self, user_id: str) -> list[Membership]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT * FROM memberships WHERE user_id = ? ORDER BY org_id", (user_id,)
            ).fetchall()
        return [Membership(*r) for r in rows]

    async def list_members(self, org_id: str) -> list[Membership]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT * FROM memberships WHERE org_id = ? ORDER BY user_id", (org_id,)
            ).fetchall()
        return [Membership(*r) for r in rows]

    async def delete_membership(self, org_id: str, user_id: str) -> bool:
        with self.db.tx() as cur:
            cur.execute(
                "DELETE FROM memberships WHERE org_id = ? AND user_id = ?", (org_id, user_id)
            )
            return cur.rowcount > 0

    async def add_device(self, device: Device) -> None:
        d = device
        try:
            with self.db.tx() as cur:
                cur.execute(
                    "INSERT INTO devices VALUES (?, ?, ?, ?)",
                    (d.user_id, d.device_id, d.registration_id, d.created_at),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(d.device_id) from exc

    async def get_device(self, user_id: str, device_id: str) -> Device | None:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT * FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            ).fetchone()
        return Device(*row) if row else None

    async def list_devices(self, user_id: str) -> list[Device]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT * FROM devices WHERE user_id = ? ORDER BY device_id", (user_id,)
            ).fetchall()
        return [Device(*r) for r in rows]

    async def delete_device(self, user_id: str, device_id: str) -> bool:
        with self.db.tx() as cur:
            cur.execute(
                "DELETE FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )
            return cur.rowcount > 0

    async def put_totp(self, enrolment: TotpEnrolment) -> None:
        e = enrolment
        with self.db.tx() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO totp VALUES (?, ?, ?)", (e.user_id, e.secret, e.last_step)
            )

    async def get_totp(self, user_id: str) -> TotpEnrolment | None:
        with self.db.read() as cur:
            row = cur.execute("SELECT * FROM totp WHERE user_id = ?", (user_id,)).fetchone()
        return TotpEnrolment(row[0], bytes(row[1]), row[2]) if row else None

    async def delete_totp(self, user_id: str) -> bool:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM totp WHERE user_id = ?", (user_id,))
            return cur.rowcount > 0

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        with self.db.tx() as cur:
            cur.execute(
                "UPDATE totp SET last_step = ? WHERE user_id = ? AND last_step < ?",
                (step, user_id, step),
            )
            return cur.rowcount > 0

    async def put_retention(self, policy: RetentionPolicy) -> None:
        p = policy
        with self.db.tx() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO retention VALUES (?, ?, ?, ?)",
                (p.org_id, p.envelope_max_age, p.attachment_max_age, p.audit_max_age),
            )

    async def get_retention(self, org_id: str) -> RetentionPolicy | None:
        with self.db.read() as cur:
            row = cur.execute("SELECT * FROM retention WHERE org_id = ?", (org_id,)).fetchone()
        return RetentionPolicy(*row) if row else None

    async def put_invitation(self, invitation: Invitation) -> None:
        i = invitation
        with self.db.tx() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO invitations VALUES (?, ?, ?, ?, ?, ?)",
                (i.org_id, i.user_id, i.role, i.invited_by, i.invited_at, i.expires_at),
            )

    async def get_invitation(self, org_id: str, user_id: str) -> Invitation | None:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT * FROM invitations WHERE org_id = ? AND user_id = ?", (org_id, user_id)
            ).fetchone()
        return Invitation(*row) if row else None

    async def list_invitations(self, user_id: str) -> list[Invitation]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT * FROM invitations WHERE user_id = ? ORDER BY org_id", (user_id,)
            ).fetchall()
        return [Invitation(*r) for r in rows]

    async def delete_invitation(self, org_id: str, user_id: str) -> bool:
        with self.db.tx() as cur:
            cur.execute(
                "DELETE FROM invitations WHERE org_id = ? AND user_id = ?", (org_id, user_id)
            )
            return cur.rowcount > 0


class SqliteTokenStore(_Port, TokenStore):
    async def put_refresh(self, token: RefreshToken) -> None:
        t = token
        try:
            with self.db.tx() as cur:
                cur.execute(
                    "INSERT INTO refresh_tokens VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                    (
                        t.token_hash,
                        t.family_id,
                        t.user_id,
                        t.org_id,
                        t.device_id,
                        t.issued_at,
                        t.family_expires_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists("refresh token") from exc

    async def use_refresh(self, token_hash: bytes) -> RefreshUse | None:
        with self.db.tx() as cur:
            row = cur.execute(
                "SELECT * FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            if row is None:
                return None
            cur.execute("UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?", (token_hash,))
        return RefreshUse(RefreshToken(bytes(row[0]), *row[1:7]), bool(row[7]))

    async def revoke_family(self, family_id: str) -> None:
        with self.db.tx() as cur:
            cur.execute("INSERT OR IGNORE INTO revoked_families VALUES (?)", (family_id,))

    async def is_family_revoked(self, family_id: str) -> bool:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT 1 FROM revoked_families WHERE family_id = ?", (family_id,)
            ).fetchone()
        return row is not None

    async def revoke_device(self, user_id: str, device_id: str) -> None:
        with self.db.tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO revoked_families SELECT DISTINCT family_id "
                "FROM refresh_tokens WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )

    async def revoke_member(self, org_id: str, user_id: str) -> None:
        with self.db.tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO revoked_families SELECT DISTINCT family_id "
                "FROM refresh_tokens WHERE user_id = ? AND org_id = ?",
                (user_id, org_id),
            )

    @staticmethod
    def _otp(row: Any) -> OtpChallenge:
        org_id, user_id, address, code_hash, expires_at, failures, strikes, locked = row
        return OtpChallenge(
            org_id, user_id, bytes(code_hash), expires_at, address, failures, strikes, locked
        )

    async def put_otp(self, challenge: OtpChallenge) -> None:
        c = challenge
        with self.db.tx() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO otp_challenges VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.org_id, c.user_id, c.address, c.code_hash, c.expires_at, c.failures,
                    c.strikes, c.locked_until,
                ),
            )

    async def get_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT * FROM otp_challenges WHERE org_id = ? AND user_id = ? AND address = ?",
                (org_id, user_id, address),
            ).fetchone()
        return self._otp(row) if row else None

    async def take_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        with self.db.tx() as cur:
            row = cur.execute(
                "DELETE FROM otp_challenges WHERE org_id = ? AND user_id = ? AND address = ? "
                "RETURNING *",
                (org_id, user_id, address),
            ).fetchone()
        return self._otp(row) if row else None

    async def fail_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        with self.db.tx() as cur:
            row = cur.execute(
                "UPDATE otp_challenges SET failures = failures + 1 "
                "WHERE org_id = ? AND user_id = ? AND address = ? RETURNING *",
                (org_id, user_id, address),
            ).fetchone()
        return self._otp(row) if row else None


class SqliteKeyStore(_Port, KeyStore):
    async def put_identity(self, identity: IdentityRecord) -> None:
        i = identity
        with self.db.tx() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO identities VALUES (?, ?, ?, ?)",
                (i.user_id, i.device_id, i.ik, i.sik),
            )

    async def get_identity(self, user_id: str, device_id: str) -> IdentityRecord | None:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT * FROM identities WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            ).fetchone()
        return IdentityRecord(row[0], row[1], bytes(row[2]), bytes(row[3])) if row else None

    async def set_spk(self, user_id: str, device_id: str, spk: SignedPrekeyRecord) -> None:
        with self.db.tx() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO spks VALUES (?, ?, ?, ?, ?)",
                (user_id, device_id, spk.key_id, spk.public, spk.signature),
            )

    async def get_spk(self, user_id: str, device_id: str) -> SignedPrekeyRecord | None:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT key_id, public, signature FROM spks WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            ).fetchone()
        return SignedPrekeyRecord(row[0], bytes(row[1]), bytes(row[2])) if row else None

    async def add_opks(
        self, user_id: str, device_id: str, opks: Sequence[OneTimePrekeyRecord]
    ) -> None:
        try:
            with self.db.tx() as cur:
                cur.executemany(
                    "INSERT INTO opks (user_id, device_id, key_id, public) VALUES (?, ?, ?, ?)",
                    [(user_id, device_id, o.key_id, o.public) for o in opks],
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists("opk key_id") from exc

    async def claim_opk(self, user_id: str, device_id: str) -> OneTimePrekeyRecord | None:
        with self.db.tx() as cur:
            row = cur.execute(
                "DELETE FROM opks WHERE seq = (SELECT seq FROM opks WHERE user_id = ? AND "
                "device_id = ? ORDER BY seq LIMIT 1) RETURNING key_id, public",
                (user_id, device_id),
            ).fetchone()
        return OneTimePrekeyRecord(row[0], bytes(row[1])) if row else None

    async def opk_count(self, user_id: str, device_id: str) -> int:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT COUNT(*) FROM opks WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            ).fetchone()
        return int(row[0])

    async def published_devices(self, user_id: str) -> set[str]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT s.device_id FROM spks s JOIN identities i "
                "ON i.user_id = s.user_id AND i.device_id = s.device_id WHERE s.user_id = ?",
                (user_id,),
            ).fetchall()
        return {r[0] for r in rows}

    async def delete_device_keys(self, user_id: str, device_id: str) -> None:
        with self.db.tx() as cur:
            for table in ("identities", "spks", "opks"):
                cur.execute(
                    f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?",  # noqa: S608
                    (user_id, device_id),
                )


_ENV_COLS = (
    "delivery_id, org_id, message_id, kind, sender_user_id, sender_device_id, "
    "recipient_user_id, recipient_device_id, body, envelope_hash, received_at"
)


def _envelope(row: Sequence[Any]) -> QueuedEnvelope:
    r = list(row)
    r[8], r[9] = bytes(r[8]), bytes(r[9])
    return QueuedEnvelope(*r)


_SEND_COLS = (
    "org_id, sender_user_id, sender_device_id, recipient, message_id, digest, deliveries, "
    "accepted_at, expires_at"
)
_SEND_KEY = (
    "org_id = ? AND sender_user_id = ? AND sender_device_id = ? AND recipient = ? AND "
    "message_id = ?"
)


def _send(row: Sequence[Any]) -> SendRecord:
    deliveries = tuple((str(u), str(d), str(i)) for u, d, i in json.loads(row[6]))
    return SendRecord(
        row[0], row[1], row[2], row[3], row[4], bytes(row[5]), deliveries, row[7], row[8]
    )


def _insert_envelopes(cur: sqlite3.Cursor, envelopes: Sequence[QueuedEnvelope]) -> None:
    cur.executemany(
        f"INSERT INTO envelopes ({_ENV_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
        [
            (
                e.delivery_id,
                e.org_id,
                e.message_id,
                e.kind,
                e.sender_user_id,
                e.sender_device_id,
                e.recipient_user_id,
                e.recipient_device_id,
                e.body,
                e.envelope_hash,
                e.received_at,
            )
            for e in envelopes
        ],
    )


class SqliteQueueStore(_Port, QueueStore):
    async def enqueue_send(
        self, record: SendRecord, envelopes: Sequence[QueuedEnvelope]
    ) -> SendRecord | None:
        """The ledger row and the envelopes in one transaction: a crash leaves both or none."""
        r = record
        try:
            with self.db.tx() as cur:
                inserted = cur.execute(
                    f"INSERT INTO sends ({_SEND_COLS}) VALUES (?,?,?,?,?,?,?,?,?) "  # noqa: S608
                    "ON CONFLICT DO NOTHING",
                    (
                        *r.key,
                        r.digest,
                        json.dumps([list(d) for d in r.deliveries]),
                        r.accepted_at,
                        r.expires_at,
                    ),
                ).rowcount
                if inserted:
                    _insert_envelopes(cur, envelopes)
                    return None
                row = cur.execute(
                    f"SELECT {_SEND_COLS} FROM sends WHERE {_SEND_KEY}", r.key  # noqa: S608
                ).fetchone()
                return _send(row)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists("delivery_id") from exc

    async def get_send(self, key: SendKey) -> SendRecord | None:
        with self.db.read() as cur:
            row = cur.execute(
                f"SELECT {_SEND_COLS} FROM sends WHERE {_SEND_KEY}", key  # noqa: S608
            ).fetchone()
        return _send(row) if row is not None else None

    async def expire_sends(self, org_id: str, before: float) -> int:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM sends WHERE org_id = ? AND accepted_at < ?", (org_id, before))
            return cur.rowcount

    async def enqueue(self, envelopes: Sequence[QueuedEnvelope]) -> None:
        try:
            with self.db.tx() as cur:
                _insert_envelopes(cur, envelopes)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists("delivery_id") from exc

    async def fetch(self, user_id: str, device_id: str, limit: int) -> list[QueuedEnvelope]:
        if limit <= 0:
            return []
        with self.db.read() as cur:
            rows = cur.execute(
                f"SELECT {_ENV_COLS} FROM envelopes WHERE recipient_user_id = ? AND "  # noqa: S608
                "recipient_device_id = ? ORDER BY seq LIMIT ?",
                (user_id, device_id, limit),
            ).fetchall()
        return [_envelope(r) for r in rows]

    async def ack(
        self, user_id: str, device_id: str, delivery_ids: Sequence[str]
    ) -> list[QueuedEnvelope]:
        out = []
        with self.db.tx() as cur:
            for delivery_id in dict.fromkeys(delivery_ids):
                row = cur.execute(
                    f"DELETE FROM envelopes WHERE delivery_id = ? AND recipient_user_id = ? "  # noqa: S608
                    f"AND recipient_device_id = ? RETURNING {_ENV_COLS}",
                    (delivery_id, user_id, device_id),
                ).fetchone()
                if row is not None:
                    out.append(_envelope(row))
        return out

    async def count(self, user_id: str, device_id: str) -> int:
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT COUNT(*) FROM envelopes WHERE recipient_user_id = ? AND "
                "recipient_device_id = ?",
                (user_id, device_id),
            ).fetchone()
        return int(row[0])

    async def delete_device_queue(self, user_id: str, device_id: str) -> int:
        with self.db.tx() as cur:
            cur.execute(
                "DELETE FROM envelopes WHERE recipient_user_id = ? AND recipient_device_id = ?",
                (user_id, device_id),
            )
            return cur.rowcount

    async def expire(self, org_id: str, before: float) -> int:
        with self.db.tx() as cur:
            cur.execute(
                "DELETE FROM envelopes WHERE org_id = ? AND received_at < ?", (org_id, before)
            )
            return cur.rowcount

    async def record_delivery(self, proof: DeliveryProof) -> None:
        p = proof
        try:
            with self.db.tx() as cur:
                cur.execute(
                    "INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        p.delivery_id,
                        p.org_id,
                        p.message_id,
                        p.envelope_hash,
                        p.sender_user_id,
                        p.sender_device_id,
                        p.recipient_user_id,
                        p.recipient_device_id,
                        p.received_at,
                        p.delivered_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(p.delivery_id) from exc

    async def list_deliveries(
        self, org_id: str, after: str | None, limit: int
    ) -> list[DeliveryProof]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT * FROM deliveries WHERE org_id = ? AND delivery_id > ? "
                "ORDER BY delivery_id LIMIT ?",
                (org_id, after or "", max(limit, 0)),
            ).fetchall()
        out = []
        for row in rows:
            r = list(row)
            r[3] = bytes(r[3])
            out.append(DeliveryProof(*r))
        return out

    async def expire_deliveries(self, org_id: str, before: float) -> int:
        with self.db.tx() as cur:
            cur.execute(
                "DELETE FROM deliveries WHERE org_id = ? AND delivered_at < ?", (org_id, before)
            )
            return cur.rowcount


class SqliteAttachmentStore(_Port, AttachmentStore):
    async def put_meta(self, meta: AttachmentMeta) -> None:
        m = meta
        try:
            with self.db.tx() as cur:
                cur.execute(
                    "INSERT INTO attachments VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        m.file_id,
                        m.org_id,
                        m.owner_user_id,
                        m.owner_device_id,
                        m.size,
                        m.sha256,
                        json.dumps(list(m.recipients)),
                        m.created_at,
                        int(m.committed),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(m.file_id) from exc

    async def get_meta(self, file_id: str) -> AttachmentMeta | None:
        with self.db.read() as cur:
            row = cur.execute("SELECT * FROM attachments WHERE file_id = ?", (file_id,)).fetchone()
        if row is None:
            return None
        return AttachmentMeta(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            bytes(row[5]),
            tuple(json.loads(row[6])),
            row[7],
            bool(row[8]),
        )

    async def mark_committed(self, file_id: str) -> bool:
        with self.db.tx() as cur:
            cur.execute("UPDATE attachments SET committed = 1 WHERE file_id = ?", (file_id,))
            return cur.rowcount > 0

    async def delete_meta(self, file_id: str) -> bool:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM attachments WHERE file_id = ?", (file_id,))
            return cur.rowcount > 0

    async def expired(self, org_id: str, before: float) -> list[str]:
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT file_id FROM attachments WHERE org_id = ? AND created_at < ? "
                "ORDER BY file_id",
                (org_id, before),
            ).fetchall()
        return [r[0] for r in rows]


class SqliteBlobStore(_Port, BlobStore):
    async def put(self, key: str, data: bytes) -> None:
        with self.db.tx() as cur:
            cur.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?)", (key, bytes(data)))

    async def get(self, key: str) -> bytes | None:
        with self.db.read() as cur:
            row = cur.execute("SELECT data FROM blobs WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    async def delete(self, key: str) -> bool:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM blobs WHERE key = ?", (key,))
            return cur.rowcount > 0


_AUDIT_COLS = (
    "org_id, event_type, at, actor_user_id, actor_device_id, subject_user_id, details, "
    "event_id, seq, schema_version"
)


class SqliteAuditStore(_Port, AuditStore):
    async def append(self, event: AuditEvent) -> AuditEvent:
        with self.db.tx() as cur:
            # A counter row, not MAX(seq): seq never goes back after retention deletes events.
            row = cur.execute(
                "INSERT INTO audit_seq VALUES (?, 1) ON CONFLICT (org_id) "
                "DO UPDATE SET seq = seq + 1 RETURNING seq",
                (event.org_id,),
            ).fetchone()
            event_id = event.event_id or uuid.uuid4().hex
            stored = replace(event, seq=int(row[0]), event_id=event_id)
            cur.execute(
                f"INSERT INTO audit ({_AUDIT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                (
                    stored.org_id,
                    stored.event_type,
                    stored.at,
                    stored.actor_user_id,
                    stored.actor_device_id,
                    stored.subject_user_id,
                    json.dumps(stored.details, sort_keys=True),
                    stored.event_id,
                    stored.seq,
                    stored.schema_version,
                ),
            )
        return stored

    async def query(self, query: AuditQuery) -> list[AuditEvent]:
        sql = f"SELECT {_AUDIT_COLS} FROM audit WHERE org_id = ? AND seq > ?"  # noqa: S608
        args: list[Any] = [query.org_id, query.after_seq]
        if query.event_types:
            sql += f" AND event_type IN ({','.join('?' * len(query.event_types))})"
            args.extend(query.event_types)
        for column, value, op in (
            ("actor_user_id", query.actor_user_id, "="),
            ("subject_user_id", query.subject_user_id, "="),
            ("at", query.since, ">="),
            ("at", query.until, "<"),
        ):
            if value is not None:
                sql += f" AND {column} {op} ?"
                args.append(value)
        sql += " ORDER BY seq LIMIT ?"
        args.append(max(query.limit, 0))
        with self.db.read() as cur:
            rows = cur.execute(sql, args).fetchall()
        out = []
        for r in rows:
            out.append(
                AuditEvent(
                    org_id=r[0],
                    event_type=r[1],
                    at=r[2],
                    actor_user_id=r[3],
                    actor_device_id=r[4],
                    subject_user_id=r[5],
                    details=json.loads(r[6]),
                    event_id=r[7],
                    seq=r[8],
                    schema_version=r[9],
                )
            )
        return out

    async def expire(self, org_id: str, before: float) -> int:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM audit WHERE org_id = ? AND at < ?", (org_id, before))
            return cur.rowcount


class SqliteRateLimitStore(_Port, RateLimitStore):
    async def hit(self, key: str, limit: int, window: float, now: float) -> RateDecision:
        index = int(now // window)
        with self.db.tx() as cur:
            row = cur.execute(
                "SELECT window, count FROM rate_windows WHERE key = ?", (key,)
            ).fetchone()
            count = row[1] if row and row[0] == index else 0
            if count >= limit:
                return RateDecision(False, max(1, math.ceil((index + 1) * window - now)))
            cur.execute(
                "INSERT OR REPLACE INTO rate_windows VALUES (?, ?, ?)", (key, index, count + 1)
            )
        return RateDecision(True, 0)


def sqlite_stores(path: str, *, shared_rate_limits: bool = False) -> Stores:
    """The embedded SQLite store. Rate-limit counters are ephemeral by nature and written on
    every request, so by default they live in process memory; ``shared_rate_limits`` keeps
    them in the file (for several relay processes sharing one database)."""
    db = SqliteDatabase(path)
    return Stores(
        accounts=SqliteAccountStore(db),
        tokens=SqliteTokenStore(db),
        keys=SqliteKeyStore(db),
        queues=SqliteQueueStore(db),
        attachments=SqliteAttachmentStore(db),
        blobs=SqliteBlobStore(db),
        audit=SqliteAuditStore(db),
        ratelimits=SqliteRateLimitStore(db) if shared_rate_limits else MemoryRateLimitStore(),
        closers=[db],
    )
