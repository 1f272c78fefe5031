"""Run a scenario (simulator.scenario.model) against real clients and a real relay.

``run_scenario(scenario, provider="embedded", seed=None)`` builds the cast on a
:class:`~simulator.fleet.Fleet` (every device behind its own network link), executes the
timeline step by step and returns a :class:`~simulator.report.model.ScenarioResult`:

- messaging steps send real E2E messages whose plaintext starts with a unique canary
  (:func:`simulator.oracle.canary`, drawn from the scenario seed); after each one the fleet
  settles (online devices process what arrived), so a seeded run is reproducible;
- ``network`` steps drive :class:`~simulator.network.Network`; ``infra`` steps on ``server``
  stop, kill, start, restart, pause and unpause in-process relay replicas (all of them, or the
  one ``replica:`` names; the scenario's ``infrastructure:`` says how many share the stores,
  :mod:`semafore.deploy.inprocess_replicas`); other targets need a provider with that backend;
- ``compromise`` steps build the adversary's view (docs/simulator.md has the table) — and
  device compromises snapshot that device's full state *now*; every view is then *used*:
  every captured envelope is tried against any key material the view holds
  (:mod:`simulator.adversary`);
- assertions about delivery are evaluated where they stand; adversary and oracle assertions
  at the end, against the views as they stand then. Every canary and every device key (seen
  after each step) is registered with the oracle, which scans the relay-side views.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import logging
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semafore.client import DeviceClient
from semafore.client.client import Received
from semafore.client.device import Device
from semafore.client.errors import ClientError, RecipientsFailed
from semafore.deploy.data_tier import DataTier
from semafore.deploy.inprocess_replicas import ReplicaError
from semafore.deploy.local_push import LocalPushBus
from semafore.deploy.seaweed_cluster import SeaweedCluster
from semafore.deploy.settings import ProviderKind
from semafore.protocol import secrets as protocol_secrets
from semafore.protocol import smx1
from semafore.protocol.address import DeviceAddress
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import ProtocolError
from semafore.protocol.frame import is_smx1
from semafore.server.oplog import LOGGER_NAME, LogHash, configure_logging
from semafore.server.push import PushPort
from semafore.storage.seaweedfs import SeaweedfsBlobStore
from simulator import device_state, failover, steps
from simulator import inventory as inv
from simulator.adversary import (
    Attempt,
    CapturedEnvelope,
    DeviceAdversary,
    content_body,
)
from simulator.assignment import REFERENCE, AssignmentError, Implementation, assign_scenario
from simulator.attacks.harness import AttackHarness
from simulator.external import (
    RELAY_BY_URL,
    RELAY_INTERNAL_STATS,
    ExternalInfrastructure,
    ExternalRelay,
    WallClock,
    on_relay,
    qualify,
    relay_org_name,
)
from simulator.fleet import OPERATOR, Fleet
from simulator.impl_device import (
    CLIENT_COUNTED_STATS,
    AdapterDevice,
    AdapterHost,
    ImplError,
    unsupported_steps,
)
from simulator.nonce_reuse import find_reuse
from simulator.oracle import (
    TIER_LOG,
    Chunk,
    Hit,
    Oracle,
    OracleError,
    canary,
)
from simulator.pseudonyms import assess as assess_log_pseudonyms
from simulator.relay_view import LogExtent, RelayView, Spooled, WireRange, examine, spooled
from simulator.report.model import (
    AdversaryView,
    FaultReport,
    Outcome,
    ScenarioResult,
    SourceSummary,
    StepFailure,
)
from simulator.scenario.model import (
    MECHANISM_STATS,
    PRIMARY_TARGETS,
    Assertion,
    AssertionKind,
    Attach,
    Attack,
    Broadcast,
    Compromise,
    CompromiseKind,
    ExhaustOpks,
    Infra,
    InfraAction,
    InfraTarget,
    MessageSelector,
    Network,
    NetworkFault,
    ReadReceipt,
    Replay,
    Restore,
    Scenario,
    Screenshot,
    Send,
    SetOnline,
    Snapshot,
    Step,
)

log = logging.getLogger(__name__)

SETTLE_IDLE_S = 1.0
SETTLE_TIMEOUT_S = 10.0
RELAY_SIDE = (
    CompromiseKind.SERVER,
    CompromiseKind.NETWORK,
    CompromiseKind.INSIDER,
    CompromiseKind.SUBPOENA,
    CompromiseKind.DATABASE,
)


_EVALUATED_WHERE_THEY_STAND = frozenset({
    AssertionKind.DELIVERED_EXACTLY_ONCE, AssertionKind.NOT_DELIVERED,
    AssertionKind.DECRYPT_ERROR, AssertionKind.SESSIONS_CONVERGE, AssertionKind.MECHANISM,
    AssertionKind.ATTACK_FAILED, AssertionKind.NO_KEY_NONCE_REUSE,
    AssertionKind.RECOVERED_WITHIN, AssertionKind.FAILOVER,
})
"""Assertions about the run so far; the others (adversaries, oracle, metadata) look at the
views as they stand at the end of the run."""


def _allowing_empty(step: Assertion, outcome: Outcome, summary: str,
                    evidence: list[str]) -> tuple[Outcome, str, list[str]]:
    """Zero evidence is ``inconclusive`` (it fails) unless the file says why it is fine."""
    if outcome is Outcome.INCONCLUSIVE and step.allow_empty:
        return Outcome.HELD, f"{summary} — allowed empty: {step.allow_empty}", evidence
    return outcome, summary, evidence


class ExecutorError(Exception):
    """The scenario cannot run as written (unknown device, unsupported action here)."""


_FAULT_METHODS = {
    InfraAction.STOP: "stop",
    InfraAction.START: "start",
    InfraAction.KILL: "kill",
    InfraAction.PAUSE: "pause",
    InfraAction.UNPAUSE: "resume",
    InfraAction.RESTART: "restart",
    InfraAction.CUT: "cut",
    InfraAction.HEAL: "heal",
}


class Infrastructure(DataTier):
    """The library's :class:`~semafore.deploy.data_tier.DataTier` (the relay's data tier and
    its dumps for the oracle) plus what only a scenario does to it: backend faults."""

    async def cluster_node(self, user: str) -> Any:
        """The Redis Cluster node serving the hash slot of ``user``'s queues now (after a
        failover, the promoted replica). The key is the relay's own (``RedisNamespace.user``
        of the run's namespace), so the hash tag is the store's, never a copy of it."""
        if self.provider is None or self.handles is None:
            raise ExecutorError("infra redis-cluster-primary: the embedded provider has no "
                                "Redis Cluster; run this scenario with --provider local")
        key = self.handles.redis.user(user)
        return await asyncio.to_thread(self.provider.redis_cluster_primary, key)

    async def fault(self, target: InfraTarget, action: InfraAction,
                    user: str | None = None, *,
                    volume: int | None = None) -> Counter[str]:
        """Apply a backend fault; what it changed (``started``, ``stopped``, ``killed``,
        ``paused``, ``resumed``), empty when the backend already was in that state.
        ``volume``: the index of the volume server a ``seaweedfs-volume`` fault hits."""
        if target is InfraTarget.REDIS_CLUSTER_PRIMARY:
            assert user is not None, "the loader requires user"
            backend = await self.cluster_node(user)
        elif target is InfraTarget.REDIS_PRIMARY and self.provider is not None:
            # the server the Sentinels name primary now (docs/backends.md "Cluster shape")
            backend = await asyncio.to_thread(self.provider.redis_primary)
        elif target is InfraTarget.SEAWEEDFS_VOLUME and self.provider is not None:
            assert volume is not None, "the loader requires volume or holding"
            backend = self.seaweed_cluster().volumes[volume].process
        elif target is InfraTarget.REDIS_REPLICATION_LINK and self.provider is not None:
            # the replica's link only; the relay's and the Sentinels' stay up
            link = getattr(self.provider, "replication_link", None)
            if link is None:
                raise ExecutorError(f"infra {action.value} {target.value}: the {self.name} "
                                    "provider has no Sentinel-watched replica to partition")
            backend = await asyncio.to_thread(link)
        else:
            backend = self.backend(target.value)
        if backend is None:
            raise ExecutorError(
                f"infra {action.value} {target.value}: the embedded provider has no "
                f"{target.value}; run this scenario with --provider local or containers"
            )
        effect = await asyncio.to_thread(getattr(backend, _FAULT_METHODS[action]))
        return Counter(effect) if effect else Counter()

    def seaweed_cluster(self) -> SeaweedCluster:
        """The provider's SeaweedFS cluster (master, volume servers, filer): the cluster
        shape's object store, whose single volume servers a scenario may fault."""
        seaweedfs = getattr(self.provider, "seaweedfs", None)
        cluster = seaweedfs() if callable(seaweedfs) else None
        if not isinstance(cluster, SeaweedCluster):
            raise ExecutorError(f"infra seaweedfs-volume: the {self.name} provider runs no "
                                "SeaweedFS cluster of its own (the local cluster shape does)")
        return cluster

    async def volume_holding(self, file_id: str) -> int:
        """The index of the first live volume server (by address) holding a copy of the
        attachment blob ``file_id``: its filer path as the relay's blob adapter stored it,
        located by the master now (``SeaweedCluster.holders``)."""
        cluster = self.seaweed_cluster()
        blobs = self.stores.blobs if self.stores is not None else None
        if not isinstance(blobs, SeaweedfsBlobStore):
            raise ExecutorError("infra seaweedfs-volume: the relay's blobs are not in SeaweedFS")
        holders = await asyncio.to_thread(cluster.holders, blobs.path(file_id))
        if not holders:
            raise ExecutorError(f"infra seaweedfs-volume: no live volume server holds blob "
                                f"{file_id}")
        return cluster.volumes.index(holders[0])


@dataclass
class Message:
    """One message of the scenario: label, who sent it to whom, its canary and envelopes."""

    label: str
    seq: int
    sender: DeviceAddress
    to: tuple[str, ...]
    canary: bytes
    step_index: int
    sent_at_ms: float
    message_id: str = ""
    begun_wall: float = 0.0  # time.monotonic() as the send began (failover windows: the
    acked_wall: float | None = None  # scenario clock is virtual); when the relay acknowledged
    recipients: dict[str, bytes] = field(default_factory=dict)  # device address -> envelope
    failed: str | None = None
    withheld: bool = False  # encrypted but never handed to the transport
    intended: set[str] = field(default_factory=set)
    """Every device address the scenario means to reach ("user:device"): each recipient
    user's devices as the timeline has them at send time, plus the sender's other devices
    (sync copies) — the intent, never what the sending client reported (issue #11)."""
    payload: bytes = b""  # the content body each device must show, byte for byte
    attachment: bytes | None = None  # the attachment bytes each device must fetch back
    kind: str = "send"  # send | broadcast | attach
    events_before: int = 0  # how many client events had happened when it was sent


@dataclass
class View:
    """An adversary's holdings: byte chunks (relay-side) or a device snapshot."""

    step: Compromise
    at_ms: float
    at_seq: int
    relay: RelayView | None = None
    """A relay-side view's bytes, on disk and re-read as a stream (simulator.relay_view)."""
    hits: list[Hit] = field(default_factory=list)  # what the oracle found in this view
    scanned: int = 0  # bytes the oracle read in this view
    device_states: dict[str, bytes] = field(default_factory=dict)  # address -> SFD bytes
    received_before: set[tuple[str, str]] = field(default_factory=set)  # (address, label)
    wire_times: list[float] = field(default_factory=list)


