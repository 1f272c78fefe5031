"""The capacity report of one run: locust's CSV/HTML plus our summary and chart — the input
capacity planners size an engagement from (seed §3.5), so it must not contradict itself.

One source of truth (issue 16 item 2): the *judged windows* — a plain run's steady state
(from the moment every device was online to the end) or each capacity-search step after its
warm-up — computed once from ``samples.csv`` and the step marks. ``summary.json`` holds them
(``windows``), ``summary.md`` renders its steady-state section, step table and knee line
from those dicts, and ``capacity.png`` plots exactly those points (ramp-up and warm-up
samples are never plotted, and the chart says so); the series actually drawn are read back
from the figure's axes and stored in the PNG (text chunk ``semafore:series``) so a test can
hold the picture to the table. Then per-request-name statistics from locust, what the relay
itself counted (when it ran in this process) and the whole run's errors by kind.
docs/load.md explains how to read each figure.
"""

from __future__ import annotations

import csv
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.samples import (
    envelope_counts,
    read_samples,
    window_stats,
)
from loadtests.search import SearchPlan, StepResult, knee, steady_window, steps_from_marks

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


CHART_SERIES_KEY = "semafore:series"
CHART_CAPTION = (
    "Each point is one judged window: {what}. Ramp-up and warm-up samples are not plotted. "
    "Hollow red markers: windows that did not pass (failed or inconclusive)."
)


def _chart_points(windows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """The series to draw, straight from the judged windows (summary.json ``windows``)."""
    series: dict[str, list[tuple[float, float]]] = {
        "envelopes_per_s": [], "deliveries_per_s": [], "p50_ms": [], "p99_ms": []}
    for w in windows:
        series["envelopes_per_s"].append((w["users"], w["envelopes_per_s"]))
        series["deliveries_per_s"].append((w["users"], w["deliveries_per_s"]))
        for key, q in (("p50_ms", "p50"), ("p99_ms", "p99")):
            if w["latency_ms"][q] is not None:
                series[key].append((w["users"], w["latency_ms"][q]))
    return series


def plot(
    windows: list[dict[str, Any]], path: Path, title: str, threshold_ms: float | None,
    what: str,
) -> dict[str, list[list[float]]]:
    """Draw the judged windows; return (and embed in the PNG) the series the axes hold."""
    import matplotlib  # noqa: PLC0415 (matplotlib: heavy, loaded only when a chart is drawn)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 (matplotlib: heavy, loaded only when a chart is drawn)

    series = _chart_points(windows)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7.6), sharex=True)
    labels = {"envelopes_per_s": "envelopes/s accepted", "deliveries_per_s": "deliveries/s pushed",
              "p50_ms": "p50 send→delivered", "p99_ms": "p99 send→delivered"}
    for key, ax, style in (("envelopes_per_s", ax1, "o-"), ("deliveries_per_s", ax1, "s-"),
                           ("p50_ms", ax2, "o-"), ("p99_ms", ax2, "s-")):
        points = series[key]
        ax.plot([p[0] for p in points], [p[1] for p in points], style, label=labels[key],
                gid=key)
    bad = [w for w in windows if not w["passed"] and w["verdict"] != "measured"]
    if bad:
        ax2.scatter([w["users"] for w in bad],
                    [w["latency_ms"]["p99"] or 0.0 for w in bad], s=120, facecolors="none",
                    edgecolors="red", label="did not pass", zorder=3)
    ax1.set_ylabel("per second")
    ax1.legend(loc="upper left")
    ax1.grid(True, alpha=0.3)
    ax1.set_title(f"{title}\njudged steady-state windows only")
    if threshold_ms is not None:
        ax2.axhline(
            threshold_ms, color="red", linestyle="--", label=f"objective {threshold_ms:g} ms"
        )
    ax2.set_xlabel("online devices (virtual users) in the window")
    ax2.set_ylabel("latency, ms")
    ax2.legend(loc="upper left")
    ax2.grid(True, alpha=0.3)
    fig.text(0.01, 0.01, CHART_CAPTION.format(what=what), fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    drawn = {
        str(line.get_gid()): [[float(x), float(y)]
                              for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True)]
        for ax in (ax1, ax2) for line in ax.get_lines() if line.get_gid() in labels
    }
    fig.savefig(path, dpi=100, metadata={CHART_SERIES_KEY: json.dumps(drawn)})
    plt.close(fig)
    return drawn


