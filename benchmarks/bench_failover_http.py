"""Redis Sentinel failover through a relay process over HTTP (issue #16 item 5), Jepsen-style:
the end-to-end counterpart of ``bench_failover`` (which sends through the relay's queue port).

On the ``local`` provider's ``cluster`` shape a relay runs in its own process
(:class:`semafore.deploy.replicas.ReplicaSet`: ``python -m semafore.deploy.replicas``, the
relay app served by the same foreground launcher as ``semafore serve --store backends``;
``--serve-cli``: that command itself), reaching Redis through the group's
``redis+sentinel://`` URL. ``--writers`` users each send ``--messages / --writers`` real E2E
messages (X3DH + Double Ratchet, :class:`DeviceClient` over HTTP) to Bob's laptop, which is
offline, so every envelope waits in the relay's Redis queue (``--websocket``: every device
keeps its push socket open instead, the writers send over it and Bob's laptop is pushed its
envelopes across the kill). Once ``--kill-after`` sends are acknowledged, the Redis primary
is SIGKILLed (``provider.redis_primary()``); the clients' own retries
(:mod:`semafore.client.transport`: connection errors and 5xx, same request, so the relay's
send ledger recognises them) carry the sends through the failover. Afterwards Bob's laptop
reads its queue page by page, recording every delivery id the relay hands it before
decrypting (``copies_dropped``: what its client dropped as already seen, pushed copies
included).

Figures (:func:`simulator.failover.measure`, the scenario assertion's definitions): sends
acknowledged and never shown on Bob's laptop (``acked_lost``), messages handed over as two or
more distinct deliveries (``duplicated``), sends whose ``send_text`` gave up (``unacked``:
neither lost nor kept), the window from the kill to the first acknowledgement of a send begun
after it, and the failover (until the Sentinels name the replica primary). Measured, never
asserted here (``tests/benchmarks/test_failover_http.py`` runs a small one of each).

    nice -n 10 .venv/bin/python -m benchmarks.bench_failover_http [--runs 3] [--writers 8] \\
        [--messages 400] [--kill-after 100] [--websocket] [--serve-cli] [--json out.json]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click
from rich.console import Console
from rich.table import Table

from semafore.client import (
    Account,
    DeviceClient,
    Received,
    SystemClock,
    create_organisation,
    enrol_members,
)
from semafore.client.account import fixed_otp
from semafore.client.client import ClientEvent
from semafore.client.errors import ClientError
from semafore.deploy import health
from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.errors import FaultError, SettingsError
from semafore.deploy.processes import ManagedProcess, ProcessSpec, free_ports
from semafore.deploy.replicas import ReplicaSet
from semafore.deploy.settings import InfraSettings, ProviderKind, Shape
from semafore.protocol.entropy import SeededEntropy
from simulator.failover import DeliveryFigures, SendSample, measure

ORG = "failover-http"
READER = "bob:laptop"
PAGE = 100


@dataclass(frozen=True)
class HttpFailover:
    """One run: the figures, the failover time (kill -> the replica reports itself primary),
    the ports of the former and the new primary, and how many retries the clients made."""

    figures: DeliveryFigures
    failover_s: float
    former_primary: int
    new_primary: int
    client_retries: int
    transport: str = "http"
    copies_dropped: int = 0  # websocket: copies the reader's client dropped as already seen
    relays: int = 1
    pushed_after_kill: int = 0  # websocket: sends begun after the kill that arrived as a push

    def as_dict(self) -> dict[str, object]:
        return {**self.figures.as_details(), "unacked": len(self.figures.unacknowledged),
                "transport": self.transport, "copies_dropped": self.copies_dropped,
                "relays": self.relays, "pushed_after_kill": self.pushed_after_kill,
                "failover_s": round(self.failover_s, 3), "client_retries": self.client_retries,
                "former_primary_port": self.former_primary,
                "new_primary_port": self.new_primary}


@dataclass
class Tally:
    """What reached Bob's laptop: shown per (device, message id), and the delivery ids handed
    to it (every envelope of an HTTP page; a push only once shown, see
    :func:`measure_http_failover`)."""

    shown: dict[tuple[str, str], int] = field(default_factory=dict)
    handed: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    draining: bool = False
    pushed: set[str] = field(default_factory=set)  # message ids shown from a push
    dropped: int = 0  # copies the client dropped as already seen (DuplicateMessage, message id)

    def on_receive(self, _client: DeviceClient, received: Received) -> None:
        key = (READER, received.content.message_id)
        self.shown[key] = self.shown.get(key, 0) + 1
        if not self.draining:  # a push; a page's envelopes are recorded as they are read
            self.handed.setdefault(key, []).append(received.delivery_id)
            self.pushed.add(received.content.message_id)


    def on_event(self, _client: DeviceClient, event: ClientEvent) -> None:
        if event.kind in ("duplicate_frame", "duplicate_message"):
            self.dropped += 1


async def _read_queue(reader: DeviceClient, tally: Tally) -> None:
    """Bob's laptop drains its queue over HTTP: every envelope's delivery id as handed out,
    then decrypted and acknowledged as the client would (``DeviceClient.poll``)."""
    tally.draining = True
    while True:
        page = await reader.http.json("GET", "/v1/messages", params={"limit": PAGE})
        for env in page["envelopes"]:
            tally.handed.setdefault((READER, str(env["message_id"])), []).append(
                str(env["delivery_id"]))
            await reader.process_envelope(env)  # shown: counted by Tally.on_receive
        await reader.flush_acks()
        if not page["more"]:
            return


async def _pushed(tally: Tally, acked: set[str], idle: float = 10.0) -> None:
    """Wait until every acknowledged send was pushed to the reader, or nothing new arrived
    for ``idle`` seconds (the HTTP drain afterwards reads whatever is left)."""
    seen = -1
    while len(tally.shown) != seen:
        seen = len(tally.shown)
        deadline = time.monotonic() + idle
        while time.monotonic() < deadline:
            if {mid for _, mid in tally.shown} >= acked:
                return
            await asyncio.sleep(0.05)


@contextlib.contextmanager
def _relay(provider: LocalClusterProvider, work: Path, namespace: str,
           serve_cli: bool, relays: int) -> Iterator[list[str]]:
    """``relays`` relay processes on the provider's backends; their base URLs."""
    if serve_cli and relays != 1:
        raise SettingsError("relays", "--serve-cli runs one relay process")
    if not serve_cli:
        with ReplicaSet(provider.endpoints, relays, work, namespace=namespace,
                        test_orgs=(ORG,), unlimited_rates=True) as replicas:
            yield replicas.urls
        return
    [port] = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    serve = ManagedProcess(ProcessSpec(
        "semafore-serve",
        [sys.executable, "-m", "semafore.cli.main", "serve", "--store", f"backends:{namespace}",
         "--port", str(port), "--test-mode", "--test-org", ORG, "--test-no-rate-limits"],
        lambda: health.http_status(url + "/v1/health") == 200,
        work / "semafore-serve.log",
        env={**os.environ, **provider.endpoints.as_env()},
    ))
    serve.start()
    try:
        yield [url]
    finally:
        serve.stop()


