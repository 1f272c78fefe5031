"""Every error ``semafore.protocol`` raises: its canonical type, the field it names, its detail.

SPEC §5 fixes the canonical names and says the message names the field; SPEC §7 forwards
``error`` and ``detail`` to the interop gate, so the text is what a platform team reads when a
case fails. One row per raise site pins ``str(error)`` — ``"<name>: <detail> (field: <f>)"`` —
so a changed type, field or wording is a reviewed change, not an accident. The mutation run
(docs/mutation.md) found most of these sites checked for the type only, or not at all.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from semafore.protocol import frame, session_cipher, smx1, x3dh
from semafore.protocol.entropy import ScriptedEntropy, SeededEntropy
from semafore.protocol.errors import CANONICAL_ERRORS, MalformedEnvelope, ProtocolError
from semafore.protocol.identity import IdentityStore, RemoteIdentity
from semafore.protocol.keys import (
    DeviceKeys,
    bundle_from_dict,
    bundle_to_dict,
    decode_key_id,
    encode_key_id,
    parse_device_keys,
    serialize_device_keys,
    spk_signed_message,
)
from semafore.protocol.primitives import (
    Ed25519KeyPair,
    X25519KeyPair,
    aead_open,
    aead_seal,
    ed25519_verify,
    parse_x25519_public,
    x25519,
)
from semafore.protocol.ratchet import MAX_COUNTER, RatchetState
from semafore.protocol.reader import StateReader
from semafore.protocol.session import Bootstrap, Role, Session, SessionRecord
from tests.protocol.conversation import Pair, new_pair

# An X25519 point of order 8 (RFC 7748 / Wycheproof "low order" case).
SMALL_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
EK = bytes(range(32))
KEYS = DeviceKeys.generate(SeededEntropy("catalogue"), opk_count=1)  # spk-0, opk-0
# header 51 bytes (L1 = L2 = 5), nonce 12, ciphertext 11 + 16
SMX = smx1.seal(bytes(32), b"ad", EK, "spk-0", "opk-0", bytes(12), b"inner-frame")
SMX_HEADER_LEN = 51


def _with(data: bytes, offset: int, replacement: bytes) -> bytes:
    return data[:offset] + replacement + data[offset + len(replacement) :]


def _frame(ratchet_key: bytes, pn: int, n: int) -> bytes:
    """A well-formed DR_V1 frame whose tag cannot verify."""
    return frame.encode_header(ratchet_key, pn, n, bytes(12)) + bytes(16)


def _talking() -> Pair:
    """Alice sent one frame, Bob replied, Alice sent again: Bob retired Alice's first chain."""
    pair = new_pair("catalogue")
    pair.bob.decrypt(pair.alice.encrypt(b"a0", pair.entropy))
    pair.alice.decrypt(pair.bob.encrypt(b"b0", pair.entropy))
    pair.bob.decrypt(pair.alice.encrypt(b"a1", pair.entropy))
    return pair


def _first_chain_key() -> bytes:
    pair = new_pair("catalogue")
    return pair.alice.sending_ratchet_key


def _ratchet_bytes() -> bytes:
    return _talking().bob.serialize()


def _session(bootstrap: Bootstrap | None) -> bytes:
    return Session(new_pair("catalogue").bob, Role.RESPONDER, EK, bootstrap).serialize()


def _session_with_raw_key_id(raw: bytes) -> bytes:
    """A responder session whose bootstrap SPK key id is the given raw bytes."""
    good = _session(Bootstrap(bytes(32), "k", None))
    at = 1 + 32 + 1 + 32  # role, base key, bootstrap flag, sk
    return good[:at] + bytes((len(raw),)) + raw + good[at + 2 :]


def _record_parse_from(data: bytes) -> Session:
    return Session.parse_from(StateReader(data))


def _ratchet_with(**fields: object) -> bytes:
    state = new_pair("catalogue").bob
    for name, value in fields.items():
        setattr(state, name, value)
    return state.serialize()


def _decrypt(state: RatchetState, data: bytes) -> object:
    return state.decrypt(data)


def _keys_bytes() -> bytes:
    return serialize_device_keys(KEYS)


def _keys_with_repeated_previous_spk() -> bytes:
    keys = DeviceKeys.generate(SeededEntropy("catalogue-rotated"))
    keys.rotate_spk(SeededEntropy("rotate"))  # previous: spk-0, current: spk-1
    data = serialize_device_keys(keys)
    return data.replace(b"\x05spk-0", b"\x05spk-1")


def _keys_with_bad_key_id() -> bytes:
    data = _keys_bytes()
    return data.replace(b"\x05spk-0", b"\x05spk\xff0", 1)


