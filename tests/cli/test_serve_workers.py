"""``semafore serve --workers N`` (issue 16 item 3, docs/capacity.md "serve --workers"): N relay
processes on one port over shared real backends, with cross-process push through Redis; a
worker that dies is restarted within a budget; SIGTERM and Ctrl-C stop every worker; stores
that processes cannot share are refused naming the option."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from semafore.client import Account, DeviceClient, SystemClock, create_organisation, enrol_members
from semafore.client.account import fixed_otp
from semafore.client.transport import RelayHttp
from semafore.deploy.balancer import haproxy_binary
from semafore.deploy.errors import SettingsError
from semafore.deploy.providers import Endpoints, LocalProvider, Provider
from semafore.deploy.settings import InfraSettings, ProviderKind
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import require, shared_provider, unavailable
from semafore.deploy.workers import WORKER_HEADER, WorkerError, WorkerPool, WorkerSpec
from semafore.protocol.entropy import SeededEntropy
from semafore.server.settings import Settings

ORG = "acme"
TRIES = 200  # fresh connections before concluding a worker never gets one (p = 2**-200)
RESTART_WAIT = 60.0  # seconds a replacement worker may take to serve (a bound, not a claim)


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    port: int
    pids: list[int]
    namespace: str
    log: Path  # the parent's and the workers' stderr
    printed: dict[str, object]  # the --json line

    def events(self, name: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()
                if f'"event":"{name}"' in line]


@pytest.fixture
def local() -> Provider:
    return shared_provider(ProviderKind.LOCAL)


@pytest.fixture
def served(local: Provider, tmp_path: Path) -> Iterator[Served]:
    """``semafore serve --workers 2`` on the shared local backends, in a fresh namespace; the
    parent in a session of its own, like a service a terminal started (workers must not
    need the terminal's signals to stop)."""
    yield from serve_workers(local, tmp_path)


@pytest.fixture
def proxied(local: Provider, tmp_path: Path) -> Iterator[Served]:
    """The same with ``--balancer haproxy`` (Debian's haproxy package)."""
    try:
        haproxy_binary()
    except SettingsError as exc:
        unavailable(str(exc))
    yield from serve_workers(local, tmp_path, "--balancer", "haproxy")


def serve_workers(local: Provider, tmp_path: Path, *options: str) -> Iterator[Served]:
    namespace = f"w{uuid.uuid4().hex[:10]}"
    log = tmp_path / "serve.log"
    stderr = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--store", f"backends:{namespace}",
         "--workers", "2", "--port", "0", "--json", "--test-mode", "--test-org", ORG,
         "--test-no-rate-limits", *options],
        env={**os.environ, **local.endpoints.as_env()}, stdout=subprocess.PIPE,
        stderr=stderr, text=True, start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(30)
        pytest.fail(f"serve --workers printed nothing: {log.read_text()[-2000:]}")
    info = json.loads(line)
    try:
        yield Served(proc, info["url"], info["port"], info["workers"], namespace, log, info)
    finally:
        if proc.poll() is None:
            proc.kill()  # a test that failed before stopping it; the workers die with it
            proc.wait(30)
        proc.stdout.close()
        stderr.close()


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def both_answer(served: Served) -> None:
    seen: set[int] = set()
    for _ in range(TRIES):
        seen.add(answering_worker(served.url))
        if seen == set(served.pids):
            break
    assert seen == set(served.pids)  # each worker got connections on the one port


def replacement_of(served: Served, strict: bool) -> int | None:
    """Poll the port until a worker not in ``served.pids`` answers; ``strict``: every request
    meanwhile must succeed (nothing reset, no 5xx)."""
    deadline = time.monotonic() + RESTART_WAIT
    while time.monotonic() < deadline:
        try:
            pid = answering_worker(served.url)
        except httpx.TransportError:  # a connection the killed worker held queued was reset
            if strict:
                raise
            continue
        if pid not in served.pids:
            return pid
        time.sleep(0.05)
    return None


def answering_worker(url: str) -> int:
    """The pid of the worker that answers a health check on a fresh connection."""
    response = httpx.get(f"{url}/v1/health", timeout=10, headers={"connection": "close"})
    assert response.status_code == 200
    return int(response.headers[WORKER_HEADER])


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def all_gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + RESTART_WAIT
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return all(gone(pid) for pid in pids)


