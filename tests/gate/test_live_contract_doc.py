"""docs/adapter-contract.md §5 shows real live exchanges (``live>`` / ``live<`` lines): one
session, replayed in ``id`` order against the reference adapter and an embedded relay, every
answer must match, with ``"…"`` for a run-dependent value and ``RELAY`` for the relay's URL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle
from semafore.gate.live import _relay

ROOT = Path(__file__).resolve().parents[2]
ANY = "…"


def documented_pairs() -> list[tuple[str, str]]:
    lines = (ROOT / "docs" / "adapter-contract.md").read_text(encoding="utf-8").splitlines()
    return [
        (line.removeprefix("live> "), lines[i + 1].removeprefix("live< "))
        for i, line in enumerate(lines)
        if line.startswith("live> ") and i + 1 < len(lines) and lines[i + 1].startswith("live< ")
    ]


def matches(expected: Any, actual: Any) -> bool:
    if expected == ANY:
        return actual is not None
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and expected.keys() == actual.keys()
                and all(matches(v, actual[k]) for k, v in expected.items()))
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(matches(e, a) for e, a in zip(expected, actual, strict=True)))
    return bool(expected == actual)


def test_matches_only_wildcards_what_is_marked() -> None:
    assert matches({"a": ANY, "b": [1]}, {"a": 7, "b": [1]})
    assert not matches({"a": ANY, "b": [1]}, {"a": 7, "b": [2]})
    assert not matches({"a": ANY}, {"a": 7, "extra": 1})


def test_the_documented_live_exchanges_are_what_the_reference_answers() -> None:
    pairs = sorted(documented_pairs(), key=lambda pair: json.loads(pair[0])["id"])
    assert len(pairs) >= 10
    ops = {json.loads(request)["op"] for request, _ in pairs}
    assert {"live.device.create", "live.register", "live.send", "live.receive",
            "live.reinstall", "session.digest"} <= ops

    async def replay() -> None:
        async with _relay("embedded", "live-gate") as (url, enrol, _dump):
            assert enrol is not None
            await enrol(["alice", "bob"])
            adapter = ReferenceAdapter()
            for request, response in pairs:
                sent = json.loads(request.replace("RELAY", url))
                answer = await asyncio.to_thread(handle, adapter, sent)
                assert matches(json.loads(response), answer), (request, answer)

    asyncio.run(replay())
