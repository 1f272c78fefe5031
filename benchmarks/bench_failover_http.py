"""Redis Sentinel failover through a relay process over HTTP (issue #16 item 5), Jepsen-style:
the end-to-end counterpart of ``bench_failover`` (which sends through the relay's queue port).

On the ``local`` provider's ``cluster`` shape a relay runs in its own process
(:class:`semafore.deploy.replicas.ReplicaSet`: ``python -m semafore.deploy.replicas``, the
relay app served by the same foreground launcher as ``semafore serve --store backends``),
reaching Redis through the group's ``redis+sentinel://`` URL. ``--writers`` users each send
``--messages / --writers`` real E2E messages (X3DH + Double Ratchet, :class:`DeviceClient`
over HTTP) to Bob's laptop, which is offline, so every envelope waits in the relay's Redis
queue. Once ``--kill-after`` sends are acknowledged, the Redis primary is SIGKILLed
(``provider.redis_primary()``); the clients' own retries (:mod:`semafore.client.transport`:
connection errors and 5xx, same request, so the relay's send ledger recognises them) carry the
sends through the failover. Afterwards Bob's laptop reads its queue page by page, recording
every delivery id the relay hands it before decrypting.

Figures (:func:`simulator.failover.measure`, the scenario assertion's definitions): sends
acknowledged and never shown on Bob's laptop (``acked_lost``), messages handed over as two or
more distinct deliveries (``duplicated``), sends whose ``send_text`` gave up (``unacked``:
neither lost nor kept), the window from the kill to the first acknowledgement of a send begun
after it, and the failover (until the Sentinels name the replica primary). Measured, never
asserted here (``tests/benchmarks/test_failover_http.py`` runs a small one).

    nice -n 10 .venv/bin/python -m benchmarks.bench_failover_http [--runs 3] [--writers 8] \\
        [--messages 400] [--kill-after 100] [--json out.json]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click
from rich.console import Console
from rich.table import Table

from semafore.client import Account, DeviceClient, SystemClock, create_organisation, enrol_members
from semafore.client.account import fixed_otp
from semafore.client.errors import ClientError
from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.errors import FaultError
from semafore.deploy.replicas import ReplicaSet
from semafore.deploy.settings import InfraSettings, ProviderKind, Shape
from semafore.protocol.entropy import SeededEntropy
from simulator.failover import FailoverFigures, SendSample, measure

ORG = "failover-http"
READER = "bob:laptop"
PAGE = 100


@dataclass(frozen=True)
class HttpFailover:
    """One run: the figures, the failover time (kill -> the replica reports itself primary),
    the ports of the former and the new primary, and how many retries the clients made."""

    figures: FailoverFigures
    failover_s: float
    former_primary: int
    new_primary: int
    client_retries: int

    def as_dict(self) -> dict[str, object]:
        return {**self.figures.as_details(), "unacked": len(self.figures.unacknowledged),
                "failover_s": round(self.failover_s, 3), "client_retries": self.client_retries,
                "former_primary_port": self.former_primary,
                "new_primary_port": self.new_primary}


async def _read_queue(reader: DeviceClient) -> tuple[dict[tuple[str, str], int],
                                                     dict[tuple[str, str], list[str]]]:
    """Bob's laptop drains its queue over HTTP: every envelope's delivery id as handed out,
    then decrypted and acknowledged as the client would (``DeviceClient.poll``)."""
    shown: dict[tuple[str, str], int] = {}
    handed: dict[tuple[str, str], list[str]] = {}
    while True:
        page = await reader.http.json("GET", "/v1/messages", params={"limit": PAGE})
        for env in page["envelopes"]:
            handed.setdefault((READER, str(env["message_id"])), []).append(
                str(env["delivery_id"]))
            received = await reader.process_envelope(env)
            if received is not None:
                key = (READER, received.content.message_id)
                shown[key] = shown.get(key, 0) + 1
        await reader.flush_acks()
        if not page["more"]:
            return shown, handed


async def measure_http_failover(
    provider: LocalClusterProvider, work: Path, *, messages: int, writers: int,
    kill_after: int, namespace: str = "failover-http",
) -> HttpFailover:
    """Run the writers against one relay process on ``provider`` (started, cluster shape);
    kill the Redis primary after ``kill_after`` acknowledgements; read Bob's queue back."""
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
    with ReplicaSet(provider.endpoints, 1, work, namespace=namespace, test_orgs=(ORG,),
                    unlimited_rates=True) as relay:
        url = relay.urls[0]

        def account(user: str, totp: str | None = None) -> Account:
            made = Account(ORG, user, url, entropy.fork, clock, fixed_otp(), totp_secret=totp)
            accounts.append(made)
            return made

        try:
            org = await create_organisation(url, ORG, "Failover", "admin", entropy.fork("org"))
            console = await account("admin", str(org["totp_secret"])).add_device(
                "console", connect=False)
            await enrol_members(console, ORG, ["bob", *users], seats=writers + 2)
            reader = await account("bob").add_device("laptop", connect=False)
            senders = [await account(u).add_device("phone", connect=False) for u in users]
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
            shown, handed = await _read_queue(reader)
            retries = sum(c.http.retries for c in senders)
        finally:
            for made in accounts:
                await made.close()
    if not killed_at or not promoted:
        raise FaultError("the primary was never killed: fewer sends acknowledged than "
                         f"kill_after={kill_after}")
    figures = measure(samples, shown, handed, killed_at[0] * 1000)
    new, at = promoted[0]
    return HttpFailover(figures, at - killed_at[0], former, new, retries)


def one_run(work: Path, *, messages: int, writers: int, kill_after: int) -> HttpFailover:
    base = InfraSettings.from_env()
    settings = InfraSettings(**{**base.__dict__, "provider": ProviderKind.LOCAL,
                                "shape": Shape.CLUSTER, "work_dir": work / "backends"})
    with LocalClusterProvider(settings, redis_durable=True) as provider:
        assert isinstance(provider, LocalClusterProvider)
        return asyncio.run(measure_http_failover(
            provider, work, messages=messages, writers=writers, kill_after=kill_after))


@click.command()
@click.option("--runs", default=3, show_default=True)
@click.option("--messages", default=400, show_default=True)
@click.option("--writers", default=8, show_default=True)
@click.option("--kill-after", default=100, show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def main(runs: int, messages: int, writers: int, kill_after: int, json_out: Path | None) -> None:
    console = Console(width=160)
    table = Table(title=f"Sentinel failover through a relay process over HTTP: {messages} "
                        f"E2E sends, {writers} writers, kill after {kill_after} acks")
    for column in ("run", "acked", "unacked", "acked_lost", "duplicated", "redelivered",
                   "client retries", "window (s)", "failover (s)"):
        table.add_column(column)
    rows = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="semafore-failover-http-") as work:
            result = one_run(Path(work), messages=messages, writers=writers,
                             kill_after=kill_after)
        row = result.as_dict()
        rows.append(row)
        table.add_row(str(run), str(row["acknowledged"]), str(row["unacked"]),
                      str(row["acked_lost"]), str(row["duplicated"]), str(row["redelivered"]),
                      str(row["client_retries"]), str(row.get("window_s", "-")),
                      f"{result.failover_s:.3f}")
    console.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
