"""``semafore.protocol``'s public API is its ``__all__``, pinned here (issue #14 item 2).

Adding or removing a name is an API change: it is made in this list on purpose, never as the
side effect of a refactor. Beyond the list, the API must be enough on its own: two devices
bootstrap (X3DH, SMX1) and ratchet (DR_V1) using nothing but the package's top-level names.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

import semafore.protocol as api

PUBLIC_API = {
    # device addresses, keys and prekey bundles (SPEC §1, §2 step 6, §3)
    "DeviceAddress", "AddressError",
    "DeviceKeys", "IdentityKeys", "SignedPrekey", "OneTimePrekey", "PreKeyBundle",
    "PublicSignedPrekey", "PublicOneTimePrekey", "bundle_from_dict", "bundle_to_dict",
    "device_address", "parse_device_keys", "serialize_device_keys", "verify_spk",
    # sessions and the session cipher (SPEC §2, §4)
    "Session", "SessionRecord", "initiate_session", "encrypt", "decrypt",
    "reset_for_undecryptable", "handle_reset", "is_drv1", "is_smx1",
    # identity trust (seed §4.3)
    "IdentityStore", "RemoteIdentity",
    # entropy
    "Entropy", "EntropyExhausted", "SeededEntropy", "SystemEntropy",
    # SPEC §5 errors
    "CANONICAL_ERRORS", "ProtocolError", "MalformedEnvelope", "UnsupportedVersion",
    "InvalidSignature", "InvalidKey", "DecryptionFailed", "DuplicateMessage", "TooManySkipped",
    "UnknownPrekey", "UntrustedIdentity", "NoSession", "Unsupported", "MalformedState",
}


def test_all_is_the_pinned_public_api() -> None:
    assert set(api.__all__) == PUBLIC_API
    assert len(api.__all__) == len(PUBLIC_API), "a name is listed twice in __all__"


def test_every_public_name_is_the_submodule_object_it_re_exports() -> None:
    for name in api.__all__:
        value = getattr(api, name)
        owner = inspect.getmodule(value) if not isinstance(value, dict) else None
        if owner is not None:
            assert owner.__name__.startswith("semafore.protocol."), name
            assert getattr(importlib.import_module(owner.__name__), name) is value


def test_star_import_gives_exactly_the_public_api() -> None:
    namespace: dict[str, object] = {}
    exec("from semafore.protocol import *", namespace)  # the star import under test
    assert {k for k in namespace if k != "__builtins__"} == PUBLIC_API


def test_every_spec_error_name_is_exported() -> None:
    exported = {n: getattr(api, n) for n in api.__all__}
    for name, error in api.CANONICAL_ERRORS.items():
        assert exported.get(name) is error, f"SPEC §5 error {name} is not exported"


def test_two_devices_talk_through_the_public_api_alone() -> None:
    """X3DH bootstrap, the SMX1 resent until the first reply, then DR_V1 both ways."""
    alice_keys = api.DeviceKeys.generate(api.SeededEntropy("alice"), opk_count=1)
    bob_keys = api.DeviceKeys.generate(api.SeededEntropy("bob"), opk_count=1)
    alice, bob = api.device_address("alice", "phone"), api.device_address("bob", "phone")
    entropy = api.SeededEntropy("traffic")
    opk = next(iter(bob_keys.opks))
    bundle = api.bundle_from_dict(
        api.bundle_to_dict(bob_keys.bundle("bob", "phone", opk), bytes.hex), bytes.fromhex)
    at_alice, at_bob = api.SessionRecord(), api.SessionRecord()
    at_alice.install(api.initiate_session(alice_keys.identity, alice, bundle, entropy))

    def to_bob(envelope: bytes) -> bytes:
        return api.decrypt(at_bob, bob_keys, bob, alice_keys.identity.ik.public,
                           alice_keys.identity.sik.public, alice, envelope)

    def to_alice(envelope: bytes) -> bytes:
        return api.decrypt(at_alice, alice_keys, alice, bob_keys.identity.ik.public,
                           bob_keys.identity.sik.public, bob, envelope)

    first, again = (api.encrypt(at_alice, m, entropy) for m in (b"hello", b"still there?"))
    assert api.is_smx1(first) and api.is_smx1(again)
    assert to_bob(first) == b"hello" and to_bob(again) == b"still there?"
    reply = api.encrypt(at_bob, b"yes", entropy)
    assert api.is_drv1(reply) and to_alice(reply) == b"yes"
    steady = api.encrypt(at_alice, b"good", entropy)
    assert api.is_drv1(steady) and to_bob(steady) == b"good"
    with pytest.raises(api.DuplicateMessage):
        to_bob(steady)
