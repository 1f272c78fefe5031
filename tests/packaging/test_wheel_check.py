"""scripts/check_wheel.py's own judgement: a wheel missing or changing shipped data fails, the
scrubbed environment points at no checkout and no venv, and files written into the
installation are reported (issue #14 item 3)."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / "scripts/check_wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_wheel"] = module
    spec.loader.exec_module(module)
    return module


check_wheel = load_script()


def build(tmp: Path, files: dict[str, bytes]) -> Path:
    wheel = tmp / "semafore_sim-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def complete() -> dict[str, bytes]:
    packages = {f"{p}/{marker}": b"" for p in check_wheel.PACKAGES
                for marker in ("__init__.py", "py.typed")}
    return {**check_wheel.expected_data(ROOT), **packages}


def test_expected_data_is_every_vector_scenario_and_profile() -> None:
    expected = check_wheel.expected_data(ROOT)
    assert "semafore/shipped/vectors/x3dh-prekey-v1.json" in expected
    assert "semafore/shipped/vectors/schema/dr-v1-interop.schema.json" in expected
    assert "semafore/shipped/scenarios/threats/server-compromise.yaml" in expected
    assert "loadtests/profiles/office_hours.yaml" in expected
    scenarios = [n for n in expected if n.startswith("semafore/shipped/scenarios/")]
    assert len(scenarios) == len(list((ROOT / "scenarios").rglob("*.yaml")))


def test_a_complete_wheel_has_no_problem(tmp_path: Path) -> None:
    assert check_wheel.wheel_problems(build(tmp_path, complete()), complete()) == []


def test_a_missing_scenario_a_changed_vector_and_a_missing_package_are_problems(
    tmp_path: Path,
) -> None:
    files = complete()
    del files["semafore/shipped/scenarios/desync/reorder.yaml"]
    del files["loadtests/__init__.py"]
    files["semafore/shipped/vectors/dr-v1-interop.json"] += b" "
    problems = check_wheel.wheel_problems(build(tmp_path, files), check_wheel.expected_data(ROOT))
    assert len(problems) == 3
    joined = "\n".join(problems)
    assert "lacks semafore/shipped/scenarios/desync/reorder.yaml" in joined
    assert "dr-v1-interop.json differs" in joined
    assert "lacks the loadtests package" in joined


@pytest.mark.parametrize("package", check_wheel.PACKAGES)
def test_a_package_without_its_py_typed_marker_is_a_problem(tmp_path: Path, package: str) -> None:
    files = complete()
    del files[f"{package}/py.typed"]
    problems = check_wheel.wheel_problems(build(tmp_path, files), check_wheel.expected_data(ROOT))
    assert problems == [f"semafore_sim-0.1.0-py3-none-any.whl lacks {package}/py.typed "
                        "(PEP 561 marker)"]


def test_nothing_to_compare_is_a_problem_not_a_pass(tmp_path: Path) -> None:
    assert check_wheel.wheel_problems(build(tmp_path, complete()), {}) != []


def test_the_scrubbed_environment_has_no_venv_and_no_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("")
    other = tmp_path / "other-venv" / "bin"
    other.mkdir(parents=True)
    (other / "activate").write_text("")
    monkeypatch.setenv("PATH", f"{venv / 'bin'}:{other}:/usr/bin:/bin")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    monkeypatch.setenv("SEMAFORE_PROVIDER", "local")
    env = check_wheel.scrubbed_env(venv, tmp_path / "home")
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["HOME"] == str(tmp_path / "home")
    assert not {"PYTHONPATH", "VIRTUAL_ENV", "SEMAFORE_PROVIDER"} & set(env)


def test_a_command_failing_or_missing_its_evidence_is_reported(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    env = {"PATH": "/usr/bin:/bin"}
    ok = check_wheel.Command("ok", ("python", "-c", "print('DEMO PASSED')"), ("DEMO PASSED",))
    silent = check_wheel.Command("silent", ("python", "-c", "pass"), ("DEMO PASSED",))
    failing = check_wheel.Command("failing", ("python", "-c", "raise SystemExit(3)"))
    assert check_wheel.check_command(ok, venv, tmp_path, env).problems == []
    assert "lacks 'DEMO PASSED'" in check_wheel.check_command(silent, venv, tmp_path,
                                                               env).problems[0]
    assert "exit status 3" in check_wheel.check_command(failing, venv, tmp_path, env).problems[0]
    no_report = check_wheel.Command("no report", ("python", "-c", "pass"),
                                    produces="load-results/*/summary.md")
    assert "no load-results/*/summary.md" in check_wheel.check_command(
        no_report, venv, tmp_path, env).problems[0]
    (tmp_path / "load-results" / "run").mkdir(parents=True)
    (tmp_path / "load-results" / "run" / "summary.md").write_text("# run")
    assert check_wheel.check_command(no_report, venv, tmp_path, env).problems == []


def test_files_written_into_the_installation_are_found(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "semafore" / "__pycache__").mkdir(parents=True)
    (site / "semafore" / "__init__.py").write_text("")
    before = check_wheel.installed_files(site)
    (site / "semafore" / "__pycache__" / "x.pyc").write_bytes(b"")  # byte code: allowed
    (site / "load-results" / "run").mkdir(parents=True)
    (site / "load-results" / "run" / "locust_stats.csv").write_text("")
    assert check_wheel.installed_files(site) - before == {
        site / "load-results" / "run" / "locust_stats.csv"
    }
