"""An open WebSocket ends with its session (ADR-0163), even when the device says nothing:
token expiry and family revocation are re-checked by a watchdog at most every
``Settings.session_recheck`` seconds, not by a store read per frame."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from semafore.storage.memory import memory_stores
from tests.server.helpers import World, make_world


def socket_world(**settings: Any) -> tuple[World, Any]:
    return make_world(memory_stores(), session_recheck=0.05, **settings)


def test_an_idle_push_only_socket_closes_when_its_token_expires() -> None:
    world, client = socket_world()
    with client:
        world.signup("acme", "alice")
        s = world.login("acme", "alice", "a1", admin=True)
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("/v1/websocket", headers=s.headers) as ws,
        ):
            world.clock.advance(901)  # access tokens live 900 s
            ws.receive_json()  # nothing sent: the watchdog notices
        assert closed.value.code == 4401


def test_an_idle_socket_closes_when_another_replica_revoked_its_family() -> None:
    """The revocation reached only the store (e.g. another replica's logout): the socket
    still ends within the re-check interval."""
    world, client = socket_world()
    with client:
        world.signup("acme", "alice")
        s = world.login("acme", "alice", "a1", admin=True)
        relay = client.app.state.relay
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("/v1/websocket", headers=s.headers) as ws,
        ):
            family = next(iter(relay.hub._connections))  # the socket is registered
            assert family == ("alice", "a1")
            principal = client.portal.call(relay.authenticate, s.access_token)
            client.portal.call(relay.stores.tokens.revoke_family, principal.family_id)
            ws.receive_json()
        assert closed.value.code == 4401


def test_a_live_socket_keeps_working_within_its_session() -> None:
    world, client = socket_world()
    with client:
        world.signup("acme", "alice")
        s = world.login("acme", "alice", "a1", admin=True)
        with client.websocket_connect("/v1/websocket", headers=s.headers) as ws:
            world.clock.advance(899)
            ws.send_json({"type": "ack", "delivery_ids": ["x"]})
            assert ws.receive_json() == {"type": "acked", "delivery_ids": []}
