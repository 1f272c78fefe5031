"""Relays are launched by semafore/deploy only (issue 14 item 1: seven ways to launch a relay
across eight modules, five uvicorn configurations whose WebSocket limits had drifted).

Every uvicorn server in the repository is built in ``semafore/deploy`` from the relay's one
configuration (``semafore.server.serving.uvicorn_config``). The source of the library, the
harnesses, the benchmarks and the tests is read here for uvicorn servers built anywhere else;
the one site elsewhere on purpose (a bare Starlette baseline in the relay benchmark) is
listed by module and function, and a listed site that no longer launches anything must leave
the list. ``semafore serve`` and the relay benchmark launch through ``deploy.foreground``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("semafore", "simulator", "loadtests", "benchmarks", "tests")
LAUNCHERS = ("semafore/deploy/",)
"""Where uvicorn servers may be built."""
ELSEWHERE_ON_PURPOSE = {
    ("benchmarks/bench_relay.py", "bare_asgi_relay"): "a bare Starlette baseline, not the relay",
}
LAUNCH_CALLS = {"Server", "run", "Config"}


def launches(source: str) -> list[tuple[str, int]]:
    """``(enclosing function, line)`` of every ``uvicorn.Server/run/Config(...)`` call."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and child.func.attr in LAUNCH_CALLS
                    and isinstance(child.func.value, ast.Name)
                    and child.func.value.id == "uvicorn"):
                found.append((function, child.lineno))
            visit(child, name)

    visit(ast.parse(source), "<module>")
    return found


def _sites() -> dict[tuple[str, str], list[int]]:
    sites: dict[tuple[str, str], list[int]] = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for function, line in launches(path.read_text()):
                sites.setdefault((rel, function), []).append(line)
    return sites


def test_the_reader_finds_uvicorn_servers_by_enclosing_function() -> None:
    code = '''
import uvicorn
def a():
    uvicorn.run(app, port=1)
async def b():
    server = uvicorn.Server(uvicorn.Config(app))
def c():
    other.run(app)
'''
    assert launches(code) == [("a", 4), ("b", 6), ("b", 6)]


def test_relays_are_launched_by_the_deploy_layer_only() -> None:
    sites = _sites()
    outside = {f"{path}:{lines[0]} ({function})"
               for (path, function), lines in sites.items()
               if not path.startswith(LAUNCHERS) and path != "semafore/server/serving.py"
               and (path, function) not in ELSEWHERE_ON_PURPOSE}
    assert sorted(outside) == [], "launch through semafore.deploy (docs/architecture.md)"


def test_the_list_of_sites_not_yet_moved_only_shrinks() -> None:
    sites = _sites()
    stale = [f"{path} ({function})" for path, function in
             ELSEWHERE_ON_PURPOSE if (path, function) not in sites]
    assert stale == [], "no longer launches a relay: remove it from the list"
