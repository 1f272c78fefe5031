"""The protocol benchmark runs end to end and yields finite figures (no timing assertions).

Speed is judged by ``benchmarks/bench_protocol.py`` itself; this only proves the command
works, every contender computes the right thing, and the floor really is SPEC §3 (a frame
the floor seals opens in our ratchet).
"""

from __future__ import annotations

import math
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from benchmarks import bench_protocol, floor
from benchmarks.timing import SMOKE
from semafore.protocol.entropy import SystemEntropy
from semafore.protocol.primitives import X25519KeyPair, hkdf
from semafore.protocol.ratchet import RatchetState


def test_every_step_yields_a_finite_figure() -> None:
    report = bench_protocol.run(SMOKE)
    assert report.timings, "nothing was measured"
    for key, timing in report.timings.items():
        assert math.isfinite(float(timing["best_us"])) and timing["best_us"] > 0, key
        assert math.isfinite(float(timing["median_us"])), key
    for case in (bench_protocol.ONE_WAY, bench_protocol.PING_PONG, bench_protocol.X3DH):
        assert report.figures[case][bench_protocol.FLOOR] > 0
        assert report.floor_hkdf[case] in {f.name for f in floor.HKDF_FLAVOURS}
    for target in report.targets:
        assert target["status"] in {"PASS", "MISS", "n/a"}
        if target["status"] != "n/a":
            assert math.isfinite(target["value"])


@pytest.mark.parametrize("flavour", floor.HKDF_FLAVOURS, ids=lambda f: f.name)
def test_floor_hkdf_flavours_are_rfc5869(flavour: floor.HkdfFlavour) -> None:
    ikm, salt, info = os.urandom(32), os.urandom(32), b"SemaFore-DR-v1-ratchet"
    assert flavour.hkdf32(ikm, salt, info) == hkdf(ikm, salt, info, 32)
    assert flavour.hkdf64(ikm, salt, info) == hkdf(ikm, salt, info, 64)


@pytest.mark.parametrize("flavour", floor.HKDF_FLAVOURS, ids=lambda f: f.name)
def test_floor_ping_pong_round_trips(flavour: floor.HkdfFlavour) -> None:
    alice, bob = floor.floor_pair(os.urandom(32), X25519PrivateKey.generate(), flavour)
    step = floor.pingpong_step(alice, bob, b"x" * 256, b"ad", flavour)
    for _ in range(4):
        assert step() == b"x" * 256


def test_floor_frames_open_in_our_ratchet() -> None:
    """The floor composes exactly SPEC §3: our responder decrypts what the floor seals."""
    entropy = SystemEntropy()
    sk, ad = os.urandom(32), os.urandom(100)
    spk = X25519KeyPair.generate(entropy, "spk")
    alice, _ = floor.floor_pair(
        sk, X25519PrivateKey.from_private_bytes(spk.private), floor.HKDF_HMAC
    )
    bob = RatchetState.responder(sk, ad, spk)
    for index in range(3):
        frame = floor.floor_seal(alice, b"message %d" % index, ad, floor.HKDF_HMAC)
        assert bob.decrypt(frame) == b"message %d" % index


def test_floor_x3dh_agrees() -> None:
    step = floor.x3dh_step(floor.x3dh_inputs(), floor.HKDF_HMAC)
    assert len(step()) == 32
