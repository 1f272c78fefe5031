"""Commands that must work from an installed wheel without an activated venv (issue #14 item 3):
``semafore adapter`` serves the contract, ``--impl NAME=PROGRAM`` finds a script installed
beside the interpreter when ``PATH`` lacks it, and ``vectors generate`` never writes into an
installed package. The wheel itself: tests/packaging/test_installed_wheel.py."""

from __future__ import annotations

import json
import shlex
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from semafore.cli import vectors
from semafore.cli.gate import installed_script
from semafore.cli.main import cli
from semafore.gate.runner import Impl

ROOT = Path(__file__).resolve().parents[2]


def test_semafore_adapter_answers_the_contract_on_stdin() -> None:
    requests = [{"id": 1, "op": "capabilities"}, {"id": 2, "op": "no.such.op"}]
    out = CliRunner().invoke(cli, ["adapter"], input="".join(json.dumps(r) + "\n"
                                                             for r in requests))
    assert out.exit_code == 0, out.output
    first, second = (json.loads(line) for line in out.output.splitlines())
    assert first["id"] == 1 and first["ok"] is True and "x3dh.initiate" in first["result"]["ops"]
    assert (second["id"], second["ok"], second["error"]) == (2, False, "Unsupported")


def fake_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scripts = tmp_path / "venv-bin"
    scripts.mkdir()
    program = scripts / "platform-adapter"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    real = sysconfig.get_path

    def get_path(name: str, *args: object, **kwargs: object) -> str:
        return str(scripts) if name == "scripts" else real(name)

    monkeypatch.setattr(sysconfig, "get_path", get_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    return program


def test_a_script_beside_the_interpreter_is_found_when_path_lacks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = fake_scripts(tmp_path, monkeypatch)
    resolved = installed_script(Impl("ref", "platform-adapter --fault 'a b'"))
    assert shlex.split(resolved.command) == [str(program), "--fault", "a b"]
    assert resolved.name == "ref"


def test_other_commands_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_scripts(tmp_path, monkeypatch)
    for command in ("./platform-adapter", "/usr/bin/env platform-adapter", "unknown-program"):
        assert installed_script(Impl("x", command)).command == command
    on_path = tmp_path / "on-path"
    on_path.mkdir()
    (on_path / "platform-adapter").write_text("#!/bin/sh\n")
    (on_path / "platform-adapter").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))  # PATH wins, as in a shell
    assert installed_script(Impl("x", "platform-adapter")).command == "platform-adapter"


def test_vectors_generate_refuses_to_write_into_an_installed_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pretend the checkout is site-packages: the default target is then package data
    real = sysconfig.get_path
    monkeypatch.setattr(sysconfig, "get_path",
                        lambda name, *a, **k: str(ROOT) if name == "purelib" else real(name))
    monkeypatch.chdir(ROOT / "docs")  # no ./vectors here
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "vectors").glob("*.json")}
    out = CliRunner().invoke(vectors.command, ["generate"])
    assert out.exit_code == 2 and "--out" in out.output, out.output
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "vectors").glob("*.json")} == before

