"""``semafore serve``: run the reference relay (uvicorn) on an embedded store, or on real
MongoDB + Redis + SeaweedFS with ``--store backends`` (docs/backends.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import sys
from pathlib import Path

import click

from semafore.deploy.balancer import BALANCERS, BalancerError
from semafore.deploy.errors import RelayStartError, SettingsError
from semafore.deploy.foreground import run_until_signalled
from semafore.deploy.replicas import endpoints_from_env, serve_on_backends
from semafore.deploy.workers import MAX_WORKERS, WorkerError, WorkerPool, WorkerSpec
from semafore.server.app import create_app, openapi_document
from semafore.server.oplog import (
    LOG_HASH_MODES,
    LogHash,
    LogHashError,
    configure_logging,
    event,
)
from semafore.server.relay_key import RelayKeyError, derive, load_or_create
from semafore.server.settings import DEFAULT_RATE_LIMITS, Settings, unlimited_rate_limits
from semafore.storage import open_stores

LOG_HASH_KEY_ENV = "SEMAFORE_LOG_HASH_KEY"


def log_hash_from(mode: str, key_file: Path | None,
                  environ: dict[str, str] | None = None) -> LogHash:
    """The relay's ``log_hash`` setting from ``--log-hash`` and its secret: the
    ``SEMAFORE_LOG_HASH_KEY`` variable, else the content of ``--log-hash-key-file``
    (surrounding whitespace removed). A separate secret from the relay key, so incident
    responders can be given it without the token signing key, and it can rotate alone.
    :class:`~semafore.server.oplog.LogHashError` names ``log_hash_key`` when keyed has none
    (issue 13 F-12)."""
    env = os.environ if environ is None else environ
    if mode != "keyed":
        if key_file is not None or env.get(LOG_HASH_KEY_ENV):
            raise LogHashError("log_hash_key", f"a secret is only used with --log-hash keyed, "
                               f"not {mode}")
        return LogHash(mode)
    if env.get(LOG_HASH_KEY_ENV):
        return LogHash(mode, env[LOG_HASH_KEY_ENV].strip().encode("utf-8"))
    if key_file is None:
        raise LogHashError("log_hash_key", f"--log-hash keyed needs a secret: "
                           f"--log-hash-key-file PATH or {LOG_HASH_KEY_ENV}")
    return LogHash(mode, key_file.read_bytes().strip())


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--store",
    default="memory",
    show_default=True,
    help="'memory', 'sqlite:PATH' (created if missing), or 'backends[:NAMESPACE]': real "
    "MongoDB + Redis + SeaweedFS from the SEMAFORE_*_URL variables `semafore backends up` "
    "prints, with cross-replica push.",
)
@click.option(
    "--test-mode",
    is_flag=True,
    help="Accept the fixed test OTP, only for organisations named by --test-org (ADR-0164).",
)
@click.option("--test-org", "test_orgs", multiple=True, help="Allow-listed test organisation.")
@click.option("--test-otp", default="000000", show_default=True, help="The test OTP code.")
@click.option(
    "--test-no-rate-limits",
    "no_rate_limits",
    is_flag=True,
    help="TEST ONLY (needs --test-mode): no rate limits, for harnesses whose simulated devices "
    "all share one address (`semafore sim run --relay`, docs/simulator.md 'External relay').",
)
@click.option(
    "--otp-sink",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="TEST ONLY (needs --test-mode): append every login code issued to "
    "DIR/otp-codes.jsonl, for harnesses whose organisations are not test-OTP allow-listed "
    "(the account-plane threat scenarios, docs/threats.md).",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="Seconds a request head may take to arrive before a typed 408 (slowloris bound).",
)
@click.option(
    "--retention-interval",
    default=60.0,
    show_default=True,
    type=float,
    help="Seconds between retention enforcement runs (0 disables).",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the relay key (base64, created 0600 if missing) that signs tokens and "
    "seals TOTP seeds, so sessions survive a restart. SEMAFORE_RELAY_KEY (base64) overrides "
    "it. Default: PATH.key beside an sqlite:PATH store; none for memory (a throwaway key).",
)
@click.option(
    "--log-hash",
    default="sha256",
    show_default=True,
    type=click.Choice(LOG_HASH_MODES),
    help="How identifiers become *_h8 log pseudonyms: sha256 (the seed's unkeyed prefix, "
    "reversible by anyone who can guess an id) or keyed (HMAC-SHA-256 under a deployment "
    "secret; docs/server.md 'Log pseudonyms').",
)
@click.option(
    "--log-hash-key-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="File holding the --log-hash keyed secret (its content, surrounding whitespace "
    f"removed, at least 16 bytes). {LOG_HASH_KEY_ENV} overrides it.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_WORKERS),
    help="Relay processes serving the one port (SO_REUSEPORT: the kernel spreads "
    "connections), with cross-process push through Redis; more than 1 needs --store "
    "backends. A worker that dies is restarted (at most 3 times a minute, else exit 1). "
    "docs/capacity.md 'serve --workers'.",
)
@click.option(
    "--balancer",
    default="kernel",
    show_default=True,
    type=click.Choice(BALANCERS),
    help="With --workers: 'kernel' (each worker listens on the port itself, SO_REUSEPORT) or "
    "'haproxy' (Debian's HAProxy holds the port: least-connections, health checks, no "
    "connection lost to a dying worker).",
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]))
@click.option("--print-openapi", is_flag=True, help="Print the OpenAPI document and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the listening address as JSON.")
def command(
    host: str,
    port: int,
    store: str,
    test_mode: bool,
    test_orgs: tuple[str, ...],
    test_otp: str,
    no_rate_limits: bool,
    otp_sink: Path | None,
    header_timeout: float,
    retention_interval: float,
    key_file: Path | None,
    log_hash: str,
    log_hash_key_file: Path | None,
    workers: int,
    balancer: str,
    log_level: str,
    print_openapi: bool,
    as_json: bool,
) -> None:
    """Run the SemaFore relay: HTTP + WebSocket API (docs/server.md)."""
    if print_openapi:
        click.echo(openapi_document(), nl=False)
        return
    if test_orgs and not test_mode:
        raise click.UsageError("--test-org needs --test-mode")
    if no_rate_limits and not test_mode:
        raise click.UsageError("--test-no-rate-limits needs --test-mode")
    if otp_sink is not None and not test_mode:
        raise click.UsageError("--otp-sink needs --test-mode (it writes login codes to disk)")
    on_backends = store == "backends" or store.startswith("backends:")
    if workers > 1 and not on_backends:
        raise click.BadParameter(
            f"--workers {workers} needs --store backends[:NAMESPACE]: a {store.partition(':')[0]}"
            " store cannot be shared by relay processes with push between them (memory is per"
            " process; SQLite has no cross-process push hub)",
            param_hint="--workers",
        )
    if balancer != "kernel" and workers == 1:
        raise click.UsageError("--balancer needs --workers 2 or more")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding {host}, not loopback", err=True)
    if key_file is None and store.startswith("sqlite:"):
        key_file = Path(store.partition(":")[2] + ".key")
    try:
        relay_key = load_or_create(key_file)
    except (RelayKeyError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--key-file") from exc
    if relay_key is None:
        relay_key = secrets.token_bytes(32)
        if store != "memory":
            click.echo("warning: no --key-file or SEMAFORE_RELAY_KEY: tokens and TOTP "
                       "enrolments will not survive a restart", err=True)
    try:
        pseudonyms = log_hash_from(log_hash, log_hash_key_file)
    except (LogHashError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--log-hash-key-file") from exc
    settings = Settings(
        log_hash=pseudonyms,
        test_mode=test_mode,
        test_orgs=frozenset(test_orgs),
        rate_limits=unlimited_rate_limits() if no_rate_limits else dict(DEFAULT_RATE_LIMITS),
        test_otp=test_otp,
        otp_sink=None if otp_sink is None else str(otp_sink),
        header_timeout=header_timeout,
        retention_interval=retention_interval,
        jwt_secret=derive(relay_key, "jwt"),
        totp_key=derive(relay_key, "totp-seal"),
    )
    if on_backends:
        _serve_on_backends(settings, host, port, store.partition(":")[2] or "semafore",
                           as_json, log_level, workers, balancer)
        return
    try:
        stores = open_stores(store)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from exc
    configure_logging(sys.stderr, getattr(logging, log_level.upper()), settings.log_hash)
    app = create_app(settings, stores)
    kind = store.partition(":")[0]
    try:
        # Bound before the address is printed, so --port 0 prints the port the kernel chose
        # (a script reads it from --json; issue #14 item 5).
        sock = bind(host, port)
    except OSError as exc:
        asyncio.run(stores.close())
        raise click.BadParameter(f"cannot bind {host}:{port}: {exc}", param_hint="--port") from exc
    url = relay_url(host, sock.getsockname()[1])
    if as_json:
        click.echo(json.dumps({"url": url, "store": kind, "port": sock.getsockname()[1],
                               "workers": [os.getpid()]}))
    else:
        click.echo(f"SemaFore relay on {url} (store: {kind})")
    try:  # through the deploy layer: the relay's one uvicorn configuration (issue 13, 14)
        run_until_signalled(app, settings, sock)
    except RelayStartError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        sock.close()
        asyncio.run(stores.close())


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (0: a free port the kernel picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def relay_url(host: str, port: int) -> str:
    """The relay's base URL as printed (an IPv6 literal in brackets, RFC 3986)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve_on_backends(
    settings: Settings, host: str, port: int, namespace: str, as_json: bool, log_level: str,
    workers: int, balancer: str,
) -> None:
    try:
        endpoints = endpoints_from_env()
    except SettingsError as exc:
        raise click.BadParameter(
            f"{exc} (run `semafore backends up` and export the lines it prints)",
            param_hint="--store",
        ) from exc
    configure_logging(sys.stderr, getattr(logging, log_level.upper()), settings.log_hash)
    if workers > 1:
        spec = WorkerSpec(settings, endpoints, namespace, host, port,
                          getattr(logging, log_level.upper()))
        try:
            pool = WorkerPool(spec, workers, balancer=balancer)
        except SettingsError as exc:
            raise click.BadParameter(exc.reason, param_hint=f"--{exc.field}") from exc
        _serve_workers(pool, as_json)
        return
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise click.BadParameter(f"cannot bind {host}:{port}: {exc}", param_hint="--port") from exc
    url = relay_url(host, sock.getsockname()[1])
    if as_json:
        click.echo(json.dumps({"url": url, "store": "backends", "port": sock.getsockname()[1],
                               "workers": [os.getpid()]}))
    else:
        click.echo(f"SemaFore relay on {url} (store: backends/{namespace})")
    asyncio.run(serve_on_backends(endpoints, settings, sock, namespace=namespace))