class Execution:
    def __init__(self, scenario: Scenario, provider: str, seed: int,
                 on_step: Callable[[Step], None] | None, leak: str = "off",
                 relay: ExternalRelay | None = None) -> None:
        if provider not in {*ProviderKind, RELAY_BY_URL}:
            raise ExecutorError(f"unknown provider {provider!r}")
        self.scenario = scenario
        self.provider = provider
        self.seed = seed
        self.on_step = on_step
        self.result = ScenarioResult.for_scenario(scenario, provider=provider, seed=seed)
        # ``relay``: an external relay by URL (simulator.external); the scenario's cast is
        # already renamed for it (on_relay), its organisations in order
        self.external = None if relay is None else relay.infrastructure(
            [o.id for o in scenario.organisations])
        self.infra: Infrastructure | ExternalInfrastructure = (
            self.external or Infrastructure(provider, f"sim{seed % 10**9}",
                                            shape=scenario.requires.shape,
                                            redis_topology=scenario.requires.redis,
                                            redis_wait=scenario.requires.redis_wait))
        # ``leak`` (tests only): the relay writes the plaintext of each text message into a
        # log line or a queued envelope, so the oracle must fail the scenario (issue 5).
        self.sent_bodies: dict[str, bytes] = {}
        overrides = {} if leak == "off" else {"leak": leak, "leak_source": self.sent_bodies.get}
        deployment = scenario.infrastructure
        # ``log_hash: keyed``: the relay's secret comes from the run's own entropy and enters
        # no adversary view, as a deployment secret kept outside the log and data tiers
        self.log_hash = LogHash("keyed", SeededEntropy(f"log-hash:{scenario.name}:{seed}")
                                .random_bytes(32, "log_hash_key")) \
            if deployment.log_hash == "keyed" else LogHash()
        overrides["log_hash"] = self.log_hash
        # account-plane attacks (issue 13 item 6): the relay they need, the users' login codes
        # (an external relay's sink is the operator's --relay-otp-sink DIR, read as
        # ``ExternalRelay.otp_sink`` once the runner carries it; docs/threats.md)
        self.attacks = AttackHarness(scenario, otp_sink=getattr(relay, "otp_sink", None),
                                     external=relay is not None)
        overrides.update(self.attacks.settings_overrides())
        self.fleet = Fleet(seed=seed, network=True, capture=True, settings_overrides=overrides,
                           replicas=deployment.server_replicas, pins=deployment.pins(),
                           push=self._push_hub if deployment.server_replicas > 1 else None,
                           url=relay.url if relay else None,
                           clock=WallClock() if relay else None,
                           otp=self.attacks.otp_source())
        self.attacks.bind(lambda: self.fleet.url, self.fleet.clock.now)
        self.entropy = SeededEntropy(f"scenario:{scenario.name}:{seed}").fork("canaries")
        self.oracle = Oracle()
        self.messages: list[Message] = []
        self.by_id: dict[str, Message] = {}
        self.views: dict[str, View] = {}
        self.online: dict[str, bool] = {}
        # the relay's log goes to a file, not memory: a view holds a byte extent of it
        # (simulator.relay_view), however long the run (issue #12 item 3)
        self.log_dir = tempfile.TemporaryDirectory(prefix="semafore-run-")
        self.log_path = Path(self.log_dir.name) / "relay.log"
        self.log_stream = self.log_path.open("w", encoding="utf-8")
        self.t0 = 0.0
        self.pending_infra: dict[str, Infra] = {}
        self.deferred: list[Assertion] = []
        self.identities: dict[str, tuple[bytes, bytes]] = {}
        self.cast: dict[str, list[str]] = {u.id: list(u.devices) for u in scenario.users}
        self.expected_seen: set[int] = set()  # steps whose declared error happened
        self.fault_records: list[tuple[Step, Any]] = []  # (network/infra step, its record)
        self.relay_events = _EventCounter()
        self.rotations: list[tuple[str, str, frozenset[tuple[str, str]]]] = []
        self.replays_injected = 0
        self.recoveries: list[tuple[Assertion, str, set[str], int]] = []  # last error index
        self.file_ids: list[tuple[str, str]] = []  # (attachment label, file id)
        self.volume_holding: dict[str, int] = {}  # attachment label -> the volume server
        """The volume server an ``infra`` step named as holding an attachment's blob, resolved
        once: a later step naming the same label (``start`` after ``kill``) acts on it."""
        self.fetched: dict[tuple[str, str], bytes | str] = {}  # (device, message id) -> blob
        self.secrets_seen: dict[str, int] = {}  # key kind -> how many the protocol reported
        # devices of adapter implementations (issue 15 item 1, simulator.impl_device):
        # user/device -> implementation name (set by run_scenario_async), one adapter
        # process per implementation, and the live devices by address
        self.assignment: dict[str, str] = {}
        self.implementations: dict[str, Implementation] = {}
        self.hosts: dict[str, AdapterHost] = {}
        self.adapters: dict[str, AdapterDevice] = {}
        # address -> the adapter device's latest live.stats (CLIENT_COUNTED_STATS), for the
        # adapters that list it; refreshed after every step
        self.adapter_counts: dict[str, dict[str, int]] = {}
        self.digests: dict[tuple[str, str], bytes | None] = {}
        # address -> the adapter process whose exported state a device compromise holds
        self.stolen_from: dict[str, AdapterHost] = {}
        self.backups: dict[str, device_state.Backup] = {}  # snapshot name -> state (item 4)

    @property
    def relay_url(self) -> str:
        """The relay's base URL: the external relay's, or the in-process relay's (replica 0)
        once set up. Devices reach it through their proxy links (``fleet.network``)."""
        if self.fleet.url is None:
            raise ExecutorError("the relay is not started yet")
        return self.fleet.url

    # -- every step counts (issue #11) ---------------------------------------------------

    def _failed(self, step: Step, device: str, exc: BaseException | str) -> None:
        """A step (or one device's part of it) failed: the scenario fails, naming step,
        device and error — unless the step declared this very error (``expect``)."""
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        names = {text} if isinstance(exc, str) else _error_names(exc)
        wanted = step.expect.error if step.expect is not None else None
        if wanted is not None and wanted in names:
            self.expected_seen.add(step.index)
            self.event(step, f"{step.kind}_failed_as_expected", f"{device}: {text}",
                       expected=wanted)
            return
        self.result.step_failures.append(
            StepFailure(step.index, step.line, step.kind, device, text, wanted))
        self.event(step, f"{step.kind}_failed", f"{device}: {text}", ok=False)

    def _unmet_expectations(self) -> None:
        for step in self.scenario.all_steps():
            if step.expect is not None and step.index not in self.expected_seen:
                self.result.step_failures.append(StepFailure(
                    step.index, step.line, step.kind, _actor(step), "", step.expect.error))

    def _faults_report(self) -> None:
        """Every declared fault with what it did; one that never acted makes the verdict
        ``error`` (simulator.report.model.decide)."""
        for step, record in self.fault_records:
            acted = {k: int(v) for k, v in sorted(dict(record.acted).items())}
            self.result.faults.append(FaultReport(step.index, step.line, record.describe(),
                                                  bool(record.fired), acted))

    # -- helpers ---------------------------------------------------------------------------

    def _push_hub(self, index: int) -> PushPort:
        """Replica ``index``'s push hub: Redis pub/sub on real backends (what production
        replicas use, seed §3.4); on ``embedded`` one in-process bus for every replica."""
        handles = self.infra.handles
        if handles is None:
            bus = self._bus = getattr(self, "_bus", None) or LocalPushBus()
            return bus.hub()
        hub: PushPort = handles.push_hub(f"sim-replica-{index}")
        return hub

    def now_ms(self) -> float:
        return round((self.fleet.clock.now() - self.t0) * 1000.0, 3)

    def client(self, ref: DeviceAddress) -> DeviceClient:
        try:
            return self.fleet.client(str(ref))
        except KeyError:
            raise ExecutorError(f"device {ref} is not installed") from None

    def event(self, step: Step | None, kind: str, summary: str, ok: bool = True,
              **details: Any) -> None:
        self.result.event(self.now_ms(), kind, summary, step=step, ok=ok, **details)

    def _labels(self, label: str, count: int) -> list[str]:
        return [label] if count == 1 else [f"{label}.{i}" for i in range(1, count + 1)]

    def _new_message(self, label: str, sender: DeviceAddress, to: tuple[str, ...],
                     step: Step) -> Message:
        value = canary(self.entropy.random_bytes(16, "canary"))
        msg = Message(label, len(self.messages), sender, to, value, step.index, self.now_ms(),
                      begun_wall=time.monotonic())
        msg.events_before = len(self.fleet.events)
        self.messages.append(msg)
        with contextlib.suppress(OracleError):
            self.oracle.register_canary(f"message {label} ({sender} -> {', '.join(to)})", value)
        return msg

    def _body(self, msg: Message, size: int, text: str | None) -> bytes:
        body = msg.canary + b" " + (text.encode() if text else b"")
        if len(body) < size:
            body += b"." * (size - len(body))
        return body

    def _record_sent(self, msg: Message, client: DeviceClient | None,
                     envelopes: dict[str, bytes], message_id: str) -> None:
        msg.message_id = message_id
        msg.recipients.update(envelopes)
        self.by_id[message_id] = msg
        with contextlib.suppress(OracleError):
            self.oracle.register_identifier("message_id", message_id)

    # -- run -------------------------------------------------------------------------------

    async def run(self) -> ScenarioResult:
        """Run the scenario with the protocol reporting every secret it draws or derives
        to the oracle (issue #12: a client that logs or stores a message key must fail)."""
        self.result.implementations = {d: n for d, n in self.assignment.items()
                                       if self.implementations}
        why_not = await self._unsupported_by_implementations()
        if why_not:
            self.result.unsupported = "; ".join(why_not)
            self._close_hosts()
            return self.result
        with protocol_secrets.reporting(self._on_secret):
            return await self._run()

    async def _unsupported_by_implementations(self) -> list[str]:
        """Steps the assigned adapters cannot take (contract §5 ops they lack): the
        scenario is then ``unsupported`` naming them, and does not run."""
        used = sorted({n for n in self.assignment.values() if n != REFERENCE})
        ops: dict[str, frozenset[str]] = {}
        for name in used:
            host = self.hosts[name] = AdapterHost(self.implementations[name])
            try:
                ops[name] = await host.ops()
                if "live.secrets" in ops[name]:  # the oracle registers what it reports
                    await host.secrets()
            except ImplError as exc:
                return [f"implementation {name}: capabilities failed: {exc}"]
        return unsupported_steps(self.scenario, self.assignment, ops)

    def _close_hosts(self) -> None:
        for host in self.hosts.values():
            host.close()

    def adapter(self, address: DeviceAddress) -> AdapterDevice | None:
        """The adapter device behind ``address`` (None: a reference client)."""
        return self.adapters.get(str(address))

    def _on_secret(self, kind: str, value: bytes) -> None:
        self.secrets_seen[kind] = self.secrets_seen.get(kind, 0) + 1
        with contextlib.suppress(OracleError):
            self.oracle.register_key(f"{kind} #{self.secrets_seen[kind]}", value)

    async def _run(self) -> ScenarioResult:
        started = time.perf_counter()
        handler = configure_logging(self.log_stream, logging.INFO, self.log_hash)
        # The view keeps the relay's INFO lines (what production logs); the counter also sees
        # DEBUG events (e.g. a send answered from the ledger) for ``mechanism`` assertions.
        relay_log = logging.getLogger(LOGGER_NAME)
        handler.setLevel(logging.INFO)
        relay_log.setLevel(logging.DEBUG)
        relay_log.addHandler(self.relay_events)
        try:
            await self._setup()
            for step in self.scenario.steps:
                if self.on_step is not None:
                    self.on_step(step)
                await self._step(step)
                self.fleet.clock.advance(0.001)
                self._register_keys()
            await self.settle()
            self._register_keys()
            await self._finish()
            self._unmet_expectations()
            self.event(None, "transcript", "every envelope the clients sent, in order",
                       sha256=self.transcript_digest(), envelopes=len(self._captured()))
        except Exception as exc:  # the run stopped: say why, keep what was evaluated
            self.result.error = f"{type(exc).__name__}: {exc}"
            self.event(None, "error", self.result.error, ok=False,
                       trace=traceback.format_exc(limit=4)[-500:])
        finally:
            with contextlib.suppress(Exception):
                self._faults_report()
            with contextlib.suppress(Exception):
                self.result.stats.update(self._stats())
            if self.external is not None:  # what the relay-side views could and could not read
                self.result.relay = self.external.relay.shown_url
                self.result.scanned = dict(self.external.scanned)
                self.result.not_scanned = dict(self.external.not_scanned) | {
                    source: f"could not be read: {why}"
                    for source, why in self.external.errors.items()}
            with contextlib.suppress(Exception):
                await self.fleet.close()
            await self.infra.close()
            self.attacks.close()
            for device in list(self.adapters.values()):
                with contextlib.suppress(ImplError):
                    await device.close()
            self._close_hosts()
            relay_log.removeHandler(handler)
            relay_log.removeHandler(self.relay_events)
            for view in self.views.values():
                if view.relay is not None:
                    view.relay.close()
            # configure_logging left the handler on the library loggers until the next run:
            # what they log now goes nowhere instead of to a closed file
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(io.StringIO())
            self.log_stream.close()
            self.log_dir.cleanup()
            self.result.duration_s = round(time.perf_counter() - started, 3)
        return self.result

    def _stats(self) -> dict[str, int]:
        """The run's statistics: every name of :data:`MECHANISM_STATS` (what ``mechanism``
        assertions read) plus a few descriptive extras."""
        clients = self.fleet.clients()
        smx1_bodies = [(recipient, body) for _, recipient, _, body in self.fleet.ledger.envelopes
                       if is_smx1(body)]
        stats = {
            "messages": len(self.messages),
            "envelopes": len(self.fleet.ledger.envelopes),
            "devices": len(clients),
            "received": len(self.fleet.received),
            "duplicates_dropped": sum(c.counters.duplicates for c in clients),
            "undecryptable": sum(c.counters.undecryptable for c in clients),
            "skipped_keys_used": sum(c.device.skipped_keys_used for c in clients),
            "resets_sent": sum(c.counters.resets_sent for c in clients),
            # what the user is shown ("safety number changed"), not the transport's 410
            "identity_changes_seen": sum(len(c.device.identity_changes) for c in clients),
            "device_set_retries": sum(c.counters.device_set_retries for c in clients),
            "reconnects": sum(c.counters.reconnects for c in clients),
            "smx1_sent": len(smx1_bodies),
            "smx1_without_opk": sum(1 for _, b in smx1_bodies
                                    if (ids := _smx1(b)) is not None and ids[1] is None),
            "smx1_previous_spk": self._previous_spk_bootstraps(),
            "send_retries_answered": self.relay_events.counts["message_retry_answered"],
            "replays_injected": self.replays_injected,
            "replica_starts": sum(r.starts for r in self.fleet.replicas),
        }
        for counts in self.adapter_counts.values():  # adapter devices count as clients do
            for name in CLIENT_COUNTED_STATS:
                stats[name] += counts[name]
        if len(self.fleet.replicas) > 1:
            stats["server_replicas"] = len(self.fleet.replicas)
        totals = self.fleet.network.totals() if self.fleet.network is not None else None
        stats.update(
            wire_records=len(self.fleet.network.captured) if self.fleet.network else 0,
            wire_bytes=self.fleet.network.wire_bytes() if self.fleet.network else 0,
            frames_dropped=totals.dropped if totals else 0,
            frames_duplicated=totals.duplicated if totals else 0,
            frames_delayed=totals.delayed if totals else 0,
            frames_reordered=totals.reordered if totals else 0,
            http_requests=totals.http_requests if totals else 0,
            http_requests_dropped=totals.http_dropped_requests if totals else 0,
            http_responses_dropped=totals.http_dropped_responses if totals else 0,
            http_requests_duplicated=totals.http_duplicated if totals else 0,
            http_delayed=totals.http_delayed if totals else 0,
            http_reordered=totals.http_reordered if totals else 0)
        missing = set(MECHANISM_STATS) - set(stats)
        if missing:
            raise ExecutorError(f"stats not computed: {sorted(missing)}")
        return stats

    def _previous_spk_bootstraps(self) -> int:
        """SMX1 envelopes naming a signed prekey their recipient rotated away from, sent
        before the rotation and opened after it (in flight across the rotation)."""
        if not self.rotations:
            return 0
        arrived = {(a, f"{r.sender_user_id}/{r.content.message_id}")
                   for a, r in self.fleet.received}
        count = 0
        for sender, recipient, message_id, body in self.fleet.ledger.envelopes:
            if not is_smx1(body):
                continue
            key = (recipient, f"{DeviceAddress.parse(sender).user}/{message_id}")
            ids = _smx1(body)
            for address, old, before in self.rotations:
                if (recipient == address and ids is not None and ids[0] == old
                        and key in arrived and key not in before):
                    count += 1
        return count

    async def _setup(self) -> None:
        sc = self.scenario
        self.fleet.stores = await self.infra.start()
        await self.fleet.start([o.id for o in sc.organisations])
        self.t0 = self.fleet.clock.now()
        for step in sc.all_steps():  # armed before the send they name runs (it comes first)
            if isinstance(step, Infra) and step.during is not None:
                self.pending_infra[step.during] = step
        admins: dict[str, str] = {}
        for step in sc.all_steps():
            if isinstance(step, Broadcast):
                org = sc.user(step.sender.user).org
                admins.setdefault(org, step.sender.user)
        for organisation in sc.organisations:
            members = [u.id for u in sc.users if u.org == organisation.id]
            await self.fleet.add_org(organisation.id, members,
                                     admin=admins.get(organisation.id))
            admin = admins.get(organisation.id)
            if admin is not None:  # the admin's console is one more device of that user
                self.cast.setdefault(admin, []).append("console")
            with contextlib.suppress(OracleError):
                self.oracle.register_identifier("sub", f"{OPERATOR}-{organisation.id}")
        for user in sc.users:
            with contextlib.suppress(OracleError):
                self.oracle.register_identifier("sub", user.id)
            for device in user.devices:
                await self.install(DeviceAddress(user.id, device))
        await self.fleet.connect_all()
        where = (f"the external relay {self.external.relay.shown_url}" if self.external
                 else "the in-process relay")
        self.event(None, "setup", f"{len(sc.users)} users, "
                   f"{len(sc.initial_devices())} devices on {where}"
                   + (f" ({len(self.fleet.replicas)} replicas)" if len(self.fleet.replicas) > 1
                      else ""))
        if len(self.fleet.replicas) > 1:
            placed = {str(ref): self.fleet.replica_of(str(ref)) for ref in sc.initial_devices()}
            self.event(None, "replicas", f"{len(self.fleet.replicas)} relay replicas on one set "
                       "of stores; devices fail over in replica order",
                       placement=", ".join(f"{d}={i}" for d, i in placed.items()))

    async def _install_adapter(self, ref: DeviceAddress, name: str) -> None:
        """A live device of implementation ``name`` behind its own proxy link."""
        address = str(ref)
        assert self.fleet.network is not None
        link = await self.fleet.network.link(address)
        device = AdapterDevice(self.hosts[name], ref.user, ref.device,
                               self.fleet.org_of[ref.user], link.url,
                               f"{self.scenario.name}:{self.seed}")
        # an admin's TOTP codes come from the user's account, whose step tracker (ADR-0161:
        # a step is accepted once) the adapter device then shares with its other sessions
        account = self.fleet.account(ref.user)
        await device.install(await self.fleet.otp(self.fleet.org_of[ref.user], ref.user),
                             totp=account._totp)
        if "live.stats" in await device.host.ops():  # whether it holds a push socket
            self.adapter_counts[address] = await device.stats()
        self.adapters[address] = device
        self.online[address] = True
        self.identities[address] = device.identity
        with contextlib.suppress(OracleError):
            self.oracle.register_identifier("device_id", address)

    async def install(self, ref: DeviceAddress) -> DeviceClient | None:
        name = self.assignment.get(str(ref), REFERENCE)
        if name != REFERENCE:
            await self._install_adapter(ref, name)
            return None
        client = await self.fleet.add_device(str(ref), connect=True)
        self.online[client.address] = True
        keys = client.device.keys.identity
        self.identities[client.address] = (keys.ik.public, keys.sik.public)
        with contextlib.suppress(OracleError):
            self.oracle.register_identifier("device_id", str(ref))
        return client

    async def fetch_queues(self, step: Step, refs: tuple[DeviceAddress, ...]) -> None:
        """A ``sync`` is what an app does when it comes to the foreground: fetch the queue
        over HTTP, whatever the push socket delivered (or lost) meanwhile. A fetch that
        fails is a failed step (a scenario that means it declares ``expect``)."""
        addresses = {str(r) for r in refs}
        for client in self.fleet.clients():
            if self.online.get(client.address) and (not addresses or client.address in addresses):
                try:
                    await client.poll()
                except ClientError as exc:
                    self._failed(step, client.address, exc)
        try:
            await self._receive_adapters([a for a in self.adapters if not addresses
                                          or a in addresses], fetch=True)
        except ImplError as exc:
            self._failed(step, ", ".join(sorted(addresses)) or "every device", str(exc))

    async def settle(self, refs: tuple[DeviceAddress, ...] = (), timeout: float = SETTLE_TIMEOUT_S,
                      idle: float = SETTLE_IDLE_S) -> dict[str, set[str]]:
        addresses = [str(r) for r in refs] or [
            a for a, up in self.online.items() if up
        ]
        missing = await self._quiesce(addresses, timeout, idle)
        for client in self.fleet.clients():
            with contextlib.suppress(ClientError, Exception):
                await client.flush_acks()
        return missing

    async def _receive_adapters(self, addresses: list[str], fetch: bool = False) -> int:
        """``live.receive`` on every online adapter device among ``addresses``: what it
        shows enters the ledger like a reference client's arrivals. Returns how many. A
        device holding a push socket opens only what it pushed, as a reference client does
        between syncs, unless ``fetch`` (a ``sync`` step: the app in the foreground)."""
        count = 0
        for address, device in self.adapters.items():
            if not self.online.get(address) or address not in addresses:
                continue
            shown, events = await device.receive(self.fleet.clock.now(),
                                                 fetch or not device.push)
            for received in shown:
                self.fleet.ledger.arrive(address, f"{received.sender_user_id}/"
                                         f"{received.content.message_id}")
                self.fleet.received.append((address, received))
            self.fleet.events.extend((address, e) for e in events)
            count += len(shown) + len(events)
        return count

    async def _quiesce(self, addresses: list[str], timeout: float,
                       idle: float) -> dict[str, set[str]]:
        """:meth:`Fleet.quiesce`, receiving for adapter devices (what was pushed to those
        that keep a push socket, the queue for the others: :meth:`_receive_adapters`) until
        nothing is missing, nothing new arrives for ``idle`` seconds, or ``timeout``."""
        if not self.adapters:
            return await self.fleet.quiesce(addresses, timeout=timeout, idle=idle)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_since = loop.time()
        while True:
            try:
                got = await self._receive_adapters(addresses)
            except ImplError as exc:
                self.event(None, "receive_failed", str(exc), ok=False)
                got = 0
            missing = await self.fleet.quiesce(addresses, timeout=min(0.2, timeout), idle=0.2)
            now = loop.time()
            if got:
                quiet_since = now
            if not missing or now >= deadline or now - quiet_since >= idle:
                return missing

    # -- steps -----------------------------------------------------------------------------

    async def _step(self, step: Step) -> None:
        failures = len(self.result.step_failures)
        try:
            await self._dispatch(step)
        except (ClientError, ProtocolError) as exc:
            self._failed(step, _actor(step), exc)
        except ImplError as exc:  # an adapter device's operation failed (simulator.impl_device)
            self._failed(step, _actor(step), f"{exc.name}: {exc.field}: {exc.detail}")
        await self._adapter_secrets()
        await self._adapter_counters()
        if step.expect is not None and len(self.result.step_failures) == failures \
                and step.index not in self.expected_seen:
            self.event(step, "expectation_unmet", f"expected {step.expect.error}; the step "
                       "succeeded", ok=False)

    async def _dispatch(self, step: Step) -> None:
        """Run one step: its kind's handler from the registry (simulator.steps)."""
        try:
            kind = steps.kind_of(step)
        except KeyError:
            raise ExecutorError(f"step kind {step.kind!r} is not registered") from None
        await kind.run(self, step)

    async def snapshot(self, step: Snapshot) -> None:
        """Back the device's state up (issue 15 item 4; simulator.device_state)."""
        adapter = self.adapter(step.device)
        if adapter is not None:
            state = await adapter.export_state()
            self.backups[step.name] = device_state.Backup(adapter.address, state)
        else:
            self.backups[step.name] = device_state.take(self.client(step.device))
        self.event(step, "snapshot", f"{step.device}: state backed up as {step.name}")

    async def restore(self, step: Restore) -> None:
        """Put a backup back onto its device (rolled back) or onto another (a clone)."""
        target = step.onto or step.device
        backup = self.backups[step.name]
        adapter = self.adapter(target)
        if adapter is not None:
            await adapter.import_state(backup.state)
            self.identities[adapter.address] = adapter.identity
        else:
            client = self.client(target)
            await self.snapshot_keys(target)
            otp = await self.fleet.otp(self.fleet.org_of[target.user], target.user)
            await device_state.put_back(client, backup, otp)
            keys = client.device.keys.identity
            self.identities[client.address] = (keys.ik.public, keys.sik.public)
        what = (f"cloned onto {target}" if step.onto is not None
                else "rolled back")
        self.event(step, "restore", f"{step.device}: backup {step.name} {what}")

    async def dispatch_quiet(self, step: Step) -> None:
        try:
            await self._dispatch(step)
        except (ClientError, ProtocolError) as exc:
            self._failed(step, _actor(step), exc)

    def after_install(self, client: DeviceClient) -> None:
        self.online[client.address] = True
        keys = client.device.keys.identity
        self.identities[client.address] = (keys.ik.public, keys.sik.public)

    async def _with_armed_infra(self, label: str | None, action: Any) -> Any:
        """Run ``action`` (a send); an infra step armed for ``label`` hits while it is in
        flight (the step's own event names the send)."""
        infra = self.pending_infra.pop(label, None) if label is not None else None
        if infra is None:
            return await action
        task = asyncio.ensure_future(action)
        await asyncio.sleep(0)
        await self.apply_infra(infra)
        return await task

    def _intent(self, msg: Message, *, sync_copies: bool) -> None:
        """Who the scenario means ``msg`` to reach, from the timeline's cast at send time."""
        sender = msg.sender
        for user in msg.to:
            if user == sender.user and not sync_copies:
                continue
            msg.intended.update(str(DeviceAddress(user, d)) for d in self.cast.get(user, ())
                                if (user, d) != (sender.user, sender.device))
        if sync_copies:
            msg.intended.update(str(DeviceAddress(sender.user, d))
                                for d in self.cast.get(sender.user, ())
                                if d != sender.device)

    async def _send_adapter(self, step: Send, device: AdapterDevice) -> None:
        """``live.send`` for each label (to one user or several: contract §5)."""
        for label in self._labels(step.label, step.count):
            msg = self._new_message(label, step.sender, step.to, step)
            msg.withheld = step.withhold
            body = msg.payload = self._body(msg, step.size, step.text)
            self._intent(msg, sync_copies=True)
            message_id = msg.message_id = f"{device.address}:{len(self.messages)}".encode().hex()
            self.by_id[message_id] = msg
            self.sent_bodies[message_id] = body
            try:
                envelopes, failed = await device.send(step.to, body, message_id,
                                                      not step.withhold)
            except ImplError as exc:
                msg.failed = str(exc)
                self._failed(step, f"{step.sender} -> {', '.join(step.to)}", exc.name)
                continue
            for user, why in sorted(failed.items()):  # a message to several users
                msg.failed = why
                self._failed(step, f"{step.sender} -> {user}", why)
            for recipient, envelope in envelopes.items():
                self.fleet.ledger.expect(step.sender.user, message_id, recipient)
                self.fleet.ledger.envelopes.append((device.address, recipient, message_id,
                                                    envelope))
            msg.recipients.update(envelopes)
            with contextlib.suppress(OracleError):
                self.oracle.register_identifier("message_id", message_id)
            self.event(step, "send", f"{label}: {step.sender} [{device.implementation}] -> "
                       f"{', '.join(step.to)} ({len(envelopes)} envelopes"
                       f"{', withheld' if step.withhold else ''})")
        await self.settle()

    async def send(self, step: Send) -> None:
        adapter = self.adapter(step.sender)
        if adapter is not None:
            await self._send_adapter(step, adapter)
            return
        client = self.client(step.sender)
        labels = self._labels(step.label, step.count)
        for position, label in enumerate(labels):
            msg = self._new_message(label, step.sender, step.to, step)
            msg.withheld = step.withhold
            # an infra step ``during`` this send hits halfway through a burst
            armed = step.label if position == len(labels) // 2 else None
            body = self._body(msg, step.size, step.text)
            msg.payload = body
            self._intent(msg, sync_copies=True)
            message_id = client.new_message_id()
            msg.message_id = message_id
            self.by_id[message_id] = msg
            self.sent_bodies[message_id] = body
            try:
                result = await self._with_armed_infra(
                    armed, client.send_text(list(step.to), body, message_id=message_id,
                                            withhold=step.withhold))
            except RecipientsFailed as exc:
                self._record_sent(msg, client, exc.result.envelopes, message_id)
                for user, why in sorted(exc.failures.items()):
                    msg.failed = f"{type(why).__name__}: {why}"
                    self._failed(step, f"{step.sender} -> {user}", why)
            except (ClientError, ProtocolError) as exc:
                msg.failed = f"{type(exc).__name__}: {exc}"
                self._failed(step, f"{step.sender} -> {', '.join(step.to)}", exc)
            else:
                msg.acked_wall = time.monotonic()
                self._record_sent(msg, client, result.envelopes, message_id)
            if not step.withhold or step.count <= 10:
                self.event(step, "send", f"{label}: {step.sender} -> {', '.join(step.to)} "
                           f"({len(msg.recipients)} envelopes"
                           f"{', withheld' if step.withhold else ''})", ok=msg.failed is None)
        if step.withhold and step.count > 10:
            self.event(step, "send", f"{step.label}.1-{step.count}: {step.sender} -> "
                       f"{', '.join(step.to)} (encrypted, withheld)")
        await self.settle()

    async def broadcast(self, step: Broadcast) -> None:
        adapter = self.adapter(step.sender)
        client = self.client(step.sender) if adapter is None else None
        org = self.scenario.user(step.sender.user).org
        to = step.to or tuple(u.id for u in self.scenario.users if u.org == org)
        for label in self._labels(step.label, step.count):
            msg = self._new_message(label, step.sender, tuple(to), step)
            msg.kind = "broadcast"
            msg.payload = self._body(msg, step.size, step.text)
            # a broadcast reaches every device of the other users (ADR-0158); the sender's
            # own user is not among its recipients (semafore.client.DeviceClient.broadcast)
            msg.to = tuple(u for u in to if u != step.sender.user)
            self._intent(msg, sync_copies=False)
            before = len(self.fleet.ledger.envelopes)
            try:
                if adapter is not None:
                    message_id, sent = await adapter.broadcast(to, msg.payload)
                    self._adapter_sent(adapter, message_id, sent)
                else:
                    assert client is not None
                    message_id = await client.broadcast(to, msg.payload)
                    sent = {recipient: body for sender, recipient, mid, body
                            in self.fleet.ledger.envelopes[before:]
                            if mid == message_id and sender == client.address}
            except (ClientError, ProtocolError) as exc:
                msg.failed = f"{type(exc).__name__}: {exc}"
                self._failed(step, str(step.sender), exc)
                continue
            self._record_sent(msg, None, sent, message_id)
            self.event(step, "broadcast", f"{label}: {step.sender} -> {len(msg.to)} users "
                       f"({len(sent)} envelopes)")
        await self.settle()

    async def attach(self, step: Attach) -> None:
        msg = self._new_message(step.label, step.sender, step.to, step)
        msg.kind = "attach"
        data = self._body(msg, step.size, None)
        msg.attachment, msg.payload = data, msg.canary
        self._intent(msg, sync_copies=True)
        if (adapter := self.adapter(step.sender)) is not None:
            await self._attach_adapter(step, msg, adapter, data)
            return
        client = self.client(step.sender)
        try:
            result, pointer = await client.send_attachment(list(step.to), data, msg.canary)
        except RecipientsFailed as exc:
            self._record_sent(msg, client, exc.result.envelopes, exc.result.message_id)
            for user, why in sorted(exc.failures.items()):
                msg.failed = f"{type(why).__name__}: {why}"
                self._failed(step, f"{step.sender} -> {user}", why)
            await self.settle()
            return
        self._record_sent(msg, client, result.envelopes, result.message_id)
        self._attached(step, pointer.file_id, pointer.key)
        await self.settle()

    async def _attach_adapter(self, step: Attach, msg: Message, device: AdapterDevice,
                              data: bytes) -> None:
        """``live.attach``: the adapter encrypts, uploads and sends the pointer itself."""
        try:
            message_id, sent, failed, file_id, key = await device.attach(
                step.to, data, msg.payload)
        except ImplError as exc:
            msg.failed = str(exc)
            self._failed(step, f"{step.sender} -> {', '.join(step.to)}", exc.name)
            await self.settle()
            return
        self._adapter_sent(device, message_id, sent)
        self._record_sent(msg, None, sent, message_id)
        for user, why in sorted(failed.items()):
            msg.failed = why
            self._failed(step, f"{step.sender} -> {user}", why)
        self._attached(step, file_id, key)
        await self.settle()

    def _attached(self, step: Attach, file_id: str, key: bytes) -> None:
        self.file_ids.append((step.label, file_id))
        with contextlib.suppress(OracleError):
            self.oracle.register_key(f"attachment key of {step.label}", key)
        self.event(step, "attach", f"{step.label}: {step.size} bytes, {step.sender} -> "
                   f"{', '.join(step.to)}")

    def _adapter_sent(self, device: AdapterDevice, message_id: str,
                      envelopes: dict[str, bytes]) -> None:
        """What an adapter device put on the wire enters the ledger as a reference client's
        sends do (simulator.fleet.Fleet._on_sent)."""
        for recipient, envelope in envelopes.items():
            self.fleet.ledger.expect(DeviceAddress.parse(device.address).user, message_id,
                                     recipient)
            self.fleet.ledger.envelopes.append((device.address, recipient, message_id,
                                                envelope))

    async def receipt(self, step: ReadReceipt) -> None:
        adapter = self.adapter(step.device)
        chosen = [m for m in self.messages if MessageSelector(labels=(step.message,))
                  .matches_label(m.label) and m.message_id]
        by_sender: dict[str, list[str]] = {}
        for m in chosen:
            by_sender.setdefault(m.sender.user, []).append(m.message_id)
        for user, ids in by_sender.items():
            if adapter is not None:
                self._adapter_sent(adapter, *await adapter.receipt(user, ids))
            else:
                await self.client(step.device).send_receipt(user, ids)
        self.event(step, "read_receipt", f"{step.device} read {len(chosen)} message(s)")
        await self.settle()

    async def screenshot(self, step: Screenshot) -> None:
        """The screen shows the messages' plaintext, so the image does too: a report that
        carried the image would put the canaries where the oracle looks (ADR-0159)."""
        adapter = self.adapter(step.device)
        chosen = [m for m in self.messages if MessageSelector(labels=(step.message,))
                  .matches_label(m.label) and m.message_id]
        if not chosen:
            self._failed(step, str(step.device), f"no sent message labelled {step.message}")
            return
        image = b"\x89PNG\r\n\x1a\n" + b"\n".join(m.payload for m in chosen)
        peer = chosen[0].sender.user if chosen[0].sender.user != step.device.user \
            else chosen[0].to[0]
        ids = [m.message_id for m in chosen]
        report = await (adapter.screenshot(peer, image, ids) if adapter is not None else
                        self.client(step.device).report_screenshot(peer, image, ids))
        self.event(step, "screenshot", f"{step.device} reported a screenshot of "
                   f"{len(chosen)} message(s) (report {report[:8]}…)")

    async def set_online(self, step: SetOnline) -> None:
        if (adapter := self.adapter(step.device)) is not None:  # it fetches only when online
            self.online[adapter.address] = step.online
            if step.online:
                await self.settle()
            self.event(step, step.kind, f"{step.device} {'online' if step.online else 'offline'}")
            return
        client = self.client(step.device)
        if step.online:
            client.connect()
            with contextlib.suppress(TimeoutError):
                await client.wait_connected(10)
            self.online[client.address] = True
            await self.settle()
        else:
            await client.disconnect()
            self.online[client.address] = False
        self.event(step, step.kind, f"{step.device} {'online' if step.online else 'offline'}")

    def apply_network(self, step: Network) -> None:
        net = self.fleet.network
        assert net is not None
        scope = str(step.scope) if step.scope else None
        if step.fault is NetworkFault.HEAL:
            net.heal(scope)
        else:
            record = net.add_fault(step.fault.value, device=scope, direction=step.direction,
                                   probability=step.probability, count=step.count,
                                   delay_ms=step.delay_ms, jitter_ms=step.jitter_ms,
                                   window=step.window, channel=step.channel, match=step.match)
            self.fault_records.append((step, record))
        self.event(step, "network", f"{step.fault.value} on {scope or 'every device'} "
                   f"({step.channel} {step.direction}"
                   f"{f' {step.match}' if step.match else ''}, p={step.probability})")

    async def apply_infra(self, step: Infra) -> None:
        during = f" during {step.during}" if step.during else ""
        if self.external is not None:  # the operator's hook (checked to exist before the run)
            hook = await self.external.fault(step)
            self.fault_records.append((step, hook))
            self.event(step, "infra", f"{step.action.value} {step.target.value}{during}: "
                       f"{hook.describe()}", ok=hook.fired, output=hook.output)
            return
        if step.target is not InfraTarget.SERVER:
            assert isinstance(self.infra, Infrastructure)
            volume = await self._volume_server(step)
            which = ("" if volume is None else
                     f" {volume} ({self.infra.seaweed_cluster().volumes[volume].process.name})"
                     + (f" holding {step.holding}" if step.holding is not None else ""))
            if step.user is not None:  # redis-cluster-primary: the node serving U's slot now
                which = f" of {step.user} ({(await self.infra.cluster_node(step.user)).name})"
            at = time.monotonic()
            effect = await self.infra.fault(step.target, step.action, step.user, volume=volume)
            self.fault_records.append((step, _BackendFault(
                f"{step.action.value} {step.target.value}{which} ({self.infra.name} provider)",
                effect, at)))
            self.event(step, "infra", f"{step.action.value} {step.target.value}{which}{during} "
                       f"({self.infra.name} provider)")
            return
        fleet = self.fleet
        chosen = ([step.replica] if step.replica is not None
                  else [r.index for r in fleet.replicas])
        action = step.action
        try:
            for index in chosen:
                done: Any
                if action is InfraAction.STOP:
                    done = await fleet.stop_relay(replica=index)
                elif action is InfraAction.KILL:
                    done = await fleet.stop_relay(replica=index, kill=True)
                elif action is InfraAction.START:
                    done = await fleet.start_relay(replica=index)
                elif action is InfraAction.RESTART:
                    done = await fleet.restart_relay(replica=index)
                elif action is InfraAction.PAUSE:
                    done = fleet.pause_replica(index)
                else:
                    done = fleet.unpause_replica(index)
                if hasattr(done, "fired"):  # what the action did (simulator.fleet.InfraRecord)
                    self.fault_records.append((step, done))
        except ReplicaError as exc:
            raise ExecutorError(f"infra {action.value} server: {exc}") from None
        which = ("the relay" if len(fleet.replicas) == 1 and step.replica is None
                 else "every replica" if step.replica is None else f"replica {step.replica}")
        states = ", ".join(f"{r.index}:{r.state.value}" for r in fleet.replicas)
        self.event(step, "infra", f"{action.value} server{during}: {which} "
                   f"(in-process, same stores; replicas {states})",
                   replicas=states)

    async def _volume_server(self, step: Infra) -> int | None:
        """The volume server index a ``seaweedfs-volume`` step hits (None for other targets):
        ``volume`` as written, or the holder of the ``holding`` attachment's blob, resolved
        the first time a step names that label."""
        if step.target is not InfraTarget.SEAWEEDFS_VOLUME or step.holding is None:
            return step.volume
        if step.holding not in self.volume_holding:
            file_id = dict(self.file_ids).get(step.holding)
            if file_id is None:
                raise ExecutorError(f"infra {step.action.value} seaweedfs-volume: attachment "
                                    f"{step.holding} was never uploaded")
            assert isinstance(self.infra, Infrastructure)
            self.volume_holding[step.holding] = await self.infra.volume_holding(file_id)
        return self.volume_holding[step.holding]

    async def attack(self, step: Attack) -> None:
        """An attacker acts through the relay's public API (simulator.attacks); an attack
        that cannot run fails the step, naming why."""
        outcome = await self.attacks.run(step)
        if isinstance(outcome, str):
            self._failed(step, f"attacker {step.name}", outcome)
            return
        gains = "; ".join(outcome.gains) or "nothing"
        self.event(step, "attack", f"{step.attack} as {step.name}: {outcome.attempts} "
                   f"attempt(s), gained {gains}", ok=not outcome.succeeded)

    async def exhaust_opks(self, step: ExhaustOpks) -> None:
        for ref in step.devices:
            org = self.scenario.user(ref.user).org
            console = self.fleet.orgs[org].devices["console"]
            claimed = 0
            while claimed < 1000:
                out = await console.http.json("GET", f"/v1/keys/{ref.user}/{ref.device}")
                if not out["devices"] or out["devices"][0]["opk"] is None:
                    break
                claimed += 1
            if step.replenish and (adapter := self.adapter(ref)) is not None:
                await adapter.replenish()
            elif step.replenish:
                await self.client(ref).maintain_prekeys()
            self.event(step, "exhaust_opks", f"{ref}: {claimed} one-time prekeys claimed"
                       + (", replenished" if step.replenish else ""))

    async def replay(self, step: Replay) -> None:
        net = self.fleet.network
        assert net is not None
        injected = 0
        for msg in self.messages:
            if not MessageSelector(labels=(step.message,)).matches_label(msg.label):
                continue
            for recipient, body in msg.recipients.items():
                if step.frames == "smx1" and not body.startswith(b"SMX1"):
                    continue
                if step.frames == "drv1" and not body.startswith(b"DRV1"):
                    continue
                # ``to`` picks which of the captured envelopes are replayed: those that were
                # addressed to the named devices, each back to its own recipient (issue #11:
                # it used to push every recipient's envelope at the named device)
                chosen = {str(r) for r in step.to}
                if chosen and recipient not in chosen:
                    continue
                for target in [recipient]:
                    link = net.links.get(target)
                    if link is None:
                        continue
                    frame = {
                        "type": "envelope",
                        "delivery_id": f"replay{injected}",
                        "message_id": msg.message_id,
                        "kind": "message",
                        "sender_user_id": msg.sender.user,
                        "sender_device_id": msg.sender.device,
                        "body": base64.b64encode(body).decode(),
                        "envelope_hash": base64.b64encode(bytes(32)).decode(),
                        "received_at": self.fleet.clock.now(),
                    }
                    for _ in range(step.times):
                        if link.inject_down(json.dumps(frame, separators=(",", ":")).encode()):
                            injected += 1
        self.replays_injected += injected
        if injected == 0:
            self._failed(step, ", ".join(str(r) for r in step.to) or "every recipient",
                         f"no captured envelope of {step.message} could be re-injected "
                         "(none matched, or the device had no open push socket)")
        self.event(step, "replay", f"{injected} captured envelope(s) of {step.message} "
                   "re-injected on the wire")
        await asyncio.sleep(0.2)
        await self.settle()

    # -- compromises ---------------------------------------------------------------------

    async def compromise(self, step: Compromise) -> None:
        await self.settle()
        view = View(step, self.now_ms(), len(self.messages))
        if step.compromise in (CompromiseKind.DEVICE, CompromiseKind.ALL_DEVICES):
            refs = ([step.device] if step.compromise is CompromiseKind.DEVICE and step.device
                    else [a for a in map(DeviceAddress.parse, self.online) if a.user == step.user])
            for ref in refs:
                if ref is None:
                    continue
                if (adapter := self.adapter(ref)) is not None:  # the adapter's own format
                    view.device_states[adapter.address] = await adapter.export_state()
                    self.stolen_from[adapter.address] = adapter.host
                    continue
                client = self.client(ref)
                view.device_states[client.address] = client.device.serialize()
            for address, received in self.fleet.received:
                if address in view.device_states:
                    msg = self.by_id.get(received.content.message_id)
                    if msg is not None:
                        view.received_before.add((address, msg.label))
        else:
            view.relay = await self._relay_view(step.compromise, step.org, None)
        self.views[step.name] = view
        self.event(step, "compromise", f"{step.compromise.value} adversary '{step.name}' "
                   f"holds its view from here ({step.window})")

    async def _relay_view(self, kind: CompromiseKind, org: str | None,
                          since_s: float | None) -> RelayView:
        """What a relay-side adversary of ``kind`` holds now (``since_s``: wire records
        captured from then on only), spooled to disk or referenced, never a list in memory."""
        view = RelayView()
        net = self.fleet.network
        try:
            # A subpoena compels what the operator holds (seed §1.1): every store and every
            # log line, plus the exports of the organisation it names (issue #11: the view
            # used to lack the stores and logs, so a relay logging plaintext passed).
            if kind in (CompromiseKind.SERVER, CompromiseKind.DATABASE, CompromiseKind.SUBPOENA):
                # an external relay: the stores its operator granted (simulator.external)
                view.parts += [Spooled(tier, spool) for tier, spool in await self.infra.spool()]
            if kind in (CompromiseKind.SERVER, CompromiseKind.INSIDER, CompromiseKind.SUBPOENA):
                if self.external is not None:  # the log files its operator granted (--relay-log)
                    view.parts += await self.external.log_extents()
                self.log_stream.flush()
                view.parts.append(LogExtent(self.log_path, self.log_path.stat().st_size))
            if kind in (CompromiseKind.SERVER, CompromiseKind.NETWORK) and net is not None:
                view.parts.append(WireRange(net.captured, len(net.captured), since_s))
            if kind in (CompromiseKind.INSIDER, CompromiseKind.SUBPOENA):
                view.parts += spooled(await self._operator_exports(org))
        except BaseException:
            view.close()
            raise
        return view

    async def _operator_exports(self, only_org: str | None) -> list[Chunk]:
        """What the operator's surfaces export: the SIEM/audit NDJSON and delivery proofs, one
        chunk per record (an audit line, a delivery proof), so the metadata inventory links
        only identifiers that share a record — a whole export as one item made everyone in
        it look like they talked to each other (issue #11)."""
        out: list[Chunk] = []
        for org, account in self.fleet.orgs.items():
            if only_org is not None and org != only_org:
                continue
            console = account.devices.get("console")
            if console is None:
                continue
            with contextlib.suppress(ClientError):
                if console.role != "admin":
                    continue
                export = await console.http.call("GET", f"/v1/orgs/{org}/audit/export")
                for number, line in enumerate(export.content.splitlines(), start=1):
                    if line.strip():
                        out.append(Chunk("export", f"{org} audit export line {number}", line))
                deliveries = await console.http.call("GET", f"/v1/orgs/{org}/deliveries",
                                                      params={"limit": 500})
                out.extend(Chunk("export", f"{org} delivery proof {label}", data)
                           for label, data in _records(deliveries.content))
        return out

    # -- keys to the oracle --------------------------------------------------------------

    def register_device(self, client: DeviceClient) -> None:
        d = client.device
        who = d.address
        keys = d.keys
        values = [("IK private", keys.identity.ik.private), ("SIK seed", keys.identity.sik.private),
                  ("SPK private", keys.spk.keypair.private)]
        values += [("previous SPK private", s.keypair.private) for s in keys.previous_spks.values()]
        values += [("OPK private", o.keypair.private) for o in keys.opks.values()]
        for peer, record in d.sessions.items():
            for session in record.sessions():
                r = session.ratchet
                values += [("root key", r.rk), ("ratchet private", r.dhs.private)]
                values += [(name, v) for name, v in (("sending chain", r.cks),
                                                     ("receiving chain", r.ckr)) if v]
                values += [("skipped message key", mk) for mk in r.skipped.values()]
                if session.bootstrap is not None:
                    values.append(("X3DH SK", session.bootstrap.sk))
            del peer
        for name, value in values:
            with contextlib.suppress(OracleError):
                self.oracle.register_key(f"{who} {name}", value)

    async def _steal(self, address: str, state: bytes,
                     envelopes: list[CapturedEnvelope]) -> list[Attempt]:
        """What a thief holding ``address``'s state reads of ``envelopes``: a reference
        state is opened here (simulator.adversary), an adapter's by that adapter, the only
        reader of its format (``live.state.attack``)."""
        host = self.stolen_from.get(address)
        if host is None:
            return DeviceAdversary(address, state, dict(self.identities)).attack(envelopes)
        return await host.attack(address, state, self.identities, envelopes)

    async def _adapter_counters(self) -> None:
        """``live.stats`` of every adapter device whose adapter lists it: its counters join
        the reference clients' in :meth:`_stats` (a device gone since keeps its last)."""
        for address, device in self.adapters.items():
            if device.host.dead is None and "live.stats" in await device.host.ops():
                self.adapter_counts[address] = await device.stats()

    async def _adapter_secrets(self) -> None:
        """Register with the oracle every secret the adapters reported (``live.secrets``):
        a platform that logs or stores a key must fail ``oracle_clean`` like the reference."""
        for name, host in self.hosts.items():
            if host.dead is not None or "live.secrets" not in await host.ops():
                continue
            for kind, value in await host.secrets():
                self._on_secret(f"{name} {kind}", value)

    def _register_keys(self) -> None:
        for client in self.fleet.clients():
            self.register_device(client)

    async def snapshot_keys(self, ref: DeviceAddress) -> None:
        with contextlib.suppress(ExecutorError):
            self.register_device(self.client(ref))

    # -- assertions ----------------------------------------------------------------------

    def _select(self, sel: MessageSelector) -> list[Message]:
        out = []
        for m in self.messages:
            if not sel.matches_label(m.label):
                continue
            if sel.senders and not any(s in (m.sender.user, str(m.sender)) for s in sel.senders):
                continue
            if sel.recipients and not any(r in m.to or any(
                    a == r for a in m.recipients) for r in sel.recipients):
                continue
            if sel.before and m.seq >= self.views[sel.before].at_seq:
                continue
            if sel.after and m.seq < self.views[sel.after].at_seq:
                continue
            out.append(m)
        return out

    def _arrivals(self) -> dict[tuple[str, str], list[Received]]:
        """What each device decrypted and showed, by (device address, message id)."""
        out: dict[tuple[str, str], list[Received]] = {}
        for address, received in self.fleet.received:
            out.setdefault((address, received.content.message_id), []).append(received)
        return out

    async def _fetch_attachments(self) -> None:
        """Each device that received an attachment pointer fetches the blob, as its app
        would; the bytes are compared with what the sender attached."""
        for address, received in self.fleet.received:
            pointer = received.content.attachment
            key = (address, received.content.message_id)
            if (adapter := self.adapters.get(address)) is not None and key not in self.fetched:
                if received.content.message_id in adapter.attachments:  # its app fetched it
                    self.fetched[key] = adapter.attachments[received.content.message_id]
                continue
            if pointer is None or key in self.fetched:
                continue
            try:
                client = self.fleet.client(address)
                self.fetched[key] = await client.fetch_attachment(pointer)
            except (KeyError, ClientError, ProtocolError) as exc:
                self.fetched[key] = f"{type(exc).__name__}: {exc}"

    async def assertion(self, step: Assertion) -> None:
        kind = step.assertion
        if kind is AssertionKind.SESSIONS_CONVERGE and self.adapters:
            await self._adapter_digests(step.devices)
        if kind in _EVALUATED_WHERE_THEY_STAND:
            await self.settle()
            if kind in (AssertionKind.DELIVERED_EXACTLY_ONCE, AssertionKind.NOT_DELIVERED):
                await self._fetch_attachments()
            outcome, summary, evidence = _allowing_empty(step, *self._evaluate_now(step))
            self.result.record(step, outcome, summary, evidence)
            self.event(step, "assert", f"{kind.value}: {outcome.value}",
                       ok=outcome in (Outcome.HELD, Outcome.EXPOSED))
        else:
            self.deferred.append(step)
            self.event(step, "assert", f"{kind.value}: evaluated at the end of the run")

    def _evaluate_now(self, step: Assertion) -> tuple[Outcome, str, list[str]]:
        kind = step.assertion
        if kind is AssertionKind.SESSIONS_CONVERGE:
            return self._converge(step)
        if kind is AssertionKind.MECHANISM:
            return self._mechanism(step)
        if kind is AssertionKind.ATTACK_FAILED:
            return self.attacks.evaluate(step)
        if kind is AssertionKind.DECRYPT_ERROR:
            return self._decrypt_error(step)
        if kind is AssertionKind.NO_KEY_NONCE_REUSE:
            return self._key_nonce_reuse()
        if kind is AssertionKind.RECOVERED_WITHIN:
            return self._recovered_within(step)
        if kind is AssertionKind.FAILOVER:
            return self._failover(step)
        return self._deliveries(step)

    def _failover(self, step: Assertion) -> tuple[Outcome, str, list[str]]:
        """The Jepsen-style figures of the sends around the (first) redis-primary fault
        (:mod:`simulator.failover`); they also go into the report's timeline as details."""
        faults = [record.at for s, record in self.fault_records
                  if isinstance(s, Infra) and s.target in PRIMARY_TARGETS
                  and isinstance(record, _BackendFault) and record.fired]
        if not faults:
            return (Outcome.INCONCLUSIVE, "no redis-primary or redis-cluster-primary fault "
                    "happened before this step", [])
        samples = [failover.SendSample(m.label, m.message_id, m.begun_wall * 1000,
                                       None if m.acked_wall is None else m.acked_wall * 1000,
                                       frozenset(m.intended))
                   for m in self.messages if m.kind == "send" and m.message_id
                   and not m.withheld]
        shown = {key: len(got) for key, got in self._arrivals().items()}
        net = self.fleet.network
        handed = failover.wire_deliveries(
            (c.device, c.data) for c in (net.captured if net is not None else ())
            if c.direction == "down")
        figures = failover.measure(samples, shown, handed, faults[0] * 1000)
        verdict = failover.judge(figures, acked_lost_at_most=step.acked_lost_at_most,
                                 duplicated_at_most=step.duplicated_at_most,
                                 window_at_most_s=step.window_at_most_s)
        self.event(step, "failover", figures.describe(), ok=verdict.held is True,
                   **figures.as_details())
        outcome = (Outcome.INCONCLUSIVE if verdict.held is None
                   else Outcome.HELD if verdict.held else Outcome.VIOLATED)
        return outcome, verdict.summary, verdict.evidence

    def _mechanism(self, step: Assertion) -> tuple[Outcome, str, list[str]]:
        stat = step.stat or ""
        if self.external is not None and stat in RELAY_INTERNAL_STATS:
            return (Outcome.UNSUPPORTED, f"{stat} {RELAY_INTERNAL_STATS[stat]}: not observable "
                    "against an external relay", [])
        value = self._stats()[stat]
        low, high = step.at_least, step.at_most
        ok = (low is None or value >= low) and (high is None or value <= high)
        bounds = " and ".join(b for b in (f">= {low}" if low is not None else "",
                                          f"<= {high}" if high is not None else "") if b)
        uncounted = sorted(a for a in self.adapters if a not in self.adapter_counts)
        if uncounted and stat in CLIENT_COUNTED_STATS:
            # not counted on devices of adapters without live.stats: they can only add to
            # it, so the count is a lower bound — it proves at_least, never at_most
            partial = (f"{stat} >= {value} not counting adapter devices "
                       f"{', '.join(uncounted)} (no live.stats)")
            if high is None and low is not None and value >= low:
                return Outcome.HELD, f"{partial}; asserted {bounds}", []
            return Outcome.UNSUPPORTED, f"{partial}: cannot show {bounds}", []
        return (Outcome.HELD if ok else Outcome.VIOLATED,
                f"{stat} = {value} (asserted {bounds}): {MECHANISM_STATS[stat]}", [])

    def _decrypt_error(self, step: Assertion) -> tuple[Outcome, str, list[str]]:
        """The named error was raised on the device *for one of the selected messages* (an
        error without a message id proves nothing about them), and the session recovers:
        the same peer's later messages to the device are delivered (checked at the end)."""
        if len(step.devices) != 1:
            return Outcome.ERROR, "decrypt_error needs exactly one device", []
        address = str(step.devices[0])
        ids = {m.message_id for m in self._select(step.messages) if m.message_id}
        if not ids:
            return Outcome.INCONCLUSIVE, "no sent message matches the selector", []
        seen = [(i, e) for i, (a, e) in enumerate(self.fleet.events)
                if a == address and e.kind in ("undecryptable", "duplicate_frame",
                                               "untrusted_identity")
                and e.message_id in ids]
        names = sorted({e.detail for _, e in seen})
        evidence = [f"{e.kind} {e.detail} from {e.peer} (message {e.message_id})"
                    for _, e in seen][:20]
        hits = [(i, e) for i, e in seen if e.detail == step.error]
        if not hits:
            return (Outcome.VIOLATED,
                    f"{address} raised {names or 'no error'} for the selected message(s); "
                    f"expected {step.error}", evidence)
        peers = {e.peer for _, e in hits if e.peer}
        self.recoveries.append((step, address, peers, hits[-1][0]))
        return (Outcome.HELD, f"{address} raised {step.error} for {len(hits)} selected "
                f"frame(s); recovery is checked at the end of the run", evidence)

    def _recovery(self, step: Assertion, address: str, peers: set[str],
                  last_error: int) -> tuple[Outcome, str, list[str]]:
        """Messages the erring peer sent the device after the (last) error must arrive."""
        later = [m for m in self.messages if not m.withheld and m.events_before > last_error
                 and str(m.sender) in peers and address in m.intended]
        if not later:
            return (Outcome.INCONCLUSIVE, f"{step.error} was raised, but no later message "
                    f"from {', '.join(sorted(peers))} to {address} shows the session "
                    "recovered", [])
        arrivals = self._arrivals()
        bad = [f"{m.label} -> {address}: delivered {len(arrivals.get((address, m.message_id), []))}"
               " time(s)" for m in later
               if len(arrivals.get((address, m.message_id), [])) != 1]
        return (Outcome.VIOLATED if bad else Outcome.HELD,
                f"{step.error} raised, then {len(later) - len(bad)} of {len(later)} later "
                f"message(s) from {', '.join(sorted(peers))} delivered (recovery)", bad[:20])

    def _deliveries(self, step: Assertion) -> tuple[Outcome, str, list[str]]:
        """Compare the scenario's intent (who sent what to whom, sync copies included) with
        what each device decrypted, byte for byte; never what the sending client reported."""
        kind = step.assertion
        chosen = self._select(step.messages)
        if kind is AssertionKind.DELIVERED_EXACTLY_ONCE and step.messages.all:
            chosen = [m for m in chosen if not m.withheld]  # never sent: nothing to deliver
        wanted = {str(d) for d in step.devices}
        arrivals = self._arrivals()
        problems: list[str] = []
        checked = 0
        for m in chosen:
            if kind is AssertionKind.NOT_DELIVERED:
                for address in sorted(wanted or m.intended):
                    checked += 1
                    if arrivals.get((address, m.message_id)):
                        problems.append(f"{m.label} -> {address}: delivered")
                    elif address in m.recipients and address not in m.intended:
                        problems.append(f"{m.label} -> {address}: encrypted to a device the "
                                        "message was never meant for (removed or unknown)")
                continue
            targets = (m.intended & wanted) if wanted else m.intended
            for address in sorted(targets):
                checked += 1
                got = arrivals.get((address, m.message_id), []) if m.message_id else []
                if len(got) != 1:
                    why = f" (the send failed: {m.failed})" if m.failed and not got else ""
                    problems.append(f"{m.label} -> {address}: delivered {len(got)} time(s){why}")
                    continue
                problems.extend(self._content_problems(m, address, got[0]))
            if not wanted:
                problems.extend(f"{m.label} -> {address}: encrypted to a device the message "
                                "was never meant for (removed or unknown)"
                                for address in sorted(set(m.recipients) - m.intended))
            if not wanted and m.message_id:
                for (address, mid), got in sorted(arrivals.items()):
                    if mid == m.message_id and address not in m.intended and any(
                            r.sender_user_id == m.sender.user for r in got):
                        problems.append(f"{m.label} -> {address}: shown on a device it was "
                                        "never meant for")
        if checked == 0:
            return (Outcome.INCONCLUSIVE, "0 (message, device) pairs to check: no selected "
                    "message has an intended recipient device", [])
        summary = (f"{checked} (message, device) pairs checked"
                   + (", plaintext compared byte for byte" if kind is
                      AssertionKind.DELIVERED_EXACTLY_ONCE else "")
                   if not problems else f"{len(problems)} problem(s) in {checked} (message, "
                   "device) pairs")
        return (Outcome.VIOLATED if problems else Outcome.HELD), summary, problems[:50]

    def _content_problems(self, m: Message, address: str, got: Received) -> list[str]:
        out = []
        if got.sender_user_id != m.sender.user or got.sender_device_id != m.sender.device:
            out.append(f"{m.label} -> {address}: shown as sent by {got.sender}")
        if got.content.body != m.payload:
            out.append(f"{m.label} -> {address}: plaintext differs from what was sent "
                       f"({len(got.content.body)} bytes shown, {len(m.payload)} sent)")
        if m.attachment is not None:
            fetched = self.fetched.get((address, m.message_id))
            if fetched != m.attachment:
                why = fetched if isinstance(fetched, str) else "bytes differ" if fetched \
                    else "no attachment pointer"
                out.append(f"{m.label} -> {address}: attachment not fetched back intact ({why})")
        return out

    def _converge(self, step: Assertion) -> tuple[Outcome, str, list[str]]:
        refs = list(step.devices)
        if len(refs) < 2:
            return Outcome.ERROR, "sessions_converge needs two or more devices", []
        evidence, bad = [], False
        for i, a in enumerate(refs):
            for b in refs[i + 1:]:
                da, db = self._session_digest(a, b), self._session_digest(b, a)
                if da is None or db is None:
                    evidence.append(f"{a} <-> {b}: no current session on one side")
                    bad = True
                    continue
                same = da == db
                bad |= not same
                evidence.append(f"{a} <-> {b}: digests {da.hex()[:16]} / {db.hex()[:16]} "
                                f"{'agree' if same else 'DIFFER'}")
        return (Outcome.VIOLATED if bad else Outcome.HELD,
                "session digests (SPEC §7) " + ("differ" if bad else "agree"), evidence)

    def _key_nonce_reuse(self) -> tuple[Outcome, str, list[str]]:
        """No AES-GCM (key, nonce) pair sealed two different envelopes, over every envelope
        a device handed to the relay so far (simulator.nonce_reuse; SPEC §3)."""
        labels = {m.message_id: m.label for m in self.messages if m.message_id}
        examined, found = find_reuse(
            (sender, recipient, f"{labels.get(mid, mid)}", body)
            for sender, recipient, mid, body in self.fleet.ledger.envelopes)
        if not examined:
            return Outcome.INCONCLUSIVE, "no sealed envelope to examine", []
        if found:
            return (Outcome.VIOLATED, f"{len(found)} AES-GCM (key, nonce) pair(s) reused in "
                    f"{examined} envelopes", [r.describe() for r in found[:20]])
        return Outcome.HELD, f"{examined} envelopes, every (key, nonce) pair sealed once", []

    def _recovered_within(self, step: Assertion) -> tuple[Outcome, str, list[str]]:
        """Between the two devices, of the messages sent after the one labelled ``after``
        (the last before the disruption), in send order, every one after the first
        ``exchanges`` arrived exactly once at the peer device."""
        a, b = (str(d) for d in step.devices)
        pairs = ((a, b), (b, a))
        marks = [m.seq for m in self.messages
                 if m.label == step.after or m.label.startswith(f"{step.after}.")]
        if not marks:
            return Outcome.ERROR, f"no message labelled {step.after} was sent", []
        between = [m for m in self.messages[max(marks) + 1:] if not m.withheld and any(
            (str(m.sender), t) in pairs for t in m.intended)]
        grace = step.exchanges or 0
        later = between[grace:]
        if not later:
            return (Outcome.INCONCLUSIVE, f"{len(between)} message(s) between {a} and {b} "
                    f"after the selection: none beyond the {grace} the recovery may cost", [])
        arrivals = self._arrivals()

        def peer(m: Message) -> str:
            return b if str(m.sender) == a else a

        def count(m: Message) -> int:
            return len(arrivals.get((peer(m), m.message_id), []))

        lost = [m.label for m in between[:grace] if count(m) != 1]
        bad = [f"{m.label} -> {peer(m)}: delivered {count(m)} time(s)" for m in later
               if count(m) != 1]
        summary = (f"{len(later) - len(bad)} of {len(later)} message(s) after the first "
                   f"{grace} delivered exactly once; the recovery cost {len(lost)} "
                   f"({', '.join(lost) or 'none'})")
        return (Outcome.VIOLATED if bad else Outcome.HELD), summary, bad[:20]

    def _session_digest(self, ref: DeviceAddress, remote: DeviceAddress) -> bytes | None:
        """SPEC §7 digest of ``ref``'s current session with ``remote``: from the reference
        client, or as the adapter answered ``session.digest`` (:meth:`_adapter_digests`)."""
        a, b = str(ref), str(remote)
        if a in self.adapters:
            return self.digests.get((a, b))
        record = self.client(ref).device.sessions.get(b)
        if record is None or record.current is None:
            return None
        return record.current.ratchet.digest()

    async def _adapter_digests(self, refs: tuple[DeviceAddress, ...]) -> None:
        for ref in refs:
            device = self.adapter(ref)
            if device is None:
                continue
            for other in refs:
                if other != ref:
                    remote = str(other)
                    self.digests[(device.address, remote)] = await device.digest(remote)

    # -- end of run: adversaries, oracle, inventory --------------------------------------

    def _captured(self) -> list[CapturedEnvelope]:
        out = []
        seq = 0
        for m in self.messages:
            if m.withheld:
                continue  # never crossed the wire: no adversary holds it
            for recipient, body in sorted(m.recipients.items()):
                out.append(CapturedEnvelope(seq, str(m.sender), recipient,
                                            m.label, m.message_id, body, m.sent_at_ms))
                seq += 1
        return out

    def transcript_digest(self) -> str:
        """SHA-256 over every envelope in send order: equal digests = byte-identical runs."""
        h = hashlib.sha256()
        for env in self._captured():
            h.update(f"{env.sender}>{env.recipient}:{len(env.body)}:".encode())
            h.update(env.body)
        return h.hexdigest()

    def _label_of(self, plaintext: bytes) -> str | None:
        body = content_body(plaintext)
        for m in self.messages:
            if m.canary in body:
                return m.label
        return None

    async def _finish(self) -> None:
        captured = self._captured()
        identifiers = self._identifiers()
        seen_hits: set[tuple[str, str, str]] = set()
        attempts_by_view: dict[str, list[tuple[CapturedEnvelope, str, str]]] = {}
        for name, view in self.views.items():
            step = view.step
            av = AdversaryView(name, step.compromise.value, step.index, _describe(step))
            decrypted: list[tuple[CapturedEnvelope, str, str]] = []
            if step.compromise in RELAY_SIDE:
                if step.window != "until_here" or view.relay is None:
                    if view.relay is not None:
                        view.relay.close()
                    since = view.at_ms / 1000.0 + self.t0 if step.window == "from_here" else None
                    view.relay = await self._relay_view(step.compromise, step.org, since)
                # read as a stream, twice rather than held (simulator.relay_view.examine)
                examined = examine(view.relay, self.oracle, name, step.compromise.value,
                                   identifiers)
                report = examined.report
                view.hits, view.scanned = report.hits, sum(report.bytes_by_tier.values())
                for tier, size in report.bytes_by_tier.items():
                    self.result.oracle_scanned[tier] = \
                        self.result.oracle_scanned.get(tier, 0) + size
                for hit in report.hits:
                    if (key := (hit.location, hit.label, hit.kind)) not in seen_hits:
                        seen_hits.add(key)
                        self.result.oracle_hits.append(hit)
                self.result.inventory.append(examined.inventory)
                av.sources = examined.sources
                states = examined.states
                av.notes.append(f"{len(states)} persisted device state(s) found in the view")
                for state in states:
                    # a harvested state is used as the device it belongs to, so its own
                    # chains are tried (issue #11: it ran as address "?", opening nothing)
                    adversary = DeviceAdversary(_state_address(state), state,
                                                dict(self.identities))
                    for attempt in adversary.attack(captured):
                        av.envelopes_tried += 1
                        if attempt.plaintext is not None:
                            decrypted.append((attempt.envelope, attempt.direction, "state"))
            else:
                with_wire = captured if step.with_wire else []
                for address, state in view.device_states.items():
                    for attempt in await self._steal(address, state, with_wire):
                        av.envelopes_tried += 1
                        if attempt.plaintext is not None:
                            decrypted.append((attempt.envelope, attempt.direction, address))
                av.sources = [SourceSummary("device state", len(view.device_states),
                                            sum(len(s) for s in view.device_states.values())),
                              SourceSummary("wire envelopes", len(with_wire),
                                            sum(len(e.body) for e in with_wire))]
            av.decrypted = [f"{env.label} -> {env.recipient.replace(':', '/')} ({direction})"
                            for env, direction, _ in decrypted]
            attempts_by_view[name] = decrypted
            self.result.adversaries.append(av)
        for assertion in self.deferred:
            outcome, summary, evidence = _allowing_empty(
                assertion, *self._evaluate_adversary(assertion, attempts_by_view))
            if self.external is not None:  # a view without an ungranted source proves nothing
                outcome, summary = qualify(assertion, outcome, summary, self._gaps(assertion),
                                           self.external.relay.require)
            self.result.record(assertion, outcome, summary, evidence)
        for assertion, address, peers, last_error in self.recoveries:
            outcome, summary, evidence = _allowing_empty(
                assertion, *self._recovery(assertion, address, peers, last_error))
            if outcome is not Outcome.HELD:
                self.result.record(assertion, outcome, summary, evidence)

    def _gaps(self, step: Assertion) -> dict[str, dict[str, str]]:
        """Per view the assertion reads, the relay-side sources it needed but did not get
        (an external relay's operator grants stores and logs, simulator.external)."""
        if self.external is None:
            return {}
        names = (step.adversaries or tuple(self.views)
                 if step.assertion is AssertionKind.ORACLE_CLEAN else (step.adversary or "",))
        return {name: gaps for name in names if name in self.views
                and (gaps := self.external.missing_for(self.views[name].step.compromise))}

    def _identifiers(self) -> list[inv.Identifier]:
        out = [inv.Identifier("org", o.id, o.id) for o in self.scenario.organisations]
        for user in self.scenario.users:
            out.append(inv.Identifier("user", user.id, user.id, user.id))
        for user_id, devices in self.cast.items():
            for device in devices:
                out.append(inv.Identifier("device", device, str(DeviceAddress(user_id, device)),
                                          user_id))
        for m in self.messages:
            if m.message_id:
                out.append(inv.Identifier("message", m.message_id, m.label, None))
        for label, file_id in self.file_ids:
            out.append(inv.Identifier("file", file_id, f"attachment {label}", None))
        return out

    def _raw_identifier_hits(self, names: tuple[str, ...]) -> list[str]:
        """Identifiers (users, devices, messages, files) a log line shows raw: logs carry
        only ``*_h8`` pseudonyms (org ids are raw by design; docs/server.md "Logging").
        The audit export and delivery proofs name users and messages by design: they are
        the organisation's own records, handed to its admin (docs/audit-schema.md)."""
        out = []
        for found in self.result.inventory:
            if found.adversary not in names:
                continue
            for category, owners in found.raw.items():
                if category == "org":
                    continue
                for owner in owners:
                    tiers = [t for t in found.where.get(owner, []) if t == TIER_LOG]
                    if tiers:
                        out.append(f"raw {category} id of {owner} in {', '.join(tiers)}")
        return out

    def _evaluate_adversary(
        self, step: Assertion, attempts: dict[str, list[tuple[CapturedEnvelope, str, str]]]
    ) -> tuple[Outcome, str, list[str]]:
        kind = step.assertion
        if kind is AssertionKind.ORACLE_CLEAN:
            names = step.adversaries or tuple(self.views)
            held = [self.views[n] for n in names if n in self.views]
            found: dict[tuple[str, str, str], Hit] = {}
            for one in held:  # a hit at the same place in two views counts once
                for h in one.hits:
                    found.setdefault((h.location, h.label, h.kind), h)
            hits = [h for h in found.values() if step.identifiers or h.kind != "identifier"]
            raw_ids = self._raw_identifier_hits(names) if step.identifiers else []
            scanned = sum(one.scanned for one in held)
            if scanned == 0:
                return Outcome.INCONCLUSIVE, "0 bytes in the named views: nothing scanned", []
            if not self.oracle.secrets:
                return Outcome.INCONCLUSIVE, "no canary or key was registered: nothing to " \
                    "look for", []
            bad = [f"{h.label} in {h.tier} at {h.location} ({h.encoding})" for h in hits]
            return (Outcome.VIOLATED if bad or raw_ids else Outcome.HELD,
                    f"{len(hits) + len(raw_ids)} hit(s) in {scanned} bytes scanned",
                    (bad + raw_ids)[:50])
        name = step.adversary or ""
        view = self.views.get(name)
        if view is None:
            return Outcome.ERROR, f"no adversary named {name!r}", []
        if kind is AssertionKind.LOG_PSEUDONYMS:
            return assess_log_pseudonyms(  # the view read once more, as a stream
                step, view.relay.records() if view.relay is not None else (), seed=self.seed)
        decrypted = attempts.get(name, [])
        evidence = [f"{env.label} -> {env.recipient} ({direction})"
                    for env, direction, _ in decrypted]
        if kind is AssertionKind.ADVERSARY_DECRYPTS_NOTHING:
            captured = self._captured()
            if not captured:
                return Outcome.INCONCLUSIVE, "no envelope crossed the wire: nothing to decrypt", []
            av = next(a for a in self.result.adversaries if a.name == name)
            return (Outcome.VIOLATED if decrypted else Outcome.HELD,
                    f"decrypted {len(decrypted)} of {len(captured)} envelope(s) "
                    f"({av.envelopes_tried} attempt(s) with key material found in the view)",
                    evidence[:50])
        if kind is AssertionKind.EXPOSED:
            chosen = {m.label for m in self._select(step.messages)}
            if not chosen:
                return Outcome.INCONCLUSIVE, "no message matches the selector", []
            got = {env.label for env, _, _ in decrypted}
            missing = sorted(chosen - got)
            return (Outcome.EXPOSED if not missing else Outcome.VIOLATED,
                    f"{len(chosen & got)} of {len(chosen)} selected message(s) decrypted"
                    + (f" ({step.documented})" if step.documented else ""),
                    [f"not decrypted: {m}" for m in missing][:20] or evidence[:20])
        if kind in (AssertionKind.METADATA_EXPOSED, AssertionKind.METADATA_NOT_EXPOSED):
            return self._metadata(step, name)
        if view.step.compromise not in (CompromiseKind.DEVICE, CompromiseKind.ALL_DEVICES):
            return Outcome.ERROR, f"{kind.value} applies to device compromises", []
        stolen = set(view.device_states)
        av = next(a for a in self.result.adversaries if a.name == name)
        if av.envelopes_tried == 0:
            return (Outcome.INCONCLUSIVE, "0 envelopes tried against the stolen state "
                    "(with_wire: false, or nothing was sent)", [])
        if kind is AssertionKind.COMPROMISE_SCOPE:
            outside = [(e, d) for e, d, _ in decrypted
                       if e.recipient not in stolen and e.sender not in stolen]
            tried_other = sum(1 for e in self._captured()
                              if e.recipient not in stolen and e.sender not in stolen)
            if tried_other == 0 and not outside:
                return (Outcome.INCONCLUSIVE, "no envelope between other devices was on the "
                        "wire: the scope was never tested", [])
            return (Outcome.VIOLATED if outside else Outcome.HELD,
                    f"decrypted {len(decrypted)} envelope(s), all of them to or from "
                    f"{', '.join(sorted(stolen))}; {tried_other} envelope(s) of other devices "
                    "tried, none opened" if not outside else
                    f"{len(outside)} envelope(s) of other devices decrypted",
                    [f"{e.label} -> {e.recipient} ({d})" for e, d in outside][:20] or evidence[:20])
        if kind is AssertionKind.FORWARD_SECRECY:
            before = [(e, d) for e, d, _ in decrypted if self._msg(e).seq < view.at_seq]
            already = [(e, d) for e, d in before
                       if (e.recipient, e.label) in view.received_before or d == "outbound"]
            in_flight = [(e, d) for e, d in before if (e, d) not in already]
            old = [e for e in self._captured() if self._msg(e).seq < view.at_seq
                   and (e.recipient in stolen or e.sender in stolen)]
            if not old:
                return (Outcome.INCONCLUSIVE, "no envelope to or from the stolen device "
                        "predates the compromise: forward secrecy was never tested", [])
            note = (f"; {len(in_flight)} envelope(s) still in flight at the compromise opened "
                    "(undelivered messages are readable by design)" if in_flight else "")
            return (Outcome.VIOLATED if already else Outcome.HELD,
                    f"{len(already)} of {len(old)} envelope(s) exchanged before the "
                    f"compromise decrypted{note}",
                    [f"{e.label} -> {e.recipient} ({d})" for e, d in already + in_flight][:20])
        if kind is AssertionKind.POST_COMPROMISE_SECURITY:
            return self._pcs(step, view, decrypted)
        return Outcome.ERROR, f"assertion {kind.value} is not supported", []

    def _metadata(self, step: Assertion, name: str) -> tuple[Outcome, str, list[str]]:
        """What a relay-side adversary sees about the run's messages (seed §2.2, §2.5),
        shown as the exposed items themselves; zero messages on the wire is no evidence."""
        found = [i for i in self.result.inventory if i.adversary == name]
        if not found:
            return Outcome.ERROR, "no metadata inventory for this adversary", []
        if not self._captured():
            return (Outcome.INCONCLUSIVE, "no message crossed the wire: there was no "
                    "metadata to expose", [])
        items = {m.value: found[0].evidence(m) for m in step.sees}
        seen = {k: bool(v) for k, v in items.items()}
        evidence = [f"{k}: {e}" for k, v in items.items() for e in v[:8]]
        if step.assertion is AssertionKind.METADATA_EXPOSED:
            ok = all(seen.values())
            return (Outcome.EXPOSED if ok else Outcome.VIOLATED,
                    f"sees {seen}" + (f" ({step.documented})" if step.documented else ""),
                    evidence[:40] or [f"not seen: {k}" for k, v in seen.items() if not v])
        leaked = [k for k, v in seen.items() if v]
        return (Outcome.VIOLATED if leaked else Outcome.HELD,
                f"sees {seen}", evidence[:40])

    def _msg(self, env: CapturedEnvelope) -> Message:
        for m in self.messages:
            if m.message_id == env.message_id and m.label == env.label:
                return m
        raise KeyError(env.label)

    def _pcs(self, step: Assertion, view: View,
             decrypted: list[tuple[CapturedEnvelope, str, str]]) -> tuple[Outcome, str, list[str]]:
        """Round trips after the compromise, per session (a stolen device and one peer
        device, SPEC §3: the DH ratchet heals each session on its own): a round trip
        completes when the peer device sends after the stolen device sent to it. Envelopes in
        *both* directions count: once a session healed, neither the peer's envelopes nor the
        stolen device's own later ones may open (issue #11: outgoing ones were ignored)."""
        stolen = set(view.device_states)
        turns: dict[tuple[str, str], tuple[str, int]] = {}  # session -> (last direction, n)
        rt_of: dict[int, int] = {}  # envelope seq -> round trips of its session before it
        later = [e for e in self._captured() if self._msg(e).seq >= view.at_seq]
        for env in later:
            if env.sender in stolen:
                session = (env.sender, env.recipient)
                _, n = turns.get(session, ("", 0))
                turns[session] = ("out", n)
                rt_of[env.seq] = n
            elif env.recipient in stolen:
                session = (env.recipient, env.sender)
                last, n = turns.get(session, ("", 0))
                n += last == "out"
                turns[session] = ("in", n)
                rt_of[env.seq] = n
        if not rt_of:
            return (Outcome.INCONCLUSIVE, "no envelope between the stolen device and a peer "
                    "after the compromise: healing was never tested", [])
        healed = [seq for seq, n in rt_of.items() if n >= step.round_trips]
        if not healed:
            return (Outcome.INCONCLUSIVE, f"no envelope after {step.round_trips} round "
                    "trip(s) of its session: the ratchet never had the chance to heal", [])
        after = [(e, d) for e, d, _ in decrypted if e.seq in rt_of]
        late = [(e, d) for e, d in after if rt_of[e.seq] >= step.round_trips]
        summary = (f"{len(after)} envelope(s) after the compromise decrypted, "
                   f"{len(late)} of them after {step.round_trips} round trip(s) of their "
                   f"session; {len(healed)} such envelope(s) tried")
        return (Outcome.VIOLATED if late else Outcome.HELD, summary,
                [f"{e.label} -> {e.recipient} ({d}) at round trip {rt_of[e.seq]}"
                 for e, d in (late or after)][:30])


