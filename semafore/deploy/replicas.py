"""N reference-server replicas as separate processes on one shared backend set (seed §3.4:
horizontally scaled replicas sharing state in MongoDB and Redis), each under the same fault
controls as a backend (stop, kill -9, pause, restart).

A replica is ``python -m semafore.deploy.replicas``: it reads the backends from the
environment (:meth:`Endpoints.as_env`, i.e. ``SEMAFORE_PROVIDER=external`` + URLs), opens the
real-backend stores in ``SEMAFORE_NAMESPACE`` and serves the relay on
``127.0.0.1:SEMAFORE_REPLICA_PORT``. All replicas share ``SEMAFORE_JWT_SECRET`` so a token
issued by one is honoured by the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from semafore.deploy import health
from semafore.deploy.errors import SettingsError
from semafore.deploy.foreground import serve_until_signalled
from semafore.deploy.listener import bind_loopback
from semafore.deploy.processes import ManagedProcess, ProcessSpec, free_ports
from semafore.deploy.providers import Endpoints
from semafore.deploy.settings import InfraSettings, ProviderKind
from semafore.deploy.stores import backend_stores
from semafore.server.app import create_app
from semafore.server.relay_key import derive
from semafore.server.settings import Settings, unlimited_rate_limits


class ReplicaSet:
    """``count`` relay processes on ``endpoints``; ``urls[i]`` is replica i's base URL."""

    def __init__(
        self,
        endpoints: Endpoints,
        count: int,
        work_dir: Path,
        *,
        namespace: str = "semafore",
        test_orgs: tuple[str, ...] = (),
        unlimited_rates: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        if endpoints.embedded:
            raise SettingsError("endpoints", "replicas need shared backends, not embedded")
        if count < 1:
            raise SettingsError("count", "at least one replica")
        self.endpoints = endpoints
        self.ports = free_ports(count)
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        env = dict(os.environ)
        env.update(endpoints.as_env())
        env.update(
            {
                "SEMAFORE_NAMESPACE": namespace,
                "SEMAFORE_JWT_SECRET": secrets.token_hex(32),
                "SEMAFORE_TEST_ORGS": ",".join(test_orgs),
                "SEMAFORE_UNLIMITED_RATES": "1" if unlimited_rates else "",
            }
        )
        env.update(extra_env or {})
        self.replicas: list[ManagedProcess] = []
        for index, port in enumerate(self.ports):
            replica_env = {
                **env,
                "SEMAFORE_REPLICA_PORT": str(port),
                "SEMAFORE_REPLICA_NAME": f"replica-{index}",
            }
            url = self.urls[index]
            spec = ProcessSpec(
                f"replica-{index}",
                [sys.executable, "-m", "semafore.deploy.replicas"],
                lambda url=url: health.http_status(url + "/v1/health") == 200,  # type: ignore[misc]
                work_dir / f"replica-{index}.log",
                env=replica_env,
                startup_timeout=60,
                stop_timeout=5,
            )
            self.replicas.append(ManagedProcess(spec))

    def start(self) -> ReplicaSet:
        try:
            for replica in self.replicas:
                replica.start(wait=False)
            for replica in self.replicas:
                replica.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def __enter__(self) -> ReplicaSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def endpoints_from_env() -> Endpoints:
    """The external backend URLs a relay on real backends uses (``SEMAFORE_*_URL``, as
    ``semafore backends up`` prints them)."""
    settings = InfraSettings.from_env()
    if settings.provider is not ProviderKind.EXTERNAL:
        raise SettingsError("SEMAFORE_PROVIDER", "a relay on real backends needs external URLs")
    return Endpoints(
        ProviderKind.EXTERNAL,
        settings.mongodb_url,
        settings.redis_url,
        settings.seaweedfs_filer_url,
        settings.seaweedfs_s3_url,
        redis_wait=settings.redis_wait,
    )


async def serve_on_backends(
    endpoints: Endpoints,
    relay_settings: Settings,
    sock: socket.socket,
    *,
    namespace: str = "semafore",
    replica_name: str | None = None,
    redis_push: bool = True,
) -> None:
    """Serve the relay on ``sock`` with its state in MongoDB, Redis and SeaweedFS.

    ``redis_push`` uses the cross-replica push hub (docs/backends.md); without it a device on
    another replica sees new envelopes only on its next fetch.
    """
    stores, handles = await backend_stores(endpoints, namespace)
    push = handles.push_hub(replica_name or f"replica-{os.getpid()}") if redis_push else None
    try:
        await serve_until_signalled(create_app(relay_settings, stores, push), relay_settings, sock)
    finally:
        await handles.close()


async def _serve() -> None:
    secret = bytes.fromhex(os.environ["SEMAFORE_JWT_SECRET"])
    orgs = frozenset(o for o in os.environ.get("SEMAFORE_TEST_ORGS", "").split(",") if o)
    # Every replica of a set must open the TOTP seeds any other sealed (issue #13 F-11): the
    # sealing key is derived from the secret the whole set shares, never drawn per process.
    relay_settings = Settings(jwt_secret=secret, test_mode=bool(orgs), test_orgs=orgs,
                              totp_key=derive(secret, "totp-seal"))
    if os.environ.get("SEMAFORE_UNLIMITED_RATES"):
        # a harness relay (load tests, benchmarks): its own traffic is the load, from one
        # loopback address; the connection cap stays clamped below the descriptor limit
        relay_settings = dataclasses.replace(
            relay_settings, rate_limits=unlimited_rate_limits(), max_connections=65536
        )
    sock = bind_loopback(int(os.environ["SEMAFORE_REPLICA_PORT"]))
    await serve_on_backends(
        endpoints_from_env(),
        relay_settings,
        sock,
        namespace=os.environ.get("SEMAFORE_NAMESPACE", "semafore"),
        replica_name=os.environ.get("SEMAFORE_REPLICA_NAME"),
        redis_push=os.environ.get("SEMAFORE_PUSH", "redis") != "local",
    )


if __name__ == "__main__":
    asyncio.run(_serve())
