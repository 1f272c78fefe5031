"""docs/sabotage.md shows the catalogue exactly as :mod:`semafore.sabotage` defines it."""

from __future__ import annotations

from semafore.sabotage import CATALOGUE
from tests.sabotage.render_docs import BEGIN, DOC, END, rendered


def test_the_documented_table_is_the_catalogue() -> None:
    doc = DOC.read_text()
    assert BEGIN in doc and END in doc
    assert doc == rendered(doc), "run: python -m tests.sabotage.render_docs"
    assert all(f"`{s.name}`" in doc for s in CATALOGUE)


def test_the_runner_section_is_there() -> None:
    assert "## Running the matrix" in DOC.read_text()
