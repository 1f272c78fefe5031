"""``semafore serve --store backends``: the relay a capacity planner or reviewer starts by hand
on real MongoDB (FerretDB) + Redis + SeaweedFS, as `semafore backends up` exports them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import shared_provider

pytestmark = pytest.mark.backend


def test_serve_runs_the_relay_on_real_backends() -> None:
    provider = shared_provider(ProviderKind.LOCAL)
    env = {**os.environ, **provider.endpoints.as_env()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--store", "backends:servetest",
         "--port", "0", "--json", "--test-mode", "--test-org", "acme"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "no output"
        url = json.loads(line)["url"]
        assert json.loads(line)["store"] == "backends"
        for _ in range(100):
            try:
                response = httpx.get(f"{url}/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("relay never answered")
        assert response.status_code == 200 and "paths" in response.json()
        # state goes to the real stores: signing up an organisation writes to MongoDB
        signup = httpx.post(
            f"{url}/v1/orgs", json={"org_id": "acme", "name": "Acme", "admin_user_id": "root"},
            timeout=10,
        )
        assert signup.status_code in (200, 201), signup.text
        assert "totp_secret" in signup.json()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_without_backend_urls_is_a_clear_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMAFORE_")}
    result = subprocess.run(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--store", "backends"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--store" in result.stderr and "semafore backends up" in result.stderr
