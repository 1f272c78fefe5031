"""pytest plugin for `make mutation` only (scripts/mutation.sh loads it with ``-p``).

mutmut hands pytest the tests that reach a mutated function in no particular order and stops
at the first failure (``-x``), so a mutant that a 10 ms example test kills can first sit
through a 200-example property test. Running the example tests first, and the Hypothesis
property tests after them, changes no verdict — the same tests run, a killed mutant is killed
either way — it only makes killed mutants cheap (docs/mutation.md).
"""

from __future__ import annotations

import pytest


def _is_property_test(item: pytest.Item) -> bool:
    return bool(getattr(getattr(item, "obj", None), "is_hypothesis_test", False))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: (_is_property_test(item), item.nodeid))
