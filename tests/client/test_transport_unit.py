"""Unit checks of the client's small pieces: TOTP, back-off, WebSocket URL derivation."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.client.account import totp_code
from semafore.client.backoff import Backoff
from semafore.client.client import _ws_url
from semafore.protocol.entropy import SeededEntropy
from semafore.server.totp import totp


@given(st.binary(min_size=10, max_size=40), st.floats(min_value=0, max_value=4e9))
def test_client_totp_matches_the_relays_rfc6238(secret: bytes, now: float) -> None:
    b32 = base64.b32encode(secret).decode().rstrip("=")
    code, step = totp_code(b32, now)
    assert code == totp(secret, now) and step == int(now // 30)


def test_backoff_grows_exponentially_is_capped_and_jittered_deterministically() -> None:
    policy = Backoff(base=0.1, factor=2.0, cap=1.0, jitter=0.5)
    delays = [policy.delay(n, SeededEntropy("b")) for n in range(8)]
    assert all(0.05 - 1e-9 <= d <= 1.0 for d in delays)
    assert delays[3] > delays[0] and max(delays) <= 1.0
    again = [policy.delay(n, SeededEntropy("b")) for n in range(8)]
    assert delays == again


@pytest.mark.parametrize(
    ("base", "ws"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/v1/websocket"),
        ("https://relay.example/", "wss://relay.example/v1/websocket"),
    ],
)
def test_websocket_url_follows_the_base_url(base: str, ws: str) -> None:
    assert _ws_url(base) == ws


def test_a_non_http_base_url_is_refused() -> None:
    with pytest.raises(ValueError):
        _ws_url("ftp://x")
