"""A short, bounded run of every profile against the embedded relay (127.0.0.1 only).

Each run is a few seconds with a few devices. It must really exercise what its profile
models — every request name the profile ``expects`` shows up in locust's statistics and the
relay itself counted the matching routes — and leave a complete, parseable report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from loadtests.cli import command as load_command
from loadtests.profile import Profile, load_profile
from loadtests.report import (
    STEP_HEADER,
    read_chart_series,
    read_locust_failures,
    read_locust_stats,
    read_marks,
)
from loadtests.runner import RunOptions, run_load
from loadtests.samples import DELIVERED, ENVELOPES, read_samples
from loadtests.search import SearchPlan
from loadtests.targets import Consent, TargetPolicy, TargetRefused

pytestmark = pytest.mark.slow
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


LOOSE_GUARD = {"max_generator_cpu": 10_000.0, "max_generator_lag_ms": 60_000.0}
"""For tests of the search's mechanics, not of the generator guard: on a loaded CI machine a
starved generator would (rightly) make their steps inconclusive."""


def small(name: str) -> Profile:
    """The bundled profile with test-sized bounds; its traffic shape unchanged."""
    p = load_profile(name).with_overrides(users=5, spawn_rate=5, duration=9)
    if name == "broadcast_burst":
        p = dataclasses.replace(
            p, people=20, broadcast=dataclasses.replace(p.broadcast, recipients=20, interval=2)
        )
    if name == "mixed":
        # Rare actions made likelier, as for office_hours: at 2 in 38 a nine-second run on a
        # loaded machine once showed no attachment at all (a full CI-style run, ~40 tasks).
        p = dataclasses.replace(
            p, people=10, broadcast=dataclasses.replace(p.broadcast, recipients=10, interval=3),
            behaviour=dataclasses.replace(
                p.behaviour, think_time=(0.3, 1.0),
                tasks={"send": 6, "attachment": 2, "fetch_bundle": 2, "replenish": 1, "poll": 1,
                       "reconnect": 1},
            ),
        )
    if name == "attachment_heavy":
        p = dataclasses.replace(
            p,
            attachments=dataclasses.replace(
                p.attachments, pool=3,
                size=dataclasses.replace(p.attachments.size, median=20_000, max=200_000),
            ),
            behaviour=dataclasses.replace(p.behaviour, think_time=(0.5, 1.5)),
        )
    if name == "reconnect_storm":
        p = dataclasses.replace(
            p, reconnect=dataclasses.replace(p.reconnect, outage_every=3.0, outage_length=0.5),
            behaviour=dataclasses.replace(p.behaviour, think_time=(0.3, 0.8)),
        )
    if name == "office_hours":
        # Rare actions made likelier so a nine-second run surely shows each of them.
        p = dataclasses.replace(
            p,
            behaviour=dataclasses.replace(
                p.behaviour, think_time=(0.3, 1.0), tasks={"send": 4, "fetch_bundle": 1, "poll": 1}
            ),
        )
    return p


def assert_report(out: Path, summary: dict[str, Any]) -> None:
    for name in ("locust_stats.csv", "locust_failures.csv", "locust_stats_history.csv",
                 "locust.html", "samples.csv", "capacity.png", "summary.json", "summary.md"):
        assert (out / name).is_file(), name
    assert (out / "capacity.png").read_bytes().startswith(PNG_MAGIC)
    assert "<html" in (out / "locust.html").read_text(errors="replace").lower()
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    read_locust_failures(out / "locust_failures.csv")
    assert read_samples(out / "samples.csv")
    markdown = (out / "summary.md").read_text()
    assert "# Capacity report" in markdown
    run = summary["run"]
    assert run["provisioning_s"] > 0
    assert (f"- population: {run['people']} people, {run['devices_provisioned']} devices, "
            f"provisioned and verified on the relay in {run['provisioning_s']} s") in markdown


def server_side_sends(out: Path) -> list[tuple[str, int]]:
    """Envelopes the devices (not the broadcaster) had accepted, from samples.csv."""
    return [
        (s.name, s.bytes) for s in read_samples(out / "samples.csv")
        if s.type == ENVELOPES and s.name != "POST /v1/broadcasts"
    ]


def names_in(out: Path) -> dict[str, tuple[int, int]]:
    names: dict[str, tuple[int, int]] = {}
    for e in read_locust_stats(out / "locust_stats.csv"):
        names[e.name] = names[f"{e.type} {e.name}"] = (e.requests, e.failures)
    return names


@pytest.mark.parametrize(
    "name",
    ["office_hours", "broadcast_burst", "attachment_heavy", "reconnect_storm",
     "prekey_exhaustion", "mixed"],
)
def test_profile_exercises_its_endpoints_and_reports(name: str, tmp_path: Path) -> None:
    profile = small(name)
    summary = run_load(RunOptions(profile, "embedded", tmp_path, seed=f"test-{name}"))
    assert_report(tmp_path, summary)
    seen = names_in(tmp_path)
    for expected in profile.expects:
        assert expected in seen, f"{name}: no {expected!r} in {sorted(seen)}"
        assert seen[expected][0] > 0, expected
    assert summary["whole_run"]["failures"] == 0, summary["whole_run"]["errors"]
    server = summary["server"]
    assert server is not None
    for expected in profile.expects:
        method = expected.partition(" ")[0]
        if method in ("GET", "PUT", "POST", "DELETE"):
            # The relay counted at least what locust sent on that route (plus provisioning).
            assert server["routes"].get(expected, 0) >= seen[expected][0], expected
    if "WS connect" in profile.expects:
        assert server["events"].get("websocket_open", 0) >= seen["WS connect"][0]
    if profile.broadcast.enabled:
        assert server["broadcasts"] >= seen["POST /v1/broadcasts"][0] > 0
    if profile.behaviour.tasks.get("send"):
        sent_by_devices = sum(
            count for kind, count in server_side_sends(tmp_path)
        )
        assert server["envelopes_accepted"] >= sent_by_devices > 0
    if profile.behaviour.tasks.get("fetch_bundle"):
        assert server["events"].get("bundles_fetched", 0) >= seen["GET /v1/keys/{user_id}"][0]
    if DELIVERED in {n.split(" ", 1)[-1] for n in profile.expects}:
        assert summary["whole_run"]["latency_ms"]["p99"] is not None
        assert server["envelopes_acked"] > 0


def test_one_frame_per_envelope_push_delivers_too(tmp_path: Path) -> None:
    """``behaviour.push_batch: 0`` models a client that takes one frame per envelope; the
    bundled profiles use the SDK's batched push (64)."""
    assert small("office_hours").behaviour.push_batch == 64
    profile = small("office_hours")
    profile = dataclasses.replace(
        profile, behaviour=dataclasses.replace(profile.behaviour, push_batch=0)
    )
    summary = run_load(RunOptions(profile, "embedded", tmp_path, seed="test-single-frames"))
    assert summary["whole_run"]["failures"] == 0, summary["whole_run"]["errors"]
    assert summary["server"]["envelopes_acked"] > 0
    assert summary["whole_run"]["latency_ms"]["p99"] is not None


