"""Issue 13, item 4 (protocol hygiene), through a real loopback socket:

- F-10: every WebSocket frame gets a typed error or a documented close code: binary frames
  and deeply nested JSON included; handshake refusals close with 4401/4400, not HTTP 403.
- F-14: HTTP framing errors get the typed body; ``semafore serve`` keeps its signing key
  (and TOTP sealing key) across restarts.
- F-13: envelope bodies too short for their magic are a typed 400; names refuse control and
  bidi characters.
- F-8: every logger, ``asyncio`` and any library's included, goes through the redacting
  formatter, rate-limited.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from semafore.server.oplog import LOGGER_NAME, configure_logging
from semafore.server.relay_key import ENV_VAR, RelayKeyError, derive, load_or_create
from semafore.server.totp import totp
from tests.server.socket_world import Session, SocketWorld, socket_world


@pytest.fixture
def world() -> Iterator[SocketWorld]:
    with socket_world() as w:
        w.signup("acme", "alice")
        yield w


def ws_url(world: SocketWorld, query: str = "") -> str:
    return world.server.ws_url + query


def close_code(url: str, headers: dict[str, str] | None = None) -> int | None:
    with (
        connect(url, additional_headers=headers or {}, open_timeout=5) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


# --- F-10 / F-14: WebSocket frames and handshake ---------------------------------------------


def test_handshake_refusals_close_with_the_documented_codes(world: SocketWorld) -> None:
    alice = world.login("acme", "alice", "a1", admin=True)
    assert close_code(ws_url(world)) == 4401  # no token
    assert close_code(ws_url(world), {"Authorization": "Bearer not.a.jwt"}) == 4401
    assert close_code(ws_url(world, "?batch=999"), alice.headers) == 4400


def test_binary_and_deeply_nested_frames_get_typed_errors(world: SocketWorld) -> None:
    alice = world.login("acme", "alice", "a1", admin=True)
    with connect(ws_url(world), additional_headers=alice.headers, open_timeout=5) as ws:
        ws.send(b"\x00\x01binary")
        assert json.loads(ws.recv(timeout=5))["error"] == "binary_frame"
        ws.send("[" * 2000 + "]" * 2000)
        assert json.loads(ws.recv(timeout=5))["error"] == "invalid_frame"
        ws.send('{"type": "ack", "delivery_ids": [' + "[" * 2000 + "]" * 2000 + "]}")
        assert json.loads(ws.recv(timeout=5))["error"] == "invalid_frame"
        # brackets inside a string are not nesting; the socket is still alive and serving
        ws.send(json.dumps({"type": "ack", "delivery_ids": ["[" * 60]}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "acked", "delivery_ids": []}


# --- F-14: HTTP framing errors ---------------------------------------------------------------


def test_http_framing_errors_get_the_typed_body(world: SocketWorld) -> None:
    with socket.create_connection((world.server.host, world.server.port), timeout=5) as raw:
        raw.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        reply = b""
        while chunk := raw.recv(4096):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {
        "error": "malformed_http", "field": None, "detail": "the request is not valid HTTP/1.1",
    }


# --- F-13: junk bodies and names -------------------------------------------------------------


def _send(world: SocketWorld, sender: Session, body: bytes, registration_id: int) -> Any:
    return world.http().put(
        "/v1/messages/bob",
        json={"message_id": f"m{len(body)}", "envelopes": [
            {"device_id": "b1", "registration_id": registration_id,
             "body": base64.b64encode(body).decode()}]},
        headers=sender.headers,
    )


def test_bodies_too_short_for_their_magic_are_a_typed_400(world: SocketWorld) -> None:
    alice = world.login("acme", "alice", "a1", admin=True)
    assert world.put_member(alice, "bob").status_code == 200
    r = world.login_request("acme", "bob", "b1", world.otp("acme", "bob"))
    registration_id = r.json()["registration_id"]
    world.publish_keys(Session("acme", "bob", "b1", r.json()["access_token"], "member"))
    for body in (b"DRV1", b"DRV1" + bytes(67), b"SMX1" + bytes(65)):
        r = _send(world, alice, body, registration_id)
        assert r.status_code == 400, body
        assert r.json()["error"] == "truncated_envelope"
        assert r.json()["field"] == "body.envelopes.0.body"
    assert _send(world, alice, b"DRV1" + bytes(68), registration_id).status_code == 200
    assert _send(world, alice, b"SMX1" + bytes(66), registration_id).status_code == 200


@pytest.mark.parametrize(
    "name", ["nul\x00byte", "line\r\nbreak", "ansi \x1b[31mred", "bidi \u202eevil", "zw\u200bsp",
             "sep\u2028line", "lone \ud800 surrogate", "tag\U000e0041"],
)
def test_names_refuse_control_and_bidi_characters(world: SocketWorld, name: str) -> None:
    body = json.dumps({"org_id": "x1", "name": name, "admin_user_id": "z"})  # \u escapes
    r = world.http().post("/v1/orgs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "body.name"


def test_names_keep_ordinary_unicode(world: SocketWorld) -> None:
    r = world.http().post(
        "/v1/orgs", json={"org_id": "x2", "name": "Ünïcode Ltd – 東京", "admin_user_id": "z"}
    )
    assert r.status_code == 201


# --- F-8: every logger through the redacting formatter, rate-limited --------------------------


def test_every_logger_is_redacted_json_and_floods_are_rate_limited() -> None:
    stream = io.StringIO()
    handler = configure_logging(stream, logging.DEBUG)
    try:
        try:
            raise OSError("Too many open files: alice@acme")
        except OSError:
            for _ in range(100):
                logging.getLogger("asyncio").error("socket.accept() out of %s", "alice",
                                                   exc_info=True)
        logging.getLogger("somelib.internal").warning("user alice did a thing")
        lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    finally:
        logging.getLogger().removeHandler(handler)
    assert "alice" not in stream.getvalue() and "Traceback" not in stream.getvalue()
    from_asyncio = [x for x in lines if x["logger"] == "asyncio"]
    assert 1 <= len(from_asyncio) <= 20  # a flood of one error is bounded per second
    assert from_asyncio[0] == {**from_asyncio[0], "event": "library", "error": "OSError"}
    assert [x["logger"] for x in lines if x["logger"] == "somelib.internal"] == [
        "somelib.internal"
    ]


def test_a_suppressed_count_rides_on_the_next_line_that_passes() -> None:
    stream = io.StringIO()
    handler = configure_logging(stream, logging.DEBUG)
    try:
        log = logging.getLogger("uvicorn.error")
        for _ in range(50):
            log.error("flood")
        second = int(time.monotonic())
        while int(time.monotonic()) == second:  # the next rate window
            time.sleep(0.01)
        log.error("flood")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert sum(x.get("suppressed", 0) for x in lines) + len(lines) == 51
    assert lines[-1]["suppressed"] >= 30
    assert logging.getLogger(LOGGER_NAME).handlers == [handler]


# --- F-14: the relay key survives restarts ----------------------------------------------------


def test_relay_key_from_file_or_environment(tmp_path: Path) -> None:
    path = tmp_path / "relay.key"
    first = load_or_create(path, environ={})
    assert first is not None and len(first) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create(path, environ={}) == first  # the same key after a restart
    env_key = base64.b64encode(bytes(range(32))).decode()
    assert load_or_create(path, environ={ENV_VAR: env_key}) == bytes(range(32))
    assert load_or_create(None, environ={}) is None
    with pytest.raises(RelayKeyError, match=ENV_VAR):
        load_or_create(path, environ={ENV_VAR: base64.b64encode(b"short").decode()})
    assert derive(first, "jwt") != derive(first, "totp-seal")


def _serve(db: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    proc = subprocess.Popen(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--port", str(port),
         "--store", f"sqlite:{db}", "--test-mode", "--test-org", "acme", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
            return proc
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.communicate(timeout=20)


def _admin_login(url: str, seed: bytes, device: str, ahead: float = 0.0) -> httpx.Response:
    return httpx.post(f"{url}/v1/auth/login", json={
        "org_id": "acme", "user_id": "alice", "device_id": device, "otp": "000000",
        "totp": totp(seed, time.time() + ahead),
    })


def test_serve_keeps_sessions_and_totp_across_a_restart(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "relay.db"
    url = f"http://127.0.0.1:{port}"
    proc = _serve(db, port)
    try:
        r = httpx.post(f"{url}/v1/orgs",
                       json={"org_id": "acme", "name": "Acme", "admin_user_id": "alice"})
        secret = r.json()["totp_secret"]
        seed = base64.b32decode(secret + "=" * (-len(secret) % 8))
        r = _admin_login(url, seed, "a1")
        assert r.status_code == 200 and r.json()["role"] == "admin"
        tokens = r.json()
    finally:
        _stop(proc)
    assert (tmp_path / "relay.db.key").stat().st_mode & 0o777 == 0o600
    proc = _serve(db, port)
    try:
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert httpx.get(f"{url}/v1/devices", headers=auth).status_code == 200
        r = httpx.post(f"{url}/v1/auth/refresh",
                       json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200
        # the next step's code (within the ±1 skew; the first one's step is spent): the
        # sealed seed opens under the same key
        r = _admin_login(url, seed, "a2", ahead=30)
        assert r.status_code == 200 and r.json()["role"] == "admin"
    finally:
        _stop(proc)
