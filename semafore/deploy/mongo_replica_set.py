"""MongoDB as a three-member replica set of ``mongod`` processes on 127.0.0.1: the ``cluster``
shape's MongoDB where a ``mongod`` binary is installed (issue #16 item 5, docs/backends.md
"Cluster shape"; accounts, keys, tokens, attachment metadata and audit, seed §3.3).

Only with ``mongod``: FerretDB (this project's stand-in when no ``mongod`` is installed) speaks
the wire protocol over SQLite and has no replica sets, no ``replSetInitiate`` and no oplog, so
with FerretDB the cluster shape keeps one FerretDB process (docs/backends.md says so).

Why three members: the smallest set in which a majority (two) survives the loss of any one, so
a new primary can be elected and majority-acknowledged writes survive (the MongoDB manual's
minimal production replica set). The provider's own ``mongodb`` process is member 0 with the
highest priority, so it is the initial primary and the single shape's fault target stays the
primary until a fault moves it.

Not exercised on this project's machines: no ``mongod`` is installed here, so only the
configuration this module sends (:func:`replica_set_config`) and the URL it hands out are
tested; that a set forms, elects and fails over is unverified (docs/backends.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pymongo
import pymongo.errors

from semafore.deploy import health
from semafore.deploy.errors import BackendUnavailableError
from semafore.deploy.processes import ManagedProcess, ProcessSpec, free_ports

REPLICA_SET = "semafore"
"""The replica set's name (``--replSet`` of every member, ``replicaSet=`` of the URL)."""

MEMBERS = 3
PRIMARY = 1  # replSetGetStatus member states (MongoDB manual, "Replica Set Member States")
SECONDARY = 2


def replica_set_config(ports: list[int], name: str = REPLICA_SET) -> dict[str, Any]:
    """The ``replSetInitiate`` document: one member per port on 127.0.0.1, the first with
    priority 2 (the others 1), so the provider's own process is elected primary first."""
    if len(ports) != len(set(ports)) or not ports:
        raise ValueError("ports: one distinct port per member")
    return {
        "_id": name,
        "members": [
            {"_id": index, "host": f"127.0.0.1:{port}", "priority": 2 if index == 0 else 1}
            for index, port in enumerate(ports)
        ],
    }


def replica_set_url(ports: list[int], name: str = REPLICA_SET) -> str:
    """A URL naming every member and the set, so a client finds the primary after a failover."""
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return f"mongodb://{hosts}/?replicaSet={name}"


def _member_url(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


class MongoReplicaSet:
    """Two more ``mongod`` members around a running ``mongod --replSet`` on ``primary_port``
    (the provider's ``mongodb`` process, started by the caller), initiated and waited for
    until member 0 is primary and both others are secondaries; ``stop`` stops what it started.
    """

    def __init__(
        self,
        mongod: Path,
        root: Path,
        primary: ManagedProcess,
        primary_port: int,
        *,
        startup_timeout: float = 60.0,
    ) -> None:
        self.mongod = mongod
        self.root = root
        self.primary = primary
        self.primary_port = primary_port
        self.startup_timeout = startup_timeout
        self.members: list[tuple[ManagedProcess, int]] = []

    @property
    def ports(self) -> list[int]:
        return [self.primary_port, *(port for _, port in self.members)]

    @property
    def url(self) -> str:
        return replica_set_url(self.ports)

    @property
    def processes(self) -> list[ManagedProcess]:
        return [proc for proc, _ in self.members]

    def start(self) -> str:
        """Start the other members, initiate the set, wait until it formed; its URL."""
        for index, port in enumerate(free_ports(MEMBERS - 1), 1):
            proc = ManagedProcess(self._member_spec(index, port))
            self.members.append((proc, port))
            proc.start(wait=False)
        for proc in self.processes:
            proc.wait_healthy(self.startup_timeout)
        with self._client(self.primary_port) as client:
            client.admin.command("replSetInitiate", replica_set_config(self.ports))
        self._wait_formed()
        return self.url

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.members.clear()

    def member_states(self) -> dict[int, int]:
        """Port -> member state, as the member on ``primary_port`` reports them."""
        with self._client(self.primary_port) as client:
            status = client.admin.command("replSetGetStatus")
        return {int(str(m["name"]).rsplit(":", 1)[1]): int(m["state"])
                for m in status.get("members", [])}

    def _member_spec(self, index: int, port: int) -> ProcessSpec:
        data = self.root / f"mongodb-member-{index}"
        data.mkdir()
        url = _member_url(port)
        argv = [str(self.mongod), "--port", str(port), "--bind_ip", "127.0.0.1",
                "--dbpath", str(data), "--quiet", "--replSet", REPLICA_SET]
        return ProcessSpec(
            f"mongodb-member-{index}", argv,
            lambda: health.mongodb_ping(url), self.root / f"mongodb-member-{index}.log",
            cwd=data, startup_timeout=self.startup_timeout,
        )

    def _client(self, port: int) -> pymongo.MongoClient[dict[str, Any]]:
        return pymongo.MongoClient(_member_url(port), serverSelectionTimeoutMS=5000)

    def _wait_formed(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        want = {port: SECONDARY for port in self.ports[1:]} | {self.primary_port: PRIMARY}
        last: object = "not asked yet"
        while time.monotonic() < deadline:
            try:
                last = self.member_states()
                if last == want:
                    return
            except pymongo.errors.PyMongoError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise BackendUnavailableError(
            "mongodb", f"replica set not formed after {self.startup_timeout:.0f} s ({last})"
        )
