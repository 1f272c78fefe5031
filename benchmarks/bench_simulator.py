"""Fleet benchmark: N devices, M messages, real crypto against a real relay.

Run: ``.venv/bin/python -m benchmarks.bench_simulator [--devices 10000 --messages 100000]``.

By default the fleet is **sharded** (:mod:`simulator.sharded`, issue 16 item 6): the relay in
a process of its own on the memory store, the devices spread over ``--shards`` processes
(default: one per core), and the report splits the traffic phase's CPU per envelope into
harness (everything but relay and protocol), relay and protocol, from the same run, plus
the audit: every expected envelope decrypted to its planned plaintext, every gap named.
``--shards 0`` runs the old single-process fleet (:class:`simulator.fleet.Fleet`: relay and
devices on one event loop, optionally through the network proxy layer);
``--compare-in-process`` runs both on the same plan size in one invocation. Progress lines
go to stderr; the exit code is 1 when anything is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import sys
import time
from typing import Any

from simulator.fleet import Fleet
from simulator.sharded import ShardedFleet
from simulator.sharded_plan import FleetPlan

ORG = "bench"


async def run(devices: int, messages: int, per_user: int, concurrency: int, seed: int,
              network: bool) -> dict[str, Any]:
    users = [f"u{i:04d}" for i in range((devices + per_user - 1) // per_user)]
    fleet = Fleet(seed=seed, network=network, capture=False, opk_count=10,
                  keep_envelopes=False, ws_send_timeout=30.0)
    t0 = time.perf_counter()
    cpu0 = _cpu()
    await fleet.start([ORG])
    await fleet.add_org(ORG, users, seats=len(users) + 2)
    refs = [f"{u}:d{j}" for u in users for j in range(per_user)][:devices]
    sem = asyncio.Semaphore(32)

    async def install(ref: str) -> None:
        async with sem:
            await fleet.add_device(ref, connect=False)

    await asyncio.gather(*(install(r) for r in refs))
    await fleet.connect_all(timeout=120)
    setup = time.perf_counter() - t0
    rng = random.Random(seed)
    plan = []
    for i in range(messages):
        sender = rng.choice(refs)
        to = rng.choice(users)
        while to == sender.split(":")[0]:
            to = rng.choice(users)
        plan.append((sender, to, f"m{i:06d}".encode() + bytes(48)))
    by_sender: dict[str, list[tuple[str, bytes]]] = {}
    for sender, to, body in plan:
        by_sender.setdefault(sender, []).append((to, body))
    gate = asyncio.Semaphore(concurrency)

    async def sender_loop(ref: str, items: list[tuple[str, bytes]]) -> None:
        client = fleet.client(ref)
        for to, body in items:
            async with gate:
                await client.send_text(to, body)

    async def progress() -> None:
        while True:
            await asyncio.sleep(15)
            sent_now = sum(c.counters.sent_messages for c in fleet.clients())
            print(f"  … {time.perf_counter() - t1:.0f} s: {sent_now} messages sent, "
                  f"{len(fleet.received)} envelopes delivered", file=sys.stderr, flush=True)

    print(f"set-up done in {setup:.1f} s ({len(refs)} devices connected)", file=sys.stderr,
          flush=True)
    t1 = time.perf_counter()
    cpu1 = _cpu()
    reporter = asyncio.create_task(progress())
    await asyncio.gather(*(sender_loop(r, items) for r, items in by_sender.items()))
    sent = time.perf_counter() - t1
    missing = await fleet.quiesce(timeout=600, idle=20)
    total = time.perf_counter() - t1
    traffic_cpu = _cpu() - cpu1
    reporter.cancel()
    envelopes = sum(c.counters.sent_envelopes for c in fleet.clients())
    received = sum(c.counters.received for c in fleet.clients())
    await fleet.close()
    return {
        "mode": "in-process",
        "devices": len(refs),
        "users": len(users),
        "messages": messages,
        "network_layer": network,
        "setup_s": round(setup, 2),
        "send_s": round(sent, 2),
        "send_and_deliver_s": round(total, 2),
        "messages_per_s": round(messages / total, 1),
        "envelopes": envelopes,
        "envelopes_delivered": received,
        "envelopes_per_s": round(received / total, 1),
        "missing": sum(len(v) for v in missing.values()),
        "setup_cpu_s": round(cpu1 - cpu0, 1),
        # one process: relay, harness and protocol together, not separable
        "all_cpu_ms_per_envelope": round(traffic_cpu / max(received, 1) * 1e3, 3),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_sharded(args: argparse.Namespace) -> dict[str, Any]:
    plan = FleetPlan(args.seed, args.devices, args.messages, args.per_user, args.contacts)
    with ShardedFleet(plan, shards=args.shards or None, concurrency=args.concurrency,
                      opk_count=args.opks, progress=_stderr) as fleet:
        result = fleet.run()
    if not result.ok:
        _stderr(result.audit.describe())
        for failure in result.send_failures[:10]:
            _stderr(f"send failed: {failure}")
    return {"mode": "sharded", **result.as_dict()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--per-user", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shards", type=int, default=os.cpu_count() or 1,
                        help="shard processes (default: one per core); 0: the old "
                        "single-process fleet")
    parser.add_argument("--contacts", type=int, default=3,
                        help="sharded plan: contacts per user (0: any user; almost every "
                        "message then opens a new session)")
    parser.add_argument("--opks", type=int, default=20,
                        help="sharded: one-time prekeys each device publishes (with 3 "
                        "contacts a device is bootstrapped by ~7 peers; more costs set-up)")
    parser.add_argument("--compare-in-process", action="store_true",
                        help="also run the single-process fleet (direct, no proxy)")
    parser.add_argument("--no-proxy", action="store_true",
                        help="single-process mode: clients talk to the relay directly")
    parser.add_argument("--compare-proxy", action="store_true",
                        help="single-process mode: also run without the proxy layer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name in ("semafore.server", "uvicorn", "uvicorn.error", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    results = []
    if args.shards:
        results.append(run_sharded(args))
    if not args.shards or args.compare_in_process:
        network = not args.no_proxy and not args.compare_in_process
        results.append(asyncio.run(run(args.devices, args.messages, args.per_user,
                                       args.concurrency, args.seed, network)))
        if args.compare_proxy and network:
            results.append(asyncio.run(run(args.devices, args.messages, args.per_user,
                                           args.concurrency, args.seed, False)))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(_line(r))
    return 0 if all(r["missing"] == 0 and r.get("wrong_plaintext", 0) == 0
                    and r.get("send_failures", 0) == 0 for r in results) else 1


def _line(r: dict[str, Any]) -> str:
    if r["mode"] == "sharded":
        return (f"{r['devices']} devices / {r['messages']} messages (sharded, {r['shards']} "
                f"shards, {r['contacts']} contacts): set-up {r['setup_s']} s, traffic "
                f"{r['traffic_s']} s, {r['delivered']}/{r['envelopes']} envelopes decrypted, "
                f"{r['missing']} missing; CPU per envelope: harness "
                f"{r['harness_cpu_ms_per_envelope']} ms, relay "
                f"{r['relay_cpu_ms_per_envelope']} ms, protocol "
                f"{r['protocol_cpu_ms_per_envelope']} ms")
    layer = "via network proxy" if r["network_layer"] else "direct"
    return (f"{r['devices']} devices / {r['messages']} messages (in-process, {layer}): set-up "
            f"{r['setup_s']} s, send+deliver {r['send_and_deliver_s']} s, "
            f"{r['messages_per_s']} messages/s, {r['envelopes_per_s']} envelopes/s, "
            f"{r['envelopes_delivered']}/{r['envelopes']} envelopes delivered, "
            f"{r['missing']} missing; all CPU (relay+harness+protocol) "
            f"{r['all_cpu_ms_per_envelope']} ms per envelope")


if __name__ == "__main__":
    sys.exit(main())
