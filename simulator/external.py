"""Scenarios against a relay someone else operates, by URL (issue #15 item 0).

``semafore sim run PATHS --relay URL --org ORG`` runs the catalogue against a relay reached
only through its public API (HTTP + WebSocket), the way ``semafore gate live --relay URL``
does (:mod:`semafore.gate.live`): every device still sits behind its own harness proxy
(:mod:`simulator.network`), so network faults and the wire capture work unchanged; what
changes is what the harness can *see* and *do* on the relay side.

**Names.** An external relay outlives the run and its user ids are global, so a scenario's
cast is renamed before it runs (:func:`on_relay`): the k-th organisation the run signs up is
``ORG`` (k = 1) or ``ORG-k``, and user ``alice`` of scenario org ``acme`` becomes
``<relay org of acme>.alice``. Members log in with the test OTP, which the relay accepts only
in test mode for allow-listed organisations (ADR-0164): the operator starts it with
``--test-mode --test-org ORG --test-org ORG-2 …`` (:func:`run_orgs` lists them).

**Views.** Relay-side adversary views (seed §1.1, docs/simulator.md "Adversary views") read
only what the operator grants, with the live gate's options and code
(:class:`semafore.gate.live.RelayAccess`; stores and logs read by the gate's dumpers): the
wire (the harness capture) and the operator exports (public admin API) are always there;
stores and logs only when given. An assertion over a view that lacks a source it needs is
``unsupported`` naming that source (:func:`qualify`), never a pass on nothing; a hit found in
what *was* read still fails the scenario.

**Process control.** Stopping, killing, pausing or restarting the relay, faulting its
backends, moving its clock (a ``wait`` beyond what is slept for real), replicas, and the
test-only leaky relay need the relay's process. Such a scenario is ``unsupported`` naming
the step (:meth:`ExternalRelay.unsupported`), unless the operator supplies a hook command
for the action (``--relay-hook stop=CMD``; :class:`RelayHooks`), which the executor runs,
bounded by a timeout, and records like any other fault (issue #11: faults prove they fired).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shlex
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from semafore.client import ManualClock
from semafore.deploy.dumps import Spool
from semafore.gate.live import (
    SOURCES,
    RelayAccess,
    SourceScan,
    external_sources,
    redact,
)
from semafore.protocol.address import AddressError, DeviceAddress
from simulator.relay_view import LogExtent
from simulator.report.model import Outcome
from simulator.scenario.model import (
    Assertion,
    AssertionKind,
    CompromiseKind,
    Infra,
    InfraAction,
    InfraTarget,
    Scenario,
    Wait,
)

RELAY_BY_URL = "relay"
"""The provider a report names for a run against an external relay by URL (``sim run
--relay``): not a :class:`~semafore.deploy.settings.ProviderKind`, whose data tier the run
would own."""

REAL_WAIT_LIMIT_S = 1.0
"""The executor sleeps a ``wait`` for real up to this long (and moves the scenario clock by
all of it). The in-process relay shares that clock; an external relay keeps its own, so a
longer wait would need to move the relay's time: unsupported there."""

VIEW_SOURCES: Mapping[CompromiseKind, tuple[str, ...]] = {
    CompromiseKind.SERVER: ("stores", "logs"),
    CompromiseKind.DATABASE: ("stores",),
    CompromiseKind.SUBPOENA: ("stores", "logs"),
    CompromiseKind.INSIDER: ("logs",),
    CompromiseKind.NETWORK: (),
}
"""The operator-granted sources (:data:`semafore.gate.live.SOURCES` besides the wire) each
relay-side adversary view reads (docs/simulator.md "Adversary views"). The wire capture and
the operator exports (audit NDJSON, delivery proofs over the public admin API) are the
harness's own and always present."""

RELAY_INTERNAL_STATS: Mapping[str, str] = {
    "send_retries_answered": "counts the in-process relay's DEBUG events "
                             "(message_retry_answered), which an external relay keeps to itself",
    "replica_starts": "counts starts of in-process relay replicas",
}
"""``mechanism`` stats (:data:`simulator.scenario.model.MECHANISM_STATS`) the executor reads
from the in-process relay rather than from clients or the harness network."""

