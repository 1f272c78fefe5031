"""Adversaries that *try*: decryption attempts with what a compromise yields (seed §1.1, §1.2).

A single-device compromise yields that device's whole persisted state at one moment
(:meth:`semafore.client.Device.serialize`). :class:`DeviceAdversary` loads it and replays every
captured envelope of the run in send order, the way an attacker holding a wire capture would:

- **inbound** — envelopes to any device are fed to the stolen device's ``decrypt`` (its copy
  evolves, so it keeps up with a chain for as long as the real ratchet lets it); only
  envelopes addressed to the compromised device can open;
- **outbound** — envelopes the compromised device sent are opened with the stolen *sending*
  chain key while the device keeps that chain (until its next DH ratchet step).

Nothing here is simulated: the attempts run the real protocol code on the real bytes.
Relay-side adversaries (server, network, insider, subpoena, database) hold no private keys;
:func:`harvest_states` still looks for anything in their view that parses as persisted
device or ratchet state (the way key material would leak), and uses it if found.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from semafore.client.content import decode
from semafore.client.device import Device
from semafore.client.errors import ClientError
from semafore.protocol import smx1
from semafore.protocol.errors import ProtocolError
from semafore.protocol.frame import is_smx1
from semafore.protocol.frame import parse as parse_frame
from semafore.protocol.ratchet import kdf_ck, message_key


@dataclass(frozen=True)
class CapturedEnvelope:
    """One envelope as it crossed the wire, with the scenario-level facts the report needs."""

    seq: int
    sender: str  # "user:device"
    recipient: str  # "user:device"
    label: str
    message_id: str
    body: bytes
    sent_at_ms: float


@dataclass
class Attempt:
    envelope: CapturedEnvelope
    direction: str  # "inbound" | "outbound" | "third-party"
    plaintext: bytes | None = None

    @property
    def decrypted(self) -> bool:
        return self.plaintext is not None


@dataclass
class DeviceAdversary:
    """Holds one device's stolen state; :meth:`attack` tries every captured envelope."""

    address: str
    state: bytes
    identities: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)

    def attack(self, envelopes: Iterable[CapturedEnvelope]) -> list[Attempt]:
        device = Device.parse(self.state)
        outbound_view = Device.parse(self.state)  # the sending chains as stolen, never advanced
        for address, (ik, sik) in self.identities.items():
            if address not in device.identities.trusted:  # public keys: the relay hands them out
                with contextlib.suppress(ProtocolError):
                    device.trust(address, ik, sik, 0.0)
        opened: dict[bytes, bytes] = {}  # ciphertext -> plaintext already recovered
        for env in sorted(envelopes, key=lambda e: e.seq):
            if env.body in opened:
                # the very bytes were opened already (e.g. one envelope copied to several
                # devices): the attacker holds that plaintext, whoever it was addressed to
                direction = ("outbound" if env.sender == self.address else "inbound"
                             if env.recipient == self.address else "third-party")
                self.attempts.append(Attempt(env, direction, opened[env.body]))
                continue
            if env.sender == self.address:
                attempt = Attempt(env, "outbound", _open_outbound(outbound_view, env))
            else:
                direction = "inbound" if env.recipient == self.address else "third-party"
                plaintext = None
                with contextlib.suppress(ProtocolError, ClientError):
                    plaintext = device.decrypt(env.sender, env.body)
                attempt = Attempt(env, direction, plaintext)
            if attempt.plaintext is not None:
                opened[env.body] = attempt.plaintext
            self.attempts.append(attempt)
        return self.attempts


def _open_outbound(device: Device, env: CapturedEnvelope) -> bytes | None:
    """Decrypt a frame the device sent, from its stolen sending chain (no state change)."""
    record = device.sessions.get(env.recipient)
    if record is None:
        return None
    for session in record.sessions():
        body = env.body
        try:
            if is_smx1(body):
                parsed = smx1.parse(body)
                if session.bootstrap is None or session.base_key != parsed.ephemeral:
                    continue
                body = smx1.open_envelope(parsed, session.bootstrap.sk, session.ratchet.ad)
            frame = parse_frame(body)
        except ProtocolError:
            continue
        ratchet = session.ratchet
        if ratchet.cks is None or frame.ratchet_key != ratchet.dhs.public or frame.n < ratchet.ns:
            continue
        ck = ratchet.cks
        for _ in range(frame.n - ratchet.ns):
            ck = kdf_ck(ck)[1]
        mk = kdf_ck(ck)[0]
        try:
            return AESGCM(message_key(mk)).decrypt(
                frame.nonce, frame.ciphertext, ratchet.ad + frame.header
            )
        except InvalidTag:
            continue
    return None


def content_body(plaintext: bytes) -> bytes:
    """The message body inside a decrypted plaintext (where the canary lives)."""
    try:
        return decode(plaintext).body
    except ClientError:
        return plaintext


DEVICE_STATE_MAGIC = b"SFD\x01"


def harvest_states(chunks: Iterable[bytes]) -> list[bytes]:
    """Anything in a relay-side view that parses as a persisted device state."""
    found = []
    for data in chunks:
        at = data.find(DEVICE_STATE_MAGIC)
        while at != -1:
            for end in range(len(data), at, -1):
                try:
                    Device.parse(data[at:end])
                except ClientError:
                    continue
                found.append(data[at:end])
                break
            at = data.find(DEVICE_STATE_MAGIC, at + 1)
    return found
