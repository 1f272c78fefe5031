"""What a new user met on the command line (issue #14 item 5), each pinned through the CLI.

``serve --port 0`` prints the port it bound; ``sim run``/``validate`` with nothing to run exit
2 as docs/scenarios.md says; off a terminal an error line is one line however long; a
scenario whose ``name`` is not its file name is refused naming the ``name`` key;
``gate --config`` with a missing file is a usage error (exit 2), never a silent default.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from semafore import shipped
from semafore.cli.gate import command as gate
from simulator.cli.sim import command as sim_command
from simulator.scenario import ScenarioError, load, loads

SCENARIO = """\
# seed §1.1 test file
version: 1
name: {name}
cites: ["seed §1.1"]
users:
  - {{id: alice, devices: [phone]}}
  - {{id: bob, devices: [phone]}}
steps:
  - send: {{from: alice/phone, to: bob, label: m}}
  - sync: {{}}
  - assert: {{delivered_exactly_once: {{messages: all}}}}
"""


def write(directory: Path, stem: str, name: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.yaml"
    path.write_text(SCENARIO.format(name=name or stem), encoding="utf-8")
    return path


# --- serve --port 0 ----------------------------------------------------------------------------


def test_serve_port_zero_prints_the_bound_port_and_serves_there(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMAFORE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--port", "0", "--json",
         "--retention-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        announced = json.loads(proc.stdout.readline())
        host, _, port = announced["url"].removeprefix("http://").rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        deadline = time.monotonic() + 30
        while True:  # the address is printed before uvicorn starts accepting on the socket
            try:
                with urllib.request.urlopen(f"{announced['url']}/v1/health", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_on_a_taken_port_is_a_usage_error_naming_port() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEMAFORE_")}
        done = subprocess.run(
            [sys.executable, "-m", "semafore.cli.main", "serve", "--port", str(port)],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )
    assert done.returncode == 2
    assert "--port" in done.stderr and str(port) in done.stderr


# --- nothing to run ----------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["run", "validate"])
def test_sim_on_a_directory_without_scenarios_exits_2(tmp_path: Path, sub: str) -> None:
    out = CliRunner().invoke(sim_command, [sub, str(tmp_path)])
    assert out.exit_code == 2, out.output
    assert "no scenario file" in out.output and str(tmp_path) in out.output


def test_sim_run_without_paths_runs_the_shipped_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue = tmp_path / "shipped-catalogue"
    catalogue.mkdir()
    monkeypatch.setattr(shipped, "scenario_catalogue", lambda: catalogue)
    out = CliRunner().invoke(sim_command, ["run"])
    # an empty stand-in catalogue: the run looked exactly there
    assert out.exit_code == 2 and str(catalogue) in out.output, out.output


# --- plain lines off a terminal ------------------------------------------------------------------


def test_error_lines_are_not_wrapped_off_a_terminal(tmp_path: Path) -> None:
    deep = tmp_path / "a-rather-long-directory-name-for-the-catalogue" / "threats-of-the-week"
    path = write(deep, "long-enough-to-pass-eighty-columns")
    path.write_text(path.read_text().replace("label: m}", "label: m, colour: red}"))
    out = CliRunner().invoke(sim_command, ["validate", str(path)])
    assert out.exit_code == 1
    (line,) = out.output.splitlines()  # one file, one error: one line, however long
    assert len(line) > 80
    assert line.startswith(f"error {path}:9:") and ": steps[0].send.colour: " in line


def test_tables_are_not_folded_off_a_terminal(tmp_path: Path) -> None:
    path = write(tmp_path, "long-enough-to-fold-in-an-eighty-column-table")
    path.write_text(path.read_text().replace("label: m}", "label: m, colour: red}"))
    out = CliRunner().invoke(sim_command, ["run", "--quiet", str(tmp_path)])
    assert out.exit_code == 1  # an invalid file is an error row
    rows = [line for line in out.output.splitlines() if path.stem in line]
    assert rows and any("error" in row for row in rows), out.output


def test_a_section_heading_is_one_short_line_off_a_terminal() -> None:
    import io

    from rich.console import Console

    from semafore.cli import output

    buffer = io.StringIO()
    plain = Console(file=buffer, soft_wrap=True, width=output.PLAIN_WIDTH)
    output.section(plain, "2. verify the committed vectors")
    assert buffer.getvalue() == "── 2. verify the committed vectors ──\n"


# --- name equals file name ---------------------------------------------------------------------


def test_a_scenario_named_unlike_its_file_is_refused_naming_the_name_key(tmp_path: Path) -> None:
    path = write(tmp_path, "reorder", name="re-order")
    with pytest.raises(ScenarioError) as caught:
        load(path)
    assert (caught.value.key, caught.value.line) == ("name", 3)
    assert "'re-order'" in caught.value.message and "'reorder'" in caught.value.message
    out = CliRunner().invoke(sim_command, ["validate", "--json", str(path)])
    assert out.exit_code == 1
    (entry,) = json.loads(out.output)
    assert (entry["ok"], entry["key"], entry["line"]) == (False, "name", 3)


def test_the_name_rule_applies_to_files_only() -> None:
    # text with no file behind it (tests, the pytest plugin) keeps any name
    assert loads(SCENARIO.format(name="anything"), file="<string>").name == "anything"


def test_every_catalogue_scenario_is_named_after_its_file() -> None:
    catalogue = Path(__file__).resolve().parents[2] / "scenarios"
    files = sorted(catalogue.rglob("*.yaml"))
    assert files
    for path in files:
        assert load(path).name == path.stem


# --- gate --config -----------------------------------------------------------------------------


def test_gate_config_missing_is_exit_2_naming_the_option(tmp_path: Path) -> None:
    missing = tmp_path / "gate.yaml"
    out = CliRunner().invoke(gate, ["--config", str(missing)])
    assert out.exit_code == 2
    assert "--config" in out.output and str(missing) in out.output
    assert "gate verdict" not in out.output  # nothing ran on default settings
