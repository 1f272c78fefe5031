"""Throughput of ``semafore serve --workers 1`` against ``--workers 2``, same run, same backends
(issue 16 item 3: a relay on every core; docs/capacity.md "serve --workers").

Both relays are the real command, ``semafore serve --store backends:NS --workers N`` on one
port, on one set of real backends (the ``local`` provider's Redis, SeaweedFS and MongoDB or
FerretDB, or the ``SEMAFORE_*_URL`` of ``semafore backends up`` when
``SEMAFORE_PROVIDER=external``); each run gets a fresh namespace. With two workers the kernel
spreads the connections (SO_REUSEPORT), so about half the deliveries cross from the sender's
worker to the receiver's through the Redis push hub, as they would in production.

The workload is ``bench_relay``'s (imported, not copied): ``--pairs`` sender→receiver
WebSocket pairs move ``--envelopes`` envelopes of ``--size`` bytes, at most ``--window`` in
flight per sender, every envelope queued in Redis, pushed and acked. ``--rounds`` alternates
1, 2, 1, 2, … so drift in the machine's other load hits both; the median of each is
reported, with the ratio (2 workers / 1 worker; ``--haproxy`` adds a third configuration,
2 workers behind HAProxy), the relay CPU per envelope (all of its processes, HAProxy
included), the backends' CPU per envelope (when this run started them), and the CPU this
driver used: a driver near one full core caps what any number
of workers can show. The machine's core count and load average are printed beside them,
since the backends and the driver share the cores with the relay.

    python -m benchmarks.bench_workers --envelopes 12000 --rounds 2 [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.bench_relay import ORG, process_cpu, run_semafore
from semafore.deploy.providers import Endpoints
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.settings import InfraSettings, ProviderKind


@dataclass
class Run:
    config: str  # "1", "2", "2 haproxy"
    workers: int
    delivered: int
    seconds: float
    relay_cpu: float
    backend_cpu: float
    driver_cpu: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


def start_relay(endpoints: Endpoints, workers: int, balancer: str
                ) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``semafore serve --workers N --balancer B`` on a fresh namespace; returns the process
    and its ``--json`` line (url, port, worker pids) once every worker serves."""
    argv = [sys.executable, "-m", "semafore.cli.main", "serve", "--store",
            f"backends:bench{uuid.uuid4().hex[:8]}", "--workers", str(workers), "--port", "0",
            "--json", "--test-mode", "--test-org", ORG, "--test-no-rate-limits",
            "--log-level", "warning", *(["--balancer", balancer] if workers > 1 else [])]
    proc = subprocess.Popen(argv, env={**os.environ, **endpoints.as_env()},
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"serve --workers {workers} exited with {proc.wait(30)}")
    info: dict[str, Any] = json.loads(line)
    deadline = time.monotonic() + 60
    while True:  # a single process prints before serving; wait for its health endpoint
        try:
            httpx.get(f"{info['url']}/v1/health", timeout=2).raise_for_status()
            return proc, info
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"serve --workers {workers} never answered") from None
            time.sleep(0.1)


def measure(endpoints: Endpoints, workers: int, balancer: str, backends: list[int],
            args: argparse.Namespace) -> Run:
    """One run; ``backends`` are the backend processes' pids whose CPU is counted. The relay's
    CPU is that of every process serving: the parent, the workers and HAProxy if any."""
    proc, info = start_relay(endpoints, workers, balancer)
    pids = [proc.pid, *info["workers"]] if workers > 1 else [proc.pid]
    if info.get("balancer_pid"):
        pids.append(int(info["balancer_pid"]))
    try:
        relay_before = sum(process_cpu(pid) for pid in pids)
        backend_before = sum(process_cpu(pid) for pid in backends)
        driver_before = time.process_time()
        result = asyncio.run(run_semafore(int(info["port"]), args.pairs, args.envelopes,
                                          args.window, args.size, args.timeout, args.batch))
        relay_cpu = sum(process_cpu(pid) for pid in pids) - relay_before
        backend_cpu = sum(process_cpu(pid) for pid in backends) - backend_before
        driver_cpu = time.process_time() - driver_before
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    config = str(workers) + (f" {balancer}" if balancer != "kernel" else "")
    return Run(config, workers, result.delivered, result.seconds, relay_cpu, backend_cpu,
               driver_cpu, result.percentile(0.99))


