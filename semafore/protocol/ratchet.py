"""The Double Ratchet state machine for DR_V1 (SPEC §3; Signal Double Ratchet §3.3–§3.5).

Explicit, serialisable state (vodozemac style) with randomness injected per call. Decryption
is transactional: every new value is computed in locals and committed only after the AEAD tag
verified, so a forged, truncated or replayed frame never advances or corrupts the session.
The hot paths call ``hmac.digest`` and ``AESGCM`` directly: this module is measured against
the bare primitive floor (benchmarks/bench_protocol.py).
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from semafore import sabotage
from semafore.protocol import frame as drv1
from semafore.protocol.entropy import Entropy
from semafore.protocol.errors import (
    DecryptionFailed,
    DuplicateMessage,
    MalformedState,
    NoSession,
    TooManySkipped,
)
from semafore.protocol.primitives import X25519KeyPair, hmac_digest, parse_x25519_public
from semafore.protocol.reader import StateReader
from semafore.protocol.secrets import drawn as report_drawn  # pragma: no mutate
from semafore.protocol.secrets import report as report_secret  # pragma: no mutate
from semafore.protocol.x3dh import root_key

MAX_SKIP = 1000
"""Most message keys one frame may make us skip in one receiving chain (SPEC §3)."""
MAX_SKIPPED_KEYS = 2000
"""Most skipped message keys kept per session, oldest evicted first (SPEC §3)."""
MAX_PREVIOUS_CHAINS = 5
"""Retired receiving chains remembered for duplicate detection (libsignal keeps 5)."""
MAX_COUNTER = 0xFFFFFFFF

RATCHET_INFO = b"SemaFore-DR-v1-ratchet"
MESSAGE_INFO = b"SemaFore-DR-v1-msg"
DIGEST_LABEL = b"SemaFore-session-digest-v1"
STATE_MAGIC = b"SFR"
STATE_VERSION = 1

_ZERO32 = bytes(32)
_RATCHET_INFO_1 = RATCHET_INFO + b"\x01"
_RATCHET_INFO_2 = RATCHET_INFO + b"\x02"
_MESSAGE_INFO_1 = MESSAGE_INFO + b"\x01"
_HEADER = struct.Struct(">4s32sII12s")
_MIN_FRAME = drv1.MIN_LENGTH
_COUNTS = struct.Struct(">III")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_digest = hmac_digest


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    """``HKDF(dh_out, salt = rk, "SemaFore-DR-v1-ratchet", 64)`` → (root key, chain key)."""
    prk = _digest(rk, dh_out, "sha256")
    t1 = _digest(prk, _RATCHET_INFO_1, "sha256")
    ck = _digest(prk, t1 + _RATCHET_INFO_2, "sha256")
    report_secret("root key", t1)  # pragma: no mutate
    report_secret("chain key", ck)  # pragma: no mutate
    return t1, ck


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """``mk = HMAC(ck, 0x01)``, ``ck' = HMAC(ck, 0x02)``."""
    return _digest(ck, b"\x01", "sha256"), _digest(ck, b"\x02", "sha256")


def message_key(mk: bytes) -> bytes:
    """The AEAD key: ``HKDF(mk, 0*32, "SemaFore-DR-v1-msg", 32)``."""
    key = _digest(_digest(_ZERO32, mk, "sha256"), _MESSAGE_INFO_1, "sha256")
    report_secret("AEAD key", key)  # pragma: no mutate
    return key


