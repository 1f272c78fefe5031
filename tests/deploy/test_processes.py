"""ManagedProcess: the fault controls the simulator uses on backends and server replicas,
exercised on a real child process (a tiny TCP echo server) through real sockets."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from semafore.deploy.errors import BackendUnavailableError, FaultError
from semafore.deploy.processes import ManagedProcess, ProcessSpec, ProcessState, free_port

ECHO = """
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen()
while True:
    conn, _ = srv.accept()
    with conn:
        conn.sendall(conn.recv(100))
"""


def echo_ok(port: int, timeout: float = 0.5) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"ping")
        return sock.recv(4) == b"ping"


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[ManagedProcess]:
    port = free_port()
    spec = ProcessSpec(
        "echo",
        [sys.executable, "-c", ECHO, str(port)],
        lambda: echo_ok(port),
        tmp_path / "echo.log",
        startup_timeout=20,
    )
    spec.extra["port"] = str(port)
    proc = ManagedProcess(spec)
    yield proc
    proc.kill()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_start_waits_for_health_and_stop_leaves_nothing(echo: ManagedProcess) -> None:
    echo.start()
    assert echo.state is ProcessState.RUNNING and echo.healthy()
    pid = echo.pid
    assert pid is not None
    echo.stop()
    after: ProcessState = echo.state
    assert after is ProcessState.STOPPED
    assert not alive(pid)
    echo.stop()  # idempotent


def test_kill9_then_restart_on_the_same_port(echo: ManagedProcess) -> None:
    echo.start()
    first = echo.pid
    echo.kill()
    assert not echo.healthy()
    assert echo.returncode == -9
    echo.start()
    assert echo.pid != first and echo_ok(int(echo.spec.extra["port"]))
    echo.restart(graceful=False)
    assert echo.starts == 3 and echo.healthy()


def test_pause_keeps_the_port_but_answers_nothing(echo: ManagedProcess) -> None:
    echo.start()
    echo.pause()
    assert echo.state is ProcessState.PAUSED
    port = int(echo.spec.extra["port"])
    with pytest.raises(OSError):  # connect succeeds (kernel backlog), the reply never comes
        echo_ok(port, timeout=0.3)
    echo.resume()
    assert echo.healthy()


def test_stop_of_a_paused_process_still_terminates_it(echo: ManagedProcess) -> None:
    echo.start()
    echo.pause()
    echo.stop(timeout=5)
    assert echo.state is ProcessState.STOPPED


def test_faults_on_a_stopped_process_are_typed_errors(echo: ManagedProcess) -> None:
    with pytest.raises(FaultError):
        echo.pause()
    echo.start()
    with pytest.raises(FaultError):
        echo.start()
    echo.stop()
    with pytest.raises(FaultError):
        echo.resume()


def test_a_process_that_dies_at_startup_reports_its_output(tmp_path: Path) -> None:
    spec = ProcessSpec(
        "doomed",
        [sys.executable, "-c", "import sys; print('bad flag'); sys.exit(3)"],
        lambda: False,
        tmp_path / "doomed.log",
    )
    with pytest.raises(BackendUnavailableError) as info:
        ManagedProcess(spec).start()
    assert info.value.backend == "doomed"
    assert "code 3" in info.value.reason and "bad flag" in info.value.log_tail


def test_a_process_that_never_gets_healthy_is_killed(tmp_path: Path) -> None:
    spec = ProcessSpec(
        "mute",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        lambda: False,
        tmp_path / "mute.log",
        startup_timeout=0.5,
    )
    proc = ManagedProcess(spec)
    with pytest.raises(BackendUnavailableError, match="not healthy"):
        proc.start()
    assert not proc.alive


def test_missing_executable_is_a_typed_error(tmp_path: Path) -> None:
    spec = ProcessSpec(
        "ghost", [str(tmp_path / "no-such-binary")], lambda: True, tmp_path / "ghost.log"
    )
    with pytest.raises(BackendUnavailableError, match="cannot execute"):
        ManagedProcess(spec).start()


def test_children_die_with_the_harness_even_on_sigkill(tmp_path: Path) -> None:
    """A harness killed with -9 runs no cleanup; the kernel still takes its backends down."""
    pid_file = tmp_path / "child.pid"
    harness = f"""
import sys, time
from pathlib import Path
from semafore.deploy.processes import ManagedProcess, ProcessSpec
spec = ProcessSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(120)"],
                   lambda: True, Path({str(tmp_path / "sleeper.log")!r}))
proc = ManagedProcess(spec)
proc.start()
Path({str(pid_file)!r}).write_text(str(proc.pid))
time.sleep(120)
"""
    import subprocess
    import time

    parent = subprocess.Popen([sys.executable, "-c", harness])
    try:
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    for _ in range(100):
        if not alive(child):
            break
        time.sleep(0.05)
    assert not alive(child)
