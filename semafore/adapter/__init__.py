"""The reference platform adapter (SPEC §7): ``python -m semafore.adapter``.

It speaks the JSON-lines contract of ``docs/adapter-contract.md`` on stdin/stdout and answers
every operation with :mod:`semafore.protocol`, so the interop gate always has a baseline.
"""

from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import serve

__all__ = ["ReferenceAdapter", "serve"]
