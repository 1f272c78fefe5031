"""Pinned interop vectors (SPEC §6): deterministic generation, schemas and verification.

``semafore vectors generate`` derives every file from fixed seeds with the reference
protocol *and* re-derives each value independently from the SPEC formulas, failing on any
disagreement; ``semafore vectors verify`` validates files against their JSON Schemas, replays
every case through the reference adapter, and compares them with a fresh generation.
"""

from semafore.vectors.files import VECTOR_FILES, dump_vectors, load_vector_file

__all__ = ["VECTOR_FILES", "dump_vectors", "load_vector_file"]
