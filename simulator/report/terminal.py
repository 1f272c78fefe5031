"""The human report: one rich table row per scenario, then what went wrong and where."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from simulator.report.machine import summary
from simulator.report.model import Outcome, ScenarioResult, Verdict, reason

STYLE = {
    Verdict.PASS: "bold green",
    Verdict.EXPOSED: "bold yellow",
    Verdict.FAIL: "bold red",
    Verdict.ERROR: "bold magenta",
    Verdict.SKIPPED: "dim",
    Verdict.UNSUPPORTED: "bold cyan",
}


def verdict_table(results: Sequence[ScenarioResult]) -> Table:
    table = Table(title="SemaFore scenarios", show_lines=False)
    table.add_column("scenario", overflow="fold")
    table.add_column("verdict")
    table.add_column("assertions", justify="right")
    table.add_column("oracle", justify="right")
    table.add_column("time", justify="right")
    table.add_column("why", overflow="fold")
    for r in results:
        held = sum(a.outcome in (Outcome.HELD, Outcome.EXPOSED) for a in r.assertions)
        table.add_row(
            r.scenario,
            f"[{STYLE[r.verdict]}]{r.verdict.value}[/]",
            f"{held}/{len(r.assertions)}",
            "—" if r.skipped or r.error else (f"[red]{len(r.oracle_hits)} hit(s)[/]"
                                              if r.oracle_hits else "clean"),
            f"{r.duration_s:.1f}s",
            reason(r),
        )
    return table


def render(results: Sequence[ScenarioResult], console: Console) -> None:
    console.print(verdict_table(results))
    for r in results:  # devices of adapters (sim run --impl, simulator.assignment)
        if r.implementations:
            console.print(f"{r.scenario}: " + ", ".join(
                f"{d}={n}" for d, n in sorted(r.implementations.items())),
                markup=False, highlight=False)
    on_relay = [r for r in results if r.relay is not None and r.unsupported is None]
    if on_relay:  # an external relay: what the relay-side views read (simulator.external)
        for source in sorted({k for r in on_relay for k in (*r.scanned, *r.not_scanned)}):
            read = sum(source in r.scanned for r in on_relay)
            why = sorted({r.not_scanned[source] for r in on_relay if source in r.not_scanned})
            console.print(f"relay {on_relay[0].relay}: {source} scanned in {read} of "
                          f"{len(on_relay)} scenario(s)"
                          + (f"; not scanned: {'; '.join(why)}" if why else ""),
                          markup=False, highlight=False)
    for r in results:
        if r.verdict is Verdict.UNSUPPORTED:
            console.print(f"\n[{STYLE[r.verdict]}]unsupported[/] {r.scenario}: {reason(r)}",
                          highlight=False)
        if r.verdict not in (Verdict.FAIL, Verdict.ERROR):
            continue
        console.print(f"\n[{STYLE[r.verdict]}]{r.verdict.value}[/] {r.scenario}")
        for failure in r.step_failures[:10]:
            console.print(f"  {failure.describe()}", markup=False)
        for fault in r.faults:
            if not fault.fired:
                console.print(f"  fault {fault.description} (line {fault.line}) never fired",
                              markup=False)
        for a in r.assertions:
            if a.outcome in (Outcome.VIOLATED, Outcome.ERROR, Outcome.NOT_RUN,
                             Outcome.INCONCLUSIVE):
                console.print(f"  line {a.line} {a.kind}: {a.outcome.value} — {a.summary}")
                for e in a.evidence[:5]:
                    console.print(f"      {e}", markup=False)
        for hit in r.oracle_hits[:10]:
            console.print(f"  oracle: {hit.kind} {hit.label} in {hit.tier} at {hit.location} "
                          f"+{hit.offset} ({hit.encoding})", markup=False)
        if r.error:
            console.print(f"  {r.error}", markup=False)
    counts = summary(results)
    console.print(
        " ".join(f"{name}={n}" for name, n in counts.items() if n or name == "total")
    )
