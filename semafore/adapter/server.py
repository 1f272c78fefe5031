"""The JSON-lines loop (SPEC §7): one request per stdin line, one response per stdout line.

The loop never dies on bad input: an unparsable line is answered with ``id: null`` and
``MalformedEnvelope``; an unknown operation with ``Unsupported``; a bug inside a handler with
the non-canonical ``InternalError`` (the gate reports that as a protocol violation) and a log
line on stderr. It exits cleanly at end of input.
"""

from __future__ import annotations

import json
import logging
from typing import IO, Any

from semafore.adapter.args import Args
from semafore.adapter.ops import ReferenceAdapter
from semafore.protocol.errors import ProtocolError

log = logging.getLogger("semafore.adapter")


def _error(request_id: Any, name: str, detail: str) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": name, "detail": detail}


def handle(adapter: ReferenceAdapter, request: Any) -> dict[str, Any]:
    """Answer one decoded request object."""
    if not isinstance(request, dict):
        return _error(None, "MalformedEnvelope", "request is not a JSON object")
    request_id = request.get("id")
    op = request.get("op")
    if not isinstance(op, str):
        return _error(request_id, "MalformedEnvelope", "request has no string 'op'")
    handler = adapter.ops.get(op)
    if handler is None:
        return _error(request_id, "Unsupported", f"operation {op!r} is not implemented")
    try:
        result = handler(Args(request.get("args", {})))
    except ProtocolError as exc:
        detail = exc.detail + (f" (field: {exc.field})" if exc.field else "")
        return _error(request_id, exc.name, detail)
    except Exception as exc:  # a bug must not kill the session the gate is driving
        log.exception("operation %s failed unexpectedly", op)
        return _error(request_id, "InternalError", f"{type(exc).__name__}: {exc}")
    return {"id": request_id, "ok": True, "result": result}


def handle_line(adapter: ReferenceAdapter, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
    except ValueError:
        return _error(None, "MalformedEnvelope", "request line is not JSON")
    return handle(adapter, request)


def serve(stdin: IO[bytes], stdout: IO[bytes], adapter: ReferenceAdapter | None = None) -> int:
    """Serve until end of input; returns the process exit status (0)."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    adapter = adapter or ReferenceAdapter()
    for line in stdin:
        if not line.strip():
            continue
        response = handle_line(adapter, line)
        stdout.write(json.dumps(response, separators=(",", ":")).encode() + b"\n")
        stdout.flush()
    return 0