def test_max_requests_stops_the_run_early(tmp_path: Path) -> None:
    profile = small("office_hours").with_overrides(duration=60, max_requests=40)
    summary = run_load(RunOptions(profile, "embedded", tmp_path))
    samples = read_samples(tmp_path / "samples.csv")
    assert samples[-1].t - samples[0].t < 30
    assert summary["whole_run"]["requests"] >= 1


def test_cli_run_writes_a_json_summary(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        load_command,
        ["run", "prekey_exhaustion", "--target", "embedded", "--users", "3",
         "--duration", "5", "--spawn-rate", "3", "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["run"]["profile"] == "prekey_exhaustion"
    assert summary["run"]["users"] == 3
    assert (out / "summary.md").is_file()


def test_cli_refuses_a_non_loopback_target() -> None:
    result = CliRunner().invoke(load_command, ["run", "office_hours", "--target",
                                      "http://192.0.2.10:8080"])
    assert result.exit_code == 2
    assert "not a loopback address" in result.output
    assert "--allow-target 192.0.2.10:8080" in result.output


def test_cli_refuses_a_wildcard_target_even_with_consent() -> None:
    result = CliRunner().invoke(load_command, ["run", "office_hours", "--target",
                                      "http://0.0.0.0:8080", "--allow-target", "0.0.0.0:8080"])
    assert result.exit_code == 2
    assert "wildcard" in result.output


@contextlib.contextmanager
def relay_on_alias(org_id: str) -> Iterator[str]:
    """The reference relay (memory stores) on the loopback alias 127.0.0.2, as a relay this
    harness did not start would be: the run reaches it only as a URL target."""
    from semafore.deploy.inprocess import serve_in_thread
    from semafore.server.settings import Settings, unlimited_rate_limits
    from semafore.storage.memory import memory_stores

    settings = Settings(test_mode=True, test_orgs=frozenset({org_id}),
                        rate_limits=unlimited_rate_limits(), retention_interval=0)
    with serve_in_thread(settings, memory_stores(), host="127.0.0.2") as running:
        yield running.url


def test_a_consented_run_against_a_loopback_alias_works_and_records_who_allowed_it(
    tmp_path: Path,
) -> None:
    """The default narrowed to 127.0.0.1, 127.0.0.2 stands for a planner's staging relay: with
    consent the run loads it, and the report names the target and who allowed it."""
    org = "load-consent-test"
    profile = small("office_hours").with_overrides(users=3, duration=6)
    with relay_on_alias(org) as url:
        port = url.rsplit(":", 1)[1]
        policy = TargetPolicy(Consent.from_options([f"127.0.0.2:{port}"], user="planner"),
                              implicit=(ipaddress.ip_network("127.0.0.1/32"),))
        with pytest.raises(TargetRefused):
            TargetPolicy(implicit=policy.implicit).vet(url)
        summary = run_load(RunOptions(profile, url, tmp_path, org_id=org, policy=policy,
                                      seed="consent"))
    run = summary["run"]
    assert run["url"] == url and run["target_kind"] == "url"
    allowed = run["target_allowed_by"]
    assert (allowed["rule"], allowed["user"], allowed["entry"]) == (
        "consent", "planner", f"127.0.0.2:{port}")
    assert summary["whole_run"]["requests"] > 0
    assert summary["whole_run"]["failures"] == 0, summary["whole_run"]["errors"]
    md = (tmp_path / "summary.md").read_text()
    assert f"consent of planner on {allowed['host']}" in md
    assert f"127.0.0.2:{port} via --allow-target" in md


def test_capacity_search_steps_up_and_reports_the_knee(tmp_path: Path) -> None:
    profile = small("office_hours")
    plan = SearchPlan(start_users=2, step_users=2, max_users=4, step_duration=7, warmup=2,
                      p99_threshold_ms=60_000, max_error_rate=0.5, spawn_rate=10,
                      **LOOSE_GUARD)
    summary = run_load(RunOptions(profile, "embedded", tmp_path, search=plan))
    search = summary["search"]
    assert [s["users"] for s in search["steps"]] == [2, 4]
    assert search["knee"]["users"] == 4 and search["exhausted"]
    assert "Knee: 4 devices" in (tmp_path / "summary.md").read_text()


def table_rows(markdown: str, header: str) -> list[list[str]]:
    """The cells of the markdown table under ``header``."""
    lines = markdown.splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def assert_chart_and_markdown_agree_with_the_windows(out: Path, summary: dict[str, Any]) -> None:
    """Every figure of summary.md and capacity.png is the judged windows' (summary.json)."""
    windows = json.loads((out / "summary.json").read_text())["windows"]
    assert windows == summary["windows"] and windows
    drawn = read_chart_series(out / "capacity.png")
    assert drawn["envelopes_per_s"] == [[w["users"], w["envelopes_per_s"]] for w in windows]
    assert drawn["deliveries_per_s"] == [[w["users"], w["deliveries_per_s"]] for w in windows]
    for key, q in (("p50_ms", "p50"), ("p99_ms", "p99")):
        assert drawn[key] == [[w["users"], w["latency_ms"][q]] for w in windows
                              if w["latency_ms"][q] is not None]
    markdown = (out / "summary.md").read_text()
    assert "judged window" in summary["chart"]["caption"]
    assert summary["chart"]["caption"] in markdown
    if "search" in summary:
        rows = table_rows(markdown, STEP_HEADER)
        assert len(rows) == len(windows)
        for row, w in zip(rows, windows, strict=True):
            assert int(row[0]) == w["users"]
            assert float(row[1]) == w["envelopes_per_s"]
            assert float(row[2]) == w["deliveries_per_s"]
            for cell, q in ((row[3], "p50"), (row[4], "p99")):
                value = w["latency_ms"][q]
                assert cell == ("—" if value is None else f"{value:.1f}")
            assert row[7].split(":")[0].lower() == w["verdict"]
        knee = summary["search"]["knee"]
        if knee is not None:
            assert knee in windows
            assert (f"Knee: {knee['users']} devices, {knee['envelopes_per_s']} envelopes/s, "
                    f"p99 {knee['latency_ms']['p99']:.1f} ms") in markdown
        assert "## Steady state" not in markdown and summary["steady"] is None
    else:
        steady = summary["steady"]
        assert steady == windows[0] and len(windows) == 1
        cells = dict(row[:2] for row in table_rows(markdown, "| figure | value |"))
        assert cells["window"] == f"{steady['seconds']} s at {steady['users']} devices"
        assert float(cells["envelopes accepted / s"]) == steady["envelopes_per_s"]
        assert float(cells["deliveries pushed / s"]) == steady["deliveries_per_s"]
        lat = cells["send→delivered p50 / p95 / p99 (ms)"].split(" / ")
        for shown, q in zip(lat, ("p50", "p95", "p99"), strict=True):
            assert shown == f"{steady['latency_ms'][q]:.1f}"


def test_report_chart_summary_and_step_table_agree_on_a_real_search(tmp_path: Path) -> None:
    """Issue 16 item 2: one source of truth. A real (short, embedded) search: the chart holds
    exactly the judged step windows (no ramp-up bins), and the step table, the knee line and
    summary.json give the same figures."""
    plan = SearchPlan(start_users=2, step_users=2, max_users=4, step_duration=7, warmup=2,
                      p99_threshold_ms=60_000, max_error_rate=0.5, spawn_rate=10,
                      **LOOSE_GUARD)
    summary = run_load(RunOptions(small("office_hours"), "embedded", tmp_path, search=plan,
                                  seed="honest"))
    assert [w["users"] for w in summary["windows"]] == [2, 4]
    marks = read_marks(tmp_path)
    assert marks is not None
    for window, (step_start, _users) in zip(summary["windows"], marks.points, strict=True):
        assert window["start"] == round(step_start + plan.warmup, 3)  # warm-up left out
    assert_chart_and_markdown_agree_with_the_windows(tmp_path, summary)


def test_report_of_a_plain_run_plots_only_its_steady_state(tmp_path: Path) -> None:
    profile = small("office_hours").with_overrides(users=4, spawn_rate=1, duration=9)
    summary = run_load(RunOptions(profile, "embedded", tmp_path, seed="steady"))
    marks = read_marks(tmp_path)
    assert marks is not None and marks.points[0][1] == 4
    samples = read_samples(tmp_path / "samples.csv")
    # the ramp (one device a second) is in the samples but not in the judged window
    assert any(s.t < summary["steady"]["start"] and s.type == "WS" for s in samples)
    assert summary["steady"]["start"] == round(marks.points[0][0], 3)
    assert_chart_and_markdown_agree_with_the_windows(tmp_path, summary)


def test_a_short_distributed_run_merges_every_workers_samples(tmp_path: Path) -> None:
    """Issue 16 item 1: a locust master and 2 workers (locust's own --master/--worker) against
    the embedded relay; the report is built from every worker's samples."""
    profile = small("office_hours").with_overrides(users=6, spawn_rate=6, duration=10)
    summary = run_load(RunOptions(profile, "embedded", tmp_path, workers=2, seed="two"))
    assert_report(tmp_path, summary)
    command = (tmp_path / "locust-command.txt").read_text().splitlines()
    assert "--master" in command[0].split() and len(command) == 3
    assert all("--worker" in line.split() for line in command[1:])
    samples = read_samples(tmp_path / "samples.csv")
    requests = Counter(s.source for s in samples if s.type == "WS" and s.name == "connect")
    assert set(requests) == {"w0", "w1"}  # both workers' devices, merged on the master
    assert sum(requests.values()) == 6  # six devices, none online twice
    health = {s.source for s in samples if s.type == "GENERATOR"}
    assert health == {"master", "w0", "w1"}
    assert summary["steady"]["generator_processes"] == 3
    # locust's own (master-aggregated) statistics saw what the merged samples hold
    stats = names_in(tmp_path)
    assert stats["WS connect"][0] == 6
    delivered_samples = sum(1 for s in samples if s.name == DELIVERED)
    assert 0 < delivered_samples <= stats[f"WS {DELIVERED}"][0]
    assert summary["whole_run"]["failures"] == 0, summary["whole_run"]["errors"]
    assert summary["run"]["workers"] == 2
    assert "locust master + 2 worker processes" in (tmp_path / "summary.md").read_text()
    assert_chart_and_markdown_agree_with_the_windows(tmp_path, summary)


def test_master_and_a_worker_started_apart_as_on_another_machine(tmp_path: Path) -> None:
    """The documented multi-machine recipe, on loopback: ``run --master --expect-workers 2
    --workers 1`` waits for a second worker that ``semafore load worker --master-host …
    --run-dir …`` starts separately; the report merges both workers' samples."""
    import socket
    import subprocess
    import sys
    import threading
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "run"
    worker: list[subprocess.Popen[bytes]] = []

    def start_worker_when_the_run_directory_is_ready() -> None:
        deadline = time.monotonic() + 300
        while not (out / "profile.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        worker.append(subprocess.Popen(
            [sys.executable, "-m", "semafore.cli.main", "load", "worker", "--master-host",
             "127.0.0.1", "--master-port", str(port), "--run-dir", str(out), "--timeout", "300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    helper = threading.Thread(target=start_worker_when_the_run_directory_is_ready, daemon=True)
    helper.start()
    try:
        result = CliRunner().invoke(
            load_command,
            ["run", "office_hours", "--target", "embedded", "--users", "4", "--spawn-rate", "4",
             "--duration", "8", "--master", "--expect-workers", "2", "--workers", "1",
             "--master-port", str(port), "--out", str(out), "--json"],
        )
    finally:
        helper.join(10)
        for w in worker:
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.kill()
    assert result.exit_code == 0, result.output
    assert worker and worker[0].returncode == 0
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["run"]["master"] and summary["run"]["expect_workers"] == 2
    sources = Counter(s.source for s in read_samples(out / "samples.csv")
                      if s.type == "WS" and s.name == "connect")
    assert set(sources) == {"w0", "w1"} and sum(sources.values()) == 4
    assert (out / "locust-worker.log").is_file()  # the separately started worker's log


def test_a_generator_bound_step_is_never_a_pass(tmp_path: Path) -> None:
    """A forced generator-bound step (a CPU limit no process can stay under): inconclusive,
    no knee, and a single-process search stops saying how to add generators."""
    plan = SearchPlan(start_users=2, step_users=2, max_users=4, step_duration=6, warmup=2,
                      p99_threshold_ms=60_000, max_error_rate=0.5, spawn_rate=10,
                      max_generator_cpu=0.001)
    summary = run_load(RunOptions(small("office_hours"), "embedded", tmp_path, search=plan))
    search = summary["search"]
    assert [s["verdict"] for s in search["steps"]] == ["inconclusive"]
    assert search["steps"][0]["reason"].startswith("generator-bound")
    assert search["knee"] is None and not search["exhausted"]
    assert "--workers" in search["stopped"]
    markdown = (tmp_path / "summary.md").read_text()
    assert "**Knee: unknown**" in markdown and "inconclusive: generator-bound" in markdown


def test_a_generator_bound_search_adds_workers_up_to_its_limit(tmp_path: Path) -> None:
    """With one worker and room for two, the search starts a second locust worker and repeats
    the step; still generator-bound at the limit, it stops and says so — never a pass."""
    plan = SearchPlan(start_users=2, step_users=2, max_users=4, step_duration=6, warmup=2,
                      p99_threshold_ms=60_000, max_error_rate=0.5, spawn_rate=10,
                      max_generator_cpu=0.001)
    summary = run_load(RunOptions(small("office_hours"), "embedded", tmp_path, search=plan,
                                  workers=1, max_workers=2))
    search = summary["search"]
    assert [(s["users"], s["verdict"]) for s in search["steps"]] == [
        (2, "inconclusive"), (2, "inconclusive")]
    assert search["workers_added"] == 1
    assert search["steps"][1]["generator_processes"] == 3  # master + the first + the added
    assert search["knee"] is None
    assert "with 2 workers, the most allowed" in search["stopped"]


def test_broadcasts_further_apart_than_the_relays_keep_alive_succeed(tmp_path: Path) -> None:
    """The bundled broadcast_burst sends every 5 s, the relay's keep-alive is 5 s: a reused
    connection the relay had closed failed every broadcast ("connection closed")."""
    from semafore.server.settings import Settings

    p = small("broadcast_burst").with_overrides(duration=14)
    interval = Settings().keep_alive_timeout + 1
    p = dataclasses.replace(p, broadcast=dataclasses.replace(p.broadcast, interval=interval))
    summary = run_load(RunOptions(p, "embedded", tmp_path, seed="keep-alive"))
    requests, failures = names_in(tmp_path)["POST /v1/broadcasts"]
    assert requests >= 2 and failures == 0, summary["whole_run"]["errors"]


def test_a_broadcast_profile_is_searched_with_its_broadcaster(tmp_path: Path) -> None:
    """The search's locustfile carries the profile's admin broadcaster too (without it a
    broadcast_burst search measured idle sockets)."""
    plan = SearchPlan(start_users=3, step_users=2, max_users=5, step_duration=6, warmup=2,
                      p99_threshold_ms=60_000, max_error_rate=0.5, spawn_rate=10,
                      **LOOSE_GUARD)
    summary = run_load(RunOptions(small("broadcast_burst"), "embedded", tmp_path, search=plan))
    assert names_in(tmp_path)["POST /v1/broadcasts"][0] > 0
    assert summary["server"]["broadcasts"] > 0


def test_capacity_search_stops_at_the_first_failing_step(tmp_path: Path) -> None:
    profile = small("office_hours")
    plan = SearchPlan(start_users=2, step_users=2, max_users=8, step_duration=6, warmup=2,
                      p99_threshold_ms=0.001, spawn_rate=10, **LOOSE_GUARD)
    summary = run_load(RunOptions(profile, "embedded", tmp_path, search=plan))
    search = summary["search"]
    assert search["knee"] is None
    assert search["first_failure"]["users"] == 2
    assert len(search["steps"]) == 1