@pytest.mark.backend
def test_json_names_the_port_and_one_pid_per_worker(served: Served) -> None:
    assert served.url == f"http://127.0.0.1:{served.port}"
    assert len(served.pids) == len(set(served.pids)) == 2
    assert served.proc.pid not in served.pids
    for pid in served.pids:  # children of the serve process, not strangers
        assert parent_of(pid) == served.proc.pid
    assert served.printed["balancer"] == "kernel" and served.printed["balancer_pid"] is None
    served.proc.kill()  # the parent dies without a word: the kernel stops its workers
    served.proc.wait(30)
    assert all_gone(served.pids)


@pytest.mark.backend
def test_both_workers_answer_on_the_one_port_and_a_killed_one_is_replaced(served: Served) -> None:
    both_answer(served)
    killed, survivor = served.pids
    os.kill(killed, signal.SIGKILL)
    replacement = replacement_of(served, strict=False)
    assert replacement is not None, "no new worker ever answered on the port"
    assert served.proc.poll() is None  # the parent restarted it, it did not give up

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(60) == 0
    assert gone(survivor) and gone(replacement)
    restarts = served.events("worker_restarted")
    assert [(r["old_pid"], r["pid"]) for r in restarts] == [(killed, replacement)]


class WorkerLog(httpx.AsyncBaseTransport):
    """A one-connection HTTP transport that records which worker answered each request."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
        )
        self.answers: list[tuple[str, str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.answers.append((request.method, request.url.path,
                             int(response.headers.get(WORKER_HEADER, "0"))))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def pinned_to(url: str, pid: int) -> WorkerLog:
    """A transport whose one kept-alive connection the kernel gave to worker ``pid``."""
    for _ in range(TRIES):
        log = WorkerLog()
        response = await log.handle_async_request(httpx.Request("GET", f"{url}/v1/health"))
        await response.aread()  # the connection goes back to the pool, kept alive
        if log.answers.pop()[2] == pid:
            return log
        await log.aclose()
    pytest.fail(f"worker {pid} never got a connection")


async def pushed(device: DeviceClient, count: int, timeout: float = 30.0) -> list[bytes]:
    """What arrived over the device's socket (it never fetches) once ``count`` did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(device.inbox) < count and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return [r.content.body for r in device.inbox]


async def worker_holding(endpoints: Endpoints, namespace: str, user: str, device: str) -> int:
    """The pid of the worker whose push hub holds ``user/device``'s socket (Redis presence
    names the hub ``worker-<index>-<pid>``)."""
    _, handles = await backend_stores(endpoints, namespace)
    try:
        for _ in range(500):
            replica = await handles.presence.where(user, device)
            if replica is not None:
                return int(replica.rsplit("-", 1)[1])
            await asyncio.sleep(0.02)
    finally:
        await handles.close()
    pytest.fail(f"{user}/{device} never showed up in presence")


@pytest.mark.backend
def test_a_message_sent_through_one_worker_is_pushed_to_a_device_on_the_other(
    served: Served, local: Provider
) -> None:
    entropy = SeededEntropy(served.namespace)
    clock = SystemClock()
    accounts: list[Account] = []

    async def body() -> None:
        try:
            await deliver_across_workers()
        finally:
            for account in accounts:
                await account.close()

    async def deliver_across_workers() -> None:
        org = await create_organisation(served.url, ORG, "Acme", "admin", entropy.fork("org"))
        admin = Account(ORG, "admin", served.url, entropy.fork, clock, fixed_otp(),
                        totp_secret=str(org["totp_secret"]))
        accounts.append(admin)
        console = await admin.add_device("console", connect=False)
        await enrol_members(console, ORG, ["alice", "bob"], seats=5)
        bob_account = Account(ORG, "bob", served.url, entropy.fork, clock, fixed_otp())
        accounts.append(bob_account)
        bob = await bob_account.add_device("phone", connect=False)
        bob.connect()
        await bob.wait_connected()
        bob_worker = await worker_holding(local.endpoints, served.namespace, "bob", "phone")
        other = next(pid for pid in served.pids if pid != bob_worker)
        log = await pinned_to(served.url, other)
        http = RelayHttp(served.url, entropy.fork("alice-http"), transport=log)
        alice_account = Account(ORG, "alice", served.url, entropy.fork, clock, fixed_otp(),
                                client_options={"http": http})
        accounts.append(alice_account)
        alice = await alice_account.add_device("phone", connect=False)
        sent = [f"across workers {i}".encode() for i in range(5)]
        for text in sent:
            await alice.send_text("bob", text)
        sends = [pid for method, path, pid in log.answers
                 if method == "PUT" and path == "/v1/messages/bob"]
        assert len(sends) == len(sent) and set(sends) == {other}  # all through the other one
        assert await pushed(bob, len(sent)) == sent  # only push can bring them: bob never polls
        assert bob.counters.reconnects == 0

    asyncio.run(body())
    # Ctrl-C in a terminal: SIGINT to the parent's process group; workers stop through it
    os.killpg(served.proc.pid, signal.SIGINT)
    assert served.proc.wait(60) == 0
    assert all(gone(pid) for pid in served.pids)


