"""Device keys, signed prekeys and key bundles (SPEC §1, ADR-0053).

Each device owns an X25519 identity key (IK), an Ed25519 signing key (SIK), a signed prekey
(SPK, with a bound ``key_id``) and one-time prekeys (OPKs). The SPK signature binds the
``key_id`` and ``IK.pub`` so a relay can neither relabel a prekey nor pair a victim's SIK with
an identity key of its own.
"""

from __future__ import annotations

import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from semafore import sabotage
from semafore.protocol.address import SEPARATOR
from semafore.protocol.entropy import Entropy
from semafore.protocol.errors import (
    InvalidKey,
    MalformedEnvelope,
    MalformedState,
    ProtocolError,
    UnknownPrekey,
)
from semafore.protocol.primitives import Ed25519KeyPair, X25519KeyPair, ed25519_verify
from semafore.protocol.reader import StateReader

SPK_SIGNATURE_DOMAIN = b"SemaFore-SPK-v1"
MAX_KEY_ID_BYTES = 255


def encode_key_id(key_id: str, field: str = "key_id") -> bytes:
    """UTF-8 of a key id: 1–255 bytes, no control characters (SPEC §1)."""
    raw = key_id.encode("utf-8", "surrogatepass") if isinstance(key_id, str) else b""
    if not isinstance(key_id, str) or not 1 <= len(raw) <= MAX_KEY_ID_BYTES:
        raise MalformedEnvelope(f"{field} must be 1..255 bytes of UTF-8", field=field)
    for ch in key_id:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise MalformedEnvelope(f"{field} contains a control character", field=field)
    return raw


def decode_key_id(raw: bytes, field: str = "key_id") -> str:
    """Inverse of :func:`encode_key_id`, rejecting invalid UTF-8 and control characters."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEnvelope(f"{field} is not valid UTF-8", field=field) from exc
    encode_key_id(text, field)
    return text


def spk_signed_message(key_id: str, spk_public: bytes, ik_public: bytes) -> bytes:
    """``"SemaFore-SPK-v1" || u16(len(key_id)) || key_id || SPK.pub || IK.pub`` (SPEC §1)."""
    raw = encode_key_id(key_id, "spk.key_id")
    if len(spk_public) != 32:
        raise InvalidKey("SPK public key must be 32 bytes", field="spk.pub")
    if len(ik_public) != 32:
        raise InvalidKey("IK public key must be 32 bytes", field="ik")
    return SPK_SIGNATURE_DOMAIN + struct.pack(">H", len(raw)) + raw + spk_public + ik_public


def sign_spk(sik: Ed25519KeyPair, key_id: str, spk_public: bytes, ik_public: bytes) -> bytes:
    return sik.sign(spk_signed_message(key_id, spk_public, ik_public))


def verify_spk(
    sik_public: bytes, key_id: str, spk_public: bytes, ik_public: bytes, signature: bytes
) -> None:
    """Raise ``InvalidSignature`` unless ``signature`` signs this SPK for this identity."""
    ed25519_verify(sik_public, signature, spk_signed_message(key_id, spk_public, ik_public))


@dataclass(frozen=True)
class SignedPrekey:
    key_id: str
    keypair: X25519KeyPair
    signature: bytes


@dataclass(frozen=True)
class OneTimePrekey:
    key_id: str
    keypair: X25519KeyPair


@dataclass(frozen=True)
class PublicSignedPrekey:
    key_id: str
    public: bytes
    signature: bytes


@dataclass(frozen=True)
class PublicOneTimePrekey:
    key_id: str
    public: bytes


@dataclass(frozen=True)
class PreKeyBundle:
    """What the key directory hands out for one device (SPEC §1); ``opk`` is None when exhausted."""

    user_id: str
    device_id: str
    ik: bytes
    sik: bytes
    spk: PublicSignedPrekey
    opk: PublicOneTimePrekey | None = None

    @property
    def address(self) -> str:
        return device_address(self.user_id, self.device_id)

    def verify(self) -> None:
        """Check the SPK signature (raises ``InvalidSignature``)."""
        if sabotage.active("client.skips_spk_signature"):  # pragma: no mutate
            return  # pragma: no mutate
        verify_spk(self.sik, self.spk.key_id, self.spk.public, self.ik, self.spk.signature)


def device_address(user_id: str, device_id: str) -> str:
    """The ``"<user_id>:<device_id>"`` address bound into AD (SPEC §2 step 6), for *any*
    ids: the SPEC defines the encoding, not what an id may hold, and every implementation
    must produce the same AD bytes for the same bundle (tests/interop/test_differential.py).
    Which ids a deployment accepts is the relay's rule; the harness's own addresses are
    :class:`~semafore.protocol.address.DeviceAddress`, whose text is this same form."""
    return f"{user_id}{SEPARATOR}{device_id}"


@dataclass(frozen=True)
class IdentityKeys:
    """A device's long-term identity: IK (X25519) and SIK (Ed25519)."""

    ik: X25519KeyPair
    sik: Ed25519KeyPair

    @classmethod
    def generate(cls, entropy: Entropy) -> IdentityKeys:
        return cls(
            X25519KeyPair.generate(entropy, "identity_key"),
            Ed25519KeyPair.generate(entropy, "signing_key"),
        )


