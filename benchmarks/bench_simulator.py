"""Fleet benchmark: N devices, M messages, real crypto against the in-process relay.

Run: ``.venv/bin/python -m benchmarks.bench_simulator [--devices 1000 --messages 20000]``.
Prints set-up time, send/deliver time, messages/s and envelopes/s, with and without the
network proxy layer when ``--compare-proxy`` is given (the comparison is measured in the same
run). The issue's target is 1,000 devices and 20,000 messages completing on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import time
from typing import Any

from simulator.fleet import Fleet

ORG = "bench"


async def run(devices: int, messages: int, per_user: int, concurrency: int, seed: int,
              network: bool) -> dict[str, Any]:
    users = [f"u{i:04d}" for i in range((devices + per_user - 1) // per_user)]
    fleet = Fleet(seed=seed, network=network, capture=False, opk_count=10,
                  keep_envelopes=False, ws_send_timeout=30.0)
    t0 = time.perf_counter()
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
    reporter = asyncio.create_task(progress())
    await asyncio.gather(*(sender_loop(r, items) for r, items in by_sender.items()))
    sent = time.perf_counter() - t1
    missing = await fleet.quiesce(timeout=600, idle=20)
    total = time.perf_counter() - t1
    reporter.cancel()
    envelopes = sum(c.counters.sent_envelopes for c in fleet.clients())
    received = sum(c.counters.received for c in fleet.clients())
    await fleet.close()
    return {
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
        "missing_deliveries": sum(len(v) for v in missing.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--per-user", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-proxy", action="store_true",
                        help="clients talk to the relay directly")
    parser.add_argument("--compare-proxy", action="store_true",
                        help="also run without the proxy layer and print the ratio")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name in ("semafore.server", "uvicorn", "uvicorn.error", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    results = [asyncio.run(run(args.devices, args.messages, args.per_user, args.concurrency,
                               args.seed, not args.no_proxy))]
    if args.compare_proxy and not args.no_proxy:
        results.append(asyncio.run(run(args.devices, args.messages, args.per_user,
                                       args.concurrency, args.seed, False)))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            layer = "via network proxy" if r["network_layer"] else "direct"
            print(f"{r['devices']} devices / {r['messages']} messages ({layer}): set-up "
                  f"{r['setup_s']} s, send+deliver {r['send_and_deliver_s']} s, "
                  f"{r['messages_per_s']} messages/s, {r['envelopes_per_s']} envelopes/s, "
                  f"{r['envelopes_delivered']}/{r['envelopes']} envelopes delivered, "
                  f"{r['missing_deliveries']} missing")
        if len(results) == 2:
            ratio = results[1]["send_and_deliver_s"] / max(results[0]["send_and_deliver_s"], 1e-9)
            print(f"proxy layer costs: direct/proxied time ratio {ratio:.2f}")
    return 0 if all(r["missing_deliveries"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