def _keys_with_repeated_opk() -> bytes:
    keys = DeviceKeys.generate(SeededEntropy("catalogue-opks"), opk_count=2)
    return serialize_device_keys(keys).replace(b"\x05opk-1", b"\x05opk-0")


def _bundle_doc() -> dict[str, Any]:
    return bundle_to_dict(KEYS.bundle("bob", "phone", "opk-0"), bytes.hex)


def _bundle_without(*path: str) -> object:
    doc = _bundle_doc()
    parent: Any = doc["spk"] if len(path) > 1 else doc
    del parent[path[-1]]
    return bundle_from_dict(doc, bytes.fromhex)


def _bundle_with(path: tuple[str, ...], value: object) -> object:
    doc = _bundle_doc()
    parent: Any = doc[path[0]] if len(path) > 1 else doc
    parent[path[-1]] = value
    return bundle_from_dict(doc, bytes.fromhex)


def _smx1_to_own_session() -> object:
    alice = DeviceKeys.generate(SeededEntropy("catalogue-alice"))
    record = SessionRecord()
    bundle = KEYS.bundle("bob", "phone", None)
    record.install(
        session_cipher.initiate_session(alice.identity, "alice:a", bundle, SeededEntropy("x"))
    )
    own = session_cipher.encrypt(record, b"hi", SeededEntropy("y"))
    ik, sik = KEYS.identity.ik.public, KEYS.identity.sik.public
    return session_cipher.decrypt(record, alice, "alice:a", ik, sik, "bob:phone", own)


def _identity_change() -> object:
    store = IdentityStore()
    store.check("bob:phone", RemoteIdentity(bytes(32), bytes(32)))
    return store.check("bob:phone", RemoteIdentity(bytes(32), b"\x01" * 32))


def _ad_with_a_short_key(index: int) -> bytes:
    ik_a, sik_a, ik_b, sik_b = (bytes(31 if i == index else 32) for i in range(4))
    return x3dh.associated_data(ik_a, sik_a, ik_b, sik_b, "a", "b")


def _parse_drv1_of_size(size: int) -> object:
    return frame.parse(b"DRV1" + bytes(size - 4))


def _exhausted_sender() -> object:
    pair = new_pair("catalogue")
    pair.alice.ns = MAX_COUNTER
    return pair.alice.encrypt(b"x", pair.entropy)


@dataclass(frozen=True)
class Row:
    id: str
    trigger: Callable[[], object]
    expected: str