HOOK_ALIASES = {"resume": InfraAction.UNPAUSE.value}
"""``resume`` names the same hook as the scenario action ``unpause`` (SIGCONT)."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # semafore.server.models.ID_PATTERN
_OUTPUT_KEPT = 2000  # characters of a hook's output kept in the report


class ExternalRelayError(ValueError):
    """An external-relay setting that cannot be used as given; ``field`` names the option."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def hook_names() -> tuple[str, ...]:
    """Every hook name: the relay's actions (``stop``, ``kill``, ``pause``…), backends'
    ``TARGET.ACTION`` (``redis.restart``), and the aliases."""
    server = tuple(a.value for a in InfraAction)
    backends = tuple(f"{t.value}.{a.value}" for t in InfraTarget if t is not InfraTarget.SERVER
                     for a in InfraAction)
    return server + backends + tuple(HOOK_ALIASES)


def hook_name(step: Infra) -> str:
    """The hook that performs ``step``: ``stop`` for the relay, ``redis.stop`` for Redis."""
    if step.target is InfraTarget.SERVER:
        return step.action.value
    return f"{step.target.value}.{step.action.value}"


@dataclass(frozen=True)
class RelayHooks:
    """Operator commands that act on the relay's process (``--relay-hook NAME=CMD``).

    A command is split like a shell would (:func:`shlex.split`) and run without a shell,
    with ``SEMAFORE_RELAY_URL``, ``SEMAFORE_HOOK`` and (for ``replica:`` steps)
    ``SEMAFORE_REPLICA`` in its environment. It must return once the action is done (a
    ``start`` hook once the relay answers). Exit status 0 is the fault having fired; anything
    else, or running past ``timeout_s``, is a fault that never fired (verdict ``error``)."""

    commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    timeout_s: float = 60.0

    @classmethod
    def parse(cls, specs: Iterable[str], timeout_s: float = 60.0) -> RelayHooks:
        known = hook_names()
        commands: dict[str, tuple[str, ...]] = {}
        for spec in specs:
            name, sep, command = spec.partition("=")
            name = name.strip()
            if not sep or not command.strip():
                raise ExternalRelayError("--relay-hook", f"{spec!r}: expected NAME=COMMAND")
            if name not in known:
                raise ExternalRelayError("--relay-hook", f"unknown hook {name!r}; known: "
                                         + ", ".join(known))
            name = HOOK_ALIASES.get(name, name)
            if name in commands:
                raise ExternalRelayError("--relay-hook", f"{name!r} given twice")
            try:
                commands[name] = tuple(shlex.split(command))
            except ValueError as exc:
                raise ExternalRelayError("--relay-hook", f"{name}: {exc}") from None
        if timeout_s <= 0:
            raise ExternalRelayError("--relay-hook-timeout", "must be positive")
        return cls(commands, timeout_s)

    def command_for(self, step: Infra) -> tuple[str, ...] | None:
        return self.commands.get(hook_name(step))


