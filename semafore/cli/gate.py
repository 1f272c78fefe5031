"""``semafore gate --impl NAME=COMMAND …``: the CI interop gate (SPEC §7).

``gate`` is a group invoked without a sub-command for the vector gate, so the live matrix
(issue 7) can be added as ``semafore gate live`` without changing this interface.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import shlex
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from semafore.cli import output
from semafore.deploy.errors import SettingsError
from semafore.deploy.settings import ProviderKind
from semafore.gate.cases import GateCase, VectorFormatError, cases_for
from semafore.gate.config import GateConfig, GateConfigError, load_config
from semafore.gate.live import LiveSetupError, RelayAccess, RelayAccessError, run_live
from semafore.gate.live_report import render_terminal as render_live
from semafore.gate.live_report import write_html
from semafore.gate.live_report import write_json as write_live_json
from semafore.gate.live_report import write_junit as write_live_junit
from semafore.gate.report import render_terminal, write_json, write_junit
from semafore.gate.runner import (
    DEFAULT_MAX_CONSECUTIVE,
    DEFAULT_TIMEOUT_S,
    GateReport,
    Impl,
    run_gate,
)
from semafore.gate.verdict import CaseResult
from semafore.gate.wycheproof import wycheproof_cases
from semafore.vectors.files import (
    VECTOR_FILES,
    VectorLoadError,
    default_vectors_dir,
    load_documents,
)

DEFAULT_CONFIG = Path("ci/gate.yaml")


class GateSetupError(click.ClickException):
    """Invalid configuration or vector files: exit status 2, distinct from a failed gate."""

    exit_code = 2


def reference_impl() -> Impl:
    """The reference adapter, run with this interpreter."""
    return Impl("reference", f"{shlex.quote(sys.executable)} -m semafore.adapter")


def installed_script(impl: Impl) -> Impl:
    """``impl`` with a bare program name that is not on ``PATH`` but is a script installed
    beside this interpreter (``semafore-adapter`` from a venv that is not activated) replaced
    by that script's path; any other command unchanged (issue #14 item 3)."""
    argv = shlex.split(impl.command)
    program = argv[0] if argv else ""
    if not program or "/" in program or shutil.which(program) is not None:
        return impl
    scripts = Path(sysconfig.get_path("scripts"))
    found = shutil.which(program, path=str(scripts))
    if found is None:
        return impl
    return Impl(impl.name, shlex.join([found, *argv[1:]]))


def vector_summary(directory: Path, documents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for doc in documents:
        path = directory / f"{doc['file']}.json"
        out.append(
            {
                "file": doc["file"],
                "version": doc["version"],
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "cases": len(doc["cases"]),
                "negative": len(doc["negative"]),
            }
        )
    return out


def load_gate_cases(
    directory: Path, wycheproof: Path | None = None
) -> tuple[list[GateCase], list[dict[str, Any]]]:
    documents = load_documents(directory)
    cases, summary = cases_for(documents), vector_summary(directory, documents)
    if wycheproof is not None:
        extra = wycheproof_cases(wycheproof)
        cases += extra
        summary.append({"file": "wycheproof", "directory": str(wycheproof), "cases": len(extra)})
    return cases, summary


def execute_gate(
    impls: Sequence[Impl],
    directory: Path,
    config: GateConfig,
    *,
    timeout_s: float,
    max_consecutive: int,
    console: Console,
    progress_console: Console | None = None,
    wycheproof: Path | None = None,
    case_patterns: Sequence[str] = (),
) -> GateReport:
    """Load the vectors, run them with a progress bar, and render the terminal report."""
    cases, summary = load_gate_cases(directory, wycheproof)
    if case_patterns:
        cases = [
            case
            for case in cases
            if any(fnmatch.fnmatchcase(case.full_id, pattern) for pattern in case_patterns)
        ]
        if not cases:
            raise VectorFormatError(f"no case matches {', '.join(case_patterns)}")
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=progress_console or output.console(stderr=True)) as progress:
        task = progress.add_task("gate", total=len(cases) * len(impls))

        def advance(impl: str, case: GateCase, result: CaseResult) -> None:
            progress.update(task, advance=1, description=f"{impl} {case.file}")

        report = run_gate(
            impls,
            cases,
            config,
            timeout_s=timeout_s,
            max_consecutive=max_consecutive,
            progress=advance,
            vectors=summary,
        )
    render_terminal(report, console)
    return report


