"""Suite-wide collection rules.

``make test`` runs the suite on two pytest-xdist workers (``--dist loadgroup``). Every test
that touches shared machine state — real backends and the Docker engine (``backend``,
``containers``), the Go adapter build (``interop``, ``tests/interop``) — is put in one xdist
group, so those run one at a time on a single worker exactly as in a serial run; everything
else (in-process relays on free loopback ports, pure protocol tests) spreads over both.
"""

from __future__ import annotations

import pytest

SHARED_STATE_MARKERS = ("backend", "containers", "interop")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        shared = any(item.get_closest_marker(name) for name in SHARED_STATE_MARKERS)
        if shared or "tests/interop/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.xdist_group("shared-machine-state"))
