"""Generate ``x3dh-prekey-v1.json`` (SPEC §2, §6).

Each positive case pins both devices' private keys, the addresses, ``EK_A``, the SMX1 nonce
and the SMX1 plaintext (Alice's real first DR_V1 frame), and records the SPK signature,
DH1–DH4, ``SK``, ``AD``, ``RK0`` and the full SMX1 bytes. Every output is computed twice: by
:mod:`semafore.protocol` and directly from the SPEC formulas with bare primitives; the
generator refuses to write a file on any disagreement. Negative cases mutate one field of a
valid envelope or bundle and declare the SPEC §5 error; the reference must agree.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle
from semafore.gate.cases import initiate_args, respond_args, sign_args
from semafore.protocol import smx1, x3dh
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import (
    IdentityKeys,
    PreKeyBundle,
    PublicOneTimePrekey,
    PublicSignedPrekey,
    sign_spk,
)
from semafore.protocol.primitives import Ed25519KeyPair, X25519KeyPair, aead_seal, hkdf, x25519
from semafore.protocol.ratchet import RatchetState
from semafore.vectors.generation import GenerationError, ScriptRecorder

FILE = "x3dh-prekey-v1"
SEED = b"semafore-vectors/x3dh-prekey-v1"

SMALL_ORDER_POINTS = {
    "zero": "00" * 32,
    "one": "01" + "00" * 31,
    "order-8-a": "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "order-8-b": "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "p-minus-1": "ec" + "ff" * 30 + "7f",
    "p": "ed" + "ff" * 30 + "7f",
    "p-plus-1": "ee" + "ff" * 30 + "7f",
}
"""X25519 u-coordinates of small order (and their non-canonical encodings): DH gives zero."""


@dataclass(frozen=True)
class CaseSpec:
    id: str
    description: str
    alice: tuple[str, str]
    bob: tuple[str, str]
    spk_key_id: str
    opk_key_id: str | None
    message: bytes


MAX_ID = "k" * 255
MAX_ID_MULTIBYTE = "é" * 127 + "!"  # 127 × 2 bytes + 1 = 255 bytes of UTF-8

CASES = (
    CaseSpec(
        "opk-ascii",
        "X3DH with a one-time prekey (DH1–DH4), ASCII addresses and key ids",
        ("alice", "phone"),
        ("bob", "laptop"),
        "spk-1",
        "opk-17",
        b"hello bob",
    ),
    CaseSpec(
        "no-opk",
        "OPKs exhausted: bundle opk is null, flags 0x00, L2 = 0, no DH4",
        ("alice", "phone"),
        ("bob", "laptop"),
        "spk-1",
        None,
        b"hello without a one-time prekey",
    ),
    CaseSpec(
        "non-ascii",
        "Non-ASCII user/device ids and key ids (UTF-8 byte lengths, not character counts)",
        ("zoë", "téléphone-1"),
        ("björn", "ноутбук"),
        "clé-ключ-鍵-🔑",
        "одноразовый-✓",
        "grüße, 你好 👋".encode(),
    ),
    CaseSpec(
        "max-length-key-ids",
        "Both key ids at the 255-byte maximum (SPK ASCII, OPK two-byte UTF-8 + 1)",
        ("alice", "phone"),
        ("bob", "laptop"),
        MAX_ID,
        MAX_ID_MULTIBYTE,
        b"maximum key ids",
    ),
    CaseSpec(
        "long-first-message",
        "A 1 KiB first message without OPK",
        ("alice", "tablet"),
        ("bob", "phone"),
        "spk-2026-11",
        None,
        bytes(range(256)) * 4,
    ),
)


# -- independent SPEC re-derivation (bare primitives, no semafore.protocol logic) ---------


def _u16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def spec_x3dh(
    ik_a: bytes, ek_a: bytes, ik_b_pub: bytes, spk_b_pub: bytes, opk_b_pub: bytes | None
) -> tuple[list[bytes], bytes, bytes]:
    dh = [x25519(ik_a, spk_b_pub), x25519(ek_a, ik_b_pub), x25519(ek_a, spk_b_pub)]
    if opk_b_pub is not None:
        dh.append(x25519(ek_a, opk_b_pub))
    sk = hkdf(b"\xff" * 32 + b"".join(dh), bytes(32), b"SemaFore-X3DH-v1", 32)
    rk0 = hkdf(sk, bytes(32), b"SemaFore-DR-v1-root", 32)
    return dh, sk, rk0


def spec_ad(ik_a: bytes, sik_a: bytes, ik_b: bytes, sik_b: bytes, a: str, b: str) -> bytes:
    return ik_a + sik_a + ik_b + sik_b + _u16(a.encode()) + _u16(b.encode())


def spec_smx1(
    sk: bytes, ad: bytes, ek: bytes, spk_id: str, opk_id: str | None, nonce: bytes, pt: bytes
) -> bytes:
    opk = b"" if opk_id is None else opk_id.encode()
    header = b"SMX1" + bytes((1 if opk_id else 0,)) + ek + _u16(spk_id.encode()) + _u16(opk)
    return header + nonce + aead_seal(sk, nonce, pt, header + ad)


def _check(what: str, ours: Any, theirs: Any) -> None:
    if ours != theirs:
        raise GenerationError(f"{FILE}: {what}: reference and SPEC re-derivation disagree")


# -- cases -------------------------------------------------------------------------------


def _case(spec: CaseSpec) -> dict[str, Any]:
    rng = SeededEntropy(SEED + b"/" + spec.id.encode())
    alice_ik, alice_sik = rng.random_bytes(32, "alice.ik"), rng.random_bytes(32, "alice.sik")
    bob_ik, bob_sik = rng.random_bytes(32, "bob.ik"), rng.random_bytes(32, "bob.sik")
    spk_private = rng.random_bytes(32, "bob.spk")
    opk_private = rng.random_bytes(32, "bob.opk") if spec.opk_key_id else None
    ek_private = rng.random_bytes(32, "ek")
    nonce = rng.random_bytes(12, "nonce")

    alice = IdentityKeys(X25519KeyPair.from_private(alice_ik), Ed25519KeyPair(alice_sik))
    bob = IdentityKeys(X25519KeyPair.from_private(bob_ik), Ed25519KeyPair(bob_sik))
    spk = X25519KeyPair.from_private(spk_private)
    opk = X25519KeyPair.from_private(opk_private) if opk_private else None
    sig = sign_spk(bob.sik, spec.spk_key_id, spk.public, bob.ik.public)
    bundle = PreKeyBundle(
        spec.bob[0],
        spec.bob[1],
        bob.ik.public,
        bob.sik.public,
        PublicSignedPrekey(spec.spk_key_id, spk.public, sig),
        PublicOneTimePrekey(spec.opk_key_id, opk.public) if opk and spec.opk_key_id else None,
    )
    address_a = f"{spec.alice[0]}:{spec.alice[1]}"
    ek = X25519KeyPair.from_private(ek_private)
    result = x3dh.initiate(alice, address_a, bundle, ek)

    # The SMX1 plaintext is Alice's real first DR_V1 frame (SPEC §2), from seeded draws.
    first = ScriptRecorder(rng.fork("first-frame"))
    state = RatchetState.initiator(result.sk, result.ad, spk.public, first.attempt())
    first_frame = state.encrypt(spec.message, first.attempt())
    envelope = smx1.seal(
        result.sk, result.ad, ek.public, spec.spk_key_id, spec.opk_key_id, nonce, first_frame
    )

    dh, sk, rk0 = spec_x3dh(
        alice_ik, ek_private, bob.ik.public, spk.public, opk.public if opk else None
    )
    ad = spec_ad(
        alice.ik.public,
        alice.sik.public,
        bob.ik.public,
        bob.sik.public,
        address_a,
        bundle.address,
    )
    _check(f"{spec.id} DH", list(result.dh), dh)
    _check(f"{spec.id} SK", result.sk, sk)
    _check(f"{spec.id} RK0", result.rk0, rk0)
    _check(f"{spec.id} AD", result.ad, ad)
    _check(
        f"{spec.id} SMX1",
        envelope,
        spec_smx1(sk, ad, ek.public, spec.spk_key_id, spec.opk_key_id, nonce, first_frame),
    )
    parsed = smx1.parse(envelope)
    bob_input: dict[str, Any] = {
        "user_id": spec.bob[0],
        "device_id": spec.bob[1],
        "ik_private": bob_ik.hex(),
        "sik_private": bob_sik.hex(),
        "spk": {"key_id": spec.spk_key_id, "private": spk_private.hex()},
        "opk": None
        if opk_private is None
        else {"key_id": spec.opk_key_id, "private": opk_private.hex()},
    }
    return {
        "id": spec.id,
        "description": spec.description,
        "input": {
            "alice": {
                "user_id": spec.alice[0],
                "device_id": spec.alice[1],
                "ik_private": alice_ik.hex(),
                "sik_private": alice_sik.hex(),
            },
            "bob": bob_input,
            "ek_private": ek_private.hex(),
            "nonce": nonce.hex(),
            "plaintext": first_frame.hex(),
        },
        "expected": {
            "alice": {
                "address": address_a,
                "ik": alice.ik.public.hex(),
                "sik": alice.sik.public.hex(),
            },
            "bundle": _bundle_json(bundle),
            "ek_public": ek.public.hex(),
            "dh": [value.hex() for value in dh],
            "sk": sk.hex(),
            "ad": ad.hex(),
            "rk0": rk0.hex(),
            "smx1": envelope.hex(),
            "parsed": {
                "flags": parsed.flags,
                "ek": parsed.ephemeral.hex(),
                "spk_key_id": parsed.spk_key_id,
                "opk_key_id": parsed.opk_key_id,
                "nonce": parsed.nonce.hex(),
                "ciphertext": parsed.ciphertext.hex(),
            },
        },
    }


def _bundle_json(bundle: PreKeyBundle) -> dict[str, Any]:
    return {
        "user_id": bundle.user_id,
        "device_id": bundle.device_id,
        "ik": bundle.ik.hex(),
        "sik": bundle.sik.hex(),
        "spk": {
            "key_id": bundle.spk.key_id,
            "pub": bundle.spk.public.hex(),
            "sig": bundle.spk.signature.hex(),
        },
        "opk": None
        if bundle.opk is None
        else {"key_id": bundle.opk.key_id, "pub": bundle.opk.public.hex()},
    }


# -- negatives ---------------------------------------------------------------------------


class _Negatives:
    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base
        self.items: list[dict[str, Any]] = []

    def parse(self, id_: str, description: str, data: bytes, error: str) -> None:
        self.items.append(
            {
                "id": id_,
                "description": description,
                "input": {"operation": "smx1.parse", "smx1": data.hex()},
                "expected_error": error,
            }
        )

    def sign(self, id_: str, description: str, key_id: str, error: str) -> None:
        """``spk.sign`` over the base case's keys with ``key_id`` (SPEC §1: signing validates
        the key id, so no implementation can publish a prekey its peers' parsers reject)."""
        bundle = self.base["expected"]["bundle"]
        self.items.append(
            {
                "id": id_,
                "description": description,
                "input": {
                    "operation": "spk.sign",
                    "sik_private": self.base["input"]["bob"]["sik_private"],
                    "ik_public": bundle["ik"],
                    "spk_public": bundle["spk"]["pub"],
                    "key_id": key_id,
                },
                "expected_error": error,
            }
        )

    def respond(
        self,
        id_: str,
        description: str,
        data: bytes,
        error: str,
        *,
        case: dict[str, Any] | None = None,
        bob: Callable[[dict[str, Any]], None] | None = None,
        alice: dict[str, str] | None = None,
    ) -> None:
        case = case or self.base
        bob_input = _copy(case["input"]["bob"])
        if bob is not None:
            bob(bob_input)
        self.items.append(
            {
                "id": id_,
                "description": description,
                "input": {
                    "operation": "x3dh.respond",
                    "bob": bob_input,
                    "alice": alice or dict(case["expected"]["alice"]),
                    "smx1": data.hex(),
                },
                "expected_error": error,
            }
        )

    def initiate(
        self,
        id_: str,
        description: str,
        bundle: dict[str, Any],
        error: str,
        case: dict[str, Any] | None = None,
    ) -> None:
        case = case or self.base
        inp = case["input"]
        self.items.append(
            {
                "id": id_,
                "description": description,
                "input": {
                    "operation": "x3dh.initiate",
                    "alice": dict(inp["alice"]),
                    "bundle": bundle,
                    "ek_private": inp["ek_private"],
                    "nonce": inp["nonce"],
                    "plaintext": inp["plaintext"],
                },
                "expected_error": error,
            }
        )


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _with(data: bytes, offset: int, replacement: bytes) -> bytes:
    return data[:offset] + replacement + data[offset + len(replacement) :]


