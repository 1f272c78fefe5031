"""A single self-contained HTML report a reviewer can attach to a finding: no external CSS,
script, font or image. Per scenario: verdict and why, the assertions, the timeline, what each
adversary held and managed to decrypt, the oracle's hits with their locations, and the
metadata inventory (seed §2.2, §2.5)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from html import escape

from simulator.inventory import AdversaryInventory
from simulator.report.machine import summary
from simulator.report.model import ScenarioResult, Verdict, reason

# the house stylesheet (scenario reports, the sabotage matrix page)
STYLESHEET = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1d1d1f}
h1{font-size:1.6em;margin:0 0 .3em}h2{margin-top:2em;border-bottom:1px solid #ccc}
h3{margin:1.2em 0 .4em;font-size:1.05em}
table{border-collapse:collapse;margin:.4em 0 1em;width:100%}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f7}code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.v{font-weight:600;padding:1px 8px;border-radius:9px;white-space:nowrap}
.v-pass{background:#d8f5dd;color:#0a5d1e}.v-fail{background:#fde0e0;color:#9b1111}
.v-exposed-as-documented{background:#fff1c9;color:#7a5300}.v-error{background:#f1ddf7;color:#6d1a8a}
.v-skipped{background:#eee;color:#555}.v-unsupported{background:#dff3f7;color:#0b5566}
.o-unsupported{color:#0b5566;font-weight:600}
.o-held{color:#0a5d1e}.o-violated,.o-not-run,.o-inconclusive{color:#9b1111;font-weight:600}
.o-exposed{color:#7a5300;font-weight:600}.o-error{color:#6d1a8a;font-weight:600}
.track{position:relative;height:18px;background:#f0f0f3;border-radius:4px;margin:.5em 0}
.tick{position:absolute;top:3px;width:4px;height:12px;background:#4a6ee0;border-radius:2px}
.tick.bad{background:#c62828}.muted{color:#666}details{margin:.3em 0}
summary{cursor:pointer;font-weight:600}
"""


