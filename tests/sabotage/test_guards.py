"""Properties no scenario of the catalogue can see, stated as specifications (issue #11).

Each is the lower tier of a sabotage in :mod:`semafore.sabotage` (its ``lower_tier``): the
test passes on the product and fails while that sabotage is on. The probes are shared with
the switch tests (tests/sabotage/probes.py)."""

from __future__ import annotations

from tests.sabotage import probes


def test_a_retried_send_is_queued_once() -> None:
    """docs/server.md "Messages": a retry of an accepted send is answered from the ledger."""
    assert probes.PROBES["relay.ledger_off"].observe() == 1


def test_each_envelope_is_queued_once_per_device() -> None:
    assert probes.PROBES["relay.duplicate_delivery"].observe() == 1


def test_an_envelope_pushed_but_never_acked_stays_queued() -> None:
    """docs/server.md "Delivery": only an ack deletes an envelope."""
    assert probes.PROBES["relay.delete_on_push"].observe() == 1


def test_a_forged_bundle_is_refused() -> None:
    """SPEC §2 r1: the SPK signature is verified before the session starts."""
    assert probes.forged_bundle_accepted() == "InvalidSignature"


def test_smx1_resends_never_repeat_a_nonce() -> None:
    """AES-GCM under one SK (SPEC §2) needs a fresh nonce for every SMX1 of the session."""
    assert probes.smx1_nonces_repeat() is False


def test_a_used_one_time_prekey_is_deleted() -> None:
    """SPEC §2: an OPK's private key is deleted once its bootstrap authenticated."""
    assert probes.used_opk_still_on_device() is False


def test_client_logs_carry_no_key_material() -> None:
    assert probes.PROBES["client.logs_session_keys"].observe() is False


def test_an_identity_change_is_reported() -> None:
    """SPEC §2 (TOFU): a changed identity is recorded and reported, never silently re-pinned."""
    assert probes.identity_change_reported() == (True, 1)


def test_a_screenshot_report_sends_only_the_hash() -> None:
    """ADR-0159: only the screenshot's SHA-256 and message ids leave the device."""
    assert probes.PROBES["client.screenshot_carries_image"].observe() is False


def test_a_message_id_is_shown_once() -> None:
    """The client drops a second copy of a message id, whatever envelope carried it."""
    assert probes.PROBES["client.no_duplicate_detection"].observe() == 1


def test_a_frame_is_bound_to_its_session_ad() -> None:
    """SPEC §3: DR_V1 frames authenticate AD || header; another session's AD fails."""
    assert probes.frame_opens_under_another_ad() == "DecryptionFailed"


def test_the_shared_key_covers_every_dh() -> None:
    """SPEC §2: SK = HKDF(0xFF*32 || DH1 || DH2 || DH3 [|| DH4], ...), DH1 included."""
    assert probes.sk_covers_every_dh() is True
