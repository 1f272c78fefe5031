"""Writes vectors/session-state-v1.json: the persisted-state fixture of format v1.

Run once per *released* state format and commit the output; never regenerate an old one
(SPEC §6: state written by an earlier format must still load).
    python -m tests.protocol.make_state_fixture
"""

from __future__ import annotations

import json
from pathlib import Path

from semafore.protocol import session_cipher
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import DeviceKeys, serialize_device_keys
from semafore.protocol.session import SessionRecord

OUT = Path(__file__).resolve().parents[2] / "vectors" / "session-state-v1.json"


def build() -> dict[str, object]:
    ea, eb = SeededEntropy("fixture-alice"), SeededEntropy("fixture-bob")
    alice, bob = DeviceKeys.generate(ea, 2), DeviceKeys.generate(eb, 3)
    a_rec, b_rec = SessionRecord(), SessionRecord()
    a_rec.install(
        session_cipher.initiate_session(
            alice.identity, "alice:phone", bob.bundle("bob", "tab", "opk-1"), ea
        )
    )

    def to_bob(text: bytes) -> bytes:
        return session_cipher.encrypt(a_rec, text, ea)

    def bob_gets(env: bytes) -> bytes:
        return session_cipher.decrypt(
            b_rec,
            bob,
            "bob:tab",
            alice.identity.ik.public,
            alice.identity.sik.public,
            "alice:phone",
            env,
        )

    held = to_bob(b"held back")  # leaves a skipped key in Bob's state
    bob_gets(to_bob(b"hello"))
    session_cipher.decrypt(
        a_rec,
        alice,
        "alice:phone",
        bob.identity.ik.public,
        bob.identity.sik.public,
        "bob:tab",
        session_cipher.encrypt(b_rec, b"hi", eb),
    )
    pending = to_bob(b"after restore")
    current = b_rec.current
    assert current is not None
    return {
        "file": "session-state-v1.json",
        "format_version": 1,
        "description": "Bob's persisted state (format v1) and two frames it must still decrypt",
        "device_keys": serialize_device_keys(bob).hex(),
        "record": b_rec.serialize().hex(),
        "ratchet": current.ratchet.serialize().hex(),
        "digest": current.ratchet.digest().hex(),
        "frames": [
            {"envelope": held.hex(), "plaintext": b"held back".hex()},
            {"envelope": pending.hex(), "plaintext": b"after restore".hex()},
        ],
        "remote": {
            "address": "alice:phone",
            "ik": alice.identity.ik.public.hex(),
            "sik": alice.identity.sik.public.hex(),
        },
        "local_address": "bob:tab",
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
