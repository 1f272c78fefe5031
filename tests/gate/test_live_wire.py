"""How a cell accounts for what its receivers fetched (docs/adapter-contract.md §5): every
fetched envelope is a body some ``live.send`` listed — recipients' envelopes and sync copies
alike — or a SPEC §4 reset notice whose bytes the receiver reports; anything else fails the
cell naming the envelope, because the wire scan never saw its bytes."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle
from semafore.gate.live import StepFailure, _Cell, _Device, _Observer, _relay
from semafore.gate.runner import Impl
from semafore.gate.transport import AdapterProcess

RESET = b"SRS1" + b"\x07" * 32


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def cell() -> _Cell:
    observer = _Observer(lambda label, value: None, lambda kind, value: None)
    impl = Impl("ref", "true")
    return _Cell(1, impl, impl, "http://127.0.0.1:1", "org", 1.0, observer, "c1")


def device(user: str, name: str) -> _Device:
    return _Device(user, name, AdapterProcess("true"), "ref")


def item(**extra: Any) -> dict[str, Any]:
    return {"from": "c1-bob:phone", "delivery_id": "d-1", **extra}


def test_a_fetch_of_a_listed_body_is_accounted_for(cell: _Cell) -> None:
    cell.on_wire.add(sha(b"listed"))
    cell._account(device("c1-alice", "laptop"), item(envelope_sha256=sha(b"listed")), "m1")
    assert cell.observer.fetched == [("m1 fetched by c1-alice:laptop (ref)", sha(b"listed"))]


def test_a_fetch_no_live_send_listed_fails_naming_the_envelope_and_the_sender(
    cell: _Cell,
) -> None:
    with pytest.raises(StepFailure) as failed:
        cell._account(device("c1-alice", "laptop"), item(envelope_sha256=sha(b"hidden")), "m2")
    assert failed.value.envelope == "m2"
    assert failed.value.detail.startswith("unlisted envelope: c1-alice:laptop fetched m2")
    assert '"sync": true' in failed.value.detail
    assert cell.observer.fetched, "the scan still records the fetch (and reports it unscanned)"


def test_a_fetch_without_its_hash_cannot_be_accounted_for(cell: _Cell) -> None:
    with pytest.raises(StepFailure, match="without envelope_sha256"):
        cell._account(device("c1-alice", "phone"), item(), "m3")


def test_a_reset_notice_is_scanned_from_the_bytes_the_receiver_reports(cell: _Cell) -> None:
    """A device sends a reset while *receiving* (SPEC §4), so no live.send lists it: the
    receiver that fetches it reports its bytes, and they go on the wire scan."""
    cell._account(device("c1-alice", "phone"),
                  item(envelope_sha256=sha(RESET), reset=True, body=RESET.hex()), "reset")
    assert cell.observer.wire == [("reset notice reset fetched by c1-alice:phone (ref)", RESET)]
    assert sha(RESET) in cell.on_wire


@pytest.mark.parametrize("body", [None, "zz", (b"SRS1" + b"\x00" * 32).hex()])
def test_a_reset_notice_must_carry_the_bytes_its_hash_names(cell: _Cell, body: Any) -> None:
    with pytest.raises(StepFailure, match="reset notice"):
        cell._account(device("c1-alice", "phone"),
                      item(envelope_sha256=sha(RESET), reset=True, body=body), "reset")
    assert cell.observer.wire == []


@pytest.mark.parametrize(("address", "sync", "ok"), [
    ("c1-bob:phone", False, True),
    ("c1-bob:laptop", False, True),
    ("c1-alice:laptop", True, True),
    ("c1-alice:phone", True, False),   # a sync copy to the sending device itself
    ("c1-bob:laptop", True, False),    # a "sync copy" to the peer
    ("c1-alice:laptop", False, False),  # an own device, unmarked
    ("c1-bob", False, False),          # not an address
])
def test_every_listed_envelope_names_a_device_it_may_go_to(
    cell: _Cell, address: str, sync: bool, ok: bool
) -> None:
    alice, bob = device("c1-alice", "phone"), device("c1-bob", "phone")
    if ok:
        cell._check_addressee(alice, bob, "m5", address, sync)
    else:
        with pytest.raises(StepFailure, match="listed"):
            cell._check_addressee(alice, bob, "m5", address, sync)


def test_the_reference_reports_a_fetched_reset_notice_with_its_bytes() -> None:
    """Through a real (embedded) relay: alice's device sends bob's a bare SRS1 notice, as a
    device does when it cannot open a frame; bob's ``live.receive`` reports it as a reset
    entry carrying the fetched bytes, so the gate can scan them (contract §5)."""
    notice = b"SRS1" + bytes(range(32))

    def conversation(adapter: ReferenceAdapter, url: str) -> list[dict[str, Any]]:
        def call(op: str, **args: Any) -> dict[str, Any]:
            answer = handle(adapter, {"id": 1, "op": op, "args": args})
            assert answer["ok"], answer
            result: dict[str, Any] = answer["result"]
            return result

        for user in ("alice", "bob"):
            call("live.device.create", user_id=user, device_id="phone")
            call("live.register", device=f"{user}:phone", relay=url, org="live-gate",
                 otp="000000")
        alice = adapter.live._devices["alice:phone"].connected()
        adapter.live._run(alice._send_reset("bob", "phone", notice))
        return list(call("live.receive", device="bob:phone")["messages"])

    async def run() -> list[dict[str, Any]]:
        async with _relay("embedded", "live-gate") as (url, enrol, _collect):
            await enrol(["alice", "bob"])
            return await asyncio.to_thread(conversation, ReferenceAdapter(), url)

    [entry] = asyncio.run(run())
    assert entry.pop("delivery_id")
    assert entry == {"from": "alice:phone", "envelope_sha256": sha(notice), "reset": True,
                     "body": notice.hex()}
