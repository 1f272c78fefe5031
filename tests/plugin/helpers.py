"""Inner pytest sessions for the plugin tests: the plugin is loaded as a platform team's
session loads it (the ``semafore`` pytest11 entry point once the package is installed with
it; until then by module name, never both: pytest refuses a plugin registered twice)."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

PLUGIN_MODULE = "simulator.pytest_plugin"


def plugin_args() -> list[str]:
    """Command-line arguments that load the plugin into an inner session exactly once."""
    installed = any(ep.name == "semafore" and ep.value == PLUGIN_MODULE
                    for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", PLUGIN_MODULE]


def run_inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """An inner session in a subprocess (a user's session: its own loggers, sabotage switches
    and event loop), bounded in time."""
    return pytester.runpytest_subprocess(
        *plugin_args(), "-p", "no:cacheprovider", "-o", "timeout=120", *args, timeout=300
    )
