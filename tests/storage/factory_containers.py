"""Conformance factory of the real-backend adapters on the shared `containers` provider (one
set of containers for the whole session; local images unless SEMAFORE_CONTAINER_IMAGES=upstream).
Each test gets its own namespace, wiped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from semafore.deploy.errors import InfraError
from semafore.deploy.settings import ProviderKind
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import prepare_container_engine, shared_provider, unavailable
from semafore.storage.ports import Stores


@asynccontextmanager
async def containers(tmp_path: Path) -> AsyncIterator[Stores]:
    try:
        prepare_container_engine()
    except InfraError as exc:
        unavailable(str(exc))
    provider = shared_provider(ProviderKind.CONTAINERS)
    stores, handles = await backend_stores(provider.endpoints, f"t{uuid.uuid4().hex[:16]}")
    try:
        yield stores
    finally:
        await handles.drop()
        await handles.close()


FACTORIES = {"containers": containers}
MARKS = [pytest.mark.backend, pytest.mark.containers]
