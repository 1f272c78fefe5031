"""The CI interop gate (SPEC §7): run the pinned vectors against platform adapters.

An adapter is any executable speaking the JSON-lines contract of ``docs/adapter-contract.md``.
The gate drives each adapter as one long-lived subprocess (restarted only after a crash,
timeout or protocol violation), checks every answer against the vectors, and reports a
terminal table, JUnit XML and a JSON summary.
"""

from semafore.gate.verdict import CaseResult, Verdict

__all__ = ["CaseResult", "Verdict"]