CATALOGUE = [
    # -- entropy.py ----------------------------------------------------------------------
    Row(
        "entropy.empty",
        lambda: ScriptedEntropy().random_bytes(12, "nonce"),
        "EntropyExhausted: no scripted value left for 'nonce' (field: nonce)",
    ),
    Row(
        "entropy.size",
        lambda: ScriptedEntropy({"nonce": [b"ab"]}).random_bytes(12, "nonce"),
        "EntropyExhausted: scripted value for 'nonce' has 2 bytes, 12 needed (field: nonce)",
    ),
    # -- reader.py -----------------------------------------------------------------------
    Row(
        "reader.take",
        lambda: StateReader(b"ab").take(3, "thing"),
        "MalformedState: truncated inside thing (field: thing)",
    ),
    Row(
        "reader.finish",
        lambda: StateReader(b"abc", 1).finish("thing"),
        "MalformedState: 2 trailing bytes (field: thing)",
    ),
    # -- identity.py ---------------------------------------------------------------------
    Row(
        "identity.changed",
        _identity_change,
        "UntrustedIdentity: identity keys of bob:phone changed (field: identity)",
    ),
    # -- primitives.py -------------------------------------------------------------------
    Row(
        "x25519.private",
        lambda: X25519KeyPair.from_private(bytes(31)),
        "InvalidKey: x25519_private must be 32 bytes, got 31 (field: x25519_private)",
    ),
    Row(
        "x25519.small_order",
        lambda: x25519(bytes(range(32)), SMALL_ORDER),
        "InvalidKey: X25519 output is all-zero (small-order public key)",
    ),
    Row(
        "x25519.public",
        lambda: parse_x25519_public(bytes(31)),
        "InvalidKey: public key must be 32 bytes, got 31 (field: public_key)",
    ),
    Row(
        "ed25519.private",
        lambda: Ed25519KeyPair(bytes(33)),
        "InvalidKey: ed25519_private must be 32 bytes, got 33 (field: ed25519_private)",
    ),
    Row(
        "ed25519.sik",
        lambda: ed25519_verify(bytes(31), bytes(64), b"m"),
        "InvalidSignature: signing key must be 32 bytes, got 31 (field: sik)",
    ),
    Row(
        "ed25519.sig_length",
        lambda: ed25519_verify(KEYS.identity.sik.public, bytes(63), b"m"),
        "InvalidSignature: signature must be 64 bytes, got 63 (field: sig)",
    ),
    Row(
        "ed25519.sig",
        lambda: ed25519_verify(KEYS.identity.sik.public, bytes(64), b"m"),
        "InvalidSignature: Ed25519 signature does not verify (field: sig)",
    ),
    Row(
        "aead.key",
        lambda: aead_seal(bytes(16), bytes(12), b"", b""),
        "InvalidKey: AES-256-GCM key must be 32 bytes, got 16 (field: key)",
    ),
    Row(
        "aead.nonce",
        lambda: aead_open(bytes(32), bytes(16), bytes(16), b""),
        "DecryptionFailed: nonce must be 12 bytes, got 16 (field: nonce)",
    ),
    Row(
        "aead.ciphertext",
        lambda: aead_open(bytes(32), bytes(12), bytes(15), b""),
        "DecryptionFailed: ciphertext shorter than the 16-byte tag (field: ciphertext)",
    ),
    Row(
        "aead.tag",
        lambda: aead_open(bytes(32), bytes(12), bytes(16), b""),
        "DecryptionFailed: AES-256-GCM tag does not verify (field: tag)",
    ),
    # -- keys.py -------------------------------------------------------------------------
    Row(
        "key_id.empty",
        lambda: encode_key_id(""),
        "MalformedEnvelope: key_id must be 1..255 bytes of UTF-8 (field: key_id)",
    ),
    Row(
        "key_id.control",
        lambda: encode_key_id("a\x85b", "opk_key_id"),
        "MalformedEnvelope: opk_key_id contains a control character (field: opk_key_id)",
    ),
    Row(
        "key_id.surrogate",
        lambda: encode_key_id("spk-\ud800"),
        "MalformedEnvelope: key_id contains a control character (field: key_id)",
    ),
    Row(
        "key_id.not_text",  # adapters hand JSON values through: a number is not a key id
        lambda: encode_key_id(7, "spk_key_id"),  # type: ignore[arg-type]
        "MalformedEnvelope: spk_key_id must be 1..255 bytes of UTF-8 (field: spk_key_id)",
    ),
    Row(
        "key_id.utf8",
        lambda: decode_key_id(b"\xff"),
        "MalformedEnvelope: key_id is not valid UTF-8 (field: key_id)",
    ),
    Row(
        "spk_message.key_id",
        lambda: spk_signed_message("", bytes(32), bytes(32)),
        "MalformedEnvelope: spk.key_id must be 1..255 bytes of UTF-8 (field: spk.key_id)",
    ),
    Row(
        "spk_message.spk",
        lambda: spk_signed_message("k", bytes(31), bytes(32)),
        "InvalidKey: SPK public key must be 32 bytes (field: spk.pub)",
    ),
    Row(
        "spk_message.ik",
        lambda: spk_signed_message("k", bytes(32), bytes(31)),
        "InvalidKey: IK public key must be 32 bytes (field: ik)",
    ),
    Row(
        "find_spk",
        lambda: KEYS.find_spk("spk-9"),
        "UnknownPrekey: no signed prekey 'spk-9' (field: spk_key_id)",
    ),
    Row(
        "find_opk",
        lambda: KEYS.find_opk("opk-9"),
        "UnknownPrekey: no one-time prekey 'opk-9' (field: opk_key_id)",
    ),
    Row(
        "device_keys.magic",
        lambda: parse_device_keys(b"SFR" + _keys_bytes()[3:]),
        "MalformedState: not device keys (field: magic)",
    ),
    Row(
        "device_keys.version",
        lambda: parse_device_keys(_with(_keys_bytes(), 3, b"\x02")),
        "MalformedState: unknown device keys version 2 (field: version)",
    ),
    Row(
        "device_keys.identity",
        lambda: parse_device_keys(_keys_bytes()[:20]),
        "MalformedState: truncated inside ik (field: identity)",
    ),
    Row(
        "device_keys.identity_sik",
        lambda: parse_device_keys(_keys_bytes()[:40]),
        "MalformedState: truncated inside sik (field: identity)",
    ),
    Row(
        "device_keys.key_id",
        lambda: parse_device_keys(_keys_with_bad_key_id()),
        "MalformedState: spk.key_id is not valid UTF-8 (field: spk.key_id)",
    ),
    Row(
        "device_keys.previous_spk",
        lambda: parse_device_keys(_keys_with_repeated_previous_spk()),
        "MalformedState: repeated signed prekey id (field: previous_spks.key_id)",
    ),
    Row(
        "device_keys.opk",
        lambda: parse_device_keys(_keys_with_repeated_opk()),
        "MalformedState: repeated one-time prekey id (field: opk.key_id)",
    ),
    Row(
        "device_keys.trailing",
        lambda: parse_device_keys(_keys_bytes() + b"\x00"),
        "MalformedState: 1 trailing bytes (field: device_keys)",
    ),
    Row(
        "bundle.missing",
        lambda: _bundle_without("spk", "pub"),
        "MalformedEnvelope: missing spk.pub (field: spk.pub)",
    ),
    Row(
        "bundle.not_an_object",
        lambda: _bundle_with(("spk",), "spk"),
        "MalformedEnvelope: missing spk.key_id (field: spk.key_id)",
    ),
    Row(
        "bundle.string",
        lambda: _bundle_with(("user_id",), 7),
        "MalformedEnvelope: user_id must be a string (field: user_id)",
    ),
    Row(
        "bundle.encoding",
        lambda: _bundle_with(("opk", "pub"), "zz"),
        "MalformedEnvelope: opk.pub is not valid encoded bytes (field: opk.pub)",
    ),
    Row(
        "bundle.size",
        lambda: _bundle_with(("sik",), "00" * 31),
        "MalformedEnvelope: sik must be 32 bytes (field: sik)",
    ),
    Row(
        "bundle.key_id",
        lambda: _bundle_with(("opk", "key_id"), ""),
        "MalformedEnvelope: opk.key_id must be 1..255 bytes of UTF-8 (field: opk.key_id)",
    ),
    # -- x3dh.py -------------------------------------------------------------------------
    *(
        Row(
            f"ad.{name}",
            partial(_ad_with_a_short_key, i),
            f"InvalidKey: {name} must be 32 bytes (field: {name})",
        )
        for i, name in enumerate(("ik_a", "sik_a", "ik_b", "sik_b"))
    ),
    Row(
        "ad.address_a",
        lambda: x3dh.associated_data(bytes(32), bytes(32), bytes(32), bytes(32), "", "b"),
        "MalformedEnvelope: device address must be 1..65535 bytes (field: address_a)",
    ),
    Row(
        "ad.address_b",
        lambda: x3dh.associated_data(bytes(32), bytes(32), bytes(32), bytes(32), "a", ""),
        "MalformedEnvelope: device address must be 1..65535 bytes (field: address_b)",
    ),
    # -- frame.py (DR_V1) ----------------------------------------------------------------
    Row(
        "drv1.magic_truncated",
        lambda: frame.parse(b"DRV"),
        "MalformedEnvelope: truncated before the end of magic (field: magic)",
    ),
    Row(
        "drv1.version",
        lambda: frame.parse(b"DRV2" + bytes(80)),
        "UnsupportedVersion: DRV version byte 0x32 (field: magic)",
    ),
    Row(
        "drv1.magic",
        lambda: frame.parse(b"SMX1" + bytes(80)),
        "MalformedEnvelope: magic is not 'DRV1' (field: magic)",
    ),
    *(
        Row(
            f"drv1.{name}.{size}",
            partial(_parse_drv1_of_size, size),
            f"MalformedEnvelope: truncated inside {name} (field: {name})",
        )
        for size, name in (
            (4, "ratchet_key"),
            (35, "ratchet_key"),
            (36, "pn"),
            (39, "pn"),
            (40, "n"),
            (43, "n"),
            (44, "nonce"),
            (55, "nonce"),
        )
    ),
    *(
        Row(
            f"drv1.ciphertext.{size}",
            partial(_parse_drv1_of_size, size),
            "MalformedEnvelope: ciphertext shorter than the 16-byte tag (field: ciphertext)",
        )
        for size in (56, 71)
    ),
    # -- smx1.py -------------------------------------------------------------------------
    Row(
        "smx1.magic_truncated",
        lambda: smx1.parse(b"SMX"),
        "MalformedEnvelope: truncated before the end of magic (field: magic)",
    ),
    Row(
        "smx1.version",
        lambda: smx1.parse(b"SMX2" + SMX[4:]),
        "UnsupportedVersion: SMX version byte 0x32 (field: magic)",
    ),
    Row(
        "smx1.magic",
        lambda: smx1.parse(b"DRV1" + SMX[4:]),
        "MalformedEnvelope: magic is not 'SMX1' (field: magic)",
    ),
    Row(
        "smx1.flags_truncated",
        lambda: smx1.parse(SMX[:4]),
        "MalformedEnvelope: truncated before flags (field: flags)",
    ),
    Row(
        "smx1.flags",
        lambda: smx1.parse(_with(SMX, 4, b"\x02")),
        "MalformedEnvelope: flags 0x02 is neither 0x00 nor 0x01 (field: flags)",
    ),
    Row(
        "smx1.ephemeral",
        lambda: smx1.parse(SMX[:36]),
        "MalformedEnvelope: truncated inside EK_A (field: ephemeral)",
    ),
    Row(
        "smx1.l1_truncated",
        lambda: smx1.parse(SMX[:38]),
        "MalformedEnvelope: truncated inside L1 (field: spk_key_id_length)",
    ),
    Row(
        "smx1.l1_zero",
        lambda: smx1.parse(_with(SMX, 37, b"\x00\x00")),
        "MalformedEnvelope: L1 = 0 outside 1..255 (field: spk_key_id_length)",
    ),
    Row(
        "smx1.l1_256",
        lambda: smx1.parse(_with(SMX, 37, b"\x01\x00")),
        "MalformedEnvelope: L1 = 256 outside 1..255 (field: spk_key_id_length)",
    ),
    Row(
        "smx1.l1_u16",
        lambda: smx1.parse(_with(SMX, 37, b"\xff\xff")),
        "MalformedEnvelope: L1 = 65535 outside 1..255 (field: spk_key_id_length)",
    ),
    Row(
        "smx1.l1_overrun",
        lambda: smx1.parse(SMX[:43]),
        "MalformedEnvelope: L1 = 5 overruns the envelope (field: spk_key_id)",
    ),
    Row(
        "smx1.spk_key_id",
        lambda: smx1.parse(_with(SMX, 39, b"\xff")),
        "MalformedEnvelope: spk_key_id is not valid UTF-8 (field: spk_key_id)",
    ),
    Row(
        "smx1.l2_truncated",
        lambda: smx1.parse(SMX[:45]),
        "MalformedEnvelope: truncated inside L2 (field: opk_key_id_length)",
    ),
    Row(
        "smx1.l2_without_opk",
        lambda: smx1.parse(_with(SMX, 4, b"\x00")),
        "MalformedEnvelope: L2 must be 0 when flags = 0x00 (field: opk_key_id_length)",
    ),
    Row(
        "smx1.l2_zero_with_opk",
        lambda: smx1.parse(_with(SMX, 44, b"\x00\x00")),
        "MalformedEnvelope: L2 = 0 outside 1..255 with flags = 0x01 (field: opk_key_id_length)",
    ),
    Row(
        "smx1.l2_256",
        lambda: smx1.parse(_with(SMX, 44, b"\x01\x00")),
        "MalformedEnvelope: L2 = 256 outside 1..255 with flags = 0x01 (field: opk_key_id_length)",
    ),
    Row(
        "smx1.l2_u16",
        lambda: smx1.parse(_with(SMX, 44, b"\xff\xff")),
        "MalformedEnvelope: L2 = 65535 outside 1..255 with flags = 0x01 (field: opk_key_id_length)",
    ),
    Row(
        "smx1.l2_overrun",
        lambda: smx1.parse(SMX[:50]),
        "MalformedEnvelope: L2 = 5 overruns the envelope (field: opk_key_id)",
    ),
    Row(
        "smx1.opk_key_id",
        lambda: smx1.parse(_with(SMX, 46, b"\x07")),
        "MalformedEnvelope: opk_key_id contains a control character (field: opk_key_id)",
    ),
    Row(
        "smx1.nonce",
        lambda: smx1.parse(SMX[: SMX_HEADER_LEN + 11]),
        "MalformedEnvelope: truncated inside the nonce (field: nonce)",
    ),
    Row(
        "smx1.ciphertext",
        lambda: smx1.parse(SMX[: SMX_HEADER_LEN + 12 + 15]),
        "MalformedEnvelope: ciphertext shorter than the 16-byte tag (field: ciphertext)",
    ),
    Row(
        "smx1.header_ephemeral",
        lambda: smx1.encode_header(bytes(31), "spk-0", None),
        "MalformedEnvelope: EK_A must be 32 bytes (field: ephemeral)",
    ),
    Row(
        "smx1.header_spk_key_id",
        lambda: smx1.encode_header(EK, "", None),
        "MalformedEnvelope: spk_key_id must be 1..255 bytes of UTF-8 (field: spk_key_id)",
    ),
    Row(
        "smx1.header_opk_key_id",
        lambda: smx1.encode_header(EK, "spk-0", "\x00"),
        "MalformedEnvelope: opk_key_id contains a control character (field: opk_key_id)",
    ),
    Row(
        "smx1.encode_nonce",
        lambda: smx1.encode(smx1.Smx1Envelope(EK, "spk-0", None, bytes(11), bytes(16))),
        "MalformedEnvelope: nonce must be 12 bytes (field: nonce)",
    ),
    Row(
        "smx1.encode_ciphertext",
        lambda: smx1.encode(smx1.Smx1Envelope(EK, "spk-0", None, bytes(12), bytes(15))),
        "MalformedEnvelope: ciphertext shorter than the GCM tag (field: ciphertext)",
    ),
    Row(
        "smx1.seal_nonce",
        lambda: smx1.seal(bytes(32), b"", EK, "spk-0", None, bytes(13), b""),
        "MalformedEnvelope: nonce must be 12 bytes (field: nonce)",
    ),
    Row(
        "smx1.open",
        lambda: smx1.open_envelope(smx1.parse(SMX), bytes(32), b"other-ad"),
        "DecryptionFailed: AES-256-GCM tag does not verify (field: tag)",
    ),
    # -- ratchet.py ----------------------------------------------------------------------
    Row(
        "ratchet.responder_sends_first",
        lambda: new_pair("catalogue").bob.encrypt(b"x", SeededEntropy("e")),
        "NoSession: no sending chain yet: the responder sends only after receiving",
    ),
    Row(
        "ratchet.counter",
        _exhausted_sender,
        "NoSession: sending chain exhausted (N would overflow u32) (field: n)",
    ),
    Row(
        "ratchet.malformed",
        lambda: new_pair("catalogue").bob.decrypt(b"DRV1" + bytes(40)),
        "MalformedEnvelope: truncated inside nonce (field: nonce)",
    ),
    Row(
        "ratchet.no_receiving_chain",
        lambda: _decrypt(
            (pair := new_pair("catalogue")).alice, _frame(pair.alice.dhr or b"", 0, 0)
        ),
        "DecryptionFailed: no receiving chain for this key (field: ratchet_key)",
    ),
    Row(
        "ratchet.duplicate",
        lambda: _decrypt((pair := _talking()).bob, _frame(pair.alice.dhs.public, 0, 0)),
        "DuplicateMessage: message 0 of this chain was already received (field: n)",
    ),
    Row(
        "ratchet.max_skip",
        lambda: _decrypt((pair := _talking()).bob, _frame(pair.alice.dhs.public, 0, 1002)),
        "TooManySkipped: frame skips 1001 keys (MAX_SKIP 1000) (field: n)",
    ),
    Row(
        "ratchet.retired_duplicate",
        lambda: _decrypt(_talking().bob, _frame(_first_chain_key(), 0, 0)),
        "DuplicateMessage: message of a retired chain already received (field: n)",
    ),
    Row(
        "ratchet.retired_beyond",
        lambda: _decrypt(_talking().bob, _frame(_first_chain_key(), 0, 1)),
        "DecryptionFailed: frame beyond the end of a retired chain (field: n)",
    ),
    Row(
        "ratchet.new_chain_max_skip",
        lambda: _decrypt(_talking().bob, _frame(EK, 0, 1001)),
        "TooManySkipped: frame skips 1001 keys of a new chain (field: n)",
    ),
    Row(
        "ratchet.tag",
        lambda: _decrypt(_talking().bob, _frame(EK, 0, 0)),
        "DecryptionFailed: AES-256-GCM tag does not verify (field: tag)",
    ),
    Row(
        "ratchet_state.trailing",
        lambda: RatchetState.parse(_ratchet_bytes() + b"\x00\x00"),
        "MalformedState: 2 trailing bytes (field: ratchet)",
    ),
    Row(
        "ratchet_state.magic",
        lambda: RatchetState.parse(b"SFK" + _ratchet_bytes()[3:]),
        "MalformedState: not a ratchet state (field: magic)",
    ),
    Row(
        "ratchet_state.version",
        lambda: RatchetState.parse(_with(_ratchet_bytes(), 3, b"\x00")),
        "MalformedState: unknown ratchet state version 0 (field: version)",
    ),
    Row(
        "ratchet_state.flags",
        lambda: RatchetState.parse(_with(_ratchet_bytes(), 100, b"\x0f")),
        "MalformedState: unknown flags 0x0f (field: flags)",
    ),
    Row(
        "ratchet_state.truncated",
        lambda: RatchetState.parse(_ratchet_bytes()[:110]),
        "MalformedState: truncated inside dhr (field: dhr)",
    ),
    Row(
        "ratchet_state.previous_repeated",
        lambda: RatchetState.parse(_repeated_previous()),
        "MalformedState: repeated retired chain (field: previous.key)",
    ),
    Row(
        "ratchet_state.skipped_repeated",
        lambda: RatchetState.parse(_repeated_skipped()),
        "MalformedState: repeated skipped key (field: skipped.n)",
    ),
    Row(
        "ratchet_state.too_many_previous",
        lambda: RatchetState.parse(_ratchet_with(previous={bytes((i,)) * 32: i for i in range(6)})),
        "MalformedState: more stored keys than the protocol allows (field: skipped)",
    ),
    # -- session.py ----------------------------------------------------------------------
    Row(
        "session.role",
        lambda: _record_parse_from(b"\x03" + _session(None)[1:]),
        "MalformedState: unknown role 3 (field: session.role)",
    ),
    Row(
        "session.bootstrap_flag",
        lambda: _record_parse_from(_with(_session(None), 33, b"\x02")),
        "MalformedState: bootstrap flag must be 0 or 1 (field: session.bootstrap)",
    ),
    Row(
        "session.spk_key_id_empty",
        lambda: _record_parse_from(_session_with_raw_key_id(b"")),
        "MalformedState: empty SPK key id (field: bootstrap.spk_key_id)",
    ),
    Row(
        "session.key_id",
        lambda: _record_parse_from(_session_with_raw_key_id(b"\x00")),
        "MalformedState: invalid key id (field: bootstrap.key_id)",
    ),
    Row(
        "session.ratchet_truncated",
        lambda: _record_parse_from(_session(None)[:-1]),
        "MalformedState: truncated ratchet state (field: session.ratchet)",
    ),
    Row(
        "session.ratchet_length",
        lambda: _record_parse_from(_longer_ratchet_length()),
        "MalformedState: ratchet length mismatch (field: session.ratchet)",
    ),
    Row(
        "session.serialize_spk_key_id",
        lambda: _session(Bootstrap(bytes(32), "", None)),
        "MalformedEnvelope: spk_key_id must be 1..255 bytes of UTF-8 (field: spk_key_id)",
    ),
    Row(
        "session.serialize_opk_key_id",
        lambda: _session(Bootstrap(bytes(32), "s", "o" * 256)),
        "MalformedEnvelope: opk_key_id must be 1..255 bytes of UTF-8 (field: opk_key_id)",
    ),
    Row(
        "record.magic",
        lambda: SessionRecord.parse(b"SFR\x01\x00\x00"),
        "MalformedState: not a session record (field: record.magic)",
    ),
    Row(
        "record.version",
        lambda: SessionRecord.parse(b"SFS\x02\x00\x00"),
        "MalformedState: unknown record version 2 (field: record.version)",
    ),
    Row(
        "record.counts",
        lambda: SessionRecord.parse(b"SFS\x01\x01\x00"),
        "MalformedState: inconsistent session counts (field: record.count)",
    ),
    Row(
        "record.trailing",
        lambda: SessionRecord.parse(b"SFS\x01\x00\x00\x00"),
        "MalformedState: 1 trailing bytes (field: record)",
    ),
    # -- session_cipher.py ---------------------------------------------------------------
    Row(
        "cipher.encrypt_without_session",
        lambda: session_cipher.encrypt(SessionRecord(), b"x", SeededEntropy("e")),
        "NoSession: no current session with this device",
    ),
    Row(
        "cipher.decrypt_without_session",
        lambda: session_cipher.decrypt(
            SessionRecord(), KEYS, "b:p", bytes(32), bytes(32), "a:p", _frame(EK, 0, 0)
        ),
        "NoSession: no session with this device",
    ),
    Row(
        "cipher.own_smx1",
        _smx1_to_own_session,
        "DuplicateMessage: SMX1 for a session this device initiated (field: ephemeral)",
    ),
    Row(
        "reset.encode",
        lambda: session_cipher.encode_reset(bytes(31)),
        "MalformedEnvelope: ratchet key must be 32 bytes (field: ratchet_key)",
    ),
    Row(
        "reset.magic",
        lambda: session_cipher.parse_reset(b"SRS2" + bytes(32)),
        "MalformedEnvelope: magic is not 'SRS1' (field: magic)",
    ),
    Row(
        "reset.length",
        lambda: session_cipher.parse_reset(b"SRS1" + bytes(33)),
        "MalformedEnvelope: reset must be 36 bytes (field: ratchet_key)",
    ),
]


