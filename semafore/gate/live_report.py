"""Reports of the live matrix: a rich terminal matrix, JUnit XML, JSON and one HTML page.

Rows are the sender implementation, columns the receiver; a failing cell names the step, the
envelope and the error in every format, so a CI log alone says which pair broke where.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table

from semafore.gate.live import LiveReport
from semafore.gate.verdict import Verdict

_STYLE = {
    Verdict.PASS: "green",
    Verdict.UNSUPPORTED: "magenta",
    Verdict.FAIL: "red",
    Verdict.CRASH: "bold red",
    Verdict.TIMEOUT: "bold red",
    Verdict.PROTOCOL: "bold red",
}
_COLOUR = {"pass": "#1a7f37", "unsupported": "#8250df", "fail": "#cf222e"}


def render_terminal(report: LiveReport, console: Console) -> None:
    names = [impl.name for impl in report.impls]
    matrix = Table(title="SemaFore live interop matrix (rows: sender, columns: receiver)",
                   title_justify="left")
    matrix.add_column("sender \\ receiver")
    for name in names:
        matrix.add_column(name)
    for sender in names:
        row = [sender]
        for receiver in names:
            cell = report.cell(sender, receiver)
            style = _STYLE.get(cell.verdict, "red")
            where = f" @ {cell.step}" if cell.verdict is not Verdict.PASS else ""
            row.append(f"[{style}]{cell.verdict.value}{where}[/]")
        matrix.add_row(*row)
    console.print(matrix)
    failing = [c for c in report.cells if c.verdict is not Verdict.PASS]
    if failing:
        table = Table(title="Failing cells", title_justify="left")
        for column in ("cell", "verdict", "step", "envelope", "error"):
            table.add_column(column, overflow="fold")
        for c in failing:
            table.add_row(c.key, c.verdict.value, c.step or "", c.envelope or "", c.detail)
        console.print(table)
    oracle = report.oracle
    if oracle.get("ran"):
        scanned = sum(oracle.get("bytes_by_tier", {}).values())
        state = "[green]clean[/]" if oracle.get("clean") else f"[red]{len(oracle['hits'])} hits[/]"
        console.print(
            f"plaintext-absence oracle: {state} — {oracle.get('canaries', 0)} canaries over "
            f"{scanned} bytes ({', '.join(f'{k} {v}' for k, v in oracle['bytes_by_tier'].items())})"
        )
    else:
        console.print(f"[yellow]plaintext-absence oracle not run: {oracle.get('reason')}[/]")
    verdict = "[green]PASS[/]" if report.passed else "[red]FAIL[/]"
    console.print(f"live gate: {verdict} ({len(report.cells)} cells)")


def write_json(report: LiveReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


def write_junit(report: LiveReport, path: Path) -> None:
    """One ``testcase`` per cell (``classname = live.<sender>``, ``name = sender->receiver``)
    and one for the oracle; crash/timeout/protocol are ``<error>``, the rest ``<failure>``."""
    suite = ET.Element("testsuite", name="semafore-live-gate")
    failures = errors = 0
    for cell in report.cells:
        case = ET.SubElement(suite, "testcase", classname=f"live.{cell.sender}", name=cell.key,
                             time=f"{cell.duration_s:.3f}")
        if cell.verdict is Verdict.PASS:
            continue
        tag = "error" if cell.verdict in (Verdict.CRASH, Verdict.TIMEOUT, Verdict.PROTOCOL) \
            else "failure"
        failures += tag == "failure"
        errors += tag == "error"
        message = f"{cell.verdict.value} at step {cell.step}: {cell.detail}"
        node = ET.SubElement(case, tag, message=message, type=cell.verdict.value)
        node.text = json.dumps(cell.to_json(), indent=2)
    oracle_case = ET.SubElement(suite, "testcase", classname="live.oracle",
                                name="plaintext-absence")
    if report.oracle.get("ran") is False:
        ET.SubElement(oracle_case, "skipped", message=str(report.oracle.get("reason")))
    elif not report.oracle.get("clean", False):
        failures += 1
        node = ET.SubElement(oracle_case, "failure", message="plaintext found on the relay")
        node.text = json.dumps(report.oracle.get("hits", []), indent=2)
    suite.set("tests", str(len(report.cells) + 1))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    root = ET.Element("testsuites")
    root.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def render_html(report: LiveReport) -> str:
    """A self-contained page (inline CSS, no scripts, no external resources)."""
    names = [impl.name for impl in report.impls]
    esc = html.escape
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    rows = []
    for sender in names:
        cells = []
        for receiver in names:
            c = report.cell(sender, receiver)
            colour = _COLOUR.get(c.verdict.value, "#cf222e")
            text = esc(c.verdict.value)
            if c.verdict is not Verdict.PASS:
                text += f"<br><small>step <b>{esc(c.step or '')}</b></small>"
            cells.append(f'<td style="background:{colour}" title="{esc(c.detail)}">{text}</td>')
        rows.append(f"<tr><th>{esc(sender)}</th>{''.join(cells)}</tr>")
    details = []
    for c in report.cells:
        if c.verdict is Verdict.PASS:
            continue
        details.append(
            f"<tr><td>{esc(c.key)}</td><td>{esc(c.verdict.value)}</td><td>{esc(c.step or '')}"
            f"</td><td><code>{esc(c.envelope or '')}</code></td><td>{esc(c.detail)}</td>"
            f"<td>{esc(', '.join(c.steps_passed))}</td></tr>"
        )
    oracle = report.oracle
    if oracle.get("ran"):
        state = "clean" if oracle.get("clean") else f"{len(oracle.get('hits', []))} hits"
        oracle_html = (
            f"<p>Plaintext-absence oracle: <b>{esc(state)}</b> — {oracle.get('canaries', 0)} "
            f"canaries; bytes scanned: {esc(json.dumps(oracle.get('bytes_by_tier', {})))}</p>"
        )
        if oracle.get("hits"):
            oracle_html += f"<pre>{esc(json.dumps(oracle['hits'], indent=2))}</pre>"
    else:
        oracle_html = f"<p>Plaintext-absence oracle not run: {esc(str(oracle.get('reason')))}</p>"
    impls = "".join(f"<li><b>{esc(i.name)}</b>: <code>{esc(i.command)}</code></li>"
                    for i in report.impls)
    verdict = "PASS" if report.passed else "FAIL"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SemaFore live interop gate: {verdict}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}}
table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #d0d7de;padding:.4em .7em;text-align:left;vertical-align:top}}
.matrix td{{color:#fff;text-align:center;min-width:7em}}
code,pre{{font-size:.9em}}
</style></head><body>
<h1>SemaFore live interop gate: {verdict}</h1>
<p>Relay: <code>{esc(report.relay)}</code>. Rows: sender implementation; columns: receiver.</p>
<ul>{impls}</ul>
<table class="matrix"><tr><th>sender \\ receiver</th>{head}</tr>{''.join(rows)}</table>
<h2>Failing cells</h2>
{'<table><tr><th>cell</th><th>verdict</th><th>step</th><th>envelope</th><th>error</th>'
 '<th>steps passed</th></tr>' + ''.join(details) + '</table>' if details else '<p>None.</p>'}
<h2>Oracle</h2>
{oracle_html}
</body></html>
"""


def write_html(report: LiveReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
