"""Provider settings, read from the environment so the same test run can be pointed at
in-process stores, local processes, containers or someone's deployment (docs/backends.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from semafore.deploy.errors import SettingsError
from semafore.storage.redis import ReplicaWait
from semafore.storage.redis_cluster import SCHEME as CLUSTER_SCHEME
from semafore.storage.redis_cluster import is_cluster_url, parse_cluster_url
from semafore.storage.redis_sentinel import SCHEME as SENTINEL_SCHEME
from semafore.storage.redis_sentinel import is_sentinel_url, parse_sentinel_url
from semafore.storage.redis_url import RedisUrlError


class ProviderKind(StrEnum):
    """Where the relay's data tier comes from: the one list of provider names (issue #14
    item 1), which ``--provider`` choices, a scenario's ``providers:`` and the scenario
    schema read. A ``StrEnum``, so a name read from a flag or a file is the member itself."""

    EMBEDDED = "embedded"
    LOCAL = "local"
    CONTAINERS = "containers"
    EXTERNAL = "external"

    @property
    def owns_backend_processes(self) -> bool:
        """It starts (and so can stop, kill, pause) MongoDB, Redis and SeaweedFS itself:
        a scenario that faults a backend needs one of these (docs/scenarios.md)."""
        return self in (ProviderKind.LOCAL, ProviderKind.CONTAINERS)


class Shape(StrEnum):
    """How many of each engine a provider runs (issue #16 item 5, docs/backends.md "Cluster
    shape"): ``single`` one process per backend; ``cluster`` the engines' own replication —
    on the ``local`` provider (processes) and the ``containers`` provider (a container per
    node), Redis as a primary, one replica and three Sentinels (or a Redis Cluster) and
    SeaweedFS as a master, three volume servers and a filer."""

    SINGLE = "single"
    CLUSTER = "cluster"


class RedisTopology(StrEnum):
    """Which replicated Redis the ``cluster`` shape runs (``SEMAFORE_REDIS_TOPOLOGY``):
    ``sentinel`` a primary, a replica and three Sentinels (failover, one keyspace);
    ``cluster`` a Redis Cluster of three primaries with a replica each (sharding by hash slot,
    the cluster's own failover; semafore.deploy.redis_cluster)."""

    SENTINEL = "sentinel"
    CLUSTER = "cluster"


CLUSTER_PROVIDERS = (ProviderKind.LOCAL, ProviderKind.CONTAINERS)
"""The providers that can run the ``cluster`` shape; any other with ``SEMAFORE_SHAPE=cluster``
is a :class:`SettingsError`, never a silent single-process run."""


FERRETDB_HANDLERS = ("postgresql", "sqlite")
"""FerretDB's storage engines the ``local`` provider can run it on; the first is the default
(measured faster at scale: :mod:`semafore.deploy.postgres`)."""

DEFAULT_IMAGES = {
    "mongodb": "mongo:7",
    "redis": "redis:7",
    "seaweedfs": "chrislusf/seaweedfs:latest",
}
"""Upstream images; ``scripts/build-images.sh`` builds local stand-ins (LOCAL_IMAGES)."""

LOCAL_IMAGES = {
    "mongodb": "semafore/ferretdb:1.24.2",
    "redis": "semafore/redis:local",
    "seaweedfs": "semafore/seaweedfs:local",
}

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this module runs from, if it runs from one (for an installed wheel, the
directory above ``site-packages``: see :func:`checkout_root`)."""

INSTALL_SCRIPT = "scripts/install-backends.sh"
"""What installs the local provider's binaries, relative to a checkout (docs/backends.md)."""


def checkout_root(root: Path = PROJECT_ROOT) -> Path | None:
    """``root`` if it is a SemaFore checkout (it has the library and the install script),
    else None: an installed wheel carries neither, so its tools cannot live in ``.tools``."""
    if (root / "semafore").is_dir() and (root / INSTALL_SCRIPT).is_file():
        return root
    return None


def resolve_tools_dir(env: Mapping[str, str], *, root: Path = PROJECT_ROOT) -> Path:
    """Where the local provider looks for binaries it does not find on PATH (FerretDB, which
    ``scripts/install-backends.sh`` builds into ``<tools>/bin``), first match wins:

    1. ``SEMAFORE_TOOLS_DIR``, the same variable the install script writes to;
    2. the checkout's ``.tools`` when running from a checkout (the script's default);
    3. the per-user data directory, ``$XDG_DATA_HOME/semafore/tools`` (default
       ``~/.local/share/semafore/tools``): an installed wheel has no checkout (issue #14
       item 1).
    """
    given = env.get("SEMAFORE_TOOLS_DIR", "").strip()
    if given:
        return Path(given).expanduser()
    checkout = checkout_root(root)
    if checkout is not None:
        return checkout / ".tools"
    data_home = env.get("XDG_DATA_HOME", "").strip()
    # the XDG base-directory spec ignores a relative XDG_DATA_HOME
    if not data_home or not Path(data_home).is_absolute():
        home = env.get("HOME", "").strip()
        data_home = str((Path(home) if home else Path.home()) / ".local" / "share")
    return Path(data_home) / "semafore" / "tools"


def _url(env: Mapping[str, str], key: str, schemes: tuple[str, ...]) -> str | None:
    value = env.get(key, "").strip()
    if not value:
        return None
    if SENTINEL_SCHEME in schemes and is_sentinel_url(value):
        try:
            parse_sentinel_url(value)
        except RedisUrlError as exc:
            raise SettingsError(key, str(exc)) from None
        return value
    if CLUSTER_SCHEME in schemes and is_cluster_url(value):
        try:
            parse_cluster_url(value)
        except RedisUrlError as exc:
            raise SettingsError(key, str(exc)) from None
        return value
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise SettingsError(
            key, f"scheme must be one of {', '.join(schemes)}, got {parts.scheme!r}"
        )
    if not parts.hostname:
        raise SettingsError(key, "missing host")
    try:
        _ = parts.port
    except ValueError as exc:
        raise SettingsError(key, f"bad port: {exc}") from exc
    return value


def _redis_wait(env: Mapping[str, str]) -> ReplicaWait | None:
    raw = env.get("SEMAFORE_REDIS_WAIT", "").strip()
    if not raw or raw == "0":
        return None
    try:
        return ReplicaWait.parse(raw)
    except ValueError as exc:
        raise SettingsError("SEMAFORE_REDIS_WAIT", str(exc)) from None


def _seaweedfs_replication(env: Mapping[str, str]) -> str | None:
    """SeaweedFS's replica placement, three digits (``001``: a second copy on another server
    of the rack); unset: the cluster shape's default (semafore.deploy.seaweed_cluster)."""
    raw = env.get("SEMAFORE_SEAWEEDFS_REPLICATION", "").strip()
    if not raw:
        return None
    if len(raw) != 3 or not raw.isdigit():
        raise SettingsError("SEMAFORE_SEAWEEDFS_REPLICATION",
                            f"{raw!r} is not a replica placement of three digits, e.g. 001")
    return raw


def _redis_topology(env: Mapping[str, str]) -> RedisTopology:
    raw = env.get("SEMAFORE_REDIS_TOPOLOGY", "").strip().lower() or RedisTopology.SENTINEL.value
    try:
        return RedisTopology(raw)
    except ValueError:
        choices = ", ".join(t.value for t in RedisTopology)
        raise SettingsError("SEMAFORE_REDIS_TOPOLOGY", f"{raw!r} is not one of {choices}") from None


@dataclass(frozen=True)
class InfraSettings:
    """Everything a provider needs. Environment variables (all optional):

    ``SEMAFORE_PROVIDER`` embedded|local|containers|external (default embedded);
    ``SEMAFORE_MONGODB_URL``, ``SEMAFORE_REDIS_URL``, ``SEMAFORE_SEAWEEDFS_FILER_URL``,
    ``SEMAFORE_SEAWEEDFS_S3_URL`` (external); ``SEMAFORE_MONGODB_IMAGE``,
    ``SEMAFORE_REDIS_IMAGE``, ``SEMAFORE_SEAWEEDFS_IMAGE`` (containers);
    ``SEMAFORE_MONGODB_BINARY`` mongod|ferretdb|auto (local, default auto: mongod if on PATH);
    ``SEMAFORE_FERRETDB_HANDLER`` postgresql|sqlite (local, default postgresql): FerretDB's
    storage engine when MongoDB is FerretDB (:mod:`semafore.deploy.postgres` says why);
    ``SEMAFORE_TOOLS_DIR`` where install-backends.sh put ferretdb (else the checkout's
    ``.tools``, else the per-user data directory: :func:`resolve_tools_dir`);
    ``SEMAFORE_INFRA_DIR`` parent of throw-away data directories (default: system temp);
    ``SEMAFORE_SHAPE`` single|cluster (default single; cluster: local and containers providers).
    ``SEMAFORE_REDIS_URL`` may be ``redis+sentinel://H:P[,H:P...]/SERVICE[/DB]`` or
    ``redis+cluster://H:P[,H:P...][/0]``;
    ``SEMAFORE_REDIS_TOPOLOGY`` sentinel|cluster (default sentinel): the cluster shape's Redis;
    ``SEMAFORE_REDIS_WAIT`` ``N[/TIMEOUT_S]`` (default unset or 0: do not wait): the relay
    acknowledges a send only once N Redis replicas have it (``WAIT``, docs/backends.md);
    ``SEMAFORE_SEAWEEDFS_REPLICATION`` three digits (default 001): the cluster shape's
    SeaweedFS replica placement (``000``: one copy, what a volume-server loss scenario must
    catch).
    """

    provider: ProviderKind = ProviderKind.EMBEDDED
    mongodb_url: str | None = None
    redis_url: str | None = None
    seaweedfs_filer_url: str | None = None
    seaweedfs_s3_url: str | None = None
    images: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_IMAGES))
    mongodb_binary: str = "auto"
    ferretdb_handler: str = FERRETDB_HANDLERS[0]
    tools_dir: Path = field(default_factory=lambda: resolve_tools_dir(os.environ))
    work_dir: Path | None = None
    seaweedfs_s3: bool = True
    shape: Shape = Shape.SINGLE
    redis_topology: RedisTopology = RedisTopology.SENTINEL
    redis_wait: ReplicaWait | None = None
    seaweedfs_replication: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InfraSettings:
        env = os.environ if env is None else env
        default = ProviderKind.EMBEDDED.value
        raw = env.get("SEMAFORE_PROVIDER", default).strip().lower() or default
        try:
            provider = ProviderKind(raw)
        except ValueError:
            choices = ", ".join(k.value for k in ProviderKind)
            raise SettingsError("SEMAFORE_PROVIDER", f"{raw!r} is not one of {choices}") from None
        images = dict(DEFAULT_IMAGES)
        for backend in images:
            override = env.get(f"SEMAFORE_{backend.upper()}_IMAGE", "").strip()
            if override:
                images[backend] = override
        binary = env.get("SEMAFORE_MONGODB_BINARY", "auto").strip() or "auto"
        if binary not in ("auto", "mongod", "ferretdb"):
            raise SettingsError(
                "SEMAFORE_MONGODB_BINARY", f"{binary!r} is not auto, mongod or ferretdb"
            )
        handler = env.get("SEMAFORE_FERRETDB_HANDLER", "").strip().lower() or FERRETDB_HANDLERS[0]
        if handler not in FERRETDB_HANDLERS:
            raise SettingsError(
                "SEMAFORE_FERRETDB_HANDLER",
                f"{handler!r} is not one of {', '.join(FERRETDB_HANDLERS)}",
            )
        work = env.get("SEMAFORE_INFRA_DIR", "").strip()
        raw_shape = env.get("SEMAFORE_SHAPE", "").strip().lower() or Shape.SINGLE.value
        try:
            shape = Shape(raw_shape)
        except ValueError:
            choices = ", ".join(s.value for s in Shape)
            reason = f"{raw_shape!r} is not one of {choices}"
            raise SettingsError("SEMAFORE_SHAPE", reason) from None
        settings = cls(
            provider=provider,
            mongodb_url=_url(env, "SEMAFORE_MONGODB_URL", ("mongodb", "mongodb+srv")),
            redis_url=_url(
                env, "SEMAFORE_REDIS_URL", ("redis", "rediss", SENTINEL_SCHEME, CLUSTER_SCHEME)
            ),
            seaweedfs_filer_url=_url(env, "SEMAFORE_SEAWEEDFS_FILER_URL", ("http", "https")),
            seaweedfs_s3_url=_url(env, "SEMAFORE_SEAWEEDFS_S3_URL", ("http", "https")),
            images=images,
            mongodb_binary=binary,
            ferretdb_handler=handler,
            tools_dir=resolve_tools_dir(env),
            work_dir=Path(work) if work else None,
            shape=shape,
            redis_topology=_redis_topology(env),
            redis_wait=_redis_wait(env),
            seaweedfs_replication=_seaweedfs_replication(env),
        )
        settings.check_shape()
        if provider is ProviderKind.EXTERNAL:
            for key, value in (
                ("SEMAFORE_MONGODB_URL", settings.mongodb_url),
                ("SEMAFORE_REDIS_URL", settings.redis_url),
                ("SEMAFORE_SEAWEEDFS_FILER_URL", settings.seaweedfs_filer_url),
            ):
                if value is None:
                    raise SettingsError(key, "required when SEMAFORE_PROVIDER=external")
        return settings

    def check_shape(self) -> None:
        """A shape the provider cannot run is an error naming ``SEMAFORE_SHAPE``."""
        if self.shape is Shape.CLUSTER and self.provider not in CLUSTER_PROVIDERS:
            can = ", ".join(p.value for p in CLUSTER_PROVIDERS)
            raise SettingsError(
                "SEMAFORE_SHAPE",
                f"cluster is not available on the {self.provider.value} provider (only: {can})",
            )
