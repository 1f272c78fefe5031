"""The public socket of an in-process relay replica: a byte pipe a pause freezes.

A process can be SIGSTOPped; a relay that is one task of this event loop cannot be stopped
alone. So every in-process replica (:mod:`semafore.deploy.inprocess_replicas`) is reached
through its own front, which is what clients see as the replica's address, and a pause
freezes the front: open connections stay open, new ones are accepted (as the kernel's backlog
would) and hang, nothing is answered; on resume every held byte goes through in order
(docs/simulator.md "Server replicas"). The relay's own timers keep running meanwhile, which a
real SIGSTOP would freeze too: pauses longer than the WebSocket ping timeout (20 s) are not
faithful.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from semafore.deploy.listener import LOOPBACK as HOST
from semafore.deploy.listener import bind_loopback
from semafore.deploy.replica_record import InfraRecord


class PausableFront:
    """The replica's public socket: a byte pipe to the uvicorn socket that a pause freezes.

    Each accepted connection gets its own connection to the backend; every chunk read either
    way waits for the gate before it is written (and so does the end of the stream), so while
    paused nothing moves and TCP back-pressure fills the buffers as it would for a stopped
    process. A graceful stop lets the backend close its side (close frames, EOF), which the
    pipe passes on; a kill resets both sides at once.
    """

    def __init__(self) -> None:
        self.backend: tuple[str, int] = (HOST, 0)
        self.gate = asyncio.Event()
        self.gate.set()
        self.held_by: InfraRecord | None = None
        """The pause in force: it counts what waits at the gate."""
        self.waiting: Counter[str] = Counter()
        """Connections and bytes waiting at the gate now (released on resume)."""
        self.listener: asyncio.Server | None = None
        self.pipes: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self, port: int) -> int:
        for _ in range(50):
            try:
                sock = bind_loopback(port)
                break
            except OSError:
                await asyncio.sleep(0.1)  # the previous incarnation's socket is closing
        else:
            raise OSError(f"port {port} stays busy")
        self.gate.set()
        self.listener = await asyncio.start_server(self._accept, sock=sock, backlog=4096,
                                                   limit=2**22)
        return int(sock.getsockname()[1])

    def hold(self, by: InfraRecord) -> None:
        self.held_by = by
        self.gate.clear()

    def resume(self) -> Counter[str]:
        """Open the gate; what was waiting at it (``connections_released``,
        ``bytes_released``), nothing if it was open."""
        released: Counter[str] = Counter()
        if not self.gate.is_set():
            released["connections_released"] = self.waiting["connections"]
            released["bytes_released"] = self.waiting["bytes"]
        self.held_by = None
        self.gate.set()
        return released

    def open_connections(self) -> int:
        """Client connections open through the front (each has its accept task)."""
        return sum(1 for task in self.tasks if not task.done())

    async def _pass_gate(self, what: str, n: int) -> None:
        """Wait for the gate; if it is closed, the pause counts ``n`` held ``what``."""
        if self.gate.is_set():
            return
        if self.held_by is not None and n:
            self.held_by.note(f"{what}_held", n)
        self.waiting[what] += n
        try:
            await self.gate.wait()
        finally:
            self.waiting[what] -= n

    async def close_listener(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()

    def reset_all(self) -> int:
        """Reset every connection through the front; how many client connections were
        still open."""
        open_before = self.open_connections()
        for pair in list(self.pipes):
            for writer in pair:
                if not writer.transport.is_closing():
                    writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        return open_before

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for the pipes to pass the backend's goodbye on (then reset stragglers)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.tasks and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.reset_all()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._pass_gate("connections", 1)  # a paused process accepts nothing (the
            # backlog holds it)
            # from the client's own (loopback) address, as a transparent balancer would: the
            # relay keys login throttles and codes by client address (issue 13 F-3, F-4)
            peer = writer.get_extra_info("peername")
            try:
                up_r, up_w = await asyncio.open_connection(
                    *self.backend, limit=2**22,
                    local_addr=(peer[0], 0) if peer and peer[0] != HOST else None)
            except OSError:
                writer.transport.abort()
                return
            pair = (writer, up_w)
            self.pipes.add(pair)
            try:
                await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))
            except (ConnectionError, OSError):
                pass
            finally:
                self.pipes.discard(pair)
                for w in pair:
                    if not w.transport.is_closing():
                        w.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
        finally:
            self.tasks.discard(task)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            data = await src.read(65536)
            await self._pass_gate("bytes", len(data))
            if not data:
                with contextlib.suppress(OSError):
                    if dst.can_write_eof():
                        dst.write_eof()
                return
            dst.write(data)
            await dst.drain()
