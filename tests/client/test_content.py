"""The E2E content format and client-side attachment encryption."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.client import attachments
from semafore.client.content import AttachmentPointer, Content, decode
from semafore.client.errors import AttachmentError, MalformedContent
from semafore.protocol.entropy import SeededEntropy

contents = st.builds(
    Content,
    message_id=st.text(min_size=1, max_size=40),
    kind=st.sampled_from(["text", "attachment", "receipt", "broadcast"]),
    sent_at=st.floats(min_value=0, max_value=1e11, allow_nan=False),
    body=st.binary(max_size=200),
    attachment=st.none()
    | st.builds(
        AttachmentPointer,
        file_id=st.text(min_size=1, max_size=32),
        key=st.binary(min_size=32, max_size=32),
        sha256=st.binary(min_size=32, max_size=32),
        size=st.integers(min_value=0, max_value=2**40),
    ),
    receipt_for=st.lists(st.text(max_size=10), max_size=3).map(tuple),
    sync_to=st.none() | st.text(min_size=1, max_size=10),
)


@given(contents)
def test_content_round_trips(content: Content) -> None:
    assert decode(content.encode()) == content


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_malformed_content(data: bytes) -> None:
    try:
        decode(data)
    except MalformedContent as exc:
        assert exc.field


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (b"{}", "magic"),
        (b"SFC1[1]", "json"),
        (b'SFC1{"kind":"poem","id":"m","at":1,"body":""}', "kind"),
        (b'SFC1{"kind":"text","id":"m","at":"x","body":""}', "at"),
        (b'SFC1{"kind":"text","id":"","at":1,"body":""}', "id"),
        (b'SFC1{"kind":"text","id":"m","at":1,"body":"!!"}', "body"),
        (b'SFC1{"kind":"text","id":"m","at":1,"body":"","att":{"id":"f","key":"AA==",'
         b'"sha":"","size":1}}', "att.key"),
    ],
)
def test_malformed_content_names_the_field(doc: bytes, field: str) -> None:
    with pytest.raises(MalformedContent) as err:
        decode(doc)
    assert err.value.field == field


def test_attachment_ciphertext_hides_the_plaintext_and_tampering_is_detected() -> None:
    data = b"quarterly numbers " * 100
    blob, key, digest = attachments.seal(data, SeededEntropy("att"))
    assert data[:32] not in blob
    pointer = AttachmentPointer("f", key, digest, len(data))
    assert attachments.open_blob(blob, pointer) == data
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(AttachmentError) as err:
        attachments.open_blob(tampered, pointer)
    assert err.value.field == "sha256"
    wrong_key = AttachmentPointer("f", bytes(32), digest, len(data))
    with pytest.raises(AttachmentError) as err2:
        attachments.open_blob(blob, wrong_key)
    assert err2.value.field == "tag"


def test_seeded_runs_encrypt_attachments_identically() -> None:
    a = attachments.seal(b"x", SeededEntropy("same"))
    b = attachments.seal(b"x", SeededEntropy("same"))
    assert a == b