@dataclass
class DeviceKeys:
    """All private key material of one device: identity, current and previous SPKs, OPKs.

    Previous SPKs are kept (bounded) so an SMX1 in flight across an SPK rotation still
    bootstraps; OPKs are deleted after one successful use (SPEC §2).
    """

    identity: IdentityKeys
    spk: SignedPrekey
    previous_spks: dict[str, SignedPrekey] = field(default_factory=dict)
    opks: dict[str, OneTimePrekey] = field(default_factory=dict)
    next_opk_index: int = 0
    next_spk_index: int = 1

    MAX_PREVIOUS_SPKS = 3

    @classmethod
    def generate(cls, entropy: Entropy, opk_count: int = 0) -> DeviceKeys:
        identity = IdentityKeys.generate(entropy)
        spk = _new_spk(identity, entropy, "spk-0")
        keys = cls(identity, spk)
        keys.generate_opks(entropy, opk_count)
        return keys

    def generate_opks(self, entropy: Entropy, count: int) -> list[OneTimePrekey]:
        made = []
        for _ in range(count):
            key_id = f"opk-{self.next_opk_index}"
            self.next_opk_index += 1
            opk = OneTimePrekey(key_id, X25519KeyPair.generate(entropy, "opk"))
            self.opks[key_id] = opk
            made.append(opk)
        return made

    def rotate_spk(self, entropy: Entropy) -> SignedPrekey:
        self.previous_spks[self.spk.key_id] = self.spk
        while len(self.previous_spks) > self.MAX_PREVIOUS_SPKS:
            del self.previous_spks[next(iter(self.previous_spks))]
        self.spk = _new_spk(self.identity, entropy, f"spk-{self.next_spk_index}")
        self.next_spk_index += 1
        if sabotage.active("client.deletes_previous_spk"):  # pragma: no mutate
            self.previous_spks.clear()  # pragma: no mutate
        return self.spk

    def find_spk(self, key_id: str) -> SignedPrekey:
        if key_id == self.spk.key_id:
            return self.spk
        try:
            return self.previous_spks[key_id]
        except KeyError:
            raise UnknownPrekey(f"no signed prekey {key_id!r}", field="spk_key_id") from None

    def find_opk(self, key_id: str) -> OneTimePrekey:
        try:
            return self.opks[key_id]
        except KeyError:
            raise UnknownPrekey(f"no one-time prekey {key_id!r}", field="opk_key_id") from None

    def public_spk(self) -> PublicSignedPrekey:
        return PublicSignedPrekey(self.spk.key_id, self.spk.keypair.public, self.spk.signature)

    def bundle(self, user_id: str, device_id: str, opk_key_id: str | None = None) -> PreKeyBundle:
        opk = None
        if opk_key_id is not None:
            found = self.find_opk(opk_key_id)
            opk = PublicOneTimePrekey(found.key_id, found.keypair.public)
        return PreKeyBundle(
            user_id,
            device_id,
            self.identity.ik.public,
            self.identity.sik.public,
            self.public_spk(),
            opk,
        )


def _new_spk(identity: IdentityKeys, entropy: Entropy, key_id: str) -> SignedPrekey:
    keypair = X25519KeyPair.generate(entropy, "spk")
    signature = sign_spk(identity.sik, key_id, keypair.public, identity.ik.public)
    return SignedPrekey(key_id, keypair, signature)


# -- serialisation --------------------------------------------------------------------------

DEVICE_KEYS_MAGIC = b"SFK"
DEVICE_KEYS_VERSION = 1


def _put_key_id(key_id: str) -> bytes:
    raw = encode_key_id(key_id)
    return bytes((len(raw),)) + raw


def serialize_device_keys(keys: DeviceKeys) -> bytes:
    """Versioned binary form of all of a device's private keys (exact round trip).

    ``"SFK" 0x01 | IK.priv | SIK.seed | u32 next_opk | u32 next_spk | spk | u8 n previous
    spks | u16 n opks`` where an SPK is ``key_id | priv | sig(64)`` and an OPK ``key_id |
    priv`` (key ids as ``u8 len || UTF-8``).
    """
    parts = [
        DEVICE_KEYS_MAGIC,
        bytes((DEVICE_KEYS_VERSION,)),
        keys.identity.ik.private,
        keys.identity.sik.private,
        struct.pack(">II", keys.next_opk_index, keys.next_spk_index),
    ]

    def spk_bytes(spk: SignedPrekey) -> bytes:
        return _put_key_id(spk.key_id) + spk.keypair.private + spk.keypair.public + spk.signature

    parts.append(spk_bytes(keys.spk))
    parts.append(bytes((len(keys.previous_spks),)))
    parts.extend(spk_bytes(spk) for spk in keys.previous_spks.values())
    parts.append(struct.pack(">H", len(keys.opks)))
    for opk in keys.opks.values():
        parts.append(_put_key_id(opk.key_id) + opk.keypair.private + opk.keypair.public)
    return b"".join(parts)