def read_chart_series(path: Path) -> dict[str, list[list[float]]]:
    """The series ``capacity.png`` was drawn with (its ``semafore:series`` text chunk)."""
    from PIL import Image  # noqa: PLC0415 (Pillow, matplotlib's image library: only when a chart is read)

    with Image.open(path) as image:
        text = image.info.get(CHART_SERIES_KEY)
    if not isinstance(text, str):
        raise ReportError(f"{path.name}.{CHART_SERIES_KEY}", "missing")
    data: dict[str, list[list[float]]] = json.loads(text)
    return data


def load_average() -> list[str]:
    try:
        return Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return []


def machine() -> dict[str, Any]:
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


@dataclass(frozen=True)
class Marks:
    """``steps.json``: the (wall time, devices) marks the locust master (or single process)
    wrote — every device online (a run) or each step's start (a search, a repeated step
    after a generator was added) — the end of the load and why a search stopped early."""

    points: list[tuple[float, int]]
    end: float
    stopped: str = ""
    workers_added: int = 0


def read_marks(out_dir: Path) -> Marks | None:
    path = out_dir / "steps.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    return Marks([(float(t), int(u)) for t, u in doc["marks"]], float(doc["end"]),
                 str(doc.get("stopped") or ""), int(doc.get("workers_added") or 0))


