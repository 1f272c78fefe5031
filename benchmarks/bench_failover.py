"""Redis Sentinel failover under delivery (issue #16 item 5), Jepsen-style: on the ``local``
provider's ``cluster`` shape, writers send through the relay's queue port, the Redis primary
is SIGKILLed once ``--kill-after`` sends are acknowledged, and the run reports what the
failover did to acknowledged sends: lost, duplicated, the unavailability window and the
failover time (semafore.deploy.failover). Each ``--runs`` run starts a fresh cluster.

With ``SEMAFORE_REDIS_TOPOLOGY=cluster`` the shape's Redis is a Redis Cluster (3 primaries + 3
replicas) and the node killed is the one serving the recipient's hash slot; the cluster's own
failover promotes its replica (``--min-replicas`` is then not applied: Sentinel topology only).

``--min-replicas 1`` sets ``min-replicas-to-write 1`` on the primary (the configuration that
refuses writes nobody replicates). ``SEMAFORE_REDIS_WAIT=N[/TIMEOUT_S]`` in the environment
makes the queue port acknowledge a send only once N replicas hold it (Redis ``WAIT``, on
either topology), as a relay started with it does; refused attempts are counted as errors
(docs/backends.md "Cluster shape" says what each prevents). Figures are as measured, never
asserted.

    nice -n 10 .venv/bin/python -m benchmarks.bench_failover [--runs 3] [--writers 16] \\
        [--messages 4000] [--kill-after 1000] [--min-replicas 0] [--json out.json] \\
        [--pause-replica-at 900 --body-size 16384]   # a lagging replica: acked sends lost
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click
from rich.console import Console
from rich.table import Table

from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.failover import FailoverFigures, measure_failover
from semafore.deploy.settings import InfraSettings, ProviderKind, Shape


def _wait_text() -> str:
    wait = InfraSettings.from_env().redis_wait
    return "off" if wait is None else wait.as_text()


def one_run(
    work: Path, *, messages: int, writers: int, kill_after: int, min_replicas: int,
    body_size: int, pause_replica_at: int | None,
) -> FailoverFigures:
    base = InfraSettings.from_env()
    settings = InfraSettings(
        **{**base.__dict__, "provider": ProviderKind.LOCAL, "shape": Shape.CLUSTER,
           "work_dir": work}
    )
    with LocalClusterProvider(settings, redis_min_replicas=min_replicas) as provider:
        assert isinstance(provider, LocalClusterProvider)
        return asyncio.run(
            measure_failover(provider, messages=messages, writers=writers, kill_after=kill_after,
                             body_size=body_size, pause_replica_at=pause_replica_at,
                             wait=base.redis_wait)
        )


def _span(times: tuple[float, ...]) -> str:
    """When the lost sends were acknowledged, relative to the kill (the JSON lists each)."""
    return f"{min(times):+.3f}..{max(times):+.3f}" if times else "-"


@click.command()
@click.option("--runs", default=3, show_default=True)
@click.option("--messages", default=4000, show_default=True)
@click.option("--writers", default=16, show_default=True)
@click.option("--kill-after", default=1000, show_default=True)
@click.option("--min-replicas", default=0, show_default=True)
@click.option("--body-size", default=64, show_default=True, help="bytes per envelope body")
@click.option("--pause-replica-at", type=int, default=None,
              help="SIGSTOP the replica at this many acks, SIGCONT after the kill (lagging)")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def main(
    runs: int, messages: int, writers: int, kill_after: int, min_replicas: int,
    body_size: int, pause_replica_at: int | None, json_out: Path | None,
) -> None:
    console = Console(width=160)
    topology = InfraSettings.from_env().redis_topology.value
    table = Table(title=f"Redis failover ({topology}): {messages} sends, {writers} writers, "
                        f"kill after {kill_after} acks, min-replicas-to-write {min_replicas}, "
                        f"replica paused at {pause_replica_at} acks, body {body_size} B, "
                        f"WAIT {_wait_text()}")
    for column in ("run", "acked", "attempts", "errors", "lost", "lost: acked from..to (s)",
                   "duplicated", "window (s)", "failover (s)"):
        table.add_column(column)
    results = []
    with tempfile.TemporaryDirectory(prefix="semafore-failover-") as work:
        for run in range(1, runs + 1):
            figures = one_run(Path(work), messages=messages, writers=writers,
                              kill_after=kill_after, min_replicas=min_replicas,
                              body_size=body_size, pause_replica_at=pause_replica_at)
            row = figures.as_dict()
            results.append(row)
            table.add_row(
                str(run), str(row["acknowledged"]), str(row["attempts"]), str(row["errors"]),
                str(row["lost"]), _span(figures.lost_acked_at),
                str(row["duplicated"]), f"{figures.window:.3f}", f"{figures.failover:.3f}",
            )
    console.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
