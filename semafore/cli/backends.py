"""``semafore backends up|dump``: real MongoDB/Redis/SeaweedFS for a session, and a raw scan of
what they hold (docs/backends.md)."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import click
from rich.table import Table

from semafore.cli import output
from semafore.deploy import dumps
from semafore.deploy.containers import ContainersProvider
from semafore.deploy.errors import InfraError
from semafore.deploy.providers import Endpoints, LocalProvider, Provider
from semafore.deploy.settings import InfraSettings, ProviderKind


@click.group("backends")
def command() -> None:
    """Start real backends, or scan real backends for a plaintext needle."""


def _print_endpoints(endpoints: Endpoints, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "provider": endpoints.provider.value,
                    **endpoints.as_env(),
                    "mongodb_engine": endpoints.mongodb_engine,
                }
            )
        )
        return
    for key, value in endpoints.as_env().items():
        click.echo(f"export {key}={value}")


@command.command("up")
@click.option(
    "--provider",
    "kind",
    type=click.Choice([k.value for k in ProviderKind if k.owns_backend_processes]),
    default=ProviderKind.LOCAL.value,
    show_default=True,
    help="Local processes or containers.",
)
@click.option(
    "--durable-redis",
    is_flag=True,
    help="Redis with AOF and appendfsync always (no acknowledged write lost on kill -9).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as one JSON object.")
def up(kind: str, durable_redis: bool, as_json: bool) -> None:
    """Start MongoDB (or FerretDB), Redis and SeaweedFS on 127.0.0.1, print their URLs as
    ``export`` lines (SEMAFORE_PROVIDER=external for other shells), and keep them running
    until Ctrl-C or SIGTERM; then stop them and delete their data."""
    base = InfraSettings.from_env()
    settings = InfraSettings(**{**base.__dict__, "provider": ProviderKind(kind)})
    provider: Provider = (
        LocalProvider(settings, redis_durable=durable_redis)
        if kind == ProviderKind.LOCAL
        else ContainersProvider(settings, redis_durable=durable_redis)
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with output.console(stderr=True).status(f"starting {kind} backends"):
            provider.start()
        _print_endpoints(provider.endpoints, as_json)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    except InfraError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        provider.stop()


@command.command("dump")
@click.option("--needle", required=True, help="Text to look for (UTF-8), e.g. a plaintext canary.")
@click.option("--hex", "is_hex", is_flag=True, help="NEEDLE is hex-encoded bytes.")
@click.option("--mongodb-url", envvar="SEMAFORE_MONGODB_URL", help="[env SEMAFORE_MONGODB_URL]")
@click.option("--redis-url", envvar="SEMAFORE_REDIS_URL", help="[env SEMAFORE_REDIS_URL]")
@click.option(
    "--filer-url", envvar="SEMAFORE_SEAWEEDFS_FILER_URL", help="[env SEMAFORE_SEAWEEDFS_FILER_URL]"
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), help="Write a JSON report here."
)
def dump(
    needle: str,
    is_hex: bool,
    mongodb_url: str | None,
    redis_url: str | None,
    filer_url: str | None,
    json_path: Path | None,
) -> None:
    """Read everything the backends hold as raw bytes and report where NEEDLE occurs.

    Exits 1 if it occurs anywhere (the plaintext-absence check), 0 otherwise.
    """
    try:
        wanted = bytes.fromhex(needle) if is_hex else needle.encode()
    except ValueError as exc:
        raise click.BadParameter(f"not hex: {exc}", param_hint="--needle") from exc
    sources: list[tuple[str, str | None, Callable[[str], Iterable[dumps.Dumped]]]] = [
        ("mongodb", mongodb_url, dumps.iter_mongodb),
        ("redis", redis_url, dumps.iter_redis),
        ("seaweedfs", filer_url, dumps.iter_seaweedfs),
    ]
    report: dict[str, dict[str, object]] = {}
    for name, url, fn in sources:
        if not url:
            continue
        # one item at a time (a stored file searched block by block): a store of any size
        count = size = 0
        where: list[str] = []
        try:
            for item in fn(url):
                count += 1
                size += len(item.data) if isinstance(item, dumps.Item) else \
                    item.path.stat().st_size
                if dumps.contains(item, wanted):
                    where.append(item.source)
        except Exception as exc:
            raise click.ClickException(f"{name}: cannot dump {url}: {exc}") from exc
        report[name] = {"items": count, "bytes": size, "hits": where}
    if not report:
        raise click.UsageError("no backend URL given (options or SEMAFORE_*_URL)")
    table = Table("backend", "items", "bytes", "hits")
    for name, row in report.items():
        hits = row["hits"]
        assert isinstance(hits, list)
        table.add_row(name, str(row["items"]), str(row["bytes"]), str(len(hits)))
    console = output.console()
    console.print(table)
    found = [hit for row in report.values() for hit in row["hits"]]  # type: ignore[attr-defined]
    for hit in found:
        console.print(f"[red]found[/red] {hit}")
    if json_path is not None:
        json_path.write_text(json.dumps({"needle_hex": wanted.hex(), "backends": report}, indent=2))
    raise SystemExit(1 if found else 0)