def _repeated_previous() -> bytes:
    data = _ratchet_with(previous={b"\x01" * 32: 1, b"\x02" * 32: 2})
    return data.replace(b"\x02" * 32, b"\x01" * 32)


def _repeated_skipped() -> bytes:
    state = new_pair("catalogue").bob
    state.skipped = {(b"\x01" * 32, 1): b"\x0a" * 32, (b"\x01" * 32, 2): b"\x0b" * 32}
    return state.serialize().replace(struct.pack(">I", 2) + b"\x0b", struct.pack(">I", 1) + b"\x0b")


def _longer_ratchet_length() -> bytes:
    data = _session(None)
    at = 1 + 32 + 1
    (length,) = struct.unpack_from(">I", data, at)
    return data[:at] + struct.pack(">I", length + 1) + data[at + 4 :] + b"\x00"


@pytest.mark.parametrize("row", CATALOGUE, ids=lambda row: row.id)
def test_every_protocol_error_names_its_type_field_and_detail(row: Row) -> None:
    with pytest.raises(ProtocolError) as info:
        row.trigger()
    error = info.value
    assert str(error) == row.expected
    assert error.name == type(error).__name__
    field = f" (field: {error.field})" if error.field else ""
    assert str(error) == f"{error.name}: {error.detail}{field}"


