"""One load run end to end: target → corpus → locust (child processes) → report.

Locust runs in its own process because it monkey-patches the standard library for gevent at
import; the embedded relay (asyncio, in a thread of this process) must not be patched. The
child always gets ``--headless`` (or the web UI bound to 127.0.0.1 with ``--autostart`` and
``--autoquit``) and a run time, so it stops by itself; a watchdog kills it if it does not.

Distributed (issue 16 item 1), with locust's own distribution and nothing home-made:
``workers=N`` starts a locust ``--master`` and N ``--worker`` processes here (each leads its
own process group, which is killed at the end whatever state it is in); ``master=True`` lets
workers on other machines join (``semafore load worker --master-host H --run-dir DIR``,
see :func:`worker_command`); ``max_workers`` lets a capacity search start more workers when
a step is generator-bound. The master merges every worker's samples
(:mod:`loadtests.distribution`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.corpus import build_corpus
from loadtests.profile import Profile
from loadtests.report import build_report, load_average
from loadtests.search import SearchPlan
from loadtests.targets import Target, TargetPolicy, open_target, vet_spec

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
SEARCH_LOCUSTFILE = Path(__file__).resolve().parent / "locustfile_search.py"
STOP_GRACE = 30.0  # seconds past the run time before the watchdog kills locust


class LoadRunError(RuntimeError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


@dataclass
class RunOptions:
    profile: Profile
    target: str
    out_dir: Path
    web: bool = False
    web_port: int = 8089
    seed: str | None = None
    org_id: str | None = None
    search: SearchPlan | None = None
    progress: Callable[[str, int, int], None] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    policy: TargetPolicy = field(default_factory=TargetPolicy)
    """Where load may go and who consented (loadtests/targets.py, issue 16 item 7)."""
    workers: int = 0
    """Local locust worker processes (0: one locust process, no master)."""
    max_workers: int | None = None
    """A search may grow to this many workers when a step is generator-bound (default:
    ``workers``, i.e. no growth)."""
    master: bool = False
    """Accept workers from other machines (``expect_workers`` in all, local ones included)."""
    expect_workers: int | None = None
    master_bind_host: str = "127.0.0.1"
    master_port: int = 0  # 0: a free port
    expect_workers_wait: float = 600.0
    notice: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise LoadRunError("workers", "must be >= 0")
        if self.max_workers is not None and self.max_workers < self.workers:
            raise LoadRunError("max_workers", "must be >= workers")
        with contextlib.suppress(ValueError):  # a host name is fine; a wildcard is not
            if ipaddress.ip_address(self.master_bind_host).is_unspecified:
                raise LoadRunError("master_bind_host", "bind the master to one interface's "
                                   "address, not a wildcard (locust's master port has no auth)")
        if self.master and (self.expect_workers or 0) < max(1, self.workers):
            raise LoadRunError("expect_workers", "a --master needs --expect-workers >= 1 "
                                                 "(and >= --workers)")

    @property
    def distributed(self) -> bool:
        return self.workers > 0 or self.master


def default_out_dir(profile: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("load-results") / f"{profile}-{stamp}"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _locustfile(search: bool) -> Path:
    return SEARCH_LOCUSTFILE if search else LOCUSTFILE


def locustfile_for(run_dir: Path) -> Path:
    """The locustfile a worker of the run in ``run_dir`` loads (the master's own)."""
    return _locustfile((run_dir / "search.json").is_file())


def _locust_command(options: RunOptions, profile: Profile, duration: float) -> list[str]:
    out = options.out_dir
    cmd = [
        sys.executable, "-m", "locust",
        "-f", str(_locustfile(options.search is not None)),
        "-u", str(profile.users),
        "-r", f"{profile.spawn_rate:g}",
        "-t", f"{max(1, round(duration))}s",
        "--stop-timeout", "5",
        "--csv", str(out / "locust"),
        "--csv-full-history",
        "--html", str(out / "locust.html"),
        "--loglevel", "WARNING",
        "--logfile", str(out / "locust.log"),
        "--exit-code-on-error", "0",
    ]
    if options.web:
        cmd += ["--web-host", "127.0.0.1", "--web-port", str(options.web_port), "--autostart",
                "--autoquit", "10"]
    else:
        cmd += ["--headless", "--only-summary"]
    if options.distributed:
        cmd += ["--master", "--master-bind-host", options.master_bind_host,
                "--master-bind-port", str(options.master_port),
                "--expect-workers", str(options.expect_workers or options.workers),
                "--expect-workers-max-wait", f"{options.expect_workers_wait:g}"]
    return cmd


def worker_command(locustfile: Path, master_host: str, master_port: int, log: Path) -> list[str]:
    """One locust worker (locust's own ``--worker``) of the master at ``master_host``."""
    return [sys.executable, "-m", "locust", "-f", str(locustfile), "--worker",
            "--master-host", master_host, "--master-port", str(master_port),
            "--loglevel", "WARNING", "--logfile", str(log)]


def worker_env(run_dir: Path) -> dict[str, str]:
    """The environment a worker needs, read from a run directory (the master's ``--out``, or a
    copy of it on another machine): corpus, profile and, for a search, the plan."""
    corpus = run_dir / "corpus.json"
    profile = run_dir / "profile.json"
    for needed in (corpus, profile):
        if not needed.is_file():
            raise LoadRunError("run_dir", f"{needed} missing (copy the master's run directory)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["SEMAFORE_LOAD_CORPUS"] = str(corpus.resolve())
    env["SEMAFORE_LOAD_PROFILE"] = profile.read_text(encoding="utf-8")
    search = run_dir / "search.json"
    if search.is_file():
        env["SEMAFORE_LOAD_SEARCH"] = search.read_text(encoding="utf-8")
    for key in ("SEMAFORE_LOAD_SAMPLES", "SEMAFORE_LOAD_STEPS"):
        env.pop(key, None)  # a worker writes nothing: its samples go to the master
    return env


def _env(options: RunOptions, profile: Profile, corpus: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["SEMAFORE_LOAD_CORPUS"] = str(corpus.resolve())
    env["SEMAFORE_LOAD_PROFILE"] = json.dumps(profile.to_dict())
    env["SEMAFORE_LOAD_SAMPLES"] = str((options.out_dir / "samples.csv").resolve())
    env["SEMAFORE_LOAD_STEPS"] = str((options.out_dir / "steps.json").resolve())
    if profile.max_requests:
        env["SEMAFORE_LOAD_MAX_REQUESTS"] = str(profile.max_requests)
    if options.search:
        env["SEMAFORE_LOAD_SEARCH"] = options.search.to_json()
    env.update(options.extra_env)
    return env


def _stop_group(leader: subprocess.Popen[bytes]) -> None:
    """Kill what is left of a process group this run started (the master's, holding the
    workers a search added, or a local worker's)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # all already gone
        os.killpg(leader.pid, signal.SIGKILL)


TERM_GRACE = 20.0  # seconds locust gets after SIGTERM to write its files


def _terminate(master: subprocess.Popen[bytes], waited: float, out: Path) -> int:
    """The watchdog: locust did not stop by itself. SIGUSR1 first (the locustfile logs every
    greenlet's stack to locust.log: where it hung), SIGUSR2 (it writes samples.csv and
    steps.json: a generator hung in locust's stop never reaches its quitting event), then
    SIGTERM, then the group is killed; the report is still built from what was written, and
    says locust was terminated (``locust-terminated.txt``)."""
    with contextlib.suppress(ProcessLookupError):
        master.send_signal(signal.SIGUSR1)  # the locustfile logs every greenlet's stack
        with contextlib.suppress(subprocess.TimeoutExpired):
            master.wait(timeout=2)
        master.send_signal(signal.SIGUSR2)  # the locustfile writes samples.csv, steps.json
        with contextlib.suppress(subprocess.TimeoutExpired):
            master.wait(timeout=TERM_GRACE)
        master.send_signal(signal.SIGTERM)
    try:
        master.wait(timeout=TERM_GRACE)
    except subprocess.TimeoutExpired:
        _stop_group(master)
        master.wait(timeout=TERM_GRACE)
    (out / "locust-terminated.txt").write_text(
        f"locust did not stop within {waited:.0f} s; sent SIGTERM, then SIGKILL after "
        f"{TERM_GRACE:g} s if needed\n", encoding="utf-8")
    return 1


def run_locust(options: RunOptions, profile: Profile, corpus: Path) -> int:
    duration = options.search.max_seconds + 5 if options.search else profile.duration
    out = options.out_dir
    if options.distributed and not options.master_port:
        options.master_port = _free_port(options.master_bind_host)
    cmd = _locust_command(options, profile, duration)
    env = _env(options, profile, corpus)
    local_master = options.master_bind_host
    workers = [worker_command(_locustfile(options.search is not None), local_master,
                              options.master_port, out / f"locust-worker-{k}.log")
               for k in range(options.workers)]
    if options.distributed:
        limit = options.max_workers if options.max_workers is not None else options.workers
        env["SEMAFORE_LOAD_MAX_WORKERS"] = str(limit)
        env["SEMAFORE_LOAD_WORKER_CMD"] = json.dumps(worker_command(
            _locustfile(options.search is not None), local_master, options.master_port,
            out / "locust-worker-added.log"))
    (out / "locust-command.txt").write_text(
        "\n".join(" ".join(c) for c in [cmd, *workers]) + "\n", encoding="utf-8")
    wait = duration + STOP_GRACE + 30 + (options.expect_workers_wait if options.master else 60)
    with (out / "locust.stdout").open("wb") as log:
        master = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        spawned: list[subprocess.Popen[bytes]] = []
        try:
            spawned += [subprocess.Popen(w, env=env, cwd=str(ROOT), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                       for w in workers]
            if options.master and options.notice:
                options.notice(
                    f"locust master on {options.master_bind_host}:{options.master_port}, "
                    f"waiting up to {options.expect_workers_wait:g} s for "
                    f"{options.expect_workers} workers ({options.workers} local). On each "
                    f"other machine, copy {out} and run: semafore load worker --master-host "
                    f"{options.master_bind_host} --master-port {options.master_port} "
                    f"--run-dir {out}")
            try:
                returncode = master.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                returncode = _terminate(master, wait, out)
            for worker in spawned:
                try:
                    worker.wait(timeout=STOP_GRACE)
                except subprocess.TimeoutExpired:
                    worker.kill()
        finally:  # workers a search added live in the master's group
            for leader in [master, *spawned]:
                _stop_group(leader)
    if returncode not in (0, 1):
        tail = (out / "locust.stdout").read_text(errors="replace")[-2000:]
        raise LoadRunError("locust", f"exit status {returncode}: {tail}")
    if not (out / "samples.csv").is_file():
        tail = (out / "locust.stdout").read_text(errors="replace")[-2000:]
        raise LoadRunError("locust", f"wrote no samples: {tail}")
    return returncode


def run_load(options: RunOptions) -> dict[str, Any]:
    """Run one profile (or a capacity search) and return the report summary."""
    vet_spec(options.target, options.policy)  # refused before a packet is sent
    profile = options.profile
    if options.search:
        profile = profile.with_overrides(users=options.search.max_users,
                                         spawn_rate=options.search.spawn_rate)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    org_id = options.org_id or f"load-{uuid.uuid4().hex[:12]}"
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with open_target(options.target, org_id, options.policy) as target:
        provisioning = time.monotonic()
        corpus = asyncio.run(
            build_corpus(profile, target.url, org_id, options.out_dir, seed=options.seed,
                         progress=options.progress)
        )
        provisioning = time.monotonic() - provisioning
        (options.out_dir / "profile.json").write_text(
            json.dumps(profile.to_dict(), indent=2), encoding="utf-8"
        )
        if options.search:
            (options.out_dir / "search.json").write_text(options.search.to_json(),
                                                         encoding="utf-8")
        loadavg = load_average()
        run_locust(options, profile, corpus)
        server = target.counters.snapshot() if target.counters else None
        run = _run_info(options, profile, target, started)
        run["loadavg_at_start"] = loadavg
        run["provisioning_s"] = round(provisioning, 1)
        terminated = options.out_dir / "locust-terminated.txt"
        if terminated.is_file():
            run["locust_terminated"] = terminated.read_text(encoding="utf-8").strip()
    return build_report(options.out_dir, run, server, options.search)


def _run_info(
    options: RunOptions, profile: Profile, target: Target, started: str
) -> dict[str, Any]:
    corpus_doc = json.loads((options.out_dir / "corpus.json").read_text(encoding="utf-8"))
    return {
        "profile": profile.name,
        "target": options.target,
        "target_kind": target.kind,
        "target_details": target.details,
        "url": target.url,
        "target_allowed_by": target.allowed_by,
        "users": profile.users,
        "spawn_rate": profile.spawn_rate,
        "duration": profile.duration,
        "max_requests": profile.max_requests,
        "started_at": started,
        "seed": corpus_doc["seed"],
        "people": corpus_doc["people"],
        "devices_provisioned": corpus_doc["total_devices"],
        "org_id": target.org_id,
        "workers": options.workers,
        "max_workers": options.max_workers if options.max_workers is not None
        else options.workers,
        "master": options.master,
        "expect_workers": options.expect_workers or options.workers,
    }
