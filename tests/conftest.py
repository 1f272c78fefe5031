"""Suite-wide collection rules.

``make test`` runs the suite on two pytest-xdist workers (``--dist loadgroup``). Every test
that touches shared machine state — real backends and the Docker engine (``backend``,
``containers``), the Go adapter build (``interop``, ``tests/interop``) — is put in one xdist
group, so those run one at a time on a single worker exactly as in a serial run; everything
else (in-process relays on free loopback ports, pure protocol tests) spreads over both.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

SHARED_STATE_MARKERS = ("backend", "containers", "interop")

# tests/plugin runs the pytest plugin (simulator/pytest_plugin.py) in inner pytest sessions
pytest_plugins = ["pytester"]


@pytest.fixture(scope="session", autouse=True)
def sabotage_from_environment() -> Iterator[None]:
    """``SEMAFORE_SABOTAGE=name[,name]`` runs the whole session with those sabotages on.

    The test-only activation path of the sabotage kill matrix's lower tier
    (simulator.sabotage_matrix.SABOTAGE_ENV, docs/sabotage.md): the library itself never
    reads the environment. An unknown name ends the session with pytest's usage-error exit
    (4), so a typo can never pass for a test that caught the sabotage (exit 1).
    """
    names = [n.strip() for n in os.environ.get("SEMAFORE_SABOTAGE", "").split(",") if n.strip()]
    if not names:
        yield
        return
    from semafore.sabotage import UnknownSabotage, switched_on

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(switched_on(*names))
        except UnknownSabotage as exc:
            pytest.exit(f"SEMAFORE_SABOTAGE: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        shared = any(item.get_closest_marker(name) for name in SHARED_STATE_MARKERS)
        if shared or "tests/interop/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.xdist_group("shared-machine-state"))