def test_the_catalogue_covers_every_canonical_error_the_protocol_raises() -> None:
    raised = {row.expected.split(":", 1)[0] for row in CATALOGUE}
    adapter_only = {"Unsupported"}  # SPEC §5: adapters only
    assert raised == (set(CANONICAL_ERRORS) - adapter_only) | {"MalformedState", "EntropyExhausted"}


BUNDLE_TEXT_FIELDS = [("user_id",), ("device_id",), ("spk", "key_id"), ("opk", "key_id")]
BUNDLE_BYTE_FIELDS = [(("ik",), 32), (("sik",), 32), (("spk", "pub"), 32), (("spk", "sig"), 64)]
BUNDLE_BYTE_FIELDS.append((("opk", "pub"), 32))


def _bundle_doc_without(path: tuple[str, ...]) -> dict[str, Any]:
    doc = _bundle_doc()
    parent: Any = doc[path[0]] if len(path) > 1 else doc
    del parent[path[-1]]
    return doc


@pytest.mark.parametrize(
    "path",
    [("spk",), ("opk",)] + BUNDLE_TEXT_FIELDS + [path for path, _ in BUNDLE_BYTE_FIELDS],
    ids=".".join,
)
def test_every_missing_bundle_field_is_named(path: tuple[str, ...]) -> None:
    """SPEC §1 bundle JSON: a missing member is ``MalformedEnvelope`` naming its path."""
    with pytest.raises(MalformedEnvelope) as info:
        bundle_from_dict(_bundle_doc_without(path), bytes.fromhex)
    assert (info.value.field, info.value.detail) == (".".join(path), f"missing {'.'.join(path)}")


