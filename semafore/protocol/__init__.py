"""The SemaFore protocol (SPEC §1-§7): X3DH bootstrap (SMX1) and the Double Ratchet (DR_V1).

This is the lowest layer of the library (docs/architecture.md "Layers"): it imports nothing of
``semafore`` but the :mod:`semafore.sabotage` switches, and everything else builds on it.
``__all__`` is its public API, the names a messenger client needs (issue #14 item 2, in the
manner of httpx's ``__all__`` and libsignal's ``lib.rs``): device addresses, per-device keys
and prekey bundles (SPEC §1, §2 step 6, §3), the session cipher that encrypts to and decrypts
from one remote device across its sessions (SPEC §2, §4), the identity trust store (seed
§4.3), entropy sources (seeded runs are replayable), envelope-kind detection, and the SPEC §5
errors with their canonical names. The list is pinned by
``tests/protocol/test_public_api.py``: adding or removing a name is an API change, made there
on purpose.

The submodules (:mod:`~semafore.protocol.ratchet`, :mod:`~semafore.protocol.x3dh`,
:mod:`~semafore.protocol.smx1`, :mod:`~semafore.protocol.primitives`, ...) stay importable
for the vectors, the gate and the tests, which check the KDF chains and wire layouts
byte by byte; they are not part of the API a client programs against.
"""

from semafore.protocol.address import AddressError, DeviceAddress
from semafore.protocol.entropy import Entropy, EntropyExhausted, SeededEntropy, SystemEntropy
from semafore.protocol.errors import (
    CANONICAL_ERRORS,
    DecryptionFailed,
    DuplicateMessage,
    InvalidKey,
    InvalidSignature,
    MalformedEnvelope,
    MalformedState,
    NoSession,
    ProtocolError,
    TooManySkipped,
    UnknownPrekey,
    Unsupported,
    UnsupportedVersion,
    UntrustedIdentity,
)
from semafore.protocol.frame import is_drv1, is_smx1
from semafore.protocol.identity import IdentityStore, RemoteIdentity
from semafore.protocol.keys import (
    DeviceKeys,
    IdentityKeys,
    OneTimePrekey,
    PreKeyBundle,
    PublicOneTimePrekey,
    PublicSignedPrekey,
    SignedPrekey,
    bundle_from_dict,
    bundle_to_dict,
    device_address,
    parse_device_keys,
    serialize_device_keys,
    verify_spk,
)
from semafore.protocol.session import Session, SessionRecord
from semafore.protocol.session_cipher import (
    decrypt,
    encrypt,
    handle_reset,
    initiate_session,
    reset_for_undecryptable,
)

__all__ = [
    "CANONICAL_ERRORS",
    "AddressError",
    "DecryptionFailed",
    "DeviceAddress",
    "DeviceKeys",
    "DuplicateMessage",
    "Entropy",
    "EntropyExhausted",
    "IdentityKeys",
    "IdentityStore",
    "InvalidKey",
    "InvalidSignature",
    "MalformedEnvelope",
    "MalformedState",
    "NoSession",
    "OneTimePrekey",
    "PreKeyBundle",
    "ProtocolError",
    "PublicOneTimePrekey",
    "PublicSignedPrekey",
    "RemoteIdentity",
    "SeededEntropy",
    "Session",
    "SessionRecord",
    "SignedPrekey",
    "SystemEntropy",
    "TooManySkipped",
    "UnknownPrekey",
    "Unsupported",
    "UnsupportedVersion",
    "UntrustedIdentity",
    "bundle_from_dict",
    "bundle_to_dict",
    "decrypt",
    "device_address",
    "encrypt",
    "handle_reset",
    "initiate_session",
    "is_drv1",
    "is_smx1",
    "parse_device_keys",
    "reset_for_undecryptable",
    "serialize_device_keys",
    "verify_spk",
]