def judged_windows(
    samples: list[Any], marks: Marks | None, plan: SearchPlan | None,
) -> list[StepResult]:
    if marks is None:
        return []
    points, end = marks.points, marks.end
    if plan is not None:
        return steps_from_marks(plan, samples, points, end)
    window = steady_window(samples, points, end)
    return [window] if window is not None else []


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
    end = max((s.t for s in samples), default=0.0) + 1e-6
    start = min((s.t for s in samples), default=0.0)
    whole = window_stats(samples, start, end, envelopes)
    marks = read_marks(out_dir)
    judged = judged_windows(samples, marks, plan)
    windows = [w.to_dict() for w in judged]
    summary: dict[str, Any] = {
        "run": run,
        "machine": machine(),
        "windows": windows,
        "steady": windows[0] if windows and plan is None else None,
        "whole_run": whole.to_dict(),
        "endpoints": [e.to_dict() for e in endpoints],
        "failures": failures,
        "server": server,
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
        ok, failed = knee(judged)
        summary["search"] = {
            "plan": plan.__dict__,
            "steps": windows,
            "knee": windows[judged.index(ok)] if ok else None,
            "first_failure": windows[judged.index(failed)] if failed else None,
            "exhausted": failed is None and bool(windows) and not (marks and marks.stopped),
            "stopped": marks.stopped if marks else "",
            "workers_added": marks.workers_added if marks else 0,
        }
        what = (f"a search step after its {plan.warmup:g} s warm-up, judged against p99 ≤ "
                f"{plan.p99_threshold_ms:g} ms and ≤ {plan.max_error_rate:.2%} errors")
    else:
        what = "the run from the moment every device was online to its end"
    title = f"{run.get('profile')} on {run.get('target')}"
    summary["chart"] = {"caption": CHART_CAPTION.format(what=what),
                        "series": plot(windows, out_dir / "capacity.png", title,
                                       plan.p99_threshold_ms if plan else None, what)}
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


def _verdict(w: dict[str, Any]) -> str:
    if w["verdict"] in ("pass", "measured"):
        return str(w["verdict"])
    return f"{'FAIL' if w['verdict'] == 'fail' else w['verdict']}: {w['reason']}"


def _generator(w: dict[str, Any]) -> str:
    cpu = w.get("generator_cpu_max_percent")
    if cpu is None:
        return "—"
    return (f"{cpu:.1f} ({w.get('generator_cpu_max_process')}; "
            f"{w.get('generator_processes')} proc, lag {_ms(w.get('generator_loop_lag_max_ms'))})")


STEP_HEADER = ("| devices | envelopes/s | deliveries/s | p50 ms | p99 ms | error rate | "
               "generator CPU % (hottest; processes, loop lag ms) | verdict |")


def step_row(w: dict[str, Any]) -> str:
    """One judged window as a table row (parsed back by the report's consistency test)."""
    return (f"| {w['users']} | {w['envelopes_per_s']} | {w['deliveries_per_s']} | "
            f"{_ms(w['latency_ms']['p50'])} | {_ms(w['latency_ms']['p99'])} | "
            f"{w['error_rate']:.4%} | {_generator(w)} | {_verdict(w)} |")


def render_markdown(summary: dict[str, Any]) -> str:
    run = summary["run"]
    lines = [
        f"# Capacity report: {run.get('profile')} against {run.get('target')}",
        "",
        f"- relay: {run.get('url')} ({run.get('target_kind')}); started {run.get('started_at')}",
        f"- target allowed by: {_allowed_by(run.get('target_allowed_by'))}",
        f"- bounds: {run.get('users')} devices, spawn {run.get('spawn_rate')}/s, "
        f"{run.get('duration')} s, max requests {run.get('max_requests') or '—'}",
        f"- population: {run.get('people')} people, {run.get('devices_provisioned')} devices, "
        f"provisioned and verified on the relay in {run.get('provisioning_s', '?')} s",
        f"- load generator: {_generators(run)}"
        + (f" — **{run['locust_terminated']}**" if run.get("locust_terminated") else ""),
        f"- machine: {summary['machine'].get('cpu', '?')}, {summary['machine'].get('cpus')} CPUs,"
        f" load average {' '.join(run.get('loadavg_at_start', []))} at start, "
        f"{' '.join(summary['machine'].get('loadavg', []))} at report time"
        " (load generator and relay share it)",
        "",
    ]
    steady = summary.get("steady")
    if "search" not in summary:
        lines += ["## Steady state (judged window: every device online, to the end)", ""]
        if steady is None:
            lines += ["No steady state: the run ended before every device was online (raise "
                      "the duration or the spawn rate). Only the whole-run figures below.", ""]
        else:
            lat = steady["latency_ms"]
            lines += [
                "| figure | value |",
                "|---|---|",
                f"| window | {steady['seconds']} s at {steady['users']} devices |",
                f"| envelopes accepted / s | {steady['envelopes_per_s']} |",
                f"| deliveries pushed / s | {steady['deliveries_per_s']} |",
                f"| send→delivered p50 / p95 / p99 (ms) | {_ms(lat['p50'])} / {_ms(lat['p95'])}"
                f" / {_ms(lat['p99'])} |",
                f"| requests / failures | {steady['requests']} / {steady['failures']} "
                f"({steady['error_rate']:.4%}) |",
                f"| load generator CPU, max (% of a core) | {_generator(steady)} |",
                f"| verdict | {_verdict(steady)} |",
                "",
            ]
    lines += ["## Errors by kind (whole run)", ""]
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
                  f"(first {plan['warmup']} s ignored). A step where a generator process "
                  f"exceeded {plan['max_generator_cpu']:g} % of a core or its event loop ran "
                  f"more than {plan['max_generator_lag_ms']:g} ms late is inconclusive "
                  "(generator-bound), never a pass.", "",
                  STEP_HEADER, "|---|---|---|---|---|---|---|---|"]
        lines += [step_row(w) for w in search["steps"]]
        lines += ["", knee_line(search)]
        if search.get("stopped"):
            lines += ["", f"Search stopped: {search['stopped']}"]
    lines += ["", f"Chart (capacity.png): {summary['chart']['caption']}", "",
              "Files: locust_stats.csv, locust_failures.csv, locust_stats_history.csv, "
              "locust.html, samples.csv, steps.json, capacity.png, summary.json.", ""]
    return "\n".join(lines)


def _generators(run: dict[str, Any]) -> str:
    workers = int(run.get("workers") or 0)
    if not workers:
        return "one locust process"
    return (f"locust master + {workers} worker processes"
            + (f" (up to {run['max_workers']})" if run.get("max_workers", workers) != workers
               else ""))


def knee_line(search: dict[str, Any]) -> str:
    k, failed = search["knee"], search["first_failure"]
    if not search["steps"]:
        return "**Knee: unknown** — no step lasted past its warm-up."
    if k is None:
        if failed is not None and failed["verdict"] == "inconclusive":
            return (f"**Knee: unknown** — the first step ({failed['users']} devices) was "
                    f"inconclusive: {failed['reason']}.")
        return "**Knee: below the first step** — even the smallest step failed."
    line = (f"**Knee: {k['users']} devices, {k['envelopes_per_s']} envelopes/s, "
            f"p99 {_ms(k['latency_ms']['p99'])} ms.**")
    if search["exhausted"]:
        return line + " (Search ended at max_users without a failure: the knee is higher.)"
    if failed is not None and failed["verdict"] == "inconclusive":
        return line + (f" The next step ({failed['users']} devices) was inconclusive "
                       f"({failed['reason']}): the knee is at least this, not measured above.")
    return line
