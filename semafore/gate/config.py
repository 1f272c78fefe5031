"""The gate configuration (``ci/gate.yaml``): declared expected failures (SPEC §7).

Each entry names an adapter (``impl``, ``*`` for any), a case pattern (fnmatch over
``<file>:<case id>``), optionally the verdicts it covers, an ``owner`` and an ``expires`` date.
A matching failure becomes ``xfail``; a matching pass becomes ``xpass`` (the entry can go).
An entry whose date has passed fails the whole gate, so a skip list cannot silently go stale.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from semafore.gate.verdict import Verdict


class GateConfigError(Exception):
    """The configuration file is unreadable or an entry lacks a required field."""


@dataclass(frozen=True)
class ExpectedFailure:
    impl: str
    case: str
    owner: str
    expires: dt.date
    reason: str
    verdicts: frozenset[Verdict] = field(default=frozenset())

    def matches(self, impl: str, case_full_id: str, verdict: Verdict | None = None) -> bool:
        if not fnmatch.fnmatchcase(impl, self.impl):
            return False
        if not fnmatch.fnmatchcase(case_full_id, self.case):
            return False
        return verdict is None or not self.verdicts or verdict in self.verdicts

    def expired(self, today: dt.date) -> bool:
        """Valid through ``expires`` inclusive; expired from the next day on."""
        return today > self.expires

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "impl": self.impl,
            "case": self.case,
            "owner": self.owner,
            "expires": self.expires.isoformat(),
            "reason": self.reason,
        }
        if self.verdicts:
            out["verdicts"] = sorted(v.value for v in self.verdicts)
        return out


@dataclass(frozen=True)
class GateConfig:
    expected_failures: tuple[ExpectedFailure, ...] = ()
    source: str = "<defaults>"

    def find(
        self, impl: str, case_full_id: str, verdict: Verdict | None = None
    ) -> ExpectedFailure | None:
        for entry in self.expected_failures:
            if entry.matches(impl, case_full_id, verdict):
                return entry
        return None

    def expired(self, today: dt.date) -> list[ExpectedFailure]:
        return [entry for entry in self.expected_failures if entry.expired(today)]


_FAILURE_VERDICTS = {v.value: v for v in Verdict if v.is_failure}


def _entry(raw: Any, where: str) -> ExpectedFailure:
    if not isinstance(raw, dict):
        raise GateConfigError(f"{where}: an expected failure must be a mapping")
    unknown = set(raw) - {"impl", "case", "owner", "expires", "reason", "verdicts"}
    if unknown:
        raise GateConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    for key in ("impl", "case", "owner", "expires", "reason"):
        if raw.get(key) in (None, ""):
            raise GateConfigError(f"{where}: field {key!r} is required")
    for key in ("impl", "case", "owner", "reason"):
        if not isinstance(raw[key], str):
            raise GateConfigError(f"{where}: field {key!r} must be a string")
    expires = raw["expires"]
    if isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires)
        except ValueError:
            raise GateConfigError(f"{where}: expires {expires!r} is not YYYY-MM-DD") from None
    if isinstance(expires, dt.datetime) or not isinstance(expires, dt.date):
        raise GateConfigError(f"{where}: expires must be a date (YYYY-MM-DD)")
    verdicts_raw = raw.get("verdicts", [])
    if not isinstance(verdicts_raw, list):
        raise GateConfigError(f"{where}: verdicts must be a list")
    verdicts: set[Verdict] = set()
    for value in verdicts_raw:
        if value not in _FAILURE_VERDICTS:
            raise GateConfigError(
                f"{where}: verdict {value!r} is not one of {sorted(_FAILURE_VERDICTS)}"
            )
        verdicts.add(_FAILURE_VERDICTS[value])
    return ExpectedFailure(
        raw["impl"], raw["case"], raw["owner"], expires, raw["reason"], frozenset(verdicts)
    )


def parse_config(data: Any, source: str = "<config>") -> GateConfig:
    if data is None:
        return GateConfig(source=source)
    if not isinstance(data, dict):
        raise GateConfigError(f"{source}: top level must be a mapping")
    unknown = set(data) - {"expected_failures"}
    if unknown:
        raise GateConfigError(f"{source}: unknown top-level field(s) {sorted(unknown)}")
    entries = data.get("expected_failures") or []
    if not isinstance(entries, list):
        raise GateConfigError(f"{source}: expected_failures must be a list")
    return GateConfig(
        tuple(_entry(raw, f"{source}: expected_failures[{i}]") for i, raw in enumerate(entries)),
        source,
    )


def load_config(path: str | Path | None) -> GateConfig:
    if path is None:
        return GateConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GateConfigError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise GateConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(data, str(path))


def unused_entries(config: GateConfig, applied: Iterable[ExpectedFailure]) -> list[ExpectedFailure]:
    """Entries that matched nothing in this run (reported, not fatal: impl may be absent)."""
    used = set(applied)
    return [entry for entry in config.expected_failures if entry not in used]