async def measure_http_failover(
    provider: LocalClusterProvider, work: Path, *, messages: int, writers: int,
    kill_after: int, namespace: str = "failover-http", websocket: bool = False,
    serve_cli: bool = False, relays: int = 1,
) -> HttpFailover:
    """Run the writers against one relay process on ``provider`` (started, cluster shape);
    kill the Redis primary after ``kill_after`` acknowledgements; read Bob's queue back.

    ``websocket``: every device keeps its push socket open, so the writers send over it and
    Bob's laptop is handed its envelopes as pushes across the kill (then drains the rest over
    HTTP). A copy its client drops as already seen is counted (``copies_dropped``) but its
    delivery id is not observable there, so ``duplicated`` counts only what was shown twice
    or handed over HTTP twice. ``serve_cli``: the relay is the ``semafore serve --store
    backends`` command itself instead of a :class:`ReplicaSet` replica. ``relays``: that many
    replicas, the writers on the first, Bob's laptop on the last, so a push crosses relays
    through Redis (``pushed_after_kill`` counts the sends begun after the kill that still
    reached it as a push)."""
    if not 0 < kill_after < messages:
        raise FaultError(f"kill_after must be within 1..{messages - 1}, got {kill_after}")
    group = provider.group()
    former = group.primary_port()
    clock = SystemClock()
    entropy = SeededEntropy(namespace)
    users = [f"writer{i}" for i in range(writers)]
    samples: list[SendSample] = []
    killed_at: list[float] = []
    promoted: list[tuple[int, float]] = []
    accounts: list[Account] = []
    with _relay(provider, work, namespace, serve_cli, relays) as urls:

        url = urls[0]

        def account(user: str, totp: str | None = None, at: str = url) -> Account:
            made = Account(ORG, user, at, entropy.fork, clock, fixed_otp(), totp_secret=totp)
            accounts.append(made)
            return made

        try:
            org = await create_organisation(url, ORG, "Failover", "admin", entropy.fork("org"))
            console = await account("admin", str(org["totp_secret"])).add_device(
                "console", connect=False)
            await enrol_members(console, ORG, ["bob", *users], seats=writers + 2)
            reader = await account("bob", at=urls[-1]).add_device("laptop", connect=websocket)
            tally = Tally()
            reader.on_receive = tally.on_receive
            reader.on_event = tally.on_event
            senders = [await account(u).add_device("phone", connect=websocket) for u in users]
            acked = 0
            per_writer = messages // writers

            async def kill() -> None:
                victim = await asyncio.to_thread(provider.redis_primary)
                killed_at.append(time.monotonic())
                victim.kill()

                def wait() -> None:
                    port = group.wait_promoted(former)
                    promoted.append((port, time.monotonic()))

                await asyncio.to_thread(wait)

            watchers: list[asyncio.Task[None]] = []

            async def write(client: DeviceClient, index: int) -> None:
                nonlocal acked
                for n in range(per_writer):
                    message_id = client.new_message_id()
                    begun = time.monotonic()
                    try:
                        await client.send_text("bob", f"{index}:{n}".encode(),
                                               message_id=message_id)
                    except ClientError:
                        samples.append(SendSample(f"{index}.{n}", message_id, begun * 1000,
                                                  None, frozenset({READER})))
                        continue
                    samples.append(SendSample(f"{index}.{n}", message_id, begun * 1000,
                                              time.monotonic() * 1000, frozenset({READER})))
                    acked += 1
                    if acked == kill_after:
                        watchers.append(asyncio.ensure_future(kill()))

            await asyncio.gather(*(write(c, i) for i, c in enumerate(senders)))
            await asyncio.gather(*watchers)
            if websocket:
                await _pushed(tally, {s.message_id for s in samples if s.acked_ms is not None})
                # offline before the drain: its acks then go over HTTP, each answered before
                # the next page is asked for (an ack over the socket is not awaited, so a page
                # read right after it could hand the same envelopes again)
                await reader.disconnect()
            await _read_queue(reader, tally)
            retries = sum(c.http.retries for c in senders)
        finally:
            for made in accounts:
                await made.close()
    if not killed_at or not promoted:
        raise FaultError("the primary was never killed: fewer sends acknowledged than "
                         f"kill_after={kill_after}")
    figures = measure(samples, tally.shown, tally.handed, killed_at[0] * 1000)
    new, at = promoted[0]
    pushed_after = sum(1 for s in samples if s.acked_ms is not None
                       and s.begun_ms > killed_at[0] * 1000 and s.message_id in tally.pushed)
    return HttpFailover(figures, at - killed_at[0], former, new, retries,
                        "websocket" if websocket else "http", tally.dropped, relays,
                        pushed_after)