def _describe(step: Compromise) -> str:
    return {
        CompromiseKind.SERVER: "every store dumped as bytes, every relay log line, every "
                               "relayed byte (wire capture)",
        CompromiseKind.NETWORK: "every byte between clients and relay (HTTP and WebSocket "
                                "payloads, with capture times)",
        CompromiseKind.INSIDER: "operational log lines and the operator surfaces (audit "
                                "export, delivery proofs)",
        CompromiseKind.SUBPOENA: "what the operator can export: SIEM/audit NDJSON and delivery "
                                 "proofs" + (f" of {step.org}" if step.org else ""),
        CompromiseKind.DATABASE: "every store dumped as bytes (the database tier only)",
        CompromiseKind.DEVICE: f"the full key and session state of {step.device}"
                               + (" plus every envelope on the wire" if step.with_wire else ""),
        CompromiseKind.ALL_DEVICES: f"the state of every device of {step.user}"
                                    + (" plus every envelope on the wire"
                                       if step.with_wire else ""),
    }[step.compromise]


def _state_address(state: bytes) -> str:
    """The ``user:device`` a harvested persisted state belongs to."""
    device = Device.parse(state)
    return f"{device.user_id}:{device.device_id}"


async def run_scenario_async(scenario: Scenario, *, provider: str = ProviderKind.EMBEDDED,
                             seed: int | None = None,
                             on_step: Callable[[Step], None] | None = None,
                             leak: str = "off", relay: ExternalRelay | None = None,
                             relay_orgs: tuple[str, ...] | None = None) -> ScenarioResult:
    chosen = scenario.seed if seed is None else seed
    if relay is not None:
        return await _on_external_relay(scenario, chosen, on_step, leak, relay, relay_orgs)
    known = provider in set(ProviderKind)
    if known and scenario.providers and provider not in scenario.providers:
        result = ScenarioResult.for_scenario(scenario, provider=provider, seed=chosen)
        result.skipped = (f"the scenario runs on {', '.join(scenario.providers)}, "
                          f"not on {provider}")
        return result
    if known and (unmet := scenario.unmet_requirement(provider)) is not None:
        result = ScenarioResult.for_scenario(scenario, provider=provider, seed=chosen)
        result.skipped = str(unmet)  # names requires.shape; never run on a smaller shape
        return result
    try:
        execution = Execution(scenario, provider, chosen, on_step, leak)
    except ExecutorError as exc:
        result = ScenarioResult.for_scenario(scenario, provider=provider, seed=chosen)
        result.error = str(exc)
        return result
    return await execution.run()


