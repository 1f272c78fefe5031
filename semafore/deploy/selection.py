"""Which provider a run gets: ``SEMAFORE_PROVIDER`` (or ``settings.provider``) to a provider,
not yet started (issue 4; docs/backends.md).

Kept apart from :mod:`semafore.deploy.providers` (the interface with the embedded, local and
external providers) and :mod:`semafore.deploy.containers` (which builds on that interface), so
both are imported here at the top and neither imports the other back (issue #14 item 1: the
``providers`` <-> ``containers`` cycle). Importing ``containers`` is cheap: testcontainers, its
optional heavy dependency, is imported only when a container provider starts.

A provider is a context manager: ``with provider_from_settings() as p: p.endpoints.redis_url``.
"""

from __future__ import annotations

from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.containers import ContainersProvider
from semafore.deploy.containers_cluster import ContainersClusterProvider
from semafore.deploy.providers import EmbeddedProvider, ExternalProvider, LocalProvider, Provider
from semafore.deploy.settings import InfraSettings, ProviderKind, Shape


def provider_from_settings(settings: InfraSettings | None = None, **options: bool) -> Provider:
    """The provider ``settings.provider`` names (``SEMAFORE_PROVIDER`` when no settings are
    given), not yet started. ``options`` (``redis_durable``) reach the providers that start
    backend processes themselves (:attr:`ProviderKind.owns_backend_processes`)."""
    settings = settings if settings is not None else InfraSettings.from_env()
    settings.check_shape()  # a cluster the provider cannot run is an error, never a single
    match settings.provider:
        case ProviderKind.EMBEDDED:
            return EmbeddedProvider(settings)
        case ProviderKind.LOCAL if settings.shape is Shape.CLUSTER:
            return LocalClusterProvider(settings, **options)
        case ProviderKind.LOCAL:
            return LocalProvider(settings, **options)
        case ProviderKind.CONTAINERS if settings.shape is Shape.CLUSTER:
            return ContainersClusterProvider(settings, **options)
        case ProviderKind.CONTAINERS:
            return ContainersProvider(settings, **options)
        case ProviderKind.EXTERNAL:
            return ExternalProvider(settings)
