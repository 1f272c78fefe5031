"""pytest fixtures for platform teams: a relay, a fleet, a leak oracle, scenario verdicts.

Registered through the ``pytest11`` entry point ``semafore`` (issue #14 item 4, the way
Signal's mock server gives client teams fixtures and an expectation API); usage and a worked
example in docs/pytest-plugin.md.

Why this module lives in ``simulator`` and not in the library: ``semafore_fleet`` is the
simulator's :class:`~simulator.fleet.Fleet`, ``semafore_oracle`` dumps stores through the
executor's :class:`~simulator.executor.Infrastructure` and ``semafore_scenario`` runs the
executor (on a relay by URL through :mod:`simulator.external`), and the library must never
import ``simulator`` (issue #14 item 2). Splitting the
relay fixture into the library would have meant a second fleet and a second store dumper
there; one module here reuses the one of each. The device expectations themselves
(``wait_for_message`` & co) are library code (:mod:`semafore.client.expect`), usable
without pytest.

One place launches relays: the embedded relay is
:func:`semafore.deploy.inprocess.serve_in_task` with the harness's
:func:`~semafore.deploy.harness_relay.relay_settings`, on the stores the chosen provider gives
(:mod:`semafore.deploy.providers` through ``Infrastructure``); ``--semafore-relay URL``
launches nothing.

Async fixtures run on anyio's pytest plugin (anyio ships with the project's dependencies):
a coroutine test that uses a ``semafore_*`` fixture is marked ``anyio`` unless it
already carries ``anyio`` or pytest-asyncio's ``asyncio`` marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import io
import itertools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from semafore.client import DeviceClient, ManualClock
from semafore.deploy.errors import InfraError
from semafore.deploy.harness_relay import relay_settings
from semafore.deploy.inprocess import RunningRelay, serve_in_task
from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import unavailable
from semafore.gate.live import RelayAccess, external_sources
from semafore.oracle import (
    TIER_LOG,
    Chunk,
    Oracle,
    ScanReport,
    canary,
    from_log_file,
)
from semafore.protocol.address import DeviceAddress, address_argument
from semafore.server.oplog import LOGGER_NAME, THIRD_PARTY_LOGGERS, JsonFormatter
from simulator.executor import Infrastructure, run_scenario_async
from simulator.external import ExternalRelay, relay_org_name
from simulator.fleet import Fleet
from simulator.report.model import Outcome, ScenarioResult, Verdict, reason
from simulator.scenario.loader import ScenarioError, load

__all__ = [
    "DEFAULT_ORGS", "LeakOracle", "OracleInconclusive", "OracleLeak", "PlatformFleet",
    "PluginError", "RelayUnderTest", "ScenarioFailed", "ScenarioRunner",
]
"""What a platform team's typed tests import (fixture types and the errors they may see)."""

DEFAULT_ORGS = ("acme", "globex", "initech")
"""Organisations the embedded relay accepts the fixed test OTP for (ADR-0164), unless the
``semafore_test_orgs`` ini option names others; a relay given by URL must be started with
the same ``--test-mode --test-org`` list."""

FIXTURES = ("semafore_relay", "semafore_fleet", "semafore_oracle", "semafore_scenario")
"""The plugin's fixtures: a coroutine test using one is run by anyio."""

DEVICE = "phone"
"""The device a :meth:`PlatformFleet.users` user gets."""

SIGNED_UP = pytest.StashKey[set[str]]()
"""Organisations signed up on the ``--semafore-relay`` relay during this session: that relay
keeps its data, so an organisation (and the users in it) can be signed up only once."""


def signed_up_by_url(config: pytest.Config) -> set[str]:
    return config.stash.setdefault(SIGNED_UP, set())


