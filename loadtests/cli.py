"""``semafore load run|search|profiles``: locust load profiles and capacity reports (docs/load.md).

``run`` drives one profile against a relay with bounded users, duration and request count;
``search`` steps the online device count up until p99 send→delivered latency crosses the
objective or errors pass 0.1 %, and reports the knee. Targets are ``embedded``, ``local``
(both started here, on 127.0.0.1) or the URL of a relay on a loopback address; any other
host is refused unless consented to with ``--allow-target`` / ``--allow-targets``, and the
consent is recorded in the report (docs/load.md, "Where load may go").

The load tests contribute this group to the ``semafore`` command through the
``semafore.commands`` entry point (issue 14 item 2: the library never imports them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadtests.corpus import CorpusError
from loadtests.profile import ProfileError, available_profiles, load_profile
from loadtests.runner import (
    LoadRunError,
    RunOptions,
    default_out_dir,
    locustfile_for,
    run_load,
    worker_command,
    worker_env,
)
from loadtests.search import SearchError, SearchPlan
from loadtests.targets import Consent, TargetPolicy, TargetRefused, TargetUnavailable, vet_spec
from semafore.cli import output
from semafore.deploy.settings import ProviderKind


class LoadSetupError(click.ClickException):
    """A bad profile, option or target: exit status 2, distinct from a failed objective."""

    exit_code = 2


def _progress_bar(console: Console) -> tuple[Progress, Any]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = progress.add_task(step, total=total)
        progress.update(tasks[step], completed=done, total=total)

    return progress, update


def _common(fn: Any) -> Any:
    options = [
        click.argument("profile"),
        click.option("--target", default=ProviderKind.EMBEDDED.value, show_default=True,
                     help="embedded | local | http://HOST:PORT (loopback, or a host named by "
                          "--allow-target)"),
        click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
                     help="report directory (default load-results/PROFILE-TIMESTAMP)"),
        click.option("--seed", default=None, help="seed for the corpus (reproducible traffic)"),
        click.option("--org", "org_id", default=None,
                     help="organisation to create (for a URL target: one the relay allow-lists "
                          "for the test OTP)"),
        click.option("--json", "as_json", is_flag=True, help="print the summary as JSON"),
        click.option("--allow-target", "allow_targets", multiple=True, metavar="HOST[:PORT]",
                     help="consent to load this non-loopback host (repeatable; recorded in "
                          "the report with your user name)"),
        click.option("--workers", type=click.IntRange(0, 64), default=0, show_default=True,
                     help="local locust worker processes under a locust master (0: one "
                          "process)"),
        click.option("--master", "master", is_flag=True,
                     help="also accept locust workers from other machines "
                          "(`semafore load worker --master-host H`)"),
        click.option("--expect-workers", type=click.IntRange(1, 1024), default=None,
                     help="with --master: workers in all, local ones included"),
        click.option("--master-bind-host", default="127.0.0.1", show_default=True,
                     help="with --master: this machine's address the workers reach"),
        click.option("--master-port", type=click.IntRange(0, 65535), default=0,
                     help="locust master port (default: a free one; 5557 is locust's)"),
        click.option("--allow-targets", "allow_files", multiple=True,
                     type=click.Path(path_type=Path, dir_okay=False),
                     help="file of HOST[:PORT] lines (# comments) consented to; its path and "
                          "SHA-256 are recorded in the report"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("load")
def command() -> None:
    """Load profiles for capacity planners (locust) and capacity reports."""


@command.command("profiles")
@click.option("--json", "as_json", is_flag=True)
def profiles_cmd(as_json: bool) -> None:
    """List the bundled profiles and what each models."""
    items = [load_profile(name) for name in available_profiles()]
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in items], indent=2))
        return
    for p in items:
        click.echo(f"{p.name}: {p.models}")


def _policy(target: str, allow_targets: tuple[str, ...], allow_files: tuple[Path, ...]) -> Any:
    """The target rule with the operator's consent; a URL target is vetted here, before any
    work (issue 16 item 7)."""
    policy = TargetPolicy(Consent.from_options(allow_targets, allow_files))
    vet_spec(target, policy)
    return policy


def _distribution(
    workers: int, master: bool, expect_workers: int | None, master_bind_host: str,
    master_port: int, max_workers: int | None = None,
) -> dict[str, Any]:
    """RunOptions fields for locust's own distribution (docs/load.md "Distributed runs")."""
    return {"workers": workers, "master": master,
            "expect_workers": expect_workers if master else None,
            "master_bind_host": master_bind_host, "master_port": master_port,
            "max_workers": max_workers}


def _options(*args: Any, **kwargs: Any) -> Any:
    try:
        return RunOptions(*args, **kwargs)
    except LoadRunError as exc:
        raise LoadSetupError(str(exc)) from exc