def _open(mk: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    key = _digest(_digest(_ZERO32, mk, "sha256"), _MESSAGE_INFO_1, "sha256")  # message_key
    report_secret("message key", mk)  # pragma: no mutate
    report_secret("AEAD key", key)  # pragma: no mutate
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionFailed("AES-256-GCM tag does not verify", field="tag") from None


def _enforces_max_skip() -> bool:
    """False only under the test-only sabotage ``client.accepts_beyond_max_skip``."""
    return not sabotage.active("client.accepts_beyond_max_skip")  # pragma: no mutate


class RatchetState:
    """One Double Ratchet session's whole state (SPEC §3).

    ``skipped`` maps ``(ratchet_key, n)`` to a message key, insertion-ordered so the oldest is
    evicted first; ``previous`` maps retired receiving ratchet keys to the number of messages
    of that chain we had accounted for, so a replay of an old chain is ``DuplicateMessage``
    rather than an expensive failed ratchet step.
    """

    __slots__ = (
        "_dhr_key",
        "ad",
        "ckr",
        "cks",
        "dhr",
        "dhs",
        "nr",
        "ns",
        "pn",
        "previous",
        "rk",
        "skipped",
    )

    def __init__(
        self,
        rk: bytes,
        ad: bytes,
        dhs: X25519KeyPair,
        dhr: bytes | None = None,
        cks: bytes | None = None,
        ckr: bytes | None = None,
        ns: int = 0,
        nr: int = 0,
        pn: int = 0,
        skipped: dict[tuple[bytes, int], bytes] | None = None,
        previous: dict[bytes, int] | None = None,
    ) -> None:
        self.rk = rk
        self.ad = ad
        self.dhs = dhs
        self.dhr = dhr
        # ``dhr`` parsed once: the receiving step and the deferred sending step share it.
        self._dhr_key: X25519PublicKey | None = None
        self.cks = cks
        self.ckr = ckr
        self.ns = ns
        self.nr = nr
        self.pn = pn
        self.skipped: dict[tuple[bytes, int], bytes] = {} if skipped is None else skipped
        self.previous: dict[bytes, int] = {} if previous is None else previous

    # -- construction (Signal §3.3) -------------------------------------------------------

    @classmethod
    def initiator(
        cls, sk: bytes, ad: bytes, remote_ratchet_key: bytes, entropy: Entropy
    ) -> RatchetState:
        """Alice: draws ``DHs`` ("ratchet_key") and derives her first sending chain."""
        dhs = X25519KeyPair.generate(entropy, "ratchet_key")
        rk, cks = kdf_rk(root_key(sk), dhs.dh(remote_ratchet_key))
        if sabotage.active("protocol.root_key_not_updated"):  # pragma: no mutate
            rk = root_key(sk)  # pragma: no mutate
        return cls(rk, ad, dhs, dhr=remote_ratchet_key, cks=cks)

    @classmethod
    def responder(cls, sk: bytes, ad: bytes, spk: X25519KeyPair) -> RatchetState:
        """Bob: his first ratchet key pair is his SPK; he sends only after receiving."""
        return cls(root_key(sk), ad, spk)

    # -- properties -----------------------------------------------------------------------

    @property
    def sending_ratchet_key(self) -> bytes:
        return self.dhs.public

    @property
    def can_send(self) -> bool:
        return self.cks is not None or self.dhr is not None

    def digest(self) -> bytes:
        """``SHA-256("SemaFore-session-digest-v1" || RK || AD)`` (SPEC §7)."""
        return hashlib.sha256(DIGEST_LABEL + self.rk + self.ad).digest()

    # -- encrypt --------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, entropy: Entropy) -> bytes:
        """One DR_V1 frame. The first frame after a receiving step first completes the DH
        ratchet (draws "ratchet_key"); every frame draws one "nonce". Nothing is committed
        unless every draw succeeds."""
        ck = self.cks
        if ck is None:
            if self.dhr is None:
                raise NoSession("no sending chain yet: the responder sends only after receiving")
            dhs = X25519KeyPair.from_private(entropy.random_bytes(32, "ratchet_key"))
            report_drawn("ratchet_key", dhs.private)  # pragma: no mutate
            remote = self._dhr_key or parse_x25519_public(self.dhr)
            rk, ck = kdf_rk(self.rk, dhs.dh_parsed(remote))
            nonce = entropy.random_bytes(12, "nonce")
            if sabotage.active("protocol.root_key_not_updated"):  # pragma: no mutate
                rk = self.rk  # pragma: no mutate
            self.dhs, self.rk = dhs, rk
        else:
            if self.ns >= MAX_COUNTER:
                raise NoSession("sending chain exhausted (N would overflow u32)", field="n")
            nonce = entropy.random_bytes(12, "nonce")
        if sabotage.active("client.counter_nonce"):  # pragma: no mutate
            nonce = self.ns.to_bytes(12, "big")  # pragma: no mutate
        mk = _digest(ck, b"\x01", "sha256")
        self.cks = _digest(ck, b"\x02", "sha256")
        report_secret("message key", mk)  # pragma: no mutate
        report_secret("chain key", self.cks)  # pragma: no mutate
        header = _HEADER.pack(b"DRV1", self.dhs.public, self.pn, self.ns, nonce)
        self.ns += 1
        aad = self.ad + header
        if sabotage.active("protocol.ad_not_bound"):  # pragma: no mutate
            aad = header  # pragma: no mutate
        return header + AESGCM(message_key(mk)).encrypt(nonce, plaintext, aad)

    # -- decrypt (Signal §3.5, transactional) ---------------------------------------------

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt one DR_V1 frame; on any error the state is exactly as before.

        Draws no randomness: the sending half of a DH step happens at the next encrypt.
        """
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) >= _MIN_FRAME and data[:4] == b"DRV1":  # hot path: one unpack, no object
            _, dh, pn, n, nonce = _HEADER.unpack_from(data)
            header, ciphertext = data[:56], data[56:]
        else:
            drv1.parse(data)  # raises the field-named MalformedEnvelope / UnsupportedVersion
            raise AssertionError("unreachable: parse accepts only frames of the hot path")
        aad = self.ad + header
        if sabotage.active("protocol.ad_not_bound"):  # pragma: no mutate
            aad = header  # pragma: no mutate
        skipped = self.skipped

        mk = skipped.get((dh, n))
        if mk is not None:
            plaintext = _open(mk, nonce, ciphertext, aad)
            if not sabotage.active("client.keep_used_message_keys"):  # pragma: no mutate
                del skipped[(dh, n)]
            return plaintext

        if dh == self.dhr:
            ck = self.ckr
            if ck is None:
                raise DecryptionFailed("no receiving chain for this key", field="ratchet_key")
            nr = self.nr
            if n < nr:
                raise DuplicateMessage(f"message {n} of this chain was already received", field="n")
            if n - nr > MAX_SKIP and _enforces_max_skip():
                raise TooManySkipped(f"frame skips {n - nr} keys (MAX_SKIP {MAX_SKIP})", field="n")
            new_skipped: list[tuple[tuple[bytes, int], bytes]] = []
            while nr < n:
                new_skipped.append(((dh, nr), _digest(ck, b"\x01", "sha256")))
                ck = _digest(ck, b"\x02", "sha256")
                nr += 1
            if sabotage.active("protocol.non_transactional_decrypt"):  # pragma: no mutate
                self.ckr, self.nr = _digest(ck, b"\x02", "sha256"), n + 1  # pragma: no mutate
            plaintext = _open(_digest(ck, b"\x01", "sha256"), nonce, ciphertext, aad)
            self.ckr = _digest(ck, b"\x02", "sha256")
            report_secret("chain key", self.ckr)  # pragma: no mutate
            self.nr = n + 1
            if sabotage.active("client.keep_used_message_keys"):  # pragma: no mutate
                new_skipped.append(((dh, n), _digest(ck, b"\x01", "sha256")))  # pragma: no mutate
            if new_skipped:
                self._store_skipped(new_skipped)
            return plaintext

        if dh in self.previous:
            if n < self.previous[dh]:
                raise DuplicateMessage("message of a retired chain already received", field="n")
            raise DecryptionFailed("frame beyond the end of a retired chain", field="n")

        return self._decrypt_new_chain(dh, pn, n, nonce, ciphertext, aad)

    def _decrypt_new_chain(
        self, dh: bytes, pn: int, n: int, nonce: bytes, ciphertext: bytes, aad: bytes
    ) -> bytes:
        if n > MAX_SKIP and _enforces_max_skip():
            raise TooManySkipped(f"frame skips {n} keys of a new chain", field="n")
        new_skipped: list[tuple[tuple[bytes, int], bytes]] = []
        old_dhr, old_ck, old_count = self.dhr, self.ckr, self.nr
        if old_ck is not None and old_dhr is not None and pn > old_count:
            if pn - old_count <= MAX_SKIP:  # else: those keys are lost, the step proceeds
                ck = old_ck
                for i in range(old_count, pn):
                    new_skipped.append(((old_dhr, i), _digest(ck, b"\x01", "sha256")))
                    ck = _digest(ck, b"\x02", "sha256")
            old_count = pn

        remote = parse_x25519_public(dh)
        rk, ck = kdf_rk(self.rk, self.dhs.dh_parsed(remote))
        for i in range(n):
            new_skipped.append(((dh, i), _digest(ck, b"\x01", "sha256")))
            ck = _digest(ck, b"\x02", "sha256")
        if sabotage.active("protocol.non_transactional_decrypt"):  # pragma: no mutate
            self.nr = n + 1  # pragma: no mutate (committed before the tag is checked)
        plaintext = _open(_digest(ck, b"\x01", "sha256"), nonce, ciphertext, aad)

        # Authenticated: commit. The sending half of the DH step (a fresh key pair) is
        # deferred to the next encrypt, so when both sides are quiescent they hold the same
        # root key and ``digest`` agrees (SPEC §7), and a burst of frames costs one step.
        if old_ck is not None and old_dhr is not None:
            previous = self.previous
            previous[old_dhr] = old_count
            if len(previous) > MAX_PREVIOUS_CHAINS:
                del previous[next(iter(previous))]
        kept = (self.cks, self.ns, self.pn)  # pragma: no mutate (for a test-only sabotage)
        if self.cks is not None:
            self.pn = self.ns
        self.ns = 0
        self.nr = n + 1
        self.dhr = dh
        self._dhr_key = remote
        self.ckr = _digest(ck, b"\x02", "sha256")
        report_secret("chain key", self.ckr)  # pragma: no mutate
        if not sabotage.active("protocol.root_key_not_updated"):  # pragma: no mutate
            self.rk = rk
        self.cks = None
        if sabotage.active("protocol.no_dh_ratchet_step"):  # pragma: no mutate
            self.cks, self.ns, self.pn = kept  # pragma: no mutate (the old chain goes on)
        if sabotage.active("client.keep_used_message_keys"):  # pragma: no mutate
            new_skipped.append(((dh, n), _digest(ck, b"\x01", "sha256")))  # pragma: no mutate
        if new_skipped:
            self._store_skipped(new_skipped)
        return plaintext

    def _store_skipped(self, items: list[tuple[tuple[bytes, int], bytes]]) -> None:
        if sabotage.active("client.drops_skipped_keys"):  # pragma: no mutate
            return  # pragma: no mutate
        skipped = self.skipped
        for _, skipped_key in items:  # pragma: no mutate
            report_secret("message key", skipped_key)  # pragma: no mutate
        skipped.update(items)
        excess = len(skipped) - MAX_SKIPPED_KEYS
        if excess > 0:
            for key in list(skipped)[:excess]:
                del skipped[key]

    # -- serialisation (SPEC §6: versioned, exact round trip) -----------------------------

    def serialize(self) -> bytes:
        """Versioned binary state; ``parse(serialize(s)).serialize() == serialize(s)``.

        Layout v1: "SFR" 0x01 | rk 32 | dhs.priv 32 | dhs.pub 32 | flags u8
        (1 dhr, 2 cks, 4 ckr) | [dhr 32] [cks 32] [ckr 32] | ns nr pn u32 | u16 len(ad) ad |
        u8 count (key 32, count u32)* previous | u16 count (key 32, n u32, mk 32)* skipped.
        """
        flags = 0
        parts = [STATE_MAGIC, b"\x01", self.rk, self.dhs.private, self.dhs.public, b""]
        if self.dhr is not None:
            flags |= 1
            parts.append(self.dhr)
        if self.cks is not None:
            flags |= 2
            parts.append(self.cks)
        if self.ckr is not None:
            flags |= 4
            parts.append(self.ckr)
        parts[5] = bytes((flags,))
        parts.append(_COUNTS.pack(self.ns, self.nr, self.pn))
        parts.append(_U16.pack(len(self.ad)))
        parts.append(self.ad)
        parts.append(bytes((len(self.previous),)))
        for key, count in self.previous.items():
            parts.append(key)
            parts.append(_U32.pack(count))
        parts.append(_U16.pack(len(self.skipped)))
        for (key, n), mk in self.skipped.items():
            parts.append(key)
            parts.append(_U32.pack(n))
            parts.append(mk)
        return b"".join(parts)

    @classmethod
    def parse(cls, data: bytes) -> RatchetState:
        """Load :meth:`serialize` output; ``MalformedState`` names the broken part."""
        state, end = cls.parse_from(bytes(data), 0)
        if end != len(data):
            raise MalformedState(f"{len(data) - end} trailing bytes", field="ratchet")
        return state

    @classmethod
    def parse_from(cls, data: bytes, offset: int) -> tuple[RatchetState, int]:
        reader = StateReader(data, offset)
        if reader.take(3, "magic") != STATE_MAGIC:
            raise MalformedState("not a ratchet state", field="magic")
        version = reader.u8("version")
        if version != STATE_VERSION:
            raise MalformedState(f"unknown ratchet state version {version}", field="version")
        rk = reader.take(32, "rk")
        dhs = X25519KeyPair(reader.take(32, "dhs.private"), reader.take(32, "dhs.public"))
        flags = reader.u8("flags")
        if flags & ~7:
            raise MalformedState(f"unknown flags {flags:#04x}", field="flags")
        dhr = reader.take(32, "dhr") if flags & 1 else None
        cks = reader.take(32, "cks") if flags & 2 else None
        ckr = reader.take(32, "ckr") if flags & 4 else None
        ns, nr, pn = _COUNTS.unpack(reader.take(12, "counters"))
        ad = reader.take(reader.u16("ad.length"), "ad")
        previous = {}
        for _ in range(reader.u8("previous.count")):
            key = reader.take(32, "previous.key")
            if key in previous:  # a repeat would silently collapse: not our own output
                raise MalformedState("repeated retired chain", field="previous.key")
            previous[key] = reader.u32("previous.n")
        skipped = {}
        for _ in range(reader.u16("skipped.count")):
            key = reader.take(32, "skipped.key")
            n = reader.u32("skipped.n")
            if (key, n) in skipped:
                raise MalformedState("repeated skipped key", field="skipped.n")
            skipped[(key, n)] = reader.take(32, "skipped.mk")
        if len(skipped) > MAX_SKIPPED_KEYS or len(previous) > MAX_PREVIOUS_CHAINS:
            raise MalformedState("more stored keys than the protocol allows", field="skipped")
        state = cls(rk, ad, dhs, dhr, cks, ckr, ns, nr, pn, skipped, previous)
        return state, reader.offset

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RatchetState) and self.serialize() == other.serialize()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RatchetState(dhs={self.dhs.public.hex()[:16]}…, ns={self.ns}, nr={self.nr}, "
            f"pn={self.pn}, skipped={len(self.skipped)})"
        )
