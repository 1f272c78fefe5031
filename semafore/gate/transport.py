"""Talking to an adapter: one JSON request per line out, one JSON response per line back.

:class:`AdapterProcess` runs an adapter as a long-lived subprocess in its own process group.
A reader thread turns stdout into a queue, so every wait is bounded by the case deadline and
the gate can never hang on a silent adapter. Any failure that leaves the stream in an unknown
state (timeout, garbage, wrong id, exit) kills the process; the next request starts a fresh
one. :class:`InProcessTransport` calls a handler function directly (vector verification).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from semafore.gate.verdict import Verdict

MAX_LINE_SHOWN = 200
STDERR_TAIL_LINES = 20


class AdapterFailure(Exception):
    """The adapter did not give a well-formed answer; ``verdict`` says how it failed."""

    def __init__(self, verdict: Verdict, detail: str) -> None:
        super().__init__(f"{verdict.value}: {detail}")
        self.verdict = verdict
        self.detail = detail


class Transport(Protocol):
    """Sends one request and returns the adapter's response object (already validated)."""

    def request(self, op: str, args: Mapping[str, Any], deadline: float) -> dict[str, Any]: ...


def validate_response(line: bytes | str, request_id: int) -> dict[str, Any]:
    """Check one response line against the contract; raise ``AdapterFailure(PROTOCOL)``."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    shown = text.strip()[:MAX_LINE_SHOWN]
    try:
        response = json.loads(text)
    except ValueError:
        raise AdapterFailure(Verdict.PROTOCOL, f"garbage on stdout (not JSON): {shown!r}") from None
    if not isinstance(response, dict):
        raise AdapterFailure(Verdict.PROTOCOL, f"response is not a JSON object: {shown!r}")
    if "id" not in response:
        raise AdapterFailure(Verdict.PROTOCOL, f"response has no id: {shown!r}")
    if response["id"] != request_id:
        raise AdapterFailure(
            Verdict.PROTOCOL,
            f"wrong id: request {request_id!r} answered with id {response['id']!r}",
        )
    ok = response.get("ok")
    if ok is True:
        if not isinstance(response.get("result"), dict):
            raise AdapterFailure(Verdict.PROTOCOL, "ok response without a result object")
    elif ok is False:
        if not isinstance(response.get("error"), str):
            raise AdapterFailure(Verdict.PROTOCOL, "error response without an error name")
        if "detail" in response and not isinstance(response["detail"], str):
            raise AdapterFailure(Verdict.PROTOCOL, "error detail is not a string")
    else:
        raise AdapterFailure(Verdict.PROTOCOL, f"'ok' must be true or false: {shown!r}")
    return response


class AdapterProcess:
    """One adapter subprocess, restarted lazily after any failure."""

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("empty adapter command")
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._next_id = 1
        self.starts = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        self.stop()
        self._lines = queue.Queue()
        self._stderr = deque(maxlen=STDERR_TAIL_LINES)
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,  # own process group: a kill reaches wrapper children
            )
        except OSError as exc:
            self._proc = None
            raise AdapterFailure(Verdict.CRASH, f"cannot start {self.argv[0]!r}: {exc}") from exc
        self.starts += 1
        assert self._proc.stdout is not None and self._proc.stderr is not None
        threading.Thread(
            target=self._pump_stdout, args=(self._proc.stdout, self._lines), daemon=True
        ).start()
        threading.Thread(
            target=self._pump_stderr, args=(self._proc.stderr, self._stderr), daemon=True
        ).start()

    @staticmethod
    def _pump_stdout(stream: Any, lines: queue.Queue[bytes | None]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in iter(stream.readline, b""):
                lines.put(line)
        lines.put(None)  # EOF: the adapter closed stdout or exited

    @staticmethod
    def _pump_stderr(stream: Any, tail: deque[str]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in iter(stream.readline, b""):
                tail.append(line.decode("utf-8", "replace").rstrip())

    def stop(self, grace: float = 1.0) -> None:
        """Close stdin (a well-behaved adapter exits on EOF), then kill the process group."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        self._kill(proc)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    # -- requests --------------------------------------------------------------------------

    def request(self, op: str, args: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        if not self.running:
            self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        request_id = self._next_id
        self._next_id += 1
        stale = self._drain()
        if stale is not None:
            self._kill_current()
            raise AdapterFailure(
                Verdict.PROTOCOL,
                f"unsolicited output before request {op!r}: {stale[:MAX_LINE_SHOWN]!r}",
            )
        line = json.dumps({"id": request_id, "op": op, "args": args}, separators=(",", ":"))
        self._write(proc, line.encode() + b"\n", op, deadline)
        remaining = deadline - time.monotonic()
        try:
            answer = self._lines.get(timeout=max(remaining, 0.0))
        except queue.Empty:
            self._kill_current()
            raise AdapterFailure(
                Verdict.TIMEOUT, f"no answer to {op!r} within the case budget; adapter killed"
            ) from None
        if answer is None:
            raise self._crashed(f"exited while answering {op!r}")
        try:
            return validate_response(answer, request_id)
        except AdapterFailure:
            self._kill_current()  # the stream is out of step: restart for the next case
            raise

    def _drain(self) -> str | None:
        """A line already waiting before we asked anything is a contract violation."""
        try:
            early = self._lines.get_nowait()
        except queue.Empty:
            return None
        if early is None:
            self._lines.put(None)  # EOF: let the request path report the crash
            return None
        return early.decode("utf-8", "replace").strip()

    def _write(self, proc: subprocess.Popen[bytes], data: bytes, op: str, deadline: float) -> None:
        """Write without ever blocking past the deadline (an adapter may stop reading)."""
        assert proc.stdin is not None
        fd = proc.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill_current()
                raise AdapterFailure(
                    Verdict.TIMEOUT, f"adapter stopped reading stdin during {op!r}; killed"
                )
            try:
                _, writable, _ = select.select([], [fd], [], remaining)
                if writable:
                    view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue
            except OSError:
                raise self._crashed("stdin closed before the request could be written") from None

    def _kill_current(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self._kill(proc)

    def _crashed(self, what: str) -> AdapterFailure:
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=2)
            self._kill(proc)
        # give the stderr pump a moment to drain the last lines (the crash reason)
        time.sleep(0.05)
        tail = self.stderr_tail()
        detail = f"adapter {what} (exit status {code})"
        if tail:
            detail += "; stderr: " + tail.splitlines()[-1][:MAX_LINE_SHOWN]
        return AdapterFailure(Verdict.CRASH, detail)

    def __enter__(self) -> AdapterProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InProcessTransport:
    """Calls an adapter handler in-process (no subprocess): for vector verification."""

    def __init__(self, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self._handler = handler
        self._next_id = 1

    def request(self, op: str, args: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        request_id = self._next_id
        self._next_id += 1
        response = self._handler({"id": request_id, "op": op, "args": dict(args)})
        return validate_response(json.dumps(response), request_id)

    def stop(self) -> None:
        """Nothing to stop; present so both transports share a lifecycle."""
