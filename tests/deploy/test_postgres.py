"""FerretDB stores into PostgreSQL on the ``local`` provider by default (semafore.deploy.postgres).

The specification: the default ``local`` MongoDB is FerretDB on a PostgreSQL server the
provider owns (it holds the data: FerretDB can be killed and restarted without losing any, and
a dead PostgreSQL takes MongoDB down with it); the server runs as the ``postgres`` account
when we are root; ``SEMAFORE_FERRETDB_HANDLER=sqlite`` keeps the old engine; a machine
without PostgreSQL gets a typed error naming it, never a silent fallback.
"""

from __future__ import annotations

import os
import pwd
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

from semafore.deploy import health
from semafore.deploy.errors import SettingsError, ToolMissingError
from semafore.deploy.postgres import POSTGRES_ACCOUNT, _hand_over, find_postgres
from semafore.deploy.providers import LocalProvider
from semafore.deploy.settings import InfraSettings, ProviderKind
from semafore.deploy.testing import require


def _settings(tmp_path: Path, **env: str) -> InfraSettings:
    base = InfraSettings.from_env({"SEMAFORE_PROVIDER": "local", **env})
    return InfraSettings(**{**base.__dict__, "provider": ProviderKind.LOCAL, "work_dir": tmp_path})


# -- settings and discovery (no processes) -------------------------------------------------------


def test_the_default_handler_is_postgresql_and_a_bad_one_is_named() -> None:
    assert InfraSettings.from_env({}).ferretdb_handler == "postgresql"
    assert InfraSettings.from_env({"SEMAFORE_FERRETDB_HANDLER": "SQLite"}).ferretdb_handler == (
        "sqlite"
    )
    with pytest.raises(SettingsError) as info:
        InfraSettings.from_env({"SEMAFORE_FERRETDB_HANDLER": "mysql"})
    assert info.value.field == "SEMAFORE_FERRETDB_HANDLER"


def _fake_bin(directory: Path) -> None:
    directory.mkdir(parents=True)
    for name in ("initdb", "postgres"):
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)


def test_the_newest_debian_postgresql_is_found(tmp_path: Path) -> None:
    debian = tmp_path / "usr-lib-postgresql"
    for version in ("9.6", "13", "15"):
        _fake_bin(debian / version / "bin")
    found = find_postgres(tmp_path / "tools", debian_root=debian, search_path=False)
    assert found.initdb == debian / "15" / "bin" / "initdb"
    assert found.postgres == debian / "15" / "bin" / "postgres"


def test_the_tools_directory_comes_first(tmp_path: Path) -> None:
    _fake_bin(tmp_path / "tools" / "bin")
    debian = tmp_path / "debian"
    _fake_bin(debian / "15" / "bin")
    found = find_postgres(tmp_path / "tools", debian_root=debian, search_path=False)
    assert found.postgres == tmp_path / "tools" / "bin" / "postgres"


def test_no_postgresql_is_a_typed_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "debian" / "15" / "bin").mkdir(parents=True)  # a directory, no executables
    with pytest.raises(ToolMissingError) as info:
        find_postgres(tmp_path / "tools", debian_root=tmp_path / "debian", search_path=False)
    assert info.value.tool == "postgres"
    assert "SEMAFORE_FERRETDB_HANDLER=sqlite" in str(info.value)


@pytest.fixture
def answering() -> Iterator[tuple[list[bytes], int]]:
    """A loopback server that answers each connection with the next canned first byte."""
    answers: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(answers.pop(0) if answers else b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield answers, port
    server.close()


def test_ready_means_the_server_answers_authentication(answering: tuple[list[bytes], int]) -> None:
    answers, port = answering
    answers.extend([b"E\x00\x00\x00\x05x", b"R\x00\x00\x00\x08\x00\x00\x00\x00"])
    assert not health.postgres_ready(port)  # "the database system is starting up"
    assert health.postgres_ready(port)
    assert not health.postgres_ready(port)  # closed without a word


# -- a real provider ------------------------------------------------------------------------------

pg_backend = pytest.mark.backend


@pg_backend
def test_ferretdb_stores_into_the_providers_own_postgresql(tmp_path: Path) -> None:
    provider = LocalProvider(_settings(tmp_path))
    require(lambda: (provider.start(), provider)[1])
    try:
        postgres = provider.postgres
        assert postgres is not None and postgres.pid is not None
        data = postgres.spec.cwd
        assert data is not None and (data / "PG_VERSION").is_file()
        ferretdb = provider.backend("mongodb")
        assert "--handler=postgresql" in ferretdb.spec.argv
        if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as its own account
            uid = Path(f"/proc/{postgres.pid}/status").read_text().split("Uid:")[1].split()[0]
            assert int(uid) == pwd.getpwnam(POSTGRES_ACCOUNT).pw_uid
        url = provider.endpoints.mongodb_url
        assert url is not None
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=10_000, socketTimeoutMS=20_000
        )
        try:
            client.t.c.insert_one({"_id": "kept", "v": 1})
            ferretdb.kill()  # FerretDB holds nothing: the row is in PostgreSQL
            ferretdb.start()
            assert client.t.c.find_one({"_id": "kept"}) == {"_id": "kept", "v": 1}
            postgres.kill()  # and without PostgreSQL, FerretDB cannot serve
            with pytest.raises(pymongo.errors.PyMongoError):
                client.t.c.find_one({"_id": "kept"})
        finally:
            client.close()
    finally:
        provider.stop()
    assert provider.postgres is None
    assert data is not None and not data.exists()  # the throw-away cluster is gone


@pg_backend
def test_sqlite_stays_available_and_runs_no_postgresql(tmp_path: Path) -> None:
    provider = LocalProvider(_settings(tmp_path, SEMAFORE_FERRETDB_HANDLER="sqlite"))
    require(lambda: (provider.start(), provider)[1])
    try:
        assert provider.postgres is None
        assert "--handler=sqlite" in provider.backend("mongodb").spec.argv
        url = provider.endpoints.mongodb_url
        assert url is not None and health.mongodb_ping(url)
    finally:
        provider.stop()


def test_only_directories_under_the_providers_root_are_opened_up(tmp_path: Path) -> None:
    data = tmp_path / "root" / "mongodb" / "postgres"
    data.mkdir(parents=True)
    (tmp_path / "root").chmod(0o700)
    with pytest.raises(ValueError, match="not a parent"):
        _hand_over(data, POSTGRES_ACCOUNT, tmp_path / "elsewhere")
    assert (tmp_path / "root").stat().st_mode & 0o777 == 0o700  # left as it was
