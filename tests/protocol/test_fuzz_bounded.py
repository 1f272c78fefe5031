"""The fuzz harness (``python -m semafore.fuzz``): seeds are deep, findings fail the run.

The bounded run is the CI tier of the issue's fuzz target: 20k coverage-guided executions
over every parser and decrypt path must end clean. The canary target proves the pipeline is
not blind: a non-``ProtocolError`` exception fails the run and leaves a reproducer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from semafore.fuzz import CANARY, TARGET_NAMES, FuzzFinding, Harness

REPO_ROOT = Path(__file__).resolve().parents[2]
BOUNDED_RUNS = 20_000


def _fuzz(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    summary = tmp_path / "summary.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "semafore.fuzz",
            "--artifacts",
            str(tmp_path / "artifacts"),
            "--json",
            str(summary),
            *args,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return completed, json.loads(summary.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def harness() -> Harness:
    return Harness.build()


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_every_seed_runs_clean(harness: Harness, target: str) -> None:
    for seed in harness.seeds[target]:
        harness.one_input(target, seed)
    assert sum(harness.outcomes[target].values()) == len(harness.seeds[target])


@pytest.mark.parametrize(
    ("target", "accepted"),
    [
        ("smx1", {"ok"}),
        ("drv1", {"ok"}),
        ("ratchet", {"ok"}),
        ("session", {"ok", "reset-archived"}),
        ("state", {"ok:ratchet", "ok:record", "ok:device_keys"}),
    ],
)
def test_seeds_start_deep_inside_the_formats(
    harness: Harness, target: str, accepted: set[str]
) -> None:
    """Valid seeds get past every check (the fuzzer mutates from there)."""
    outcomes = {harness.targets[target](seed) for seed in harness.seeds[target]}
    assert outcomes & accepted == accepted


def test_all_dispatches_on_the_first_byte(harness: Harness) -> None:
    seeds = harness.seeds_for("all")
    assert len(seeds) == sum(len(harness.seeds[name]) for name in TARGET_NAMES)
    before = {name: sum(harness.outcomes[name].values()) for name in TARGET_NAMES}
    for seed in seeds:
        harness.one_input("all", seed)
    for name in TARGET_NAMES:
        assert sum(harness.outcomes[name].values()) - before[name] == len(harness.seeds[name])


def test_a_state_change_on_error_is_a_finding(harness: Harness) -> None:
    """The transactionality check itself can fail: a state that mutates on error is caught."""

    class Leaky:
        def __init__(self) -> None:
            self.count = 0

        def serialize(self) -> bytes:
            self.count += 1
            return bytes([self.count])

        def decrypt(self, data: bytes) -> bytes:
            from semafore.protocol.errors import DecryptionFailed

            raise DecryptionFailed("always", field="tag")

    saved = harness.ratchet
    harness.ratchet = Leaky()  # type: ignore[assignment]
    try:
        with pytest.raises(FuzzFinding, match="changed on DecryptionFailed"):
            harness.fuzz_ratchet(b"anything")
    finally:
        harness.ratchet = saved


def test_canary_finding_fails_the_run_and_keeps_a_reproducer(tmp_path: Path) -> None:
    completed, summary = _fuzz(tmp_path, "--target", "canary", "--runs", "100")
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert summary["clean"] is False
    artifacts = [Path(p) for p in summary["artifacts"]]  # type: ignore[attr-defined]
    crash = next(p for p in artifacts if not p.suffix)
    assert crash.read_bytes().startswith(CANARY)
    assert "ValueError" in crash.with_suffix(".txt").read_text(encoding="utf-8")
    replay = subprocess.run(
        [sys.executable, "-m", "semafore.fuzz", "--target", "canary", "--reproduce", str(crash)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replay.returncode == 1
    assert "ValueError: canary" in replay.stderr


@pytest.mark.slow
def test_bounded_fuzz_run_is_clean(tmp_path: Path) -> None:
    completed, summary = _fuzz(tmp_path, "--target", "all", "--runs", str(BOUNDED_RUNS))
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert summary["clean"] is True
    assert summary["executed"] == BOUNDED_RUNS
    assert summary["artifacts"] == []
    outcomes = summary["outcomes"]
    assert isinstance(outcomes, dict)
    assert set(outcomes) == set(TARGET_NAMES), "every target must have been exercised"