class PluginError(Exception):
    """The plugin was asked for something it cannot do; ``field`` names the option."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class OracleLeak(AssertionError):
    """The relay holds a registered secret (a canary, a key) where it must not: in its logs
    or stores (SPEC §8). Raised at the teardown of a test that used ``semafore_oracle``."""

    def __init__(self, report: ScanReport, scanned: int) -> None:
        self.report = report
        lines = [f"  - {h.label} ({h.kind}) in {h.tier} at {h.location}, "
                 f"{h.matched or h.length}/{h.length} bytes via {h.encoding}"
                 for h in report.hits[:20]]
        more = f"\n  ... and {len(report.hits) - 20} more" if len(report.hits) > 20 else ""
        super().__init__(
            f"semafore_oracle: {len(report.hits)} leak(s) in {scanned} bytes of relay logs "
            f"and stores:\n" + "\n".join(lines) + more)


class OracleInconclusive(AssertionError):
    """The oracle had nothing to look for or nothing to look in: a clean result would
    prove nothing, so it fails like the scenario verdict's ``inconclusive`` (docs/oracle.md)."""


class ScenarioFailed(AssertionError):
    """A scenario's verdict does not let a gate pass; the message lists what failed."""

    def __init__(self, result: ScenarioResult) -> None:
        self.result = result
        lines = [f"scenario {result.scenario} ({result.path}): verdict "
                 f"{result.verdict.value}, expected {result.expect.value}: {reason(result)}"]
        if result.error:
            lines.append(f"  error: {result.error}")
        for failure in result.step_failures:
            lines.append(f"  step: {failure.describe()}")
        for item in result.assertions:
            if item.outcome in (Outcome.HELD, Outcome.EXPOSED):
                continue
            lines.append(f"  assertion {item.kind} (line {item.line}) {item.outcome.value}: "
                         f"{item.summary}")
            lines.extend(f"      {evidence}" for evidence in item.evidence[:10])
        for hit in result.oracle_hits[:10]:
            lines.append(f"  oracle: {hit.label} in {hit.tier} at {hit.location} "
                         f"({hit.encoding})")
        super().__init__("\n".join(lines))


# -- options ---------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("semafore", "SemaFore relay fixtures (docs/pytest-plugin.md)")
    group.addoption(
        "--semafore-provider", default=None,
        choices=[kind.value for kind in ProviderKind],
        help="where the embedded relay keeps its data: embedded (in-process stores, the "
             "default), local (redis/mongod/weed processes), containers, or external "
             "(SEMAFORE_*_URL); also the backends the oracle dumps",
    )
    group.addoption(
        "--semafore-relay", default=None, metavar="URL",
        help="test against the relay at URL (127.0.0.1, started with --test-mode and a "
             "--test-org per organisation the tests use) instead of an embedded one",
    )
    group.addoption(
        "--semafore-relay-log", default=None, metavar="PATH",
        help="the log file of the --semafore-relay relay, for semafore_oracle to scan",
    )
    parser.addini("semafore_provider", "default --semafore-provider",
                  default=ProviderKind.EMBEDDED.value)
    parser.addini("semafore_test_orgs", "organisations the test OTP works for",
                  type="args", default=list(DEFAULT_ORGS))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "semafore_relay(**settings): semafore.server.settings.Settings overrides for the "
        "embedded relay of this test (e.g. max_devices_per_user=2)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Coroutine tests that use a ``semafore_*`` fixture run on anyio (asyncio)."""
    for item in items:
        if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(item.obj):
            continue
        if item.get_closest_marker("anyio") or item.get_closest_marker("asyncio"):
            continue
        if any(name in item.fixturenames for name in FIXTURES):
            item.add_marker(pytest.mark.anyio)


