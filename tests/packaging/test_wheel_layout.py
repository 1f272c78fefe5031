"""setup.py's package list is every package on disk plus the mapped data directories, and the
mapping is the one semafore.shipped reads (issue #14 item 3).

The wheel itself is built, installed and exercised by test_installed_wheel.py; these are the
fast checks of the configuration it is built from.
"""

from __future__ import annotations

import runpy
import tomllib
from pathlib import Path
from typing import Any

from semafore import shipped

ROOT = Path(__file__).resolve().parents[2]
SETUP = runpy.run_path(str(ROOT / "setup.py"), run_name="setup_config")  # not "__main__"


def package_data() -> dict[str, list[str]]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        config: dict[str, Any] = tomllib.load(handle)
    data: dict[str, list[str]] = config["tool"]["setuptools"]["package-data"]
    return data


def code_packages(root: Path) -> set[str]:
    """Every directory under the top-level packages that holds Python source."""
    found = set()
    for top in SETUP["TOP_LEVEL"]:
        for directory in [root / top, *sorted((root / top).rglob("*"))]:
            if directory.is_dir() and any(directory.glob("*.py")):
                found.add(".".join(directory.relative_to(root).parts))
    return found


def test_every_package_on_disk_is_in_the_wheel() -> None:
    packages = set(SETUP["packages"]())
    assert code_packages(ROOT) <= packages
    assert {"semafore", "semafore.protocol", "simulator", "loadtests"} <= packages
    assert not [p for p in packages if "__pycache__" in p or p.startswith(("tests", "mutants"))]


def test_the_mapped_data_is_what_the_locator_reads_and_carries_package_data() -> None:
    mapping: dict[str, str] = SETUP["SHIPPED"]
    assert set(mapping.values()) == {shipped.VECTORS.name, shipped.SCENARIOS.name}
    data = package_data()
    for package, directory in mapping.items():
        assert package == f"semafore.shipped.{directory}"
        assert package in SETUP["packages"]() and data[package]
    for item in (shipped.VECTORS, shipped.SCENARIOS):
        assert (ROOT / item.name / item.marker).is_file()
    assert "profiles/*.yaml" in data["loadtests"]


def test_every_top_level_package_ships_its_py_typed_marker() -> None:
    data = package_data()
    for top in SETUP["TOP_LEVEL"]:
        assert (ROOT / top / "py.typed").is_file(), top
        assert "py.typed" in data[top], top
