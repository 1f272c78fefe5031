"""The E2E content format and client-side attachment encryption."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.client import attachments
from semafore.client.content import AttachmentPointer, Content, decode, sync_field
from semafore.client.errors import AttachmentError, MalformedContent
from semafore.protocol.entropy import SeededEntropy

user_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)

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
    sync_to=st.none() | st.lists(user_ids, min_size=1, max_size=4).map(sync_field),
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
        (b'SFC1{"kind":"text","id":"m","at":1,"body":"","sync":["bob"]}', "sync"),
        (b'SFC1{"kind":"text","id":"m","at":1,"body":"","sync":""}', "sync"),
        (b'SFC1{"kind":"text","id":"m","at":1,"body":"","sync":"bob,,carol"}', "sync"),
        (b'SFC1{"kind":"text","id":"m","at":1,"body":"","sync":"bob,"}', "sync"),
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


# --- sync_to: the conversation of a sync copy (issue #11) -----------------------------------


def test_a_one_user_sync_copy_encodes_as_every_implementation_already_does() -> None:
    """Byte for byte the Go adapter's pinned case (interop/go-adapter/content/content_test.go)
    with a real user id: the one-user form of ``sync`` did not change."""
    content = Content("m-\u00e9\U0001f600", "text", 1.5, b"\x00\xff", sync_to=sync_field(["bob"]))
    assert content.encode() == (
        b'SFC1{"at":1.5,"body":"AP8=","id":"m-\\u00e9\\ud83d\\ude00","kind":"text",'
        b'"sync":"bob"}'
    )
    assert content.sync_peers == ("bob",)


def test_a_several_user_sync_copy_names_every_peer_in_one_canonical_string() -> None:
    one = Content("m", "text", 1.0, sync_to=sync_field(["carol", "bob", "carol"]))
    assert one.sync_to == "bob,carol" and one.sync_peers == ("bob", "carol")
    assert one.encode().endswith(b'"sync":"bob,carol"}')
    assert decode(one.encode()).sync_peers == ("bob", "carol")
    assert Content("m", "text", 1.0).sync_peers == ()


@given(st.lists(user_ids, min_size=1, max_size=6))
def test_sync_field_round_trips_any_set_of_user_ids(peers: list[str]) -> None:
    content = decode(Content("m", "text", 1.0, sync_to=sync_field(peers)).encode())
    assert content.sync_peers == tuple(sorted(set(peers)))
    assert sync_field(reversed(peers)) == content.sync_to


@pytest.mark.parametrize("peers", [[], [""], ["bob,carol"], ["bob", ""]])
def test_sync_field_refuses_what_is_not_a_list_of_user_ids(peers: list[str]) -> None:
    with pytest.raises(MalformedContent) as err:
        sync_field(peers)
    assert err.value.field == "sync"
