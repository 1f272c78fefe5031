"""The load runs against the reference relay on real backends, and the capacity benchmark
command runs end to end (smoke-sized; speed is judged by the benchmark, never here)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from benchmarks import bench_capacity
from loadtests.profile import load_profile
from loadtests.report import read_locust_stats
from loadtests.runner import RunOptions, run_load
from loadtests.targets import TargetUnavailable

IN_CI = os.environ.get("CI") == "true"


@pytest.mark.backend
@pytest.mark.slow
def test_office_hours_against_the_relay_on_local_backends(tmp_path: Path) -> None:
    profile = load_profile("office_hours").with_overrides(users=4, spawn_rate=4, duration=8)
    profile = dataclasses.replace(
        profile, behaviour=dataclasses.replace(profile.behaviour, think_time=(0.3, 1.0))
    )
    try:
        summary = run_load(RunOptions(profile, "local", tmp_path, seed="local-test"))
    except TargetUnavailable as exc:
        if IN_CI:
            pytest.fail(f"local backends must start in CI: {exc}")
        pytest.skip(str(exc))
    names = {f"{e.type} {e.name}": e for e in read_locust_stats(tmp_path / "locust_stats.csv")}
    for expected in ("POST POST /v1/auth/login", "WS connect", "WS send", "WS envelope delivered"):
        assert names[expected].requests > 0, expected
    assert summary["whole_run"]["failures"] == 0, summary["whole_run"]["errors"]
    assert summary["run"]["target_kind"] == "local"
    assert summary["run"]["target_details"]["redis"] == "redis-server"


@pytest.mark.slow
def test_capacity_benchmark_quick_run_reports_a_knee_per_target(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert bench_capacity.main(
        ["--quick", "--targets", "embedded", "--p99-ms", "60000", "--max-error-rate", "0.5",
         "--max-generator-cpu", "10000", "--max-generator-lag-ms", "60000",  # not the guard
         "--out", str(tmp_path / "runs"), "--json", str(out)]
    ) == 0
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert result["status"] == "ok"
    assert result["knee"]["users"] == 4
    assert [s["users"] for s in result["steps"]] == [2, 4]
    assert report["machine"]["cpus"] >= 1
