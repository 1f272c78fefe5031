"""Message ids that carry their send time (and an attachment's file id) to the recipient.

The headline metric, send→delivered latency, needs the moment the sender started sending
when the recipient device receives the envelope. With one locust process a dictionary held
it; with a locust master and workers (issue 16 item 1) sender and recipient devices are
often in different processes, even on different machines. So each send gets a fresh message
id (as the corpus replay always did: a client chooses its message ids, the relay only checks
their syntax, ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``) that carries the sender's wall-clock
send time in microseconds and, for an attachment announcement, the file id a real recipient
would read inside the decrypted pointer. Across machines the latency is then only as good as
the machines' clock synchronisation (docs/load.md).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

_FILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class StampError(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


@dataclass(frozen=True)
class Stamp:
    sent_at: float  # wall-clock seconds when the sender started sending
    file_id: str | None = None


def stamp(sent_at: float, file_id: str | None = None, nonce: str | None = None) -> str:
    """A fresh message id: ``NONCE.MICROSECONDS[.FILE_ID]`` (at most 99 characters)."""
    if sent_at < 0:
        raise StampError("sent_at", "must be >= 0")
    if file_id is not None and not _FILE_ID.match(file_id):
        raise StampError("file_id", f"not an id the relay issues: {file_id!r}")
    head = nonce if nonce is not None else uuid.uuid4().hex[:16]
    text = f"{head}.{round(sent_at * 1_000_000)}"
    return text if file_id is None else f"{text}.{file_id}"


def read_stamp(message_id: str) -> Stamp | None:
    """The stamp a load-run message id carries, or None for any other id."""
    parts = message_id.split(".")
    if len(parts) not in (2, 3) or not parts[1].isdigit():
        return None
    file_id = parts[2] if len(parts) == 3 else None
    if file_id is not None and not _FILE_ID.match(file_id):
        return None
    return Stamp(int(parts[1]) / 1_000_000, file_id)
