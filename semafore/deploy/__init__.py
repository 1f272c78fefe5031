"""The deploy layer (issue 14): the only code that turns a deployment description into
running relays and backends. MongoDB, Redis and SeaweedFS as local processes, containers or
external URLs, the relay processes in front of them, and the faults the simulator injects
into them (issue 4, docs/backends.md, docs/architecture.md).

Entry points: :func:`semafore.deploy.selection.provider_from_settings` for backends; for
relays, one module per shape (docs/architecture.md "Launching a relay"): ``inprocess`` (a
thread or task of the harness), ``inprocess_replicas`` (in-process replicas under faults),
``foreground`` (a relay process), ``replicas`` (N relay processes on shared backends),
``workers`` (``semafore serve --workers``). All serve the relay's one uvicorn configuration.
"""
