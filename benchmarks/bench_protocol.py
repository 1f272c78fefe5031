"""Protocol benchmark: SemaFore vs the primitive floor, ``doubleratchet`` and ``vodozemac``.

One run measures, interleaved (see :mod:`benchmarks.timing`):

* µs per encrypt+decrypt pair of a 256-byte payload, one-way chain (no DH step) and
  ping-pong (every message carries a new ratchet key, so the receiver does a DH ratchet step);
* µs per X3DH initiate + respond (with an OPK);
* µs per whole-session-state serialise + parse;

for this implementation, the primitive floor (:mod:`benchmarks.floor`, composed with both HKDF
flavours; the faster counts), PyPI ``doubleratchet`` configured with SemaFore's primitives and
PyPI ``vodozemac`` (:mod:`benchmarks.competitors`), then prints the issue's ratios against
their targets, each marked PASS or MISS.

    .venv/bin/python benchmarks/bench_protocol.py [--quick] [--json out.json] [--strict]
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmarks import competitors, floor, ours
from benchmarks.timing import CLOCKS, FULL, QUICK, Plan, Step, Timing, measure
from semafore.protocol import x3dh

PAYLOAD_BYTES = 256
ONE_WAY = "one-way"
PING_PONG = "ping-pong"
X3DH = "x3dh"
SERIALISE = "serialise+parse"
CASES = (ONE_WAY, PING_PONG, X3DH, SERIALISE)
SEMAFORE = "semafore"
FLOOR = "floor"
DOUBLERATCHET = "doubleratchet"
VODOZEMAC = "vodozemac"
IMPLEMENTATIONS = (SEMAFORE, FLOOR, DOUBLERATCHET, VODOZEMAC)
CASE_LABELS = {
    ONE_WAY: "one-way pair (256 B)",
    PING_PONG: "ping-pong pair (256 B)",
    X3DH: "X3DH initiate+respond",
    SERIALISE: "session serialise+parse",
}


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: ``value(numerator, denominator) op threshold``."""

    case: str
    name: str
    numerator: str
    denominator: str | None  # None: an absolute µs bound on ``numerator``
    at_most: bool
    threshold: float

    def evaluate(self, figures: dict[str, dict[str, float]]) -> tuple[float | None, str]:
        row = figures.get(self.case, {})
        top = row.get(self.numerator)
        bottom = row.get(self.denominator) if self.denominator else 1.0
        if top is None or bottom is None:
            return None, "n/a"
        value = top / bottom
        passed = value <= self.threshold if self.at_most else value >= self.threshold
        return value, "PASS" if passed else "MISS"


TARGETS = (
    Target(ONE_WAY, "semafore / floor", SEMAFORE, FLOOR, True, 1.5),
    Target(ONE_WAY, "doubleratchet / semafore", DOUBLERATCHET, SEMAFORE, False, 3.0),
    Target(ONE_WAY, "semafore / vodozemac", SEMAFORE, VODOZEMAC, True, 1.5),
    Target(PING_PONG, "semafore / floor", SEMAFORE, FLOOR, True, 1.25),
    Target(PING_PONG, "doubleratchet / semafore", DOUBLERATCHET, SEMAFORE, False, 1.8),
    Target(PING_PONG, "semafore / vodozemac", SEMAFORE, VODOZEMAC, True, 1.2),
    Target(X3DH, "semafore / floor", SEMAFORE, FLOOR, True, 1.2),
    Target(SERIALISE, "semafore µs", SEMAFORE, None, True, 15.0),
)

CONTEXT_RATIOS = (
    (ONE_WAY, FLOOR, VODOZEMAC),
    (PING_PONG, FLOOR, VODOZEMAC),
    (SERIALISE, DOUBLERATCHET, SEMAFORE),
    (SERIALISE, VODOZEMAC, SEMAFORE),
)
"""Not targets: where the floor itself stands against vodozemac (the room the vodozemac
targets leave for protocol overhead), and the state round trip against the others."""


@dataclass
class Report:
    """Everything one run measured; ``figures[case][impl]`` is the best µs per operation."""

    plan: dict[str, float | str]
    environment: dict[str, str]
    timings: dict[str, dict[str, float | int]]
    figures: dict[str, dict[str, float]]
    floor_hkdf: dict[str, str]
    targets: list[dict[str, Any]]
    context: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def misses(self) -> list[str]:
        return [f"{t['case']}: {t['name']}" for t in self.targets if t["status"] != "PASS"]


def _key(case: str, impl: str) -> str:
    return f"{case}/{impl}"


