"""FerretDB's ``postgresql`` handler against its ``sqlite`` handler, on the relay's own MongoDB
adapter, as the key directory grows (issue #16 items 2 and 4; ``semafore.deploy.postgres``).

What is measured is device provisioning, the work a ``loadtests`` corpus does before a load
profile can start: per device, what the relay's install path asks of MongoDB
(``add_device``, ``put_identity``, ``set_spk``, ``add_opks`` of ``--opks`` one-time prekeys,
``opk_count``, ``list_devices``, ``published_devices``), ``--concurrency`` devices at a time.
Each handler runs in its own ``local`` provider, one after the other in the same run, and the
table gives devices per second per block of ``--block`` devices, so a cost that grows with the
collection shows as a falling rate. A handler that has not finished within ``--budget``
seconds stops there (its last block is the rate it had reached): the bound keeps a quadratic
handler from taking hours.

    python -m benchmarks.bench_ferretdb_handlers --devices 1000 --opks 100 [--json out.json]
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from semafore.deploy.providers import LocalProvider
from semafore.deploy.settings import FERRETDB_HANDLERS, InfraSettings, ProviderKind
from semafore.storage.mongodb import MongoAccountStore, MongoDatabase, MongoKeyStore
from semafore.storage.ports import (
    Device,
    IdentityRecord,
    OneTimePrekeyRecord,
    SignedPrekeyRecord,
)


@dataclass
class HandlerRun:
    handler: str
    devices: int = 0
    seconds: float = 0.0
    blocks: list[float] = field(default_factory=list)
    """Devices per second of each completed block, in order."""
    stopped_by_budget: bool = False


async def _install(accounts: MongoAccountStore, keys: MongoKeyStore, n: int, opks: int) -> None:
    user, device = f"user-{n:06d}", "d1"
    await accounts.add_device(Device(user, device, n + 1, time.time()))
    if await keys.get_identity(user, device) is None:
        await keys.put_identity(
            IdentityRecord(user, device, secrets.token_bytes(32), secrets.token_bytes(32))
        )
    spk = SignedPrekeyRecord("1", secrets.token_bytes(32), secrets.token_bytes(64))
    await keys.set_spk(user, device, spk)
    batch = [OneTimePrekeyRecord(str(k), secrets.token_bytes(32)) for k in range(opks)]
    await keys.add_opks(user, device, batch)
    await keys.opk_count(user, device)
    await accounts.list_devices(user)
    await keys.published_devices(user)


async def _provision(url: str, run: HandlerRun, args: dict[str, int]) -> None:
    database = await MongoDatabase(url, "bench").open()
    accounts, keys = MongoAccountStore(database), MongoKeyStore(database)
    started = time.monotonic()
    try:
        for first in range(0, args["devices"], args["block"]):
            block_start = time.monotonic()
            numbers = range(first, min(first + args["block"], args["devices"]))
            for i in range(0, len(numbers), args["concurrency"]):
                chunk = numbers[i : i + args["concurrency"]]
                await asyncio.gather(*(_install(accounts, keys, n, args["opks"]) for n in chunk))
            run.devices += len(numbers)
            run.blocks.append(len(numbers) / (time.monotonic() - block_start))
            if time.monotonic() - started > args["budget"]:
                run.stopped_by_budget = run.devices < args["devices"]
                break
    finally:
        run.seconds = time.monotonic() - started
        await database.close()


def _measure(handler: str, args: dict[str, int]) -> HandlerRun:
    settings = InfraSettings.from_env(
        {**os.environ, "SEMAFORE_PROVIDER": ProviderKind.LOCAL.value,
         "SEMAFORE_FERRETDB_HANDLER": handler}
    )
    run = HandlerRun(handler)
    with LocalProvider(settings) as provider:
        url = provider.endpoints.mongodb_url
        assert url is not None
        asyncio.run(_provision(url, run, args))
    return run


@click.command()
@click.option("--devices", default=1000, show_default=True, help="devices to provision")
@click.option("--opks", default=100, show_default=True, help="one-time prekeys per device")
@click.option("--block", default=100, show_default=True, help="devices per reported block")
@click.option("--concurrency", default=8, show_default=True, help="devices installed at once")
@click.option("--budget", default=240, show_default=True, help="seconds per handler, at most")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def main(
    devices: int, opks: int, block: int, concurrency: int, budget: int, json_out: Path | None
) -> None:
    """Provisioning throughput of FerretDB's handlers on the relay's MongoDB adapter."""
    console = Console(width=150)
    args = {"devices": devices, "opks": opks, "block": block, "concurrency": concurrency,
            "budget": budget}
    runs: list[HandlerRun] = []
    for handler in FERRETDB_HANDLERS:
        console.print(f"[bold]{handler}[/]: provisioning {devices} devices x {opks} OPKs ...")
        runs.append(_measure(handler, args))
    table = Table(title=f"FerretDB handlers: devices/s per block of {block} "
                        f"({opks} OPKs each, {concurrency} at once; load {os.getloadavg()[0]:.1f})")
    table.add_column("devices so far")
    for run in runs:
        table.add_column(run.handler)
    table.add_column(f"{runs[0].handler} / {runs[1].handler}")
    for i in range(max(len(r.blocks) for r in runs)):
        cells = [f"{r.blocks[i]:.1f}" if i < len(r.blocks) else "-" for r in runs]
        both = all(i < len(r.blocks) for r in runs)
        ratio = f"{runs[0].blocks[i] / runs[1].blocks[i]:.1f}x" if both else "-"
        table.add_row(str((i + 1) * block), *cells, ratio)
    console.print(table)
    for run in runs:
        note = " (stopped by --budget)" if run.stopped_by_budget else ""
        console.print(f"{run.handler}: {run.devices} devices in {run.seconds:.1f} s "
                      f"= {run.devices / run.seconds:.1f}/s overall{note}")
    if json_out is not None:
        json_out.write_text(json.dumps({
            "args": args, "machine": platform.node(), "load": os.getloadavg(),
            "runs": [asdict(r) for r in runs],
        }, indent=2))


if __name__ == "__main__":
    main()
