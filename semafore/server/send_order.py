"""The order of one socket's sends while they overlap (issue #16 item 4, docs/backends.md
"Overlapping a socket's sends").

Why overlap: on a store whose send waits on a round trip (Redis: one script per send), a
socket that awaits each send before reading its next frame has one send in flight, so a busy
device's sends take one trip each and a relay with few sockets waits more than it works. The
WebSocket (``semafore.server.websocket``) therefore starts a send as soon as its frame is
read, up to ``MAX_SENDS_IN_FLIGHT`` per socket, when the store says its calls take effect in
the order they are started (``QueueStore.pipelines_sends``); the sends then share the
store's pipelined trips.

What must not change is the order a device's envelopes are queued in: one device's messages
to one recipient arrive in the order it sent them (the first message of a session carries
the X3DH header the later ones depend on, SPEC §2–§3; the client's own order is the
conversation's). Each send takes a :class:`Turn` when its frame is read; its store call is
started only once every earlier send of the socket has started its own, or ended without one
(refused by a check, answered from the ledger). Everything before the store call (the checks,
the account cache, a store read on a cache miss) runs concurrently; the store calls start in
frame order, and the store applies them in that order. Replies keep frame order separately
(the socket's reply slots).

Cost: taking a turn whose predecessors have all started is a comparison, no await.
"""

from __future__ import annotations

import asyncio

__all__ = ["SendOrder", "Turn"]


class SendOrder:
    """Tickets in frame order; a ticket's store call waits until every lower ticket passed."""

    def __init__(self) -> None:
        self._next = 0  # the ticket the next frame gets
        self._low = 0  # every ticket below this one has passed
        self._passed: set[int] = set()  # passed, above _low (a later send ended first)
        self._waiting: dict[int, asyncio.Future[None]] = {}

    def turn(self) -> Turn:
        """The next ticket, for the frame read now."""
        turn = Turn(self, self._next)
        self._next += 1
        return turn

    @property
    def unpassed(self) -> int:
        """Tickets handed out and not passed yet."""
        return self._next - self._low - len(self._passed)

    async def _wait(self, ticket: int) -> None:
        if ticket <= self._low:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = waiter
        try:
            await waiter
        finally:
            self._waiting.pop(ticket, None)

    def _pass(self, ticket: int) -> None:
        if ticket < self._low or ticket in self._passed:
            return  # passing twice is harmless: the socket passes every turn when it ends
        self._passed.add(ticket)
        while self._low in self._passed:
            self._passed.discard(self._low)
            self._low += 1
        waiter = self._waiting.get(self._low)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Turn:
    """One send's place in its socket's order."""

    __slots__ = ("order", "ticket")

    def __init__(self, order: SendOrder, ticket: int) -> None:
        self.order = order
        self.ticket = ticket

    async def wait(self) -> None:
        """Return once every earlier send of the socket has started its store call or ended."""
        await self.order._wait(self.ticket)

    def passed(self) -> None:
        """This send has started its store call, or will not make one: later sends may go."""
        self.order._pass(self.ticket)