def _v(verdict: Verdict) -> str:
    return f'<span class="v v-{verdict.value}">{escape(verdict.value)}</span>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, raw: bool = False) -> str:
    """Cells are escaped unless ``raw`` (then the caller escaped them)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else escape(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _anchor(result: ScenarioResult, index: int) -> str:
    slug = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in result.scenario)
    return f"s{index}-{slug}"


def _summary(results: Sequence[ScenarioResult]) -> str:
    counts = summary(results)
    line = " · ".join(f"{escape(k)}: {v}" for k, v in counts.items())
    rows = [
        [f'<a href="#{_anchor(r, i)}">{escape(r.scenario)}</a>', _v(r.verdict),
         escape(r.provider), escape(str(r.seed)), f"{r.duration_s:.1f}s", escape(reason(r))]
        for i, r in enumerate(results)
    ]
    return (f'<section id="summary"><h2>Summary</h2><p>{line}</p>'
            + _table(["scenario", "verdict", "provider", "seed", "time", "why"], rows, raw=True)
            + "</section>")


def _assertions(r: ScenarioResult) -> str:
    rows = []
    for a in r.assertions:
        evidence = "<br>".join(escape(e) for e in a.evidence[:30])
        if len(a.evidence) > 30:
            evidence += f"<br><span class=muted>… {len(a.evidence) - 30} more</span>"
        rows.append([str(a.line), escape(a.kind),
                     f'<span class="o-{a.outcome.value}">{escape(a.outcome.value)}</span>',
                     escape(a.summary), f'<span class="mono">{evidence}</span>'])
    failed = "".join(f"<li>{escape(f.describe())}</li>" for f in r.step_failures)
    faults = [[str(f.line), escape(f.description),
               "fired" if f.fired else '<span class="o-error">never fired</span>',
               escape(", ".join(f"{k}={v}" for k, v in sorted(f.acted.items()) if v))]
              for f in r.faults]
    return ('<section class="assertions"><h3>Assertions</h3>'
            + _table(["line", "assertion", "outcome", "summary", "evidence"], rows, raw=True)
            + (f"<h3>Failed steps</h3><ul>{failed}</ul>" if failed else "")
            + (("<h3>Declared faults</h3>"
                + _table(["line", "fault", "fired", "what it did"], faults, raw=True))
               if faults else "")
            + "</section>")


def _timeline(r: ScenarioResult) -> str:
    if not r.timeline:
        return '<section class="timeline"><h3>Timeline</h3><p class=muted>no events</p></section>'
    end = max(e.at_ms for e in r.timeline) or 1.0
    ticks = "".join(
        f'<div class="tick{"" if e.ok else " bad"}" style="left:{100 * e.at_ms / end:.2f}%" '
        f'title="{escape(f"{e.at_ms:.0f} ms {e.kind}: {e.summary}")}"></div>'
        for e in r.timeline
    )
    rows = [[f"{e.at_ms:.0f}", "" if e.step_index is None else str(e.step_index), e.kind,
             e.summary + ("" if e.ok else "  ✗"),
             ", ".join(f"{k}={v}" for k, v in e.details.items())] for e in r.timeline]
    return ('<section class="timeline"><h3>Timeline</h3>'
            f'<div class="track">{ticks}</div>'
            + _table(["ms", "step", "kind", "what", "details"], rows) + "</section>")


def _adversaries(r: ScenarioResult) -> str:
    if not r.adversaries:
        return ('<section class="adversaries"><h3>Adversary views</h3>'
                '<p class=muted>no compromise in this scenario</p></section>')
    parts = ['<section class="adversaries"><h3>Adversary views</h3>']
    for view in r.adversaries:
        sources = _table(["tier", "items", "bytes"],
                         [[s.tier, str(s.items), f"{s.bytes:,}"] for s in view.sources])
        decrypted = ("<p>decrypted nothing</p>" if not view.decrypted else
                     f"<p><b>decrypted {len(view.decrypted)}:</b> <span class=mono>"
                     + ", ".join(escape(d) for d in view.decrypted[:200]) + "</span></p>")
        notes = "".join(f"<li>{escape(n)}</li>" for n in view.notes)
        parts.append(
            f"<details open><summary>{escape(view.name)} — {escape(view.kind)} "
            f"(step {view.step_index})</summary><p>{escape(view.description)}</p>{sources}"
            f"<p>envelopes tried: {view.envelopes_tried}</p>{decrypted}"
            + (f"<ul>{notes}</ul>" if notes else "") + "</details>"
        )
    parts.append("</section>")
    return "".join(parts)


def _oracle(r: ScenarioResult) -> str:
    scanned = ", ".join(f"{escape(t)}: {n:,} bytes" for t, n in sorted(r.oracle_scanned.items()))
    head = ('<section class="oracle"><h3>Plaintext-absence oracle</h3>'
            f'<p>scanned: {scanned or "—"}</p>')
    if not r.oracle_hits:
        return (head + "<p><b>no hit</b>: no canary, no key material, no raw identifier.</p>"
                "</section>")
    rows = [[h.kind, h.label, h.tier, h.location, str(h.offset), h.encoding]
            for h in r.oracle_hits[:500]]
    more = (f"<p class=muted>… {len(r.oracle_hits) - 500} more hits in the JSON report</p>"
            if len(r.oracle_hits) > 500 else "")
    return (head + f"<p><b>{len(r.oracle_hits)} hit(s)</b></p>"
            + _table(["kind", "belongs to", "tier", "location", "offset", "encoding"], rows)
            + more + "</section>")


def _inventory_block(inv: AdversaryInventory) -> str:
    ident_rows = []
    for category in sorted(set(inv.raw) | set(inv.hashed)):
        raw = inv.raw.get(category, [])
        hashed = inv.hashed.get(category, [])
        ident_rows.append([category, ", ".join(raw) or "—", ", ".join(hashed) or "—"])
    idents = (_table(["identifier", "seen raw", "seen only as 8-hex prefix"], ident_rows)
              if ident_rows else "<p>no routing identifier</p>")
    pseudo = " (pseudonymous: h8 prefixes only)" if inv.graph_pseudonymous else ""
    graph = ("<p>communication graph: not visible</p>" if not inv.graph else
             f"<p>communication graph{pseudo}: "
             + ", ".join(f"{escape(a)} ↔ {escape(b)}" for a, b in inv.graph) + "</p>")
    timing = ("<p>timing: no timestamped observation</p>" if not inv.timestamps else
              f"<p>timing: {inv.timestamps} timestamped observations from "
              f"{escape(inv.first_seen or '')} to {escape(inv.last_seen or '')}</p>")
    volume = _table(["tier", "items", "bytes"], [[t, str(n), f"{inv.bytes.get(t, 0):,}"]
                                                 for t, n in sorted(inv.items.items())])
    return (f"<details open><summary>{escape(inv.adversary)} — {escape(inv.kind)}</summary>"
            f"{idents}{graph}{timing}<p>volume:</p>{volume}</details>")


def _inventory(r: ScenarioResult) -> str:
    body = ("".join(_inventory_block(inv) for inv in r.inventory) if r.inventory
            else "<p class=muted>no adversary view to inventory</p>")
    return ('<section class="inventory"><h3>Metadata inventory (seed §2.2, §2.5)</h3>'
            "<p class=muted>What each adversary saw besides content: routing identifiers, the "
            "communication graph, timings and volumes.</p>" + body + "</section>")


def _scenario(r: ScenarioResult, index: int) -> str:
    cites = "".join(f"<li>{escape(c)}</li>" for c in r.cites)
    meta = (f"<p>{_v(r.verdict)} {escape(reason(r))}</p>"
            f"<p class=muted>file <code>{escape(r.path or '—')}</code> · provider "
            f"{escape(r.provider)} · seed {r.seed} · expect {escape(r.expect.value)} · "
            f"sha256 <code>{escape(r.source_digest[:16])}</code> · started {escape(r.started_at)} "
            f"· {r.duration_s:.2f}s</p>"
            + (f"<ul>{cites}</ul>" if cites else ""))
    relay = "" if r.relay is None else (  # an external relay (simulator.external)
        f"<p>relay <code>{escape(r.relay)}</code> · scanned: "
        + (escape("; ".join(f"{k} ({v})" for k, v in r.scanned.items())) or "nothing")
        + " · not scanned: "
        + (escape("; ".join(f"{k} ({v})" for k, v in r.not_scanned.items())) or "nothing")
        + "</p>")
    impls = "" if not r.implementations else (  # devices of an adapter (simulator.assignment)
        "<p>implementations: " + escape(", ".join(
            f"{d} = {n}" for d, n in sorted(r.implementations.items()))) + "</p>")
    stats = impls + (("<p class=muted>" + " · ".join(f"{escape(k)}: {v}"
                                                     for k, v in r.stats.items())
                      + "</p>") if r.stats else "")
    error = f"<pre>{escape(r.error)}</pre>" if r.error else ""
    return (f'<section class="scenario" id="{_anchor(r, index)}"><h2>{escape(r.scenario)}</h2>'
            f"{meta}{relay}{stats}{error}{_assertions(r)}{_timeline(r)}{_adversaries(r)}{_oracle(r)}"
            f"{_inventory(r)}</section>")


def to_html(results: Sequence[ScenarioResult], *, title: str = "SemaFore scenario report") -> str:
    generated = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    ok = all(r.verdict.ok for r in results)
    body = "".join(_scenario(r, i) for i, r in enumerate(results))
    gate = ('<span class="v v-pass">gate: ok</span>' if ok
            else '<span class="v v-fail">gate: failed</span>')
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title>"
        f"<style>{STYLESHEET}</style></head><body><h1>{escape(title)}</h1>"
        f"<p>{gate} <span class=muted>generated {escape(generated)} · verdicts: pass, fail, "
        "exposed-as-documented (a documented non-guarantee of seed §1.2 / §2.5, demonstrated), "
        "error, skipped, unsupported (not run as written against an external relay: never a "
        "pass)</span></p>"
        f"{_summary(results)}{body}</body></html>\n"
    )
