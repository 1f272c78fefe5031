"""A fleet of virtual users and devices on one asyncio loop, each a real client (real crypto,
real sockets) against a real relay (issue 5, "Simulator").

The fleet runs ``replicas`` reference relays in this process on free 127.0.0.1 ports, all on
the same stores with push across them (:mod:`semafore.deploy.inprocess_replicas`), or
targets any ``url`` (an external relay, :mod:`simulator.external`: ``fleet.url`` is its base
URL, which devices reach through their proxy links, and the clock is the relay's wall clock).
Each device is assigned a replica (seeded, or pinned) and its link fails over to the next one
that accepts when its replica is down. Every device gets its own
:class:`~semafore.client.DeviceClient` and, when a :class:`~simulator.network.Network` is in
use, its own proxy link, so faults and the wire capture can be per device. The fleet keeps
the ledger of what was sent to whom and what arrived, which is what delivery assertions and
the benchmark read.

Determinism: entropy is ``SeededEntropy(seed)`` forked per device installation, the client
clock is a :class:`ManualClock` shared with the relay, and the caller decides the order of
operations; the relay's own random ids (delivery ids, tokens) never enter an envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from semafore.client import Account, DeviceClient, ManualClock, Received, create_organisation
from semafore.client.account import OtpSource, fixed_otp
from semafore.client.client import ClientEvent
from semafore.client.device import PrekeyPolicy
from semafore.client.errors import ClientError
from semafore.deploy.harness_relay import relay_settings
from semafore.deploy.inprocess import RunningRelay, serve_in_task
from semafore.deploy.inprocess_replicas import (
    InProcessReplica,
    PushFactory,
    ReplicaError,
)
from semafore.deploy.local_push import LocalPushBus
from semafore.deploy.replica_record import InfraRecord
from semafore.protocol.address import DeviceAddress, address_argument
from semafore.protocol.entropy import SeededEntropy
from semafore.server.settings import Settings
from semafore.storage.memory import memory_stores
from semafore.storage.ports import Stores
from simulator.network import Network
from simulator.placement import assign, preference

log = logging.getLogger(__name__)

class FleetSetupError(Exception):
    """The fleet could not set a cast up on the relay (an organisation's signup refused)."""


OPERATOR = "operator"
"""The hidden organisation admin who signs the organisation up and enrols its members."""


@contextlib.asynccontextmanager
async def serve_relay(
    settings: Settings, stores: Stores, port: int = 0
) -> AsyncIterator[RunningRelay]:
    """The relay in this event loop on 127.0.0.1 (sized for a fleet by
    :func:`relay_settings`, not by uvicorn options: one configuration, issue 14 item 1)."""
    async with serve_in_task(settings, stores, port) as running:
        yield running


@dataclass
class Delivery:
    """One envelope the fleet expects to arrive (sender, message id, recipient device)."""

    sender: str
    message_id: str
    recipient: str


@dataclass
class Ledger:
    """What was sent to which device, and what arrived (by ``sender_user/message_id``).

    ``pending`` is kept incrementally (an arrival may be seen before the sender's send call
    returns), so asking "is everything delivered?" costs O(1) however big the fleet.
    """

    expected: dict[str, set[str]] = field(default_factory=dict)  # recipient -> keys
    arrived: dict[str, list[str]] = field(default_factory=dict)  # recipient -> keys, in order
    seen: dict[str, set[str]] = field(default_factory=dict)  # recipient -> keys arrived
    envelopes: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    # (sender address, recipient address, message id, envelope bytes) as the clients sent them
    pending: int = 0

    def expect(self, sender_user: str, message_id: str, recipient: str) -> None:
        key = f"{sender_user}/{message_id}"
        want = self.expected.setdefault(recipient, set())
        if key not in want:
            want.add(key)
            if key not in self.seen.get(recipient, ()):
                self.pending += 1

    def arrive(self, recipient: str, key: str) -> None:
        self.arrived.setdefault(recipient, []).append(key)
        have = self.seen.setdefault(recipient, set())
        if key not in have:
            have.add(key)
            if key in self.expected.get(recipient, ()):
                self.pending -= 1

    def missing(self, recipients: Iterable[str] | None = None) -> dict[str, set[str]]:
        if recipients is None and self.pending == 0:
            return {}
        out = {}
        for recipient in recipients if recipients is not None else self.expected:
            gap = self.expected.get(recipient, set()) - self.seen.get(recipient, set())
            if gap:
                out[recipient] = gap
        return out


class Fleet:
    """Virtual organisations, users and devices against the relay (one or more replicas)."""

    def __init__(
        self,
        *,
        seed: int | str = 0,
        url: str | None = None,
        stores: Stores | None = None,
        network: bool = True,
        capture: bool = True,
        clock: ManualClock | None = None,
        opk_count: int = 20,
        keep_envelopes: bool = True,
        ws_send_timeout: float = 2.0,
        settings_overrides: dict[str, Any] | None = None,
        replicas: int = 1,
        pins: Mapping[DeviceAddress, int] | Mapping[str, int] | None = None,
        push: PushFactory | None = None,
        otp: OtpSource | None = None,
    ) -> None:
        if replicas < 1:
            raise ValueError("a fleet needs at least one relay replica")
        if url is not None and replicas != 1:
            raise ValueError("replicas run in this process; a fleet aimed at a url has one relay")
        placed = {address_argument(address, "pins"): index
                  for address, index in (pins or {}).items()}
        for address, index in placed.items():
            if not 0 <= index < replicas:
                raise ValueError(f"{address} is pinned to replica {index}; there are "
                                 f"{replicas} (0-{replicas - 1})")
        self.seed = seed
        self.entropy = SeededEntropy(f"semafore-sim:{seed}")
        self.clock = clock or ManualClock()
        self.url = url
        self.stores = stores
        self.use_network = network
        self.capture = capture
        self.opk_count = opk_count
        self.keep_envelopes = keep_envelopes
        self.ws_send_timeout = ws_send_timeout
        self.settings_overrides = settings_overrides or {}
        self.orgs: dict[str, Account] = {}  # org -> admin account
        self.org_of: dict[str, str] = {}
        self.accounts: dict[str, Account] = {}
        self.totp: dict[str, str] = {}
        self.network: Network | None = None
        self.server: RunningRelay | None = None
        self.ledger = Ledger()
        self.events: list[tuple[str, ClientEvent]] = []
        self.received: list[tuple[str, Received]] = []
        self._stack = contextlib.AsyncExitStack()
        self._progress = asyncio.Event()
        self._org_ids: list[str] = []
        self._settings: Settings | None = None
        self.replica_count = replicas
        self.pins = {str(address): index for address, index in placed.items()}
        self.push_factory = push
        # where logins get their one-time codes: the test OTP (ADR-0164), or e.g. the
        # relay's OTP sink for orgs off the allow-list (simulator.attacks.harness)
        self.otp: OtpSource = otp or fixed_otp()
        self.replicas: list[InProcessReplica] = []
        self.ops_network: Network | None = None
        """A capture-less network for the operator consoles when there are several replicas
        (failover for admin calls, outside every adversary's view)."""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, orgs: Iterable[str]) -> None:
        """Start the relay (unless ``url`` was given) and the network layer."""
        self._org_ids = list(orgs)
        if self.url is None:
            if self.stores is None:
                self.stores = memory_stores()
            await self.start_relay()
        if self.use_network:
            assert self.url is not None
            host, port = _host_port(self.url)
            self.network = Network(host, port, seed=self.seed, capture=self.capture,
                                   clock=self.clock.now)
            if self.replicas:
                self.network.route = self.route
                if len(self.replicas) > 1:
                    self.ops_network = Network(host, port, seed=self.seed, capture=False,
                                               clock=self.clock.now)
                    self.ops_network.route = self.route

    # -- relay replicas ----------------------------------------------------------------------

    def replica_of(self, address: DeviceAddress | str) -> int:
        """The replica ``address`` connects to first (its pin, else seeded)."""
        return assign(self.seed, str(address_argument(address, "address")),
                      self.replica_count, self.pins)

    def route(self, address: str) -> list[tuple[str, int]]:
        """Where a device's new connection goes: its replica, then the others in order."""
        first = self.replica_of(address)
        return [self.replicas[i].address for i in preference(first, len(self.replicas))
                if self.replicas[i].port]

    def replica(self, index: int) -> InProcessReplica:
        if not 0 <= index < len(self.replicas):
            raise ReplicaError(f"replica {index} does not exist (the fleet runs "
                               f"{len(self.replicas)})")
        return self.replicas[index]

    async def start_relay(self, port: int = 0, *, replica: int | None = None) -> InfraRecord:
        """Start the in-process relay replicas (or one); a restart reuses the same settings
        (and so the same token signing key) and port, like a redeployed replica. Replicas
        already running are left alone (the record counts only those started)."""
        assert self.stores is not None
        if not self.replicas:
            settings = self._settings = relay_settings(
                self._org_ids, self.clock, **self.settings_overrides
            )
            push = self.push_factory
            if push is None:
                bus = LocalPushBus()
                push = lambda _index: bus.hub()  # noqa: E731
            self.replicas = [InProcessReplica(i, settings, self.stores, push)
                             for i in range(self.replica_count)]
            self.replicas[0].port = port
        record = InfraRecord("start", replica)
        for r in self._chosen(replica):
            record.merge(await r.start())
        first = self.replicas[0]
        self.server = RunningRelay(first.address[0], first.port, first.app)  # type: ignore[arg-type]
        self.url = first.url
        return record

    async def stop_relay(self, *, replica: int | None = None, kill: bool = False) -> InfraRecord:
        """Stop every replica (or one): gracefully, or ``kill`` (sockets reset, requests
        cancelled; ``InProcessReplica.kill``). Stopping a paused replica
        releases what it held first (docker stop sends SIGCONT with SIGTERM); killing it
        discards what it held. Stopped replicas stay stopped (nothing counted)."""
        record = InfraRecord("kill" if kill else "stop", replica)
        for r in self._chosen(replica):
            record.merge(await (r.kill() if kill else r.stop()))
        return record

    async def restart_relay(self, *, replica: int | None = None) -> InfraRecord:
        """Stop the in-process relay replicas (or one) and start them again on the same
        stores and ports (a stopped replica is just started)."""
        record = InfraRecord("restart", replica)
        record.merge(await self.stop_relay(replica=replica))
        record.merge(await self.start_relay(replica=replica))
        return record

    def pause_replica(self, index: int) -> InfraRecord:
        """SIGSTOP: every byte to and from the replica is held (open sockets stay open, new
        connections hang) until :meth:`unpause_replica` (semafore.deploy.replica_front). The record
        counts what is held meanwhile."""
        return self.replica(index).pause()

    def unpause_replica(self, index: int) -> InfraRecord:
        return self.replica(index).unpause()

    def _chosen(self, replica: int | None) -> list[InProcessReplica]:
        return self.replicas if replica is None else [self.replica(replica)]

    async def close(self) -> None:
        for account in list(self.accounts.values()) + list(self.orgs.values()):
            await account.close()
        if self.network is not None:
            await self.network.close()
        if self.ops_network is not None:
            await self.ops_network.close()
        await self.stop_relay()
        if self.stores is not None and self.url is not None:
            with contextlib.suppress(Exception):
                await self.stores.close()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- cast ------------------------------------------------------------------------------

    def _url_for(self, address: str) -> str:
        # Links are created in add_device (async); this returns the base URL for an address.
        if self.network is not None and address in self.network.links:
            return self.network.links[address].url
        if self.ops_network is not None and address in self.ops_network.links:
            return self.ops_network.links[address].url
        assert self.url is not None
        return self.url

    async def add_org(self, org_id: str, members: Iterable[str], *, admin: str | None = None,
                      seats: int | None = None) -> None:
        """Sign the organisation up (``admin`` or the hidden operator is its admin, with TOTP)
        and enrol ``members``."""
        assert self.url is not None
        admin_user = admin or f"{OPERATOR}-{org_id}"
        try:
            out = await create_organisation(self.url, org_id, org_id, admin_user,
                                            self.entropy.fork(f"org:{org_id}"))
        except ClientError as exc:  # a relay by URL: the org must be new and allow-listed
            raise FleetSetupError(
                f"signing up organisation {org_id!r} at {self.url} failed: {exc} (a relay "
                f"given by URL must run in test mode with --test-org {org_id}, and the "
                "organisation must not exist yet: a fresh --org per run)") from exc
        self.totp[admin_user] = str(out["totp_secret"])
        if self.ops_network is not None:
            await self.ops_network.link(f"{admin_user}:console")
        console_account = Account(
            org_id, admin_user, self._url_for, self._entropy_for, self.clock, self.otp,
            totp_secret=self.totp[admin_user], opk_count=1, client_options=self._client_options(),
        )
        console = await console_account.add_device("console", connect=False)
        self.orgs[org_id] = console_account
        users = [u for u in dict.fromkeys(members) if u != admin_user]
        await console.http.json("PUT", f"/v1/orgs/{org_id}/subscription",
                                json={"plan": "enterprise", "seats": seats or len(users) + 2})
        for user in users:
            await console.http.json("PUT", f"/v1/orgs/{org_id}/members/{user}",
                                    json={"role": "member"})
        for user in [admin_user, *users]:
            self.org_of[user] = org_id
        if admin is not None:
            self.accounts[admin] = console_account

    def _entropy_for(self, label: str) -> SeededEntropy:
        return self.entropy.fork(label)

    def _client_options(self) -> dict[str, Any]:
        return {
            "on_receive": self._on_receive,
            "on_event": self._on_event,
            "on_sent": self._on_sent,
            "ws_send_timeout": self.ws_send_timeout,
            # one frame per envelope: network faults (simulator/network.py) act per frame, so
            # a scenario's drop/duplicate/reorder stays per envelope
            "push_batch": 0,
        }

    def account(self, user_id: str) -> Account:
        account = self.accounts.get(user_id)
        if account is None:
            org = self.org_of[user_id]
            account = self.accounts[user_id] = Account(
                org, user_id, self._url_for, self._entropy_for, self.clock, self.otp,
                totp_secret=self.totp.get(user_id), opk_count=self.opk_count,
                prekeys=PrekeyPolicy(
                    opk_batch=self.opk_count, opk_low_water=max(1, self.opk_count // 4)
                ),
                client_options=self._client_options(),
            )
        return account

    async def add_device(self, ref: DeviceAddress | str, *,
                         connect: bool = True) -> DeviceClient:
        """Install ``ref`` (a :class:`DeviceAddress` or ``user:device``; login, keys) behind
        its own network link."""
        address = address_argument(ref, "ref")
        if self.network is not None:
            await self.network.link(str(address))
        client = await self.account(address.user).add_device(address.device, connect=connect)
        return client

    def client(self, ref: DeviceAddress | str) -> DeviceClient:
        """The installed device ``ref`` (a :class:`DeviceAddress` or ``user:device``)."""
        address = address_argument(ref, "ref")
        return self.accounts[address.user].devices[address.device]

    def clients(self) -> list[DeviceClient]:
        return [c for a in self.accounts.values() for c in a.devices.values()]

    async def connect_all(self, timeout: float = 60.0, batch: int = 50) -> None:
        """Open every device's push socket, ``batch`` at a time (a thousand simultaneous
        handshakes on two cores would time out)."""
        clients = [c for c in self.clients() if not c.connected]
        for start in range(0, len(clients), batch):
            group = clients[start : start + batch]
            for client in group:
                client.connect()
            await asyncio.wait_for(
                asyncio.gather(*(c.wait_connected(timeout) for c in group)), timeout
            )

    # -- traffic ledger --------------------------------------------------------------------

    def _on_sent(self, client: DeviceClient, user_id: str, message_id: str,
                 envelopes: dict[str, bytes]) -> None:
        for recipient, body in envelopes.items():
            self.ledger.expect(client.user_id, message_id, recipient)
            if self.keep_envelopes:
                self.ledger.envelopes.append((client.address, recipient, message_id, body))
        self._progress.set()

    def _on_receive(self, client: DeviceClient, received: Received) -> None:
        key = f"{received.sender_user_id}/{received.content.message_id}"
        self.ledger.arrive(client.address, key)
        self.received.append((client.address, received))
        self._progress.set()

    def _on_event(self, client: DeviceClient, event: ClientEvent) -> None:
        self.events.append((client.address, event))

    async def quiesce(self, recipients: Iterable[str] | None = None, *, timeout: float = 30.0,
                      idle: float = 2.0) -> dict[str, set[str]]:
        """Wait until every expected envelope reached the given (default: all) recipients, or
        nothing arrived for ``idle`` seconds, or ``timeout``; returns what is still missing."""
        wanted = list(recipients) if recipients is not None else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if wanted is None and self.ledger.pending > 0:
                missing: dict[str, set[str]] = {"*": set()}
            else:
                missing = self.ledger.missing(wanted)
            if not missing:
                return {}
            remaining = deadline - loop.time()
            if remaining <= 0:
                return missing
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), min(idle, remaining))
            except TimeoutError:
                return self.ledger.missing(wanted)


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host, int(port)
