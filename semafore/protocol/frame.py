"""The DR_V1 frame codec (SPEC §3).

```
0   4   magic "DRV1"
4   32  DHs.pub (sender's current ratchet key)
36  4   PN (length of the sender's previous sending chain)
40  4   N (index in the current sending chain)
44  12  nonce
56  n+16 AES-256-GCM(mk-derived key, nonce, plaintext, aad = AD || bytes[0..56))
```
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from semafore.protocol.errors import MalformedEnvelope, UnsupportedVersion
from semafore.protocol.primitives import TAG_LEN

MAGIC = b"DRV1"
HEADER_LEN = 56
MIN_LENGTH = HEADER_LEN + TAG_LEN
_HEADER = struct.Struct(">4s32sII12s")


class Frame(NamedTuple):
    """A parsed DR_V1 frame; ``header`` is bytes[0..56) as authenticated."""

    ratchet_key: bytes
    pn: int
    n: int
    nonce: bytes
    ciphertext: bytes
    header: bytes


def encode_header(ratchet_key: bytes, pn: int, n: int, nonce: bytes) -> bytes:
    return _HEADER.pack(MAGIC, ratchet_key, pn, n, nonce)


def parse(data: bytes) -> Frame:
    """Parse DR_V1 framing; errors are ``MalformedEnvelope`` naming the field."""
    data = bytes(data)
    size = len(data)
    if size >= MIN_LENGTH and data[:4] == MAGIC:  # the hot path: one unpack
        _, ratchet_key, pn, n, nonce = _HEADER.unpack_from(data)
        return Frame(ratchet_key, pn, n, nonce, data[HEADER_LEN:], data[:HEADER_LEN])
    if size < 4:
        raise MalformedEnvelope("truncated before the end of magic", field="magic")
    if data[:4] != MAGIC:
        if data[:3] == MAGIC[:3]:
            raise UnsupportedVersion(f"DRV version byte {data[3]:#04x}", field="magic")
        raise MalformedEnvelope("magic is not 'DRV1'", field="magic")
    for end, name in ((36, "ratchet_key"), (40, "pn"), (44, "n"), (56, "nonce")):
        if size < end:
            raise MalformedEnvelope(f"truncated inside {name}", field=name)
    raise MalformedEnvelope("ciphertext shorter than the 16-byte tag", field="ciphertext")


def is_drv1(data: bytes) -> bool:
    return data[:4] == MAGIC


def is_smx1(data: bytes) -> bool:
    return data[:4] == b"SMX1"
