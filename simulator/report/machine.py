"""Machine-readable reports: JSON (the whole result model) and JUnit XML (one test case per
scenario) for CI systems. Both are written from the same :class:`ScenarioResult` list the
terminal table and HTML report use, so every format tells the same story."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from typing import Any

from simulator.report.model import Outcome, ScenarioResult, Verdict, reason

JSON_FORMAT = "semafore-sim-report/1"


def summary(results: Sequence[ScenarioResult]) -> dict[str, int]:
    counts = Counter(r.verdict.value for r in results)
    return {v.value: counts.get(v.value, 0) for v in Verdict} | {"total": len(results)}


def to_json(results: Sequence[ScenarioResult]) -> str:
    doc: dict[str, Any] = {
        "format": JSON_FORMAT,
        "ok": all(r.verdict.ok for r in results),
        "summary": summary(results),
        "scenarios": [r.to_dict() for r in results],
    }
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def _classname(result: ScenarioResult) -> str:
    if result.path:
        parts = result.path.replace("\\", "/").split("/")
        if len(parts) >= 2:
            return "scenarios." + parts[-2]
    return "scenarios"


def _details(result: ScenarioResult) -> str:
    lines = [f"verdict: {result.verdict.value} — {reason(result)}",
             f"provider={result.provider} seed={result.seed} digest={result.source_digest[:16]}"]
    if result.relay is not None:
        lines.append(f"relay={result.relay}")
        lines += [f"[scanned] {k}: {v}" for k, v in result.scanned.items()]
        lines += [f"[not scanned] {k}: {v}" for k, v in result.not_scanned.items()]
    if result.implementations:
        lines.append("implementations=" + ",".join(
            f"{d}={n}" for d, n in sorted(result.implementations.items())))
    if result.relay is not None:
        lines.append(f"relay={result.relay}")
        lines += [f"[scanned] {k}: {v}" for k, v in result.scanned.items()]
        lines += [f"[not scanned] {k}: {v}" for k, v in result.not_scanned.items()]
    lines += [f"cites: {c}" for c in result.cites]
    for a in result.assertions:
        lines.append(f"[{a.outcome.value}] line {a.line} {a.kind}: {a.summary}")
        lines += [f"    {e}" for e in a.evidence[:20]]
    lines += [f"[step-failed] {f.describe()}" for f in result.step_failures[:50]]
    lines += [f"[fault {'fired' if f.fired else 'NEVER FIRED'}] line {f.line} {f.description}: "
              + (", ".join(f"{k}={v}" for k, v in sorted(f.acted.items()) if v) or "nothing")
              for f in result.faults]
    for hit in result.oracle_hits[:50]:
        lines.append(f"[oracle] {hit.kind} {hit.label} in {hit.tier} at {hit.location} "
                     f"+{hit.offset} ({hit.encoding})")
    if result.error:
        lines.append(result.error)
    return "\n".join(lines)


def to_junit(results: Sequence[ScenarioResult], *, suite: str = "semafore-sim") -> str:
    """JUnit XML: failure for ``fail``, error for ``error``, skipped for ``skipped`` and
    (``type="unsupported"``, counted with them) ``unsupported``; ``pass``
    and ``exposed-as-documented`` pass (the latter says so in its system-out and properties)."""
    counts = summary(results)
    not_run = str(counts["skipped"] + counts["unsupported"])
    root = ET.Element("testsuites", name=suite, tests=str(len(results)),
                      failures=str(counts["fail"]), errors=str(counts["error"]),
                      skipped=not_run)
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                       failures=str(counts["fail"]), errors=str(counts["error"]),
                       skipped=not_run,
                       time=f"{sum(r.duration_s for r in results):.3f}")
    for result in results:
        case = ET.SubElement(ts, "testcase", classname=_classname(result), name=result.scenario,
                             time=f"{result.duration_s:.3f}")
        if result.path:
            case.set("file", result.path)
        props = ET.SubElement(case, "properties")
        for name, value in (("verdict", result.verdict.value), ("provider", result.provider),
                            ("seed", str(result.seed)), ("expect", result.expect.value)):
            ET.SubElement(props, "property", name=name, value=value)
        verdict = result.verdict
        why = reason(result)
        if verdict is Verdict.FAIL:
            bad = [a for a in result.assertions
                   if a.outcome in (Outcome.VIOLATED, Outcome.INCONCLUSIVE, Outcome.NOT_RUN)]
            kind = ("step-failed" if result.step_failures else "oracle-hit"
                    if result.oracle_hits else (bad[0].kind if bad else "fail"))
            ET.SubElement(case, "failure", message=why, type=kind).text = _details(result)
        elif verdict is Verdict.ERROR:
            ET.SubElement(case, "error", message=why, type="error").text = _details(result)
        elif verdict is Verdict.SKIPPED:
            ET.SubElement(case, "skipped", message=why)
        elif verdict is Verdict.UNSUPPORTED:  # not run as written: never a pass (exit 3)
            ET.SubElement(case, "skipped", message=why, type="unsupported")
        ET.SubElement(case, "system-out").text = _details(result)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
