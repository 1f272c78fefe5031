"""``semafore vectors generate|verify`` (SPEC §6)."""

from __future__ import annotations

import json
import sys
import sysconfig
from pathlib import Path

import click
from rich.table import Table

from semafore.cli import output
from semafore.vectors.files import default_vectors_dir
from semafore.vectors.generate import write_vectors
from semafore.vectors.verify import verify_directory


@click.group("vectors")
def command() -> None:
    """Generate and verify the pinned interop vectors (SPEC §6)."""


@command.command("generate")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write into (default: ./vectors if present, else the checkout's "
    "vectors/; required when installed from a wheel).",
)
def generate(out: Path | None) -> None:
    """Derive every vector file from fixed seeds and write it with its JSON Schema.

    Generation re-derives each value from the SPEC formulas with bare primitives and checks
    every declared negative outcome against the reference; any disagreement aborts.
    """
    target = out or default_vectors_dir()
    if out is None and target.resolve().is_relative_to(Path(sysconfig.get_path("purelib"))):
        raise click.UsageError(f"the pinned vectors in {target} are package data of this "
                               "installation: give --out DIR")
    for path in write_vectors(target):
        click.echo(f"wrote {path}")


@command.command("verify")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Directory holding the vector files (default: the pinned vectors shipped here).",
)
@click.option(
    "--no-regenerate",
    is_flag=True,
    help="Skip the byte comparison with a fresh generation (for a platform team's edited copy).",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write a JSON report.")
def verify(directory: Path | None, no_regenerate: bool, json_path: Path | None) -> None:
    """Schema-check, replay through the reference, and compare with a fresh generation.

    Exits 1 on any difference.
    """
    console = output.console(stderr=True)
    with console.status("verifying vectors…") as status:
        report = verify_directory(
            directory or default_vectors_dir(),
            regenerate=not no_regenerate,
            progress=lambda name: status.update(f"verifying {name}…"),
        )
    out = output.console()
    if report.findings:
        table = Table(title="Vector findings", title_justify="left")
        table.add_column("file")
        table.add_column("check")
        table.add_column("detail", overflow="fold")
        for finding in report.findings:
            style = "red" if finding.fatal else "yellow"
            table.add_row(finding.file, f"[{style}]{finding.check}", finding.detail)
        out.print(table)
    verdict = "[bold green]OK" if report.ok else "[bold red]FAILED"
    out.print(
        f"vectors {verdict}[/]: {len(report.files)} files, {report.cases_replayed} cases "
        f"replayed through the reference ({report.duration_s:.1f} s)"
    )
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if not report.ok:
        sys.exit(1)
