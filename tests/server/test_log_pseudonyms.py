"""Log pseudonyms (issue 13 item 5, F-12): the relay's ``log_hash`` setting.

``sha256`` (default) is the seed §2.3 unkeyed SHA-256 prefix; ``keyed`` is HMAC-SHA-256
under a deployment secret, still 8 hex digits, so a log reader without the secret cannot
recompute a guessed id's pseudonym. ``semafore serve --log-hash keyed`` takes the secret from
``--log-hash-key-file`` or ``SEMAFORE_LOG_HASH_KEY`` and refuses to start without one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from semafore.cli.serve import LOG_HASH_KEY_ENV, command, log_hash_from
from semafore.server.oplog import (
    HASHED_FIELDS,
    LOGGER_NAME,
    SHA256_LOG_HASH,
    THIRD_PARTY_LOGGERS,
    LogHash,
    LogHashError,
    configure_logging,
    event,
    h8,
    redact,
)
from semafore.server.relay_key import ENV_VAR as RELAY_KEY_ENV
from semafore.server.totp import totp
from semafore.storage.memory import memory_stores
from tests.server.helpers import make_world
from tests.serving import wait_until_serving

KEY = b"deployment-secret-0123456789abcdef"
KEYED = LogHash("keyed", KEY)
HEX8 = re.compile(r"^[0-9a-f]{8}$")


def test_keyed_h8_is_the_hmac_sha256_prefix_and_sha256_stays_the_seeds() -> None:
    assert KEYED.h8("olivia.smith") == hmac.new(KEY, b"olivia.smith",
                                                hashlib.sha256).hexdigest()[:8]
    assert SHA256_LOG_HASH.h8("olivia.smith") == hashlib.sha256(b"olivia.smith").hexdigest()[:8]
    assert LogHash().mode == "sha256"  # the default is the seed's, so the reference matches


@given(st.text(max_size=40), st.binary(min_size=16, max_size=64))
def test_keyed_pseudonyms_are_8_hex_and_not_the_unkeyed_prefix(value: str, key: bytes) -> None:
    keyed = LogHash("keyed", key).h8(value)
    assert HEX8.match(keyed)
    # equal only by a 2^-32 coincidence; hypothesis would have to find a prefix collision
    assert keyed != h8(value)


def test_different_secrets_give_unrelated_pseudonyms() -> None:
    other = LogHash("keyed", KEY[::-1])
    names = [f"user{i}" for i in range(200)]
    assert sum(KEYED.h8(n) == other.h8(n) for n in names) == 0


@pytest.mark.parametrize(("mode", "key", "field"), [
    ("md5", b"", "log_hash"),
    ("keyed", b"", "log_hash_key"),
    ("keyed", b"short-secret", "log_hash_key"),
    ("sha256", KEY, "log_hash_key"),
])
def test_an_unusable_log_hash_is_a_typed_error_naming_the_field(mode: str, key: bytes,
                                                                 field: str) -> None:
    with pytest.raises(LogHashError) as caught:
        LogHash(mode, key)
    assert caught.value.field == field and str(caught.value).startswith(field)


def test_the_secret_never_shows_in_the_settings_repr() -> None:
    assert "deployment-secret" not in repr(KEYED)


@pytest.mark.cites("ADR-0019")
def test_every_identifier_field_is_hashed_under_the_key() -> None:
    for name in HASHED_FIELDS:
        assert redact({name: "olivia.smith"}, KEYED) == {f"{name}_h8": KEYED.h8("olivia.smith")}
    assert redact({"org_id": "acme", "sender": ["a", "b"]}, KEYED) == {
        "org_id": "acme", "sender_h8": [KEYED.h8("a"), KEYED.h8("b")]}


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Logging is process-wide: put back the handlers a test replaced with a keyed one."""
    names = ["", LOGGER_NAME, *THIRD_PARTY_LOGGERS]
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                 logging.getLogger(n).propagate) for n in names}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
def test_configure_logging_writes_pseudonyms_under_the_given_mode() -> None:
    stream = io.StringIO()
    configure_logging(stream, logging.INFO, KEYED)
    event("demo", org_id="acme", user_id="olivia.smith", device_id="phone")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["user_id_h8"] == KEYED.h8("olivia.smith")
    assert line["device_id_h8"] == KEYED.h8("phone")
    configure_logging(stream, logging.INFO)  # the default again: the seed's prefix
    event("demo", org_id="acme", user_id="olivia.smith")
    assert json.loads(stream.getvalue().splitlines()[-1])["user_id_h8"] == h8("olivia.smith")


