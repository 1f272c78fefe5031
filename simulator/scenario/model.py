"""Typed model of a scenario file (format ``version: 1``, docs/scenarios.md).

A scenario is a cast (organisations, users and their devices) and a timeline of steps run in
order. Steps act (send, faults, compromises…) or assert. Every step keeps the file line it came
from, so a report can point a reviewer at the YAML that produced a result.

Names used throughout:

- a device is a :class:`~semafore.protocol.address.DeviceAddress` (written ``user:device``
  in reports; a scenario file names it ``user/device``, read by the loader);
- a **message label** names the messages of one ``send``/``broadcast``/``attach`` step; a step
  with ``count: n`` and label ``L`` produces messages ``L.1`` … ``L.n`` and ``L`` selects them
  all (:meth:`MessageSelector.matches`);
- an **adversary** is named by the ``as:`` of a ``compromise`` step; assertions refer to it.

This module is pure data: no I/O. :mod:`simulator.scenario.loader` builds it from YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import ClassVar, Literal

from semafore.deploy.settings import CLUSTER_PROVIDERS, ProviderKind, RedisTopology, Shape
from semafore.protocol.address import DeviceAddress
from semafore.storage.redis import ReplicaWait

FORMAT_VERSION = 1


# --- cast ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Organisation:
    id: str
    name: str = ""


@dataclass(frozen=True, kw_only=True)
class User:
    id: str
    org: str
    devices: tuple[str, ...]
    # device -> implementation pinned in the file (``impl:``, issue 15 item 1; simulator.
    # assignment): wins over ``--assign``
    impl: tuple[tuple[str, str], ...] = ()

    def addresses(self) -> tuple[DeviceAddress, ...]:
        return tuple(DeviceAddress(self.id, d) for d in self.devices)


# --- selectors -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MessageSelector:
    """Which messages an assertion is about.

    ``all`` selects every message of the scenario; otherwise a message matches when its label
    (or its group label, ``L`` for ``L.3``) is in ``labels`` (if given) and it was sent from /
    to the given users or devices (if given). ``before``/``after`` name a compromise step
    (by its ``as:``) and keep messages sent strictly before / after that moment.
    """

    all: bool = False
    labels: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()  # user ids or device addresses ("user:device")
    recipients: tuple[str, ...] = ()
    before: str | None = None
    after: str | None = None

    def matches_label(self, label: str) -> bool:
        if self.all or not self.labels:
            return True
        group = label.rsplit(".", 1)[0] if "." in label else label
        return label in self.labels or group in self.labels


ALL_MESSAGES = MessageSelector(all=True)


# --- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StepExpectation:
    """``expect: {error: NAME}`` on an acting step: the step is *meant* to fail with NAME.

    Every step counts (issue #11): a step that fails without declaring it fails the scenario,
    naming step, device and error; a step that declares an expected error and then succeeds
    fails it too. NAME matches the relay's error code (``message_id_reused``), a SPEC §5 error
    name (``DuplicateMessage``) or the client's exception class (``TransportError``)."""

    error: str


@dataclass(frozen=True, kw_only=True)
class Step:
    """Base of every step: its position in the timeline and in the file."""

    KINDS: ClassVar[tuple[str, ...]] = ()
    """The step kind(s) this model is built for (simulator.steps registers each)."""

    index: int
    line: int
    expect: StepExpectation | None = None

    @property
    def kind(self) -> str:
        return self.KINDS[0]


# Messaging


@dataclass(frozen=True, kw_only=True)
class Send(Step):
    """``sender`` encrypts to every device of each recipient user and to its own other devices
    (sync copies): one envelope per device (seed §4.1)."""

    KINDS = ("send",)

    sender: DeviceAddress
    to: tuple[str, ...]  # user ids
    label: str
    count: int = 1
    size: int = 64  # plaintext bytes, canary included
    text: str | None = None
    withhold: bool = False
    """Encrypt (advancing the sender's chains) but never hand the envelopes to the transport:
    a client that crashed after encrypting, or a relay that purged them. This is how a
    scenario creates a gap in a receiving chain (e.g. more than MAX_SKIP, SPEC §3) without
    relying on the transport's retry policy."""


@dataclass(frozen=True, kw_only=True)
class Broadcast(Step):
    """An organisation broadcast: one sender, every listed user (or the whole organisation)."""

    KINDS = ("broadcast",)

    sender: DeviceAddress
    to: tuple[str, ...]  # user ids; empty = every user of the sender's organisation
    label: str
    count: int = 1
    size: int = 64
    text: str | None = None


@dataclass(frozen=True, kw_only=True)
class Attach(Step):
    """An attachment encrypted client-side, uploaded to the object store, its key sent E2E."""

    KINDS = ("attach",)

    sender: DeviceAddress
    to: tuple[str, ...]
    label: str
    size: int = 4096


@dataclass(frozen=True, kw_only=True)
class ReadReceipt(Step):
    KINDS = ("read_receipt",)

    device: DeviceAddress
    message: str  # message label (group label = every message of the group)


@dataclass(frozen=True, kw_only=True)
class Screenshot(Step):
    """``device`` takes a screenshot of the conversation showing ``message`` (label) and
    reports it (ADR-0159: only the image's SHA-256 and the message ids leave the device; the
    image itself shows the plaintext, so it must never reach the relay)."""

    KINDS = ("screenshot",)

    device: DeviceAddress
    message: str


@dataclass(frozen=True, kw_only=True)
class Sync(Step):
    """Let every online device (or the listed ones) fetch and process until quiescent."""

    KINDS = ("sync",)

    devices: tuple[DeviceAddress, ...] = ()  # empty = every online device
    timeout_ms: int = 30_000


@dataclass(frozen=True, kw_only=True)
class Wait(Step):
    """Advance the scenario clock."""

    KINDS = ("wait",)

    ms: int


@dataclass(frozen=True, kw_only=True)
class SetOnline(Step):
    KINDS = ("device_online", "device_offline")

    device: DeviceAddress
    online: bool

    @property
    def kind(self) -> str:
        return "device_online" if self.online else "device_offline"


@dataclass(frozen=True, kw_only=True)
class Concurrently(Step):
    """Run the nested steps at the same time (e.g. simultaneous session initiation)."""

    KINDS = ("concurrently",)

    steps: tuple[Step, ...]


# Faults


class NetworkFault(Enum):
    DROP = "drop"
    DELAY = "delay"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    CUT = "cut"
    HEAL = "heal"  # removes every fault on the scope


Direction = Literal["up", "down", "both"]
Channel = Literal["ws", "http", "both"]


@dataclass(frozen=True, kw_only=True)
class Network(Step):
    """A fault on the path between clients and relay, drawn from the scenario seed.

    ``scope`` is ``None`` for every device, else one device. ``probability`` applies per
    unit (a WebSocket envelope frame, an HTTP request or response); ``count`` limits the fault
    to the next N units on the scope (then it lapses). ``window`` (reorder) is how many units
    are held and shuffled together. ``channel`` picks the WebSocket, HTTP or both; ``direction``
    ``up`` is what devices send (frames, requests), ``down`` what they get (frames, responses).
    ``match`` (HTTP only, ``"METHOD /path-prefix"``, ``*`` for any method) narrows the fault to
    those requests and their responses (docs/simulator.md "Network faults").
    """

    KINDS = ("network",)

    fault: NetworkFault
    scope: DeviceAddress | None = None
    direction: Direction = "both"
    probability: float = 1.0
    count: int | None = None
    delay_ms: int = 0
    jitter_ms: int = 0
    window: int = 2
    channel: Channel = "both"
    match: str | None = None


class InfraAction(Enum):
    STOP = "stop"
    START = "start"
    KILL = "kill"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    RESTART = "restart"
    CUT = "cut"
    """Partition a link (target ``redis-replication-link`` only)."""
    HEAL = "heal"
    """End the partition :attr:`CUT` made."""


class InfraTarget(Enum):
    SERVER = "server"
    REDIS = "redis"
    MONGODB = "mongodb"
    SEAWEEDFS = "seaweedfs"
    REDIS_PRIMARY = "redis-primary"
    """The Redis server the Sentinels name primary when the step runs (after a failover, the
    promoted replica): only in a scenario that ``requires: {shape: cluster}``
    (docs/backends.md "Cluster shape"), and only ``kill`` or ``stop``."""
    REDIS_CLUSTER_PRIMARY = "redis-cluster-primary"
    """The Redis Cluster node serving the hash slot of ``user``'s queues when the step runs
    (after a failover, the promoted replica): only in a scenario that ``requires: {shape:
    cluster, redis: cluster}``, and only ``kill`` or ``stop``."""
    SEAWEEDFS_VOLUME = "seaweedfs-volume"
    """One volume server of the cluster shape's SeaweedFS: ``volume: N`` (0-based) or
    ``holding: LABEL``, the first live server holding a copy of that attachment's blob when the
    step first runs (later steps naming the same label act on the same server). Only in a
    scenario that ``requires: {shape: cluster}``."""
    REDIS_REPLICATION_LINK = "redis-replication-link"
    """The Sentinel-watched replica's replication connection to the primary, and nothing
    else (semafore.deploy.replication_link): ``cut`` and ``heal`` only
    (:data:`LINK_ACTIONS`), only in a scenario that ``requires: {shape: cluster}``."""


PRIMARY_ACTIONS = (InfraAction.KILL, InfraAction.STOP)
"""What an ``infra`` step may do to ``redis-primary``: take it away. Starting, restarting,
pausing or resuming "the current primary" would resolve, after the failover the scenario is
about, to another server than the one taken away."""

LINK_ACTIONS = (InfraAction.CUT, InfraAction.HEAL)
"""What an ``infra`` step may do to a link, and the only actions that apply to one."""

PRIMARY_TARGETS = (InfraTarget.REDIS_PRIMARY, InfraTarget.REDIS_CLUSTER_PRIMARY)
"""The targets that are "the primary now", resolved when the step runs: a ``failover``
assertion measures the sends around the first fault of one of them."""


@dataclass(frozen=True, kw_only=True)
class Infra(Step):
    """Stop/kill/pause/restart a backend or a server replica. ``replica`` (target ``server``)
    picks one relay replica by index; without it the fault hits every replica (the whole
    application tier). ``during`` (optional) names a message label: the fault is applied while
    that send is in flight, halfway through a ``count: n`` burst (restart mid-delivery)."""

    KINDS = ("infra",)

    action: InfraAction
    target: InfraTarget
    replica: int | None = None
    during: str | None = None
    user: str | None = None  # target redis-cluster-primary: whose queues' hash slot
    volume: int | None = None  # target seaweedfs-volume: the volume server's index
    holding: str | None = None  # target seaweedfs-volume: the attachment whose holder it is


# Device lifecycle and prekeys


@dataclass(frozen=True, kw_only=True)
class Reinstall(Step):
    """The app is reinstalled: same address, brand-new identity and prekeys, no sessions."""

    KINDS = ("reinstall",)

    device: DeviceAddress


@dataclass(frozen=True, kw_only=True)
class AddDevice(Step):
    KINDS = ("add_device",)

    device: DeviceAddress


@dataclass(frozen=True, kw_only=True)
class RemoveDevice(Step):
    KINDS = ("remove_device",)

    device: DeviceAddress


@dataclass(frozen=True, kw_only=True)
class Snapshot(Step):
    """Back up the device's whole state (keys and sessions, what an app backup holds) under
    ``name`` (issue 15 item 4). The device's random source is not part of it."""

    KINDS = ("snapshot",)

    device: DeviceAddress
    name: str


@dataclass(frozen=True, kw_only=True)
class Restore(Step):
    """Put snapshot ``name`` of ``device`` back: onto the device itself (a restore from an
    older backup, the field bug class "Bad MAC after restore"), or ``onto`` another device of
    the same user (a cloned device: the copy keeps the original's identity and sessions)."""

    KINDS = ("restore",)

    device: DeviceAddress
    name: str
    onto: DeviceAddress | None = None


@dataclass(frozen=True, kw_only=True)
class RotateSpk(Step):
    """Publish a new signed prekey. ``keep_previous`` keeps the old private SPK for in-flight
    SMX1 bootstraps (the recommended behaviour); ``False`` deletes it at once."""

    KINDS = ("rotate_spk",)

    device: DeviceAddress
    keep_previous: bool = True


@dataclass(frozen=True, kw_only=True)
class ExhaustOpks(Step):
    """Someone claims every one-time prekey of the device(s) so later bootstraps go OPK-less."""

    KINDS = ("exhaust_opks",)

    devices: tuple[DeviceAddress, ...]
    replenish: bool = False


@dataclass(frozen=True, kw_only=True)
class Replay(Step):
    """A network adversary re-injects captured envelopes of ``message`` (label) to ``to``
    (default: their original recipients). ``frames`` (the file's ``kind``) restricts to SMX1 or
    DR_V1 envelopes."""

    KINDS = ("replay",)

    message: str
    to: tuple[DeviceAddress, ...] = ()
    frames: Literal["any", "smx1", "drv1"] = "any"  # the file's ``kind:``
    times: int = 1


# Account-plane attacks (issue 13 item 6)


@dataclass(frozen=True, kw_only=True)
class Attack(Step):
    """An attacker acts through the relay's public API only (``simulator.attacks``, one
    function per ``attack`` name): as ``actor`` (a cast user: an insider) or as an outsider,
    against ``victim``, with bounded ``params``. ``name`` (the file's ``as:``) is what an
    ``attack_failed`` assertion names."""

    KINDS = ("attack",)

    attack: str
    name: str
    actor: str | None = None
    victim: str | None = None
    params: tuple[tuple[str, int | float | str], ...] = ()


# Compromises


class CompromiseKind(Enum):
    """Adversary classes of seed §1.1 (and §1.2 / §2.5 for the out-of-scope ones)."""

    SERVER = "server"  # every store, every log line, every relayed byte
    NETWORK = "network"  # captured wire bytes (and their timing, volume)
    INSIDER = "insider"  # operational logs + what the ops surfaces show
    SUBPOENA = "subpoena"  # what the operator can export
    DEVICE = "device"  # one device's full key and session state at this moment
    ALL_DEVICES = "all_devices"  # every device of one user (seed §1.2, out of scope)
    DATABASE = "database"  # the database tier only (seed §2.5, communication graph)


Window = Literal["whole_run", "until_here", "from_here"]


@dataclass(frozen=True, kw_only=True)
class Compromise(Step):
    """From this moment the adversary ``name`` holds its view.

    Passive observers (server, network, insider, subpoena, database) keep everything of the
    ``window`` (default the whole run: they are assumed to persist). Device compromises snapshot
    the state now; with ``with_wire`` (default) the adversary also holds every envelope the
    network carried during the whole run, which is what FS and PCS are measured against.
    """

    KINDS = ("compromise",)

    compromise: CompromiseKind
    name: str
    device: DeviceAddress | None = None  # DEVICE
    user: str | None = None  # ALL_DEVICES
    org: str | None = None  # SUBPOENA: the organisation named in the order (None = all)
    window: Window = "whole_run"
    with_wire: bool = True


# Assertions


class AssertionKind(Enum):
    DELIVERED_EXACTLY_ONCE = "delivered_exactly_once"
    NOT_DELIVERED = "not_delivered"
    DECRYPT_ERROR = "decrypt_error"
    SESSIONS_CONVERGE = "sessions_converge"
    ADVERSARY_DECRYPTS_NOTHING = "adversary_decrypts_nothing"
    COMPROMISE_SCOPE = "compromise_scope"
    FORWARD_SECRECY = "forward_secrecy"
    POST_COMPROMISE_SECURITY = "post_compromise_security"
    ORACLE_CLEAN = "oracle_clean"
    EXPOSED = "exposed"
    METADATA_EXPOSED = "metadata_exposed"
    METADATA_NOT_EXPOSED = "metadata_not_exposed"
    MECHANISM = "mechanism"
    ATTACK_FAILED = "attack_failed"
    LOG_PSEUDONYMS = "log_pseudonyms"
    NO_KEY_NONCE_REUSE = "no_key_nonce_reuse"
    RECOVERED_WITHIN = "recovered_within"
    FAILOVER = "failover"


EXPOSURE_KINDS = frozenset({AssertionKind.EXPOSED, AssertionKind.METADATA_EXPOSED})

MECHANISM_STATS: dict[str, str] = {
    "messages": "messages the scenario sent (every label of every send, broadcast, attach)",
    "envelopes": "envelopes the clients handed to the relay",
    "received": "messages decrypted and shown by a device",
    "duplicates_dropped": "frames or messages a client dropped as already seen (SPEC §3 "
                          "DuplicateMessage, message_id dedup)",
    "undecryptable": "frames a client could not decrypt",
    "skipped_keys_used": "frames opened with a stored skipped message key (SPEC §3: out of "
                         "order within or across chains)",
    "resets_sent": "session reset notices sent (SPEC §4)",
    "identity_changes_seen": "peer identity changes a client noticed (reinstall, seed §4.5)",
    "device_set_retries": "sends repaired after the relay's 409/410 device-set answer",
    "reconnects": "push-socket reconnects",
    "smx1_sent": "X3DH/SMX1 bootstrap envelopes on the wire",
    "smx1_without_opk": "SMX1 bootstraps that used no one-time prekey (OPK exhausted)",
    "smx1_previous_spk": "SMX1 bootstraps naming a signed prekey the recipient had rotated "
                         "away from (in flight across an SPK rotation)",
    "send_retries_answered": "sends the relay answered from its send ledger (a retry, "
                             "queued nothing)",
    "replays_injected": "captured envelopes a replay step re-injected on the wire",
    "frames_dropped": "WebSocket envelope frames dropped by a network fault",
    "frames_duplicated": "WebSocket envelope frames duplicated by a network fault",
    "frames_delayed": "WebSocket envelope frames delayed by a network fault",
    "frames_reordered": "WebSocket envelope frames released out of their arrival order",
    "http_requests_dropped": "HTTP requests dropped by a network fault",
    "http_responses_dropped": "HTTP responses dropped after the relay processed the request",
    "http_requests_duplicated": "HTTP requests replayed by a network fault",
    "http_delayed": "HTTP requests or responses delayed by a network fault",
    "http_reordered": "HTTP requests or responses released out of their arrival order",
    "replica_starts": "relay replica (re)starts",
}
"""Every stat a ``mechanism`` assertion can name: one list, read by the loader (validation),
the executor (which computes each of them) and docs/scenarios.md."""


class MetadataClass(Enum):
    """Seed §2.2 categories an adversary can be shown to see."""

    ROUTING_IDENTIFIERS = "routing_identifiers"
    COMMUNICATION_GRAPH = "communication_graph"
    TIMING = "timing"
    VOLUME = "volume"


@dataclass(frozen=True, kw_only=True)
class Assertion(Step):
    """A check evaluated at this point of the timeline (``oracle_clean`` and the adversary
    assertions look at the views as they stand at the end of the run).

    Per kind, the fields that matter (others keep their defaults):

    - ``delivered_exactly_once`` / ``not_delivered``: ``messages``, ``devices`` (empty =
      every intended recipient device of each message; else only the listed devices, and
      for ``delivered_exactly_once`` only those among them that were intended recipients of
      the message — a sender's own device is never a recipient of its own message);
    - ``decrypt_error``: ``devices`` (exactly one), ``error`` (SPEC §5 name), ``messages``;
    - ``sessions_converge``: ``devices`` (two or more, pairwise digests agree, SPEC §7);
    - ``adversary_decrypts_nothing`` / ``compromise_scope`` / ``forward_secrecy``:
      ``adversary``;
    - ``post_compromise_security``: ``adversary``, ``round_trips`` (after that many round trips
      between the compromised device and a peer, nothing new decrypts);
    - ``oracle_clean``: ``adversaries`` (empty = every view), ``identifiers`` (also check
      raw identifiers in log lines);
    - ``exposed``: ``adversary``, ``messages`` (they must all decrypt), ``documented``;
    - ``metadata_exposed``: ``adversary``, ``sees``, ``documented`` (the exposed items
      themselves are the evidence: pairs, times, counts);
    - ``metadata_not_exposed``: ``adversary``, ``sees`` (none of those classes is visible);
    - ``mechanism``: ``stat`` (one of :data:`MECHANISM_STATS`), ``at_least`` / ``at_most``:
      the mechanism a scenario is named after really happened (reorder: frames opened with
      skipped keys; lost response: a retry answered from the send ledger…);
    - ``failover``: ``acked_lost_at_most``, ``duplicated_at_most`` and optionally
      ``window_at_most_s`` over the sends around a ``redis-primary`` fault
      (:mod:`simulator.failover`: what the relay acknowledged and lost, what it handed a
      device twice, how long no send was acknowledged);
    - ``log_pseudonyms``: ``adversary`` (holds the relay's logs), exactly one of
      ``reversed_at_least`` (an exposure: the seed §2.3 pseudonyms are reversible, as
      measured) or ``reversed_at_most`` (a guarantee: e.g. under ``log_hash: keyed``), as a
      share of the logged identifier values a dictionary of guessable ids reverses;
      ``dictionary_size`` / ``dictionary_seed`` bound that dictionary
      (:mod:`simulator.pseudonyms`, issue 13 item 5).

    ``allow_empty`` (a reason) lets an assertion evaluated over zero items hold; without it
    such an assertion is ``inconclusive``, which fails the scenario: zero evidence is never a
    pass (issue #11).
    """

    KINDS = ("assert",)

    assertion: AssertionKind
    messages: MessageSelector = ALL_MESSAGES
    devices: tuple[DeviceAddress, ...] = ()
    error: str | None = None
    adversary: str | None = None
    adversaries: tuple[str, ...] = ()
    round_trips: int = 1
    identifiers: bool = True
    sees: tuple[MetadataClass, ...] = ()
    documented: str | None = None
    allow_empty: str | None = None
    stat: str | None = None
    at_least: int | None = None
    at_most: int | None = None
    attack: str | None = None  # attack_failed: the ``as:`` of an earlier attack step
    reversed_at_least: float | None = None
    reversed_at_most: float | None = None
    dictionary_size: int | None = None  # None: the whole guessable-id list
    dictionary_seed: int | None = None  # None: the scenario's seed
    exchanges: int | None = None  # recovered_within: messages the recovery may cost
    after: str | None = None  # recovered_within: the last message label before the disruption
    acked_lost_at_most: int = 0  # failover: acknowledged (message, device) pairs never shown
    duplicated_at_most: int = 0  # failover: pairs the relay handed over as two or more copies
    window_at_most_s: float | None = None  # failover: kill -> first ack of a later send

    @property
    def is_exposure(self) -> bool:
        return self.assertion in EXPOSURE_KINDS or (
            self.assertion is AssertionKind.LOG_PSEUDONYMS and self.reversed_at_least is not None)


# --- the scenario --------------------------------------------------------------------------


class Expectation(Enum):
    """What the scenario's author expects: every assertion holds (``pass``), or the scenario
    demonstrates a documented non-guarantee (``exposed``, seed §1.2 / §2.5)."""

    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    EXPOSED = "exposed"


@dataclass(frozen=True, kw_only=True)
class RelayConfig:
    """``infrastructure.relay``: how the in-process relay is configured (an external relay
    must be started the same way, docs/threats.md). ``rate_limits`` is ``unlimited`` (the
    simulation default: every simulated device shares 127.0.0.1) or ``default`` (the
    production table, which account-plane attacks need). ``test_orgs`` is the ADR-0164
    test-OTP allow-list (``None``: every organisation of the cast); users of a cast org not
    on it log in with codes from the relay's OTP sink. ``header_timeout_s`` overrides the
    relay's request-head deadline."""

    rate_limits: Literal["unlimited", "default"] = "unlimited"
    test_orgs: tuple[str, ...] | None = None
    header_timeout_s: float | None = None

    def test_orgs_for(self, cast: tuple[str, ...]) -> frozenset[str]:
        """The allow-list the relay runs with."""
        return frozenset(cast if self.test_orgs is None else self.test_orgs)


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """The relay deployment a scenario runs against (``infrastructure:``): how many server
    replicas share the stores (seed §3.4), and which replica a device connects to first
    (``placement``; devices not placed are assigned from the seed). A device whose replica is
    down fails over to the next one (docs/simulator.md "Server replicas")."""

    server_replicas: int = 1
    placement: tuple[tuple[DeviceAddress, int], ...] = ()
    relay: RelayConfig = field(default_factory=RelayConfig)
    log_hash: Literal["sha256", "keyed"] = "sha256"
    """How the relay writes identifiers into its logs (``Settings.log_hash``, docs/server.md
    "Log pseudonyms"): the seed's unkeyed SHA-256 prefix, or HMAC-SHA-256 under a secret
    the run draws and no adversary view holds."""

    def pins(self) -> dict[str, int]:
        """Device address -> replica index, as the fleet takes them."""
        return {str(address): index for address, index in self.placement}


@dataclass(frozen=True, kw_only=True)
class Requirements:
    """What a scenario needs of the data tier beyond a provider name (``requires:``; issue
    #16 item 5). ``shape``: the backends' shape (:class:`Shape`, docs/backends.md "Cluster
    shape"); ``None`` leaves it to ``SEMAFORE_SHAPE``. A scenario about a Redis failover needs
    ``cluster``: on a single Redis it would test nothing, so it is refused, never run.
    ``redis``: the cluster shape's Redis (:class:`RedisTopology`: Sentinel or Redis Cluster);
    ``None`` leaves it to ``SEMAFORE_REDIS_TOPOLOGY``. It is a layout of the cluster shape,
    so it needs ``shape: cluster``, and where that shape cannot run, neither can it.
    ``redis_wait``: the relay acknowledges a send only once this many Redis replicas hold it
    (Redis ``WAIT``; ``SEMAFORE_REDIS_WAIT``, docs/backends.md "Failover under delivery"):
    a scenario whose claim holds only under that configuration declares it, so its verdict is
    about the deployment it specifies; ``None`` leaves it to ``SEMAFORE_REDIS_WAIT``. Needs the
    cluster shape (a single Redis has no replica); on a Redis Cluster WAIT runs on the node of
    each slot a send writes."""

    shape: Shape | None = None
    redis: RedisTopology | None = None
    redis_wait: ReplicaWait | None = None


class UnmetRequirement(Exception):
    """The provider cannot give what the scenario's ``requires:`` asks; ``field`` is the key
    (``requires.shape``), so a report names what to change."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class FileNote:
    """Where a scenario file says something the loader still reads but no longer writes (the
    retired ``user/device`` spelling, issue #14 item 1); ``key`` is the path of the key."""

    line: int | None
    column: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = "" if self.line is None else f"{self.line}:{self.column}: "
        return f"{where}{self.key or '<document>'}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class Scenario:
    version: int
    name: str
    description: str
    cites: tuple[str, ...]
    expect: Expectation
    seed: int
    providers: tuple[ProviderKind, ...]
    timeout_s: int
    organisations: tuple[Organisation, ...]
    users: tuple[User, ...]
    steps: tuple[Step, ...]
    path: Path | None = None
    source_digest: str = ""  # SHA-256 of the file bytes: a report names exactly what ran
    tags: tuple[str, ...] = field(default=())
    infrastructure: Deployment = field(default=Deployment())
    requires: Requirements = field(default=Requirements())
    notes: tuple[FileNote, ...] = field(default=(), compare=False)
    """Deprecation notes on the file's notation (``sim validate`` prints them): not content."""

    def user(self, user_id: str) -> User:
        for user in self.users:
            if user.id == user_id:
                return user
        raise KeyError(user_id)

    def initial_devices(self) -> tuple[DeviceAddress, ...]:
        return tuple(ref for user in self.users for ref in user.addresses())

    def all_steps(self) -> tuple[Step, ...]:
        """Every step in timeline order, nested ``concurrently`` steps flattened."""
        out: list[Step] = []

        def walk(steps: tuple[Step, ...]) -> None:
            for step in steps:
                out.append(step)
                if isinstance(step, Concurrently):
                    walk(step.steps)

        walk(self.steps)
        return tuple(out)

    def assertions(self) -> tuple[Assertion, ...]:
        return tuple(s for s in self.all_steps() if isinstance(s, Assertion))

    def compromises(self) -> tuple[Compromise, ...]:
        return tuple(s for s in self.all_steps() if isinstance(s, Compromise))

    def runs_on(self, name: ProviderKind | str) -> str | None:
        """``None`` if the scenario can run on provider ``name``, else why not: it is not in
        the file's ``providers``, it ``requires`` a shape the provider cannot run
        (:meth:`unmet_requirement`), or it faults a backend process (Redis, MongoDB,
        SeaweedFS), which only providers that own those processes (local, containers) can do."""
        provider = ProviderKind(name)
        if provider not in self.providers:
            return (f"not applicable to provider {provider.value!r} "
                    f"(runs on {', '.join(self.providers)})")
        if (unmet := self.unmet_requirement(provider)) is not None:
            return str(unmet)
        backend = sorted({s.target.value for s in self.all_steps()
                          if isinstance(s, Infra) and s.target is not InfraTarget.SERVER})
        if backend and not provider.owns_backend_processes:
            owners = ", ".join(k for k in ProviderKind if k.owns_backend_processes)
            return (f"faults {', '.join(backend)}: needs a provider that owns backend "
                    f"processes ({owners}), not {provider.value!r}")
        return None

    def unmet_requirement(self, name: ProviderKind | str) -> UnmetRequirement | None:
        """Why provider ``name`` cannot give what ``requires:`` asks, or ``None``."""
        return shape_unmet(self.requires.shape, ProviderKind(name))


def shape_unmet(shape: Shape | None, provider: ProviderKind) -> UnmetRequirement | None:
    """Why ``provider`` cannot run a scenario that requires ``shape``, or ``None`` (the same
    rule as ``SEMAFORE_SHAPE``: :data:`CLUSTER_PROVIDERS`)."""
    if shape is Shape.CLUSTER and provider not in CLUSTER_PROVIDERS:
        runs = ", ".join(k.value for k in CLUSTER_PROVIDERS)
        return UnmetRequirement(
            "requires.shape", f"the cluster shape runs on {runs}, not on {provider.value!r}; "
            "this scenario is never run single-node instead")
    return None
