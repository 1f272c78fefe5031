"""Snapshot/restore scenarios (issue #15 item 4): a device restored from an older backup, a
cloned device, a reinstall while envelopes are in flight. Each recovers within K messages
and never seals two envelopes under one AES-GCM (key, nonce) pair — and each fails when a
broken build also restores (or clones) the random source, or reuses the SMX1 nonce."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore import sabotage
from semafore.client import DeviceClient
from semafore.protocol import frame as drv1
from simulator import device_state
from simulator.executor import run_scenario
from simulator.nonce_reuse import find_reuse, key_and_nonce
from simulator.report.model import Outcome, Verdict
from simulator.scenario.loader import ScenarioError, load, loads

DESYNC = Path(__file__).resolve().parents[2] / "scenarios" / "desync"
RESTORE = DESYNC / "restore-from-older-backup.yaml"
CLONE = DESYNC / "cloned-device.yaml"
REINSTALL = DESYNC / "reinstall-with-envelopes-in-flight.yaml"


def _drv1(key: bytes, n: int, nonce: bytes, ciphertext: bytes) -> bytes:
    return drv1.encode_header(key, 0, n, nonce) + ciphertext


KEYS = st.binary(min_size=32, max_size=32)
NONCES = st.binary(min_size=12, max_size=12)
BODIES = st.binary(min_size=16, max_size=40)


@given(KEYS, st.integers(0, 2**16), NONCES, BODIES, BODIES)
def test_two_different_frames_under_one_key_and_nonce_are_a_reuse(
        key: bytes, n: int, nonce: bytes, one: bytes, other: bytes) -> None:
    first, second = _drv1(key, n, nonce, one), _drv1(key, n, nonce, other)
    examined, found = find_reuse([("a", "b:x", "m1", first), ("a", "b:x", "m2", second)])
    assert examined == 2
    assert len(found) == (0 if one == other else 1)  # the same bytes again seal nothing new


@given(KEYS, st.integers(0, 2**16), NONCES, NONCES, BODIES, BODIES)
def test_another_nonce_another_index_or_another_recipient_is_no_reuse(
        key: bytes, n: int, nonce: bytes, nonce2: bytes, one: bytes, other: bytes) -> None:
    base = ("a", "b:x", "m1", _drv1(key, n, nonce, one))
    if nonce2 != nonce:
        assert find_reuse([base, ("a", "b:x", "m2", _drv1(key, n, nonce2, other))])[1] == []
    assert find_reuse([base, ("a", "b:x", "m2", _drv1(key, n + 1, nonce, other))])[1] == []
    assert find_reuse([base, ("a", "b:y", "m2", _drv1(key, n, nonce, other))])[1] == []


def test_what_is_not_a_sealed_envelope_is_not_examined() -> None:
    assert key_and_nonce("b:x", b"SRS1" + bytes(40)) is None
    assert key_and_nonce("b:x", b"DRV1" + bytes(10)) is None  # truncated: nothing to compare
    assert find_reuse([("a", "b:x", "m", b"garbage")]) == (0, [])


@pytest.mark.parametrize("path", [RESTORE, CLONE, REINSTALL], ids=lambda p: p.stem)
def test_each_scenario_recovers_and_never_reuses_a_key_nonce_pair(path: Path) -> None:
    result = run_scenario(load(path))
    assert result.verdict is Verdict.PASS, [(a.kind, a.summary, a.evidence)
                                            for a in result.assertions]
    kinds = {a.kind for a in result.assertions}
    assert {"recovered_within", "no_key_nonce_reuse"} <= kinds


def _broken_build(monkeypatch: pytest.MonkeyPatch, *, whole_random_source: bool) -> None:
    """A broken build whose backup also carries the random source: a restore puts the old
    nonce counter back (the same nonces are drawn again), a clone copies the whole source
    (a disk image with the generator's state). The seeded test entropy stands in for it."""
    saved: dict[bytes, object] = {}
    real_take, real_put_back = device_state.take, device_state.put_back

    def take(client: DeviceClient) -> device_state.Backup:
        backup = real_take(client)
        saved[backup.state] = copy.deepcopy(client.entropy)
        return backup

    async def put_back(client: DeviceClient, backup: device_state.Backup, otp: str) -> None:
        await real_put_back(client, backup, otp)
        old = saved[backup.state]
        if whole_random_source:
            client.entropy = copy.deepcopy(old)  # type: ignore[assignment]
        else:  # only the nonce counter goes back
            counters = client.entropy._counters  # type: ignore[attr-defined]
            counters["nonce"] = old._counters["nonce"]  # type: ignore[attr-defined]

    monkeypatch.setattr(device_state, "take", take)
    monkeypatch.setattr(device_state, "put_back", put_back)


@pytest.mark.parametrize(("path", "whole"), [(RESTORE, False), (CLONE, True)],
                         ids=["restore-keeps-old-nonce-counter", "clone-copies-random-source"])
def test_a_build_that_restores_the_nonce_counter_fails(
        monkeypatch: pytest.MonkeyPatch, path: Path, whole: bool) -> None:
    _broken_build(monkeypatch, whole_random_source=whole)
    result = run_scenario(load(path))
    reuse = next(a for a in result.assertions if a.kind == "no_key_nonce_reuse")
    assert reuse.outcome is Outcome.VIOLATED
    assert any("DR_V1 message key" in e for e in reuse.evidence)
    assert result.verdict is Verdict.FAIL


def test_a_client_reusing_the_smx1_nonce_fails_the_reinstall_scenario() -> None:
    with sabotage.switched_on("client.reuses_gcm_nonce"):
        result = run_scenario(load(REINSTALL))
    reuse = next(a for a in result.assertions if a.kind == "no_key_nonce_reuse")
    assert reuse.outcome is Outcome.VIOLATED
    assert any(e.startswith("SMX1 SK") for e in reuse.evidence)


def test_recovery_that_costs_more_than_k_messages_fails() -> None:
    text = RESTORE.read_text().replace("after: a-more, exchanges: 7", "after: a-more, exchanges: 6")
    result = run_scenario(loads(text))
    recovered = next(a for a in result.assertions if a.kind == "recovered_within")
    assert recovered.outcome is Outcome.VIOLATED
    assert "a-recovered.2" in " ".join(recovered.evidence)


@pytest.mark.parametrize(("snippet", "where"), [
    ("restore: {device: alice:phone, from: nothing}", "from"),
    ("restore: {device: alice:phone, from: backup, onto: bob:phone}", "onto"),
])
def test_the_loader_names_a_bad_restore(snippet: str, where: str) -> None:
    text = RESTORE.read_text().replace("restore: {device: alice:phone, from: backup}", snippet)
    assert snippet in text  # the catalogue file still has the step this test rewrites
    with pytest.raises(ScenarioError, match=where):
        loads(text)