@pytest.mark.usefixtures("restored_logging")
def test_a_keyed_relay_logs_no_unkeyed_pseudonym_of_its_users() -> None:
    stream = io.StringIO()
    configure_logging(stream, logging.DEBUG, KEYED)
    world, client = make_world(memory_stores(), log_hash=KEYED)
    with client:
        world.signup("acme", "olivia.smith")
        admin = world.login("acme", "olivia.smith", "iphone", admin=True)
        world.add_member(admin, "jpatel")
        world.login("acme", "jpatel", "laptop-2")
    text = stream.getvalue()
    assert "http_request" in text
    for ident in ("olivia.smith", "iphone", "jpatel", "laptop-2"):
        assert ident not in text
        assert h8(ident) not in text  # the dictionary attack's target is gone
    assert KEYED.h8("olivia.smith") in text and KEYED.h8("laptop-2") in text


# -- semafore serve ---------------------------------------------------------------------------


def test_log_hash_from_reads_the_secret_from_the_environment_or_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "log-hash.key"
    key_file.write_bytes(KEY + b"\n")
    assert log_hash_from("keyed", key_file, environ={}) == KEYED
    env = {LOG_HASH_KEY_ENV: "another-secret-of-enough-length"}
    assert log_hash_from("keyed", key_file, environ=env).key == b"another-secret-of-enough-length"
    assert log_hash_from("sha256", None, environ={}) == SHA256_LOG_HASH
    with pytest.raises(LogHashError, match=r"log_hash_key.*--log-hash-key-file"):
        log_hash_from("keyed", None, environ={})
    with pytest.raises(LogHashError, match="log_hash_key"):  # a secret left unused
        log_hash_from("sha256", key_file, environ={})
    key_file.write_bytes(b"short\n")
    with pytest.raises(LogHashError, match="at least 16 bytes"):
        log_hash_from("keyed", key_file, environ={})


def test_serve_refuses_keyed_without_a_secret() -> None:
    runner = CliRunner()
    out = runner.invoke(command, ["--log-hash", "keyed"], env={LOG_HASH_KEY_ENV: ""})
    assert out.exit_code == 2
    assert "--log-hash-key-file" in out.output and "log_hash_key" in out.output
    out = runner.invoke(command, ["--log-hash", "blake"])
    assert out.exit_code == 2 and "--log-hash" in out.output


def test_serve_with_log_hash_keyed_writes_keyed_pseudonyms(tmp_path: Path) -> None:
    key_file = tmp_path / "log-hash.key"
    key_file.write_bytes(KEY)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in (RELAY_KEY_ENV, LOG_HASH_KEY_ENV)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--port", str(port),
         "--test-mode", "--test-org", "acme", "--log-hash", "keyed",
         "--log-hash-key-file", str(key_file), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, proc)
        r = httpx.post(f"{url}/v1/orgs", json={"org_id": "acme", "name": "Acme",
                                               "admin_user_id": "olivia.smith"})
        assert r.status_code == 201
        secret = r.json()["totp_secret"]
        seed = base64.b32decode(secret + "=" * (-len(secret) % 8))
        r = httpx.post(f"{url}/v1/auth/login", json={
            "org_id": "acme", "user_id": "olivia.smith", "device_id": "iphone",
            "otp": "000000", "totp": totp(seed, time.time())})
        assert r.status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    text = err.decode()
    for ident in ("olivia.smith", "iphone"):
        assert KEYED.h8(ident) in text
        assert h8(ident) not in text and ident not in text
