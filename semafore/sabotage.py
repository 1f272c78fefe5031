"""TEST ONLY: named, deliberate product defects for the sabotage kill matrix (issue #11).

A scenario that passes against a correct relay and client proves something only if it
*fails* against a wrong one ("verdicts that can fail", issue #11). This module is the one
list of realistic defects a developer could ship — a relay that forgets its send ledger, a
client that keeps used message keys, a ratchet that never steps — each switched on in the real
code path by a minimal, marked check::

    if sabotage.active("relay.ledger_off"):
        ...  # the defect

The matrix runner (``semafore sim sabotage``, :mod:`simulator.sabotage_matrix`) runs the whole
scenario catalogue once per sabotage and records which scenarios turn red; a sabotage that no
scenario can see names the lower-tier tests (unit tests, vectors) that fail while it is on.
docs/sabotage.md has the catalogue as a table.

Switching is process-global and only through :func:`switched_on` (a context manager; it
validates names, nests and restores on exit). There is deliberately **no** environment
variable or setting that turns a sabotage on in the library: a product build can never be
switched into a defect from outside. Tests turn them on (``tests/conftest.py`` reads
``SEMAFORE_SABOTAGE`` for a lower-tier pytest session; the library never does). With
nothing switched on, :func:`active` is one frozenset membership test.

The catalogue by component (the component is who owns the decision that is wrong; a client
or protocol switch may sit in ``semafore/protocol`` code, marked ``# pragma: no mutate``):

- ``relay.*`` — the reference relay (``semafore/server``): queueing, fan-out, the send
  ledger, push and acks, the key directory, device removal, operational logs;
- ``client.*`` — the reference client (``semafore/client``) and the key and session
  management it does through the protocol code: prekeys, message keys, identities,
  attachments, what it tells the relay;
- ``protocol.*`` — the wire protocol itself (SPEC §2–§4): X3DH, the Double Ratchet, SMX1
  handling, resets, transactional decryption.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "CATALOGUE",
    "Component",
    "Sabotage",
    "UnknownSabotage",
    "active",
    "by_name",
    "current",
    "switched_on",
]


class Component(Enum):
    """Where a defect lives (the first dotted part of its name)."""

    RELAY = "relay"
    CLIENT = "client"
    PROTOCOL = "protocol"


@dataclass(frozen=True)
class Sabotage:
    """One deliberate defect: its dotted name, what it breaks, and what should catch it."""

    name: str  # "<component>.<defect>", e.g. "relay.ledger_off"
    component: Component
    description: str  # one sentence: the defect as a product bug
    catches: str  # which scenario(s)/assertion(s) should catch it, or "lower tier: ..."
    lower_tier: tuple[str, ...] = ()  # pytest node ids that fail while it is on


class UnknownSabotage(ValueError):
    """A name that is not in :data:`CATALOGUE`; ``field`` is always ``"sabotage"``."""

    field = "sabotage"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"sabotage: unknown sabotage {name!r} (known: {', '.join(sorted(_BY_NAME))})"
        )


def _s(name: str, description: str, catches: str, lower_tier: tuple[str, ...] = ()) -> Sabotage:
    return Sabotage(name, Component(name.split(".", 1)[0]), description, catches, lower_tier)


_GUARDS = "tests/sabotage/test_guards.py"
_VECTORS = "tests/vectors/test_vectors.py::test_verify_accepts_the_committed_vectors"

CATALOGUE: tuple[Sabotage, ...] = (
    # --- relay -------------------------------------------------------------------------------
    _s(
        "relay.ledger_off",
        "The relay queues every send without consulting its send ledger, so a retried send "
        "(lost answer, replayed request) is queued and delivered again.",
        "desync/lost-send-response, desync/duplicated-http-requests: only once they check "
        "duplicates_dropped == 0 (measured: both pass with it on; the clients drop the copies)",
        (f"{_GUARDS}::test_a_retried_send_is_queued_once",),
    ),
    _s(
        "relay.duplicate_delivery",
        "The relay's fan-out queues every envelope twice (two delivery ids), so each device "
        "is handed each message twice.",
        "any scenario that checks duplicates_dropped == 0 or one delivery proof per envelope "
        "(measured: desync/reorder passes with it on; the clients drop the copies); on local, "
        "desync/redis-primary-failover-during-delivery (measured: failover, duplicated)",
        (f"{_GUARDS}::test_each_envelope_is_queued_once_per_device",),
    ),
    _s(
        "relay.wrong_device",
        "The relay's fan-out is off by one: each envelope of a multi-device send is queued for "
        "the next device of the same user, which cannot decrypt it.",
        "threats/device-compromise-scope (measured: delivered_exactly_once), any scenario "
        "sending to a user with two devices",
    ),
    _s(
        "relay.logs_raw_ids",
        "The operational-log processor writes user, device, message and delivery ids raw "
        "instead of as 8-hex SHA-256 prefixes (seed §2.3, ADR-0019).",
        "threats/insider (measured: oracle_clean with identifiers: true)",
        ("tests/server/test_logging.py::test_a_whole_auth_flow_logs_no_raw_identifier",),
    ),
    _s(
        "relay.drops_sync_copies",
        "The relay accepts a send to the sender's own user (the sync copy to its other "
        "devices) but never queues it.",
        "desync/device-added-removed (measured: delivered_exactly_once of bob-synced on "
        "bob/tablet); every scenario with sync copies; on local, "
        "desync/redis-primary-failover-during-delivery (measured: failover, acked_lost)",
    ),
    _s(
        "relay.delete_on_push",
        "The relay deletes an envelope from the queue as soon as it is pushed on the "
        "WebSocket instead of when the device acks it, so a push lost on the way is lost.",
        "desync/message-loss (measured: delivered_exactly_once; dropped pushes are never "
        "re-sent); the restart and replica scenarios pass with it on (no push was in flight)",
        (f"{_GUARDS}::test_an_envelope_pushed_but_never_acked_stays_queued",),
    ),
    _s(
        "relay.queue_in_process_memory",
        "The relay keeps accepted envelopes in its own process memory instead of the shared "
        "store, so a restarted relay or another replica does not have them.",
        "desync/replica-killed-mid-delivery, desync/replica-paused-then-unpaused, "
        "desync/replica-rolling-restart (measured: delivered_exactly_once); "
        "desync/server-restart-mid-delivery passes with it on (every envelope was pushed live)",
    ),
    _s(
        "relay.removed_device_stays_registered",
        "Removing a device deletes its tokens and queue but not its registration and published "
        "keys: it stays in its user's recipient device set, so senders keep encrypting to it and "
        "are never told (no 409), and a reinstall under the same id meets the old identity "
        "(refused) instead of a fresh registration.",
        "desync/reinstall-new-identity (measured: delivered_exactly_once; the first message "
        "after the reinstall is encrypted on the old session and lost)",
    ),
    _s(
        "relay.ignores_stale_registration",
        "The relay's device-set check ignores registration ids, so a sender is never told "
        "(410) that a device was reinstalled and keeps encrypting to the old identity.",
        "desync/reinstall-new-identity (measured: delivered_exactly_once)",
    ),
    _s(
        "relay.opk_served_twice",
        "The key directory caches the first bundle it served for a device and hands that "
        "bundle's one-time prekey to every later initiator (the fresh one it claims is lost).",
        "desync/opk-exhaustion (measured: delivered_exactly_once; Dave's SMX1 names the OPK "
        "Carol's used up: UnknownPrekey)",
    ),
    _s(
        "relay.accepts_bad_spk_signature",
        "The relay stores a signed prekey without verifying its signature.",
        "lower tier: no scenario uploads a forged signed prekey (clients verify bundles too)",
        ("tests/server/test_keys.py::test_bad_spk_signature_is_rejected_and_nothing_stored",),
    ),
    # relay account plane (issue 13): each undoes one fix, caught by its threat scenario
    _s(
        "relay.test_otp_any_org",
        "In test mode the relay accepts the fixed test OTP for any organisation, not only "
        "the allow-listed test orgs (ADR-0164), so anyone logs in as a real org's user.",
        "threats/account-plane/test-otp-escape (attack_failed: the attacker logs in as the "
        "victim with the test OTP)",
    ),
    _s(
        "relay.enrol_without_consent",
        "An org admin who adds a user of another organisation makes them a member at once "
        "instead of inviting them, so that org can list, drain and message them.",
        "threats/account-plane/cross-org-enrolment (attack_failed: listed as a member, "
        "bundles claimed, a message queued), threats/account-plane/test-otp-escape (measured: "
        "the victim made a member of the attacker's test org)",
    ),
    _s(
        "relay.login_throttle_by_user",
        "The login throttle counts every request naming a user on the bare user id, from any "
        "address and for any org, so strangers lock the user out.",
        "threats/account-plane/stranger-lockout (attack_failed: the victim's own login is "
        "refused 429)",
    ),
    _s(
        "relay.otp_unlimited_guesses",
        "Wrong login codes are never counted: a pending code survives any number of guesses "
        "until it expires, with no backoff.",
        "threats/account-plane/otp-guessing (attack_failed: the right code still logs in "
        "after the wrong guesses)",
    ),
    _s(
        "relay.socket_cap_off",
        "The relay keeps every WebSocket a device opens (no per-device cap), so one token "
        "holds any number of sockets and their buffers.",
        "threats/account-plane/socket-amplification (attack_failed: every socket stays open)",
    ),
    _s(
        "relay.queue_quota_off",
        "Sends are not counted against the per-sender and per-recipient queue quotas, so one "
        "member fills another's queue without a 429.",
        "threats/account-plane/queue-flood (attack_failed: every flooding send accepted)",
    ),
    _s(
        "relay.opk_quota_per_requester",
        "OPK-claiming bundle fetches are limited only by the requester's key-directory rate "
        "(no per-pair or per-target quota), so one member drains a device's one-time prekeys.",
        "threats/account-plane/opk-drain (attack_failed: the target's OPK supply claimed)",
    ),
    _s(
        "relay.header_timeout_off",
        "The relay never times a request head, so connections trickling a head a byte at a "
        "time are held forever (slowloris).",
        "threats/account-plane/slowloris (attack_failed: the trickling connections are "
        "still held after the hold time)",
    ),
    # --- client ------------------------------------------------------------------------------
    _s(
        "client.skips_spk_signature",
        "The client starts a session from a bundle without verifying the signed prekey's "
        "signature, so a relay can substitute its own prekey.",
        "lower tier: no scenario has an active relay that forges bundles",
        (
            "tests/protocol/test_x3dh.py::test_signature_is_verified_before_any_dh",
            f"{_GUARDS}::test_a_forged_bundle_is_refused",
        ),
    ),
    _s(
        "client.reuses_gcm_nonce",
        "The client derives the SMX1 outer nonce from the session's base key, so every "
        "resent SMX1 of a session reuses one AES-GCM nonce under the same key.",
        "desync/reinstall-with-envelopes-in-flight (no_key_nonce_reuse: the resent SMX1 "
        "seal two envelopes under one key and nonce)",
        (f"{_GUARDS}::test_smx1_resends_never_repeat_a_nonce",),
    ),
    _s(
        "client.counter_nonce",
        "The client derives each DR_V1 nonce from the frame's position in its chain (N) instead "
        "of drawing it: harmless while a message key is never used twice, but a device restored "
        "from an older backup seals new messages under the same key and nonce.",
        "desync/restore-from-older-backup (no_key_nonce_reuse)",
    ),
    _s(
        "client.keep_used_message_keys",
        "The client keeps every message key after use (for 're-rendering'), so a seized "
        "device opens everything it already received.",
        "threats/device-compromise-forward-secrecy (measured: forward_secrecy), "
        "desync/duplication-replay (measured: decrypt_error; replays open, no DuplicateMessage)",
    ),
    _s(
        "client.keeps_used_opk",
        "The client never deletes a one-time prekey's private key after a bootstrap used it.",
        "lower tier: the device adversary reuses stored sessions and never re-runs X3DH",
        (f"{_GUARDS}::test_a_used_one_time_prekey_is_deleted",),
    ),
    _s(
        "client.accepts_beyond_max_skip",
        "The client skips any number of message keys for a frame far ahead in its chain "
        "(no MAX_SKIP bound, SPEC §3).",
        "desync/max-skip-exceeded (measured: decrypt_error TooManySkipped, not_delivered)",
        ("tests/protocol/test_ratchet.py::test_max_skip_in_the_current_chain",),
    ),
    _s(
        "client.logs_session_keys",
        "The client logs the receiving chain key of every frame it decrypts (debug output "
        "left in).",
        "lower tier: scenarios collect the relay's logs, not the client's",
        (f"{_GUARDS}::test_client_logs_carry_no_key_material",),
    ),
    _s(
        "client.ignores_identity_change",
        "The client silently re-pins a device whose identity keys changed: no "
        "identity_changed event, and no UntrustedIdentity under the strict policy.",
        "lower tier: desync/reinstall-new-identity would catch it with an assertion that "
        "Alice saw the identity change (identity_changes_seen stays 0)",
        (f"{_GUARDS}::test_an_identity_change_is_reported",),
    ),
    _s(
        "client.never_resends_smx1",
        "The client wraps only its first message in SMX1 and sends DR_V1 from the second on, "
        "before the peer ever replied (SPEC §2: keep sending SMX1 until a reply).",
        "lower tier: no scenario loses or reorders a first contact's first envelope",
        (
            "tests/client/test_client_relay.py::"
            "test_initiator_wraps_in_smx1_until_the_first_reply_then_sends_drv1",
            "tests/protocol/test_session_cipher.py::"
            "test_smx1_is_resent_until_the_first_reply_and_a_lost_first_message_is_recovered",
        ),
    ),
    _s(
        "client.uploads_plaintext_attachment",
        "The client uploads an attachment without encrypting it (the 'encrypt' step skipped), "
        "still sending a key in the message.",
        "threats/network-adversary (measured: oracle_clean on the wire, delivered_exactly_once), "
        "threats/server-compromise (the canary in the object store)",
    ),
    _s(
        "client.screenshot_carries_image",
        "A screenshot report uploads the screenshot image itself to the relay as evidence "
        "instead of only its SHA-256 (ADR-0159).",
        "lower tier: no scenario step reports a screenshot",
        (f"{_GUARDS}::test_a_screenshot_report_sends_only_the_hash",),
    ),
    _s(
        "client.deletes_previous_spk",
        "The client deletes the previous signed prekey's private key at rotation, so an SMX1 "
        "in flight across the rotation cannot open.",
        "desync/spk-rotation-in-flight (measured: delivered_exactly_once; in-flight is lost)",
    ),
    _s(
        "client.drops_skipped_keys",
        "The client does not store skipped message keys, so a frame that arrives after a later "
        "one of its chain can never be decrypted.",
        "desync/reorder (measured: delivered_exactly_once), desync/message-loss, "
        "threats/device-compromise-forward-secrecy (out-of-order frames are lost)",
    ),
    _s(
        "client.no_duplicate_detection",
        "The client does not remember received message ids, so the same message arriving in "
        "two different envelopes is shown twice.",
        "lower tier: in the scenarios every duplicate is the same frame, which the ratchet "
        "already refuses",
        (f"{_GUARDS}::test_a_message_id_is_shown_once",),
    ),
    _s(
        "client.tiebreak_broken",
        "When a peer's SMX1 arrives while the client has its own session with that device, "
        "the client keeps using its own (SPEC §4: the last one used wins), so both sides "
        "stay on different sessions.",
        "desync/simultaneous-initiation, desync/http-latency-and-reorder "
        "(measured: sessions_converge)",
        ("tests/protocol/test_session_cipher.py::test_simultaneous_initiation_converges",),
    ),
    _s(
        "client.ignores_409_missing",
        "On a 409 mismatched_devices the client drops the extra devices but ignores the "
        "missing ones, so it never encrypts to a newly added device and the send fails.",
        "desync/device-added-removed (measured: delivered_exactly_once; after-add and "
        "bob-synced never reach the tablet)",
        (
            "tests/client/test_client_relay.py::"
            "test_new_device_of_the_recipient_is_discovered_through_409_and_gets_the_next_message",
        ),
    ),
    _s(
        "client.same_envelope_for_all_devices",
        "The client encrypts a message once, for the recipient's first device, and sends "
        "that same envelope to every device of the user.",
        "threats/device-compromise-scope (measured: delivered_exactly_once; compromise_scope "
        "holds only because the thief's copy spends the key on bob/phone's copy first)",
    ),
    _s(
        "client.backs_up_state_to_relay",
        'The client backs up its serialized device state (keys and sessions, "SFD\\x01") '
        "unencrypted to the relay's attachment store whenever it publishes keys.",
        "threats/server-compromise, threats/network-adversary (measured: "
        "adversary_decrypts_nothing, the harvested state opens first-contact SMX1s; "
        "oracle_clean finds key material)",
    ),
    _s(
        "client.push_preview",
        "The client appends a preview of the message text to the message id the relay "
        "stores, logs (hashed), exports and pushes, for notification previews.",
        "threats/subpoena, threats/insider (measured: oracle_clean, the canary in the "
        "delivery-proof export), threats/server-compromise, threats/network-adversary",
    ),
    # --- protocol ----------------------------------------------------------------------------
    _s(
        "protocol.no_dh_ratchet_step",
        "After its first chain a side keeps sending on it and never starts a new chain with a "
        "fresh ratchet key (no DH ratchet step), so a stolen state follows every later message.",
        "threats/device-compromise-post-compromise-security (measured: post_compromise_security)",
        ("tests/protocol/test_ratchet.py::test_ping_pong_steps_the_dh_ratchet_every_message",),
    ),
    _s(
        "protocol.root_key_not_updated",
        "The DH ratchet step derives new chains from the initial root key and never updates "
        "the root key (SPEC §3 KDF_RK).",
        "lower tier: two sabotaged peers interoperate; the SPEC §6 vectors do not",
        (_VECTORS,),
    ),
    _s(
        "protocol.ad_not_bound",
        "DR_V1 frames are encrypted with only the header as associated data, without AD (the "
        "identities and addresses of SPEC §2 step 6).",
        "lower tier: two sabotaged peers interoperate; the SPEC §6 vectors do not",
        (_VECTORS, f"{_GUARDS}::test_a_frame_is_bound_to_its_session_ad"),
    ),
    _s(
        "protocol.replayed_smx1_new_session",
        "An SMX1 whose EK_A matches a stored session runs X3DH again instead of reusing that "
        "session (SPEC §4), so a replayed or resent SMX1 is treated as a new bootstrap.",
        "desync/replayed-smx1 (measured: decrypt_error, UnknownPrekey instead of "
        "DuplicateMessage); every first contact with more than one SMX1 before the reply",
        ("tests/protocol/test_session_cipher.py::test_replayed_smx1_fails",),
    ),
    _s(
        "protocol.x3dh_drops_dh1",
        "X3DH leaves DH1 = DH(IK_A, SPK_B) out of SK, so the initiator's identity key no longer "
        "authenticates the session (SPEC §2).",
        "lower tier: two sabotaged peers interoperate; the SPEC §6 vectors do not",
        (_VECTORS, f"{_GUARDS}::test_the_shared_key_covers_every_dh"),
    ),
    _s(
        "protocol.reset_ignores_ratchet_key",
        "A reset notice archives the current session whatever ratchet key it names, so a "
        "replayed or forged reset tears down a healthy session (SPEC §4).",
        "lower tier: no scenario replays or forges a reset notice",
        (
            "tests/protocol/test_session_cipher.py::test_reset_archives_only_for_the_current_sending_key",
        ),
    ),
    _s(
        "protocol.non_transactional_decrypt",
        "Decrypting a frame advances the receiving chain before the AEAD tag is checked, so a "
        "forged frame desynchronises the session.",
        "lower tier: no scenario injects forged frames",
        (
            "tests/protocol/test_ratchet.py::test_any_mutation_or_truncation_is_rejected_and_changes_nothing",
        ),
    ),
)

_BY_NAME: dict[str, Sabotage] = {s.name: s for s in CATALOGUE}


class _Switches:
    """The process-global set of switched-on sabotages (one attribute, swapped whole)."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on: frozenset[str] = frozenset()


_SWITCHES_ON = _Switches()


def by_name(name: str) -> Sabotage:
    """The catalogue entry called ``name``; :class:`UnknownSabotage` if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownSabotage(name) from None


def active(name: str) -> bool:
    """Whether the sabotage ``name`` is switched on in this process (one set lookup)."""
    return name in _SWITCHES_ON.on


def current() -> frozenset[str]:
    """Every sabotage switched on in this process right now."""
    return _SWITCHES_ON.on


@contextlib.contextmanager
def switched_on(*names: str) -> Iterator[None]:
    """Switch the named sabotages on for the ``with`` block (process-global; nests; the set
    active before is restored on exit, also on an exception). Every name is validated first:
    an unknown one raises :class:`UnknownSabotage` and switches nothing on."""
    for name in names:
        by_name(name)
    before = _SWITCHES_ON.on
    _SWITCHES_ON.on = before | frozenset(names)
    try:
        yield
    finally:
        _SWITCHES_ON.on = before
