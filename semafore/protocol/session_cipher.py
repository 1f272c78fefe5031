"""Encrypt to and decrypt from one remote device, across its sessions (SPEC §2, §4).

The one place that knows the envelope kinds: SMX1 (bootstrap, resent until the first reply),
DR_V1 (steady state) and the session ``reset`` notice. Every operation is transactional: on
any error the record and the device keys are exactly as before.
"""

from __future__ import annotations

from semafore import sabotage
from semafore.protocol import smx1, x3dh
from semafore.protocol.entropy import Entropy
from semafore.protocol.errors import (
    DuplicateMessage,
    MalformedEnvelope,
    NoSession,
    ProtocolError,
)
from semafore.protocol.frame import is_smx1
from semafore.protocol.frame import parse as parse_frame
from semafore.protocol.keys import DeviceKeys, IdentityKeys, PreKeyBundle
from semafore.protocol.primitives import X25519KeyPair
from semafore.protocol.ratchet import RatchetState
from semafore.protocol.session import Bootstrap, Role, Session, SessionRecord

RESET_MAGIC = b"SRS1"
"""``reset`` notice: "SRS1" || ratchet public key of the frame that could not be decrypted."""


def initiate_session(
    identity: IdentityKeys, local_address: str, bundle: PreKeyBundle, entropy: Entropy
) -> Session:
    """X3DH as Alice (verifies the SPK first) and her first ratchet step; draws
    "ephemeral_key" then "ratchet_key"."""
    ephemeral = X25519KeyPair.generate(entropy, "ephemeral_key")
    agreed = x3dh.initiate(identity, local_address, bundle, ephemeral)
    ratchet = RatchetState.initiator(agreed.sk, agreed.ad, bundle.spk.public, entropy)
    return Session(
        ratchet,
        Role.INITIATOR,
        ephemeral.public,
        Bootstrap(agreed.sk, agreed.spk_key_id, agreed.opk_key_id),
    )


def encrypt(record: SessionRecord, plaintext: bytes, entropy: Entropy) -> bytes:
    """Encrypt with the current session: SMX1-wrapped until the peer replied, else DR_V1.

    An SMX1 draws its outer nonce first, then the inner frame's nonce.
    """
    session = record.current
    if session is None:
        raise NoSession("no current session with this device")
    if session.wraps_in_smx1:
        assert session.bootstrap is not None
        boot = session.bootstrap
        outer_nonce = entropy.random_bytes(12, "nonce")
        if sabotage.active("client.reuses_gcm_nonce"):  # pragma: no mutate
            outer_nonce = session.base_key[:12]  # pragma: no mutate ("unique per session")
        inner = session.ratchet.encrypt(plaintext, entropy)
        sealed = smx1.seal(
            boot.sk,
            session.ratchet.ad,
            session.base_key,
            boot.spk_key_id,
            boot.opk_key_id,
            outer_nonce,
            inner,
        )
        if sabotage.active("client.never_resends_smx1"):  # pragma: no mutate
            session.bootstrap = None  # pragma: no mutate (DR_V1 from the next message on)
        return sealed
    return session.ratchet.encrypt(plaintext, entropy)


def decrypt(
    record: SessionRecord,
    keys: DeviceKeys,
    local_address: str,
    remote_ik: bytes,
    remote_sik: bytes,
    remote_address: str,
    envelope: bytes,
) -> bytes:
    """Decrypt an SMX1 or DR_V1 envelope from ``remote_address``.

    The caller has already checked ``remote_ik``/``remote_sik`` against its identity store
    (:class:`semafore.protocol.identity.IdentityStore`).
    """
    if is_smx1(envelope):
        return _decrypt_prekey(
            record, keys, local_address, remote_ik, remote_sik, remote_address, envelope
        )
    return _decrypt_frame(record, envelope)


