"""Where the local provider finds the binaries it installs itself (FerretDB in ``<tools>/bin``):
``SEMAFORE_TOOLS_DIR``, else the checkout's ``.tools``, else the per-user data directory, since
an installed wheel has no checkout (issue #14 item 1, docs/backends.md). A binary found nowhere
is a typed error naming it and how to install it. Only tmp directories: nothing is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from semafore.deploy.errors import BackendUnavailableError, ToolMissingError
from semafore.deploy.providers import LocalProvider
from semafore.deploy.settings import (
    INSTALL_SCRIPT,
    PROJECT_ROOT,
    InfraSettings,
    ProviderKind,
    checkout_root,
    resolve_tools_dir,
)


def make_checkout(root: Path) -> Path:
    (root / "semafore").mkdir(parents=True)
    (root / INSTALL_SCRIPT).parent.mkdir(parents=True)
    (root / INSTALL_SCRIPT).write_text("#!/bin/sh\n")
    return root


def test_the_variable_wins_over_a_checkout(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "repo")
    env = {"SEMAFORE_TOOLS_DIR": str(tmp_path / "mine"), "HOME": str(tmp_path / "home")}
    assert resolve_tools_dir(env, root=checkout) == tmp_path / "mine"


def test_a_checkout_uses_its_own_tools_directory(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path / "repo")
    env = {"SEMAFORE_TOOLS_DIR": "  ", "HOME": str(tmp_path / "home")}  # blank: not given
    assert resolve_tools_dir(env, root=checkout) == checkout / ".tools"


def test_without_a_checkout_the_per_user_data_directory(tmp_path: Path) -> None:
    site = tmp_path / "lib"  # what PROJECT_ROOT is for an installed wheel: no script there
    (site / "semafore").mkdir(parents=True)
    assert checkout_root(site) is None
    home = tmp_path / "home"
    assert resolve_tools_dir({"HOME": str(home)}, root=site) == (
        home / ".local" / "share" / "semafore" / "tools")
    data = tmp_path / "xdg"
    assert resolve_tools_dir({"HOME": str(home), "XDG_DATA_HOME": str(data)}, root=site) == (
        data / "semafore" / "tools")
    # the XDG spec: a relative XDG_DATA_HOME is invalid and ignored
    assert resolve_tools_dir({"HOME": str(home), "XDG_DATA_HOME": "rel"}, root=site) == (
        home / ".local" / "share" / "semafore" / "tools")


def test_this_checkout_is_recognised() -> None:
    assert checkout_root(PROJECT_ROOT) == PROJECT_ROOT


def test_settings_read_the_same_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMAFORE_TOOLS_DIR", str(tmp_path / "env-tools"))
    assert InfraSettings().tools_dir == tmp_path / "env-tools"
    given = InfraSettings.from_env({"SEMAFORE_TOOLS_DIR": str(tmp_path / "given")})
    assert given.tools_dir == tmp_path / "given"
    assert InfraSettings.from_env({}).tools_dir == PROJECT_ROOT / ".tools"


def test_a_missing_binary_names_itself_and_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # redis-server is on no PATH and in no tools dir
    tools = tmp_path / "tools"
    settings = InfraSettings(provider=ProviderKind.LOCAL, tools_dir=tools,
                             work_dir=tmp_path / "work")
    provider = LocalProvider(settings)
    with pytest.raises(ToolMissingError) as caught:
        provider.start()
    error = caught.value
    assert isinstance(error, BackendUnavailableError)  # callers that skip on it still do
    assert error.tool == error.backend == "redis-server"
    assert error.tools_dir == str(tools)
    message = str(error)
    assert f"{tools}/bin" in message
    assert "scripts/install-backends.sh" in message and "SEMAFORE_TOOLS_DIR" in message
    assert not provider.started and list((tmp_path / "work").iterdir()) == []
