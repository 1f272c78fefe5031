"""Gate reports: a rich terminal summary, JUnit XML for CI systems, and a JSON summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table

from semafore.gate.runner import GateReport
from semafore.gate.verdict import Verdict

_STYLE = {
    Verdict.PASS: "green",
    Verdict.XFAIL: "yellow",
    Verdict.XPASS: "cyan",
    Verdict.UNSUPPORTED: "magenta",
    Verdict.FAIL: "red",
    Verdict.CRASH: "bold red",
    Verdict.TIMEOUT: "bold red",
    Verdict.PROTOCOL: "bold red",
}
MAX_ROWS = 40


def render_terminal(report: GateReport, console: Console) -> None:
    summary = Table(title="SemaFore interop gate", title_justify="left")
    summary.add_column("adapter")
    summary.add_column("implementation")
    summary.add_column("cases", justify="right")
    summary.add_column("verdicts")
    summary.add_column("starts", justify="right")
    for impl in report.impls:
        caps = impl.capabilities or {}
        counts = impl.counts()
        verdicts = ", ".join(
            f"[{_STYLE[v]}]{counts[v.value]} {v.value}[/]" for v in Verdict if counts[v.value]
        )
        summary.add_row(
            impl.name,
            f"{caps.get('name', '?')} {caps.get('version', '')}".strip()
            if impl.capabilities
            else f"[red]no capabilities: {impl.capabilities_error}",
            str(len(impl.results)),
            verdicts or "-",
            str(impl.starts),
        )
    console.print(summary)

    problems = [r for impl in report.impls for r in impl.results if r.verdict is not Verdict.PASS]
    if problems:
        table = Table(title="Cases that did not pass", title_justify="left", show_lines=False)
        table.add_column("adapter")
        table.add_column("case")
        table.add_column("verdict")
        table.add_column("detail", overflow="fold")
        for result in problems[:MAX_ROWS]:
            table.add_row(
                result.impl,
                result.case_id,
                f"[{_STYLE[result.verdict]}]{result.verdict.value}",
                result.detail,
            )
        console.print(table)
        if len(problems) > MAX_ROWS:
            console.print(f"… and {len(problems) - MAX_ROWS} more (see --json / --junit)")
    for entry in report.expired:
        console.print(
            f"[bold red]expired expected-failure entry[/] impl={entry.impl} case={entry.case} "
            f"owner={entry.owner} expired={entry.expires.isoformat()} ({report.config.source})"
        )
    for entry in report.unused:
        console.print(
            f"[yellow]unused expected-failure entry[/] impl={entry.impl} case={entry.case} "
            f"owner={entry.owner}"
        )
    outcome = "[bold green]PASS" if report.passed else "[bold red]FAIL"
    console.print(f"gate verdict: {outcome}[/] ({report.duration_s:.1f} s)")


def junit_xml(report: GateReport) -> bytes:
    """One ``testsuite`` per adapter, one ``testcase`` per vector case."""
    root = ET.Element("testsuites", name="semafore-interop-gate")
    for impl in report.impls:
        counts = impl.counts()
        suite = ET.SubElement(
            root,
            "testsuite",
            name=impl.name,
            tests=str(len(impl.results)),
            failures=str(counts["fail"] + counts["unsupported"]),
            errors=str(counts["crash"] + counts["timeout"] + counts["protocol"]),
            skipped=str(counts["xfail"]),
            time=f"{sum(r.duration_s for r in impl.results):.3f}",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="command", value=impl.command)
        if impl.capabilities:
            ET.SubElement(
                props, "property", name="capabilities", value=json.dumps(impl.capabilities)
            )
        for result in impl.results:
            file, _, case_id = result.case_id.partition(":")
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{impl.name}.{file}",
                name=case_id,
                time=f"{result.duration_s:.3f}",
            )
            body = result.detail
            if result.expected is not None or result.actual is not None:
                body += "\nexpected: " + json.dumps(result.expected)
                body += "\nactual:   " + json.dumps(result.actual)
            if result.verdict in (Verdict.FAIL, Verdict.UNSUPPORTED):
                ET.SubElement(
                    case, "failure", type=result.verdict.value, message=result.detail
                ).text = body
            elif result.verdict in (Verdict.CRASH, Verdict.TIMEOUT, Verdict.PROTOCOL):
                ET.SubElement(
                    case, "error", type=result.verdict.value, message=result.detail
                ).text = body
            elif result.verdict is Verdict.XFAIL:
                ET.SubElement(case, "skipped", message=f"expected failure: {result.detail}")
            elif result.verdict is Verdict.XPASS:
                ET.SubElement(case, "system-out").text = result.detail
    if report.expired:
        suite = ET.SubElement(root, "testsuite", name="gate-config", tests="1", failures="1")
        case = ET.SubElement(suite, "testcase", classname="gate-config", name="expiry")
        lines = [
            f"{e.impl} {e.case} owner={e.owner} expired={e.expires.isoformat()}"
            for e in report.expired
        ]
        ET.SubElement(case, "failure", type="expired", message="expired entries").text = "\n".join(
            lines
        )
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def write_junit(report: GateReport, path: str | Path) -> None:
    Path(path).write_bytes(junit_xml(report))


def write_json(report: GateReport, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