@dataclass(frozen=True)
class Options:
    provider: ProviderKind
    relay_url: str | None
    relay_log: Path | None
    orgs: frozenset[str]

    @classmethod
    def of(cls, config: pytest.Config) -> Options:
        chosen = config.getoption("semafore_provider") or config.getini("semafore_provider")
        try:
            provider = ProviderKind(chosen)
        except ValueError:
            raise PluginError(f"semafore_provider must be one of "
                              f"{', '.join(k.value for k in ProviderKind)}, not {chosen!r}",
                              "semafore_provider") from None
        log = config.getoption("semafore_relay_log")
        url = config.getoption("semafore_relay")
        if log and not url:
            raise PluginError("--semafore-relay-log names the log of a --semafore-relay relay",
                              "--semafore-relay-log")
        if url and provider.owns_backend_processes:
            raise PluginError(
                f"--semafore-relay runs on its own backends: --semafore-provider "
                f"{provider.value} would start others the oracle would scan instead; use "
                "external (its SEMAFORE_*_URL) or embedded (none)", "--semafore-provider")
        return cls(provider, url.rstrip("/") if url else None, Path(log) if log else None,
                   frozenset(config.getini("semafore_test_orgs")))

    def access(self) -> RelayAccess | None:
        """What the oracle may read of a relay by URL: the backends of
        ``--semafore-provider external`` (``SEMAFORE_*_URL``, narrowed by
        ``SEMAFORE_NAMESPACE``) and the ``--semafore-relay-log`` file; None when neither."""
        stores = None
        if self.provider is ProviderKind.EXTERNAL:
            stores = RelayAccess.from_env({**os.environ,
                                           "SEMAFORE_PROVIDER": ProviderKind.EXTERNAL.value})
        logs = (self.relay_log,) if self.relay_log is not None else ()
        if stores is None:
            return RelayAccess(logs=logs) if logs else None
        return dataclasses.replace(stores, logs=logs)


# -- the relay -------------------------------------------------------------------------------


@dataclass
class RelayUnderTest:
    """The relay a test talks to: embedded (``server`` set, its log captured, its stores
    dumped through ``infrastructure``) or by URL (what its operator grants: ``access``)."""

    url: str
    provider: ProviderKind
    orgs: frozenset[str]
    clock: ManualClock
    server: RunningRelay | None = None
    infrastructure: Infrastructure | None = None
    log: io.StringIO = field(default_factory=io.StringIO)
    access: RelayAccess | None = None
    signed_up: set[str] = field(default_factory=set)
    """Organisations signed up on this relay so far (a relay by URL: this session's)."""
    unread: list[str] = field(default_factory=list)
    """Granted sources that could not be read at the last :meth:`holdings` (a relay by URL)."""

    @property
    def embedded(self) -> bool:
        return self.server is not None

    async def holdings(self) -> list[Chunk]:
        """What an operator of this relay holds: every log line and every stored byte
        (seed §1.1: the subpoena view), as the oracle's chunks. A relay by URL is read with
        the live gate's store readers (:class:`~semafore.gate.live.RelayAccess`) and its log
        file line by line; both must mention the first test organisation (else it is not
        this relay's data, and a clean scan of it proves nothing)."""
        chunks = [Chunk(TIER_LOG, f"relay.log:line {number}", line.encode())
                  for number, line in enumerate(self.log.getvalue().splitlines(), start=1)]
        if self.infrastructure is not None:
            chunks.extend(await self.infrastructure.dump())
        self.unread = []
        if self.access is None:
            return chunks
        org = sorted(self.orgs)[0]
        stores = dataclasses.replace(self.access, logs=())
        if stores.stores_given:
            for scan in await external_sources(stores, org):
                chunks.extend(scan.held_chunks())
                self.unread.extend(scan.errors)
        for path in self.access.logs:  # a test relay's log: read whole, line by line
            lines = list(from_log_file(str(path)))
            if not any(org.encode() in line.data for line in lines):
                self.unread.append(f"no line of {path} mentions the test organisation "
                                   f"{org!r}: not this relay's log, or logging above INFO?")
            chunks.extend(lines)
        return chunks


@contextlib.contextmanager
def captured_relay_log(stream: io.StringIO) -> Iterator[None]:
    """The relay's production log into ``stream`` while the block runs, as ``semafore
    serve`` writes it (:func:`semafore.server.oplog.configure_logging`: JSON lines,
    redacted, INFO, no uvicorn access lines); loggers are restored afterwards."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in (LOGGER_NAME, *THIRD_PARTY_LOGGERS)]
    levels = [logger.level for logger in loggers]
    access = logging.getLogger("uvicorn.access")
    access_disabled, access.disabled = access.disabled, True  # raw paths carry identifiers
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        access.disabled = access_disabled


@contextlib.asynccontextmanager
async def running_relay(options: Options, overrides: dict[str, Any], namespace: str,
                        signed_up: set[str]) -> AsyncIterator[RelayUnderTest]:
    """The relay for one test: the one at ``--semafore-relay``, or an embedded one on the
    provider's stores. A backend that cannot start skips the test (fails it in CI)."""
    if options.relay_url is not None:
        # that relay reads the wall clock: the admin's TOTP must be computed at its time
        clock = ManualClock(time.time())
        yield RelayUnderTest(options.relay_url, options.provider, options.orgs, clock,
                             access=options.access(), signed_up=signed_up)
        return
    clock = ManualClock()  # shared by the relay and the fleet: a test controls time
    infrastructure = await _started(options.provider, namespace)
    relay = RelayUnderTest("", options.provider, options.orgs, clock,
                           infrastructure=infrastructure)
    try:
        assert infrastructure.stores is not None
        settings = relay_settings(options.orgs, clock, **overrides)
        with captured_relay_log(relay.log):
            async with serve_in_task(settings, infrastructure.stores) as server:
                relay.server, relay.url = server, server.url
                yield relay
    finally:
        await infrastructure.close()


