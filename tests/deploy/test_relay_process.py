"""A relay in a process of its own on embedded stores (semafore/deploy/relay_process.py): it
serves on a loopback port, its CPU is readable from /proc, a start-up failure is a typed
error naming the relay, and a sabotage name is checked before anything is spawned."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from semafore.client import SystemClock
from semafore.deploy.errors import RelayStartError
from semafore.deploy.harness_relay import relay_settings
from semafore.deploy.relay_process import RelayProcess, process_cpu_seconds
from semafore.sabotage import UnknownSabotage


def test_the_relay_serves_in_another_process_and_stops_on_exit() -> None:
    with RelayProcess(relay_settings(["org"], SystemClock())) as relay:
        assert relay.pid != os.getpid()
        assert httpx.get(relay.url + "/v1/health", timeout=10).status_code == 200
        assert relay.url.startswith("http://127.0.0.1:")
        assert relay.cpu_seconds() > 0  # importing and starting the app took CPU
    assert not relay.alive()


def test_cpu_seconds_of_this_process_grow_and_a_gone_process_reads_zero() -> None:
    before = process_cpu_seconds(os.getpid())
    sum(i * i for i in range(3_000_000))
    assert process_cpu_seconds(os.getpid()) > before
    assert process_cpu_seconds(2**22 + 12345) == 0.0


def test_a_relay_that_cannot_open_its_stores_is_a_start_error_naming_it() -> None:
    relay = RelayProcess(relay_settings(["org"], SystemClock()), store="nonsense")
    with pytest.raises(RelayStartError) as caught:
        relay.start()
    assert caught.value.relay == "relay"
    assert "nonsense" in caught.value.reason
    assert not relay.alive()


def test_an_unknown_sabotage_is_refused_before_spawning() -> None:
    with pytest.raises(UnknownSabotage):
        RelayProcess(relay_settings(["org"], SystemClock()), sabotage=("relay.no_such_defect",))


PARENT = """
import sys, time
from semafore.client import SystemClock
from semafore.deploy.harness_relay import relay_settings
from semafore.deploy.relay_process import RelayProcess
if __name__ == "__main__":
    relay = RelayProcess(relay_settings(["org"], SystemClock())).start()
    print(relay.pid, flush=True)
    time.sleep(600)
"""


def test_the_relay_does_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        relay_pid = int(parent.stdout.readline())
        assert Path(f"/proc/{relay_pid}").exists()
    finally:
        parent.kill()
        parent.wait(10)
    deadline = time.monotonic() + 20
    while _running(relay_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(relay_pid)


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting for init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
