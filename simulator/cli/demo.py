"""``semafore demo``: the README's main job on the embedded default.

Generates the vectors into a temporary directory and checks them byte for byte against the
committed ones (plus schema and reference replay), runs the interop gate against the
reference adapter, then runs the whole scenario catalogue (``scenarios/``) on the embedded
relay, and prints each verdict. Exits non-zero if any part fails. Vectors and catalogue come
from :mod:`semafore.shipped`, so it runs from any directory once the wheel is installed
(issue #14 item 3). It runs the simulator's catalogue, so the simulator contributes it
(``semafore.commands`` entry point, issue 14 item 2).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from semafore import shipped
from semafore.cli import output
from semafore.cli.gate import DEFAULT_CONFIG, execute_gate, reference_impl
from semafore.deploy.settings import ProviderKind
from semafore.gate.config import load_config
from semafore.gate.runner import DEFAULT_MAX_CONSECUTIVE, DEFAULT_TIMEOUT_S
from semafore.vectors.files import VECTOR_FILES, default_vectors_dir
from semafore.vectors.generate import write_vectors
from semafore.vectors.verify import verify_directory
from simulator.cli.sim import run_paths
from simulator.report import render, to_html


@click.command("demo")
@click.option(
    "--vectors",
    "vectors_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Committed vectors to check (default: the pinned vectors this installation ships).",
)
@click.option(
    "--scenarios",
    "scenarios_dir",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Scenario catalogue to run (default: the catalogue this installation ships).",
)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the scenario report (self-contained HTML) here.")
def command(vectors_dir: Path | None, scenarios_dir: Path | None, html_path: Path | None) -> None:
    """Verify the vectors, gate the reference adapter, run the scenario catalogue."""
    console = output.console()
    committed = vectors_dir or default_vectors_dir()
    ok = True

    output.section(console, "1. generate vectors into a temporary directory")
    with tempfile.TemporaryDirectory(prefix="semafore-vectors-") as tmp:
        write_vectors(tmp)
        for name in VECTOR_FILES:
            fresh = (Path(tmp) / f"{name}.json").read_bytes()
            path = committed / f"{name}.json"
            same = path.is_file() and path.read_bytes() == fresh
            ok &= same
            mark = "[green]identical" if same else "[red]DIFFERS"
            console.print(f"{name}.json: {len(fresh)} bytes, {mark}[/] to {path}")

    output.section(console, "2. verify the committed vectors")
    report = verify_directory(committed, regenerate=False)
    for finding in report.findings:
        console.print(f"[red]{finding.file} {finding.check}: {finding.detail}")
    console.print(
        f"schema + reference replay: {report.cases_replayed} cases, "
        + ("[green]OK" if report.ok else "[red]FAILED")
    )
    ok &= report.ok

    output.section(console, "3. interop gate against the reference adapter")
    config = load_config(DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    gate = execute_gate(
        [reference_impl()],
        committed,
        config,
        timeout_s=DEFAULT_TIMEOUT_S,
        max_consecutive=DEFAULT_MAX_CONSECUTIVE,
        console=console,
    )
    ok &= gate.passed

    output.section(console, "4. scenario catalogue on the embedded relay")
    catalogue = scenarios_dir or shipped.scenario_catalogue()
    results = run_paths([catalogue], provider=ProviderKind.EMBEDDED, console=console)
    render(results, console)
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(to_html(results), encoding="utf-8")
        console.print(f"wrote {html_path}")
    ok &= all(result.verdict.ok for result in results)

    output.section(console, "verdict")
    console.print("[bold green]DEMO PASSED" if ok else "[bold red]DEMO FAILED")
    if not ok:
        sys.exit(1)
