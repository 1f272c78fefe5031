"""Typed failures of the infrastructure layer, each naming what broke."""

from __future__ import annotations


class InfraError(Exception):
    """Base class of every infrastructure failure."""


class SettingsError(InfraError):
    """A provider setting is missing or malformed; ``field`` names the environment variable."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class BackendUnavailableError(InfraError):
    """A backend could not be started or did not become healthy in time.

    ``backend`` is "mongodb", "redis", "seaweedfs", "dockerd" or a process name;
    ``log_tail`` carries the last lines the process wrote, for the test report.
    """

    def __init__(self, backend: str, reason: str, log_tail: str = "") -> None:
        message = f"{backend}: {reason}"
        if log_tail:
            message += f"\n--- last output of {backend} ---\n{log_tail}"
        super().__init__(message)
        self.backend = backend
        self.reason = reason
        self.log_tail = log_tail


class ToolMissingError(BackendUnavailableError):
    """A binary the local provider runs is nowhere it looks: ``tool`` names the binary,
    ``tools_dir`` is the tools directory searched (its ``bin/``) before the interpreter's bin
    and PATH. The message says how to install it (docs/backends.md)."""

    def __init__(self, tool: str, tools_dir: str, source: str) -> None:
        super().__init__(
            tool,
            f"not installed: looked in {tools_dir}/bin, the interpreter's bin directory and "
            f"PATH ({source}). Install it with scripts/install-backends.sh from a checkout "
            f"(SEMAFORE_TOOLS_DIR=<dir> picks where it goes), or set SEMAFORE_TOOLS_DIR to a "
            f"directory whose bin/ holds {tool}",
        )
        self.tool = tool
        self.tools_dir = tools_dir


class FaultError(InfraError):
    """A fault could not be applied (target not started, already stopped, unsupported)."""


class RelayStartError(InfraError):
    """A relay this harness launched did not start serving; ``relay`` names it."""

    def __init__(self, relay: str, reason: str) -> None:
        super().__init__(f"{relay}: {reason}")
        self.relay = relay
        self.reason = reason
