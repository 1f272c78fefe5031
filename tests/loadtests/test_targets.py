"""Load goes only to loopback or to relays this harness started."""

from __future__ import annotations

import logging

import pytest

from loadtests.targets import ServerCounters, TargetRefused, check_loopback
from semafore.server.oplog import event


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://127.5.6.7:1/", "http://localhost:9000", "http://[::1]:80",
     "https://127.0.0.1"],
)
def test_loopback_targets_are_accepted(url: str) -> None:
    assert check_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8080",
        "http://192.168.1.10",
        "http://172.17.0.1:8080",
        "http://0.0.0.0:8080",
        "http://[::]:80",
        "http://relay.example:443",
        "http://127.0.0.1.nip.example",
        "http://user:pw@127.0.0.1:8080",
        "ftp://127.0.0.1",
        "127.0.0.1:8080",
        "http://127.0.0.1:99999",
    ],
)
def test_everything_else_is_refused(url: str) -> None:
    with pytest.raises(TargetRefused) as info:
        check_loopback(url)
    assert info.value.field == "target"


def test_hosts_the_harness_started_are_accepted_by_name() -> None:
    assert check_loopback("http://relay-1:8080", frozenset({"relay-1"})) == "http://relay-1:8080"
    with pytest.raises(TargetRefused):
        check_loopback("http://relay-2:8080", frozenset({"relay-1"}))


def test_server_counters_read_the_relays_own_log_events() -> None:
    counters = ServerCounters()
    logger = logging.getLogger("semafore.server")
    previous = logger.level
    logger.addHandler(counters)
    logger.setLevel(logging.INFO)
    try:
        event("http_request", method="PUT", route="/v1/messages/{user_id}", status=200)
        event("message_accepted", count=3)
        event("envelopes_acked", count=2)
    finally:
        logger.removeHandler(counters)
        logger.setLevel(previous)
    snap = counters.snapshot()
    assert snap["routes"] == {"PUT /v1/messages/{user_id}": 1}
    assert snap["statuses"] == {"PUT /v1/messages/{user_id} 200": 1}
    assert (snap["envelopes_accepted"], snap["envelopes_acked"]) == (3, 2)
