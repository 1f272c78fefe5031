"""Capacity search of the reference relay on each storage backend (docs/capacity.md).

    python -m benchmarks.bench_capacity [--profile office_hours] [--targets embedded,local]
        [--start 25] [--step 25] [--max-users 300] [--step-duration 12] [--warmup 4]
        [--p99-ms 250] [--workers N] [--max-workers M] [--max-generator-cpu 85]
        [--max-generator-lag-ms 100] [--quick] [--json PATH] [--out DIR]

Runs ``semafore load search`` against each target in turn, in the same invocation and on
the same machine, and prints each knee (devices, envelopes/s, p99 send→delivered) and the
ratio of every target's knee to the first target's (``embedded`` by default: the in-memory
relay is the comparison the real backends are measured against). A target that cannot be
started here (e.g. no ``redis-server``) is reported as unavailable, not skipped silently.
Bounded: at most (steps × step duration) per target plus provisioning. ``--quick`` is a
smoke-sized search (tests use it). ``--workers N`` runs locust as a master and N workers
(locust's own distribution); a step where a generator process exceeded ``--max-generator-cpu``
% of a core or its event loop ran ``--max-generator-lag-ms`` late is inconclusive
(generator-bound), never the knee; with ``--max-workers`` the search adds workers there.
Every result records the machine's load average at the start and end of its search.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests.profile import load_profile  # noqa: E402
from loadtests.report import load_average, machine  # noqa: E402
from loadtests.runner import RunOptions, run_load  # noqa: E402
from loadtests.search import SearchPlan  # noqa: E402
from loadtests.targets import TargetUnavailable  # noqa: E402


def search(target: str, args: argparse.Namespace, plan: SearchPlan, out: Path) -> dict[str, Any]:
    profile = load_profile(args.profile)
    started = time.monotonic()
    seen: set[str] = set()

    def progress(step: str, done: int, total: int) -> None:
        if step not in seen or done == total:
            seen.add(step)
            print(f"  [{target} {time.monotonic() - started:6.1f} s] {step}: {done}/{total}",
                  file=sys.stderr, flush=True)

    loadavg_start = load_average()
    try:
        summary = run_load(RunOptions(profile, target, out / target, seed=args.seed, search=plan,
                                      progress=progress, workers=args.workers,
                                      max_workers=args.max_workers))
    except TargetUnavailable as exc:
        return {"target": target, "status": "unavailable", "detail": str(exc)}
    found = summary["search"]
    knee = found["knee"]
    failure = found["first_failure"]
    return {
        "target": target,
        "status": "ok",
        "seconds": round(time.monotonic() - started, 1),
        "details": summary["run"]["target_details"],
        "knee": None if knee is None else {
            "users": knee["users"],
            "envelopes_per_s": knee["envelopes_per_s"],
            "deliveries_per_s": knee["deliveries_per_s"],
            "p99_ms": knee["latency_ms"]["p99"],
        },
        "first_failure": None if failure is None else {
            "users": failure["users"], "verdict": failure["verdict"],
            "reason": failure["reason"],
        },
        "exhausted": found["exhausted"],
        "stopped": found["stopped"],
        "workers": args.workers,
        "workers_added": found["workers_added"],
        "loadavg": {"start": loadavg_start, "end": load_average()},
        "steps": found["steps"],
        "report": str(out / target / "summary.md"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="office_hours")
    parser.add_argument("--targets", default="embedded,local")
    parser.add_argument("--start", type=int, default=25)
    parser.add_argument("--step", type=int, default=25)
    parser.add_argument("--max-users", type=int, default=300)
    parser.add_argument("--step-duration", type=float, default=12.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--p99-ms", type=float, default=250.0)
    parser.add_argument("--max-error-rate", type=float, default=0.001)
    parser.add_argument("--seed", default="bench-capacity")
    parser.add_argument("--workers", type=int, default=0, help="locust workers (0: one process)")
    parser.add_argument("--max-workers", type=int, default=None)
    parser.add_argument("--max-generator-cpu", type=float, default=85.0)
    parser.add_argument("--max-generator-lag-ms", type=float, default=100.0)
    parser.add_argument("--quick", action="store_true", help="smoke-sized search")
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("load-results/bench-capacity"))
    args = parser.parse_args(argv)
    if args.quick:
        args.start, args.step, args.max_users, args.step_duration, args.warmup = 2, 2, 4, 6, 2
    plan = SearchPlan(args.start, args.step, args.max_users, args.step_duration, args.warmup,
                      args.p99_ms, args.max_error_rate, spawn_rate=50.0,
                      max_generator_cpu=args.max_generator_cpu,
                      max_generator_lag_ms=args.max_generator_lag_ms)
    results = [search(t.strip(), args, plan, args.out) for t in args.targets.split(",") if t]
    report = {"profile": args.profile, "plan": plan.__dict__, "machine": machine(),
              "results": results}
    base = next((r for r in results if r.get("knee")), None)
    print(f"capacity search: profile {args.profile}, objective p99 ≤ {args.p99_ms:g} ms, "
          f"errors ≤ {args.max_error_rate:.2%}; machine {report['machine'].get('cpu')} "
          f"×{report['machine'].get('cpus')}, load average {report['machine'].get('loadavg')}")
    print(f"{'target':<10} {'knee devices':>12} {'envelopes/s':>12} {'p99 ms':>8} "
          f"{'vs ' + (base['target'] if base else '-'):>14}  next step")
    for r in results:
        if r["status"] != "ok":
            print(f"{r['target']:<10} unavailable: {r['detail']}")
            continue
        knee = r["knee"]
        if knee is None:
            first = r["first_failure"]
            what = "unknown" if first and first["verdict"] == "inconclusive" else "< first step"
            print(f"{r['target']:<10} {what:>12}  {first['reason'] if first else '-'}"
                  f"  load avg {r['loadavg']['start']} -> {r['loadavg']['end']}")
            continue
        ratio = (knee["envelopes_per_s"] / base["knee"]["envelopes_per_s"]
                 if base and base["knee"]["envelopes_per_s"] else float("nan"))
        nxt = (f"{r['first_failure']['users']}: {r['first_failure']['verdict']}: "
               f"{r['first_failure']['reason']}"
               if r["first_failure"] else "none failed (knee is higher)")
        nxt += f"  load avg {r['loadavg']['start']} -> {r['loadavg']['end']}"
        print(f"{r['target']:<10} {knee['users']:>12} {knee['envelopes_per_s']:>12.1f} "
              f"{knee['p99_ms'] if knee['p99_ms'] is not None else float('nan'):>8.1f} "
              f"{ratio:>13.2f}x  {nxt}")
    if args.json_path:
        args.json_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
