"""Where the shipped data is: the pinned interop vectors and the scenario catalogue.

The repository keeps them at the top level (``vectors/``, ``scenarios/``: the card's layout,
issue #14 item 2); the wheel maps the same directories into this package
(``semafore/shipped/vectors``, ``semafore/shipped/scenarios``, pyproject.toml
``[tool.setuptools.package-dir]``), so ``semafore demo``, ``vectors verify``, ``gate`` and
``sim run`` work from any directory after ``pip install`` (issue #14 item 3). This module is
the one place that knows both locations: the installed copy first (found with
:mod:`importlib.resources`), then the checkout this module sits in.

The load profiles are not here: they live inside the ``loadtests`` package itself
(``loadtests/profiles``), the same path in a checkout and in the wheel, and the library never
imports ``loadtests`` (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
"""The repository root when this module runs from a checkout (or an editable install)."""


@dataclass(frozen=True)
class ShippedData:
    """One shipped directory: its name inside this package and in the checkout, and a file
    that must be in it (so a stray empty directory is never taken for the data)."""

    name: str
    marker: str


VECTORS = ShippedData("vectors", "x3dh-prekey-v1.json")
"""The pinned vectors and their JSON Schemas (SPEC §6)."""

SCENARIOS = ShippedData("scenarios", "threats/server-compromise.yaml")
"""The scenario catalogue (docs/scenarios.md): threats/, desync/, out-of-scope/."""


class ShippedDataMissing(FileNotFoundError):
    """Neither the installed package nor a checkout holds ``data``: a broken install."""

    def __init__(self, data: ShippedData, tried: tuple[Path, ...]) -> None:
        self.data = data
        self.tried = tried
        places = ", ".join(str(path) for path in tried)
        super().__init__(f"{data.name}: no {data.marker} under {places} (reinstall the package)")


def installed_root() -> Traversable:
    """This package as installed: where the wheel put the mapped directories."""
    return resources.files(__name__)


def candidates(data: ShippedData) -> tuple[Path, ...]:
    """The directories searched for ``data``, in order: installed package data, checkout."""
    installed = installed_root().joinpath(data.name)
    # A wheel installs as plain files (a Path); a zipped install has no directory to hand out.
    found = (installed,) if isinstance(installed, Path) else ()
    return (*found, CHECKOUT_ROOT / data.name)


def locate(data: ShippedData) -> Path:
    """The first of :func:`candidates` holding ``data.marker``; :class:`ShippedDataMissing`
    naming every place tried otherwise."""
    tried = candidates(data)
    for directory in tried:
        if (directory / data.marker).is_file():
            return directory
    raise ShippedDataMissing(data, tried)


def vectors_dir() -> Path:
    """The pinned vectors shipped with this installation (or this checkout)."""
    return locate(VECTORS)


def scenario_catalogue() -> Path:
    """The scenario catalogue shipped with this installation (or this checkout)."""
    return locate(SCENARIOS)
