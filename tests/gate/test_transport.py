"""The adapter transport: response validation and subprocess failure modes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from semafore.gate.transport import AdapterFailure, AdapterProcess, validate_response
from semafore.gate.verdict import Verdict

from .conftest import python_command


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json\n", "garbage on stdout"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"ok": true, "result": {}}\n', "has no id"),
        (b'{"id": 8, "ok": true, "result": {}}\n', "wrong id"),
        (b'{"id": 7, "ok": "yes"}\n', "'ok' must be true or false"),
        (b'{"id": 7, "ok": true}\n', "without a result object"),
        (b'{"id": 7, "ok": false}\n', "without an error name"),
        (b'{"id": 7, "ok": false, "error": "X", "detail": 5}\n', "detail is not a string"),
    ],
)
@pytest.mark.cites("SPEC §7 r1")
def test_malformed_responses_are_protocol_violations(line: bytes, message: str) -> None:
    with pytest.raises(AdapterFailure, match=message) as caught:
        validate_response(line, 7)
    assert caught.value.verdict is Verdict.PROTOCOL


@pytest.mark.cites("SPEC §7 r1")
def test_well_formed_responses_pass_through() -> None:
    ok = validate_response(b'{"id": 7, "ok": true, "result": {"a": 1}}', 7)
    assert ok["result"] == {"a": 1}
    err = validate_response(json.dumps({"id": 7, "ok": False, "error": "InvalidKey"}), 7)
    assert err["error"] == "InvalidKey"


def deadline(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def test_a_missing_executable_is_a_crash() -> None:
    process = AdapterProcess("/nonexistent/adapter --flag")
    with pytest.raises(AdapterFailure, match="cannot start") as caught:
        process.request("capabilities", {}, deadline())
    assert caught.value.verdict is Verdict.CRASH


def test_an_adapter_that_exits_is_a_crash_with_its_status_and_stderr() -> None:
    script = "import sys; sys.stderr.write('boom: bad key\\n'); sys.exit(7)"
    with (
        AdapterProcess(python_command("-c", script)) as process,
        pytest.raises(AdapterFailure) as caught,
    ):
        process.request("capabilities", {}, deadline())
    assert caught.value.verdict is Verdict.CRASH
    assert "exit status 7" in caught.value.detail
    assert "boom: bad key" in caught.value.detail


def test_a_silent_adapter_times_out_and_is_killed() -> None:
    script = "import time; time.sleep(120)"
    with AdapterProcess(python_command("-c", script)) as process:
        started = time.monotonic()
        with pytest.raises(AdapterFailure, match="killed") as caught:
            process.request("capabilities", {}, deadline(0.3))
        assert caught.value.verdict is Verdict.TIMEOUT
        assert not process.running
        assert time.monotonic() - started < 30  # bounded: never a hung gate


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:\tZ") for line in status)
    except FileNotFoundError:
        return False


def test_the_process_group_is_killed_so_wrapper_children_die_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "child.wait()\n"
    )
    process = AdapterProcess(python_command("-c", script))
    with pytest.raises(AdapterFailure):
        process.request("capabilities", {}, deadline(3.0))
    child = int(pid_file.read_text())
    for _ in range(50):
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)


def test_the_reference_adapter_answers_in_order_over_one_process() -> None:
    with AdapterProcess(python_command("-m", "semafore.adapter")) as process:
        first = process.request("capabilities", {}, deadline())
        second = process.request("no.such.op", {}, deadline())
        assert process.starts == 1
    assert first["ok"] is True
    assert second == {
        "id": 2,
        "ok": False,
        "error": "Unsupported",
        "detail": "operation 'no.such.op' is not implemented",
    }


def test_an_adapter_that_stops_reading_stdin_cannot_block_the_gate() -> None:
    script = "import time; time.sleep(120)"  # never reads: the pipe buffer fills up
    with AdapterProcess(python_command("-c", script)) as process:
        with pytest.raises(AdapterFailure, match="stopped reading stdin") as caught:
            process.request("blob", {"data": "00" * 1_000_000}, deadline(0.5))
        assert caught.value.verdict is Verdict.TIMEOUT
        assert not process.running


def test_unsolicited_output_is_a_protocol_violation() -> None:
    script = (
        "import sys, json\n"
        "print('banner: adapter v1 ready', flush=True)\n"
        "for line in sys.stdin:\n"
        "    req = json.loads(line)\n"
        "    print(json.dumps({'id': req['id'], 'ok': True, 'result': {}}), flush=True)\n"
    )
    with AdapterProcess(python_command("-c", script)) as process:
        process.start()
        time.sleep(0.5)  # the banner is already waiting when the gate asks
        with pytest.raises(AdapterFailure, match="unsolicited output") as caught:
            process.request("capabilities", {}, deadline())
    assert caught.value.verdict is Verdict.PROTOCOL
    assert "banner" in caught.value.detail
