"""The deploy layer (issue 14): the only code that turns a deployment description into
running relays and backends. MongoDB, Redis and SeaweedFS as local processes, containers or
external URLs, the relay processes in front of them, and the faults the simulator injects
into them (issue 4, docs/backends.md, docs/architecture.md).

Entry point: :func:`semafore.deploy.providers.provider_from_settings`.
"""
