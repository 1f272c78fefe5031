"""Provider settings: defaults, overrides, and malformed values rejected naming the variable."""

from __future__ import annotations

import pytest

from semafore.deploy.errors import SettingsError
from semafore.deploy.providers import (
    EmbeddedProvider,
    Endpoints,
    ExternalProvider,
    LocalProvider,
)
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.settings import DEFAULT_IMAGES, InfraSettings, ProviderKind

EXTERNAL = {
    "SEMAFORE_PROVIDER": "external",
    "SEMAFORE_MONGODB_URL": "mongodb://db.example:27017/",
    "SEMAFORE_REDIS_URL": "redis://cache.example:6379/0",
    "SEMAFORE_SEAWEEDFS_FILER_URL": "http://filer.example:8888",
}


def test_default_is_embedded_with_upstream_images() -> None:
    settings = InfraSettings.from_env({})
    assert settings.provider is ProviderKind.EMBEDDED
    assert dict(settings.images) == DEFAULT_IMAGES
    assert isinstance(provider_from_settings(settings), EmbeddedProvider)


def test_embedded_provider_starts_nothing_and_says_so() -> None:
    with provider_from_settings(InfraSettings.from_env({})) as provider:
        assert provider.endpoints == Endpoints(ProviderKind.EMBEDDED)
        assert provider.endpoints.embedded
        assert provider.endpoints.as_env() == {"SEMAFORE_PROVIDER": "embedded"}


def test_images_are_configurable_per_backend() -> None:
    settings = InfraSettings.from_env({"SEMAFORE_REDIS_IMAGE": "semafore/redis:local"})
    assert settings.images["redis"] == "semafore/redis:local"
    assert settings.images["mongodb"] == DEFAULT_IMAGES["mongodb"]


def test_provider_choice_is_validated() -> None:
    with pytest.raises(SettingsError) as info:
        InfraSettings.from_env({"SEMAFORE_PROVIDER": "cloud"})
    assert info.value.field == "SEMAFORE_PROVIDER"
    assert isinstance(
        provider_from_settings(InfraSettings.from_env({"SEMAFORE_PROVIDER": "local"})),
        LocalProvider,
    )


@pytest.mark.parametrize("kind", list(ProviderKind))
def test_every_provider_kind_selects_a_provider_of_that_kind(kind: ProviderKind) -> None:
    settings = InfraSettings.from_env({**EXTERNAL, "SEMAFORE_PROVIDER": kind.value})
    provider = provider_from_settings(settings)  # not started: nothing runs
    assert provider.kind is kind and provider.settings.provider is kind


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SEMAFORE_MONGODB_URL", "http://db.example/"),
        ("SEMAFORE_REDIS_URL", "redis://"),
        ("SEMAFORE_SEAWEEDFS_FILER_URL", "http://filer.example:notaport"),
        ("SEMAFORE_SEAWEEDFS_S3_URL", "ftp://s3.example"),
    ],
)
def test_malformed_urls_name_their_variable(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        InfraSettings.from_env({**EXTERNAL, key: value})
    assert info.value.field == key


@pytest.mark.parametrize(
    "missing", ["SEMAFORE_MONGODB_URL", "SEMAFORE_REDIS_URL", "SEMAFORE_SEAWEEDFS_FILER_URL"]
)
def test_external_requires_every_url(missing: str) -> None:
    env = {k: v for k, v in EXTERNAL.items() if k != missing}
    with pytest.raises(SettingsError) as info:
        InfraSettings.from_env(env)
    assert info.value.field == missing


def test_external_endpoints_round_trip_through_env() -> None:
    settings = InfraSettings.from_env(EXTERNAL)
    assert isinstance(provider_from_settings(settings), ExternalProvider)
    endpoints = Endpoints(
        ProviderKind.EXTERNAL,
        settings.mongodb_url,
        settings.redis_url,
        settings.seaweedfs_filer_url,
    )
    again = InfraSettings.from_env(endpoints.as_env())
    assert (again.mongodb_url, again.redis_url, again.seaweedfs_filer_url) == (
        settings.mongodb_url,
        settings.redis_url,
        settings.seaweedfs_filer_url,
    )


def test_mongodb_binary_choice_is_validated() -> None:
    with pytest.raises(SettingsError) as info:
        InfraSettings.from_env({"SEMAFORE_MONGODB_BINARY": "postgres"})
    assert info.value.field == "SEMAFORE_MONGODB_BINARY"
