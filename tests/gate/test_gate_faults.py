"""Deliberately broken adapters: the gate names each failing case and the kind of failure.

The broken adapters live in ``tests/adapters/faulty_adapter.py`` (the reference adapter with
one injected bug or process fault).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from semafore.gate.cases import GateCase
from semafore.gate.config import GateConfig
from semafore.gate.runner import ImplReport, run_gate
from semafore.gate.verdict import Verdict

from .conftest import faulty


def run(
    gate_cases: list[GateCase], fault: str, *extra: str | Path, timeout: float = 20.0
) -> ImplReport:
    report = run_gate([faulty(fault, fault, *extra)], gate_cases, GateConfig(), timeout_s=timeout)
    assert not report.passed
    return report.impls[0]


def failing(impl: ImplReport) -> dict[str, Verdict]:
    return {r.case_id: r.verdict for r in impl.results if r.verdict is not Verdict.PASS}


def dr_paths(cases: list[GateCase]) -> set[str]:
    return {c.full_id for c in cases if c.file == "dr-v1-interop" and not c.negative}


def test_flipped_ciphertext_byte_fails_every_path_at_its_first_encrypt(
    gate_cases: list[GateCase],
) -> None:
    impl = run(gate_cases, "flip-ciphertext")

    assert failing(impl) == dict.fromkeys(dr_paths(gate_cases), Verdict.FAIL)
    for result in impl.results:
        if result.verdict is Verdict.FAIL:
            assert result.op == "dr.encrypt"
            assert "field 'frame' differs" in result.detail
            assert result.expected != result.actual


@pytest.mark.cites("SPEC §2 r3", "ADR-0169")
def test_wrong_hkdf_info_fails_every_x3dh_derivation(gate_cases: list[GateCase]) -> None:
    impl = run(gate_cases, "wrong-hkdf-info")

    positives = {c.full_id for c in gate_cases if c.file == "x3dh-prekey-v1" and not c.negative}
    assert failing(impl) == dict.fromkeys(positives, Verdict.FAIL)
    for result in impl.results:
        if result.verdict is Verdict.FAIL:
            assert result.op == "x3dh.initiate"
            assert "field 'sk' differs" in result.detail


@pytest.mark.cites("SPEC §2 r1")
def test_skipped_signature_check_fails_exactly_the_bad_signature_negatives(
    gate_cases: list[GateCase],
) -> None:
    impl = run(gate_cases, "skip-signature-check")

    failures = failing(impl)
    assert set(failures) == {
        "x3dh-prekey-v1:sig-flipped",
        "x3dh-prekey-v1:sig-s-not-reduced",
        "x3dh-prekey-v1:sig-key-id-relabelled",
        "x3dh-prekey-v1:sig-ik-substituted",
        "x3dh-prekey-v1:sig-spk-substituted",
        "x3dh-prekey-v1:sig-wrong-signer",
        "x3dh-prekey-v1:sig-truncated",
    }
    assert set(failures.values()) == {Verdict.FAIL}
    for result in impl.results:
        if result.verdict is Verdict.FAIL:
            assert "must fail with InvalidSignature" in result.detail


def test_crash_mid_run_is_one_crash_verdict_and_the_adapter_restarts(
    gate_cases: list[GateCase], tmp_path: Path
) -> None:
    impl = run(gate_cases, "crash", "--op", "dr.decrypt", "--once", tmp_path / "fired")

    assert failing(impl) == {"dr-v1-interop:in-order": Verdict.CRASH}
    crashed = next(r for r in impl.results if r.verdict is Verdict.CRASH)
    assert crashed.op == "dr.decrypt"
    assert "exit status 3" in crashed.detail
    assert "simulated crash" in crashed.detail  # the stderr tail names the reason
    assert impl.starts == 2


def test_hang_is_a_timeout_and_the_gate_moves_on(
    gate_cases: list[GateCase], tmp_path: Path
) -> None:
    x3dh_only = [case for case in gate_cases if case.file == "x3dh-prekey-v1"]  # short cases
    impl = run(
        x3dh_only,
        "hang",
        "--op",
        "x3dh.respond",
        "--at",
        "2",
        "--once",
        tmp_path / "f",
        timeout=1.5,
    )

    assert failing(impl) == {"x3dh-prekey-v1:no-opk": Verdict.TIMEOUT}
    hung = next(r for r in impl.results if r.verdict is Verdict.TIMEOUT)
    assert hung.op == "x3dh.respond"
    assert "killed" in hung.detail
    assert impl.starts == 2


def test_garbage_output_is_a_protocol_verdict(gate_cases: list[GateCase], tmp_path: Path) -> None:
    impl = run(gate_cases, "garbage", "--op", "smx1.parse", "--once", tmp_path / "f")

    assert failing(impl) == {"x3dh-prekey-v1:opk-ascii": Verdict.PROTOCOL}
    result = next(r for r in impl.results if r.verdict is Verdict.PROTOCOL)
    assert "garbage on stdout" in result.detail
    assert "Segmentation fault" in result.detail
    assert impl.starts == 2


def test_wrong_id_is_a_protocol_verdict(gate_cases: list[GateCase], tmp_path: Path) -> None:
    impl = run(gate_cases, "wrong-id", "--op", "dr.init", "--at", "3", "--once", tmp_path / "f")

    # dr.init is sent twice per path: the third is the first of the second path (ping-pong)
    assert failing(impl) == {"dr-v1-interop:ping-pong": Verdict.PROTOCOL}
    result = next(r for r in impl.results if r.verdict is Verdict.PROTOCOL)
    assert "wrong id" in result.detail


@pytest.mark.cites("SPEC §7 r3")
def test_unsupported_operations_are_reported_never_passed(gate_cases: list[GateCase]) -> None:
    impl = run(gate_cases, "no-dr")

    assert failing(impl) == dict.fromkeys(dr_paths(gate_cases), Verdict.UNSUPPORTED)
    assert all("Unsupported" in r.detail for r in impl.results if r.verdict.is_failure)


def test_a_persistently_hanging_adapter_costs_a_few_timeouts_not_one_per_case(
    gate_cases: list[GateCase],
) -> None:
    impl = run(gate_cases, "hang", timeout=0.5)  # hangs on its very first request, always

    verdicts = [r.verdict for r in impl.results]
    assert set(verdicts) == {Verdict.TIMEOUT}
    assert impl.capabilities is None
    assert impl.capabilities_error is not None
    not_run = [r for r in impl.results if r.detail.startswith("not run")]
    assert len(not_run) == len(gate_cases) - 3
    assert impl.starts == 4  # capabilities + three cases, then the gate stops trying
