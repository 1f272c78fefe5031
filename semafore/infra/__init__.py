"""Real infrastructure for the harness: MongoDB, Redis and SeaweedFS as local processes,
containers or external URLs, plus the faults the simulator injects into them (issue 4,
docs/backends.md).

Entry point: :func:`semafore.infra.providers.provider_from_settings`.
"""