async def _on_external_relay(scenario: Scenario, seed: int,
                             on_step: Callable[[Step], None] | None, leak: str,
                             relay: ExternalRelay,
                             relay_orgs: tuple[str, ...] | None) -> ScenarioResult:
    """The scenario against an external relay (simulator.external): ``unsupported`` naming
    each step that needs the relay's process, else run with its cast renamed for the relay
    (``relay_orgs``: the organisations the run allotted it; default ORG, ORG-2…)."""
    why_not = relay.unsupported(scenario, leak)
    if why_not:
        result = ScenarioResult.for_scenario(scenario, provider=RELAY_BY_URL, seed=seed)
        result.unsupported = "; ".join(why_not)
        result.relay = relay.shown_url
        return result
    orgs = relay_orgs or tuple(relay_org_name(relay.org, k)
                               for k in range(1, len(scenario.organisations) + 1))
    renamed = on_relay(scenario, orgs)
    return await Execution(renamed, RELAY_BY_URL, seed, on_step, relay=relay).run()


def run_scenario(scenario: Scenario, *, provider: str = ProviderKind.EMBEDDED,
                 seed: int | None = None,
                 on_step: Callable[[Step], None] | None = None,
                 leak: str = "off", relay: ExternalRelay | None = None,
                 relay_orgs: tuple[str, ...] | None = None) -> ScenarioResult:
    """Run one scenario to completion (its own event loop) and return its result.

    ``leak`` is test-only: ``"log"`` or ``"store"`` runs a deliberately leaking relay
    (``Settings.leak``) so a reviewer can see the oracle catch it. ``relay`` runs it against
    an external relay by URL instead of the in-process one (simulator.external).
    """
    return asyncio.run(run_scenario_async(scenario, provider=provider, seed=seed,
                                          on_step=on_step, leak=leak, relay=relay,
                                          relay_orgs=relay_orgs))