async def _started(provider: ProviderKind, namespace: str) -> Infrastructure:
    infrastructure = Infrastructure(provider.value, namespace)
    try:
        await infrastructure.start()
    except InfraError as exc:
        await infrastructure.close()
        unavailable(str(exc))
    return infrastructure


def _namespace() -> str:
    """A fresh store namespace per test (backend providers keep data between tests)."""
    return "pytest" + secrets.token_hex(6)


@pytest.fixture
async def semafore_relay(request: pytest.FixtureRequest) -> AsyncIterator[RelayUnderTest]:
    """A relay for this test (embedded unless ``--semafore-relay URL``)."""
    options = Options.of(request.config)
    marker = request.node.get_closest_marker("semafore_relay")
    overrides = dict(marker.kwargs) if marker is not None else {}
    if overrides and options.relay_url is not None:
        pytest.skip("@pytest.mark.semafore_relay settings need the embedded relay")
    async with running_relay(options, overrides, _namespace(),
                             signed_up_by_url(request.config)) as relay:
        yield relay


# -- the fleet -------------------------------------------------------------------------------


class PlatformFleet:
    """Organisations, users and devices on the test's relay, each a real client.

    ``users("alice", "bob")`` is the short way: one organisation, one connected ``phone``
    each. :meth:`org` and :meth:`device` give full control; :attr:`fleet` is the
    simulator's :class:`~simulator.fleet.Fleet` underneath (its ledger, received list and
    client events)."""

    def __init__(self, relay: RelayUnderTest, fleet: Fleet) -> None:
        self.relay = relay
        self.fleet = fleet

    @property
    def default_org(self) -> str:
        """This test's organisation for :meth:`users`: the first test organisation, or on a
        relay by URL the first one no earlier test of the session signed up."""
        mine = [org for org in sorted(self.relay.orgs) if org in self.fleet.orgs]
        free = [org for org in sorted(self.relay.orgs) if org not in self.relay.signed_up]
        if mine or free:
            return (mine or free)[0]
        raise PluginError(
            f"every test organisation ({', '.join(sorted(self.relay.orgs))}) was signed up on "
            f"{self.relay.url} by an earlier test; a relay by URL keeps its data: allow-list "
            "more (--test-org, ini option semafore_test_orgs) or start a fresh relay",
            "semafore_test_orgs")

    async def org(self, org_id: str, members: Iterable[str]) -> None:
        """Sign ``org_id`` up (a hidden operator is its TOTP admin) and enrol ``members``;
        members of an organisation that exists already are enrolled into it."""
        if org_id not in self.relay.orgs:
            raise PluginError(
                f"organisation {org_id!r} is not one the relay accepts the test OTP for "
                f"({', '.join(sorted(self.relay.orgs))}; ini option semafore_test_orgs)",
                "org_id")
        wanted = [m for m in dict.fromkeys(members) if m not in self.fleet.org_of]
        if org_id not in self.fleet.orgs:
            if org_id in self.relay.signed_up:
                raise PluginError(
                    f"organisation {org_id!r} was signed up on {self.relay.url} by an earlier "
                    "test; a relay by URL keeps its data, so each test needs its own "
                    "organisation and user ids (users() picks a free organisation)", "org_id")
            self.relay.signed_up.add(org_id)
            await self.fleet.add_org(org_id, wanted)
            return
        console = self.fleet.orgs[org_id].devices["console"]
        seats = sum(1 for org in self.fleet.org_of.values() if org == org_id) + len(wanted) + 1
        await console.http.json("PUT", f"/v1/orgs/{org_id}/subscription",
                                json={"plan": "enterprise", "seats": seats})
        for user in wanted:
            await console.http.json("PUT", f"/v1/orgs/{org_id}/members/{user}",
                                    json={"role": "member"})
            self.fleet.org_of[user] = org_id

    async def device(self, ref: DeviceAddress | str, *, connect: bool = True,
                     timeout: float = 10.0) -> DeviceClient:
        """Install ``ref`` (a :class:`DeviceAddress` or its text ``user:device``, SPEC §2
        step 6; ``user/device`` is refused naming ``ref``), login and keys published, and
        unless ``connect=False`` wait until its push socket is open. The user must be enrolled
        (:meth:`org`)."""
        address = address_argument(ref, "ref")
        user = address.user
        if user not in self.fleet.org_of:
            raise PluginError(f"{user} is not enrolled: call org(..., [{user!r}]) or users() "
                              "first", "ref")
        client = await self.fleet.add_device(address, connect=connect)
        if connect:
            await client.wait_connected(timeout)
        return client

    async def users(self, *names: str, org: str | None = None,
                    device: str = DEVICE) -> list[DeviceClient]:
        """Enrol ``names`` in ``org`` (default: the first test organisation) and give each
        one connected device; returned in the order named."""
        await self.org(org or self.default_org, names)
        return [await self.device(DeviceAddress(name, device)) for name in names]

    def client(self, ref: DeviceAddress | str) -> DeviceClient:
        """The installed device ``ref`` (a :class:`DeviceAddress` or ``user:device``)."""
        return self.fleet.client(ref)


