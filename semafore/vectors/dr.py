"""Generate ``dr-v1-interop.json`` (SPEC §3, §6): Double Ratchet continuation paths.

A path pins ``SK``, ``AD``, Bob's SPK and, per side, the ratchet key pairs and frame nonces it
will draw, then lists steps: ``encrypt`` (expected frame bytes or error), ``deliver`` (frame k,
or crafted bytes, with expected plaintext or error) and ``digest`` (SPEC §7 session digest).
Every step's outcome is *declared* here from SPEC §3 and the reference must agree; the bytes
come from the reference, with each side's draws recorded as the adapter contract consumes
them (only successful operations consume a draw).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from semafore.protocol import frame as drv1
from semafore.protocol import x3dh
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import ProtocolError
from semafore.protocol.primitives import X25519KeyPair
from semafore.protocol.ratchet import (
    MAX_PREVIOUS_CHAINS,
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    RatchetState,
)
from semafore.vectors.generation import GenerationError, ScriptRecorder

FILE = "dr-v1-interop"
SEED = b"semafore-vectors/dr-v1-interop"
ALICE, BOB = "alice", "bob"


@dataclass
class _Side:
    name: str
    state: RatchetState
    script: ScriptRecorder


@dataclass
class Path:
    """Builds one path by running the reference while recording steps and outcomes."""

    id: str
    description: str
    rng: SeededEntropy
    steps: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any]] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    plaintexts: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sk = self.rng.random_bytes(32, "sk")
        keys = [self.rng.random_bytes(32, f"identity-{i}") for i in range(4)]
        ik_a, sik_a, ik_b, sik_b = (X25519KeyPair.from_private(k).public for k in keys)
        self.ad = x3dh.associated_data(ik_a, sik_a, ik_b, sik_b, "alice:phone", "bob:laptop")
        self.spk = X25519KeyPair.from_private(self.rng.random_bytes(32, "bob.spk"))
        alice_script = ScriptRecorder(self.rng.fork(ALICE))
        alice = RatchetState.initiator(self.sk, self.ad, self.spk.public, alice_script.attempt())
        self.sides = {
            ALICE: _Side(ALICE, alice, alice_script),
            BOB: _Side(
                BOB,
                RatchetState.responder(self.sk, self.ad, self.spk),
                ScriptRecorder(self.rng.fork(BOB)),
            ),
        }

    # -- steps ----------------------------------------------------------------------------

    def encrypt(self, side: str, plaintext: bytes | None = None, error: str | None = None) -> int:
        """Encrypt on ``side``; returns the frame index (or -1 for a declared error)."""
        if plaintext is None:
            plaintext = f"{side} message {len(self.frames)}".encode()
        actor = self.sides[side]
        self.steps.append({"op": "encrypt", "side": side, "plaintext": plaintext.hex()})
        try:
            frame = actor.state.encrypt(plaintext, actor.script.attempt())
        except ProtocolError as exc:
            actor.script.rollback()
            self._outcome(error, exc.name)
            self.expected.append({"error": exc.name})
            return -1
        self._outcome(error, None)
        self.frames.append(frame)
        self.plaintexts.append(plaintext)
        self.expected.append({"frame": frame.hex()})
        return len(self.frames) - 1

    def burst(self, side: str, count: int) -> list[int]:
        """``count`` short messages (two-byte plaintexts keep long chains compact)."""
        return [self.encrypt(side, struct.pack(">H", i % 65536)) for i in range(count)]

    def deliver(self, to: str, k: int, error: str | None = None) -> None:
        self.steps.append({"op": "deliver", "to": to, "frame": k})
        self._decrypt(to, self.frames[k], error, self.plaintexts[k])

    def deliver_bytes(self, to: str, data: bytes, error: str) -> None:
        self.steps.append({"op": "deliver", "to": to, "data": data.hex()})
        self._decrypt(to, data, error, None)

    def digest(self, side: str) -> bytes:
        value = self.sides[side].state.digest()
        self.steps.append({"op": "digest", "side": side})
        self.expected.append({"digest": value.hex()})
        return value

    def agree(self) -> None:
        """Both sides' digests, which must be equal: a quiescent session (every sent frame
        delivered) has one root key on both sides (SPEC §7 session digest)."""
        if self.digest(ALICE) != self.digest(BOB):
            raise GenerationError(f"{FILE}:{self.id}: quiescent sides disagree on the digest")

    def _decrypt(self, to: str, data: bytes, error: str | None, plaintext: bytes | None) -> None:
        state = self.sides[to].state
        before = state.serialize()
        try:
            got = state.decrypt(data)
        except ProtocolError as exc:
            self._outcome(error, exc.name)
            if state.serialize() != before:
                raise GenerationError(f"{FILE}:{self.id}: failed decrypt changed state") from exc
            self.expected.append({"error": exc.name})
            return
        self._outcome(error, None)
        if plaintext is not None and got != plaintext:
            raise GenerationError(f"{FILE}:{self.id}: step {len(self.steps) - 1} plaintext")
        self.expected.append({"plaintext": got.hex()})

    def _outcome(self, declared: str | None, actual: str | None) -> None:
        if declared != actual:
            raise GenerationError(
                f"{FILE}:{self.id}: step {len(self.steps) - 1} declared "
                f"{declared or 'success'}, reference gave {actual or 'success'}"
            )

    # -- output ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        def side(name: str) -> dict[str, Any]:
            script = self.sides[name].script
            out: dict[str, Any] = {}
            if name == BOB:
                out["spk"] = _pair(self.spk)
            out["ratchet_keys"] = [
                _pair(X25519KeyPair.from_private(key)) for key in script.used("ratchet_key")
            ]
            out["nonces"] = [nonce.hex() for nonce in script.used("nonce")]
            return out

        return {
            "id": self.id,
            "description": self.description,
            "input": {
                "setup": {
                    "sk": self.sk.hex(),
                    "ad": self.ad.hex(),
                    "initiator": ALICE,
                    "alice": side(ALICE),
                    "bob": side(BOB),
                },
                "steps": self.steps,
            },
            "expected": {"steps": self.expected},
        }


def _pair(pair: X25519KeyPair) -> dict[str, str]:
    return {"private": pair.private.hex(), "public": pair.public.hex()}


def _path(id_: str, description: str) -> Path:
    return Path(id_, description, SeededEntropy(SEED + b"/" + id_.encode()))


def _flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    return data[:offset] + bytes((data[offset] ^ mask,)) + data[offset + 1 :]


# -- the paths (SPEC §6 list) ------------------------------------------------------------


def in_order() -> Path:
    p = _path("in-order", "Three frames each way, delivered in order")
    for k in (p.encrypt(ALICE, b"hi bob"), p.encrypt(ALICE, b""), p.encrypt(ALICE, b"3")):
        p.deliver(BOB, k)
    for k in (p.encrypt(BOB, b"hi alice"), p.encrypt(BOB, bytes(300))):
        p.deliver(ALICE, k)
    p.deliver(BOB, p.encrypt(ALICE, "ünïcödé ✓".encode()))
    p.agree()
    return p


def ping_pong() -> Path:
    p = _path("ping-pong", "Strict alternation: a DH ratchet step on every message")
    for i in range(8):
        sender, receiver = (ALICE, BOB) if i % 2 == 0 else (BOB, ALICE)
        p.deliver(receiver, p.encrypt(sender, f"turn {i}".encode()))
    p.agree()
    return p


def long_chain() -> Path:
    p = _path("long-one-way-chain", "100 frames on one sending chain, then a reply")
    for k in p.burst(ALICE, 100):
        p.deliver(BOB, k)
    p.deliver(ALICE, p.encrypt(BOB, b"got all 100"))
    p.digest(BOB)
    return p


def out_of_order_within() -> Path:
    p = _path("out-of-order-within-chain", "Six frames of one chain delivered as 3,0,5,1,4,2")
    frames = [p.encrypt(ALICE) for _ in range(6)]
    for k in (3, 0, 5, 1, 4, 2):
        p.deliver(BOB, frames[k])
    p.digest(BOB)
    return p


def out_of_order_across() -> Path:
    p = _path(
        "out-of-order-across-chains",
        "Frames of an old chain arrive after the next chain started (keys skipped via PN)",
    )
    a = [p.encrypt(ALICE) for _ in range(3)]
    p.deliver(BOB, a[0])
    p.deliver(ALICE, p.encrypt(BOB))
    a += [p.encrypt(ALICE) for _ in range(3)]  # new chain, PN = 3
    p.deliver(BOB, a[4])
    p.deliver(BOB, a[2])
    p.deliver(BOB, a[3])
    p.deliver(BOB, a[1])
    p.deliver(BOB, a[5])
    p.deliver(ALICE, p.encrypt(BOB))
    p.agree()
    return p


def loss() -> Path:
    p = _path("loss", "Frames 1 and 3 of the first chain are never delivered; the session lives on")
    a = [p.encrypt(ALICE) for _ in range(5)]
    for k in (a[0], a[2], a[4]):
        p.deliver(BOB, k)
    p.deliver(ALICE, p.encrypt(BOB))
    lost_reply = p.encrypt(BOB)  # never delivered
    p.deliver(BOB, p.encrypt(ALICE))
    p.deliver(ALICE, p.encrypt(BOB))
    del lost_reply
    p.agree()
    return p


def duplicates() -> Path:
    p = _path(
        "duplicates", "Replays in the current chain, of a skipped key, and of a retired chain"
    )
    a = [p.encrypt(ALICE) for _ in range(3)]
    p.deliver(BOB, a[0])
    p.deliver(BOB, a[0], "DuplicateMessage")
    p.deliver(BOB, a[2])
    p.deliver(BOB, a[1])
    p.deliver(BOB, a[1], "DuplicateMessage")  # its skipped key was deleted on use
    digest = p.digest(BOB)
    p.deliver(ALICE, p.encrypt(BOB))
    p.deliver(BOB, p.encrypt(ALICE))  # Bob retires Alice's first chain
    p.deliver(BOB, a[2], "DuplicateMessage")
    p.deliver(BOB, a[0], "DuplicateMessage")
    if p.digest(BOB) == digest:
        raise GenerationError("duplicates: the ratchet did not step")
    return p


def _retire(p: Path, rounds: int) -> list[int]:
    """``rounds`` round trips (Bob replies, Alice answers on a new chain, Bob receives it):
    each one retires Bob's current receiving chain. Returns Alice's frame of each new chain."""
    firsts = []
    for _ in range(rounds):
        p.deliver(ALICE, p.encrypt(BOB))
        k = p.encrypt(ALICE)
        p.deliver(BOB, k)
        firsts.append(k)
    return firsts


def duplicates_retired_chains() -> Path:
    p = _path(
        "duplicates-retired-chains",
        f"Bob remembers exactly the last {MAX_PREVIOUS_CHAINS} retired receiving chains (SPEC "
        f"§3): a replay from {MAX_PREVIOUS_CHAINS} chains back is DuplicateMessage; from "
        f"{MAX_PREVIOUS_CHAINS + 1} back the chain is forgotten, the frame is taken for a new "
        "ratchet key and its tag fails (DecryptionFailed); neither changes the session",
    )
    first = p.encrypt(ALICE)
    p.deliver(BOB, first)
    chains = [first, *_retire(p, MAX_PREVIOUS_CHAINS + 1)]  # Bob's receiving chains, oldest first
    before = p.digest(BOB)
    p.deliver(BOB, chains[-1], "DuplicateMessage")  # the current chain
    for back in range(1, MAX_PREVIOUS_CHAINS + 1):  # every remembered chain, newest first
        p.deliver(BOB, chains[-1 - back], "DuplicateMessage")
    p.deliver(BOB, chains[-2 - MAX_PREVIOUS_CHAINS], "DecryptionFailed")  # forgotten
    if p.digest(BOB) != before:
        raise GenerationError("duplicates-retired-chains: a refused replay changed the digest")
    p.deliver(ALICE, p.encrypt(BOB))
    p.deliver(BOB, p.encrypt(ALICE))
    p.agree()
    return p


def forgotten_chain_beyond_max_skip() -> Path:
    p = _path(
        "forgotten-chain-beyond-max-skip",
        f"A frame N = {MAX_SKIP + 1} of a chain Bob remembers is DuplicateMessage; once the "
        f"chain is more than {MAX_PREVIOUS_CHAINS} chains back it is forgotten and the new-"
        "ratchet-key rules apply: TooManySkipped, checked before any DH (SPEC §3)",
    )
    a = p.burst(ALICE, MAX_SKIP + 2)
    p.deliver(BOB, a[0])
    p.deliver(BOB, a[MAX_SKIP + 1])  # skips exactly MAX_SKIP keys
    _retire(p, 1)
    p.deliver(BOB, a[MAX_SKIP + 1], "DuplicateMessage")  # remembered, one chain back
    _retire(p, MAX_PREVIOUS_CHAINS)
    before = p.digest(BOB)
    p.deliver(BOB, a[MAX_SKIP + 1], "TooManySkipped")  # forgotten: N > MAX_SKIP
    if p.digest(BOB) != before:
        raise GenerationError("forgotten-chain-beyond-max-skip: the refusal changed the digest")
    p.deliver(ALICE, p.encrypt(BOB))
    p.agree()
    return p


def max_skip() -> Path:
    p = _path(
        "max-skip",
        f"MAX_SKIP = {MAX_SKIP}: a frame skipping {MAX_SKIP + 1} keys is rejected and changes "
        f"nothing; skipping exactly {MAX_SKIP} is accepted",
    )
    a = p.burst(ALICE, MAX_SKIP + 3)
    before = p.digest(BOB)
    p.deliver(BOB, a[MAX_SKIP + 1], "TooManySkipped")  # new chain, N = 1001
    if p.digest(BOB) != before:
        raise GenerationError("max-skip: rejected frame changed the digest")
    p.deliver(BOB, a[0])
    p.deliver(BOB, a[MAX_SKIP + 2], "TooManySkipped")  # current chain: 1002 - 1 = 1001
    p.deliver(BOB, a[MAX_SKIP + 1])  # skips exactly 1000
    p.deliver(BOB, a[MAX_SKIP + 2])
    p.deliver(BOB, a[500])
    p.deliver(BOB, a[1])
    p.deliver(BOB, a[1], "DuplicateMessage")
    p.deliver(ALICE, p.encrypt(BOB))
    p.agree()
    return p


def pn_beyond_max_skip() -> Path:
    p = _path(
        "previous-chain-beyond-max-skip",
        "A new ratchet key whose PN is more than MAX_SKIP ahead: the old chain's keys are not "
        "stored (those messages are lost) and the ratchet step proceeds (SPEC §3)",
    )
    a = p.burst(ALICE, MAX_SKIP + 2)
    p.deliver(BOB, a[0])
    p.deliver(ALICE, p.encrypt(BOB))
    k = p.encrypt(ALICE, b"new chain, PN = 1002")
    p.deliver(BOB, k)
    p.deliver(BOB, a[5], "DuplicateMessage")  # its key was never stored: lost
    p.deliver(ALICE, p.encrypt(BOB))
    p.agree()
    return p


def skipped_key_cap() -> Path:
    p = _path(
        "skipped-key-cap",
        f"At most {MAX_SKIPPED_KEYS} skipped keys per session, oldest evicted first: two chains "
        f"of {MAX_SKIP} skipped keys fill the store, one more key evicts the oldest",
    )
    chain1 = p.burst(ALICE, MAX_SKIP + 1)
    p.deliver(BOB, chain1[MAX_SKIP])  # stores keys 0..999 of chain 1
    p.deliver(ALICE, p.encrypt(BOB))
    chain2 = p.burst(ALICE, MAX_SKIP + 1)
    p.deliver(BOB, chain2[MAX_SKIP])  # stores keys 0..999 of chain 2: the store is full
    p.deliver(ALICE, p.encrypt(BOB))
    chain3 = p.burst(ALICE, 2)
    p.deliver(BOB, chain3[1])  # one more skipped key: chain 1 key 0 is evicted
    p.deliver(BOB, chain1[0], "DuplicateMessage")  # its key is gone
    p.deliver(BOB, chain1[1])  # the next-oldest survived
    p.deliver(BOB, chain2[0])
    p.deliver(BOB, chain3[0])
    p.digest(BOB)
    return p


def tampering() -> Path:
    p = _path(
        "tampering",
        "Every authenticated field altered, bad framing, small-order ratchet key, sending "
        "before receiving; each rejection leaves the session exactly as it was",
    )
    p.encrypt(BOB, b"too early", error="NoSession")
    a = [p.encrypt(ALICE) for _ in range(3)]
    frame = p.frames[a[0]]
    before = p.digest(BOB)
    header_fields = {"ratchet-key": 4, "pn": 39, "n": 43, "nonce": 44}
    for offset in (*header_fields.values(), 56, len(frame) - 1):
        p.deliver_bytes(BOB, _flip(frame, offset), "DecryptionFailed")
    p.deliver_bytes(BOB, frame + b"\x00", "DecryptionFailed")
    p.deliver_bytes(BOB, frame[:-1], "DecryptionFailed")
    p.deliver_bytes(BOB, frame[:71], "MalformedEnvelope")
    p.deliver_bytes(BOB, b"XRV1" + frame[4:], "MalformedEnvelope")
    p.deliver_bytes(BOB, b"DRV2" + frame[4:], "UnsupportedVersion")
    p.deliver_bytes(BOB, b"SMX1" + frame[4:], "MalformedEnvelope")
    p.deliver_bytes(BOB, frame[:4] + bytes(32) + frame[36:], "InvalidKey")
    if p.digest(BOB) != before:
        raise GenerationError("tampering: a rejected frame changed the digest")
    p.deliver(BOB, a[1])
    p.deliver(BOB, a[0])
    reply = p.encrypt(BOB)
    alice_before = p.digest(ALICE)
    p.deliver_bytes(ALICE, _flip(p.frames[reply], 60), "DecryptionFailed")  # new chain, bad tag
    p.deliver_bytes(ALICE, _flip(p.frames[reply], 20), "DecryptionFailed")  # forged ratchet key
    if p.digest(ALICE) != alice_before:
        raise GenerationError("tampering: a rejected DH step changed the digest")
    p.deliver(ALICE, reply)
    p.deliver(BOB, a[2])
    p.deliver(BOB, p.encrypt(ALICE))
    p.agree()
    return p


PATHS = (
    in_order,
    ping_pong,
    long_chain,
    out_of_order_within,
    out_of_order_across,
    loss,
    duplicates,
    max_skip,
    pn_beyond_max_skip,
    skipped_key_cap,
    tampering,
    duplicates_retired_chains,
    forgotten_chain_beyond_max_skip,
)
"""Appended, never reordered: a path's seed is its id, so existing bytes never move."""


