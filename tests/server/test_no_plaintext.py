"""A conversation through a real relay (uvicorn on loopback, SQLite file) with real SMX1 and
DR_V1 envelopes made by ``semafore.protocol``; afterwards the whole store (every row of every
table, the database and WAL files) and every log line are scanned by the plaintext-absence
oracle (SPEC §8) for the plaintexts, every private key and, in logs, the raw identifiers:
zero hits. The oracle is shown not to be blind on the same data."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import websockets.sync.client as ws_client

from semafore.deploy.inprocess import serve_in_thread
from semafore.protocol import session_cipher
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import (
    DeviceKeys,
    PreKeyBundle,
    PublicOneTimePrekey,
    PublicSignedPrekey,
    device_address,
)
from semafore.protocol.primitives import aead_seal
from semafore.protocol.session import SessionRecord
from semafore.server.settings import Settings
from semafore.server.totp import totp
from semafore.storage.sqlite import sqlite_stores
from simulator.oracle import TIER_LOG, Chunk, Oracle, canary
from tests.server.helpers import LogCapture, b64, key_upload

ORG = "org-qa-7c2d"
USERS = {"alice-5e1f": ["phone-a9b8"], "bob-3d4c": ["phone-b7e6", "laptop-c5d4"]}


class Device:
    def __init__(self, http: httpx.Client, user: str, device: str, seed: str) -> None:
        self.http = http
        self.user = user
        self.device = device
        self.entropy = SeededEntropy(seed)
        self.keys = DeviceKeys.generate(self.entropy, opk_count=4)
        self.sessions: dict[str, SessionRecord] = {}
        self.token = ""
        self.registration_id = 0

    @property
    def address(self) -> str:
        return device_address(self.user, self.device)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def login(self, totp_code: str | None = None) -> None:
        body: dict[str, Any] = {
            "org_id": ORG,
            "user_id": self.user,
            "device_id": self.device,
            "otp": "000000",  # test mode + allow-listed org (ADR-0164)
        }
        if totp_code:
            body["totp"] = totp_code
        r = self.http.post("/v1/auth/login", json=body)
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]
        self.registration_id = r.json()["registration_id"]
        assert self.http.put("/v1/keys", json=key_upload(self.keys), headers=self.auth).is_success

    def send(self, recipient: str, message_id: str, plaintext: bytes) -> None:
        bundles = self.http.get(f"/v1/keys/{recipient}", headers=self.auth).json()["devices"]
        envelopes = []
        for b in bundles:
            address = device_address(b["user_id"], b["device_id"])
            record = self.sessions.setdefault(address, SessionRecord())
            if record.current is None:
                record.install(
                    session_cipher.initiate_session(
                        self.keys.identity, self.address, _bundle(b), self.entropy
                    )
                )
            body = session_cipher.encrypt(record, plaintext, self.entropy)
            envelopes.append(
                {
                    "device_id": b["device_id"],
                    "registration_id": b["registration_id"],
                    "body": b64(body),
                }
            )
        r = self.http.put(
            f"/v1/messages/{recipient}",
            json={"message_id": message_id, "envelopes": envelopes},
            headers=self.auth,
        )
        assert r.status_code == 200, r.text

    def receive(self, ws_url: str, peers: dict[str, Device], expected: int) -> list[bytes]:
        """Connect the WebSocket, decrypt ``expected`` pushed envelopes, ack them."""
        out: list[bytes] = []
        with ws_client.connect(ws_url, additional_headers=self.auth) as ws:
            delivered = []
            while len(out) < expected:
                frame = json.loads(ws.recv(timeout=10))
                assert frame["type"] == "envelope"
                sender = peers[device_address(frame["sender_user_id"], frame["sender_device_id"])]
                record = self.sessions.setdefault(sender.address, SessionRecord())
                body = base64.b64decode(frame["body"])
                assert hashlib.sha256(body).digest() == base64.b64decode(frame["envelope_hash"])
                out.append(
                    session_cipher.decrypt(
                        record,
                        self.keys,
                        self.address,
                        sender.keys.identity.ik.public,
                        sender.keys.identity.sik.public,
                        sender.address,
                        body,
                    )
                )
                delivered.append(frame["delivery_id"])
            ws.send(json.dumps({"type": "ack", "delivery_ids": delivered}))
            assert json.loads(ws.recv(timeout=10))["delivery_ids"] == delivered
        return out


def _bundle(d: dict[str, Any]) -> PreKeyBundle:
    raw = base64.b64decode
    opk = d["opk"]
    return PreKeyBundle(
        d["user_id"],
        d["device_id"],
        raw(d["ik"]),
        raw(d["sik"]),
        PublicSignedPrekey(d["spk"]["key_id"], raw(d["spk"]["pub"]), raw(d["spk"]["sig"])),
        PublicOneTimePrekey(opk["key_id"], raw(opk["pub"])) if opk else None,
    )


def test_conversation_leaves_no_plaintext_keys_or_raw_ids(tmp_path: Path) -> None:
    logs = LogCapture()
    stores = sqlite_stores(str(tmp_path / "relay.sqlite3"))
    settings = Settings(test_mode=True, test_orgs=frozenset({ORG}), retention_interval=0)
    oracle = Oracle()
    plaintexts: list[bytes] = []
    with serve_in_thread(settings, stores) as server, httpx.Client(base_url=server.url) as http:
        admin = next(iter(USERS))
        signup = http.post("/v1/orgs", json={"org_id": ORG, "name": "QA", "admin_user_id": admin})
        secret = signup.json()["totp_secret"]
        totp_secret = base64.b32decode(secret + "=" * (-len(secret) % 8))
        devices: dict[str, Device] = {}
        for i, (user, ids) in enumerate(USERS.items()):
            for j, device_id in enumerate(ids):
                devices[device_address(user, device_id)] = Device(
                    http, user, device_id, f"seed-{i}-{j}"
                )
        alice = devices["alice-5e1f:phone-a9b8"]
        alice.login(totp(totp_secret, settings.clock()))
        r = http.put(
            f"/v1/orgs/{ORG}/members/bob-3d4c", json={"role": "member"}, headers=alice.auth
        )
        assert r.status_code == 200
        bobs = [devices["bob-3d4c:phone-b7e6"], devices["bob-3d4c:laptop-c5d4"]]
        for bob in bobs:
            bob.login()

        def message(label: str) -> bytes:
            secret_canary = canary(os.urandom(16))
            oracle.register_canary(label, secret_canary)
            text = b"meet at the usual place " + secret_canary
            plaintexts.append(text)
            return text

        # alice -> bob (both devices, SMX1 bootstrap), bob's phone replies (DR_V1 after the
        # first frame from alice), alice answers, three rounds.
        for round_ in range(3):
            sent = message(f"alice->bob {round_}")
            alice.send("bob-3d4c", f"msg-a-{round_}-91ef", sent)
            for bob in bobs:
                assert bob.receive(server.ws_url, devices, 1) == [sent]
            reply = message(f"bob->alice {round_}")
            bobs[0].send("alice-5e1f", f"msg-b-{round_}-82de", reply)
            assert alice.receive(server.ws_url, devices, 1) == [reply]

        # An attachment: encrypted client-side, only ciphertext and its hash reach the relay.
        attachment_plain = b"QUARTERLY-REPORT " + canary(os.urandom(16)) * 8
        oracle.register_canary("attachment plaintext", attachment_plain[:64])
        file_key, file_nonce = os.urandom(32), os.urandom(12)
        oracle.register_key("attachment key", file_key)
        sealed = file_nonce + aead_seal(file_key, file_nonce, attachment_plain, b"")
        decl = {
            "size": len(sealed),
            "sha256": b64(hashlib.sha256(sealed).digest()),
            "recipients": ["bob-3d4c"],
        }
        file_id = http.post("/v1/attachments", json=decl, headers=alice.auth).json()["file_id"]
        put = http.put(
            f"/v1/attachments/{file_id}",
            content=sealed,
            headers={**alice.auth, "content-type": "application/octet-stream"},
        )
        assert put.status_code == 204
        pointer = message("attachment pointer") + b" " + file_key + file_nonce
        alice.send("bob-3d4c", "msg-file-73ab", pointer)
        for bob in bobs:
            assert bob.receive(server.ws_url, devices, 1) == [pointer]
        got = http.get(f"/v1/attachments/{file_id}", headers=bobs[1].auth)
        assert got.content == sealed

        # Register every private key of every device and every identifier we used.
        for address, device in devices.items():
            k = device.keys
            oracle.register_key(f"{address} IK", k.identity.ik.private)
            oracle.register_key(f"{address} SIK", k.identity.sik.private)
            oracle.register_key(f"{address} SPK", k.spk.keypair.private)
            for key_id, opk in k.opks.items():
                oracle.register_key(f"{address} {key_id}", opk.keypair.private)
            oracle.register_identifier("sub", device.user)
            oracle.register_identifier("device_id", device.device)
            oracle.register_identifier("subject", address)
        for round_ in range(3):
            oracle.register_identifier("message_id", f"msg-a-{round_}-91ef")
            oracle.register_identifier("message_id", f"msg-b-{round_}-82de")
        oracle.register_identifier("message_id", "msg-file-73ab")
        oracle.register_identifier("delivery_id", file_id)
        proofs = http.get(f"/v1/orgs/{ORG}/deliveries", headers=alice.auth).json()["deliveries"]
        assert len(proofs) == 3 * 2 + 3 + 2  # one content-existence proof per delivery
        for proof in proofs:
            oracle.register_identifier("delivery_id", proof["delivery_id"])
    dump = asyncio.run(stores.dump())
    asyncio.run(stores.close())
    for where, _ in dump:
        assert where  # every chunk is locatable
    chunks = [Chunk("sqlite", where, data) for where, data in dump]
    chunks += [Chunk(TIER_LOG, f"log:{i}", line.encode()) for i, line in enumerate(logs.lines())]
    report = oracle.scan(chunks)
    assert report.items_by_tier[TIER_LOG] > 20, "the relay logged the conversation"
    assert report.clean, [h.to_dict() for h in report.hits[:10]]

    # Not blind: the same scan finds a plaintext and an identifier once they are leaked.
    leak = {"user": "bob-3d4c", "m": plaintexts[0].decode()}
    leaky = Chunk(TIER_LOG, "log:injected", json.dumps(leak).encode())
    hits = oracle.scan([*chunks, leaky]).hits
    assert {h.kind for h in hits} == {"canary", "identifier"}
