"""The reference adapter's side of the contract (docs/adapter-contract.md)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle, handle_line, serve
from semafore.protocol.errors import CANONICAL_ERRORS

from .conftest import ROOT


def call(adapter: ReferenceAdapter, op: str, **args: Any) -> dict[str, Any]:
    return handle(adapter, {"id": "r1", "op": op, "args": args})


@pytest.mark.cites("SPEC §7 r1")
def test_serve_answers_one_line_per_request_and_stops_at_eof() -> None:
    stdin = io.BytesIO(
        b'{"id": 1, "op": "capabilities", "args": {}}\n'
        b"\n"
        b"{not json\n"
        b'{"id": "x", "op": "teleport", "args": {}}\n'
    )
    stdout = io.BytesIO()
    assert serve(stdin, stdout) == 0
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [line["id"] for line in lines] == [1, None, "x"]
    assert lines[0]["result"]["name"] == "semafore-reference"
    assert lines[1]["error"] == "MalformedEnvelope"
    assert lines[2] == {
        "id": "x",
        "ok": False,
        "error": "Unsupported",
        "detail": "operation 'teleport' is not implemented",
    }


def test_a_missing_or_mistyped_argument_names_itself() -> None:
    adapter = ReferenceAdapter()
    missing = call(adapter, "smx1.parse")
    assert missing["error"] == "MalformedEnvelope"
    assert "args.data" in missing["detail"]
    not_hex = call(adapter, "drv1.parse", data="zz")
    assert "args.data is not hex" in not_hex["detail"]
    short_key = call(adapter, "x25519.public", private="00")
    assert "must be 32 bytes" in short_key["detail"]


def test_dr_draws_are_consumed_only_by_successful_operations() -> None:
    adapter = ReferenceAdapter()
    sk, spk = "11" * 32, "22" * 32
    bob = call(
        adapter,
        "dr.init",
        role="responder",
        sk=sk,
        ad="",
        spk_private=spk,
        ratchet_keys=["33" * 32],
        nonces=["44" * 12],
    )["result"]["session"]
    too_early = call(adapter, "dr.encrypt", session=bob, plaintext="00")
    assert too_early["error"] == "NoSession"
    spk_public = call(adapter, "x25519.public", private=spk)["result"]["public"]
    alice = call(
        adapter,
        "dr.init",
        role="initiator",
        sk=sk,
        ad="",
        remote_ratchet_key=spk_public,
        ratchet_keys=["55" * 32],
        nonces=["66" * 12],
    )["result"]["session"]
    frame = call(adapter, "dr.encrypt", session=alice, plaintext="ab")["result"]["frame"]
    assert frame[88:112] == "66" * 12  # the scripted nonce, at offset 44
    exhausted = call(adapter, "dr.encrypt", session=alice, plaintext="ab")
    assert exhausted["ok"] is False  # only one nonce was scripted
    assert exhausted["error"] == "MalformedEnvelope"  # a SPEC §5 name, naming the list
    assert "args.nonces" in exhausted["detail"]
    assert call(adapter, "dr.decrypt", session=bob, frame=frame)["result"] == {"plaintext": "ab"}
    reply = call(adapter, "dr.encrypt", session=bob, plaintext="cd")["result"]["frame"]
    assert reply[8:72] == call(adapter, "x25519.public", private="33" * 32)["result"]["public"]
    assert reply[88:112] == "44" * 12  # the failed early encrypt did not consume it


def test_unknown_session_handles_are_no_session() -> None:
    assert call(ReferenceAdapter(), "session.digest", session="s404")["error"] == "NoSession"


@pytest.mark.cites("SPEC §7 r1")
def test_the_documented_example_exchange_is_what_the_adapter_answers() -> None:
    """docs/adapter-contract.md shows real request/response lines; they must stay true."""
    text = (ROOT / "docs" / "adapter-contract.md").read_text(encoding="utf-8")
    pairs = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("> {") and i + 1 < len(lines) and lines[i + 1].startswith("< {"):
            pairs.append((line[2:], lines[i + 1][2:]))
    assert len(pairs) >= 5
    adapter = ReferenceAdapter()
    for request, response in pairs:
        assert handle_line(adapter, request.encode()) == json.loads(response), request


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(["", "00", "ff" * 32, "zz", "53" * 12]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
ARG_NAMES = [
    "data",
    "session",
    "frame",
    "role",
    "sk",
    "ad",
    "key_id",
    "private",
    "public",
    "sik_private",
    "ik_public",
    "spk_public",
    "identity",
    "bundle",
    "keys",
    "remote",
    "smx1",
    "nonce",
    "plaintext",
    "ratchet_keys",
    "nonces",
    "length",
    "ikm",
    "salt",
    "info",
    "key",
    "aad",
    "ciphertext",
    "message",
    "sig",
    "local_address",
    "ek_private",
    "remote_ratchet_key",
    "spk_private",
]


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from(sorted(ReferenceAdapter().ops)),
    args=st.dictionaries(st.sampled_from(ARG_NAMES), json_values, max_size=6),
)
def test_arbitrary_arguments_never_crash_the_adapter(op: str, args: dict[str, Any]) -> None:
    response = handle(ReferenceAdapter(), {"id": 1, "op": op, "args": args})
    json.dumps(response)
    if not response["ok"]:
        assert response["error"] in CANONICAL_ERRORS, response
