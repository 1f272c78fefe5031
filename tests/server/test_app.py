"""The app's edges: body limits, strict query parameters, 405 Allow, the runner helpers, the
background retention job, token expiry on an open WebSocket, and ``semafore serve``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect

from semafore.deploy.inprocess import serve_in_task
from semafore.server.settings import Settings
from semafore.storage.memory import memory_stores
from semafore.storage.ports import Org, QueuedEnvelope, RetentionPolicy
from tests.server.helpers import World, make_world


def test_oversized_bodies_are_413_before_parsing(world: World) -> None:
    big = b'{"org_id": "' + b"a" * (world.relay.settings.max_json_bytes + 10) + b'"}'
    r = world.client.post("/v1/orgs", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json() == {
        "error": "body_too_large",
        "field": "body",
        "detail": f"request body over {world.relay.settings.max_json_bytes} bytes",
    }


def test_streamed_body_over_the_limit_is_413(world: World) -> None:
    limit = world.relay.settings.max_json_bytes

    def chunks() -> Iterator[bytes]:  # no Content-Length: a chunked upload
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    r = world.client.post(
        "/v1/orgs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_unknown_query_parameters_are_refused(world: World) -> None:
    r = world.client.get("/v1/health?verbose=1")
    assert r.status_code == 422 and r.json()["field"] == "query.verbose"


def test_405_names_every_method_of_the_path(world: World) -> None:
    r = world.client.post("/v1/orgs/acme/retention")
    assert r.status_code == 405 and r.headers["allow"] == "GET, PUT"
    assert world.client.get("/v1/nope").json()["error"] == "not_found"


def test_websocket_closes_when_the_token_expires(world: World) -> None:
    world.signup("acme", "alice")
    s = world.login("acme", "alice", "a1", admin=True)
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        world.client.websocket_connect("/v1/websocket", headers=s.headers) as ws,
    ):
        world.clock.advance(901)
        ws.send_json({"type": "ack", "delivery_ids": ["x"]})
        ws.receive_json()
    assert closed.value.code == 4401


def test_websocket_closes_when_the_session_is_revoked(world: World) -> None:
    world.signup("acme", "alice")
    s = world.login("acme", "alice", "a1", admin=True)
    # Refresh-token reuse revokes the family: the open socket of that family ends too.
    first = world.client.post("/v1/auth/refresh", json={"refresh_token": s.refresh_token})
    assert first.status_code == 200
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        world.client.websocket_connect("/v1/websocket", headers=s.headers) as ws,
    ):
        reuse = world.client.post("/v1/auth/refresh", json={"refresh_token": s.refresh_token})
        assert reuse.status_code == 401
        ws.receive_json()  # closed by the relay at once, before the device says anything
    assert closed.value.code == 4401


def test_serve_in_task_and_the_background_retention_job() -> None:
    stores = memory_stores()

    async def scenario() -> tuple[int, int]:
        await stores.accounts.create_org(Org("o1", "One", 1.0))
        await stores.accounts.put_retention(RetentionPolicy("o1", envelope_max_age=60))
        old = QueuedEnvelope(
            "d1", "o1", "m", "message", "a", "a1", "b", "b1", b"DRV1x", bytes(32), 0.0
        )
        await stores.queues.enqueue([old])
        before = await stores.queues.count("b", "b1")
        async with serve_in_task(Settings(retention_interval=0.05), stores) as server:
            async with httpx.AsyncClient(base_url=server.url) as http:
                assert (await http.get("/v1/health")).json()["status"] == "ok"
            for _ in range(100):
                if await stores.queues.count("b", "b1") == 0:
                    break
                await asyncio.sleep(0.05)
        return before, await stores.queues.count("b", "b1")

    assert asyncio.run(scenario()) == (1, 0)


def test_semafore_serve_command(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "relay.db"
    cmd = [
        sys.executable,
        "-m",
        "semafore.cli.main",
        "serve",
        "--port",
        str(port),
        "--store",
        f"sqlite:{db}",
        "--test-mode",
        "--test-org",
        "qa",
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line == {"url": f"http://127.0.0.1:{port}", "store": "sqlite", "port": port,
                        "workers": [proc.pid]}  # one process: the relay is the serve process
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.1)
        assert r.json() == {"status": "ok", "test_mode": True}
        assert db.exists()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    for raw in err.decode().splitlines():
        event = json.loads(raw)  # every stderr line is a JSON log event
        assert "ts" in event and "event" in event


def test_serve_rejects_bad_options() -> None:
    from click.testing import CliRunner

    from semafore.cli.serve import command

    runner = CliRunner()
    assert runner.invoke(command, ["--store", "redis://x"]).exit_code == 2
    assert runner.invoke(command, ["--test-org", "qa"]).exit_code == 2
    out = runner.invoke(command, ["--print-openapi"])
    assert out.exit_code == 0 and json.loads(out.output)["info"]["title"] == "SemaFore relay"


def test_make_world_helper_is_isolated() -> None:
    w, client = make_world(memory_stores())
    with client:
        assert w.client.get("/v1/health").status_code == 200


def test_405_allow_prefers_the_concrete_path_over_templates(world: World) -> None:
    # /v1/messages/ack (POST) also matches the template /v1/messages/{user_id} (PUT).
    assert world.client.get("/v1/messages/ack").headers["allow"] == "POST"
    assert world.client.get("/v1/messages/bob").headers["allow"] == "PUT"
