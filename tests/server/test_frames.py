"""The WebSocket send-frame fast path agrees with the pydantic models on every input.

The pydantic ``SendRequest``/``AckRequest`` models are the oracle (they also define the
HTTP/OpenAPI surface): for any value, the fast validator accepts exactly what they accept,
with equal values, and rejects with the same field name.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from semafore.server import models as m
from semafore.server.frames import (
    FrameError,
    SendEnvelope,
    SendMessage,
    _fast_message,
    parse_ack,
    parse_send_message,
)

_send = TypeAdapter(m.SendRequest)
_ack = TypeAdapter(m.AckRequest)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
ident = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,70}\Z")
b64_body = st.binary(min_size=0, max_size=80).map(lambda b: base64.b64encode(b).decode())
bad_b64 = st.sampled_from(["", "abc", "ab=c", "****", "YWJj\n", "YW Jj", "é===", "YQ", "YQ=="])
big = st.binary(min_size=m.MAX_ENVELOPE + 1, max_size=m.MAX_ENVELOPE + 1).map(
    lambda b: base64.b64encode(b).decode()
)
registration = st.one_of(
    st.integers(min_value=-2, max_value=2**31 + 1),
    st.sampled_from([2**31 - 1, 2**31, True, 1.0, 2.5, "7", "x"]),
)


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    env: dict[str, Any] = {
        "device_id": draw(st.one_of(ident, junk)),
        "registration_id": draw(registration),
        "body": draw(st.one_of(b64_body, bad_b64, junk)),
    }
    for key in draw(st.lists(st.sampled_from(list(env)), max_size=1)):
        del env[key]
    if draw(st.booleans()) and draw(st.booleans()):
        env["filename"] = "x.txt"
    return draw(st.one_of(st.just(env), junk)) if draw(st.integers(0, 9)) == 0 else env


@st.composite
def messages(draw: st.DrawFn) -> Any:
    msg: dict[str, Any] = {
        "message_id": draw(st.one_of(ident, st.from_regex(r"\A[A-Za-z0-9]{120,130}\Z"), junk)),
        "envelopes": draw(
            st.one_of(
                st.lists(envelopes(), min_size=0, max_size=4),
                st.lists(envelopes(), min_size=63, max_size=66),
                junk,
            )
        ),
    }
    if draw(st.integers(0, 5)) == 0:
        del msg[draw(st.sampled_from(["message_id", "envelopes"]))]
    if draw(st.integers(0, 5)) == 0:
        msg["mime_type"] = "text/plain"
    return msg if draw(st.integers(0, 19)) else draw(junk)


def oracle(value: Any) -> SendMessage | str:
    """The pydantic answer: the parsed message, or the dotted field of the first error."""
    try:
        req = _send.validate_python(value)
    except ValidationError as exc:
        return ".".join(["frame.message", *(str(p) for p in exc.errors()[0]["loc"])])
    return SendMessage(
        req.message_id,
        tuple(SendEnvelope(e.device_id, e.registration_id, e.body) for e in req.envelopes),
    )


@settings(max_examples=400, deadline=None)
@given(messages())
def test_send_frames_validate_exactly_like_the_pydantic_model(value: Any) -> None:
    expected = oracle(value)
    try:
        got: SendMessage | str = parse_send_message(value)
    except FrameError as exc:
        got = exc.field
    assert got == expected


@settings(max_examples=400, deadline=None)
@given(messages())
def test_fast_path_accepts_only_what_pydantic_accepts(value: Any) -> None:
    fast = _fast_message(value)
    if fast is not None:
        assert oracle(value) == fast


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.lists(st.one_of(st.text(min_size=0, max_size=70), junk), min_size=0, max_size=3),
        st.lists(st.just("d"), min_size=499, max_size=502),
        junk,
    )
)
def test_ack_frames_validate_exactly_like_the_pydantic_model(value: Any) -> None:
    try:
        expected: list[str] | str = _ack.validate_python({"delivery_ids": value}).delivery_ids
    except ValidationError as exc:
        expected = ".".join(["frame", *(str(p) for p in exc.errors()[0]["loc"])])
    try:
        got: list[str] | str = parse_ack(value)
    except FrameError as exc:
        got = exc.field
    assert got == expected


def good_envelope(**changes: Any) -> dict[str, Any]:
    env = {"device_id": "d1", "registration_id": 7, "body": base64.b64encode(b"DRV1xx").decode()}
    env.update(changes)
    return env


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"message_id": "m1", "envelopes": [good_envelope(body="ab=c")]}, "envelopes.0.body"),
        ({"message_id": "m1", "envelopes": [good_envelope(body="")]}, "envelopes.0.body"),
        (
            {"message_id": "m1", "envelopes": [good_envelope(registration_id=0)]},
            "envelopes.0.registration_id",
        ),
        (
            {"message_id": "m1", "envelopes": [good_envelope(device_id="d\n")]},
            "envelopes.0.device_id",
        ),
        (
            {"message_id": "m1", "envelopes": [good_envelope(), good_envelope(name="x")]},
            "envelopes.1.name",
        ),
        ({"message_id": "m\n", "envelopes": [good_envelope()]}, "message_id"),
        ({"message_id": "m1", "envelopes": []}, "envelopes"),
        ({"message_id": "m1"}, "envelopes"),
        ([], ""),
    ],
)
def test_malformed_send_names_the_field(message: Any, field: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_send_message(message)
    assert caught.value.field == ".".join(p for p in ("frame.message", field) if p)


def test_lax_forms_pydantic_coerces_are_still_accepted() -> None:
    parsed = parse_send_message(
        {"message_id": "m1", "envelopes": [good_envelope(registration_id="7")]}
    )
    assert parsed == SendMessage("m1", (SendEnvelope("d1", 7, b"DRV1xx"),))


def test_canonical_messages_take_the_fast_path() -> None:
    message = {"message_id": "m1", "envelopes": [good_envelope(), good_envelope(device_id="d2")]}
    assert _fast_message(message) == oracle(message)
    assert _fast_message({**message, "envelopes": [good_envelope(registration_id="7")]}) is None
