"""Fixture plumbing of the storage conformance suite.

Every ``tests/storage/factory_*.py`` module exposes ``FACTORIES``: a mapping from adapter name
to ``factory(tmp_path) -> async context manager yielding Stores`` (and optionally ``MARKS``,
pytest marks applied to all its params, e.g. ``pytest.mark.backend``). ``test_conformance.py``
runs unchanged against every factory found, so a new adapter adds one file and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from semafore.storage.ports import Stores

StoreFactory = Callable[[Path], AbstractAsyncContextManager[Stores]]


def _discover() -> list[Any]:
    params = []
    package = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(package)]), key=lambda i: i.name):
        if not info.name.startswith("factory_"):
            continue
        module = importlib.import_module(f"tests.storage.{info.name}")
        marks = list(getattr(module, "MARKS", []))
        for name, factory in module.FACTORIES.items():
            params.append(pytest.param(factory, id=name, marks=marks))
    return params


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=_discover())
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    factory: StoreFactory = request.param
    async with factory(tmp_path) as opened:
        yield opened
