"""A backend that cannot serve a call now (``StorageUnavailable``; seed §3.5) is answered 503
``storage_unavailable`` with ``Retry-After``, a status the client's retry policy retries, and
the same call succeeds once the backend is back: never an unexpected 500, and nothing is
acknowledged that was not stored. The SeaweedFS adapter turns a filer it cannot reach into
that error as well as a filer that answers one (e.g. no live volume server holds the blob)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from typing import Any

import pytest

from semafore.client.transport import RETRY_STATUSES
from semafore.storage.memory import memory_stores
from semafore.storage.ports import StorageUnavailable
from semafore.storage.seaweedfs import SeaweedfsBlobStore, SeaweedfsError
from tests.server.helpers import b64, make_world

OCTET = {"content-type": "application/octet-stream"}


def _unavailable_once(store: Any, name: str) -> list[StorageUnavailable]:
    """Make ``store.name`` raise once, as an adapter whose backend is down does."""
    real = getattr(store, name)
    failures: list[StorageUnavailable] = [SeaweedfsError(f"{name}: filer answered 500")]

    async def failing(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    setattr(store, name, failing)
    return failures


def test_an_attachment_whose_blob_tier_is_down_is_a_503_to_retry() -> None:
    stores = memory_stores()
    world, client = make_world(stores)
    world.signup("acme", "alice")
    alice = world.login("acme", "alice", "a1", admin=True)
    world.add_member(alice, "bob")
    bob = world.login("acme", "bob", "b1")
    data = os.urandom(3000)
    declared = client.post("/v1/attachments", headers=alice.headers, json={
        "size": len(data), "sha256": b64(hashlib.sha256(data).digest()), "recipients": ["bob"]})
    assert declared.status_code == 201, declared.text
    path = f"/v1/attachments/{declared.json()['file_id']}"

    pending = _unavailable_once(stores.blobs, "put")
    refused = client.put(path, content=data, headers={**alice.headers, **OCTET})
    assert not pending and refused.status_code == 503, refused.text
    assert refused.json()["error"] == "storage_unavailable"
    assert refused.headers["Retry-After"] == "1" and refused.status_code in RETRY_STATUSES
    # nothing was acknowledged: the upload is not committed, so bob cannot fetch it yet
    assert client.get(path, headers=bob.headers).status_code == 404
    assert client.put(path, content=data, headers={**alice.headers, **OCTET}).status_code == 204

    pending = _unavailable_once(stores.blobs, "get")
    refused = client.get(path, headers=bob.headers)
    assert not pending and refused.status_code == 503, refused.text
    assert refused.json()["error"] == "storage_unavailable"
    got = client.get(path, headers=bob.headers)
    assert got.status_code == 200 and got.content == data


@pytest.mark.parametrize("call", ["put", "get", "delete", "keys"])
def test_a_filer_that_cannot_be_reached_is_storage_unavailable(call: str) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = SeaweedfsBlobStore(f"http://127.0.0.1:{port}", "/unavailable", timeout=2.0)

    async def body() -> None:
        try:
            args: tuple[Any, ...] = {"put": ("k", b"x"), "get": ("k",), "delete": ("k",),
                                     "keys": ()}[call]
            with pytest.raises(StorageUnavailable) as raised:
                await getattr(store, call)(*args)
            assert isinstance(raised.value, SeaweedfsError)
            assert str(raised.value).startswith(f"{call}: filer unreachable")
        finally:
            await store.close()

    asyncio.run(body())