def one_run(work: Path, *, messages: int, writers: int, kill_after: int,
            websocket: bool = False, serve_cli: bool = False, relays: int = 1) -> HttpFailover:
    base = InfraSettings.from_env()
    settings = InfraSettings(**{**base.__dict__, "provider": ProviderKind.LOCAL,
                                "shape": Shape.CLUSTER, "work_dir": work / "backends"})
    with LocalClusterProvider(settings, redis_durable=True) as provider:
        assert isinstance(provider, LocalClusterProvider)
        return asyncio.run(measure_http_failover(
            provider, work, messages=messages, writers=writers, kill_after=kill_after,
            websocket=websocket, serve_cli=serve_cli, relays=relays))


@click.command()
@click.option("--runs", default=3, show_default=True)
@click.option("--messages", default=400, show_default=True)
@click.option("--writers", default=8, show_default=True)
@click.option("--kill-after", default=100, show_default=True)
@click.option("--websocket", is_flag=True,
              help="devices keep their push sockets open: sends and deliveries over WebSocket")
@click.option("--serve-cli", is_flag=True,
              help="the relay is `semafore serve --store backends` (default: a ReplicaSet replica)")
@click.option("--relays", default=1, show_default=True, type=click.IntRange(1, 8),
              help="ReplicaSet relays: writers on the first, the reader on the last")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def main(runs: int, messages: int, writers: int, kill_after: int, websocket: bool,
         serve_cli: bool, relays: int, json_out: Path | None) -> None:
    console = Console(width=160)
    over = "WebSocket" if websocket else "HTTP"
    table = Table(title=f"Sentinel failover through {relays} relay process(es) over {over}: "
                        f"{messages} E2E sends, {writers} writers, kill after {kill_after} acks")
    for column in ("run", "acked", "unacked", "acked_lost", "duplicated", "redelivered",
                   "copies dropped", "pushed / acked after kill", "client retries", "window (s)",
                   "failover (s)"):
        table.add_column(column)
    rows = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="semafore-failover-http-") as work:
            result = one_run(Path(work), messages=messages, writers=writers,
                             kill_after=kill_after, websocket=websocket, serve_cli=serve_cli,
                             relays=relays)
        row = result.as_dict()
        rows.append(row)
        table.add_row(str(run), str(row["acknowledged"]), str(row["unacked"]),
                      str(row["acked_lost"]), str(row["duplicated"]), str(row["redelivered"]),
                      str(row["copies_dropped"]),
                      f"{row['pushed_after_kill']} / {row['acked_after_fault']}",
                      str(row["client_retries"]),
                      str(row.get("window_s", "-")),
                      f"{result.failover_s:.3f}")
    console.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