async def run_with_implementations_async(
    scenario: Scenario, *, implementations: Mapping[str, Implementation],
    strategy: str | None, seed: int | None = None,
    on_step: Callable[[Step], None] | None = None) -> ScenarioResult:
    """The scenario on the embedded relay with its devices spread over implementations
    (issue 15 item 1): ``reference`` clients in this process and live devices of the
    adapters in ``implementations`` (``--impl``), as ``strategy`` (``--assign``) and the
    file's ``impl:`` pins say (simulator.assignment). An assignment error is the
    scenario's ``error``; steps an adapter cannot take make it ``unsupported``."""
    chosen = scenario.seed if seed is None else seed
    why_not = scenario.runs_on(ProviderKind.EMBEDDED)
    if why_not is not None:  # as the reference-only run skips it
        result = ScenarioResult.for_scenario(scenario, provider=ProviderKind.EMBEDDED, seed=chosen)
        result.skipped = why_not
        return result
    try:
        assignment = assign_scenario(scenario, strategy=strategy,
                                     names=list(implementations), seed=chosen)
        execution = Execution(scenario, ProviderKind.EMBEDDED, chosen, on_step)
    except (AssignmentError, ExecutorError) as exc:
        result = ScenarioResult.for_scenario(scenario, provider=ProviderKind.EMBEDDED, seed=chosen)
        result.error = str(exc)
        return result
    execution.assignment = assignment
    execution.implementations = dict(implementations)
    return await execution.run()


