"""The settings of a relay the harness itself runs: the simulator's fleet, the interop gate's
live run, the live vector transcript and the pytest plugin all start their relay with these.

Test OTP only for the harness's own organisations (ADR-0164: the allow-list, never a blanket
switch), no rate limits (every simulated device shares 127.0.0.1; the unlimited table is
derived from the one rate-limit table, :func:`~semafore.server.settings.unlimited_rate_limits`),
no connection cap below the descriptor limit, and the caller's clock (a seeded run's manual
clock, so relay-side timestamps replay too).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from semafore.client.clock import Clock
from semafore.server.settings import Settings, unlimited_rate_limits


def relay_settings(orgs: Iterable[str], clock: Clock, **overrides: Any) -> Settings:
    """Relay settings for a harness run on ``orgs``; ``overrides`` replace any field."""
    options: dict[str, Any] = {
        "test_mode": True,
        "test_orgs": frozenset(orgs),
        "rate_limits": unlimited_rate_limits(),
        "retention_interval": 0,
        "clock": clock.now,
        "max_devices_per_user": 64,
        # a thousand devices hold a socket and an HTTP connection each (clamped below the
        # file-descriptor limit by semafore.server.serving, which also sizes the accept
        # backlog from it), and keep their HTTP connections alive across a scenario's pauses
        "max_connections": 65536,
        "keep_alive_timeout": 600.0,
    }
    options.update(overrides)
    return Settings(**options)
