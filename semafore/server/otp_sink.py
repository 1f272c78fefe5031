"""TEST ONLY: the relay's login-code sink, a file a test harness reads codes from (issue 13).

The reference relay has no mail or SMS gateway. Scenarios that attack the account plane need
organisations that are *not* allow-listed for the ADR-0164 test OTP (the test OTP would make
the attack meaningless), so their users must log in with real one-time codes. With
``Settings.otp_sink`` (``semafore serve --test-mode --otp-sink DIR``) the relay appends every
code it issues to ``DIR/otp-codes.jsonl``, one JSON object a line::

    {"org_id": "acme", "user_id": "alice", "address": "127.0.0.1", "code": "042117"}

like a test mail catcher. A harness reads it with :func:`read_codes` (the simulator's
``--relay-otp-sink DIR`` for an external relay, docs/threats.md). Only codes issued to
members are written (non-members get a decoy nobody receives, ``Relay.request_otp``).

Refused unless ``test_mode`` is on (:class:`OtpSinkRefused`): a production relay never
writes login codes to disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

SINK_FILE = "otp-codes.jsonl"
"""The one file of a sink directory."""


class OtpSinkRefused(ValueError):
    """An OTP sink without test mode (or an unusable sink directory); ``field`` names the
    setting."""

    field = "otp_sink"

    def __init__(self, detail: str) -> None:
        super().__init__(f"otp_sink: {detail}")


@dataclass(frozen=True)
class IssuedCode:
    """One line of a sink: a login code issued to (org, user), bound to ``address``."""

    org_id: str
    user_id: str
    address: str
    code: str


class OtpSink:
    """Appends issued codes to ``DIR/otp-codes.jsonl`` (created 0600; one ``write`` per
    line on an ``O_APPEND`` descriptor, so replica processes sharing a directory never
    interleave partial lines)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / SINK_FILE
        if not Path(directory).is_dir():
            raise OtpSinkRefused(f"{directory} is not a directory")

    def deliver(self, org_id: str, user_id: str, address: str, code: str) -> None:
        line = json.dumps({"org_id": org_id, "user_id": user_id, "address": address,
                           "code": code}, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)


def sink_size(directory: str | Path) -> int:
    """Bytes in the sink now: read from here on with :func:`read_codes` to see only codes
    issued after this moment."""
    try:
        return (Path(directory) / SINK_FILE).stat().st_size
    except FileNotFoundError:
        return 0


def read_codes(directory: str | Path, offset: int = 0) -> list[IssuedCode]:
    """Every complete line of the sink from byte ``offset`` on, oldest first (a line still
    being written is left for the next read)."""
    try:
        with (Path(directory) / SINK_FILE).open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return []
    out = []
    for raw in data.split(b"\n")[:-1]:
        item = json.loads(raw)
        out.append(IssuedCode(str(item["org_id"]), str(item["user_id"]), str(item["address"]),
                              str(item["code"])))
    return out
