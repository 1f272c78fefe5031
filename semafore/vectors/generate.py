"""Write every vector file and its schema copy (``semafore vectors generate``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from semafore.vectors import dr, x3dh
from semafore.vectors.files import VECTOR_FILES, dump_vectors, schema_text

GENERATORS: dict[str, Callable[[], dict[str, Any]]] = {
    x3dh.FILE: x3dh.generate,
    dr.FILE: dr.generate,
    # LIVE_RESULT_FILE ("dr-v1-live-result") is a recorded run, not a computation: it is
    # written by `python -m semafore.vectors.live generate` and replayed by verify.
}
assert tuple(GENERATORS) == VECTOR_FILES


def generate_documents() -> dict[str, dict[str, Any]]:
    return {name: build() for name, build in GENERATORS.items()}


def write_vectors(out: str | Path) -> list[Path]:
    """Generate into ``out`` (``<name>.json`` and ``schema/<name>.schema.json``)."""
    out = Path(out)
    (out / "schema").mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in generate_documents().items():
        path = out / f"{name}.json"
        path.write_text(dump_vectors(doc), encoding="utf-8")
        schema_path = out / "schema" / f"{name}.schema.json"
        schema_path.write_text(schema_text(name), encoding="utf-8")
        written += [path, schema_path]
    return written
