"""HTTP routes, one module per endpoint group (docs/server.md mirrors the grouping)."""
