"""docs/adapter-contract.md §5 "State and secrets": the ``state>`` / ``state<`` exchange is
what the reference adapter and the Go adapter answer (issue 15 item 2), replayed in ``id``
order against an embedded relay: ``RELAY`` is its URL, ``STATE`` the state id 68 exported,
``"…"`` a run-dependent value. Error ``detail`` is free text. A clone carries the original's
identity, a restore keeps it; both adapters report the secrets they derive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle
from semafore.gate.live import _relay
from tests.gate.test_live_contract_doc import matches

from .conftest import ROOT, Adapter

Call = Callable[[dict[str, Any]], dict[str, Any]]


def documented() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    lines = (ROOT / "docs" / "adapter-contract.md").read_text(encoding="utf-8").splitlines()
    pairs = [(line.removeprefix("state> "), lines[i + 1].removeprefix("state< "))
             for i, line in enumerate(lines)
             if line.startswith("state> ") and i + 1 < len(lines)
             and lines[i + 1].startswith("state< ")]
    return sorted(((json.loads(q), json.loads(a)) for q, a in pairs), key=lambda p: p[0]["id"])


def _without_detail(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "detail"}


def replay(call: Call) -> None:
    pairs = documented()
    assert {q["op"] for q, _ in pairs} >= {"live.state.export", "live.state.import",
                                           "live.secrets"}

    async def run() -> None:
        async with _relay("embedded", "live-gate") as (url, enrol, _dump):
            assert enrol is not None
            await enrol(["carol", "dave"])
            state = ""
            bundles: dict[int, dict[str, Any]] = {}
            for request, expected in pairs:
                sent = json.loads(json.dumps(request).replace("RELAY", url)
                                  .replace('"STATE"', json.dumps(state)))
                answer = await asyncio.to_thread(call, sent)
                assert matches(_without_detail(expected), _without_detail(answer)), \
                    (request, answer)
                if request["op"] == "live.state.export":
                    state = answer["result"]["state"]
                if answer.get("ok") and "bundle" in answer["result"]:
                    bundles[request["id"]] = answer["result"]["bundle"]
            identity = (bundles[60]["ik"], bundles[60]["sik"])
            assert (bundles[71]["ik"], bundles[71]["sik"]) == identity  # restored: the same
            assert (bundles[72]["ik"], bundles[72]["sik"]) == identity  # the clone's is carol's
            assert (bundles[61]["ik"], bundles[61]["sik"]) != identity

    asyncio.run(run())


def test_the_reference_adapter_answers_the_documented_state_exchange() -> None:
    adapter = ReferenceAdapter()
    replay(lambda request: handle(adapter, request))


def test_the_go_adapter_answers_the_documented_state_exchange(go_adapter: Path) -> None:
    go = Adapter([str(go_adapter)])
    try:
        replay(lambda request: go.raw(json.dumps(request)))
    finally:
        go.close()


def _reports_the_secrets_it_derives(call: Call) -> None:
    secrets = next(a for q, a in documented() if q["id"] == 70)
    assert secrets["result"]["secrets"] == "…"  # shown in prose; checked here for real
    assert call({"id": 1, "op": "live.secrets", "args": {}})["result"] == {
        "secrets": [], "dropped": 0}
    call({"id": 2, "op": "live.device.create",
          "args": {"user_id": "carol", "device_id": "phone", "seed": "s"}})
    out = call({"id": 3, "op": "live.secrets", "args": {}})["result"]
    kinds = {s["kind"] for s in out["secrets"]}
    assert {"IK private", "SIK seed", "SPK private", "OPK private"} <= kinds
    assert all(len(bytes.fromhex(s["value"])) == 32 for s in out["secrets"])
    assert call({"id": 4, "op": "live.secrets", "args": {}})["result"]["secrets"] == []


def test_the_reference_reports_the_secrets_it_derives() -> None:
    adapter = ReferenceAdapter()
    _reports_the_secrets_it_derives(lambda request: handle(adapter, request))


def test_the_go_adapter_reports_the_secrets_it_derives(go_adapter: Path) -> None:
    go = Adapter([str(go_adapter)])
    try:
        _reports_the_secrets_it_derives(lambda request: go.raw(json.dumps(request)))
    finally:
        go.close()


pytestmark = [pytest.mark.interop]
