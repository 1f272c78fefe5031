"""``semafore vectors verify``: schema, replay through the reference, and regeneration.

Three independent checks per file, every disagreement a :class:`Finding`:

1. the file validates against its shipped JSON Schema (and a ``schema/`` copy next to it,
   if present, is identical to the shipped one);
2. every case and negative case, replayed through the reference adapter in-process with the
   same scripts the gate runs, reproduces every expected byte and error;
3. key pairs listed in DR setups are consistent (public = X25519 base-point multiple);
4. a fresh deterministic generation is byte-identical to the file.

``dr-v1-live-result.json`` (SPEC §6), when present, is verified by re-running its seeded
multi-device run (:func:`semafore.vectors.live.verify`) as part of the full check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle
from semafore.gate.cases import VectorFormatError, cases_for
from semafore.gate.runner import run_case
from semafore.gate.transport import InProcessTransport
from semafore.gate.verdict import Verdict
from semafore.protocol.primitives import x25519_public
from semafore.vectors import live
from semafore.vectors.files import (
    LIVE_RESULT_FILE,
    VECTOR_FILES,
    dump_vectors,
    schema_text,
    validator,
)
from semafore.vectors.generate import generate_documents


@dataclass(frozen=True)
class Finding:
    file: str
    check: str  # "schema" | "replay" | "keys" | "regenerate" | "missing" | "hook"
    detail: str
    fatal: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "check": self.check, "detail": self.detail, "fatal": self.fatal}


@dataclass
class VerifyReport:
    directory: str
    findings: list[Finding] = field(default_factory=list)
    cases_replayed: int = 0
    files: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(finding.fatal for finding in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "ok": self.ok,
            "files": self.files,
            "cases_replayed": self.cases_replayed,
            "duration_s": round(self.duration_s, 3),
            "findings": [finding.to_json() for finding in self.findings],
        }


def schema_errors(doc: Any, name: str, limit: int = 20) -> list[str]:
    errors = sorted(validator(name).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message[:300]}" for e in errors[:limit]]


def replay(doc: dict[str, Any]) -> tuple[int, list[str]]:
    """Run the gate's scripts for ``doc`` against the in-process reference adapter."""
    adapter = ReferenceAdapter()
    transport = InProcessTransport(lambda request: handle(adapter, request))
    problems = []
    cases = cases_for([doc])
    for case in cases:
        result = run_case(transport, case, "reference", timeout_s=60.0)
        if result.verdict is not Verdict.PASS:
            problems.append(f"{case.case_id}: {result.verdict.value}: {result.detail}")
    return len(cases), problems


def key_pair_problems(doc: dict[str, Any]) -> list[str]:
    """Key pairs listed in a DR setup must be pairs: the gate sends only the private halves,
    so a wrong public half would otherwise go unnoticed by replay."""
    if doc.get("file") != "dr-v1-interop":
        return []
    problems = []
    for case in doc["cases"]:
        setup = case["input"]["setup"]
        pairs = [("bob.spk", setup["bob"]["spk"])]
        for side in ("alice", "bob"):
            pairs += [
                (f"{side}.ratchet_keys[{i}]", kp)
                for i, kp in enumerate(setup[side]["ratchet_keys"])
            ]
        for where, pair in pairs:
            if x25519_public(bytes.fromhex(pair["private"])).hex() != pair["public"]:
                problems.append(f"{case['id']}: {where}: public key does not match private key")
    return problems


def verify_directory(
    directory: str | Path,
    *,
    regenerate: bool = True,
    live: bool = True,
    progress: Callable[[str], None] | None = None,
) -> VerifyReport:
    started = time.monotonic()
    directory = Path(directory)
    report = VerifyReport(str(directory))
    fresh = generate_documents() if regenerate else {}
    for name in VECTOR_FILES:
        if progress is not None:
            progress(name)
        path = directory / f"{name}.json"
        if not path.is_file():
            report.findings.append(Finding(name, "missing", f"{path} does not exist"))
            continue
        report.files.append(str(path))
        text = path.read_text(encoding="utf-8")
        try:
            doc = json.loads(text)
        except ValueError as exc:
            report.findings.append(Finding(name, "schema", f"not JSON: {exc}"))
            continue
        errors = schema_errors(doc, name)
        report.findings += [Finding(name, "schema", error) for error in errors]
        copy = directory / "schema" / f"{name}.schema.json"
        if copy.is_file() and copy.read_text(encoding="utf-8") != schema_text(name):
            report.findings.append(
                Finding(name, "schema", f"{copy} differs from the schema shipped in the package")
            )
        if not errors:
            try:
                count, problems = replay(doc)
            except (VectorFormatError, KeyError, IndexError, TypeError) as exc:
                report.findings.append(Finding(name, "replay", f"cannot build cases: {exc!r}"))
            else:
                report.cases_replayed += count
                report.findings += [Finding(name, "replay", problem) for problem in problems]
            report.findings += [Finding(name, "keys", p) for p in key_pair_problems(doc)]
        if regenerate and text != dump_vectors(fresh[name]):
            report.findings.append(Finding(name, "regenerate", _diff(doc, fresh[name])))
    live_path = directory / f"{LIVE_RESULT_FILE}.json"
    if live_path.is_file():
        report.files.append(str(live_path))
        report.findings += verify_live_result(live_path, run=live and regenerate)
    report.duration_s = time.monotonic() - started
    return report


def verify_live_result(path: Path, *, run: bool) -> list[Finding]:
    """The SPEC §6 live transcript: re-run its seeded multi-device run
    (:mod:`semafore.vectors.live`) and require identical bytes. Skipped (non-fatal) without
    regeneration, since it replays a whole multi-device run against a relay."""
    name = LIVE_RESULT_FILE
    if not run:
        return [Finding(name, "hook", "not re-run (only the full verify replays it)", False)]
    try:
        live.verify(path)
    except live.LiveVectorError as exc:
        return [Finding(name, "live", str(exc))]
    return []


def _diff(committed: Any, fresh: dict[str, Any]) -> str:
    """Name what differs between a committed file and a fresh generation."""
    if not isinstance(committed, dict):
        return "file is not an object"
    if committed == fresh:
        return "same JSON content, different formatting (run `semafore vectors generate`)"
    for key in ("file", "version", "spec", "description"):
        if committed.get(key) != fresh.get(key):
            return f"top-level {key!r} differs from a fresh generation"
    for section in ("cases", "negative"):
        mine = {c.get("id"): c for c in committed.get(section, []) if isinstance(c, dict)}
        theirs = {c["id"]: c for c in fresh[section]}
        changed = sorted(str(i) for i in set(mine) | set(theirs) if mine.get(i) != theirs.get(i))
        if changed:
            shown = ", ".join(changed[:8]) + (" …" if len(changed) > 8 else "")
            return f"{section} differ from a fresh generation: {shown}"
    return "content differs from a fresh generation"
