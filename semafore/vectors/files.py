"""Vector file names, JSON formatting and the shipped JSON Schemas."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from semafore import shipped

VECTOR_FILES = ("x3dh-prekey-v1", "dr-v1-interop")
"""The files this package generates and the gate runs, in order (SPEC §6)."""

LIVE_RESULT_FILE = "dr-v1-live-result"
"""Hook: recorded by the simulator issue (SPEC §6); verified and gated once its suite lands."""

COMPACT_WIDTH = 100


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) shipped for vector file ``name``, as written."""
    loaded: dict[str, Any] = json.loads(schema_text(name))
    return loaded


def validator(name: str) -> Any:
    """A validator for ``name`` with local ``$ref``s inlined (several times faster on the
    thousands of DR steps; the schemas are not recursive, so inlining is exact)."""
    raw = schema(name)
    defs = raw.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                merged = {**inline(defs[ref.removeprefix("#/$defs/")])}
                merged.update({k: inline(v) for k, v in node.items() if k != "$ref"})
                return merged
            return {k: inline(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return jsonschema.Draft202012Validator(inline(raw))


def schema_text(name: str) -> str:
    return (
        resources.files("semafore.vectors")
        .joinpath(f"schema/{name}.schema.json")
        .read_text(encoding="utf-8")
    )


def _fmt(value: Any, indent: int) -> str:
    compact = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if not isinstance(value, dict | list) or len(compact) + indent <= COMPACT_WIDTH:
        return compact
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(key, ensure_ascii=False)}: {_fmt(item, indent + 2)}"
            for key, item in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return "[\n" + ",\n".join(inner + _fmt(item, indent + 2) for item in value) + "\n" + pad + "]"


def dump_vectors(doc: dict[str, Any]) -> str:
    """Stable, diff-friendly JSON: short objects on one line, UTF-8 kept readable."""
    return _fmt(doc, 0) + "\n"


def load_vector_file(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def default_vectors_dir() -> Path:
    """``./vectors`` if it holds the vector files (a platform team's copy), else the pinned
    vectors shipped with this installation or checkout (:mod:`semafore.shipped`)."""
    local = Path("vectors")
    if (local / f"{VECTOR_FILES[0]}.json").is_file():
        return local
    return shipped.vectors_dir()


def load_documents(directory: str | Path) -> list[dict[str, Any]]:
    """Load every gate-run vector file from ``directory``, schema-checked.

    Raises ``VectorLoadError`` naming the file and the first schema violations.
    """
    out = []
    for name in VECTOR_FILES:
        path = Path(directory) / f"{name}.json"
        try:
            doc = load_vector_file(path)
        except (OSError, ValueError) as exc:
            raise VectorLoadError(f"{path}: {exc}") from exc
        errors = list(validator(name).iter_errors(doc))
        if errors:
            shown = "; ".join(f"{e.json_path}: {e.message[:120]}" for e in errors[:3])
            raise VectorLoadError(f"{path} does not match its schema: {shown}")
        out.append(doc)
    return out


class VectorLoadError(Exception):
    """A vector file is missing, not JSON, or violates its JSON Schema."""
