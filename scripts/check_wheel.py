"""The installed-package check (issue #14 item 3): does the wheel work with no checkout?

Builds the wheel from a clean copy of the work tree (tracked and new, unignored files: no stale
``build/`` can leak into it), checks that it ships every pinned vector, schema, catalogue
scenario and load profile byte for byte, installs it into a fresh virtual environment, and runs
a new user's commands from an empty directory with a scrubbed environment: no ``PYTHONPATH``,
no activated venv (its ``bin/`` is not on ``PATH``, so ``--impl ref=semafore-adapter`` must be
found beside the interpreter), no ``SEMAFORE_*`` variables. Each command must exit 0 and print
what shows it really did its job; nothing may be written into the installed package.

Usage: ``python scripts/check_wheel.py [--workdir DIR]``; exit 0 only when every check passed.
Timings of every phase are printed. Run in CI by tests/packaging/test_installed_wheel.py;
documented in docs/packaging.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHIPPED = (
    ("vectors", "semafore/shipped/vectors", ("*.json", "schema/*.json")),
    ("scenarios", "semafore/shipped/scenarios", ("**/*.yaml",)),
    ("loadtests/profiles", "loadtests/profiles", ("*.yaml",)),
)
"""(checkout directory, directory inside the wheel, globs): data the wheel must carry."""

PACKAGES = ("semafore", "simulator", "loadtests")
"""Import packages the installed distribution must provide (from the venv, not a checkout),
each typed: its ``py.typed`` marker ships with it (PEP 561), or a type checker treats the
installed package as untyped."""


@dataclass(frozen=True)
class Command:
    """One command a new user runs, with what its output must contain to count as done."""

    name: str
    argv: tuple[str, ...]
    expect: tuple[str, ...] = ()
    timeout_s: float = 600.0
    stdin: str = ""
    produces: str = ""
    """A glob, relative to the working directory, that must match a file afterwards."""


@dataclass
class Outcome:
    name: str
    seconds: float
    problems: list[str] = field(default_factory=list)


def commands(scenario_count: int, catalogue: Path) -> tuple[Command, ...]:
    """The commands of issue #14 item 3, in the order a new user meets them.

    The whole shipped catalogue runs once, in ``demo`` (the same ``run_paths`` as ``sim
    run``); ``sim validate`` loads every shipped file and ``sim run`` runs one of them from
    the installation, so the check does not pay for the catalogue twice (CI time budget)."""
    return (
        Command("version", ("semafore", "--version"), ("semafore, version",)),
        Command("adapter script", ("semafore-adapter",), ('"ok":true',), 60.0,
                '{"id": 1, "op": "capabilities"}\n'),
        Command("vectors verify", ("semafore", "vectors", "verify"), ("vectors OK",)),
        Command("gate", ("semafore", "gate", "--impl", "ref=semafore-adapter",
                         "--impl", "cli=semafore adapter"), ("gate verdict: PASS",)),
        Command("load profiles", ("semafore", "load", "profiles"), ("office_hours:",)),
        Command("load run", ("semafore", "load", "run", "office_hours", "--target", "embedded",
                             "--users", "5", "--duration", "10"), ("/load-results/office_hours-",),
                produces="load-results/office_hours-*/summary.md"),
        Command("sim validate", ("semafore", "sim", "validate", str(catalogue)),
                ("subpoena.yaml (",)),
        Command("sim run", ("semafore", "sim", "run", "--quiet",
                            str(catalogue / "threats" / "subpoena.yaml")), ("total=1",)),
        Command("demo", ("semafore", "demo"), ("DEMO PASSED", f"total={scenario_count}")),
    )


def source_files(root: Path) -> list[str]:
    """Tracked and new (unignored) files of the work tree, as git lists them."""
    git = shutil.which("git")
    if git is None:
        raise FileNotFoundError("git is needed to list the work tree's files")
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, capture_output=True, check=True, timeout=60,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (root / name).is_file()]


def copy_tree(root: Path, names: Sequence[str], dest: Path) -> None:
    for name in names:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def run(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
        timeout_s: float = 900.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def expected_data(root: Path) -> dict[str, bytes]:
    """Every data file the wheel must ship, by its path inside the wheel."""
    out: dict[str, bytes] = {}
    for checkout, inside, globs in SHIPPED:
        base = root / checkout
        for pattern in globs:
            for path in sorted(base.glob(pattern)):
                if path.is_file():
                    out[f"{inside}/{path.relative_to(base).as_posix()}"] = path.read_bytes()
    return out


def wheel_problems(wheel: Path, expected: dict[str, bytes]) -> list[str]:
    """Data files missing from ``wheel`` or different from the checkout's copy; and an empty
    expectation is itself a problem (the check would prove nothing)."""
    if not expected:
        return ["no shipped data found in the checkout: nothing to compare"]
    problems = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name, data in sorted(expected.items()):
            if name not in names:
                problems.append(f"{wheel.name} lacks {name}")
            elif hashlib.sha256(archive.read(name)).digest() != hashlib.sha256(data).digest():
                problems.append(f"{wheel.name}: {name} differs from the checkout")
        for package in PACKAGES:
            if f"{package}/__init__.py" not in names:
                problems.append(f"{wheel.name} lacks the {package} package")
            if f"{package}/py.typed" not in names:
                problems.append(f"{wheel.name} lacks {package}/py.typed (PEP 561 marker)")
    return problems


def scrubbed_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment of a new user's shell: no venv on PATH, nothing pointing at a checkout."""
    venvs = {str(venv / "bin"), str(Path(sys.prefix) / "bin")}
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p
            and p not in venvs and not Path(p, "activate").is_file()]
    keep = {k: v for k, v in os.environ.items()
            if k in ("LANG", "LC_ALL", "TMPDIR", "TZ", "PIP_FIND_LINKS", "PIP_CERT")}
    return {**keep, "PATH": os.pathsep.join(path), "HOME": str(home), "NO_COLOR": "1"}


