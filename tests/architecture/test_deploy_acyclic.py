"""The modules of ``semafore.deploy`` import one another without a cycle (issue #14 item 1).

``containers`` builds on the provider interface in ``providers``; picking a provider by kind
lives in ``selection``, above both, so ``providers`` never imports ``containers`` back (it did,
inside ``provider_from_settings``). grimp (import-linter's graph) counts imports inside
functions too, so a lazy import does not hide a cycle from this test."""

from __future__ import annotations

import grimp

PACKAGE = "semafore.deploy"


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """For every direct import ``a -> b`` inside the package with a chain ``b -> ... -> a``
    back, that chain closed into a loop."""
    found: list[list[str]] = []
    inside = sorted(m for m in graph.modules if m.startswith(PACKAGE + "."))
    for module in inside:
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if not imported.startswith(PACKAGE + "."):
                continue
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                found.append([module, *back])
    return found


def test_the_deploy_modules_import_one_another_without_a_cycle() -> None:
    graph = grimp.build_graph("semafore", cache_dir=None)
    assert cycles(graph) == []


def test_a_function_level_import_back_is_found_as_a_cycle() -> None:
    graph = grimp.build_graph("semafore", cache_dir=None)
    graph.add_import(importer="semafore.deploy.providers", imported="semafore.deploy.containers")
    assert ["semafore.deploy.containers", "semafore.deploy.providers",
            "semafore.deploy.containers"] in cycles(graph)
