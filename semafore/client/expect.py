"""Expectations on one device, for tests: wait for what the device observes, never sleep.

A platform team's test says what a device must see ("a message from alice saying hello",
"a decryption error", "my queue is drained") and awaits it (docs/pytest-plugin.md, issue
#14, the way Signal's mock server gives client teams an expectation API). Every wait is
woken by the event itself: a received message, a client event, or the relay's
``queue_empty`` frame (docs/server.md "WebSocket"); the timeout only bounds a failure.

A match is *claimed*: a message (or decryption error) returned by one wait is never returned
by a later one, so two identical sends need two waits, and what arrived before the wait
started counts (no race with a fast relay). A wait that times out raises
:class:`ExpectationTimeout`, which lists what the device did see, so the failure reads as a
diff between the expectation and reality.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from semafore.client.errors import ClientError
from semafore.protocol.address import SEPARATOR, DeviceAddress, address_argument

if TYPE_CHECKING:
    from semafore.client.client import ClientEvent, Received

DECRYPTION_ERROR_KINDS = ("undecryptable", "untrusted_identity")
"""Client event kinds that mean "a frame arrived and could not be opened": a SPEC §5
protocol error (the detail names it) or an identity the device refuses to trust."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a wait allows by default: generous, because it only bounds a failure (a met
expectation returns the moment its event arrives), and CI machines are slow."""

SHOWN = 10
"""How many arrivals a timeout message lists (the rest are counted)."""

T = TypeVar("T")


class ExpectationTimeout(ClientError, TimeoutError):
    """An expectation on a device was not met in time; ``field`` names the expectation
    (``message``, ``decryption_error``, ``queue_drained``), ``arrived`` what the device saw
    instead (unclaimed messages and its latest events), one line each."""

    def __init__(
        self, device: str, expected: str, timeout: float, arrived: Sequence[str], field: str
    ) -> None:
        self.device = device
        self.expected = expected
        self.timeout = timeout
        self.arrived = tuple(arrived)
        if arrived:
            shown = "\n".join(f"  - {line}" for line in arrived[:SHOWN])
            more = f"\n  ... and {len(arrived) - SHOWN} more" if len(arrived) > SHOWN else ""
            seen = f"what {device} saw instead:\n{shown}{more}"
        else:
            seen = f"{device} saw nothing at all"
        super().__init__(
            f"{device} waited {timeout:g} s for {expected}; it never came.\n{seen}", field=field
        )
        self.args = (self.detail,)  # the expectation names itself: no "(field: …)" suffix


def describe_message(received: Received) -> str:
    body = received.content.body
    try:
        text = repr(body.decode("utf-8"))
    except UnicodeDecodeError:
        text = f"{len(body)} bytes"
    return (f"message from {received.sender} ({received.content.kind}) {text} "
            f"[message_id {received.content.message_id}]")


def describe_event(event: ClientEvent) -> str:
    peer = f" from {event.peer}" if event.peer else ""
    detail = f": {event.detail}" if event.detail else ""
    return f"event {event.kind}{peer}{detail}"


def sender_argument(sender: str | DeviceAddress | None) -> str | None:
    """A wait's ``sender`` filter, checked before waiting: ``None`` (anyone), a user
    (``alice``, no separator) or one device (a :class:`DeviceAddress` or its one text
    ``alice:phone``, SPEC §2 step 6), returned as that text. The retired ``alice/phone``
    spelling is an :class:`AddressArgumentError` naming ``sender``, not a filter that silently
    matches nothing until the timeout (issue #14 item 1)."""
    if sender is None or (isinstance(sender, str) and SEPARATOR not in sender
                          and "/" not in sender):
        return sender
    return str(address_argument(sender, "sender"))


def sender_matches(sender: str | None, user_id: str, address: str) -> bool:
    """``sender`` (as :func:`sender_argument` returns it) names ``user_id`` or ``address``."""
    return sender is None or sender in (user_id, address)


class Expectations:
    """The waiting side of one device: claimed indexes and the futures to wake.

    ``notify`` is called by the device on every message, event and queue notice; each
    waiter then re-checks its condition (a list scan from its own cursor: cheap)."""

    def __init__(self, name: Callable[[], str]) -> None:
        self._name = name
        self._waiters: list[asyncio.Future[None]] = []
        self.claimed_messages: set[int] = set()
        self.claimed_events: set[int] = set()

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def until(
        self,
        found: Callable[[], T | None],
        *,
        timeout: float,
        expected: str,
        field: str,
        arrived: Callable[[], list[str]],
    ) -> T:
        """Return ``found()`` as soon as it is not None, re-checked on every notification;
        raise :class:`ExpectationTimeout` after ``timeout`` seconds."""
        if timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            hit = found()
            if hit is not None:
                return hit
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ExpectationTimeout(self._name(), expected, timeout, arrived(), field)
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def unclaimed(self, inbox: Sequence[Received], events: Sequence[ClientEvent]) -> list[str]:
        """What a failed wait reports: messages no wait has claimed, then the latest events."""
        lines = [describe_message(r) for i, r in enumerate(inbox)
                 if i not in self.claimed_messages]
        lines += [describe_event(e) for e in events[-SHOWN:]]
        return lines
