"""The listening socket of every relay the harness launches in this process: bound before the
server starts, so the port is known (``0``: the kernel picks one) and no two launchers differ
in how they bind (issue 14 item 1).

Loopback only (the harness never listens beyond 127.0.0.0/8; ``semafore serve`` binds what
its operator asks for on its own). ``IPPROTO_TCP`` explicitly: asyncio enables TCP_NODELAY only
on sockets whose proto says TCP, and without it every keep-alive request stalls ~40 ms on
delayed ACKs. ``SO_REUSEADDR`` lets a restarted relay take its port back while the previous
incarnation's connections are in TIME_WAIT (a scenario's ``restart`` keeps the address).
"""

from __future__ import annotations

import ipaddress
import socket

from semafore.deploy.errors import SettingsError

LOOPBACK = "127.0.0.1"


def bind_loopback(port: int = 0, host: str = LOOPBACK) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening: uvicorn or asyncio does that
    with the backlog of :func:`semafore.server.serving.accept_backlog`). ``host`` must be an
    IPv4 loopback address (127.0.0.2 stands in for "another machine" in tests); an ``OSError``
    from the bind is raised with the socket closed."""
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SettingsError("host", f"{host!r} is not an IPv4 loopback address")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
