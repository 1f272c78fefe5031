"""The capacity report of one run: locust's CSV/HTML plus our summary and plot.

``summary.json`` (machine-readable) and ``summary.md`` (for the planner) give, for the
steady part of the run (after every device is online): sustained envelopes/s accepted by
the relay and deliveries/s pushed to devices, p50/p95/p99 send→delivered latency, request
and failure counts, and error rates by kind; then per-request-name statistics from locust,
what the relay itself counted (when it ran in this process), and for a capacity search each
step with its verdict and the knee. ``capacity.png`` plots throughput and latency against
the number of online devices. docs/load.md explains how to read each figure.
"""

from __future__ import annotations

import csv
import json
import platform
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.samples import (
    DELIVERED,
    ENVELOPES,
    META_TYPES,
    Sample,
    envelope_counts,
    percentile,
    read_samples,
    window_stats,
)
from loadtests.search import SearchPlan, StepResult, knee, steps_from_marks

STATS_CSV = "locust_stats.csv"
FAILURES_CSV = "locust_failures.csv"
HISTORY_CSV = "locust_stats_history.csv"
HTML = "locust.html"


class ReportError(ValueError):
    """A locust CSV is missing or malformed; ``field`` names the file and column."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


@dataclass(frozen=True)
class EndpointStats:
    type: str
    name: str
    requests: int
    failures: int
    median_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    rps: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _number(row: dict[str, str], column: str, where: str) -> float | None:
    if column not in row:
        raise ReportError(f"{where}.{column}", "column missing")
    value = row[column].strip()
    if value in ("", "N/A"):
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise ReportError(f"{where}.{column}", f"not a number: {value!r}") from exc


def read_locust_stats(path: Path) -> list[EndpointStats]:
    """Rows of ``locust_stats.csv`` (the ``Aggregated`` row excluded)."""
    if not path.is_file():
        raise ReportError(path.name, "missing")
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            where = f"{path.name}:{n}"
            if row.get("Name") == "Aggregated":
                continue
            requests = _number(row, "Request Count", where)
            failures = _number(row, "Failure Count", where)
            out.append(
                EndpointStats(
                    type=row.get("Type", ""),
                    name=row.get("Name", ""),
                    requests=int(requests or 0),
                    failures=int(failures or 0),
                    median_ms=_number(row, "50%", where),
                    p95_ms=_number(row, "95%", where),
                    p99_ms=_number(row, "99%", where),
                    rps=_number(row, "Requests/s", where) or 0.0,
                )
            )
    return out


def read_locust_failures(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ReportError(path.name, "missing")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for n, row in enumerate(rows, start=2):
        count = _number(row, "Occurrences", f"{path.name}:{n}")
        out.append(
            {
                "method": row.get("Method", ""),
                "name": row.get("Name", ""),
                "error": row.get("Error", ""),
                "occurrences": int(count or 0),
            }
        )
    return out


def steady_start(samples: list[Sample], users: int) -> float | None:
    """When every virtual device of the run was online (end of the ramp-up)."""
    for s in samples:
        if s.users >= users:
            return s.t
    return None


def per_user_count(samples: list[Sample]) -> list[dict[str, Any]]:
    """Throughput and latency grouped by the number of online devices (the plot's x axis),
    over one-second bins so a ramp and a step search read the same way."""
    if not samples:
        return []
    t0 = samples[0].t
    bins: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        bins[int(s.t - t0)].append(s)
    by_users: dict[int, dict[str, Any]] = {}
    for chunk in bins.values():
        users = max(s.users for s in chunk)
        agg = by_users.setdefault(users, {"seconds": 0, "envelopes": 0, "deliveries": 0,
                                          "latencies": []})
        agg["seconds"] += 1
        agg["envelopes"] += sum(s.bytes for s in chunk if s.type == ENVELOPES)
        agg["deliveries"] += sum(1 for s in chunk if s.name == DELIVERED and s.ok)
        agg["latencies"].extend(s.ms for s in chunk if s.name == DELIVERED and s.ok)
    rows = []
    for users in sorted(by_users):
        agg = by_users[users]
        rows.append(
            {
                "users": users,
                "seconds": agg["seconds"],
                "envelopes_per_s": round(agg["envelopes"] / agg["seconds"], 2),
                "deliveries_per_s": round(agg["deliveries"] / agg["seconds"], 2),
                "p50_ms": percentile(agg["latencies"], 50),
                "p99_ms": percentile(agg["latencies"], 99),
            }
        )
    return rows


def plot(rows: list[dict[str, Any]], path: Path, title: str, threshold_ms: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    users = [r["users"] for r in rows]
    ax1.plot(users, [r["envelopes_per_s"] for r in rows], "o-", label="envelopes/s accepted")
    ax1.plot(users, [r["deliveries_per_s"] for r in rows], "s-", label="deliveries/s pushed")
    ax1.set_ylabel("per second")
    ax1.legend(loc="upper left")
    ax1.grid(True, alpha=0.3)
    ax1.set_title(title)
    for key, style in (("p50_ms", "o-"), ("p99_ms", "s-")):
        points = [(r["users"], r[key]) for r in rows if r[key] is not None]
        if points:
            ax2.plot([p[0] for p in points], [p[1] for p in points], style,
                     label=f"{key[:3]} send→delivered")
    if threshold_ms is not None:
        ax2.axhline(
            threshold_ms, color="red", linestyle="--", label=f"objective {threshold_ms:g} ms"
        )
    ax2.set_xlabel("online devices (virtual users)")
    ax2.set_ylabel("latency, ms")
    ax2.legend(loc="upper left")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def machine() -> dict[str, Any]:
    import os

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_kb"] = int(line.split()[1])
                break
        info["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass
    return info


def build_report(
    out_dir: Path,
    run: dict[str, Any],
    server: dict[str, Any] | None = None,
    plan: SearchPlan | None = None,
) -> dict[str, Any]:
    """Write summary.json, summary.md and capacity.png into ``out_dir``; return the summary."""
    samples = read_samples(out_dir / "samples.csv")
    endpoints = read_locust_stats(out_dir / STATS_CSV)
    failures = read_locust_failures(out_dir / FAILURES_CSV)
    envelopes = envelope_counts(samples)
    real = [s for s in samples if s.type not in META_TYPES]
    end = max((s.t for s in samples), default=0.0) + 1e-6
    start = min((s.t for s in samples), default=0.0)
    users = int(run.get("users", 0))
    steady_from = steady_start(real, users) or start
    whole = window_stats(samples, start, end, envelopes)
    steady = window_stats(samples, steady_from, end, envelopes)
    summary: dict[str, Any] = {
        "run": run,
        "machine": machine(),
        "steady": steady.to_dict(),
        "whole_run": whole.to_dict(),
        "endpoints": [e.to_dict() for e in endpoints],
        "failures": failures,
        "server": server,
        "by_users": per_user_count(samples),
        "files": {
            "locust_stats": STATS_CSV,
            "locust_failures": FAILURES_CSV,
            "locust_history": HISTORY_CSV,
            "locust_html": HTML,
            "samples": "samples.csv",
            "plot": "capacity.png",
        },
    }
    if plan is not None:
        marks_path = out_dir / "steps.json"
        results: list[StepResult] = []
        if marks_path.is_file():
            marks_doc = json.loads(marks_path.read_text(encoding="utf-8"))
            marks = [(float(t), int(u)) for t, u in marks_doc["marks"]]
            results = steps_from_marks(plan, samples, marks, float(marks_doc["end"]))
        ok, failed = knee(results)
        summary["search"] = {
            "plan": plan.__dict__,
            "steps": [r.to_dict() for r in results],
            "knee": ok.to_dict() if ok else None,
            "first_failure": failed.to_dict() if failed else None,
            "exhausted": failed is None,
        }
    title = f"{run.get('profile')} on {run.get('target')}"
    plot(summary["by_users"], out_dir / "capacity.png", title,
         plan.p99_threshold_ms if plan else None)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out_dir / "summary.md").write_text(render_markdown(summary), encoding="utf-8")
    return summary


def _ms(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}"


def _allowed_by(record: dict[str, Any] | None) -> str:
    """The consent line of the report (issue 16 item 7): the rule, and for consent the user,
    machine, time, entry and where it came from (flag or file with its SHA-256)."""
    if not record:
        return "—"
    if record.get("rule") != "consent":
        return str(record.get("rule"))
    files = "; ".join(f"{f['path']} sha256 {f['sha256']}" for f in record.get("files", []))
    return (f"consent of {record.get('user')} on {record.get('host')} at {record.get('at')}: "
            f"{record.get('entry')} via {record.get('via')}" + (f" (files: {files})" if files
                                                                  else ""))


def render_markdown(summary: dict[str, Any]) -> str:
    run, steady = summary["run"], summary["steady"]
    lat = steady["latency_ms"]
    lines = [
        f"# Capacity report: {run.get('profile')} against {run.get('target')}",
        "",
        f"- relay: {run.get('url')} ({run.get('target_kind')}); started {run.get('started_at')}",
        f"- target allowed by: {_allowed_by(run.get('target_allowed_by'))}",
        f"- bounds: {run.get('users')} devices, spawn {run.get('spawn_rate')}/s, "
        f"{run.get('duration')} s, max requests {run.get('max_requests') or '—'}",
        f"- machine: {summary['machine'].get('cpu', '?')}, {summary['machine'].get('cpus')} CPUs,"
        f" load average {' '.join(summary['machine'].get('loadavg', []))} at report time"
        " (load generator and relay share it)",
        "",
        "## Steady state (all devices online)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| window | {steady['seconds']} s at {steady['users']} devices |",
        f"| envelopes accepted / s | {steady['envelopes_per_s']} |",
        f"| deliveries pushed / s | {steady['deliveries_per_s']} |",
        f"| send→delivered p50 / p95 / p99 (ms) | {_ms(lat['p50'])} / {_ms(lat['p95'])} / "
        f"{_ms(lat['p99'])} |",
        f"| requests / failures | {steady['requests']} / {steady['failures']} "
        f"({steady['error_rate']:.4%}) |",
        f"| load generator CPU, max (% of a core) | "
        f"{_ms(steady.get('generator_cpu_max_percent'))} |",
        "",
        "## Errors by kind (whole run)",
        "",
    ]
    errors = summary["whole_run"]["errors"]
    if errors:
        lines += ["| request: error | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(errors.items(), key=lambda kv: -kv[1])]
    else:
        lines.append("None.")
    lines += ["", "## Requests (locust statistics, whole run)", "",
              "| type | name | requests | failures | p50 ms | p95 ms | p99 ms |",
              "|---|---|---|---|---|---|---|"]
    for e in summary["endpoints"]:
        lines.append(
            f"| {e['type']} | {e['name']} | {e['requests']} | {e['failures']} | "
            f"{_ms(e['median_ms'])} | {_ms(e['p95_ms'])} | {_ms(e['p99_ms'])} |"
        )
    server = summary.get("server")
    if server:
        lines += ["", "## What the relay counted", "",
                  f"- envelopes accepted: {server['envelopes_accepted']}; "
                  f"acknowledged: {server['envelopes_acked']}",
                  f"- WebSocket opens: {server['events'].get('websocket_open', 0)}", ""]
        lines += ["| route | requests |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(server["routes"].items())]
    search = summary.get("search")
    if search:
        plan = search["plan"]
        lines += ["", "## Capacity search", "",
                  f"Objective: p99 send→delivered ≤ {plan['p99_threshold_ms']} ms and "
                  f"≤ {plan['max_error_rate']:.2%} failed requests; steps of "
                  f"{plan['step_users']} devices, {plan['step_duration']} s each "
                  f"(first {plan['warmup']} s ignored).", "",
                  "| devices | envelopes/s | deliveries/s | p99 ms | error rate | generator CPU % "
                  "| verdict |",
                  "|---|---|---|---|---|---|---|"]
        for s in search["steps"]:
            lines.append(
                f"| {s['users']} | {s['envelopes_per_s']} | {s['deliveries_per_s']} | "
                f"{_ms(s['latency_ms']['p99'])} | {s['error_rate']:.4%} | "
                f"{_ms(s.get('generator_cpu_max_percent'))} | "
                f"{'pass' if s['passed'] else 'FAIL: ' + s['reason']} |"
            )
        k = search["knee"]
        lines.append("")
        if k is None:
            lines.append("**Knee: below the first step** — even the smallest step failed.")
        else:
            lines.append(
                f"**Knee: {k['users']} devices, {k['envelopes_per_s']} envelopes/s, "
                f"p99 {_ms(k['latency_ms']['p99'])} ms.**"
                + (" (Search ended at max_users without a failure: the knee is higher.)"
                   if search["exhausted"] else "")
            )
    lines += ["", "Files: locust_stats.csv, locust_failures.csv, locust_stats_history.csv, "
              "locust.html, samples.csv, capacity.png, summary.json.", ""]
    return "\n".join(lines)