def _xor(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    return _with(data, offset, bytes((data[offset] ^ mask,)))


def _negatives(base: dict[str, Any], no_opk: dict[str, Any]) -> list[dict[str, Any]]:
    neg = _Negatives(base)
    env = bytes.fromhex(base["expected"]["smx1"])
    bare = bytes.fromhex(no_opk["expected"]["smx1"])
    l1 = struct.unpack_from(">H", env, 37)[0]
    l2_at = 39 + l1
    l2 = struct.unpack_from(">H", env, l2_at)[0]
    nonce_at = l2_at + 2 + l2
    ct_at = nonce_at + 12

    # Framing (smx1.parse): magic, version, flags, every truncation, length fields.
    neg.parse("magic-bad", "magic 'XMX1'", _with(env, 0, b"X"), "MalformedEnvelope")
    neg.parse("magic-lowercase", "magic 'smx1'", _with(env, 0, b"smx1"), "MalformedEnvelope")
    neg.parse(
        "magic-drv1",
        "a DR_V1 magic where SMX1 is required",
        _with(env, 0, b"DRV1"),
        "MalformedEnvelope",
    )
    neg.parse(
        "version-smx2", "magic 'SMX2': a newer version", _with(env, 3, b"2"), "UnsupportedVersion"
    )
    for flags in (0x02, 0x03, 0x80, 0xFF):
        neg.parse(
            f"flags-{flags:02x}",
            f"flags {flags:#04x}",
            _with(env, 4, bytes((flags,))),
            "MalformedEnvelope",
        )
    fields = [
        (0, "magic"),
        (4, "flags"),
        (5, "ek"),
        (37, "l1"),
        (39, "spk-key-id"),
        (l2_at, "l2"),
        (l2_at + 2, "opk-key-id"),
        (nonce_at, "nonce"),
        (ct_at, "tag"),
    ]
    for cut in range(ct_at + 16):
        name = [label for start, label in fields if start <= cut][-1]
        neg.parse(
            f"truncated-at-{cut:03d}",
            f"envelope cut to {cut} bytes (inside or before {name})",
            env[:cut],
            "MalformedEnvelope",
        )
    neg.parse(
        "l1-zero",
        "L1 = 0 (key ids are 1..255 bytes)",
        _with(env, 37, b"\x00\x00"),
        "MalformedEnvelope",
    )
    neg.parse("l1-256", "L1 = 256 (> 255)", _with(env, 37, b"\x01\x00"), "MalformedEnvelope")
    neg.parse(
        "l1-overrun",
        "L1 = 0xffff overruns the envelope",
        _with(env, 37, b"\xff\xff"),
        "MalformedEnvelope",
    )
    header_end = 39 + l1 + 2 + l2
    neg.parse(
        "l1-overrun-short",
        "L1 longer than the remaining bytes",
        _with(env[:header_end], 37, struct.pack(">H", header_end)),
        "MalformedEnvelope",
    )
    neg.parse(
        "l2-overrun",
        "L2 = 0xffff overruns the envelope",
        _with(env, l2_at, b"\xff\xff"),
        "MalformedEnvelope",
    )
    neg.parse("l2-256", "L2 = 256 (> 255)", _with(env, l2_at, b"\x01\x00"), "MalformedEnvelope")
    neg.parse(
        "opk-flag-without-l2",
        "flags 0x01 (OPK used) but L2 = 0",
        _with(bare, 4, b"\x01"),
        "MalformedEnvelope",
    )
    neg.parse(
        "l2-without-opk-flag",
        "flags 0x00 (OPK absent) but L2 > 0",
        _with(env, 4, b"\x00"),
        "MalformedEnvelope",
    )
    neg.parse(
        "spk-key-id-invalid-utf8",
        "SPK key id bytes are not UTF-8",
        _with(env, 39, b"\xff"),
        "MalformedEnvelope",
    )
    neg.parse(
        "spk-key-id-control-char",
        "SPK key id contains a control character (LF)",
        _with(env, 39, b"\n"),
        "MalformedEnvelope",
    )
    neg.parse(
        "opk-key-id-invalid-utf8",
        "OPK key id bytes are not UTF-8",
        _with(env, l2_at + 2, b"\xc3"),
        "MalformedEnvelope",
    )
    neg.parse("empty", "zero bytes", b"", "MalformedEnvelope")

    # Authentication (x3dh.respond): every byte the AEAD covers is bound.
    neg.respond("tag-flipped", "last tag byte flipped", _xor(env, len(env) - 1), "DecryptionFailed")
    neg.respond(
        "ciphertext-flipped", "first ciphertext byte flipped", _xor(env, ct_at), "DecryptionFailed"
    )
    neg.respond("nonce-flipped", "a nonce byte flipped", _xor(env, nonce_at), "DecryptionFailed")
    neg.respond(
        "ek-flipped",
        "EK_A altered (a different, valid public key)",
        _xor(env, 5, 0x02),
        "DecryptionFailed",
    )
    neg.respond(
        "truncated-inside-ciphertext", "one byte cut from the end", env[:-1], "DecryptionFailed"
    )
    neg.respond("extended", "one byte appended", env + b"\x00", "DecryptionFailed")
    neg.respond(
        "sender-address-relabelled",
        "the relay relabels the sender (unknown-key-share): AD differs, tag fails",
        env,
        "DecryptionFailed",
        alice={**base["expected"]["alice"], "address": "mallory:phone"},
    )
    other_ik = X25519KeyPair.from_private(bytes(31) + b"\x07").public.hex()
    neg.respond(
        "sender-identity-substituted",
        "the recipient resolves a different IK_A for the sender",
        env,
        "DecryptionFailed",
        alice={**base["expected"]["alice"], "ik": other_ik},
    )
    for label, point in SMALL_ORDER_POINTS.items():
        neg.respond(
            f"small-order-ek-{label}",
            f"EK_A is the small-order point {label}",
            _with(env, 5, bytes.fromhex(point)),
            "InvalidKey",
        )
    neg.respond(
        "small-order-sender-ik",
        "the sender's IK resolves to a small-order point (DH1 = 0)",
        env,
        "InvalidKey",
        alice={**base["expected"]["alice"], "ik": SMALL_ORDER_POINTS["zero"]},
    )

    def drop_opks(bob: dict[str, Any]) -> None:
        bob["opk"] = None

    def other_spk(bob: dict[str, Any]) -> None:
        bob["spk"]["key_id"] = "spk-rotated-away"

    neg.respond(
        "unknown-opk",
        "the OPK was already used and deleted (replayed SMX1)",
        env,
        "UnknownPrekey",
        bob=drop_opks,
    )
    neg.respond(
        "unknown-spk",
        "the SPK key id names no prekey the responder holds",
        env,
        "UnknownPrekey",
        bob=other_spk,
    )

    # Bundle checks (x3dh.initiate): signature before any DH, small-order keys.
    bundle = base["expected"]["bundle"]
    sig = bytes.fromhex(bundle["spk"]["sig"])
    bob_sik = Ed25519KeyPair(bytes.fromhex(base["input"]["bob"]["sik_private"]))

    def variant(**changes: Any) -> dict[str, Any]:
        out: dict[str, Any] = _copy(bundle)
        for path, value in changes.items():
            target = out
            keys = path.split("__")
            for key in keys[:-1]:
                target = target[key]
            target[keys[-1]] = value
        return out

    neg.initiate(
        "sig-flipped",
        "one signature bit flipped",
        variant(spk__sig=_xor(sig, 10).hex()),
        "InvalidSignature",
    )
    order_l = 2**252 + 27742317777372353535851937790883648493
    s_value = int.from_bytes(sig[32:], "little") + order_l
    neg.initiate(
        "sig-s-not-reduced",
        "signature S + L (non-canonical, RFC 8032 requires S < L)",
        variant(spk__sig=(sig[:32] + s_value.to_bytes(32, "little")).hex()),
        "InvalidSignature",
    )
    neg.initiate(
        "sig-key-id-relabelled",
        "a relay relabels the SPK key id (key_id is signed)",
        variant(spk__key_id="spk-2"),
        "InvalidSignature",
    )
    neg.initiate(
        "sig-ik-substituted",
        "the relay pairs the SIK with another IK (IK is signed)",
        variant(ik=other_ik),
        "InvalidSignature",
    )
    neg.initiate(
        "sig-spk-substituted",
        "the SPK public key was swapped",
        variant(spk__pub=other_ik),
        "InvalidSignature",
    )
    neg.initiate(
        "sig-wrong-signer",
        "the bundle's SIK is not the signer",
        variant(sik=Ed25519KeyPair(bytes(32)).public.hex()),
        "InvalidSignature",
    )
    neg.initiate(
        "sig-truncated", "a 63-byte signature", variant(spk__sig=sig[:63].hex()), "InvalidSignature"
    )
    for label in ("zero", "order-8-a"):
        small = bytes.fromhex(SMALL_ORDER_POINTS[label])
        ik_b = bytes.fromhex(bundle["ik"])
        signed = sign_spk(bob_sik, bundle["spk"]["key_id"], small, ik_b).hex()
        neg.initiate(
            f"small-order-spk-{label}",
            f"validly signed small-order SPK ({label})",
            variant(spk__pub=small.hex(), spk__sig=signed),
            "InvalidKey",
        )
        signed_ik = sign_spk(
            bob_sik, bundle["spk"]["key_id"], bytes.fromhex(bundle["spk"]["pub"]), small
        ).hex()
        neg.initiate(
            f"small-order-ik-{label}",
            f"validly signed small-order IK_B ({label})",
            variant(ik=small.hex(), spk__sig=signed_ik),
            "InvalidKey",
        )
        neg.initiate(
            f"small-order-opk-{label}",
            f"small-order OPK ({label}; OPKs are unsigned)",
            variant(opk__pub=small.hex()),
            "InvalidKey",
        )
    _key_id_negatives(neg, env, l2_at, variant)
    return neg.items


C1_NEXT_LINE = "\u0085"  # NEL: Unicode category Cc, two bytes of UTF-8 (c2 85)
C1_APC = "\u009f"  # the last C1 control (c2 9f)
OVERLONG_KEY_ID = "k" * 256


def spec_spk_signature(sik: Ed25519KeyPair, key_id: bytes, spk_pub: bytes, ik_pub: bytes) -> str:
    """The SPEC §1 signature over raw key-id bytes, with no key-id validation: how a broken
    signer would sign an invalid id, so a negative's bundle verifies and only the key-id
    check can refuse it."""
    return sik.sign(b"SemaFore-SPK-v1" + _u16(key_id) + spk_pub + ik_pub).hex()


def _key_id_negatives(
    neg: _Negatives, env: bytes, l2_at: int, variant: Callable[..., dict[str, Any]]
) -> None:
    """SPEC v1.1 §1 and §5 rules that a third-party implementation could miss while passing
    every case above (issue 15 item 6): control characters outside C0 (DEL, C1) in key ids,
    key-id validation when signing an SPK and when initiating X3DH (else it emits an SMX1
    its own parser rejects), and the other message type's next version given to each parser
    (``MalformedEnvelope``, never ``UnsupportedVersion``)."""
    # smx1.parse: "spk-1" / "opk-17" with two bytes replaced keep L1 and L2 unchanged.
    neg.parse(
        "spk-key-id-c1-nel",
        "SPK key id contains U+0085 (NEL, a C1 control: category Cc)",
        _with(env, 41, C1_NEXT_LINE.encode()),
        "MalformedEnvelope",
    )
    neg.parse(
        "opk-key-id-c1-009f",
        "OPK key id contains U+009F (the last C1 control)",
        _with(env, l2_at + 4, C1_APC.encode()),
        "MalformedEnvelope",
    )
    neg.parse(
        "spk-key-id-del",
        "SPK key id contains U+007F (DEL: category Cc, outside C0)",
        _with(env, 41, b"\x7f"),
        "MalformedEnvelope",
    )
    neg.parse(
        "magic-drv2",
        "magic 'DRV2': the DR_V1 family's next version is not an SMX version",
        _with(env, 0, b"DRV2"),
        "MalformedEnvelope",
    )

    # spk.sign: the signer validates what it signs.
    for id_, description, key_id in (
        ("sign-key-id-c1-nel", "SPK key id with U+0085 (C1)", f"spk{C1_NEXT_LINE}-1"),
        ("sign-key-id-c1-009f", "SPK key id with U+009F (C1)", f"spk-{C1_APC}"),
        ("sign-key-id-256-bytes", "SPK key id of 256 bytes", OVERLONG_KEY_ID),
        ("sign-key-id-empty", "empty SPK key id", ""),
    ):
        neg.sign(id_, description, key_id, "MalformedEnvelope")

    # x3dh.initiate: a bundle whose signature verifies over an invalid SPK key id, and an
    # invalid (unsigned) OPK key id. Accepting either would emit an unparseable SMX1.
    bundle = neg.base["expected"]["bundle"]
    sik = Ed25519KeyPair(bytes.fromhex(neg.base["input"]["bob"]["sik_private"]))
    spk_pub, ik_pub = bytes.fromhex(bundle["spk"]["pub"]), bytes.fromhex(bundle["ik"])
    for id_, description, key_id in (
        (
            "initiate-spk-key-id-c1-nel",
            "validly signed SPK key id with U+0085 (C1)",
            f"spk{C1_NEXT_LINE}-1",
        ),
        (
            "initiate-spk-key-id-256-bytes",
            "validly signed SPK key id of 256 bytes",
            OVERLONG_KEY_ID,
        ),
    ):
        signed = spec_spk_signature(sik, key_id.encode(), spk_pub, ik_pub)
        neg.initiate(
            id_, description, variant(spk__key_id=key_id, spk__sig=signed), "MalformedEnvelope"
        )
    neg.initiate(
        "initiate-opk-key-id-c1-009f",
        "OPK key id with U+009F (C1; OPK key ids are unsigned)",
        variant(opk__key_id=f"opk-{C1_APC}"),
        "MalformedEnvelope",
    )
    neg.initiate(
        "initiate-opk-key-id-256-bytes",
        "OPK key id of 256 bytes",
        variant(opk__key_id=OVERLONG_KEY_ID),
        "MalformedEnvelope",
    )


def _replay_negatives(negatives: list[dict[str, Any]]) -> None:
    """The reference must raise exactly the declared error for every negative case."""
    adapter = ReferenceAdapter()
    for neg in negatives:
        inp = neg["input"]
        if inp["operation"] == "smx1.parse":
            args: dict[str, Any] = {"data": inp["smx1"]}
        elif inp["operation"] == "spk.sign":
            args = sign_args(inp)
        elif inp["operation"] == "x3dh.respond":
            args = respond_args(inp, inp["alice"])
        else:
            args = initiate_args(inp, inp["bundle"])
        response = handle(adapter, {"id": 0, "op": inp["operation"], "args": args})
        got = response.get("error") if not response["ok"] else "success"
        if got != neg["expected_error"]:
            raise GenerationError(
                f"{FILE}:{neg['id']}: declared {neg['expected_error']}, reference says {got}"
                f" ({response.get('detail', '')})"
            )


def generate() -> dict[str, Any]:
    cases = [_case(spec) for spec in CASES]
    for point in SMALL_ORDER_POINTS.values():  # the table itself is checked, not trusted
        try:
            x25519(bytes(31) + b"\x09", bytes.fromhex(point))
        except Exception:  # noqa: S112 - InvalidKey is the expected outcome
            continue
        raise GenerationError(f"{point} is not a small-order point")
    negatives = _negatives(cases[0], cases[1])
    _replay_negatives(negatives)
    ids = [item["id"] for item in cases + negatives]
    if len(ids) != len(set(ids)):
        raise GenerationError(f"{FILE}: duplicate case ids")
    return {
        "file": FILE,
        "version": 1,
        "spec": "SPEC.md §1, §2",
        "description": (
            "X3DH bootstrap and the SMX1 envelope. Positive cases: spk.sign, x3dh.initiate, "
            "smx1.parse and x3dh.respond must reproduce every expected byte. Negative cases: "
            "the named operation must fail with expected_error."
        ),
        "cases": cases,
        "negative": negatives,
    }
