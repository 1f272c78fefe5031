"""One load run end to end: target → corpus → locust (a child process) → report.

Locust runs in its own process because it monkey-patches the standard library for gevent at
import; the embedded relay (asyncio, in a thread of this process) must not be patched. The
child always gets ``--headless`` (or the web UI bound to 127.0.0.1 with ``--autostart`` and
``--autoquit``) and a run time, so it stops by itself; a watchdog kills it if it does not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.corpus import build_corpus
from loadtests.profile import Profile
from loadtests.report import build_report
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


def default_out_dir(profile: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("load-results") / f"{profile}-{stamp}"


def _locust_command(options: RunOptions, profile: Profile, duration: float) -> list[str]:
    out = options.out_dir
    locustfile = SEARCH_LOCUSTFILE if options.search else LOCUSTFILE
    cmd = [
        sys.executable, "-m", "locust",
        "-f", str(locustfile),
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
    return cmd


def _env(options: RunOptions, profile: Profile, corpus: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["SEMAFORE_LOAD_CORPUS"] = str(corpus.resolve())
    env["SEMAFORE_LOAD_PROFILE"] = json.dumps(profile.to_dict())
    env["SEMAFORE_LOAD_SAMPLES"] = str((options.out_dir / "samples.csv").resolve())
    if profile.max_requests:
        env["SEMAFORE_LOAD_MAX_REQUESTS"] = str(profile.max_requests)
    if options.search:
        env["SEMAFORE_LOAD_SEARCH"] = options.search.to_json()
        env["SEMAFORE_LOAD_STEPS"] = str((options.out_dir / "steps.json").resolve())
    env.update(options.extra_env)
    return env


def run_locust(options: RunOptions, profile: Profile, corpus: Path) -> int:
    duration = options.search.max_seconds + 5 if options.search else profile.duration
    cmd = _locust_command(options, profile, duration)
    (options.out_dir / "locust-command.txt").write_text(" ".join(cmd) + "\n", encoding="utf-8")
    try:
        done = subprocess.run(
            cmd,
            env=_env(options, profile, corpus),
            cwd=str(ROOT),
            timeout=duration + STOP_GRACE + 30,
            stdout=(options.out_dir / "locust.stdout").open("w"),
            stderr=subprocess.STDOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadRunError("locust", f"did not stop within {duration + STOP_GRACE:.0f} s") from exc
    if done.returncode not in (0, 1):
        tail = (options.out_dir / "locust.stdout").read_text(errors="replace")[-2000:]
        raise LoadRunError("locust", f"exit status {done.returncode}: {tail}")
    if not (options.out_dir / "samples.csv").is_file():
        tail = (options.out_dir / "locust.stdout").read_text(errors="replace")[-2000:]
        raise LoadRunError("locust", f"wrote no samples: {tail}")
    return done.returncode


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
        corpus = asyncio.run(
            build_corpus(profile, target.url, org_id, options.out_dir, seed=options.seed,
                         progress=options.progress)
        )
        run_locust(options, profile, corpus)
        server = target.counters.snapshot() if target.counters else None
        run = _run_info(options, profile, target, started)
    (options.out_dir / "profile.json").write_text(
        json.dumps(profile.to_dict(), indent=2), encoding="utf-8"
    )
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
    }