@click.group("gate", invoke_without_command=True)
@click.option(
    "--impl",
    "impl_specs",
    multiple=True,
    metavar="NAME=COMMAND",
    help="An adapter to test (repeatable). Default: the reference adapter only.",
)
@click.option(
    "--vectors",
    "vectors_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"Directory with {', '.join(VECTOR_FILES)} (default: ./vectors if it holds them, "
    "else the pinned vectors shipped with this installation).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"Gate configuration with expected failures; a missing file is an error (exit 2). "
    f"Default: {DEFAULT_CONFIG} if present, else none.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds one case (all its requests) may take before the adapter is killed.",
)
@click.option(
    "--max-consecutive",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_CONSECUTIVE,
    show_default=True,
    help="After this many crashes/timeouts in a row, mark an adapter's remaining cases unrun.",
)
@click.option(
    "--wycheproof",
    "wycheproof_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Also run Project Wycheproof cases (x25519, ed25519, aes_gcm, hkdf_sha256, "
    "hmac_sha256 *_test.json in this directory) through the adapters' primitive operations.",
)
@click.option(
    "--case",
    "case_patterns",
    multiple=True,
    metavar="PATTERN",
    help="Run only cases whose <file>:<id> matches this fnmatch pattern (repeatable), "
    "e.g. 'dr-v1-interop:*' or '*:max-skip'.",
)
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), help="Write JUnit XML.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write a JSON summary.")
@click.pass_context
def command(
    ctx: click.Context,
    impl_specs: tuple[str, ...],
    vectors_dir: Path | None,
    config_path: Path | None,
    timeout_s: float,
    max_consecutive: int,
    wycheproof_dir: Path | None,
    case_patterns: tuple[str, ...],
    junit_path: Path | None,
    json_path: Path | None,
) -> None:
    """Run every vector case against every adapter; exit 1 on any divergence.

    Each adapter runs as one subprocess speaking the JSON-lines contract of
    docs/adapter-contract.md; a crash, hang, garbage output or wrong id gets its own verdict
    and the adapter is restarted for the next case.
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        impls = [installed_script(Impl.parse(spec)) for spec in impl_specs] or [reference_impl()]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--impl") from exc
    names = [impl.name for impl in impls]
    if len(set(names)) != len(names):
        raise click.BadParameter("adapter names must be unique", param_hint="--impl")
    if config_path is None and DEFAULT_CONFIG.is_file():
        config_path = DEFAULT_CONFIG
    try:
        config = load_config(config_path)
    except GateConfigError as exc:
        raise GateSetupError(f"gate configuration: {exc}") from exc
    console = output.console()
    try:
        report = execute_gate(
            impls,
            vectors_dir or default_vectors_dir(),
            config,
            timeout_s=timeout_s,
            max_consecutive=max_consecutive,
            console=console,
            wycheproof=wycheproof_dir,
            case_patterns=case_patterns,
        )
    except (VectorLoadError, VectorFormatError) as exc:
        raise GateSetupError(f"vectors: {exc}") from exc
    if junit_path is not None:
        write_junit(report, junit_path)
    if json_path is not None:
        write_json(report, json_path)
    if not report.passed:
        sys.exit(1)


def relay_access_options(func: Any) -> Any:
    """The options that grant the oracle an external relay's stores and logs (seed §4.5),
    shared by ``gate live`` and ``sim run --relay`` (issue #15): build the grant with
    :func:`relay_access`."""
    options = [
        click.option("--relay-mongo", "mongo_url", metavar="URL",
                     help="External relay: its MongoDB, read after the run (every document)."),
        click.option("--relay-redis", "redis_url", metavar="URL",
                     help="External relay: its Redis, read after the run (every key, DUMP + "
                     "value)."),
        click.option("--relay-seaweed", "seaweed_url", metavar="URL",
                     help="External relay: its SeaweedFS filer, read after the run (every "
                     "file)."),
        click.option("--relay-namespace", "namespace", metavar="NS",
                     help="Only the relay's namespace: MongoDB database NS, Redis keys NS:*, "
                     "SeaweedFS /semafore/NS (as `semafore serve --store backends:NS`)."),
        click.option("--relay-store-file", "store_files", multiple=True, metavar="PATH",
                     type=click.Path(exists=True, path_type=Path),
                     help="External relay: a data file or directory read as raw bytes (SQLite "
                     "database, RDB snapshot, volume files). Repeatable."),
        click.option("--relay-log", "log_paths", multiple=True, metavar="PATH",
                     type=click.Path(exists=True, path_type=Path),
                     help="External relay: a log file or a directory of log files (.gz too), "
                     "scanned after the run with the raw-identifier check. Repeatable."),
        click.option("--require-source", "required", multiple=True,
                     type=click.Choice(["wire", "stores", "logs"]),
                     help="Fail unless the oracle scanned this source (repeatable); e.g. a "
                     "staging pipeline that must never pass on a wire-only scan."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def relay_access(mongo_url: str | None, redis_url: str | None, seaweed_url: str | None,
                 namespace: str | None, store_files: tuple[Path, ...],
                 log_paths: tuple[Path, ...]) -> Any:
    """The :class:`~semafore.gate.live.RelayAccess` the ``--relay-*`` options grant; store
    URLs not given come from ``SEMAFORE_PROVIDER=external`` (``click.BadParameter`` naming
    the option on a bad value)."""
    try:
        env = RelayAccess.from_env() if not (mongo_url or redis_url or seaweed_url) else None
        return RelayAccess(
            mongo_url or (env.mongodb_url if env else None),
            redis_url or (env.redis_url if env else None),
            seaweed_url or (env.seaweedfs_filer_url if env else None),
            namespace or (env.namespace if env else None),
            files=store_files, logs=log_paths,
            origin="environment" if env is not None else "options",
        )
    except RelayAccessError as exc:
        raise click.BadParameter(exc.detail, param_hint=exc.field) from exc
    except SettingsError as exc:
        raise click.BadParameter(f"SEMAFORE_* environment: {exc}", param_hint="--relay") from exc


@command.command("live")
@click.option(
    "--impl",
    "impl_specs",
    multiple=True,
    metavar="NAME=COMMAND",
    help="An adapter implementing the live operations (repeatable; default: the reference).",
)
@click.option(
    "--relay",
    default=ProviderKind.EMBEDDED.value,
    show_default=True,
    help="'embedded' (in-process relay, memory stores), 'local' (in-process relay on the "
    "local backend provider) or a relay base URL in test mode for --org.",
)
@click.option("--org", default="live-gate", show_default=True,
              help="Organisation the gate creates and enrols its users in.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=20.0,
              show_default=True, help="Budget for one adapter request, in seconds.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), help="Write JUnit XML.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write a JSON report.")
@click.option("--html", "html_path", type=click.Path(path_type=Path),
              help="Write a self-contained HTML report.")
@relay_access_options
def live_command(
    impl_specs: tuple[str, ...],
    relay: str,
    org: str,
    timeout_s: float,
    junit_path: Path | None,
    json_path: Path | None,
    html_path: Path | None,
    mongo_url: str | None,
    redis_url: str | None,
    seaweed_url: str | None,
    namespace: str | None,
    store_files: tuple[Path, ...],
    log_paths: tuple[Path, ...],
    required: tuple[str, ...],
) -> None:
    """Every ordered pair of adapters converses through a relay (SPEC §7, docs/gate.md).

    Bootstrap, both directions, out-of-order delivery, a lost first message, simultaneous
    initiation, multi-device fan-out and a reinstall per cell, then the plaintext-absence
    oracle over the wire, the relay's stores and its logs. An external relay's stores and logs
    are read only when given (--relay-mongo/-redis/-seaweed/-store-file, or the
    SEMAFORE_PROVIDER=external URLs; --relay-log); the report names every source scanned and
    not scanned. Exit 1 unless every cell passes and the oracle passes (no hit, no error).
    """
    try:
        impls = [installed_script(Impl.parse(spec)) for spec in impl_specs] or [reference_impl()]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--impl") from exc
    names = [impl.name for impl in impls]
    if len(set(names)) != len(names):
        raise click.BadParameter("adapter names must be unique", param_hint="--impl")
    harness_started = relay in (ProviderKind.EMBEDDED, ProviderKind.LOCAL)
    if not harness_started and not relay.startswith(("http://", "https://")):
        raise click.BadParameter("must be 'embedded', 'local' or an http(s) URL",
                                 param_hint="--relay")
    given = bool(mongo_url or redis_url or seaweed_url or namespace or store_files or log_paths)
    access: RelayAccess | None = None
    if harness_started:
        if given:
            raise click.BadParameter(
                f"--relay-* options need an external relay URL; the {relay} relay's stores "
                "and logs are always scanned", param_hint="--relay")
    else:
        access = relay_access(mongo_url, redis_url, seaweed_url, namespace, store_files,
                              log_paths)
    console = output.console()
    total = len(impls) ** 2
    with Progress(
        TextColumn("[bold]live matrix"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=console, transient=True,
    ) as progress:
        task = progress.add_task("", total=total)

        def advance(cell: Any) -> None:
            progress.update(task, advance=1, description=f"{cell.key}: {cell.verdict.value}")

        try:
            report = asyncio.run(run_live(impls, relay, timeout_s=timeout_s, org=org,
                                          on_cell=advance, access=access, require=required))
        except LiveSetupError as exc:
            raise GateSetupError(str(exc)) from exc
    render_live(report, console)
    if junit_path is not None:
        write_live_junit(report, junit_path)
    if json_path is not None:
        write_live_json(report, json_path)
    if html_path is not None:
        write_html(report, html_path)
    if not report.passed:
        sys.exit(1)
