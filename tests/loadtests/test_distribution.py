"""Pieces of the distributed run that need no locust process: send-time stamps in message ids
and the master's device-slot pool (issue 16 item 1)."""

from __future__ import annotations

import re
import select
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtests.distribution import SlotPool, SlotsExhausted
from loadtests.stamps import Stamp, StampError, read_stamp, stamp
from semafore.server.models import MESSAGE_ID_PATTERN

FILE_IDS = st.one_of(st.none(), st.text("0123456789abcdef", min_size=32, max_size=32))


@given(sent_at=st.floats(min_value=0, max_value=4e9), file_id=FILE_IDS)
def test_a_stamp_round_trips_and_is_a_message_id_the_relay_accepts(
    sent_at: float, file_id: str | None
) -> None:
    message_id = stamp(sent_at, file_id)
    assert re.match(MESSAGE_ID_PATTERN, message_id)
    read = read_stamp(message_id)
    assert read is not None
    assert read.file_id == file_id
    assert abs(read.sent_at - sent_at) <= 1e-6


def test_ids_without_a_stamp_read_as_none_and_bad_inputs_are_refused() -> None:
    assert read_stamp("4f9a0c2e5b7d4e1f8a3c6b9d2e5f8a1c") is None
    assert read_stamp("abc.notdigits") is None
    assert read_stamp("abc.12.bad/id") is None
    assert read_stamp("n.1500000") == Stamp(1.5, None)
    with pytest.raises(StampError) as info:
        stamp(1.0, "../etc")
    assert info.value.field == "file_id"
    with pytest.raises(StampError):
        stamp(-1.0)


def test_every_stamp_is_fresh() -> None:
    assert stamp(1.0) != stamp(1.0)


@given(st.lists(st.booleans(), max_size=60))
def test_the_slot_pool_never_hands_out_a_device_twice(ops: list[bool]) -> None:
    pool = SlotPool(8)
    online: list[int] = []
    for claim in ops:
        if claim:
            if len(online) == 8:
                with pytest.raises(SlotsExhausted):
                    pool.claim()
                continue
            slot = pool.claim()
            assert slot not in online and 0 <= slot < 8
            online.append(slot)
        elif online:
            pool.release(online.pop(0))
    assert sorted(online) == sorted(pool.taken)


def test_the_pool_hands_out_the_lowest_free_slot_first() -> None:
    pool = SlotPool(4)
    assert [pool.claim() for _ in range(3)] == [0, 1, 2]
    pool.release(1)
    assert pool.claim() == 1
    assert pool.claim() == 3


def test_the_watchdog_lets_locust_write_its_files_then_records_the_termination(
    tmp_path: Path,
) -> None:
    """A generator that does not stop by itself gets SIGUSR1 (it logs where it is stuck),
    SIGUSR2 (it writes its samples and marks), then SIGTERM, and the run records that it was
    terminated."""
    import subprocess
    import sys

    from loadtests.runner import _terminate

    ready = tmp_path / "ready"
    script = (
        "import pathlib, signal, sys, time\n"
        f"out = pathlib.Path({str(tmp_path)!r})\n"
        "signal.signal(signal.SIGUSR1, lambda *_: (out / 'stacks').write_text('dumped'))\n"
        "signal.signal(signal.SIGUSR2, lambda *_: (out / 'samples.csv').write_text('saved'))\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "(out / 'ready').write_text('')\n"
        "while True: time.sleep(0.1)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    while not ready.exists() and child.poll() is None:
        select.select([], [], [], 0.05)
    assert _terminate(child, 1.0, tmp_path) == 1
    assert child.returncode == 0  # it ended on SIGTERM, not on the earlier signals
    assert (tmp_path / "stacks").read_text() == "dumped"
    assert (tmp_path / "samples.csv").read_text() == "saved"
    assert "did not stop within 1 s" in (tmp_path / "locust-terminated.txt").read_text()
