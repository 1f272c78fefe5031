"""Relay throughput and p99 latency on real backends beside the embedded store, same run (issue 4).

One workload, three deployments, measured back to back:

- ``embedded``: one relay process on the in-memory store (what ``bench_relay`` measures).
- ``local``: one relay replica on the ``local`` provider's real backends (MongoDB or
  FerretDB, Redis, SeaweedFS) with the Redis push hub.
- ``local x2``: two replicas on the same backends; pair i's sender talks to replica i mod 2
  and its receiver to replica (i div 2) mod 2, so half the deliveries cross replicas through
  the Redis pub/sub wake-up (docs/backends.md "Cross-replica push").

The workload is ``bench_relay``'s (imported, not copied): ``--pairs`` sender→receiver
WebSocket pairs move ``--envelopes`` envelopes of ``--size`` bytes, at most ``--window`` in
flight per sender; senders use the WebSocket ``send`` frame, receivers get pushed
``envelope`` frames and ack them; each envelope carries its send time, so the receiver
measures send→delivered latency. Every configuration is printed as a ratio to ``embedded``.
Bounded: ``--envelopes`` per configuration (default 6,000) and ``--timeout`` seconds each.

    python -m benchmarks.bench_backends --envelopes 6000 [--json]

``--ab OTHER_TREE`` compares two source trees instead (this one and a checkout of another
commit, e.g. ``git archive REV | tar -x -C DIR``): on **one** set of ``local`` backends, each
of ``--rounds`` rounds runs the embedded relay and one ``local`` replica of this tree, then of
the other (their order alternating by round), so load that changes between rounds hits both
trees alike. Relay CPU per envelope (from ``/proc``) is the figure to compare; env/s swings
with the machine's load (docs/backends.md "Cheaper round trips"). Run it from outside either
tree with ``PYTHONPATH`` naming this one: a relay process imports the tree its
``PYTHONPATH`` names, and ``python -m`` puts the working directory before it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.bench_relay import (
    ORG,
    PASSWORD_OTP,
    Result,
    drain_send_results,
    drive,
    free_port,
    process_cpu,
    publish_keys,
    relay_process,
    send_frame,
)

Opener = Callable[[int], Any]


async def _sessions(base: str, pairs: int) -> dict[str, dict[str, Any]]:
    """Create the org, its admin and one sender and one receiver per pair (device ``d1``)."""
    from semafore.server.totp import totp

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        signup = await http.post(
            "/v1/orgs", json={"org_id": ORG, "name": "Bench", "admin_user_id": "admin"}
        )
        signup.raise_for_status()
        secret = signup.json()["totp_secret"]
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
        login = {"org_id": ORG, "user_id": "admin", "device_id": "d", "otp": PASSWORD_OTP}
        admin = await http.post("/v1/auth/login", json={**login, "totp": totp(raw, time.time())})
        admin.raise_for_status()
        auth = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        seats = await http.put(  # a trial's seats would refuse a 13th pair (409)
            f"/v1/orgs/{ORG}/subscription",
            json={"plan": "standard", "seats": 2 * pairs + 1}, headers=auth,
        )
        seats.raise_for_status()
        sessions: dict[str, dict[str, Any]] = {}
        for i in range(pairs):
            for role in ("s", "r"):
                user = f"{role}{i}"
                member = await http.put(
                    f"/v1/orgs/{ORG}/members/{user}", json={"role": "member"}, headers=auth
                )
                member.raise_for_status()
                r = await http.post(
                    "/v1/auth/login",
                    json={"org_id": ORG, "user_id": user, "device_id": "d1", "otp": PASSWORD_OTP},
                )
                r.raise_for_status()
                sessions[user] = r.json()
                await publish_keys(http, sessions[user])
    return sessions


async def run_cluster(
    name: str,
    urls: Sequence[str],
    pairs: int,
    total: int,
    window: int,
    size: int,
    timeout: float,
) -> tuple[Result, int]:
    """``bench_relay``'s drive loop with clients spread over ``urls``; returns the result and
    how many pairs cross replicas."""
    sessions = await _sessions(urls[0], pairs)
    n = len(urls)

    def ws_url(index: int) -> str:
        return urls[index % n].replace("http://", "ws://") + "/v1/websocket"

    def sender_at(i: int) -> int:
        return i % n

    def receiver_at(i: int) -> int:
        return (i // n) % n

    async def socket(user: str, index: int) -> ClientConnection:
        token = sessions[user]["access_token"]
        return await connect(
            ws_url(index),
            additional_headers={"Authorization": f"Bearer {token}"},
            max_size=2**21,
            compression=None,
            ping_interval=None,  # a relay busy with its backlog may answer pings late
        )

    async def open_sender(i: int) -> Any:
        ws = await socket(f"s{i}", sender_at(i))
        registration_id = sessions[f"r{i}"]["registration_id"]

        drainer = asyncio.create_task(drain_send_results(ws))

        async def send(k: int) -> None:
            await ws.send(send_frame(i, k, registration_id, size))

        async def close() -> None:
            drainer.cancel()
            await ws.close()

        return send, close

    async def open_receiver(i: int) -> Any:
        ws = await socket(f"r{i}", receiver_at(i))
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def reader() -> None:
            async for frame in ws:
                parsed = json.loads(frame)
                if parsed.get("type") == "envelope":
                    inbox.put_nowait(parsed)

        reading = asyncio.create_task(reader())

        async def receive() -> list[bytes]:
            frames = [await inbox.get()]
            while not inbox.empty() and len(frames) < 64:
                frames.append(inbox.get_nowait())
            ids = [f["delivery_id"] for f in frames]
            await ws.send(json.dumps({"type": "ack", "delivery_ids": ids}))
            return [base64.b64decode(f["body"]) for f in frames]

        async def close() -> None:
            reading.cancel()
            await ws.close()

        return receive, close

    crossing = sum(1 for i in range(pairs) if sender_at(i) != receiver_at(i))
    result = await drive(name, pairs, total, window, open_sender, open_receiver, timeout)
    return result, crossing


def _cpu(pids: Sequence[int]) -> float:
    return sum(process_cpu(pid) for pid in pids)


def _measure(
    name: str, urls: Sequence[str], pids: Sequence[int], backend_pids: Sequence[int], opts: Any
) -> dict[str, Any]:
    relay_before, backends_before = _cpu(pids), _cpu(backend_pids)
    result, crossing = asyncio.run(
        run_cluster(
            name, urls, opts["pairs"], opts["envelopes"], opts["window"], opts["size"],
            opts["timeout"],
        )
    )
    result.relay_cpu = _cpu(pids) - relay_before
    summary = result.summary()
    summary["replicas"] = len(urls)
    summary["crossing_pairs"] = crossing
    summary["backend_cpu_s"] = round(_cpu(backend_pids) - backends_before, 3)
    return summary


def _embedded(opts: dict[str, Any]) -> dict[str, Any]:
    port = free_port()
    with relay_process(["--serve-semafore", str(port), "--store", "memory"], port) as proc:
        return _measure("embedded", [f"http://127.0.0.1:{port}"], [proc.pid], [], opts)


def _on_local(
    provider: Any, count: int, opts: dict[str, Any], work: Path, run: str = ""
) -> dict[str, Any]:
    from semafore.deploy.replicas import ReplicaSet

    name = "local" if count == 1 else f"local x{count}"
    namespace = f"bench{count}x{os.getpid()}{run}"  # one per run: each signs its org up
    backends = [provider.backend(b).pid for b in ("mongodb", "redis", "seaweedfs")]
    with ReplicaSet(
        provider.endpoints, count, work / f"x{count}", namespace=namespace,
        test_orgs=(ORG,), unlimited_rates=True,
    ) as replicas:
        pids = [r.pid for r in replicas.replicas if r.pid is not None]
        summary = _measure(name, replicas.urls, pids, [p for p in backends if p], opts)
    summary["mongodb_engine"] = provider.endpoints.mongodb_engine
    return summary


@contextlib.contextmanager
def _tree(path: Path | None) -> Iterator[None]:
    """Relay processes started inside import the source tree at ``path`` (None: as the
    benchmark itself): children inherit ``PYTHONPATH``."""
    if path is None:
        yield
        return
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


@contextlib.contextmanager
def _local_backends(console: Console, prefix: str) -> Iterator[tuple[Any, Path]]:
    """One started set of ``local`` backends and a scratch directory for the relays run on
    them; both gone on exit."""
    from semafore.deploy.selection import provider_from_settings
    from semafore.deploy.settings import InfraSettings, ProviderKind

    settings = dataclasses.replace(InfraSettings.from_env(), provider=ProviderKind.LOCAL)
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        provider_from_settings(settings) as p,
    ):
        with console.status("starting local backends…"):
            p.start()
        yield p, Path(tmp)


def _ab(other: Path, rounds: int, opts: dict[str, Any], console: Console) -> dict[str, Any]:
    """``--ab``: per round, embedded then one ``local`` replica of each tree, the trees in
    alternating order, on one set of backends; the rows of every run, in run order."""
    trees: dict[str, Path | None] = {"this": None, "other": other}
    runs: list[dict[str, Any]] = []
    with _local_backends(console, "bench-backends-ab-") as (p, tmp):
        for n in range(rounds):
            order = ["this", "other"] if n % 2 == 0 else ["other", "this"]
            for name in order:
                with _tree(trees[name]), console.status(f"round {n + 1}, {name} tree…"):
                    embedded = _embedded(opts)
                    local = _on_local(p, 1, opts, tmp / f"{name}{n}", f"{name}{n}")
                local.update(_ratios(local, embedded))
                runs.append({"round": n + 1, "tree": name,
                             "load_average": round(os.getloadavg()[0], 2),
                             "embedded": embedded, "local": local})
    return {"other_tree": str(other), "runs": runs}


def _ratios(row: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    def ratio(a: float, b: float) -> float:
        return round(a / b, 3) if b else 0.0

    return {
        "throughput_ratio": ratio(row["envelopes_per_s"], base["envelopes_per_s"]),
        "p99_ratio": ratio(row["p99_ms"], base["p99_ms"]),
        "cpu_efficiency_ratio": ratio(
            row["envelopes_per_relay_cpu_s"], base["envelopes_per_relay_cpu_s"]
        ),
    }


@click.command()
@click.option("--envelopes", default=6000, show_default=True, help="Per configuration.")
@click.option("--pairs", default=4, show_default=True, help="Sender/receiver pairs.")
@click.option("--window", default=64, show_default=True, help="In-flight envelopes per sender.")
@click.option("--size", default=300, show_default=True, help="Envelope body bytes.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds per configuration.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("--ab", "other", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Compare this source tree with another one (docstring).")
@click.option("--rounds", default=2, show_default=True, help="With --ab: rounds of both trees.")
def main(envelopes: int, pairs: int, window: int, size: int, timeout: float, as_json: bool,
         other: Path | None, rounds: int) -> None:
    """Relay throughput and p99 on embedded, local and two local replicas, as ratios."""
    if not 100 <= envelopes <= 50_000:
        raise click.BadParameter("100..50000", param_hint="--envelopes")
    if pairs < 2 or pairs % 2:
        raise click.BadParameter("an even number ≥ 2 (half the pairs cross)", param_hint="--pairs")
    if not 1 <= rounds <= 10:
        raise click.BadParameter("1..10", param_hint="--rounds")
    opts = {"envelopes": envelopes, "pairs": pairs, "window": window, "size": size,
            "timeout": timeout}
    console = Console(stderr=True)
    if other is not None:
        _print_ab(_ab(other.resolve(), rounds, opts, console), opts, as_json)
        return
    rows: list[dict[str, Any]] = []
    with console.status("embedded relay…"):
        rows.append(_embedded(opts))
    with _local_backends(console, "bench-backends-") as (p, tmp):
        for count in (1, 2):
            with console.status(f"local, {count} replica(s)…"):
                rows.append(_on_local(p, count, opts, tmp))
    base = rows[0]
    for row in rows:
        row.update(_ratios(row, base))
    report = {
        "workload": opts,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "system": platform.platform()},
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_average": round(os.getloadavg()[0], 2),
        "configurations": rows,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"{envelopes} envelopes, {pairs} pairs, window {window}, {size} B")
    for column in ("deployment", "env/s", "p50 ms", "p99 ms", "relay CPU s", "backend CPU s",
                   "× throughput", "× p99", "× env/relay-CPU-s"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["relay"], f"{row['envelopes_per_s']:.0f}", f"{row['p50_ms']:.1f}",
            f"{row['p99_ms']:.1f}", f"{row['relay_cpu_s']:.1f}", f"{row['backend_cpu_s']:.1f}",
            f"{row['throughput_ratio']:.2f}", f"{row['p99_ratio']:.2f}",
            f"{row['cpu_efficiency_ratio']:.2f}",
        )
    Console(width=140).print(table)
    click.echo(f"load average {report['load_average']}; ratios are to embedded (same run)")


def _print_ab(report: dict[str, Any], opts: dict[str, Any], as_json: bool) -> None:
    report = {"workload": opts, "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
              **report}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"A/B: {opts['envelopes']} envelopes; other tree {report['other_tree']}")
    for column in ("round", "tree", "load", "embedded env/s", "local env/s", "× embedded",
                   "relay CPU µs/env local", "embedded", "backend CPU s"):
        table.add_column(column, justify="right")
    for run in report["runs"]:
        local, embedded = run["local"], run["embedded"]
        table.add_row(
            str(run["round"]), run["tree"], f"{run['load_average']:.1f}",
            f"{embedded['envelopes_per_s']:.0f}", f"{local['envelopes_per_s']:.0f}",
            f"{local['throughput_ratio']:.3f}", f"{local['relay_cpu_us_per_envelope']:.0f}",
            f"{embedded['relay_cpu_us_per_envelope']:.0f}", f"{local['backend_cpu_s']:.2f}",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
