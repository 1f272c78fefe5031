"""X3DH key agreement (SPEC §2, ADR-0169; Signal X3DH §3).

Order is normative: the SPK signature is verified before any Diffie-Hellman (architecture
§4.3), so a forged bundle costs the attacker nothing but a rejection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from semafore import sabotage
from semafore.protocol.errors import InvalidKey, MalformedEnvelope
from semafore.protocol.keys import DeviceKeys, IdentityKeys, PreKeyBundle
from semafore.protocol.primitives import X25519KeyPair, hkdf, parse_x25519_public
from semafore.protocol.secrets import report as report_secret  # pragma: no mutate

X3DH_INFO = b"SemaFore-X3DH-v1"
ROOT_INFO = b"SemaFore-DR-v1-root"
F_PREFIX = b"\xff" * 32
ZERO_SALT = bytes(32)


@dataclass(frozen=True)
class X3DHResult:
    """Everything the key agreement derived; ``dh`` is (DH1, DH2, DH3[, DH4])."""

    dh: tuple[bytes, ...]
    sk: bytes
    ad: bytes
    ephemeral_public: bytes
    spk_key_id: str
    opk_key_id: str | None

    @property
    def rk0(self) -> bytes:
        """RK0 (SPEC §3), derived on demand: the ratchet derives its own from ``sk``."""
        return root_key(self.sk)


def _address(address: str, field: str) -> bytes:
    raw = address.encode("utf-8")
    if not raw or len(raw) > 0xFFFF:
        raise MalformedEnvelope("device address must be 1..65535 bytes", field=field)
    return struct.pack(">H", len(raw)) + raw


def associated_data(
    ik_a: bytes, sik_a: bytes, ik_b: bytes, sik_b: bytes, address_a: str, address_b: str
) -> bytes:
    """``IK_A || SIK_A || IK_B || SIK_B || u16 a || a || u16 b || b`` (SPEC §2 step 6)."""
    for value, name in ((ik_a, "ik_a"), (sik_a, "sik_a"), (ik_b, "ik_b"), (sik_b, "sik_b")):
        if len(value) != 32:
            raise InvalidKey(f"{name} must be 32 bytes", field=name)
    return (
        ik_a
        + sik_a
        + ik_b
        + sik_b
        + _address(address_a, "address_a")
        + _address(address_b, "address_b")
    )


def shared_key(dh: tuple[bytes, ...]) -> bytes:
    """``SK = HKDF(0xFF*32 || DH1 || DH2 || DH3 [|| DH4], 0*32, "SemaFore-X3DH-v1", 32)``."""
    if sabotage.active("protocol.x3dh_drops_dh1"):  # pragma: no mutate
        dh = dh[1:]  # pragma: no mutate
    sk = hkdf(F_PREFIX + b"".join(dh), ZERO_SALT, X3DH_INFO, 32)
    report_secret("X3DH SK", sk)  # pragma: no mutate
    return sk


def root_key(sk: bytes) -> bytes:
    """``RK0 = HKDF(SK, 0*32, "SemaFore-DR-v1-root", 32)`` (SPEC §3)."""
    rk = hkdf(sk, ZERO_SALT, ROOT_INFO, 32)
    report_secret("root key", rk)  # pragma: no mutate
    return rk


def initiate(
    identity: IdentityKeys, local_address: str, bundle: PreKeyBundle, ephemeral: X25519KeyPair
) -> X3DHResult:
    """Alice's side. Raises ``InvalidSignature`` (before any DH) or ``InvalidKey``."""
    bundle.verify()
    spk = parse_x25519_public(bundle.spk.public)
    dh1 = identity.ik.dh_parsed(spk)
    dh2 = ephemeral.dh(bundle.ik)
    dh3 = ephemeral.dh_parsed(spk)
    dh: tuple[bytes, ...] = (dh1, dh2, dh3)
    if bundle.opk is not None:
        dh = (*dh, ephemeral.dh(bundle.opk.public))
    sk = shared_key(dh)
    ad = associated_data(
        identity.ik.public,
        identity.sik.public,
        bundle.ik,
        bundle.sik,
        local_address,
        bundle.address,
    )
    return X3DHResult(
        dh,
        sk,
        ad,
        ephemeral.public,
        bundle.spk.key_id,
        bundle.opk.key_id if bundle.opk else None,
    )


def respond(
    keys: DeviceKeys,
    local_address: str,
    remote_ik: bytes,
    remote_sik: bytes,
    remote_address: str,
    ephemeral_public: bytes,
    spk_key_id: str,
    opk_key_id: str | None,
) -> X3DHResult:
    """Bob's side. Raises ``UnknownPrekey`` or ``InvalidKey``; deletes nothing (the caller
    deletes the OPK only once the first frame authenticated, SPEC §2)."""
    spk = keys.find_spk(spk_key_id)
    opk = keys.find_opk(opk_key_id) if opk_key_id is not None else None
    ephemeral = parse_x25519_public(ephemeral_public)
    dh1 = spk.keypair.dh(remote_ik)
    dh2 = keys.identity.ik.dh_parsed(ephemeral)
    dh3 = spk.keypair.dh_parsed(ephemeral)
    dh: tuple[bytes, ...] = (dh1, dh2, dh3)
    if opk is not None:
        dh = (*dh, opk.keypair.dh_parsed(ephemeral))
    sk = shared_key(dh)
    ad = associated_data(
        remote_ik,
        remote_sik,
        keys.identity.ik.public,
        keys.identity.sik.public,
        remote_address,
        local_address,
    )
    return X3DHResult(dh, sk, ad, ephemeral_public, spk_key_id, opk_key_id)