def summary(runs: list[Run], config: str) -> dict[str, Any]:
    mine = [r for r in runs if r.config == config]
    rate = statistics.median(r.rate for r in mine)
    delivered = sum(r.delivered for r in mine)
    return {
        "workers": config,
        "envelopes_per_s": round(rate, 1),
        "rates": [round(r.rate, 1) for r in mine],
        "p99_ms": round(statistics.median(r.p99_ms for r in mine), 1),
        "relay_cpu_us_per_envelope": round(sum(r.relay_cpu for r in mine) / delivered * 1e6, 1),
        "backend_cpu_us_per_envelope": round(sum(r.backend_cpu for r in mine) / delivered * 1e6,
                                             1),
        "driver_cpu_share": round(sum(r.driver_cpu for r in mine)
                                  / sum(r.seconds for r in mine), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=12000)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--window", type=int, default=64, help="in-flight envelopes per sender")
    parser.add_argument("--size", type=int, default=300, help="envelope body bytes")
    parser.add_argument("--batch", type=int, default=64,
                        help="devices connect with ?batch=N like the SDK (0: one frame each)")
    parser.add_argument("--rounds", type=int, default=2, help="1-worker and 2-worker runs each")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--haproxy", action="store_true",
                        help="also 2 workers behind HAProxy (--balancer haproxy) each round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds: 1..10")

    settings = InfraSettings.from_env()
    if settings.provider is ProviderKind.EMBEDDED:
        settings = InfraSettings.from_env({**os.environ, "SEMAFORE_PROVIDER": "local"})
    load_before = os.getloadavg()
    runs: list[Run] = []
    with provider_from_settings(settings) as provider:
        backends = []  # CPU of the backends is counted when this run started them
        if settings.provider is ProviderKind.LOCAL:
            for name in ("mongodb", "redis", "seaweedfs"):
                pid = getattr(provider.backend(name), "pid", None)
                if isinstance(pid, int):
                    backends.append(pid)
        configs = [(1, "kernel"), (2, "kernel")] + ([(2, "haproxy")] if args.haproxy else [])
        for _ in range(args.rounds):
            for workers, balancer in configs:
                runs.append(measure(provider.endpoints, workers, balancer, backends, args))
    one, two = summary(runs, "1"), summary(runs, "2")
    proxied = summary(runs, "2 haproxy") if args.haproxy else None
    report = {
        "backends": settings.provider.value,
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "envelopes": args.envelopes, "pairs": args.pairs, "window": args.window,
        "size": args.size, "batch": args.batch, "rounds": args.rounds,
        "one_worker": one,
        "two_workers": two,
        "ratio_2_to_1": round(two["envelopes_per_s"] / one["envelopes_per_s"], 2),
    }
    if proxied is not None:
        report["two_workers_haproxy"] = proxied
        report["ratio_2_haproxy_to_1"] = round(
            proxied["envelopes_per_s"] / one["envelopes_per_s"], 2)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"semafore serve --workers 1 vs 2 on {report['backends']} backends, "
          f"{report['cores']} cores, load average {report['load_average_before'][0]} before, "
          f"{report['load_average_after'][0]} after")
    print(f"{'workers':>10} {'envelopes/s':>12} {'p99 ms':>8} {'relay CPU us/env':>17} "
          f"{'backend CPU us/env':>19} {'driver CPU':>11}  rounds")
    for row in (one, two, *([proxied] if proxied else [])):
        print(f"{row['workers']:>10} {row['envelopes_per_s']:>12} {row['p99_ms']:>8} "
              f"{row['relay_cpu_us_per_envelope']:>17} {row['backend_cpu_us_per_envelope']:>19} "
              f"{row['driver_cpu_share']:>11}  {row['rates']}")
    print(f"ratio 2 workers / 1 worker: {report['ratio_2_to_1']}")
    if proxied is not None:
        print(f"ratio 2 workers behind HAProxy / 1 worker: {report['ratio_2_haproxy_to_1']}")


if __name__ == "__main__":
    main()