def _checked(step: Step, expected: bytes | None) -> Step:
    """Run ``step`` once up front: a benchmark that computes the wrong thing is worthless."""
    out = step()
    if expected is not None and out != expected:
        raise AssertionError(f"step returned {out!r:.40} instead of the payload")
    return step


def build_steps() -> tuple[dict[str, Step], dict[str, str]]:
    """Every contender's step for every case; plus the reasons for any that cannot run."""
    plaintext = os.urandom(PAYLOAD_BYTES)
    sk = os.urandom(32)
    keys = [os.urandom(32) for _ in range(4)]
    ad = x3dh.associated_data(keys[0], keys[1], keys[2], keys[3], ours.ALICE, ours.BOB)
    steps: dict[str, Step] = {}
    skipped: dict[str, str] = {}

    def add(case: str, impl: str, step: Step, expected: bytes | None) -> None:
        steps[_key(case, impl)] = _checked(step, expected)

    add(ONE_WAY, SEMAFORE, ours.ratchet_oneway(sk, ad, plaintext), plaintext)
    add(PING_PONG, SEMAFORE, ours.ratchet_pingpong(sk, ad, plaintext), plaintext)
    add(X3DH, SEMAFORE, ours.x3dh_step(), None)
    add(SERIALISE, SEMAFORE, ours.ratchet_serialise(sk, ad), None)

    x3dh_inputs = floor.x3dh_inputs()
    for flavour in floor.HKDF_FLAVOURS:
        impl = f"{FLOOR}[{flavour.name}]"
        alice, bob = floor.floor_pair(sk, X25519PrivateKey.generate(), flavour)
        floor.prime(alice, bob, ad, flavour)
        add(ONE_WAY, impl, floor.oneway_step(alice, bob, plaintext, ad, flavour), plaintext)
        alice, bob = floor.floor_pair(sk, X25519PrivateKey.generate(), flavour)
        add(PING_PONG, impl, floor.pingpong_step(alice, bob, plaintext, ad, flavour), plaintext)
        add(X3DH, impl, floor.x3dh_step(x3dh_inputs, flavour), None)

    add(ONE_WAY, DOUBLERATCHET, competitors.doubleratchet_oneway(sk, ad, plaintext), plaintext)
    add(PING_PONG, DOUBLERATCHET, competitors.doubleratchet_pingpong(sk, ad, plaintext), plaintext)
    add(SERIALISE, DOUBLERATCHET, competitors.doubleratchet_serialise(sk, ad), None)
    add(ONE_WAY, VODOZEMAC, competitors.vodozemac_oneway(plaintext), plaintext)
    add(PING_PONG, VODOZEMAC, competitors.vodozemac_pingpong(plaintext), plaintext)
    add(SERIALISE, VODOZEMAC, competitors.vodozemac_serialise(), None)
    return steps, skipped


def summarise(timings: dict[str, Timing], skipped: dict[str, str], plan: Plan) -> Report:
    figures: dict[str, dict[str, float]] = {case: {} for case in CASES}
    floor_hkdf: dict[str, str] = {}
    for key, timing in timings.items():
        case, impl = key.split("/", 1)
        if impl.startswith(f"{FLOOR}["):
            flavour = impl[len(FLOOR) + 1 : -1]
            if FLOOR not in figures[case] or timing.best_us < figures[case][FLOOR]:
                figures[case][FLOOR] = timing.best_us
                floor_hkdf[case] = flavour
        else:
            figures[case][impl] = timing.best_us
    targets = []
    for target in TARGETS:
        value, status = target.evaluate(figures)
        targets.append(
            {
                "case": target.case,
                "name": target.name,
                "value": value,
                "bound": ("≤ " if target.at_most else "≥ ") + f"{target.threshold:g}",
                "status": status,
            }
        )
    context = {
        f"{case}: {top} / {bottom}": figures[case][top] / figures[case][bottom]
        for case, top, bottom in CONTEXT_RATIOS
        if top in figures[case] and bottom in figures[case]
    }
    import cryptography

    environment = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "cryptography": cryptography.__version__,
        "openssl": _openssl_version(),
        "load_average_at_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    return Report(
        plan=asdict(plan),
        environment=environment,
        timings={key: asdict(timing) for key, timing in timings.items()},
        figures=figures,
        floor_hkdf=floor_hkdf,
        targets=targets,
        context=context,
        skipped=skipped,
    )


def _openssl_version() -> str:
    from cryptography.hazmat.backends.openssl.backend import backend

    return str(backend.openssl_version_text())


def run(plan: Plan, progress: Progress | None = None) -> Report:
    """Build, validate and time every step; the library entry point (the smoke test uses it)."""
    steps, skipped = build_steps()
    task = progress.add_task("measuring", total=plan.rounds) if progress else None

    def advance(_: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task)

    timings = measure(steps, plan, on_round=advance)
    for key, timing in timings.items():
        if not math.isfinite(timing.best_us):  # pragma: no cover
            raise AssertionError(f"{key}: non-finite timing")
    return summarise(timings, skipped, plan)