@pytest.fixture
async def semafore_fleet(request: pytest.FixtureRequest,
                         semafore_relay: RelayUnderTest) -> AsyncIterator[PlatformFleet]:
    """Users and devices on ``semafore_relay``; every client is closed at teardown."""
    fleet = Fleet(seed=request.node.nodeid, url=semafore_relay.url, network=False,
                  clock=semafore_relay.clock)
    await fleet.start(sorted(semafore_relay.orgs))
    try:
        yield PlatformFleet(semafore_relay, fleet)
    finally:
        await fleet.close()


# -- the oracle ------------------------------------------------------------------------------


class LeakOracle:
    """Secrets a test registers (canaries it puts in messages, keys it holds) and every key
    the reference protocol derives while the test runs; :meth:`assert_clean` scans the
    relay's logs and stores for all of them (SPEC §8, semafore.oracle)."""

    def __init__(self, relay: RelayUnderTest) -> None:
        self.relay = relay
        self.oracle = Oracle()
        self.last_report: ScanReport | None = None

    def canary(self, label: str = "canary") -> str:
        """A fresh canary (``cnry`` + 26 base32 characters), registered: put it in a message
        body and the oracle fails if the relay ever holds it."""
        value = canary(secrets.token_bytes(16))
        self.oracle.register_canary(label, value)
        return value.decode("ascii")

    def register_canary(self, label: str, value: str | bytes) -> None:
        """A plaintext of the test's own that must never reach the relay (16 bytes or more)."""
        self.oracle.register_canary(label, value.encode() if isinstance(value, str) else value)

    def register_key(self, label: str, value: bytes) -> None:
        """Key material that must never reach the relay (16 bytes or more)."""
        self.oracle.register_key(label, value)

    async def scan(self) -> tuple[ScanReport, int]:
        """Scan what the relay holds now: the report and how many bytes were scanned."""
        chunks = await self.relay.holdings()
        report = self.oracle.scan(chunks)
        self.last_report = report
        return report, sum(len(c.data) for c in chunks)

    async def assert_clean(self) -> ScanReport:
        """Raise :class:`OracleLeak` naming every hit (a finding in what was read stands
        even if a granted source could not be read), or :class:`OracleInconclusive` when
        there was nothing to look for, nothing to look in, or a granted source was unread."""
        if not self.oracle.secrets:
            raise OracleInconclusive(
                "semafore_oracle: nothing to look for: no canary was registered and the "
                "protocol derived no key during the test")
        report, scanned = await self.scan()
        if not report.clean:
            raise OracleLeak(report, scanned)
        if self.relay.unread:
            raise OracleInconclusive(
                "semafore_oracle: the scan is incomplete: " + "; ".join(self.relay.unread))
        if scanned == 0:
            raise OracleInconclusive(
                "semafore_oracle: nothing to look in: the relay's logs and stores are not "
                "reachable (a --semafore-relay needs --semafore-relay-log and/or "
                "--semafore-provider external)")
        return report


