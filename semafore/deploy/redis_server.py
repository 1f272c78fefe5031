"""How this harness runs one ``redis-server`` on this machine: the arguments every Redis
process of the ``local`` provider shares, whatever its role (the single shape's server, a
Sentinel-watched replica, a Redis Cluster node; docs/backends.md "Cluster shape").

Why one definition: these flags are the harness's safety and oracle guarantees, not tuning.
``--bind 127.0.0.1`` and ``--protected-mode yes`` keep every server off the network (the
project's rule: everything binds to loopback); ``--daemonize no`` keeps the process the
supervisor's child, so a fault (kill -9, SIGSTOP) hits the server itself
(:mod:`semafore.deploy.processes`); ``--logfile ""`` sends the log to stdout, which the
supervisor writes to the process's log file; ``--rdbcompression no`` keeps RDB strings
uncompressed so the plaintext oracle can find a canary in the files (seed §3.3, docs/oracle.md).
A server written out by hand in three places drifts: one of them forgets a flag.
"""

from __future__ import annotations

from pathlib import Path

LOOPBACK = "127.0.0.1"


def redis_server_argv(binary: Path, port: int, data: Path, *extra: str) -> list[str]:
    """The argv of a ``redis-server`` listening on ``127.0.0.1:port`` with its files in
    ``data``; ``extra`` (persistence, replication, cluster flags) come last, so a role may
    add to the base but the base is the same for every role."""
    return [
        str(binary),
        "--port", str(port),
        "--bind", LOOPBACK,
        "--dir", str(data),
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", "",
        "--rdbcompression", "no",
        *extra,
    ]
