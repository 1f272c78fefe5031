"""docs/adapter-contract.md holds for both adapters: its example exchanges, replayed against the
Go adapter (the reference replays them in tests/gate), and its rule that a refused send uses up
message keys, checked on the reference and the Go adapter through a real relay.

The refused-send rule is also run against a deliberately broken reference build that rewinds
its sessions when the relay refuses a send, so the check is shown to fail on the defect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle
from semafore.client.client import DeviceClient
from semafore.client.device import Device
from semafore.client.errors import ServerRejected
from semafore.gate.live import _relay
from tests.gate.test_live_contract_doc import ANY, documented_pairs, matches

from .conftest import ROOT, Adapter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(600)]

CONTRACT = ROOT / "docs" / "adapter-contract.md"
IDENTITY = ("name", "version", "protocol")  # informational capabilities fields
OWN_STATE_READERS = ("live.state.attack",)
"""Operations only an adapter whose state the harness cannot read lists (contract §5)."""
Call = Callable[..., dict[str, Any]]


def documented_static_pairs() -> list[tuple[str, str]]:
    lines = CONTRACT.read_text(encoding="utf-8").splitlines()
    return [
        (line[2:], lines[i + 1][2:])
        for i, line in enumerate(lines)
        if line.startswith("> {") and i + 1 < len(lines) and lines[i + 1].startswith("< {")
    ]


def comparable(response: dict[str, Any]) -> dict[str, Any]:
    """What the gate compares: everything but ``detail`` (free text) and the informational
    identity of ``capabilities``."""
    out = {key: value for key, value in response.items() if key != "detail"}
    result = out.get("result")
    if isinstance(result, dict) and "ops" in result:
        out["result"] = {key: value for key, value in result.items() if key not in IDENTITY}
        out["result"]["ops"] = [op for op in result["ops"] if op not in OWN_STATE_READERS]
    return out


def test_the_documented_exchanges_are_what_the_go_adapter_answers(go_adapter: Path) -> None:
    pairs = documented_static_pairs()
    assert len(pairs) >= 20
    ops = {json.loads(request)["op"] for request, _ in pairs}
    assert {"spk.sign", "x3dh.initiate", "x3dh.respond", "dr.init", "dr.encrypt"} <= ops
    go = Adapter([str(go_adapter)])
    try:
        for request, response in pairs:
            answer = go.raw(request)
            assert comparable(answer) == comparable(json.loads(response)), request
    finally:
        go.close()


# -- a refused send uses up message keys (docs/adapter-contract.md, live.send) --------------


async def accepted_counters_after_a_refusal(call: Callable[..., Any]) -> tuple[int, int]:
    """Alice and Bob converse, Bob adds a tablet Alice does not know, Alice sends: the relay
    refuses (409 missing), Alice repairs and sends again. Returns (PN, N) of the DR_V1 frame
    the relay accepted for bob:phone, after checking bob:phone opens it."""
    async with _relay("embedded", "live-gate") as (url, enrol, _collect):
        assert enrol is not None
        await enrol(["alice", "bob"])

        async def ok(op: str, **args: Any) -> dict[str, Any]:
            answer = await asyncio.to_thread(call, op, **args)
            assert answer["ok"], (op, answer)
            result: dict[str, Any] = answer["result"]
            return result

        async def device(user: str, name: str) -> None:
            await ok("live.device.create", user_id=user, device_id=name, seed="refused-send")
            await ok(
                "live.register", device=f"{user}:{name}", relay=url, org="live-gate", otp="000000"
            )

        await device("alice", "phone")
        await device("bob", "phone")
        await ok("live.send", device="alice:phone", to="bob", plaintext="01", message_id="m-1")
        await ok("live.receive", device="bob:phone")
        await ok("live.send", device="bob:phone", to="alice", plaintext="02", message_id="m-2")
        await ok("live.receive", device="alice:phone")
        await device("bob", "tablet")
        sent = await ok(
            "live.send", device="alice:phone", to="bob", plaintext="03", message_id="m-3"
        )
        bodies = {env["to"]: bytes.fromhex(env["body"]) for env in sent["envelopes"]}
        assert set(bodies) == {"bob:phone", "bob:tablet"}  # the repaired device set
        frame = bodies["bob:phone"]
        assert frame[:4] == b"DRV1"
        got = await ok("live.receive", device="bob:phone")
        assert [m.get("plaintext") for m in got["messages"]] == ["03"]
        return int.from_bytes(frame[36:40], "big"), int.from_bytes(frame[40:44], "big")


def subprocess_call(adapter: Adapter) -> Call:
    def call(op: str, **args: Any) -> dict[str, Any]:
        return adapter.call(op, **args)

    return call


def in_process_call(adapter: ReferenceAdapter) -> Call:
    counter = iter(range(1, 1 << 30))

    def call(op: str, **args: Any) -> dict[str, Any]:
        return handle(adapter, {"id": next(counter), "op": op, "args": args})

    return call


@pytest.fixture(params=["reference", "go"])
def adapter_command(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "go":
        return [str(request.getfixturevalue("go_adapter"))]
    return [sys.executable, "-m", "semafore.adapter"]


def test_a_refused_send_uses_up_the_message_keys_it_encrypted_with(
    adapter_command: list[str],
) -> None:
    """The refused attempt encrypted bob:phone's frame with N = 0 of Alice's new chain; the
    repaired send must use N = 1 (PN = 1: her first chain had one message), never N = 0 again."""
    adapter = Adapter(adapter_command)
    try:
        counters = asyncio.run(accepted_counters_after_a_refusal(subprocess_call(adapter)))
    finally:
        adapter.close()
    assert counters == (1, 1)


@contextlib.contextmanager
def rewinding_refused_sends() -> Iterator[None]:
    """TEST ONLY broken build: the reference client restores its device state (every session)
    to the snapshot taken before the attempt whenever the relay refuses a send."""
    prepare, send = DeviceClient._prepare, DeviceClient._send_envelopes
    snapshots: dict[int, bytes] = {}

    async def snapshot_prepare(self: DeviceClient, user_id: str) -> Any:
        snapshots[id(self)] = self.device.serialize()
        return await prepare(self, user_id)

    async def rewind_on_refusal(self: DeviceClient, *args: Any) -> Any:
        try:
            return await send(self, *args)
        except ServerRejected:
            self.device = Device.parse(snapshots[id(self)])
            raise

    DeviceClient._prepare = snapshot_prepare  # type: ignore[method-assign]
    DeviceClient._send_envelopes = rewind_on_refusal  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        DeviceClient._prepare = prepare  # type: ignore[method-assign]
        DeviceClient._send_envelopes = send  # type: ignore[method-assign]


def test_a_build_that_rewinds_refused_sends_reuses_a_message_key() -> None:
    with rewinding_refused_sends():
        counters = asyncio.run(
            accepted_counters_after_a_refusal(in_process_call(ReferenceAdapter()))
        )
    assert counters == (1, 0)  # the key of the refused frame sealed the accepted one too


# -- the live examples (§5) --------------------------------------------------------------------


def platform_neutral(expected: Any) -> Any:
    """The documented answer with what the contract leaves to the platform wildcarded: how a
    ``seed`` maps to keys and key ids (every ``bundle`` value but ``opk_count``) and so the
    session digests (whose equality across peers is checked separately)."""
    if not isinstance(expected, dict):
        return expected
    out: dict[str, Any] = {}
    for key, value in expected.items():
        if key == "bundle" and isinstance(value, dict):
            out[key] = {k: (v if k == "opk_count" else ANY) for k, v in value.items()}
        elif key == "digest":
            out[key] = ANY
        else:
            out[key] = platform_neutral(value)
    return out


def test_the_documented_live_exchanges_hold_for_the_go_adapter(go_adapter: Path) -> None:
    pairs = sorted(documented_pairs(), key=lambda pair: json.loads(pair[0])["id"])
    assert len(pairs) >= 10
    digests: dict[str, str] = {}

    async def replay() -> None:
        async with _relay("embedded", "live-gate") as (url, enrol, _collect):
            assert enrol is not None
            await enrol(["alice", "bob"])
            go = Adapter([str(go_adapter)])
            try:
                for request, response in pairs:
                    sent = json.loads(request.replace("RELAY", url))
                    answer: Any = await asyncio.to_thread(go.raw, json.dumps(sent))
                    want = platform_neutral(json.loads(response))
                    want.pop("detail", None)  # free text: the gate never compares it
                    got = {key: value for key, value in answer.items() if key != "detail"}
                    assert matches(want, got), (request, answer)
                    if sent["op"] == "session.digest":
                        digests[sent["args"]["device"]] = answer["result"]["digest"]
            finally:
                go.close()

    asyncio.run(replay())
    assert digests["alice:phone"] == digests["bob:phone"]  # two peers at rest agree (SPEC §7)