def check_command(command: Command, venv: Path, cwd: Path, env: dict[str, str]) -> Outcome:
    argv = (str(venv / "bin" / command.argv[0]), *command.argv[1:])
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, input=command.stdin, capture_output=True,
                              text=True, timeout=command.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return Outcome(command.name, time.perf_counter() - started,
                       [f"did not finish within {command.timeout_s:.0f} s"])
    outcome = Outcome(command.name, time.perf_counter() - started)
    text = done.stdout + done.stderr
    if done.returncode != 0:
        outcome.problems.append(f"exit status {done.returncode}:\n{text[-3000:]}")
    for wanted in command.expect:
        if wanted not in text:
            outcome.problems.append(f"output lacks {wanted!r}:\n{text[-3000:]}")
    if command.produces and not any(cwd.glob(command.produces)):
        outcome.problems.append(f"no {command.produces} in {cwd}")
    return outcome


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages under {venv}")
    return found[0]


def import_problems(venv: Path, cwd: Path, env: dict[str, str]) -> list[str]:
    """Each package imports from the venv's site-packages, not from any checkout."""
    probe = "; ".join(f"import {p}; print({p}.__file__)" for p in PACKAGES)
    done = run([str(venv / "bin" / "python"), "-c", probe], cwd=cwd, env=env, timeout_s=120)
    if done.returncode != 0:
        return [f"import failed: {done.stderr[-2000:]}"]
    base = site_packages(venv).resolve()
    return [f"{line} is not in {base}" for line in done.stdout.split()
            if not Path(line).resolve().is_relative_to(base)]


def installed_files(site: Path) -> set[Path]:
    """Every file under ``site`` but byte-code caches."""
    return {p for p in site.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to build, install and run (default: a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="semafore-wheel-") as scratch:
        work = (args.workdir or Path(scratch)).resolve()
        if work.is_relative_to(ROOT):
            print(f"--workdir {work} is inside the checkout; choose a directory outside it")
            return 2
        return check(work)


def check(work: Path) -> int:
    timings: list[Outcome] = []

    def phase(name: str, started: float, problems: list[str]) -> bool:
        timings.append(Outcome(name, time.perf_counter() - started, problems))
        print(f"{name}: {timings[-1].seconds:.1f} s" + (" FAILED" if problems else ""),
              flush=True)
        for problem in problems:
            print(f"  {problem}")
        return not problems

    src, dist, venv, home, empty = (work / n for n in ("src", "dist", "venv", "home", "empty"))
    for directory in (dist, home, empty):
        directory.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    copy_tree(ROOT, source_files(ROOT), src)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                 str(src)], cwd=work)
    wheels = sorted(dist.glob("semafore_sim-*.whl"))
    if not phase("build wheel", started, [] if built.returncode == 0 and wheels else
                 [f"pip wheel failed ({built.returncode}): {built.stderr[-3000:]}"]):
        return 1
    wheel = wheels[-1]
    started = time.perf_counter()
    expected = expected_data(src)  # the snapshot it was built from: the tree may move on
    if not phase("wheel contents", started, wheel_problems(wheel, expected)):
        return 1

    started = time.perf_counter()
    made = run([sys.executable, "-m", "venv", str(venv)], cwd=work, timeout_s=300)
    installed = made if made.returncode != 0 else run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile",
         "-c", str(ROOT / "constraints.txt"), str(wheel)], cwd=work)
    if not phase("fresh venv + pip install", started, [] if installed.returncode == 0 else
                 [f"exit status {installed.returncode}: {installed.stderr[-3000:]}"]):
        return 1

    env = scrubbed_env(venv, home)
    started = time.perf_counter()
    if not phase("imports come from the venv", started, import_problems(venv, empty, env)):
        return 1
    site = site_packages(venv)
    before = installed_files(site)
    scenario_count = sum(1 for name in expected if re.match(r"semafore/shipped/scenarios/", name))
    ok = True
    for command in commands(scenario_count, site / "semafore" / "shipped" / "scenarios"):
        outcome = check_command(command, venv, empty, env)
        ok &= phase(command.name, time.perf_counter() - outcome.seconds, outcome.problems)
    started = time.perf_counter()
    written = sorted(installed_files(site) - before)
    ok &= phase("nothing written into site-packages", started,
                [f"written into the installation: {p}" for p in written[:20]])
    print("timings: " + ", ".join(f"{t.name} {t.seconds:.1f} s" for t in timings))
    print(f"total: {sum(t.seconds for t in timings):.1f} s")
    print("installed wheel: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