def _decrypt_prekey(
    record: SessionRecord,
    keys: DeviceKeys,
    local_address: str,
    remote_ik: bytes,
    remote_sik: bytes,
    remote_address: str,
    envelope: bytes,
) -> bytes:
    parsed = smx1.parse(envelope)
    existing = record.find_by_base_key(parsed.ephemeral)
    if sabotage.active("protocol.replayed_smx1_new_session"):  # pragma: no mutate
        existing = None  # pragma: no mutate
    if existing is not None:  # a resent SMX1 (SPEC §2): reuse, never run X3DH again
        if existing.role is not Role.RESPONDER or existing.bootstrap is None:
            raise DuplicateMessage("SMX1 for a session this device initiated", field="ephemeral")
        inner = smx1.open_envelope(parsed, existing.bootstrap.sk, existing.ratchet.ad)
        plaintext = existing.ratchet.decrypt(inner)
        if not _keeps_own_session(record):
            record.promote(existing)
        return plaintext

    agreed = x3dh.respond(
        keys,
        local_address,
        remote_ik,
        remote_sik,
        remote_address,
        parsed.ephemeral,
        parsed.spk_key_id,
        parsed.opk_key_id,
    )
    inner = smx1.open_envelope(parsed, agreed.sk, agreed.ad)
    ratchet = RatchetState.responder(agreed.sk, agreed.ad, keys.find_spk(parsed.spk_key_id).keypair)
    plaintext = ratchet.decrypt(inner)
    # Authenticated: commit. The OPK is deleted only now (SPEC §2), so a forged SMX1
    # cannot burn it, and a replay of this SMX1 after the session is gone is UnknownPrekey.
    used_opk = parsed.opk_key_id
    if sabotage.active("client.keeps_used_opk"):  # pragma: no mutate
        used_opk = None  # pragma: no mutate (the private key stays on the device)
    if used_opk is not None:
        del keys.opks[used_opk]
    session = Session(
        ratchet,
        Role.RESPONDER,
        parsed.ephemeral,
        Bootstrap(agreed.sk, parsed.spk_key_id, parsed.opk_key_id),
    )
    if _keeps_own_session(record):
        record.archived.insert(0, session)  # pragma: no mutate
    else:
        record.install(session)
    return plaintext


def _keeps_own_session(record: SessionRecord) -> bool:
    """TEST ONLY (sabotage ``client.tiebreak_broken``): whether the peer's session must not
    replace this device's own initiator session (SPEC §4 says the last one used wins)."""
    current = record.current  # pragma: no mutate
    own = current is not None and current.role is Role.INITIATOR  # pragma: no mutate
    return own and sabotage.active("client.tiebreak_broken")  # pragma: no mutate


def _decrypt_frame(record: SessionRecord, envelope: bytes) -> bytes:
    first_error: ProtocolError | None = None
    for session in record.sessions():
        try:
            plaintext = session.ratchet.decrypt(envelope)
        except MalformedEnvelope:
            raise
        except ProtocolError as exc:
            first_error = first_error or exc
            continue
        if session.role is Role.INITIATOR:
            session.bootstrap = None  # the peer replied: stop wrapping in SMX1 (SPEC §2)
        record.promote(session)
        return plaintext
    if first_error is not None:
        raise first_error
    parse_frame(envelope)  # malformed input is MalformedEnvelope even without a session
    raise NoSession("no session with this device")


def encode_reset(ratchet_key: bytes) -> bytes:
    """The ``reset`` notice of SPEC §4: names the undecryptable frame's ratchet key only."""
    if len(ratchet_key) != 32:
        raise MalformedEnvelope("ratchet key must be 32 bytes", field="ratchet_key")
    return RESET_MAGIC + ratchet_key


def parse_reset(data: bytes) -> bytes:
    if data[:4] != RESET_MAGIC:
        raise MalformedEnvelope("magic is not 'SRS1'", field="magic")
    if len(data) != 36:
        raise MalformedEnvelope("reset must be 36 bytes", field="ratchet_key")
    return bytes(data[4:])


def reset_for_undecryptable(envelope: bytes) -> bytes | None:
    """The reset to send back for an envelope we cannot decrypt, if it names a ratchet key."""
    try:
        if is_smx1(envelope):
            return None  # the sender will resend SMX1 or bootstrap again on its own
        return encode_reset(parse_frame(envelope).ratchet_key)
    except ProtocolError:
        return None


def handle_reset(record: SessionRecord, reset: bytes) -> bool:
    """Archive the current session iff the reset names its current sending ratchet key.

    Any other key is ignored, so a replayed or forged reset cannot tear down a healthy
    session (SPEC §4). Returns True when the session was archived: the next message then
    bootstraps from a freshly fetched bundle.
    """
    ratchet_key = parse_reset(reset)
    current = record.current
    any_key = sabotage.active("protocol.reset_ignores_ratchet_key")  # pragma: no mutate
    if any_key and current is not None:  # pragma: no mutate
        ratchet_key = current.ratchet.sending_ratchet_key  # pragma: no mutate
    if current is None or current.ratchet.sending_ratchet_key != ratchet_key:
        return False
    record.archive_current()
    return True
