"""Reversible encodings a careless relay or client could apply to a secret — the forward
side of :mod:`semafore.oracle.decoders`, for leak injection (issue #12 item 5: the test-only
leaky relay ``Settings.leak = "log:base32+gzip"``) and for the oracle's own tests.

A chain is written outermost first, the way the oracle reports the decode chain:
``base32+gzip`` is ``base32(gzip(value))``.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import lzma
import quopri
import urllib.parse
import zlib
from collections.abc import Callable

from semafore.oracle.model import OracleError

Encoder = Callable[[bytes], bytes]


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _crockford(data: bytes) -> bytes:
    return base64.b32encode(data).translate(bytes.maketrans(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")).rstrip(b"=")


def _zbase32(data: bytes) -> bytes:
    return base64.b32encode(data).translate(bytes.maketrans(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"ybndrfg8ejkmcpqxot1uwisza345h769")).rstrip(b"=")


def _z85(data: bytes) -> bytes:
    return base64.b85encode(data).translate(bytes.maketrans(
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~",
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"))


ENCODERS: dict[str, Encoder] = {
    "raw": lambda d: d,
    "hex": lambda d: d.hex().encode(),
    "hex-upper": lambda d: d.hex().upper().encode(),
    "hex-colon": lambda d: d.hex(":").encode(),
    "hex-spaced": lambda d: d.hex(" ").upper().encode(),
    "hex-0x": lambda d: ", ".join(f"0x{b:02x}" for b in d).encode(),
    "c-hex": lambda d: "".join(f"\\x{b:02x}" for b in d).encode(),
    "base32": base64.b32encode,
    "base32-lower": lambda d: base64.b32encode(d).lower().rstrip(b"="),
    "base32hex": base64.b32hexencode,
    "base32-crockford": _crockford,
    "z-base32": _zbase32,
    "base64": base64.b64encode,
    "base64-url": lambda d: base64.urlsafe_b64encode(d).rstrip(b"="),
    "base64-mime": base64.encodebytes,
    "base64-upper": lambda d: base64.b64encode(d).upper(),
    "base64-lower": lambda d: base64.b64encode(d).lower(),
    "base85": base64.b85encode,
    "ascii85": lambda d: base64.a85encode(d, adobe=True),
    "z85": _z85,
    "binary": lambda d: "".join(f"{b:08b}" for b in d).encode(),
    "percent": lambda d: "".join(f"%{b:02X}" for b in d).encode(),
    "url": lambda d: urllib.parse.quote_from_bytes(d).encode(),
    "quoted-printable": lambda d: quopri.encodestring(d, quotetabs=True),
    "json": lambda d: json.dumps(d.decode("latin-1")).encode(),
    "json-unicode": lambda d: "".join(f"\\u{b:04x}" for b in d).encode(),
    "repr": lambda d: repr(d).encode(),
    "octal": lambda d: "".join(f"\\{b:03o}" for b in d).encode(),
    "html": lambda d: "".join(f"&#{b};" for b in d).encode(),
    "byte-list": lambda d: repr(list(d)).encode(),
    "java-bytes": lambda d: ("[" + ", ".join(str(b - 256 if b > 127 else b) for b in d)
                             + "]").encode(),
    "utf-16le": lambda d: d.decode("latin-1").encode("utf-16-le"),
    "utf-16be": lambda d: d.decode("latin-1").encode("utf-16-be"),
    "utf-32le": lambda d: d.decode("latin-1").encode("utf-32-le"),
    "utf-32be": lambda d: d.decode("latin-1").encode("utf-32-be"),
    "latin-1-as-utf-8": lambda d: d.decode("latin-1").encode("utf-8"),
    "gzip": lambda d: gzip.compress(d, mtime=0),
    "zlib": zlib.compress,
    "deflate": _deflate,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "reversed": lambda d: d[::-1],
}
"""Every encoding the oracle is tested against, by name."""

TEXT_SAFE = frozenset(name for name in ENCODERS if name not in {
    "gzip", "zlib", "deflate", "bz2", "xz", "lzma", "utf-16le", "utf-16be", "utf-32le",
    "utf-32be", "latin-1-as-utf-8", "raw", "reversed"})
"""Encodings whose output is printable ASCII whatever the input (fit for a log line)."""


def parse_chain(chain: str) -> list[str]:
    """``"base32+gzip"`` → ``["base32", "gzip"]``; an unknown name is an error naming it."""
    names = [n.strip() for n in chain.split("+") if n.strip()]
    if not names:
        raise OracleError("an encoding chain names at least one encoding", field="leak")
    for name in names:
        if name not in ENCODERS:
            raise OracleError(f"unknown encoding {name!r} (known: {', '.join(ENCODERS)})",
                              field="leak")
    return names


def encode(chain: str | list[str], value: bytes) -> bytes:
    """``value`` through the chain, innermost (last) first."""
    names = parse_chain(chain) if isinstance(chain, str) else chain
    for name in reversed(names):
        value = ENCODERS[name](value)
    return value
