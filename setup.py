"""The wheel's package list (issue #14 item 3); everything else is in pyproject.toml.

Every package under ``semafore/``, ``simulator/`` and ``loadtests/`` is found on disk, so a new
one is never left out, and the top-level ``vectors/`` and ``scenarios/`` (the card's layout)
are mapped into ``semafore/shipped/``, where :mod:`semafore.shipped` finds them at run time.
``find`` alone cannot add a mapped directory, and a hand-written list goes stale as packages
are added: hence these few lines of code instead of ``[tool.setuptools.packages]``.
"""

from __future__ import annotations

from setuptools import Extension, find_namespace_packages, setup

TOP_LEVEL = ("semafore", "simulator", "loadtests")

SHIPPED = {"semafore.shipped.vectors": "vectors", "semafore.shipped.scenarios": "scenarios"}
"""Package inside the wheel -> directory in the repository (package data: pyproject.toml)."""


EXTENSIONS = [
    Extension("semafore.oracle._fast", ["semafore/oracle/_fast.c"],
              extra_compile_args=["-O2", "-Wall"]),
]
"""The oracle's compiled hot paths (docs/oracle.md "Cost"); semafore.oracle.native falls back
to the pure-Python reference where it is not built, except in CI (tests/oracle/test_compiled.py)."""


def packages() -> list[str]:
    found = find_namespace_packages(
        include=[f"{top}{tail}" for top in TOP_LEVEL for tail in ("", ".*")],
        exclude=["*.__pycache__"],
    )
    return sorted({*found, *SHIPPED})


if __name__ == "__main__":
    setup(packages=packages(), package_dir=SHIPPED, ext_modules=EXTENSIONS)