def _serve_workers(pool: WorkerPool, as_json: bool) -> None:
    """Run ``pool`` until SIGTERM or Ctrl-C (both stop every worker gracefully, exit 0);
    a worker past its restart budget stops the rest and exits 1 (semafore/deploy/workers.py)."""
    try:
        pool.start()
    except OSError as exc:
        pool.close()
        raise click.BadParameter(f"cannot bind {pool.spec.host}:{pool.spec.port}: {exc}",
                                 param_hint="--port") from exc
    except (WorkerError, BalancerError) as exc:
        pool.close()
        raise click.ClickException(str(exc)) from exc
    namespace = pool.spec.namespace
    balancer_pid = pool.balancer.pid if pool.balancer is not None else None
    if as_json:
        click.echo(json.dumps({"url": pool.url, "store": "backends", "port": pool.port,
                               "workers": pool.pids, "balancer": pool.balancer_kind,
                               "balancer_pid": balancer_pid}))
    else:
        click.echo(f"SemaFore relay on {pool.url} (store: backends/{namespace}, "
                   f"{len(pool.pids)} workers: pids {', '.join(map(str, pool.pids))}; "
                   f"balancer: {pool.balancer_kind})")

    def stop(_signum: int, _frame: object) -> None:
        pool.request_stop()

    def restarted(index: int, old_pid: int, new_pid: int) -> None:
        event("worker_restarted", logging.WARNING, worker=index, old_pid=old_pid, pid=new_pid)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        pool.supervise(on_restart=restarted)
    except (WorkerError, BalancerError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        pool.stop()
        pool.close()
