"""Load goes to loopback, to relays this harness started, or to hosts someone consented to by
name (issue 16 item 7): the refusal says how to consent, the consent is recorded, and some
addresses (wildcard, broadcast, credentials in the URL) are refused whatever the consent."""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtests.targets import (
    Consent,
    ServerCounters,
    TargetPolicy,
    TargetRefused,
    check_loopback,
    parse_allow_entry,
)
from semafore.server.oplog import event

ALICE = Consent.from_options(["10.0.0.5:8080", "relay.staging.example"], user="alice")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://127.5.6.7:1/", "http://localhost:9000", "http://[::1]:80",
     "https://127.0.0.1"],
)
def test_loopback_targets_are_accepted(url: str) -> None:
    assert check_loopback(url) == url.rstrip("/")
    assert TargetPolicy().vet(url).allowed_by == {"rule": "loopback (default)"}


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


def test_the_refusal_says_how_to_consent() -> None:
    with pytest.raises(TargetRefused) as info:
        TargetPolicy().vet("http://10.0.0.9:8443/")
    assert "--allow-target 10.0.0.9:8443" in str(info.value)
    assert "--allow-targets FILE" in str(info.value)
    with pytest.raises(TargetRefused) as v6:
        TargetPolicy().vet("https://[2001:db8::7]/")
    assert "--allow-target [2001:db8::7]:443" in str(v6.value)


def test_consent_admits_exactly_the_named_host_and_port_and_is_recorded() -> None:
    policy = TargetPolicy(ALICE, resolve=lambda host: [ipaddress.ip_address("10.0.0.6")])
    vetted = policy.vet("http://10.0.0.5:8080/")
    assert vetted.url == "http://10.0.0.5:8080"
    assert vetted.allowed_by["rule"] == "consent"
    assert vetted.allowed_by["user"] == "alice"
    assert vetted.allowed_by["entry"] == "10.0.0.5:8080"
    assert vetted.allowed_by["via"] == "--allow-target"
    assert vetted.allowed_by["host"] == socket.gethostname()
    with pytest.raises(TargetRefused):
        policy.vet("http://10.0.0.5:8081")  # another port of the same host
    with pytest.raises(TargetRefused):
        policy.vet("http://10.0.0.50:8080")
    # A host entry without a port admits every port of that name (and only that name).
    assert policy.vet("https://Relay.Staging.example").allowed_by["entry"] == (
        "relay.staging.example")
    with pytest.raises(TargetRefused):
        policy.vet("https://api.relay.staging.example")


def test_consent_never_admits_credentials_wildcards_or_broadcast() -> None:
    wide = Consent.from_options(["10.0.0.5", "relay.staging.example"], user="alice")
    policy = TargetPolicy(wide, resolve=lambda host: [ipaddress.ip_address("0.0.0.0")])
    with pytest.raises(TargetRefused, match="credentials"):
        policy.vet("http://ops:secret@10.0.0.5:8080")
    with pytest.raises(TargetRefused, match="wildcard"):
        policy.vet("http://relay.staging.example:8080")  # a name that resolves to 0.0.0.0
    for url in ("http://0.0.0.0:80", "http://[::]:80", "http://255.255.255.255:80",
                "http://224.0.0.1:80", "http://[ff02::1]:80"):
        with pytest.raises(TargetRefused):
            policy.vet(url)
    for entry in ("0.0.0.0", "[::]:80", "255.255.255.255:80", "224.0.0.1",
                  "http://10.0.0.5", "ops@10.0.0.5", "10.0.0.5:0", "10.0.0.5:http", ""):
        with pytest.raises(TargetRefused) as info:
            Consent.from_options([entry], user="alice")
        assert info.value.field == "allow_target"


def test_a_consented_name_that_does_not_resolve_is_refused() -> None:
    def nowhere(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        raise socket.gaierror("no such name")

    with pytest.raises(TargetRefused, match="does not resolve"):
        TargetPolicy(ALICE, resolve=nowhere).vet("http://relay.staging.example")


def test_an_allow_list_file_is_read_with_comments_and_audited(tmp_path: Path) -> None:
    listing = tmp_path / "allowed.txt"
    listing.write_text("# staging relays, ticket OPS-42\n10.1.2.3:8080  # relay a\n\n"
                       "[2001:db8::1]:443\n", encoding="utf-8")
    consent = Consent.from_options(files=[listing], user="bob")
    assert [e.entry for e in consent.entries] == ["10.1.2.3:8080", "[2001:db8::1]:443"]
    vetted = TargetPolicy(consent).vet("https://[2001:db8::1]")
    assert vetted.allowed_by["via"] == f"--allow-targets {listing}:4"
    import hashlib

    assert vetted.allowed_by["files"] == [
        {"path": str(listing.resolve()),
         "sha256": hashlib.sha256(listing.read_bytes()).hexdigest()}]
    bad = tmp_path / "bad.txt"
    bad.write_text("10.1.2.3\n0.0.0.0:80\n", encoding="utf-8")
    with pytest.raises(TargetRefused, match=r"bad.txt:2"):
        Consent.from_options(files=[bad], user="bob")
    with pytest.raises(TargetRefused) as missing:
        Consent.from_options(files=[tmp_path / "absent.txt"], user="bob")
    assert missing.value.field == "allow_targets"


def test_the_user_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "carol")
    assert Consent.from_options(["10.0.0.5"]).user == "carol"


@given(st.ip_addresses(v=4))
def test_any_non_loopback_address_needs_consent(address: ipaddress.IPv4Address) -> None:
    url = f"http://{address}:8080"
    if address.is_loopback:
        assert TargetPolicy().vet(url).url == url
        return
    with pytest.raises(TargetRefused):
        TargetPolicy().vet(url)
    if address.is_unspecified or address.is_multicast or str(address) == "255.255.255.255":
        with pytest.raises(TargetRefused):
            parse_allow_entry(str(address), "--allow-target")
        return
    consented = TargetPolicy(Consent.from_options([f"{address}:8080"], user="dave"))
    assert consented.vet(url).allowed_by["entry"] == f"{address}:8080"


@pytest.fixture
def listener_on_alias() -> Iterator[socket.socket]:
    """A listening socket on the loopback alias 127.0.0.2: anything that connects to it is
    in its accept queue the moment ``connect`` returns."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.2", 0))
    sock.listen(16)
    try:
        yield sock
    finally:
        sock.close()


def test_a_refused_target_gets_no_packet(listener_on_alias: socket.socket,
                                         tmp_path: Path) -> None:
    """Default narrowed to 127.0.0.1 only, so the alias 127.0.0.2 stands for a foreign host:
    the whole run refuses before provisioning, and the listener saw no connection."""
    from loadtests.profile import load_profile
    from loadtests.runner import RunOptions, run_load

    port = listener_on_alias.getsockname()[1]
    only_one = TargetPolicy(implicit=(ipaddress.ip_network("127.0.0.1/32"),))
    profile = load_profile("office_hours").with_overrides(users=2, duration=2)
    with pytest.raises(TargetRefused) as info:
        run_load(RunOptions(profile, f"http://127.0.0.2:{port}", tmp_path, policy=only_one))
    assert f"--allow-target 127.0.0.2:{port}" in str(info.value)
    readable, _, _ = select.select([listener_on_alias], [], [], 0)
    assert readable == []  # no connection is waiting to be accepted
    assert not any(tmp_path.iterdir())  # nothing was provisioned either
    # The check is real: a connection would have been seen.
    with socket.create_connection(("127.0.0.2", port)):
        readable, _, _ = select.select([listener_on_alias], [], [], 5)
    assert readable == [listener_on_alias]


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
