"""Issue 13 F-7 (slowloris), through a real loopback socket: a request head must arrive within
``header_timeout`` and a body within ``body_timeout`` (typed 408, connection closed), and a
connection beyond ``max_connections`` is refused at once (typed 503 + Retry-After); the relay
keeps serving legitimate clients while trickling connections hold what they can.

Every attack here is bounded: at most 40 sockets on 127.0.0.x, for at most a few seconds."""

from __future__ import annotations

import base64
import contextlib
import json
import selectors
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from semafore.server.serving import RelayH11Protocol, RelayWebSocketProtocol, uvicorn_config
from semafore.server.settings import Settings
from semafore.server.totp import totp
from tests.server.socket_world import STRANGER, VICTIM, SocketWorld, socket_world

HEAD = b"GET /v1/health HTTP/1.1\r\nhost: relay\r\n"
TRICKLE = b"x-pad: " + b"a" * 4096  # a header that never ends


def response_of(data: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def read_to_eof(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the relay writes until it closes the connection (bounded wait)."""
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def dial(address: str = STRANGER, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.connect(("127.0.0.1", port))
    return sock


@pytest.fixture
def world() -> Iterator[SocketWorld]:
    with socket_world(header_timeout=0.5, body_timeout=0.5) as w:
        yield w


def test_a_request_head_that_does_not_arrive_in_time_gets_a_typed_408(
    world: SocketWorld,
) -> None:
    port = world.server.port
    with dial(port=port) as silent, dial(port=port) as trickler:
        trickler.sendall(HEAD)
        trickler.sendall(TRICKLE[:10])  # some bytes, never the blank line
        for sock in (silent, trickler):
            status, body = response_of(read_to_eof(sock))
            assert status == 408
            assert body == {"error": "request_timeout", "field": None,
                            "detail": "request head not received within 0.5 s"}


def test_the_head_deadline_restarts_for_each_request_on_a_kept_alive_connection(
    world: SocketWorld,
) -> None:
    with dial(port=world.server.port) as sock:
        sock.sendall(HEAD + b"\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(HEAD)  # the next request's head starts, and stalls
        assert response_of(read_to_eof(sock))[0] == 408


def test_a_body_that_does_not_arrive_in_time_gets_a_typed_408(world: SocketWorld) -> None:
    with dial(port=world.server.port) as sock:
        sock.sendall(b"POST /v1/orgs HTTP/1.1\r\nhost: relay\r\ncontent-type: application/json"
                     b"\r\ncontent-length: 100\r\n\r\n{\"org_id\":")
        status, body = response_of(read_to_eof(sock))
    assert status == 408
    assert body == {"error": "request_timeout", "field": "body",
                    "detail": "request body not received within 0.5 s"}


def test_a_request_in_time_is_served_as_usual(world: SocketWorld) -> None:
    r = world.http().post("/v1/orgs", json={"org_id": "acme", "name": "Acme",
                                            "admin_user_id": "alice"})
    assert r.status_code == 201, r.text


def test_connections_beyond_the_cap_are_refused_at_once_with_a_typed_503() -> None:
    with socket_world(max_connections=3, header_timeout=30.0, keep_alive_timeout=30.0) as world:
        held = [dial(port=world.server.port) for _ in range(3)]
        try:
            for sock in held:  # each one served, so counted by the relay
                sock.sendall(HEAD + b"\r\n")
                sock.settimeout(5)
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            with dial(port=world.server.port) as extra:
                data = read_to_eof(extra)
            status, body = response_of(data)
            assert status == 503 and body["error"] == "too_many_connections"
            assert b"\r\nretry-after: 1\r\n" in data.partition(b"\r\n\r\n")[0] + b"\r\n"
        finally:
            for sock in held:
                sock.close()
        served = _served_within(world, 5.0)  # the held slots free up as they close
        assert served.status_code == 200


def _served_within(world: SocketWorld, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        with httpx.Client(base_url=world.server.url, timeout=5) as fresh:
            try:
                r = fresh.get("/v1/health")
            except httpx.TransportError:
                r = None
        if (r is not None and r.status_code == 200) or time.monotonic() > deadline:
            assert r is not None
            return r
        time.sleep(0.05)


def test_the_relay_keeps_serving_legitimate_clients_during_a_bounded_slowloris() -> None:
    """30 trickling connections from 127.0.0.2 (one byte each every 50 ms, bounded to 8 s)
    while a legitimate client on 127.0.0.1 signs up, logs in and sends: every legitimate
    request is served, and every trickler is cut off by the head deadline (or refused at
    the cap), none held to the end of the attack."""
    with socket_world(header_timeout=1.0, max_connections=64, test_mode=True,
                      test_orgs=frozenset({"acme"})) as world:
        port = world.server.port
        tricklers = [dial(STRANGER, port) for _ in range(30)]
        answers: dict[socket.socket, bytes] = {s: b"" for s in tricklers}
        selector = selectors.DefaultSelector()
        for sock in tricklers:
            sock.sendall(HEAD)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        legit: list[int] = []
        steps = iter(_legitimate_session(world))
        deadline = time.monotonic() + 8.0
        offset = 0
        try:
            while selector.get_map() and time.monotonic() < deadline:
                for sock in list(answers):
                    if sock.fileno() != -1 and sock in _registered(selector):
                        # a send to a socket the relay closed fails; the read collects the answer
                        with contextlib.suppress(OSError):
                            sock.send(TRICKLE[offset % len(TRICKLE):][:1])
                offset += 1
                for key, _ in selector.select(timeout=0.05):
                    readable = key.fileobj
                    assert isinstance(readable, socket.socket)
                    try:
                        chunk = readable.recv(65536)
                    except OSError:
                        chunk = b""
                    answers[readable] += chunk
                    if not chunk:
                        selector.unregister(readable)
                legit.extend(status for status in [next(steps, None)] if status is not None)
            still_held = len(selector.get_map())
        finally:
            selector.close()
            for sock in tricklers:
                sock.close()
        legit.extend(status for status in steps)  # whatever the session had left
    assert still_held == 0
    assert {response_of(a)[0] for a in answers.values()} == {408}
    assert legit == [201, 202, 200, 200, 200]


def _registered(selector: selectors.BaseSelector) -> set[Any]:
    return {key.fileobj for key in selector.get_map().values()}


def _legitimate_session(world: SocketWorld) -> Iterator[int]:
    """Sign up, ask for an OTP, log in, add a member and send to it: one status per step,
    each on a fresh connection from 127.0.0.1 (so new connections are being accepted)."""
    def fresh() -> httpx.Client:
        return httpx.Client(base_url=world.server.url, timeout=5,
                            transport=httpx.HTTPTransport(local_address=VICTIM))

    with fresh() as http:
        r = http.post("/v1/orgs", json={"org_id": "acme", "name": "Acme", "admin_user_id": "al"})
        yield r.status_code
    with fresh() as http:
        yield http.post("/v1/auth/otp", json={"org_id": "acme", "user_id": "al"}).status_code
    code = world.relay.otp_outbox.codes[("acme", "al")]
    secret = r.json()["totp_secret"]
    raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    with fresh() as http:
        r = http.post("/v1/auth/login", json={"org_id": "acme", "user_id": "al",
                                              "device_id": "d1", "otp": code,
                                              "totp": totp(raw, world.clock.now)})
        yield r.status_code
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    with fresh() as http:
        yield http.put("/v1/orgs/acme/members/bo", json={"role": "member"},
                       headers=headers).status_code
    with fresh() as http:
        yield http.get("/v1/orgs/acme/members", headers=headers).status_code


def test_every_launcher_gets_the_same_limits_from_one_configuration() -> None:
    settings = Settings(max_connections=10, header_timeout=3.0, keep_alive_timeout=7.0,
                        max_header_bytes=8192, max_json_bytes=3 * 1024 * 1024)
    config = uvicorn_config(object(), settings)  # type: ignore[arg-type]
    assert isinstance(config.http, type) and issubclass(config.http, RelayH11Protocol)
    assert config.http.max_connections == 10 and config.http.header_timeout == 3.0
    assert config.ws is RelayWebSocketProtocol
    assert config.limit_concurrency == 11 and config.timeout_keep_alive == 7.0
    assert config.h11_max_incomplete_event_size == 8192
    # the accept queue holds what the relay would take, never more than the cap
    assert config.backlog == 10
    assert uvicorn_config(object(), Settings(max_connections=10**6)).backlog == 4096  # type: ignore[arg-type]


def test_a_websocket_frame_is_bounded_like_the_http_body_of_the_same_request() -> None:
    """One WebSocket limit, from Settings (issue 14 item 1): a ``send`` frame carries what
    ``POST /v1/messages`` does, so ``max_json_bytes`` bounds both; ciphertext does not
    compress, so per-message deflate stays off wherever the relay runs."""
    for size in (1024 * 1024, 4 * 1024 * 1024):
        config = uvicorn_config(object(), Settings(max_json_bytes=size))  # type: ignore[arg-type]
        assert config.ws_max_size == size
        assert config.ws_per_message_deflate is False
