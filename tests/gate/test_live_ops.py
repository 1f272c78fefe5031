"""One list of the operations the live gate needs, and it agrees with the code (issue 14
item 1: the gate's list and the reference adapter's separate tuple had drifted apart).

``semafore.gate.live.LiveOp`` is the list; ``_Cell.call`` takes only its members (mypy), so a
step cannot call an unlisted operation. These tests check the other direction — every listed
operation is called by some step (else the gate would refuse an adapter for lacking an
operation it never uses) — and that the reference adapter, whose one registry is
``LiveOps.handlers``, serves every one of them and reports exactly what it serves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import semafore.gate.live
from semafore.adapter.args import Args
from semafore.adapter.live import LiveOps
from semafore.adapter.ops import ReferenceAdapter
from semafore.gate.live import LIVE_OPS


def ops_called(source: str) -> set[str]:
    """Operation names the gate sends: the literal second argument of ``call(device, op, ...)``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "call" and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)):
            found.add(node.args[1].value)
    return found


def test_the_reader_finds_the_operation_argument() -> None:
    code = '''
def step(self, a, op):
    self.call(a, "live.send", {"device": a})
    self.call(a, op, {})
    other.call("not-an-op")
'''
    assert ops_called(code) == {"live.send"}


def test_every_operation_the_gate_requires_is_one_it_calls() -> None:
    called = ops_called(Path(semafore.gate.live.__file__).read_text())
    assert sorted(set(LIVE_OPS) - called) == [], "listed, never called"
    assert sorted(called - set(LIVE_OPS)) == [], "called, not listed"


def test_the_reference_adapter_serves_every_operation_the_gate_requires() -> None:
    adapter = ReferenceAdapter()
    assert sorted(set(LIVE_OPS) - set(adapter.ops)) == []


def test_the_reference_adapter_reports_exactly_what_it_serves() -> None:
    adapter = ReferenceAdapter()
    reported = set(adapter.capabilities(Args({}))["ops"])
    assert reported == set(adapter.ops)  # capabilities is read off the registry, not a list
    assert set(LiveOps().handlers()) <= reported
