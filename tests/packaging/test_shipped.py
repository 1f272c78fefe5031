"""semafore.shipped: the installed copy of the vectors and the catalogue first, then the
checkout; a broken install is a typed error naming what is missing and every place tried
(issue #14 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from semafore import shipped
from semafore.vectors.files import VECTOR_FILES

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkout_finds_its_own_top_level_directories() -> None:
    assert shipped.vectors_dir() == ROOT / "vectors"
    assert shipped.scenario_catalogue() == ROOT / "scenarios"
    for name in VECTOR_FILES:
        assert (shipped.vectors_dir() / f"{name}.json").is_file()


def test_the_installed_copy_wins_over_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "site-packages" / "semafore" / "shipped"
    (installed / "scenarios" / "threats").mkdir(parents=True)
    (installed / "scenarios" / "threats" / "server-compromise.yaml").write_text("x")
    monkeypatch.setattr(shipped, "installed_root", lambda: installed)
    assert shipped.scenario_catalogue() == installed / "scenarios"
    # the installed package lacks the vectors: the checkout still answers
    assert shipped.vectors_dir() == ROOT / "vectors"


def test_an_empty_directory_is_never_taken_for_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "shipped"
    (installed / "vectors").mkdir(parents=True)  # present, but without the marker file
    monkeypatch.setattr(shipped, "installed_root", lambda: installed)
    monkeypatch.setattr(shipped, "CHECKOUT_ROOT", tmp_path / "no-checkout")
    with pytest.raises(shipped.ShippedDataMissing) as caught:
        shipped.vectors_dir()
    assert caught.value.data is shipped.VECTORS
    assert caught.value.tried == (installed / "vectors", tmp_path / "no-checkout" / "vectors")
    assert "x3dh-prekey-v1.json" in str(caught.value)


def test_a_broken_install_is_a_clear_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from semafore.cli.main import main

    monkeypatch.setattr(shipped, "installed_root", lambda: tmp_path / "installed")
    monkeypatch.setattr(shipped, "CHECKOUT_ROOT", tmp_path / "no-checkout")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["semafore", "sim", "run", "--quiet"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("Error: scenarios: no threats/server-compromise.yaml under ")
    assert str(tmp_path / "no-checkout" / "scenarios") in error
