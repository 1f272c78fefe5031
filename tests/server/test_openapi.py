"""The committed contract (docs/openapi.json) is exactly what the relay serves.

Regenerate after an API change with ``semafore serve --print-openapi > docs/openapi.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.server.helpers import World

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_served_openapi_equals_the_committed_document(world: World) -> None:
    served = world.client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(COMMITTED.read_text()), (
        "docs/openapi.json is stale: semafore serve --print-openapi > docs/openapi.json"
    )


def test_every_operation_documents_its_errors_in_one_shape() -> None:
    doc = json.loads(COMMITTED.read_text())
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            for code in ("422", "429"):
                assert code in responses, (method, path, code)
            assert "Retry-After" in responses["429"]["headers"], (method, path)