def _parse_negatives(sample: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(id_: str, description: str, data: bytes, error: str) -> None:
        out.append(
            {
                "id": id_,
                "description": description,
                "input": {"operation": "drv1.parse", "frame": data.hex()},
                "expected_error": error,
            }
        )

    names = [(0, "magic"), (4, "ratchet key"), (36, "PN"), (40, "N"), (44, "nonce"), (56, "tag")]
    for cut in range(72):
        name = [label for start, label in names if start <= cut][-1]
        add(
            f"frame-truncated-at-{cut:02d}",
            f"frame cut to {cut} bytes (inside or before {name})",
            sample[:cut],
            "MalformedEnvelope",
        )
    add("frame-magic-bad", "magic 'XRV1'", b"X" + sample[1:], "MalformedEnvelope")
    add(
        "frame-magic-smx1",
        "an SMX1 magic where DR_V1 is required",
        b"SMX1" + sample[4:],
        "MalformedEnvelope",
    )
    add(
        "frame-version-drv2",
        "magic 'DRV2': a newer version",
        b"DRV2" + sample[4:],
        "UnsupportedVersion",
    )
    add(
        "frame-magic-smx2",
        "magic 'SMX2': the SMX1 family's next version is not a DR_V1 version (SPEC §5)",
        b"SMX2" + sample[4:],
        "MalformedEnvelope",
    )
    return out


def generate() -> dict[str, Any]:
    paths = [build() for build in PATHS]
    first = bytes.fromhex(paths[0].expected[0]["frame"])
    negatives = _parse_negatives(first)
    for neg in negatives:
        try:
            drv1.parse(bytes.fromhex(neg["input"]["frame"]))
        except ProtocolError as exc:
            if exc.name != neg["expected_error"]:
                raise GenerationError(f"{FILE}:{neg['id']}: reference gave {exc.name}") from exc
        else:
            raise GenerationError(f"{FILE}:{neg['id']}: reference accepted it")
    return {
        "file": FILE,
        "version": 1,
        "spec": "SPEC.md §3",
        "description": (
            "Double Ratchet continuation paths from a fixed SK/AD. Initialise both sides with "
            "dr.init (alice initiator, bob responder with his SPK), feed each side its listed "
            "ratchet keys and nonces in order (consumed only by successful operations), then "
            "run the steps; frame k is the k-th frame produced by an encrypt step."
        ),
        "cases": [path.to_json() for path in paths],
        "negative": negatives,
    }