def render(report: Report, console: Console) -> None:
    figures = Table(title="µs per operation (best of rounds; median in brackets)")
    figures.add_column("case")
    for impl in IMPLEMENTATIONS:
        figures.add_column(impl, justify="right")
    for case in CASES:
        cells = []
        for impl in IMPLEMENTATIONS:
            if impl == FLOOR and case in report.floor_hkdf:
                flavour_name = report.floor_hkdf[case]
                timing = report.timings[_key(case, f"{FLOOR}[{flavour_name}]")]
            else:
                timing = report.timings.get(_key(case, impl), {})
            if timing:
                cells.append(f"{timing['best_us']:.1f} ({timing['median_us']:.1f})")
            else:
                cells.append("—")
        figures.add_row(CASE_LABELS[case], *cells)
    console.print(figures)
    floor_note = ", ".join(f"{case}: {name}" for case, name in report.floor_hkdf.items())
    hkdf_rows = []
    for case in (ONE_WAY, PING_PONG, X3DH):
        pair = []
        for flavour in floor.HKDF_FLAVOURS:
            timing = report.timings[_key(case, f"{FLOOR}[{flavour.name}]")]
            pair.append(f"{flavour.name} {timing['best_us']:.1f}")
        hkdf_rows.append(f"{case}: " + " / ".join(pair))
    console.print(f"floor HKDF used (faster of the two): {floor_note}")
    console.print("floor by HKDF flavour (µs): " + "; ".join(hkdf_rows))

    targets = Table(title="Targets (issue 2)")
    for column in ("case", "ratio", "value", "target", "verdict"):
        targets.add_column(column, justify="right" if column in ("value", "target") else "left")
    for target in report.targets:
        value = "—" if target["value"] is None else f"{target['value']:.2f}"
        style = {"PASS": "green", "MISS": "red"}.get(target["status"], "yellow")
        targets.add_row(
            CASE_LABELS[target["case"]],
            target["name"],
            value,
            target["bound"],
            f"[{style}]{target['status']}[/{style}]",
        )
    console.print(targets)
    if report.context:
        console.print(
            "for context (not targets): "
            + "; ".join(f"{name} = {value:.2f}" for name, value in report.context.items())
        )
    for key, reason in report.skipped.items():
        console.print(f"[yellow]not measured[/yellow] {key}: {reason}")
    env = report.environment
    console.print(
        f"Python {env['python']} ({env['machine']}, {env['cpus']} CPUs), "
        f"cryptography {env['cryptography']}, {env['openssl']}; "
        f"{report.plan['rounds']} rounds of ~{float(report.plan['block_seconds']) * 1000:.0f} ms "
        f"blocks, {report.plan['clock']} clock; load average {env['load_average_at_end']}"
    )
    busy = os.getloadavg()[0]
    if busy > (os.cpu_count() or 1) * 0.75:
        console.print(
            f"[yellow]the machine was busy (1-min load {busy:.2f}): ratios near a bound may "
            "flip between runs; rerun when it is quiet[/yellow]"
        )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help="Short run (a few seconds); noisier figures.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the full report as JSON to this file ('-' for stdout).",
)
@click.option(
    "--clock",
    type=click.Choice(sorted(CLOCKS)),
    default="cpu",
    show_default=True,
    help="cpu: process CPU time (robust on a shared machine); wall: timeit's perf_counter.",
)
@click.option("--rounds", type=click.IntRange(min=1), help="Override the number of rounds.")
@click.option("--strict", is_flag=True, help="Exit 1 if any target is missed or not measured.")
def main(quick: bool, json_path: Path | None, clock: str, rounds: int | None, strict: bool) -> None:
    """Time SemaFore's protocol against the primitive floor, doubleratchet and vodozemac."""
    plan = replace(QUICK if quick else FULL, clock=clock)
    if rounds is not None:
        plan = replace(plan, rounds=rounds)
    console = Console(stderr=json_path == Path("-"), width=max(Console().width, 110))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("round {task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        report = run(plan, progress)
    render(report, console)
    if json_path is not None:
        text = json.dumps(asdict(report), indent=2, ensure_ascii=False)
        if json_path == Path("-"):
            click.echo(text)
        else:
            json_path.write_text(text + "\n", encoding="utf-8")
    if strict and report.misses:
        console.print(f"[red]missed: {', '.join(report.misses)}[/red]")
        sys.exit(1)


if __name__ == "__main__":
    main()
