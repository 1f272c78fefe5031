"""Device keys, signed prekeys and key bundles (SPEC §1, ADR-0053).

Each device owns an X25519 identity key (IK), an Ed25519 signing key (SIK), a signed prekey
(SPK, with a bound ``key_id``) and one-time prekeys (OPKs). The SPK signature binds the
``key_id`` and ``IK.pub`` so a relay can neither relabel a prekey nor pair a victim's SIK with
an identity key of its own.
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass, field

from semafore.protocol.entropy import Entropy
from semafore.protocol.errors import InvalidKey, MalformedEnvelope, UnknownPrekey
from semafore.protocol.primitives import Ed25519KeyPair, X25519KeyPair, ed25519_verify

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
        verify_spk(self.sik, self.spk.key_id, self.spk.public, self.ik, self.spk.signature)


def device_address(user_id: str, device_id: str) -> str:
    """The ``"<user_id>:<device_id>"`` address bound into AD (SPEC §2 step 6)."""
    return f"{user_id}:{device_id}"


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