@pytest.fixture
async def semafore_oracle(semafore_relay: RelayUnderTest) -> AsyncIterator[LeakOracle]:
    """Collects secrets while the test runs; at teardown a leak into the relay's logs or
    stores fails the test (``OracleLeak``), naming where and in which encoding."""
    leak_oracle = LeakOracle(semafore_relay)
    with leak_oracle.oracle.collecting_protocol_secrets():
        yield leak_oracle
    await leak_oracle.assert_clean()


# -- scenarios -------------------------------------------------------------------------------


class ScenarioRunner:
    """Runs a YAML scenario on the session's provider and asserts its verdict."""

    def __init__(self, options: Options, root: Path, signed_up: set[str]) -> None:
        self.options = options
        self.root = root
        self.signed_up = signed_up

    def allot(self, count: int) -> tuple[str, ...]:
        """``count`` organisations no earlier test signed up on the relay by URL, named as
        ``semafore sim run --relay`` names them (``acme``, ``acme-2``…; the relay must
        allow-list each)."""
        base = sorted(self.options.orgs)[0]
        names = (relay_org_name(base, k) for k in itertools.count(1))
        chosen = tuple(itertools.islice((n for n in names if n not in self.signed_up), count))
        self.signed_up.update(chosen)
        return chosen

    async def __call__(self, path: str | Path, *, seed: int | None = None) -> ScenarioResult:
        """Run ``path`` (absolute, or relative to where pytest was started) on the in-process
        relay, or on
        ``--semafore-relay`` (:mod:`simulator.external`: the cast renamed into the first test
        organisation, the oracle reading what ``access`` grants); return the result if its
        verdict lets a gate pass, skip if it does not apply to the provider or needs what a
        relay by URL does not give (``unsupported``), else raise :class:`ScenarioFailed`
        listing the failing assertions."""
        file = Path(path)
        if not file.is_absolute():
            file = self.root / file
        try:
            scenario = load(file)
        except ScenarioError as exc:
            raise PluginError(f"scenario {file} does not load: {exc}", "path") from exc
        if self.options.relay_url is None:
            result = await run_scenario_async(scenario, provider=self.options.provider.value,
                                              seed=seed)
        else:
            orgs = self.allot(len(scenario.organisations))
            relay = ExternalRelay(self.options.relay_url, orgs[0],
                                  access=self.options.access() or RelayAccess())
            result = await run_scenario_async(scenario, seed=seed, relay=relay, relay_orgs=orgs)
        if result.verdict is Verdict.SKIPPED:
            pytest.skip(f"scenario {scenario.name}: {result.skipped}")
        if result.verdict is Verdict.UNSUPPORTED:
            pytest.skip(f"scenario {scenario.name} on {self.options.relay_url}: {reason(result)}")
        if not result.verdict.ok:
            raise ScenarioFailed(result)
        return result

    def run(self, path: str | Path, *, seed: int | None = None) -> ScenarioResult:
        """:meth:`__call__` from a synchronous test (its own event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop: a synchronous test, as it should be
        else:
            raise PluginError("run() is for synchronous tests; await semafore_scenario(path) "
                              "here", "run")
        return asyncio.run(self(path, seed=seed))


@pytest.fixture
def semafore_scenario(request: pytest.FixtureRequest) -> ScenarioRunner:
    """``await semafore_scenario("scenarios/x.yaml")`` (or ``.run(...)`` in a sync test)."""
    return ScenarioRunner(Options.of(request.config), request.config.invocation_params.dir,
                          signed_up_by_url(request.config))
