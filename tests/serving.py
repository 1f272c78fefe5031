"""Shared by tests that start ``semafore serve`` as a process of its own."""

from __future__ import annotations

import subprocess
import time

import httpx


def wait_until_serving(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Return once ``url``'s health endpoint answers; fail if ``proc`` exits or ``timeout``
    passes first (a relay that never came up must not read as one that refused an attack)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/v1/health", timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
            time.sleep(0.1)