@dataclass(eq=False)
class HookRecord:
    """One hook run for an ``infra`` step, in the shape of the executor's fault records
    (``acted``, ``fired``, ``describe()``): what ran, its exit status and output."""

    hook: str
    argv: tuple[str, ...]
    replica: int | None = None
    returncode: int | None = None
    timed_out: bool = False
    output: str = ""
    duration_s: float = 0.0
    acted: Counter[str] = field(default_factory=Counter)

    @property
    def fired(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        which = "" if self.replica is None else f" replica {self.replica}"
        status = (f"timed out after {self.duration_s:.1f} s" if self.timed_out
                  else f"exited {self.returncode} in {self.duration_s:.1f} s")
        return f"hook {self.hook}{which}: `{shlex.join(self.argv)}` {status}"


async def run_hook(hook: str, argv: tuple[str, ...], *, url: str, timeout_s: float,
                   replica: int | None = None) -> HookRecord:
    """Run one operator hook to completion or ``timeout_s`` (then kill it), keeping the tail
    of what it printed (stdout and stderr together)."""
    record = HookRecord(hook, argv, replica)
    env = dict(os.environ, SEMAFORE_RELAY_URL=url, SEMAFORE_HOOK=hook)
    if replica is not None:
        env["SEMAFORE_REPLICA"] = str(replica)
    started = time.perf_counter()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env)
    except OSError as exc:
        record.output = f"could not start: {exc}"
        record.returncode = 127
        return record
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        record.timed_out = True
        proc.kill()
        out, _ = await proc.communicate()
    record.duration_s = round(time.perf_counter() - started, 3)
    record.returncode = proc.returncode
    record.output = out.decode("utf-8", "replace")[-_OUTPUT_KEPT:]
    if record.fired:
        record.acted["hook_succeeded"] += 1
    return record


