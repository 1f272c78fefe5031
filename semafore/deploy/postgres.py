"""PostgreSQL under FerretDB: the storage engine of the ``local`` provider's MongoDB stand-in.

Why PostgreSQL and not FerretDB's SQLite handler (issue #16 item 4, docs/backends.md
"FerretDB handlers"): FerretDB v1 on SQLite pushes down only ``_id`` equality and, on this
build, still scans the table for it, so every query the relay's MongoDB adapter makes costs in
proportion to the collection. Provisioning a 1,000-person organisation (about 190,000
one-time prekeys) then became quadratic: ~3.5 h extrapolated. On PostgreSQL FerretDB pushes
string equality, sort and limit down into SQL; the same query at 100,000 documents took
25-33 ms against 400-1,500 ms (``benchmarks/bench_ferretdb_handlers.py`` measures both in one
run). The steady-state send path never reads MongoDB, so the two handlers tie there.

The server is a throw-away cluster: ``initdb`` into the provider's data directory, TCP on
127.0.0.1 only (no Unix socket), ``trust`` authentication for the one local role, and
``fsync=off`` (a killed *process* loses nothing, since writes reach the kernel; only a machine
crash could, and the directory is deleted at stop anyway). PostgreSQL refuses to run as root,
so a root caller runs it as the ``postgres`` account Debian's package creates.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semafore.deploy import health
from semafore.deploy.errors import BackendUnavailableError, ToolMissingError
from semafore.deploy.processes import ProcessSpec, account, find_tool

__all__ = [
    "POSTGRES_ACCOUNT",
    "PostgresTools",
    "find_postgres",
    "postgres_spec",
    "postgres_url",
]

POSTGRES_ACCOUNT = "postgres"
"""The account a root caller runs the server as (created by Debian's ``postgresql`` package)."""

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_HINT = (
    "Debian package postgresql (scripts/install-backends.sh), or SEMAFORE_FERRETDB_HANDLER=sqlite"
)


@dataclass(frozen=True)
class PostgresTools:
    """The two executables a throw-away cluster needs."""

    initdb: Path
    postgres: Path


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in path.name.split(".") if p.isdigit())


def find_postgres(
    tools_dir: Path, *, debian_root: Path = _DEBIAN_ROOT, search_path: bool = True
) -> PostgresTools:
    """``initdb`` and ``postgres`` from the tools directory, PATH, or Debian's versioned
    ``/usr/lib/postgresql/N/bin`` (newest first; Debian keeps them off PATH).

    Raises :class:`ToolMissingError` naming ``postgres`` when there is none: a ``local``
    relay never silently falls back to another engine.
    """
    dirs = [tools_dir / "bin"]
    if debian_root.is_dir():
        versions = sorted(
            (d for d in debian_root.iterdir() if (d / "bin").is_dir()),
            key=_version_key,
            reverse=True,
        )
        dirs.extend(d / "bin" for d in versions)
    for directory in dirs:
        initdb, server = directory / "initdb", directory / "postgres"
        if all(p.is_file() and os.access(p, os.X_OK) for p in (initdb, server)):
            return PostgresTools(initdb, server)
    if search_path:
        initdb_found, server_found = find_tool("initdb"), find_tool("postgres")
        if initdb_found is not None and server_found is not None:
            return PostgresTools(initdb_found, server_found)
    raise ToolMissingError("postgres", str(tools_dir), _HINT)


def _run_as() -> str | None:
    """The account to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_ACCOUNT)
    except KeyError:
        raise BackendUnavailableError(
            "postgres",
            f"running as root needs the {POSTGRES_ACCOUNT!r} account to run PostgreSQL as "
            f"(root cannot); {_HINT}",
        ) from None
    return POSTGRES_ACCOUNT


def _hand_over(data: Path, user: str | None, root: Path) -> None:
    """Give the data directory to ``user`` and let it traverse (``o+x``, never read) the
    directories from ``root`` down to it, which the provider made private."""
    if user is None:
        return
    if root not in data.parents:  # never loosen directories the provider did not make
        raise ValueError(f"{root} is not a parent of {data}")
    shutil.chown(data, user=user, group=user)
    for parent in data.parents:
        parent.chmod(parent.stat().st_mode | 0o001)
        if parent == root:
            break


def _initdb(tools: PostgresTools, data: Path, user: str | None) -> None:
    result = subprocess.run(  # argv built here, never from untrusted input
        [
            str(tools.initdb),
            "-D",
            str(data),
            "-U",
            POSTGRES_ACCOUNT,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        **account(user),
        capture_output=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise BackendUnavailableError("postgres", f"initdb failed: {output[-2000:]}")


def _template(tools: PostgresTools, user: str | None) -> Path:
    """A pristine ``initdb`` result, made once per machine, account and PostgreSQL build and
    then copied (~0.05 s against ~0.5 s for ``initdb``: the test suite starts many providers).
    Concurrent first callers each build one; the first rename wins, the others are dropped."""
    build = hashlib.sha256(str(tools.initdb.resolve()).encode()).hexdigest()[:12]
    final = Path(tempfile.gettempdir()) / f"semafore-postgres-{os.geteuid()}-{build}"
    if (final / "data" / "PG_VERSION").is_file():
        return final / "data"
    staging = Path(tempfile.mkdtemp(prefix=f"{final.name}.", dir=final.parent))
    try:
        (staging / "data").mkdir()
        _hand_over(staging / "data", user, staging)
        _initdb(tools, staging / "data", user)
        try:
            staging.rename(final)
        except OSError:  # another process made it first
            if not (final / "data" / "PG_VERSION").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final / "data"


def postgres_spec(
    tools: PostgresTools,
    data: Path,
    port: int,
    log_path: Path,
    *,
    root: Path,
    extra: Sequence[str] = (),
) -> ProcessSpec:
    """Put a fresh cluster in ``data`` (which must not exist yet; ``root`` is the provider's
    directory above it) and return how to run it.

    The cluster is a copy of a once-made ``initdb`` result (:func:`_template`), owner and
    modes kept; a failure raises :class:`BackendUnavailableError` naming ``postgres``.
    """
    user = _run_as()
    data.parent.mkdir(parents=True, exist_ok=True)
    copied = subprocess.run(  # cp -a: keeps the owner (postgres) and the 0700 mode it checks
        [shutil.which("cp") or "/bin/cp", "-a", str(_template(tools, user)), str(data)],
        capture_output=True,
        check=False,
        timeout=120,
    )
    if copied.returncode != 0:
        raise BackendUnavailableError(
            "postgres", f"copying the initdb template failed: {copied.stderr.decode()[-500:]}"
        )
    _hand_over(data, user, root)
    argv = [
        str(tools.postgres),
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "fsync=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
        *extra,
    ]
    return ProcessSpec(
        "postgres",
        argv,
        lambda: health.postgres_ready(port),
        log_path,
        cwd=data,
        user=user,
    )


def postgres_url(port: int) -> str:
    """The URL FerretDB's ``postgresql`` handler is given (the cluster's own database)."""
    return f"postgres://{POSTGRES_ACCOUNT}@127.0.0.1:{port}/postgres"
