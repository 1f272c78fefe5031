"""Scenarios through ``semafore sim run`` on the ``containers`` and ``external`` providers
(issue 5: "infrastructure comes from the providers embedded, local, containers, external").

Each test runs the real command in a child process, as a user would, and reads its ``--json``
report. ``containers``: MongoDB (FerretDB), Redis and SeaweedFS as containers on our own
dockerd with the locally built images (semafore.deploy.testing.prepare_container_engine).
``external``: the backends are started by the local provider and handed to the command only
as the ``SEMAFORE_*_URL`` variables a deployment would export; the command starts and stops
nothing. Without the engine or the binaries the tests skip locally and FAIL in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from semafore.deploy.errors import InfraError
from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import prepare_container_engine, shared_provider, unavailable

ROOT = Path(__file__).resolve().parents[2]
SEMAFORE = Path(sys.executable).with_name("semafore")
THREAT = ROOT / "scenarios/threats/server-compromise.yaml"
BACKEND_RESTARTS = ROOT / "scenarios/desync/backend-restarts-mid-delivery.yaml"
SERVER_RESTART = ROOT / "scenarios/desync/server-restart-mid-delivery.yaml"
BACKEND_TIERS = {"mongodb", "redis", "seaweedfs"}

pytestmark = [pytest.mark.slow, pytest.mark.backend, pytest.mark.timeout(1800)]


def sim_run(provider: str, paths: list[Path], out: Path,
            env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    """``semafore sim run --provider P --json OUT PATHS``: exit status, report, output."""
    child_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [str(SEMAFORE), "sim", "run", "--quiet", "--provider", provider, "--json", str(out),
         *map(str, paths)],
        capture_output=True, text=True, env=child_env, timeout=1500, check=False,
    )
    output = done.stdout + done.stderr
    assert out.exists(), f"no JSON report (exit {done.returncode}):\n{output[-3000:]}"
    return done.returncode, json.loads(out.read_text()), output


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["scenario"]: s for s in report["scenarios"]}


def explain(result: dict[str, Any]) -> str:
    bad = [a for a in result["assertions"] if a["outcome"] not in ("held", "exposed")]
    return f"{result['verdict']}: {result['reason']} {bad[:3]} {result.get('error') or ''}"


def assert_ran_on_backends(result: dict[str, Any], provider: str) -> None:
    assert result["provider"] == provider
    assert result["verdict"] == "pass", explain(result)
    if any(view["kind"] == "server" for view in result["adversaries"]):
        # the server view really is the backends' raw dumps, not in-process stores
        assert set(result["oracle_scanned"]) >= BACKEND_TIERS, result["oracle_scanned"]
        assert "store" not in result["oracle_scanned"]


@pytest.mark.containers
def test_threat_and_backend_restart_scenarios_pass_on_containers(tmp_path: Path) -> None:
    try:
        prepare_container_engine()  # our dockerd + local images; sets DOCKER_HOST, *_IMAGE
    except InfraError as exc:
        unavailable(str(exc))
    status, report, output = sim_run("containers", [THREAT, BACKEND_RESTARTS],
                                     tmp_path / "containers.json")
    results = by_name(report)
    if any("docker" in (r.get("error") or "").lower() for r in results.values()):
        unavailable(f"container engine: {output[-500:]}")
    assert status == 0, output[-3000:]
    assert_ran_on_backends(results["server-compromise"], "containers")
    restarts = results["backend-restarts-mid-delivery"]
    assert_ran_on_backends(restarts, "containers")
    infra = [e["summary"] for e in restarts["timeline"] if e["kind"] == "infra"]
    assert len(infra) == 2 and all(s.endswith("(containers provider)") for s in infra), infra
    assert infra[0].startswith("restart redis") and infra[1].startswith("restart mongodb")


@pytest.fixture(scope="module")
def external_env() -> dict[str, str]:
    """What a deployment exports: SEMAFORE_PROVIDER=external and the backends' URLs (here
    of real redis-server, weed and FerretDB started by the local provider)."""
    provider = shared_provider(ProviderKind.LOCAL)
    env = provider.endpoints.as_env()
    assert env["SEMAFORE_PROVIDER"] == "external"
    return env


def test_threat_and_relay_restart_scenarios_pass_on_external(
    tmp_path: Path, external_env: dict[str, str]
) -> None:
    status, report, output = sim_run("external", [THREAT, SERVER_RESTART],
                                     tmp_path / "external.json", env=external_env)
    assert status == 0, output[-3000:]
    results = by_name(report)
    assert_ran_on_backends(results["server-compromise"], "external")
    restart = results["server-restart-mid-delivery"]
    assert_ran_on_backends(restart, "external")
    assert any(e["kind"] == "infra" and "restart server" in e["summary"]
               for e in restart["timeline"])


def test_backend_faults_are_skipped_on_external_with_the_reason(
    tmp_path: Path, external_env: dict[str, str]
) -> None:
    """External backends belong to someone else: a Redis restart cannot be ordered there, so
    the scenario is reported as skipped (exit 0), never run half-way or faked."""
    status, report, output = sim_run("external", [BACKEND_RESTARTS],
                                     tmp_path / "skip.json", env=external_env)
    assert status == 0, output[-3000:]
    (result,) = report["scenarios"]
    assert result["verdict"] == "skipped"
    assert "not applicable to provider 'external'" in result["skipped"]


def test_external_without_urls_is_an_error_naming_the_variables(tmp_path: Path) -> None:
    env = {k: "" for k in ("SEMAFORE_MONGODB_URL", "SEMAFORE_REDIS_URL",
                           "SEMAFORE_SEAWEEDFS_FILER_URL", "SEMAFORE_SEAWEEDFS_S3_URL")}
    status, report, output = sim_run("external", [THREAT], tmp_path / "none.json", env=env)
    assert status == 1, output[-2000:]
    (result,) = report["scenarios"]
    assert result["verdict"] == "error"
    assert "SEMAFORE_MONGODB_URL" in (result["error"] or ""), result["error"]