def run_with_implementations(
    scenario: Scenario, *, implementations: Mapping[str, Implementation],
    strategy: str | None, seed: int | None = None,
    on_step: Callable[[Step], None] | None = None) -> ScenarioResult:
    """:func:`run_with_implementations_async` on its own event loop."""
    return asyncio.run(run_with_implementations_async(
        scenario, implementations=implementations, strategy=strategy, seed=seed,
        on_step=on_step))


def _records(document: bytes) -> list[tuple[str, bytes]]:
    """The records of a JSON export (every element of its first list), each as its own
    bytes; a document that is not such a list is one record."""
    try:
        doc = json.loads(document)
    except ValueError:
        return [("document", document)]
    items: Any = doc
    if isinstance(doc, dict):
        items = next((v for v in doc.values() if isinstance(v, list)), None)
    if not isinstance(items, list):
        return [("document", document)]
    return [(f"#{i}", json.dumps(item, sort_keys=True).encode()) for i, item in enumerate(items)]


def _error_names(exc: BaseException) -> set[str]:
    """Every name a step's ``expect: {error: …}`` may use for ``exc``: its class (and base
    classes up to the client/protocol roots), the relay's error code, a SPEC §5 name."""
    names = {cls.__name__ for cls in type(exc).__mro__
             if cls not in (BaseException, Exception, object)}
    for attr in ("code", "name"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value:
            names.add(value)
    return names


def _actor(step: Step) -> str:
    """The device a step acts as, for failure reports."""
    for attr in ("sender", "device"):
        ref = getattr(step, attr, None)
        if isinstance(ref, DeviceAddress):
            return str(ref)
    refs = getattr(step, "devices", ())
    return ", ".join(str(r) for r in refs) if refs else ""


def _smx1(body: bytes) -> tuple[str, str | None] | None:
    """The (SPK, OPK) key ids an SMX1 envelope names (OPK None: an OPK-less bootstrap);
    None if it does not parse."""
    try:
        parsed = smx1.parse(body)
    except ProtocolError:
        return None
    return parsed.spk_key_id, parsed.opk_key_id


@dataclass
class _BackendFault:
    """A backend fault (Redis, MongoDB, SeaweedFS process or container) and what it
    changed, in the shape of the network and replica records."""

    description: str
    acted: Counter[str]
    at: float = 0.0  # time.monotonic() as the fault began (the failover window starts here)

    @property
    def fired(self) -> bool:
        return any(n > 0 for n in self.acted.values())

    def describe(self) -> str:
        return self.description


class _EventCounter(logging.Handler):
    """Counts the relay's structured events by name (DEBUG included), for ``mechanism``
    assertions; it keeps no line, so nothing it sees enters an adversary view."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[str(record.msg)] += 1
