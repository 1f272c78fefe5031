"""One list per concept, and each list agrees with the code that uses it (issue 14 item 1).

The relay keeps one rate-limit table (``semafore.server.settings.DEFAULT_RATE_LIMITS``; every
harness table is derived from it by ``unlimited_rate_limits``) and one list of audit event
types (``semafore.server.models.AuditType``; ``Relay.audit`` is typed by it, so mypy refuses
an event type that is not listed). What no type checker sees is the other direction — a
listed bucket no code counts, a bucket the code counts that the table lacks (a ``KeyError``,
a 500, at the first request), an event type listed and documented but never emitted — so the
relay's source is read here and compared with the lists, and the audit schema document
(docs/audit-schema.md) with the list. Adding a bucket or an event means adding it to its one
list and using it; these tests name whatever is on one side only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import semafore.server
from semafore.server.relay import AUDIT_TYPES
from semafore.server.settings import DEFAULT_RATE_LIMITS

SERVER = Path(semafore.server.__file__).parent
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def buckets_counted(source: str) -> set[str]:
    """Rate-limit buckets the code counts: the literal first argument of ``limit(...)`` and
    ``quota(...)`` calls, and literal keys read from a rate-limit table (``...rate_limits[b]``
    or a local ``limits[b]`` alias of it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("limit", "quota") and node.args):
            name = _str(node.args[0])
            if name is not None:
                found.add(name)
        elif isinstance(node, ast.Subscript):
            table = node.value
            table_name = (table.attr if isinstance(table, ast.Attribute)
                          else table.id if isinstance(table, ast.Name) else "")
            name = _str(node.slice)
            if table_name in ("rate_limits", "limits") and name is not None:
                found.add(name)
    return found


def audit_types_emitted(source: str) -> set[str]:
    """Audit event types the code records: the literal second argument of ``audit(...)``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "audit" and len(node.args) >= 2):
            name = _str(node.args[1])
            if name is not None:
                found.add(name)
    return found


def _server_source() -> str:
    return "\n".join(path.read_text() for path in sorted(SERVER.rglob("*.py")))


# --- the readers find what they are meant to (so the agreement below can fail) ---------------


def test_the_bucket_reader_finds_calls_and_table_reads() -> None:
    code = '''
async def f(self, limits):
    await self.limit("auth", ip)
    await self.quota("opk_pair", "pair", key)
    a = self.settings.rate_limits["keys"]
    b = limits["queue_sender"]
    c = other["not_a_table"]
    await self.limit(bucket, ip)
'''
    assert buckets_counted(code) == {"auth", "opk_pair", "keys", "queue_sender"}


def test_the_audit_reader_finds_the_event_type_argument() -> None:
    code = '''
async def f(self):
    await self.audit(org_id, "signup", subject_user_id=u)
    await self.audit(org_id, kind)
    await self.stores.audit.append(event)
'''
    assert audit_types_emitted(code) == {"signup"}


# --- the lists agree with the code ---------------------------------------------------------------


def test_every_bucket_in_the_table_is_counted_and_every_counted_bucket_is_in_it() -> None:
    counted = buckets_counted(_server_source())
    assert sorted(counted - DEFAULT_RATE_LIMITS.keys()) == [], "counted, not in the table"
    assert sorted(DEFAULT_RATE_LIMITS.keys() - counted) == [], "in the table, counted nowhere"


def test_every_audit_type_listed_is_emitted_and_every_emitted_one_is_listed() -> None:
    emitted = audit_types_emitted(_server_source())
    assert sorted(emitted - set(AUDIT_TYPES)) == [], "emitted, not listed"
    assert sorted(set(AUDIT_TYPES) - emitted) == [], "listed, never emitted"


def documented_audit_types(text: str) -> list[str]:
    """The ``event_type`` column of the audit schema's event table (the table whose header
    starts ``| `event_type` | emitted when |``, up to the first line that is not a row)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("| `event_type` | emitted when |"))
    names = []
    for line in lines[start + 2:]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        names.append(line.split("|")[1].strip().strip("`"))
    return names


def test_the_audit_schema_document_lists_exactly_the_audit_types() -> None:
    documented = documented_audit_types((DOCS / "audit-schema.md").read_text())
    assert sorted(documented) == sorted(AUDIT_TYPES)


@pytest.mark.parametrize("bucket", sorted(DEFAULT_RATE_LIMITS))
def test_each_bucket_is_documented(bucket: str) -> None:
    assert f"| `{bucket}` |" in (DOCS / "server.md").read_text()