class WallClock(ManualClock):
    """The scenario clock against an external relay: the wall clock, which is the relay's.

    The relay checks TOTP codes, token lifetimes and retention against its own time, so the
    clients must use the same one. The executor's ``advance`` calls (its way of saying that
    time passes) cannot move it: time passes by itself, and waits are slept for real (longer
    ones are unsupported, :data:`REAL_WAIT_LIMIT_S`). Runs are therefore not byte-for-byte
    reproducible against an external relay (message timestamps differ), only verdicts are.
    """

    def __init__(self) -> None:
        super().__init__(time.time())

    def now(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        return time.time()

    def set(self, when: float) -> None:
        raise ExternalRelayError("clock", "an external relay's clock cannot be set")


@dataclass(frozen=True)
class ExternalRelay:
    """A run's external relay: its base URL, the test organisation name the run's orgs are
    derived from, what its operator grants (stores, logs: the live gate's
    :class:`~semafore.gate.live.RelayAccess`), which sources must be scanned, and hooks."""

    url: str
    org: str
    access: RelayAccess = field(default_factory=RelayAccess)
    require: tuple[str, ...] = ()
    hooks: RelayHooks = field(default_factory=RelayHooks)
    otp_sink: Path | None = None
    """The relay's OTP sink directory (``semafore serve --otp-sink DIR``), for scenarios whose
    users log in with real one-time codes (``infrastructure.relay.test_orgs``, account-plane
    attacks: simulator.attacks reads it)."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ExternalRelayError("--relay", f"{redact(self.url)!r} is not an http(s) URL")
        object.__setattr__(self, "url", self.url.rstrip("/"))
        if not _ID.match(self.org) or len(self.org) > 40:
            raise ExternalRelayError("--org", "1-40 letters, digits, '.', '_' or '-', starting "
                                     "with a letter or digit (room for -k and user names)")
        unknown = [s for s in self.require if s not in SOURCES]
        if unknown:
            raise ExternalRelayError("--require-source", f"unknown source(s) {unknown}; "
                                     f"known: {', '.join(SOURCES)}")

    @property
    def shown_url(self) -> str:
        return redact(self.url)

    def granted(self) -> dict[str, str]:
        """Source -> why it will not be read, for every source the operator did not grant."""
        out: dict[str, str] = {}
        if not self.access.stores_given:
            out["stores"] = ("not given (--relay-mongo, --relay-redis, --relay-seaweed, "
                             "--relay-store-file or SEMAFORE_PROVIDER=external URLs)")
        if not self.access.logs:
            out["logs"] = "not given (--relay-log)"
        return out

    def unsupported(self, scenario: Scenario, leak: str = "off") -> list[str]:
        """Why ``scenario`` cannot run against this relay as written: one reason per step
        that needs the relay's process (and has no hook), empty when it can run."""
        why: list[str] = []
        if leak != "off":
            why.append(f"the test-only leaky relay (--leaky-relay {leak}) is the in-process "
                       "relay; an external relay cannot be made to leak")
        if scenario.infrastructure.server_replicas > 1:
            why.append(f"infrastructure: {scenario.infrastructure.server_replicas} server "
                       "replicas with device placement run in this process; an external relay "
                       "is one URL")
        if scenario.requires.shape is not None:
            why.append(f"requires.shape: {scenario.requires.shape.value} is a shape of the "
                       "backends the harness starts; an external relay's backends are its "
                       "operator's, which the run can neither start nor check")
        for step in scenario.all_steps():
            if isinstance(step, Infra) and self.hooks.command_for(step) is None:
                why.append(f"infra {step.action.value} {step.target.value} (line {step.line}) "
                           f"needs control of the relay's process: give --relay-hook "
                           f"{hook_name(step)}=COMMAND")
            elif isinstance(step, Wait) and step.ms > REAL_WAIT_LIMIT_S * 1000:
                why.append(f"wait {step.ms} ms (line {step.line}) moves the scenario clock, "
                           f"which an external relay does not share (waits up to "
                           f"{int(REAL_WAIT_LIMIT_S * 1000)} ms are slept for real)")
        return why

    def infrastructure(self, relay_orgs: Sequence[str]) -> ExternalInfrastructure:
        return ExternalInfrastructure(self, relay_orgs)


def serve_flags(scenario: Scenario) -> list[str]:
    """How ``semafore serve`` must run for ``scenario`` (already renamed, :func:`on_relay`)
    as its ``infrastructure`` says the in-process relay runs: test mode for its allow-listed
    organisations (ADR-0164), the rate-limit table, the request-head deadline, the log
    pseudonyms. What is the operator's own stays out: ``--otp-sink DIR``,
    ``--log-hash-key-file``, stores. A relay started otherwise runs a different deployment,
    and the scenario judges that one (an attack whose limit never engages is inconclusive)."""
    config = scenario.infrastructure.relay
    flags = ["--test-mode"]
    for org in sorted(config.test_orgs_for(tuple(o.id for o in scenario.organisations))):
        flags += ["--test-org", org]
    if config.rate_limits == "unlimited":
        flags.append("--test-no-rate-limits")
    if config.header_timeout_s is not None:
        flags += ["--header-timeout", f"{config.header_timeout_s:g}"]
    if scenario.infrastructure.log_hash != "sha256":
        flags += ["--log-hash", scenario.infrastructure.log_hash]
    return flags


def relay_org_name(base: str, k: int) -> str:
    """The k-th (1-based) organisation a run signs up: ``base``, ``base-2``, ``base-3``…"""
    return base if k == 1 else f"{base}-{k}"


def run_orgs(scenarios: Sequence[Scenario], base: str) -> list[str]:
    """Every organisation a run of ``scenarios`` (in run order) signs up, which the relay
    must allow-list (``--test-org``, ADR-0164). Unsupported scenarios use their names too,
    so the list depends on the files alone."""
    total = sum(len(s.organisations) for s in scenarios)
    return [relay_org_name(base, k) for k in range(1, total + 1)]


def on_relay(scenario: Scenario, relay_orgs: Sequence[str]) -> Scenario:
    """``scenario`` with its organisations named ``relay_orgs`` (in order) and each user
    ``alice`` of org ``acme`` named ``<relay org>.alice``, everywhere the timeline names them
    (device references, recipient lists, selectors, placements…).

    Renaming is by value: every string of the timeline and deployment equal to a user id
    (or ``user/device``) or an organisation id is renamed (a user id first, except in
    ``org`` fields), so a label or adversary name equal to one stays consistent with what
    refers to it."""
    if len(relay_orgs) != len(scenario.organisations):
        raise ExternalRelayError("--org", f"{scenario.name} has {len(scenario.organisations)} "
                                 f"organisation(s), {len(relay_orgs)} name(s) given")
    orgs = {o.id: name for o, name in zip(scenario.organisations, relay_orgs, strict=True)}
    users = {u.id: f"{orgs[u.org]}.{u.id}" for u in scenario.users}
    for relay_id in [*orgs.values(), *users.values(), *(f"operator-{o}" for o in orgs.values())]:
        if not _ID.match(relay_id):
            raise ExternalRelayError("--org", f"{relay_id!r} is not a valid relay id (at most "
                                     "64 letters, digits, '.', '_', '-'): use a shorter --org")
    rename = _Renamer(users, orgs)
    return dataclasses.replace(
        scenario,
        organisations=tuple(dataclasses.replace(o, id=orgs[o.id])
                            for o in scenario.organisations),
        users=rename.value(scenario.users, ""),
        steps=rename.value(scenario.steps, ""),
        infrastructure=rename.value(scenario.infrastructure, ""),
    )


@dataclass(frozen=True)
class _Renamer:
    users: Mapping[str, str]
    orgs: Mapping[str, str]

    def value(self, value: Any, name: str) -> Any:
        if isinstance(value, DeviceAddress):
            return DeviceAddress(self.users.get(value.user, value.user), value.device)
        if isinstance(value, str):
            if name == "org" and value in self.orgs:
                return self.orgs[value]
            if value in self.users:
                return self.users[value]
            if value in self.orgs:  # an allow-list (infrastructure.relay.test_orgs)…
                return self.orgs[value]
            try:  # a selector's device (simulator.scenario.model.MessageSelector)
                address = DeviceAddress.parse(value)
            except AddressError:
                return value
            return str(DeviceAddress(self.users.get(address.user, address.user), address.device))
        if isinstance(value, tuple):
            return tuple(self.value(item, name) for item in value)
        if isinstance(value, (Enum, Path, int, float, bool)) or value is None:
            return value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {f.name: self.value(getattr(value, f.name), f.name)
                       for f in dataclasses.fields(value) if f.init}
            return dataclasses.replace(value, **changes)
        raise TypeError(f"cannot rename inside a {type(value).__name__} ({name})")


class ExternalInfrastructure:
    """What the executor's ``Infrastructure`` is for an in-process relay, for an external
    one: no stores of its own, store dumps spooled to disk and log files as byte extents from
    what the operator grants (nothing held in memory in proportion to them), and faults
    through the operator's hooks. It keeps what every read scanned and why a source
    was not read, for the report."""

    name = "external relay"

    def __init__(self, relay: ExternalRelay, relay_orgs: Sequence[str]) -> None:
        self.relay = relay
        self.orgs = tuple(relay_orgs)
        self.handles: Any = None
        self.stores: Any = None
        self.scanned: dict[str, str] = {"wire": "the harness proxy's capture of every "
                                        "device's HTTP and WebSocket bytes"}
        self.not_scanned: dict[str, str] = {
            source: relay.granted().get(source, "granted, but no adversary view of this "
                                                "scenario reads it")
            for source in SOURCES if source != "wire"}
        self.errors: dict[str, str] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _read(self, source: str) -> SourceScan:
        """Read one granted source (``stores`` or ``logs``) now, with the live gate's readers
        (which also check that what they read mentions this run's organisation), and record
        what was read or why not."""
        access = self.relay.access
        if source == "stores":
            access = dataclasses.replace(access, logs=())
        else:
            access = dataclasses.replace(access, mongodb_url=None, redis_url=None,
                                         seaweedfs_filer_url=None, files=())
        org = self.orgs[0] if self.orgs else self.relay.org
        scan = next(s for s in await external_sources(access, org) if s.name == source)
        if scan.parts:
            self.scanned[source] = "; ".join(f"{k}: {v}" for k, v in scan.parts.items())
            self.not_scanned.pop(source, None)
        if scan.errors:
            self.errors[source] = "; ".join(scan.errors)
        return scan

    async def spool(self) -> list[tuple[str, Spool]]:
        """The granted stores' bytes, dumped now to disk (nothing when none was granted):
        the gate's dumpers (the ``iter_*`` dumps of :mod:`semafore.deploy.dumps`) fill a
        :class:`~semafore.deploy.dumps.Spool` per store one item at a time, stored files
        copied, as :meth:`DataTier.spool <semafore.deploy.data_tier.DataTier.spool>` does
        for a relay the run owns (issue #12 item 3, docs/oracle.md "Streaming"). The caller
        (the adversary view) closes the spools."""
        if not self.relay.access.stores_given:
            return []
        return (await self._read("stores")).spools

    async def log_extents(self) -> list[LogExtent]:
        """The granted log files as they stand now, each a byte extent (its size now) read
        back line by line whenever the view is examined, never held: an operator's log can
        be gigabytes. A log only grows, so the extent is what the file held when the view
        was taken; one rotated away or truncated since reads shorter (a whole-file gzip/bz2/
        xz log is read whole: :class:`~simulator.relay_view.LogExtent`)."""
        if not self.relay.access.logs:
            return []
        scan = await self._read("logs")
        extents = []
        for _, path in scan.streams:
            try:
                extents.append(LogExtent(path, path.stat().st_size, name=str(path)))
            except OSError as exc:  # removed since the gate listed and read it
                self.errors["logs"] = "; ".join(
                    filter(None, [self.errors.get("logs"), f"log {path}: {exc}"]))
        return extents

    def missing_for(self, kind: CompromiseKind) -> dict[str, str]:
        """Sources the ``kind`` view needs that were not read, and why (not granted, or
        granted but unreadable)."""
        out = {}
        granted = self.relay.granted()
        for source in VIEW_SOURCES.get(kind, ()):
            if source in granted:
                out[source] = granted[source]
            elif source in self.errors:
                out[source] = f"could not be read: {self.errors[source]}"
        return out

    async def fault(self, step: Infra) -> HookRecord:
        """Run the operator's hook for ``step`` (the executor refused the scenario before it
        ran if there is none)."""
        argv = self.relay.hooks.command_for(step)
        if argv is None:
            raise ExternalRelayError("--relay-hook", f"no hook for {hook_name(step)}")
        return await run_hook(hook_name(step), argv, url=self.relay.url,
                              timeout_s=self.relay.hooks.timeout_s, replica=step.replica)


def qualify(step: Assertion, outcome: Outcome, summary: str,
            missing: Mapping[str, Mapping[str, str]],
            required: Sequence[str]) -> tuple[Outcome, str]:
    """An adversary or oracle assertion's outcome, given the sources the views it reads
    lacked (``missing``: view name -> source -> why).

    A guarantee that held (or had nothing to look at) over a partial view, or a documented
    exposure that was not demonstrated in one, proves nothing about the part not read:
    ``unsupported`` naming it (``error`` if the operator required that source with
    ``--require-source``). A violation found in what was read, an exposure demonstrated
    there, or an assertion that could not be evaluated at all, stands."""
    gaps = sorted({f"{view}: {source} {why}" for view, sources in missing.items()
                   for source, why in sources.items()})
    if not gaps:
        return outcome, summary
    exposure = step.assertion in (AssertionKind.EXPOSED, AssertionKind.METADATA_EXPOSED)
    found = Outcome.EXPOSED if exposure else Outcome.VIOLATED
    if outcome in (found, Outcome.ERROR):
        return outcome, f"{summary} (in what was read; not read: {'; '.join(gaps)})"
    needed = sorted({s for sources in missing.values() for s in sources if s in required})
    if needed:
        return Outcome.ERROR, (f"required source(s) {', '.join(needed)} (--require-source) "
                               f"not read: {'; '.join(gaps)}")
    return Outcome.UNSUPPORTED, (f"the view lacks what the operator did not grant: "
                                 f"{'; '.join(gaps)} (what was read: {summary})")


__all__ = [
    "HOOK_ALIASES", "REAL_WAIT_LIMIT_S", "RELAY_INTERNAL_STATS", "VIEW_SOURCES",
    "ExternalInfrastructure", "ExternalRelay", "ExternalRelayError", "HookRecord", "RelayHooks",
    "WallClock", "hook_name", "hook_names", "on_relay", "qualify", "relay_org_name", "run_hook",
    "serve_flags",
    "run_orgs",
]