def parse_device_keys(data: bytes) -> DeviceKeys:
    """Inverse of :func:`serialize_device_keys`; ``MalformedState`` names the broken part."""
    reader = StateReader(bytes(data))
    if reader.take(3, "magic") != DEVICE_KEYS_MAGIC:
        raise MalformedState("not device keys", field="magic")
    version = reader.u8("version")
    if version != DEVICE_KEYS_VERSION:
        raise MalformedState(f"unknown device keys version {version}", field="version")
    try:
        identity = IdentityKeys(
            X25519KeyPair.from_private(reader.take(32, "ik")),
            Ed25519KeyPair(reader.take(32, "sik")),
        )
    except ProtocolError as exc:
        raise MalformedState(exc.detail, field="identity") from exc
    next_opk, next_spk = reader.u32("next_opk_index"), reader.u32("next_spk_index")

    def key_id(field: str) -> str:
        raw = reader.take(reader.u8(field), field)
        try:
            return decode_key_id(raw, field)
        except ProtocolError as exc:
            raise MalformedState(exc.detail, field=field) from exc

    def spk() -> SignedPrekey:
        kid = key_id("spk.key_id")
        pair = X25519KeyPair(reader.take(32, "spk.private"), reader.take(32, "spk.public"))
        return SignedPrekey(kid, pair, reader.take(64, "spk.signature"))

    current = spk()
    previous = {}
    for _ in range(reader.u8("previous_spks.count")):
        old = spk()
        if old.key_id in previous or old.key_id == current.key_id:
            raise MalformedState("repeated signed prekey id", field="previous_spks.key_id")
        previous[old.key_id] = old
    opks = {}
    for _ in range(reader.u16("opks.count")):
        kid = key_id("opk.key_id")
        if kid in opks:
            raise MalformedState("repeated one-time prekey id", field="opk.key_id")
        opks[kid] = OneTimePrekey(
            kid, X25519KeyPair(reader.take(32, "opk.private"), reader.take(32, "opk.public"))
        )
    reader.finish("device_keys")
    return DeviceKeys(identity, current, previous, opks, next_opk, next_spk)


def bundle_to_dict(bundle: PreKeyBundle, encode: Callable[[bytes], str]) -> dict[str, Any]:
    """JSON form of a bundle (SPEC §1); ``encode`` is hex for vectors, base64 for the API."""
    return {
        "user_id": bundle.user_id,
        "device_id": bundle.device_id,
        "ik": encode(bundle.ik),
        "sik": encode(bundle.sik),
        "spk": {
            "key_id": bundle.spk.key_id,
            "pub": encode(bundle.spk.public),
            "sig": encode(bundle.spk.signature),
        },
        "opk": None
        if bundle.opk is None
        else {"key_id": bundle.opk.key_id, "pub": encode(bundle.opk.public)},
    }


def bundle_from_dict(data: Any, decode: Callable[[str], bytes]) -> PreKeyBundle:
    """Parse :func:`bundle_to_dict` output; ``MalformedEnvelope`` names the field."""

    def need(obj: Any, key: str, path: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            raise MalformedEnvelope(f"missing {path}", field=path)
        return obj[key]

    def text(obj: Any, key: str, path: str) -> str:
        value = need(obj, key, path)
        if not isinstance(value, str):
            raise MalformedEnvelope(f"{path} must be a string", field=path)
        return value

    def raw(obj: Any, key: str, path: str, size: int) -> bytes:
        try:
            value = decode(text(obj, key, path))
        except (ValueError, TypeError) as exc:
            raise MalformedEnvelope(f"{path} is not valid encoded bytes", field=path) from exc
        if len(value) != size:
            raise MalformedEnvelope(f"{path} must be {size} bytes", field=path)
        return value

    spk = need(data, "spk", "spk")
    opk_data = need(data, "opk", "opk")
    opk = None
    if opk_data is not None:
        kid = text(opk_data, "key_id", "opk.key_id")
        encode_key_id(kid, "opk.key_id")
        opk = PublicOneTimePrekey(kid, raw(opk_data, "pub", "opk.pub", 32))
    spk_id = text(spk, "key_id", "spk.key_id")
    encode_key_id(spk_id, "spk.key_id")
    return PreKeyBundle(
        text(data, "user_id", "user_id"),
        text(data, "device_id", "device_id"),
        raw(data, "ik", "ik", 32),
        raw(data, "sik", "sik", 32),
        PublicSignedPrekey(spk_id, raw(spk, "pub", "spk.pub", 32), raw(spk, "sig", "spk.sig", 64)),
        opk,
    )