@pytest.mark.parametrize("path", BUNDLE_TEXT_FIELDS, ids=".".join)
def test_every_bundle_text_field_must_be_a_string(path: tuple[str, ...]) -> None:
    with pytest.raises(MalformedEnvelope) as info:
        _bundle_with(path, ["not", "text"])
    assert (
        str(info.value)
        == f"MalformedEnvelope: {'.'.join(path)} must be a string (field: {'.'.join(path)})"
    )


@pytest.mark.parametrize("path", [("spk", "key_id"), ("opk", "key_id")], ids=".".join)
def test_bundle_key_ids_follow_the_key_id_rules(path: tuple[str, ...]) -> None:
    name = ".".join(path)
    with pytest.raises(MalformedEnvelope) as info:
        _bundle_with(path, "tab\there")
    assert (
        str(info.value) == f"MalformedEnvelope: {name} contains a control character (field: {name})"
    )


@pytest.mark.parametrize(
    ("path", "size"),
    BUNDLE_BYTE_FIELDS,
    ids=lambda p: ".".join(p) if isinstance(p, tuple) else str(p),
)
def test_every_bundle_key_field_has_its_exact_size(path: tuple[str, ...], size: int) -> None:
    name = ".".join(path)
    for wrong in (size - 1, size + 1):
        with pytest.raises(MalformedEnvelope) as info:
            _bundle_with(path, "00" * wrong)
        assert str(info.value) == f"MalformedEnvelope: {name} must be {size} bytes (field: {name})"
    with pytest.raises(MalformedEnvelope) as info:
        _bundle_with(path, "0")
    assert info.value.field == name