@pytest.mark.parametrize("store", ["memory", "sqlite:{tmp}/relay.db"])
def test_workers_on_a_store_processes_cannot_share_are_refused(store: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--workers", "2", "--port", "0",
         "--store", store.format(tmp=tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--workers" in result.stderr and "--store backends" in result.stderr
    assert not (tmp_path / "relay.db").exists()  # refused before anything was created


def test_zero_workers_is_a_usage_error_naming_the_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--workers", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "--workers" in result.stderr


def test_a_pool_on_embedded_stores_is_refused_naming_workers() -> None:
    spec = WorkerSpec(Settings(), Endpoints(ProviderKind.EMBEDDED), "x", "127.0.0.1", 0)
    with pytest.raises(SettingsError) as caught:
        WorkerPool(spec, 2)
    assert caught.value.field == "workers"


@pytest.mark.backend
def test_a_worker_dying_beyond_the_restart_budget_ends_the_pool(local: Provider) -> None:
    spec = WorkerSpec(Settings(), local.endpoints, f"w{uuid.uuid4().hex[:10]}", "127.0.0.1", 0)
    with WorkerPool(spec, 1, max_restarts=0) as pool:
        (pid,) = pool.pids
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerError) as caught:
            pool.supervise()
        assert caught.value.index == 0
        assert f"pid {pid} exited with code -9" in caught.value.reason


@pytest.mark.backend
def test_haproxy_spreads_over_the_workers_and_no_request_fails_while_one_is_replaced(
    proxied: Served,
) -> None:
    balancer = proxied.printed["balancer_pid"]
    assert proxied.printed["balancer"] == "haproxy" and isinstance(balancer, int)
    assert parent_of(balancer) == proxied.proc.pid
    both_answer(proxied)
    killed, survivor = proxied.pids
    os.kill(killed, signal.SIGKILL)
    replacement = replacement_of(proxied, strict=True)  # HAProxy re-dispatches meanwhile
    assert replacement is not None, "no new worker ever answered behind the proxy"
    proxied.proc.send_signal(signal.SIGTERM)
    assert proxied.proc.wait(60) == 0
    assert gone(balancer) and gone(survivor) and gone(replacement)


def test_a_balancer_without_workers_is_a_usage_error_naming_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--balancer", "haproxy"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "--balancer" in result.stderr


@pytest.fixture
def own_backends(tmp_path: Path) -> Iterator[LocalProvider]:
    """A backend set of this test's own, which it may take away."""
    base = InfraSettings.from_env({})
    settings = InfraSettings(
        **{**base.__dict__, "provider": ProviderKind.LOCAL, "work_dir": tmp_path / "backends"}
    )
    provider = LocalProvider(settings)

    def start() -> LocalProvider:
        provider.start()
        return provider

    require(start)
    yield provider
    provider.stop()


@pytest.mark.backend
def test_workers_stop_without_being_killed_even_when_the_backends_are_gone(
    own_backends: LocalProvider,
) -> None:
    spec = WorkerSpec(Settings(), own_backends.endpoints, "gone", "127.0.0.1", 0,
                      shutdown_grace=1.0)
    pool = WorkerPool(spec, 2, stop_timeout=120.0)  # the parent would SIGKILL only after 120 s
    with pool:
        processes = [w.process for w in pool.workers]
        for name in ("redis", "mongodb"):
            own_backends.backend(name).kill()
    codes = [p.exitcode for p in processes if p is not None]
    assert len(codes) == 2 and all(code in (0, 1) for code in codes), codes  # not -9


@pytest.mark.backend
def test_a_worker_that_keeps_dying_ends_serve_with_exit_1(served: Served) -> None:
    current, other = served.pids
    for restart in range(3):  # the budget: 3 restarts of one worker within 60 s
        os.kill(current, signal.SIGKILL)
        deadline = time.monotonic() + RESTART_WAIT
        replaced = None
        while replaced is None and time.monotonic() < deadline:
            replaced = next((int(str(e["pid"])) for e in served.events("worker_restarted")
                             if e["old_pid"] == current), None)
            time.sleep(0.1)
        assert replaced is not None, f"restart {restart + 1} never happened"
        current = replaced
    os.kill(current, signal.SIGKILL)
    assert served.proc.wait(RESTART_WAIT) == 1
    assert "worker 0" in served.log.read_text() and "giving up" in served.log.read_text()
    assert all_gone([current, other])
