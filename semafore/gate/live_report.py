"""Reports of the live matrix: a rich terminal matrix, JUnit XML, JSON and one HTML page.

Rows are the sender implementation, columns the receiver; a failing cell names the step, the
envelope and the error in every format, so a CI log alone says which pair broke where. Every
format also says which oracle sources (wire, stores, logs) were scanned and which were not,
and why: a wire-only scan must never read as a full one.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from semafore.gate.live import SOURCES, LiveReport, source_of
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
        sources = Table(title="Plaintext-absence oracle: sources", title_justify="left")
        for column in ("source", "scanned", "what", "hits"):
            sources.add_column(column, overflow="fold")
        for name, source in _sources(report):
            if source.get("scanned"):
                what = "\n".join(f"{k}: {v}" for k, v in source["parts"].items())
                what += "".join(f"\n[yellow]not scanned: {k} {v}[/]"
                                for k, v in source.get("not_scanned", {}).items())
                what += "".join(f"\n[yellow]note: {n}[/]" for n in source.get("notes", []))
                what += "".join(f"\n[red]error: {e}[/]" for e in source.get("errors", []))
                hits = source.get("hits", 0)
                sources.add_row(name, "[green]yes[/]", what, f"[red]{hits}[/]" if hits else "0")
            else:
                why = str(oracle.get("not_scanned", {}).get(name, ""))
                why += "".join(f"\n[red]error: {e}[/]" for e in source.get("errors", []))
                sources.add_row(name, "[yellow]NO[/]", why, "-")
        console.print(sources)
        console.print(f"plaintext-absence oracle: {_headline(report)}")
        for error in oracle.get("errors", []):
            console.print(f"[red]oracle error: {error}[/]")
        for hit in oracle.get("hits", []):
            console.print(f"[red]oracle hit: {hit['kind']} {hit['label']} in {hit['tier']} "
                          f"{hit['location']} ({hit['encoding']})[/]")
    else:
        console.print(f"[yellow]plaintext-absence oracle not run: {oracle.get('reason')}[/]")
    verdict = "[green]PASS[/]" if report.passed else "[red]FAIL[/]"
    console.print(f"live gate: {verdict} ({len(report.cells)} cells)")


def _sources(report: LiveReport) -> list[tuple[str, dict[str, Any]]]:
    sources = report.oracle.get("sources", {})
    return [(name, sources[name]) for name in SOURCES if name in sources]


def _headline(report: LiveReport, markup: bool = True) -> str:
    """One line a reviewer cannot misread: the verdict and the scope of the scan."""
    oracle = report.oracle
    hits = len(oracle.get("hits", []))
    state = "clean" if not hits else f"{hits} hits"
    if oracle.get("errors"):
        state += f", {len(oracle['errors'])} errors"
    sources = oracle.get("sources", {})
    scanned = [f"{name} ({', '.join(sources[name]['parts'])})" if name == "stores" else name
               for name in oracle.get("scanned", [])]
    not_scanned = oracle.get("not_scanned", {})
    wire_gaps = sources.get("wire", {}).get("not_scanned", {}) if "wire" in scanned else {}
    if not not_scanned and oracle.get("complete"):
        scope = f"FULL scan ({', '.join(scanned)})"
    elif not not_scanned and wire_gaps:
        scope = f"INCOMPLETE scan ({', '.join(scanned)}): wire missed " + \
            "; ".join(wire_gaps.values())
    else:
        scope = f"PARTIAL scan: {', '.join(scanned) or 'nothing'} only"
        if not_scanned:
            scope += "; NOT scanned: " + "; ".join(f"{k} ({v})" for k, v in not_scanned.items())
    line = f"{state} — {scope} — {oracle.get('canaries', 0)} canaries over " \
           f"{sum(oracle.get('bytes_by_tier', {}).values())} bytes"
    if not markup:
        return line
    colour = "green" if oracle.get("passed") and oracle.get("complete") else \
        "yellow" if oracle.get("passed") else "red"
    return f"[{colour}]{line}[/]"


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
    # one testcase per oracle source, so the CI test view shows an unscanned source as skipped
    oracle = report.oracle
    tests = len(report.cells)
    for name in SOURCES:
        tests += 1
        case = ET.SubElement(suite, "testcase", classname="live.oracle",
                             name=f"plaintext-absence/{name}")
        source = oracle.get("sources", {}).get(name)
        hits = [h for h in oracle.get("hits", []) if _source_of_tier(str(h["tier"])) == name]
        problems = [e for e in oracle.get("errors", []) if e.startswith(f"{name}:")]
        if source is None or not source.get("scanned"):
            why = str(oracle.get("not_scanned", {}).get(name, ""))
            if problems:
                failures += 1
                node = ET.SubElement(case, "failure", message="; ".join(problems))
                node.text = why
            else:
                ET.SubElement(case, "skipped",
                              message=f"{name} not scanned: {why or oracle.get('reason')}")
            continue
        out = ET.SubElement(case, "system-out")
        out.text = json.dumps(source, indent=2)
        if hits or problems:
            failures += 1
            message = f"{len(hits)} plaintext/identifier hits" if hits else ""
            message = "; ".join(filter(None, [message, *problems]))
            node = ET.SubElement(case, "failure", message=message)
            node.text = json.dumps(hits, indent=2)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    root = ET.Element("testsuites")
    root.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _source_of_tier(tier: str) -> str:
    return source_of(tier)


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
        rows_src = []
        for name, source in _sources(report):
            scanned = bool(source.get("scanned"))
            parts = "".join(f"<li>{esc(k)}: {esc(str(v))}</li>"
                            for k, v in dict(source.get("parts", {})).items())
            parts += "".join(f"<li><b>not scanned</b>: {esc(k)} {esc(str(v))}</li>"
                             for k, v in dict(source.get("not_scanned", {})).items())
            parts += "".join(f"<li><i>note</i>: {esc(str(n))}</li>"
                             for n in list(source.get("notes", [])))
            parts += "".join(f'<li style="color:#cf222e">error: {esc(str(e))}</li>'
                             for e in list(source.get("errors", [])))
            colour = "#1a7f37" if scanned else "#9a6700"
            rows_src.append(
                f'<tr><th>{esc(name)}</th><td style="color:{colour}"><b>'
                f'{"yes" if scanned else "NO"}</b></td><td><ul>{parts}</ul></td>'
                f"<td>{esc(str(source.get('hits', 0)))}</td></tr>")
        oracle_html = (
            f"<p>Plaintext-absence oracle: <b>{esc(_headline(report, markup=False))}</b></p>"
            "<table><tr><th>source</th><th>scanned</th><th>what</th><th>hits</th></tr>"
            + "".join(rows_src) + "</table>"
        )
        if oracle.get("errors"):
            oracle_html += "<ul>" + "".join(
                f'<li style="color:#cf222e">{esc(str(e))}</li>' for e in oracle["errors"]
            ) + "</ul>"
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
