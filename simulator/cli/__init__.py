"""Command-line groups the simulator contributes to ``semafore`` (entry-point group
``semafore.commands``, pyproject.toml): ``sim`` and ``demo``."""
