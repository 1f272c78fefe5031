"""DeviceAddress: the one textual form of a device's address, ``user:device`` (SPEC §2 step 6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.protocol.address import (
    AddressArgumentError,
    AddressError,
    DeviceAddress,
    address_argument,
)
from semafore.protocol.keys import device_address

ids = st.text(st.characters(blacklist_characters=":", codec="utf-8"),
              min_size=1, max_size=20)


@given(ids, ids)
def test_an_address_reads_back_from_its_text(user: str, device: str) -> None:
    address = DeviceAddress(user, device)
    assert DeviceAddress.parse(str(address)) == address


@given(ids, ids)
def test_the_text_is_what_the_protocol_binds_into_ad(user: str, device: str) -> None:
    assert str(DeviceAddress(user, device)) == f"{user}:{device}" == device_address(user, device)


@given(st.text(max_size=12), st.text(max_size=12))
def test_the_ad_encoding_takes_any_ids_as_the_spec_does(user: str, device: str) -> None:
    """SPEC §2 step 6 encodes ``user_id ":" device_id`` whatever the ids hold (empty, or with
    a colon): an implementation that refused them would disagree with every other one on the
    same bundle (found by tests/interop/test_differential.py: the reference raised where Go
    answered). Only the harness's own addresses are validated (DeviceAddress)."""
    assert device_address(user, device) == f"{user}:{device}"


@pytest.mark.parametrize(("text", "field"), [
    ("alice/phone", "address"),
    (":phone", "user"),
    ("alice:", "device"),
    ("alice:phone:2", "device"),
    ("", "address"),
])
def test_a_malformed_address_names_the_part_that_is_wrong(text: str, field: str) -> None:
    with pytest.raises(AddressError) as caught:
        DeviceAddress.parse(text)
    assert caught.value.field == field
    assert text in str(caught.value)


def test_an_id_holding_the_separator_is_refused_at_construction() -> None:
    with pytest.raises(AddressError) as caught:
        DeviceAddress("a:b", "c")  # would read back as ("a", "b:c"): an ambiguous AD
    assert caught.value.field == "user"


@given(ids, ids)
def test_an_api_argument_is_the_address_or_its_one_text(user: str, device: str) -> None:
    address = DeviceAddress(user, device)
    assert address_argument(address, "ref") is address
    assert address_argument(str(address), "ref") == address


def test_the_old_slash_spelling_is_refused_naming_the_argument_and_the_form_to_use() -> None:
    with pytest.raises(AddressArgumentError) as caught:
        address_argument("alice/phone", "sender")
    assert caught.value.argument == "sender"
    message = str(caught.value)
    assert message.startswith("sender: 'alice/phone'")
    assert "'alice:phone'" in message


@pytest.mark.parametrize("text", ["alice", "alice:", ":phone", "a:b:c"])
def test_any_other_non_address_is_refused_naming_the_argument(text: str) -> None:
    with pytest.raises(AddressArgumentError) as caught:
        address_argument(text, "ref")
    assert isinstance(caught.value, AddressError)
    assert str(caught.value).startswith("ref: ")
    assert "user:device" in str(caught.value)
