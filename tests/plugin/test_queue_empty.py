"""The relay's ``watch_queue`` → ``queue_empty`` frames (docs/server.md "WebSocket"): the
signal the device expectations wait on instead of sleeping (docs/pytest-plugin.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from semafore.storage.memory import memory_stores
from tests.server.helpers import DeviceSession, World, b64, make_world, messaging_org

BODY = b"DRV1" + bytes(range(68))


@pytest.fixture
def world() -> Iterator[World]:
    w, client = make_world(memory_stores())
    with client:
        yield w


def send(world: World, sender: DeviceSession, to: list[DeviceSession], mid: str) -> None:
    envelopes = [{"device_id": d.device_id, "registration_id": d.registration_id,
                  "body": b64(BODY)} for d in to]
    r = world.client.put(f"/v1/messages/{to[0].user_id}",
                         json={"message_id": mid, "envelopes": envelopes},
                         headers=sender.headers)
    assert r.status_code == 200, r.text


def test_an_empty_queue_is_reported_at_once(world: World) -> None:
    org = messaging_org(world)
    with world.client.websocket_connect("/v1/websocket", headers=org["b1"].headers) as ws:
        ws.send_json({"type": "watch_queue", "request_id": "w1"})
        assert ws.receive_json() == {"type": "queue_empty", "request_id": "w1"}


def test_queue_empty_follows_the_ack_that_empties_the_queue(world: World) -> None:
    org = messaging_org(world)
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    send(world, a1, [b1, b2], "m1")
    send(world, a1, [b1, b2], "m2")
    with world.client.websocket_connect("/v1/websocket", headers=b1.headers) as ws:
        first, second = ws.receive_json(), ws.receive_json()
        ws.send_json({"type": "watch_queue", "request_id": 7})
        ws.send_json({"type": "ack", "delivery_ids": [first["delivery_id"]]})
        # one envelope still queued: the watch is not answered by this ack
        assert ws.receive_json() == {"type": "acked", "delivery_ids": [first["delivery_id"]]}
        ws.send_json({"type": "ack", "delivery_ids": [second["delivery_id"]]})
        frames: list[dict[str, Any]] = [ws.receive_json(), ws.receive_json()]
    assert frames == [{"type": "acked", "delivery_ids": [second["delivery_id"]]},
                      {"type": "queue_empty", "request_id": 7}]
    # b2's queue is its own: still two envelopes there
    assert len(world.client.get("/v1/messages", headers=b2.headers).json()["envelopes"]) == 2


def test_an_envelope_accepted_while_watching_holds_the_answer_back(world: World) -> None:
    org = messaging_org(world)
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    send(world, a1, [b1, b2], "m1")
    with world.client.websocket_connect("/v1/websocket", headers=b1.headers) as ws:
        first = ws.receive_json()
        ws.send_json({"type": "watch_queue", "request_id": "w"})
        send(world, a1, [b1, b2], "m2")
        second = ws.receive_json()
        assert second["message_id"] == "m2"
        ws.send_json({"type": "ack", "delivery_ids": [first["delivery_id"]]})
        assert ws.receive_json()["type"] == "acked"
        ws.send_json({"type": "ack", "delivery_ids": [second["delivery_id"]]})
        assert ws.receive_json()["type"] == "acked"
        assert ws.receive_json() == {"type": "queue_empty", "request_id": "w"}


def test_other_frame_types_are_still_refused_by_name(world: World) -> None:
    org = messaging_org(world)
    with world.client.websocket_connect("/v1/websocket", headers=org["b1"].headers) as ws:
        ws.send_json({"type": "watch", "request_id": "x"})
        refused = ws.receive_json()
    assert refused["error"] == "invalid_frame" and refused["field"] == "type"
    assert "watch_queue" in refused["detail"]
