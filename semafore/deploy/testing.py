"""Test-suite glue: the one place that decides what happens when a backend cannot start.

Locally a missing ``redis-server`` or Docker engine skips the tests that need it (with the
reason); in CI (``CI=true``) it FAILS them, so a broken install can never turn the backend
tiers into a silent green. Shared providers are started once per test process (the
"one shared set of containers per session" rule) and stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from semafore.deploy.errors import BackendUnavailableError, InfraError
from semafore.deploy.health import redis_ping
from semafore.deploy.processes import ManagedProcess, ProcessSpec, find_tool, free_ports
from semafore.deploy.providers import Provider
from semafore.deploy.redis_server import redis_server_argv
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.settings import LOCAL_IMAGES, PROJECT_ROOT, InfraSettings, ProviderKind

_shared: dict[ProviderKind, Provider] = {}
_failures: dict[ProviderKind, str] = {}
_lock = threading.Lock()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip (locally) or fail (CI) the current test because a backend is unavailable."""
    import pytest  # noqa: PLC0415 (pytest: a dev dependency, absent from an installed wheel)

    if in_ci():
        pytest.fail(f"backend unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"backend unavailable: {reason}")


def require(start: Callable[[], Provider]) -> Provider:
    """Run ``start`` (which returns a started provider); map startup failure to skip/fail."""
    try:
        return start()
    except InfraError as exc:
        unavailable(str(exc))


def redis_server_binary() -> Path:
    """The ``redis-server`` the ``local`` provider runs (its tools directory first, then
    PATH); unavailable (skip here, fail in CI) when it is not installed."""
    tools = InfraSettings.from_env({**os.environ, "SEMAFORE_PROVIDER": "embedded"}).tools_dir
    found = find_tool("redis-server", extra_dirs=(tools / "bin",))
    if found is None:
        unavailable("redis-server is not installed (Debian package redis-server)")
    return found


def started_redis_server(root: Path, name: str, *extra: str) -> tuple[ManagedProcess, int]:
    """A started ``redis-server`` of a test's own (not the shared provider's: a test that
    kills it, replicates it or changes its users must not disturb the others) on a free
    loopback port, its data in ``root/name`` and its log beside it; ``extra`` as
    :func:`redis_server_argv` takes it. Unavailable when it cannot start."""
    binary = redis_server_binary()
    [port] = free_ports(1)
    data = root / name
    data.mkdir()
    server = ManagedProcess(ProcessSpec(
        name, redis_server_argv(binary, port, data, *extra),
        lambda: redis_ping("127.0.0.1", port), root / f"{name}.log", cwd=data))
    try:
        server.start()
    except InfraError as exc:
        server.stop()
        unavailable(str(exc))
    return server, port


def _stop_shared() -> None:
    for provider in list(_shared.values()):
        provider.stop()
    _shared.clear()


atexit.register(_stop_shared)


def shared_provider(kind: ProviderKind) -> Provider:
    """A started provider of ``kind`` shared by every test in this process.

    A failed start is remembered, so a missing engine costs one attempt, not one per test.
    Tests using it must leave the backends running (faults get their own provider) and
    isolate their data by name (database, key prefix, path prefix).
    """
    with _lock:
        if kind in _failures:
            unavailable(_failures[kind])
        if kind not in _shared:
            base = InfraSettings.from_env()
            settings = InfraSettings(**{**base.__dict__, "provider": kind})
            provider = provider_from_settings(settings)
            try:
                provider.start()
            except BackendUnavailableError as exc:
                _failures[kind] = str(exc)
                unavailable(str(exc))
            except InfraError as exc:
                _failures[kind] = str(exc)
                unavailable(str(exc))
            _shared[kind] = provider
        return _shared[kind]


def stop_shared() -> None:
    """Stop the shared providers now (pytest session finish); atexit does it otherwise."""
    with _lock:
        _stop_shared()


_engine = {"started": False}
BASH = shutil.which("bash") or "/bin/bash"


def _stop_engine() -> None:
    stop_shared()  # containers first, then the engine they run on
    # another test session may have started containers on the engine this one started:
    # leave it running for them (the last session out, or dockerd.sh stop, stops it)
    others = subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=semafore.deploy=1"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if others.returncode == 0 and others.stdout.strip():
        return
    subprocess.run(
        [BASH, str(PROJECT_ROOT / "scripts/dockerd.sh"), "stop"], check=False, timeout=60
    )


def prepare_container_engine() -> None:
    """Make the containers tier runnable on a machine without a registry.

    Starts our own dockerd if no engine answers (stopped again at exit), and — unless
    ``SEMAFORE_CONTAINER_IMAGES=upstream`` — builds the local images and points each
    ``SEMAFORE_*_IMAGE`` the user did not set at them. Raises BackendUnavailableError.
    """
    if _engine.get("prepared"):
        return
    scripts = PROJECT_ROOT / "scripts"
    started = subprocess.run(
        [BASH, str(scripts / "dockerd.sh"), "start"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if started.returncode != 0:
        raise BackendUnavailableError("dockerd", started.stderr.strip() or "did not start")
    os.environ.setdefault("DOCKER_HOST", started.stdout.strip().splitlines()[-1])
    if "ready on" in started.stderr and not _engine["started"]:
        _engine["started"] = True
        atexit.register(_stop_engine)
    if os.environ.get("SEMAFORE_CONTAINER_IMAGES", "local") == "upstream":
        _engine["prepared"] = True
        return
    built = subprocess.run(
        [BASH, str(scripts / "build-images.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if built.returncode != 0:
        raise BackendUnavailableError("build-images", built.stderr.strip()[-2000:])
    for backend, image in LOCAL_IMAGES.items():
        os.environ.setdefault(f"SEMAFORE_{backend.upper()}_IMAGE", image)
    _engine["prepared"] = True
