"""Conformance factory of the real-backend adapters (MongoDB/FerretDB + Redis + SeaweedFS) on
the shared `local` provider; each test gets its own namespace, wiped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from semafore.deploy.settings import ProviderKind
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import shared_provider
from semafore.storage.ports import Stores


@asynccontextmanager
async def local(tmp_path: Path) -> AsyncIterator[Stores]:
    provider = shared_provider(ProviderKind.LOCAL)
    stores, handles = await backend_stores(provider.endpoints, f"t{uuid.uuid4().hex[:16]}")
    try:
        yield stores
    finally:
        await handles.drop()
        await handles.close()


FACTORIES = {"local": local}
MARKS = [pytest.mark.backend]
