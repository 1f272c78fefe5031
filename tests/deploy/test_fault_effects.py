"""Backend fault controls say what they changed (issue #11, "faults prove they fired"): each
ManagedProcess verb returns its FaultEffect, empty when the process already was in the state
asked for, on a real child process (the tiny echo server of test_processes)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from semafore.deploy.errors import FaultError
from semafore.deploy.processes import ManagedProcess, ProcessSpec, ProcessState, free_port
from tests.deploy.test_processes import ECHO, echo_ok


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[ManagedProcess]:
    port = free_port()
    proc = ManagedProcess(ProcessSpec("echo", [sys.executable, "-c", ECHO, str(port)],
                                      lambda: echo_ok(port), tmp_path / "echo.log",
                                      startup_timeout=20))
    yield proc
    proc.kill()


def test_each_control_counts_the_change_it_made_and_nothing_for_a_no_op(
    echo: ManagedProcess,
) -> None:
    assert echo.stop() == Counter()  # never started: nothing to stop
    assert echo.kill() == Counter()
    assert echo.start() == Counter(started=1)
    assert echo.resume() == Counter()  # running: nothing to continue
    assert echo.pause() == Counter(paused=1)
    assert echo.pause() == Counter()  # already frozen
    assert echo.state is ProcessState.PAUSED
    assert echo.resume() == Counter(resumed=1)
    first = echo.pid
    assert echo.restart() == Counter(stopped=1, started=1)
    assert echo.pid != first
    assert echo.restart(graceful=False) == Counter(killed=1, started=1)
    assert echo.kill() == Counter(killed=1)
    assert echo.kill() == Counter()  # already dead
    assert echo.stop() == Counter()
    assert echo.restart() == Counter(started=1)  # a stopped process is only started
    assert echo.stop() == Counter(stopped=1)


def test_a_process_that_died_by_itself_is_not_stopped_by_the_fault(
    echo: ManagedProcess,
) -> None:
    echo.start()
    assert echo.pid is not None
    os.kill(echo.pid, signal.SIGKILL)  # it crashed on its own before the scenario's stop
    deadline = time.monotonic() + 10
    while echo.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert echo.stop() == Counter()
    with pytest.raises(FaultError, match="cannot pause, not running"):
        echo.pause()  # no process to signal: an error, not a no-op