def _execute(options: Any, as_json: bool, console: Console) -> dict[str, Any]:
    progress, update = _progress_bar(console)
    options.progress = update
    options.notice = console.print
    try:
        with progress:
            summary = run_load(options)
    except (TargetRefused, TargetUnavailable) as exc:
        raise LoadSetupError(str(exc)) from exc
    except (CorpusError, LoadRunError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        console.print((options.out_dir / "summary.md").read_text(encoding="utf-8"))
        console.print(f"Report: {options.out_dir}")
    return summary


@command.command("run")
@_common
@click.option("--users", type=int, default=None, help="online devices (locust users)")
@click.option("--spawn-rate", type=float, default=None, help="devices started per second")
@click.option("--duration", type=float, default=None, help="seconds, then locust stops")
@click.option("--max-requests", type=int, default=None, help="stop after this many requests")
@click.option("--web", is_flag=True, help="locust's web UI on 127.0.0.1 (autostarts, autoquits)")
@click.option("--web-port", type=int, default=8089, show_default=True)
def run_cmd(
    profile: str,
    target: str,
    out_dir: Path | None,
    seed: str | None,
    org_id: str | None,
    as_json: bool,
    workers: int,
    master: bool,
    expect_workers: int | None,
    master_bind_host: str,
    master_port: int,
    allow_targets: tuple[str, ...],
    allow_files: tuple[Path, ...],
    users: int | None,
    spawn_rate: float | None,
    duration: float | None,
    max_requests: int | None,
    web: bool,
    web_port: int,
) -> None:
    """Run PROFILE (a bundled name or a YAML file) against a relay and write its report."""
    try:
        chosen = load_profile(profile).with_overrides(
            users=users, spawn_rate=spawn_rate, duration=duration, max_requests=max_requests
        )
        policy = _policy(target, allow_targets, allow_files)
    except (ProfileError, TargetRefused) as exc:
        raise LoadSetupError(str(exc)) from exc
    console = output.console(stderr=as_json)
    options = _options(
        # absolute: locust runs in another working directory (loadtests.runner)
        chosen, target, (out_dir or default_out_dir(chosen.name)).absolute(), web=web,
        web_port=web_port,
        seed=seed, org_id=org_id, policy=policy,
        **_distribution(workers, master, expect_workers, master_bind_host, master_port),
    )
    _execute(options, as_json, console)


@command.command("search")
@_common
@click.option("--start", "start_users", type=int, default=10, show_default=True)
@click.option("--step", "step_users", type=int, default=10, show_default=True)
@click.option("--max-users", type=int, default=200, show_default=True)
@click.option("--step-duration", type=float, default=20.0, show_default=True,
              help="seconds per step")
@click.option("--warmup", type=float, default=5.0, show_default=True,
              help="seconds at the start of each step left out of its verdict")
@click.option("--p99-ms", "p99_threshold_ms", type=float, default=250.0, show_default=True,
              help="objective: p99 send→delivered latency")
@click.option("--max-error-rate", type=float, default=0.001, show_default=True,
              help="objective: failed requests / requests")
@click.option("--spawn-rate", type=float, default=50.0, show_default=True)
@click.option("--max-workers", type=click.IntRange(0, 64), default=None,
              help="a generator-bound step starts another local worker, up to this many "
                   "(default: --workers, no growth)")
@click.option("--max-generator-cpu", type=float, default=85.0, show_default=True,
              help="a step where any generator process used more of a core (percent) is "
                   "inconclusive: generator-bound")
def search_cmd(
    profile: str,
    target: str,
    out_dir: Path | None,
    seed: str | None,
    org_id: str | None,
    as_json: bool,
    workers: int,
    master: bool,
    expect_workers: int | None,
    master_bind_host: str,
    master_port: int,
    allow_targets: tuple[str, ...],
    allow_files: tuple[Path, ...],
    max_workers: int | None,
    max_generator_cpu: float,
    start_users: int,
    step_users: int,
    max_users: int,
    step_duration: float,
    warmup: float,
    p99_threshold_ms: float,
    max_error_rate: float,
    spawn_rate: float,
) -> None:
    """Capacity search: step devices up until the objective breaks; report the knee.

    Exit status 0 when a knee was found (or the search reached --max-users within the
    objective), 1 when no step passed (even the first failed, or was generator-bound), 2 for
    setup errors.
    """
    try:
        chosen = load_profile(profile)
        plan = SearchPlan(start_users, step_users, max_users, step_duration, warmup,
                          p99_threshold_ms, max_error_rate, spawn_rate,
                          max_generator_cpu=max_generator_cpu)
        policy = _policy(target, allow_targets, allow_files)
    except (ProfileError, SearchError, TargetRefused) as exc:
        raise LoadSetupError(str(exc)) from exc
    console = output.console(stderr=as_json)
    options = _options(
        chosen, target, (out_dir or default_out_dir(f"search-{chosen.name}")).absolute(),
        seed=seed,
        org_id=org_id, search=plan, policy=policy,
        **_distribution(workers, master, expect_workers, master_bind_host, master_port,
                        max_workers),
    )
    summary = _execute(options, as_json, console)
    if summary["search"]["knee"] is None:
        sys.exit(1)


@command.command("worker")
@click.option("--master-host", required=True, help="address of the locust master")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True)
@click.option("--run-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              required=True,
              help="a copy of the master's run directory (corpus.json, blobs/, profile.json, "
                   "search.json for a search)")
@click.option("--timeout", type=float, default=7200.0, show_default=True,
              help="seconds before this worker is stopped if the master never ends the run")
def worker_cmd(master_host: str, master_port: int, run_dir: Path, timeout: float) -> None:
    """One locust worker (locust's own --worker) for a master on another machine; its samples
    go to the master, which writes the merged report."""
    try:
        env = worker_env(run_dir)
    except LoadRunError as exc:
        raise LoadSetupError(str(exc)) from exc
    cmd = worker_command(locustfile_for(run_dir), master_host, master_port,
                         run_dir / "locust-worker.log")
    try:
        done = subprocess.run(cmd, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise click.ClickException(f"worker: still running after {timeout:g} s") from exc
    sys.exit(done.returncode)
