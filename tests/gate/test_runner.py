"""Case evaluation against scripted (fake) transports: every verdict and its message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from semafore.gate.cases import Exchange, GateCase, Ref, VectorFormatError, dr_cases, resolve
from semafore.gate.config import GateConfig
from semafore.gate.runner import Impl, run_case, run_impl
from semafore.gate.transport import AdapterFailure
from semafore.gate.verdict import Verdict


class Scripted:
    """Answers each request with the next scripted response (or raises it)."""

    def __init__(self, *answers: dict[str, Any] | AdapterFailure) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def request(self, op: str, args: Mapping[str, Any], deadline: float) -> dict[str, Any]:
        self.requests.append((op, dict(args)))
        answer = self.answers.pop(0)
        if isinstance(answer, AdapterFailure):
            raise answer
        return answer


def ok(**result: Any) -> dict[str, Any]:
    return {"id": 1, "ok": True, "result": result}


def err(name: str, detail: str = "") -> dict[str, Any]:
    return {"id": 1, "ok": False, "error": name, "detail": detail}


CASE = GateCase(
    "f",
    "c",
    "",
    (
        Exchange("dr.init", {"role": "initiator"}, bind=("alice", "session")),
        Exchange("dr.encrypt", {"session": Ref("alice")}, expect={"frame": "aa"}),
        Exchange("dr.decrypt", {"session": Ref("alice")}, expect_error="DuplicateMessage"),
    ),
)


def test_refs_resolve_to_values_bound_by_earlier_answers() -> None:
    transport = Scripted(ok(session="s9"), ok(frame="aa"), err("DuplicateMessage"))
    result = run_case(transport, CASE, "x", 5.0)
    assert result.verdict is Verdict.PASS
    assert transport.requests[1] == ("dr.encrypt", {"session": "s9"})
    assert resolve({"a": [Ref("k")]}, {"k": 1}) == {"a": [1]}


@pytest.mark.parametrize(
    ("answers", "verdict", "step", "message"),
    [
        ((ok(session="s"), ok(frame="ab")), Verdict.FAIL, 1, "'frame' differs at byte 0 of 1"),
        ((ok(session="s"), ok(frame="aa00")), Verdict.FAIL, 1, "(length 2, expected 1)"),
        ((ok(session="s"), ok()), Verdict.FAIL, 1, "result lacks field 'frame'"),
        ((ok(), ok(frame="aa")), Verdict.FAIL, 0, "lacks field 'session'"),
        ((ok(session="s"), err("InvalidKey", "x")), Verdict.FAIL, 1, "expected success, got"),
        (
            (ok(session="s"), ok(frame="aa"), ok(plaintext="")),
            Verdict.FAIL,
            2,
            "accepted input that must fail with DuplicateMessage",
        ),
        (
            (ok(session="s"), ok(frame="aa"), err("DecryptionFailed")),
            Verdict.FAIL,
            2,
            "expected error DuplicateMessage, got DecryptionFailed",
        ),
        ((err("Unsupported"),), Verdict.UNSUPPORTED, 0, "Unsupported"),
        ((err("Oops"),), Verdict.PROTOCOL, 0, "not a SPEC §5 name"),
        ((AdapterFailure(Verdict.CRASH, "died"),), Verdict.CRASH, 0, "died"),
        ((ok(session="s"), AdapterFailure(Verdict.TIMEOUT, "slow")), Verdict.TIMEOUT, 1, "slow"),
    ],
)
def test_each_divergence_has_its_verdict_step_and_message(
    answers: tuple[Any, ...], verdict: Verdict, step: int, message: str
) -> None:
    result = run_case(Scripted(*answers), CASE, "x", 5.0)
    assert result.verdict is verdict
    assert result.step == step
    assert result.op == CASE.exchanges[step].op
    assert message in result.detail


def test_cases_needing_unlisted_operations_are_unsupported_without_running() -> None:
    transport = Scripted(ok(name="t", version="1", ops=["capabilities", "dr.init"]))
    report = run_impl(Impl("t", "unused"), [CASE], GateConfig(), transport=transport)
    (result,) = report.results
    assert result.verdict is Verdict.UNSUPPORTED
    assert "dr.decrypt" in result.detail
    assert [op for op, _ in transport.requests] == ["capabilities"]


def test_impl_spec_parsing() -> None:
    assert Impl.parse("ios = ./run --x") == Impl("ios", "./run --x")
    for bad in ("noequals", "=cmd", "name="):
        with pytest.raises(ValueError, match="NAME=COMMAND"):
            Impl.parse(bad)


def test_a_path_delivering_a_frame_not_yet_encrypted_is_a_format_error() -> None:
    doc = {
        "file": "dr-v1-interop",
        "cases": [
            {
                "id": "bad",
                "description": "",
                "input": {
                    "setup": {
                        "sk": "00",
                        "ad": "",
                        "alice": {"ratchet_keys": [], "nonces": []},
                        "bob": {
                            "spk": {"private": "", "public": ""},
                            "ratchet_keys": [],
                            "nonces": [],
                        },
                    },
                    "steps": [{"op": "deliver", "to": "bob", "frame": 0}],
                },
                "expected": {"steps": [{"plaintext": ""}]},
            }
        ],
        "negative": [],
    }
    with pytest.raises(VectorFormatError, match="frame 0 not encrypted yet"):
        dr_cases(doc)
