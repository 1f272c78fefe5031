"""``semafore backends up|dump`` end to end: real processes, real scans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from semafore.cli.backends import command
from semafore.deploy import health
from semafore.deploy.providers import Provider
from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import shared_provider, unavailable

pytestmark = pytest.mark.backend


@pytest.fixture
def local() -> Provider:
    return shared_provider(ProviderKind.LOCAL)


def urls(provider: Provider) -> list[str]:
    e = provider.endpoints
    assert e.mongodb_url and e.redis_url and e.seaweedfs_filer_url
    return [
        "--mongodb-url",
        e.mongodb_url,
        "--redis-url",
        e.redis_url,
        "--filer-url",
        e.seaweedfs_filer_url,
    ]


def test_dump_exits_1_when_the_needle_is_stored_and_0_when_not(
    local: Provider, tmp_path: Path
) -> None:
    needle = f"cli-needle-{uuid.uuid4().hex}"
    assert local.endpoints.redis_url
    client = redis.Redis.from_url(local.endpoints.redis_url)
    client.set("cli:needle", needle.encode())
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        command, ["dump", "--needle", needle, *urls(local), "--json", str(report)]
    )
    assert result.exit_code == 1, result.output
    data = json.loads(report.read_text())
    assert data["backends"]["redis"]["hits"] and not data["backends"]["mongodb"]["hits"]
    client.delete("cli:needle")
    client.close()
    clean = CliRunner().invoke(
        command, ["dump", "--needle", needle.encode().hex(), "--hex", *urls(local)]
    )
    assert clean.exit_code == 0, clean.output


def test_dump_rejects_bad_input() -> None:
    assert (
        CliRunner()
        .invoke(
            command, ["dump", "--needle", "zz", "--hex", "--redis-url", "redis://127.0.0.1:1/0"]
        )
        .exit_code
        == 2
    )
    assert (
        CliRunner()
        .invoke(
            command,
            ["dump", "--needle", "x"],
            env={
                "SEMAFORE_MONGODB_URL": "",
                "SEMAFORE_REDIS_URL": "",
                "SEMAFORE_SEAWEEDFS_FILER_URL": "",
            },
        )
        .exit_code
        == 2
    )


def test_up_serves_until_sigterm_then_leaves_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "SEMAFORE_INFRA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "semafore.cli.main", "backends", "up", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            unavailable(f"backends up failed: {proc.stderr.read() if proc.stderr else ''}")
        info = json.loads(line)
        assert info["SEMAFORE_PROVIDER"] == "external"
        assert health.redis_url_ping(info["SEMAFORE_REDIS_URL"])
        assert health.mongodb_ping(info["SEMAFORE_MONGODB_URL"])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    with pytest.raises(OSError):
        health.redis_url_ping(info["SEMAFORE_REDIS_URL"])
    assert not list(tmp_path.iterdir())  # data directories removed
