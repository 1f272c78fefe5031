"""The SMX1 prekey envelope (SPEC §2; architecture §4.3, normative layout).

```
0         4   magic "SMX1"
4         1   flags: 0x01 OPK used, 0x00 OPK absent
5         32  EK_A.pub
37        2   L1 = len(SPK key_id), 1..255
39        L1  SPK key_id (UTF-8)
39+L1     2   L2 = len(OPK key_id); 0 iff flags = 0x00
41+L1     L2  OPK key_id
41+L1+L2  12  nonce
53+L1+L2  n+16 AES-256-GCM(SK, nonce, first DR_V1 frame, aad = header || AD)
```
The AAD covers the whole header (a relay cannot swap key ids or EK) and AD (identities and
addresses). The parser names the field of every framing error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from semafore.protocol.errors import MalformedEnvelope, UnsupportedVersion
from semafore.protocol.keys import decode_key_id, encode_key_id
from semafore.protocol.primitives import NONCE_LEN, TAG_LEN, aead_open, aead_seal

MAGIC = b"SMX1"
FLAG_OPK = 0x01
FLAG_NO_OPK = 0x00
MIN_LENGTH = 4 + 1 + 32 + 2 + 1 + 2 + NONCE_LEN + TAG_LEN


@dataclass(frozen=True)
class Smx1Envelope:
    """A parsed SMX1 envelope; ``header`` is bytes[0 .. 41+L1+L2) as authenticated."""

    ephemeral: bytes
    spk_key_id: str
    opk_key_id: str | None
    nonce: bytes
    ciphertext: bytes

    @property
    def flags(self) -> int:
        return FLAG_OPK if self.opk_key_id is not None else FLAG_NO_OPK

    @property
    def header(self) -> bytes:
        return encode_header(self.ephemeral, self.spk_key_id, self.opk_key_id)


def encode_header(ephemeral: bytes, spk_key_id: str, opk_key_id: str | None) -> bytes:
    if len(ephemeral) != 32:
        raise MalformedEnvelope("EK_A must be 32 bytes", field="ephemeral")
    spk = encode_key_id(spk_key_id, "spk_key_id")
    opk = b"" if opk_key_id is None else encode_key_id(opk_key_id, "opk_key_id")
    flags = FLAG_OPK if opk_key_id is not None else FLAG_NO_OPK
    return b"".join(
        (
            MAGIC,
            bytes((flags,)),
            ephemeral,
            struct.pack(">H", len(spk)),
            spk,
            struct.pack(">H", len(opk)),
            opk,
        )
    )


def encode(envelope: Smx1Envelope) -> bytes:
    if len(envelope.nonce) != NONCE_LEN:
        raise MalformedEnvelope("nonce must be 12 bytes", field="nonce")
    if len(envelope.ciphertext) < TAG_LEN:
        raise MalformedEnvelope("ciphertext shorter than the GCM tag", field="ciphertext")
    return envelope.header + envelope.nonce + envelope.ciphertext


def parse(data: bytes) -> Smx1Envelope:
    """Parse SMX1 framing; every error is ``MalformedEnvelope`` naming the field.

    ``SMX`` followed by another version byte is ``UnsupportedVersion`` (a newer format,
    not garbage).
    """
    data = bytes(data)
    if len(data) < 4:
        raise MalformedEnvelope("truncated before the end of magic", field="magic")
    if data[:4] != MAGIC:
        if data[:3] == MAGIC[:3]:
            raise UnsupportedVersion(f"SMX version byte {data[3]:#04x}", field="magic")
        raise MalformedEnvelope("magic is not 'SMX1'", field="magic")
    if len(data) < 5:
        raise MalformedEnvelope("truncated before flags", field="flags")
    flags = data[4]
    if flags not in (FLAG_OPK, FLAG_NO_OPK):
        raise MalformedEnvelope(f"flags {flags:#04x} is neither 0x00 nor 0x01", field="flags")
    if len(data) < 37:
        raise MalformedEnvelope("truncated inside EK_A", field="ephemeral")
    ephemeral = data[5:37]
    if len(data) < 39:
        raise MalformedEnvelope("truncated inside L1", field="spk_key_id_length")
    (l1,) = struct.unpack_from(">H", data, 37)
    if not 1 <= l1 <= 255:
        raise MalformedEnvelope(f"L1 = {l1} outside 1..255", field="spk_key_id_length")
    if len(data) < 39 + l1:
        raise MalformedEnvelope(f"L1 = {l1} overruns the envelope", field="spk_key_id")
    spk_key_id = decode_key_id(data[39 : 39 + l1], "spk_key_id")
    offset = 39 + l1
    if len(data) < offset + 2:
        raise MalformedEnvelope("truncated inside L2", field="opk_key_id_length")
    (l2,) = struct.unpack_from(">H", data, offset)
    offset += 2
    if flags == FLAG_NO_OPK and l2 != 0:
        raise MalformedEnvelope("L2 must be 0 when flags = 0x00", field="opk_key_id_length")
    if flags == FLAG_OPK and not 1 <= l2 <= 255:
        raise MalformedEnvelope(
            f"L2 = {l2} outside 1..255 with flags = 0x01", field="opk_key_id_length"
        )
    if len(data) < offset + l2:
        raise MalformedEnvelope(f"L2 = {l2} overruns the envelope", field="opk_key_id")
    opk_key_id = decode_key_id(data[offset : offset + l2], "opk_key_id") if l2 else None
    offset += l2
    if len(data) < offset + NONCE_LEN:
        raise MalformedEnvelope("truncated inside the nonce", field="nonce")
    nonce = data[offset : offset + NONCE_LEN]
    ciphertext = data[offset + NONCE_LEN :]
    if len(ciphertext) < TAG_LEN:
        raise MalformedEnvelope("ciphertext shorter than the 16-byte tag", field="ciphertext")
    return Smx1Envelope(ephemeral, spk_key_id, opk_key_id, nonce, ciphertext)


def seal(
    sk: bytes,
    ad: bytes,
    ephemeral_public: bytes,
    spk_key_id: str,
    opk_key_id: str | None,
    nonce: bytes,
    inner: bytes,
) -> bytes:
    """Build an SMX1 carrying ``inner`` (the first DR_V1 frame) under key ``SK``."""
    header = encode_header(ephemeral_public, spk_key_id, opk_key_id)
    if len(nonce) != NONCE_LEN:
        raise MalformedEnvelope("nonce must be 12 bytes", field="nonce")
    return header + nonce + aead_seal(sk, nonce, inner, header + ad)


def open_envelope(envelope: Smx1Envelope, sk: bytes, ad: bytes) -> bytes:
    """Decrypt the inner frame; a bad tag is ``DecryptionFailed``."""
    return aead_open(sk, envelope.nonce, envelope.ciphertext, envelope.header + ad)
