"""``semafore sim``: run scenario files against a provider and report verdicts (docs/scenarios.md).

``semafore sim run scenarios/`` runs the whole catalogue on the embedded provider: a progress
bar while it runs, a verdict table at the end, and ``--junit`` / ``--json`` / ``--html``
reports beside it. ``--relay URL`` runs them against an external relay instead
(:mod:`simulator.external`, docs/simulator.md "External relay"). The exit status is 0 only if
every scenario passed, was exposed as documented, or was skipped (its ``providers`` exclude
the chosen one); 1 if any failed or errored; 3 if none did but one was unsupported (against
an external relay; never a pass); 2 when nothing could run at all (no scenario found, no
executor).

The simulator contributes this group to the ``semafore`` command through the
``semafore.commands`` entry point (issue 14 item 2: the library never imports the simulator).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import inspect
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from semafore import shipped
from semafore.cli import output
from semafore.cli.gate import relay_access, relay_access_options
from semafore.deploy.settings import ProviderKind
from semafore.oracle.leaks import parse_chain
from semafore.oracle.model import OracleError
from semafore.sabotage import CATALOGUE, UnknownSabotage, by_name
from simulator import sabotage_matrix as matrix_runs
from simulator import sabotage_search as targeted_search
from simulator import trace as tracing
from simulator.cli.sim_impl import implementation_options, runner_for
from simulator.external import ExternalRelay, ExternalRelayError, RelayHooks, run_orgs
from simulator.report import ScenarioResult, Verdict, render, to_html, to_json, to_junit
from simulator.scenario import Scenario, ScenarioError, Step, discover, load, schema
from simulator.scenario.model import FileNote

PROVIDER_NAMES = [kind.value for kind in ProviderKind]
"""``--provider`` choices: the names of :class:`ProviderKind`, the one list."""

Runner = Callable[..., Any]


class ExecutorUnavailable(click.ClickException):
    exit_code = 2


class NothingToRun(click.ClickException):
    """No scenario file under the given paths: exit status 2 (docs/scenarios.md), distinct
    from a scenario that failed (1)."""

    exit_code = 2


def _executor() -> Runner:
    """``simulator.executor.run_scenario``, or a clear error: never a fake result."""
    try:
        executor = importlib.import_module("simulator.executor")
    except ImportError as exc:
        raise ExecutorUnavailable(
            f"the scenario executor (simulator.executor) cannot be imported: {exc}"
        ) from exc
    # --impl chosen (issue 15 item 1): devices spread over adapters (simulator.cli.sim_impl)
    runner = runner_for(executor) or getattr(executor, "run_scenario", None)
    if not callable(runner):
        raise ExecutorUnavailable("simulator.executor has no run_scenario(scenario, ...)")
    return cast(Runner, runner)


def _run_one(
    runner: Runner, scenario: Scenario, provider: str, seed: int | None,
    on_step: Callable[[Step], None], leak: str = "off", relay: Any = None,
    relay_orgs: tuple[str, ...] = (),
) -> ScenarioResult:
    started = time.perf_counter()
    try:
        extra: dict[str, Any] = {} if leak == "off" else {"leak": leak}
        if relay is not None:  # an external relay (simulator.external.ExternalRelay)
            extra.update(relay=relay, relay_orgs=relay_orgs)
        outcome = runner(scenario, provider=provider, seed=seed, on_step=on_step, **extra)
        if inspect.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
        if not isinstance(outcome, ScenarioResult):
            raise TypeError(f"executor returned {type(outcome).__name__}, not ScenarioResult")
        result = outcome
    except Exception as exc:  # an executor crash is this scenario's error, not the run's
        result = ScenarioResult.for_scenario(scenario, provider=provider, seed=seed)
        detail = "".join(traceback.format_exception_only(exc)).strip()
        result.error = f"executor crashed: {detail}\n{traceback.format_exc(limit=8)}"
    if not result.duration_s:
        result.duration_s = time.perf_counter() - started
    return result


def run_paths(
    paths: tuple[Path, ...] | list[Path], *, provider: str = ProviderKind.EMBEDDED,
    seed: int | None = None,
    console: Console, quiet: bool = False, leak: str = "off", relay: Any = None,
) -> list[ScenarioResult]:
    """Load and run every scenario under ``paths`` with a progress bar; one result each.

    Shared by ``semafore sim run`` and ``semafore demo``. Raises ``NothingToRun`` when no
    file is found and ``ExecutorUnavailable`` when the executor cannot be imported.
    """
    files = discover(list(paths))
    if not files:
        raise NothingToRun("no scenario file (*.yaml, *.yml) under "
                           + ", ".join(str(p) for p in paths))
    loaded: list[Scenario | ScenarioResult] = []
    for path in files:
        try:
            loaded.append(load(path))
        except ScenarioError as exc:
            loaded.append(ScenarioResult.load_error(
                str(path), f"invalid scenario: {exc}", provider=provider, seed=seed or 0))
    # against an external relay (``relay``, simulator.external) what a scenario needs is
    # judged step by step (unsupported); each scenario gets the next organisation names
    # (ORG, ORG-2, …; simulator.external.run_orgs lists them for the relay's allow-list)
    runs_on = (lambda _s: None) if relay is not None else (lambda s: s.runs_on(provider))
    allotted = _allot_orgs(loaded, relay.org) if relay is not None else {}
    runnable = [s for s in loaded if isinstance(s, Scenario) and runs_on(s) is None]
    runner = _executor() if runnable else None
    results: list[ScenarioResult] = []
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, disable=quiet, transient=False,
    ) as progress:
        overall = progress.add_task("scenarios", total=len(loaded))
        steps: TaskID = progress.add_task("steps", total=1, visible=False)
        for item in loaded:
            if isinstance(item, ScenarioResult):
                results.append(item)
            elif (why_not := runs_on(item)) is not None:
                skipped = ScenarioResult.for_scenario(item, provider=provider, seed=seed)
                skipped.skipped = why_not
                results.append(skipped)
            else:
                assert runner is not None
                progress.reset(steps, total=len(item.steps), visible=True,
                               description=f"  {item.name}")

                def on_step(step: Step, *, _name: str = item.name) -> None:
                    progress.update(steps, completed=step.index,
                                    description=f"  {_name}: {step.kind} (line {step.line})")

                results.append(_run_one(runner, item, provider, seed, on_step, leak, relay,
                                        allotted.get(id(item), ())))
                progress.update(steps, completed=len(item.steps))
            progress.advance(overall)
        progress.update(steps, visible=False)
    return results


def _allot_orgs(loaded: list[Scenario | ScenarioResult], base: str) -> dict[int, tuple[str, ...]]:
    """Each loaded scenario's relay organisations, in run order (by ``id`` of the scenario):
    the same names :func:`simulator.external.run_orgs` lists."""
    scenarios = [s for s in loaded if isinstance(s, Scenario)]
    names = iter(run_orgs(scenarios, base))
    return {id(s): tuple(next(names) for _ in s.organisations) for s in scenarios}


def external_relay_options(func: Any) -> Any:
    """``--relay URL`` and what comes with it (issue #15): the organisation name, the live
    gate's store/log grants (:func:`semafore.cli.gate.relay_access_options`) and the
    process hooks; the command receives one ``relay`` argument (an
    :class:`simulator.external.ExternalRelay`, or None for the in-process relay)."""

    @relay_access_options
    @click.option("--relay", "relay_url", metavar="URL",
                  help="Run against this external relay (its public HTTP + WebSocket API "
                  "only; test mode for the run's organisations, docs/simulator.md 'External "
                  "relay') instead of the in-process one.")
    @click.option("--org", "relay_org", default="sim", show_default=True,
                  help="With --relay: the run signs up ORG, ORG-2, … (`semafore sim "
                  "test-orgs` lists them for the relay's --test-org allow-list).")
    @click.option("--relay-hook", "hooks", multiple=True, metavar="NAME=CMD",
                  help="With --relay: a command that performs an infra step on the relay's "
                  "process (stop, start, kill, pause, unpause/resume, restart; "
                  "redis.restart…). Steps without a hook make the scenario unsupported. "
                  "Repeatable.")
    @click.option("--relay-hook-timeout", type=click.FloatRange(min=0.1), default=60.0,
                  show_default=True, help="Seconds a hook may run before it is killed.")
    @click.option("--relay-otp-sink", "otp_sink", metavar="DIR",
                  type=click.Path(file_okay=False, exists=True, path_type=Path),
                  help="With --relay: the relay's OTP sink (`serve --otp-sink DIR`), for "
                  "scenarios whose users log in with real one-time codes.")
    @functools.wraps(func)
    def wrapper(*args: Any, relay_url: str | None, relay_org: str, hooks: tuple[str, ...],
                relay_hook_timeout: float, otp_sink: Path | None, mongo_url: str | None,
                redis_url: str | None, seaweed_url: str | None, namespace: str | None,
                store_files: tuple[Path, ...], log_paths: tuple[Path, ...],
                required: tuple[str, ...], **kwargs: Any) -> Any:
        given = [name for name, value in (
            ("--relay-mongo", mongo_url), ("--relay-redis", redis_url),
            ("--relay-seaweed", seaweed_url), ("--relay-namespace", namespace),
            ("--relay-store-file", store_files), ("--relay-log", log_paths),
            ("--require-source", required), ("--relay-hook", hooks),
            ("--relay-otp-sink", otp_sink)) if value]
        if relay_url is None:
            if given:
                raise click.BadParameter(f"{', '.join(given)} need --relay URL (the "
                                         "in-process relay's stores and logs are always read)",
                                         param_hint="--relay")
            return func(*args, relay=None, **kwargs)
        if kwargs.get("provider", ProviderKind.EMBEDDED) != ProviderKind.EMBEDDED:
            raise click.BadParameter("--provider picks the in-process relay's backends; an "
                                     "external relay has its own", param_hint="--provider")
        access = relay_access(mongo_url, redis_url, seaweed_url, namespace, store_files,
                              log_paths)
        try:
            relay = ExternalRelay(relay_url, relay_org, access, required,
                                  RelayHooks.parse(hooks, relay_hook_timeout), otp_sink)
        except ExternalRelayError as exc:
            raise click.BadParameter(exc.detail, param_hint=exc.field) from exc
        ungranted = {s: why for s, why in relay.granted().items() if s in required}
        if ungranted:
            raise click.BadParameter("; ".join(f"{s} {why}" for s, why in ungranted.items()),
                                     param_hint="--require-source")
        return func(*args, relay=relay, **kwargs)

    return wrapper


@click.group("sim")
def command() -> None:
    """Run simulator scenarios (threats, desync, out-of-scope) and report verdicts."""


def _leak_mode(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    mode, _, chain = value.partition(":")
    if mode not in ("off", "log", "store") or (chain and mode == "off"):
        raise click.BadParameter(f"{value!r}: off, log, store, or log:/store: with an encoding "
                                 "chain")
    if chain:
        try:
            parse_chain(chain)
        except OracleError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


@command.command("run")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--provider", type=click.Choice(PROVIDER_NAMES),
              default=ProviderKind.EMBEDDED.value,
              show_default=True, help="Where the relay's backends come from (docs/backends.md).")
@click.option("--seed", type=int, default=None,
              help="Override every scenario's seed (default: the seed in each file).")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a JUnit XML report here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the full JSON report here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML report here.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@implementation_options
@click.option("--leaky-relay", "leak", default="off", callback=_leak_mode,
              help="TEST ONLY: a relay that logs (or stores) each text message's plaintext, "
              "to watch the oracle fail the scenario: log, store, or either with an encoding "
              "chain, outermost first (log:base32+gzip).")
@external_relay_options
def run(
    paths: tuple[Path, ...], provider: str, seed: int | None, junit_path: Path | None,
    json_path: Path | None, html_path: Path | None, quiet: bool, leak: str, relay: Any = None,
) -> None:
    """Run the scenario files in PATHS (files or directories, searched for *.yaml); with no
    PATHS, the catalogue this installation ships (scenarios/ in a checkout)."""
    console = output.console()
    results = run_paths(paths or (shipped.scenario_catalogue(),), provider=provider, seed=seed,
                        console=console, quiet=quiet, leak=leak, relay=relay)
    render(results, console)
    for target, text in ((junit_path, to_junit(results)), (json_path, to_json(results)),
                         (html_path, to_html(results))):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            console.print(f"wrote {target}")
    # 1: a failure or error; 3: nothing failed but a scenario was unsupported (not run as
    # written against an external relay: never a pass); 0: every scenario passed, was
    # exposed as documented, or was skipped
    if not all(r.verdict.ok or r.verdict is Verdict.UNSUPPORTED for r in results):
        raise SystemExit(1)
    if any(r.verdict is Verdict.UNSUPPORTED for r in results):
        raise SystemExit(3)


@command.command("test-orgs")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--org", "relay_org", default="sim", show_default=True,
              help="The --org the run will be given.")
@click.option("--flags", is_flag=True, help="Print `--test-org NAME` flags for `semafore serve`.")
def print_test_orgs(paths: tuple[Path, ...], relay_org: str, flags: bool) -> None:
    """The organisations `sim run PATHS --relay URL --org ORG` signs up, in order: the
    relay must allow-list each for the test OTP (ADR-0164, `serve --test-org`)."""
    scenarios = []
    for path in discover(list(paths)):
        try:
            scenarios.append(load(path))
        except ScenarioError as exc:
            raise click.ClickException(f"invalid scenario: {exc}") from exc
    for name in run_orgs(scenarios, relay_org):
        click.echo(f"--test-org {name}" if flags else name)


@command.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine output: one object per file.")
def validate(paths: tuple[Path, ...], as_json: bool) -> None:
    """Load and validate scenario files without running them."""
    console = output.console()
    files = discover(list(paths))
    if not files:
        raise NothingToRun("no scenario file (*.yaml, *.yml) under "
                           + ", ".join(str(p) for p in paths))
    report: list[dict[str, Any]] = []
    for path in files:
        try:
            scenario = load(path)
            report.append({"file": str(path), "ok": True, "name": scenario.name,
                           "steps": len(scenario.all_steps()),
                           "notes": [dataclasses.asdict(n) for n in scenario.notes]})
        except ScenarioError as exc:
            report.append({"file": exc.file, "ok": False, "line": exc.line,
                           "column": exc.column, "key": exc.key, "error": exc.message})
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for entry in report:
            if entry["ok"]:
                console.print(f"[green]ok[/]    {entry['file']} ({entry['steps']} steps)")
                for note in entry["notes"]:  # read, but the format no longer writes it
                    console.print(f"[yellow]note[/]  "
                                  f"{escape(entry['file'])}:{escape(str(FileNote(**note)))}",
                                  highlight=False)
            else:
                console.print(f"[red]error[/] {entry['file']}:{entry['line']}:{entry['column']}: "
                              f"{entry['key']}: {entry['error']}", highlight=False)
    if not all(e["ok"] for e in report):
        raise SystemExit(1)


@command.command("schema")
def print_schema() -> None:
    """Print the scenario JSON Schema (format version 1)."""
    click.echo(json.dumps(schema(), indent=2))


@command.command("sabotage")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--provider", type=click.Choice(PROVIDER_NAMES),
              default=ProviderKind.EMBEDDED.value,
              show_default=True, help="Where the relay's backends come from (docs/backends.md).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the matrix as JSON here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML matrix here.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write JUnit XML here (one test case per sabotage; failure = survived).")
@click.option("--jobs", type=click.IntRange(min=1), default=4, show_default=True,
              help="Runs (processes) at a time; a catalogue run mostly waits.")
@click.option("--only", multiple=True, metavar="NAME",
              help="Run only this sabotage (repeatable); decoration is then not judged.")
@click.option("--no-lower-tier", is_flag=True,
              help="Skip the pytest node ids each sabotage names.")
@click.option("--targeted", is_flag=True,
              help="Search for one kill per sabotage and per threats/desync scenario instead "
                   "of running every cell (same gate, far fewer runs; docs/sabotage.md).")
@click.option("--hint", "hint_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Earlier matrix JSON ordering the --targeted search "
                   "[default: docs/sabotage-matrix.json].")
def sabotage(
    paths: tuple[Path, ...], provider: str, json_path: Path | None, html_path: Path | None,
    junit_path: Path | None, jobs: int, only: tuple[str, ...], no_lower_tier: bool,
    targeted: bool, hint_path: Path | None,
) -> None:
    """Sabotage kill matrix (docs/sabotage.md): run the scenarios in PATHS (default
    scenarios/) with no sabotage and once per sabotage, each in its own process; report
    which scenario (or lower-tier test) caught which defect. Exit 1 when the baseline is red,
    a sabotage survives, or a threats/ or desync/ scenario catches nothing; 2 when nothing
    could run."""
    console = output.console()
    chosen_paths = paths or (shipped.scenario_catalogue(),)
    files = [f for f in discover(list(chosen_paths)) if f.exists()]
    if not files:
        raise NothingToRun("no scenario file (*.yaml, *.yml) under "
                           + ", ".join(str(p) for p in chosen_paths))
    try:
        chosen = tuple(dict.fromkeys(by_name(n) for n in only)) if only else CATALOGUE
    except UnknownSabotage as exc:
        raise click.BadParameter(str(exc), param_hint="--only") from exc
    if hint_path is not None and not targeted:
        raise click.BadParameter("only the --targeted search reads a hint", param_hint="--hint")
    hint = None
    if targeted:
        default = targeted_search.DEFAULT_HINT
        try:
            hint = (targeted_search.Hint.load(hint_path or default)
                    if hint_path is not None or default.exists()
                    else targeted_search.Hint("no hint"))
        except targeted_search.HintError as exc:
            raise click.BadParameter(str(exc), param_hint="--hint") from exc
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=False,
    ) as progress:
        task = progress.add_task("sabotage matrix", total=None if targeted else
                                 matrix_runs.unit_count(chosen, lower_tier=not no_lower_tier))

        def on_result(result: matrix_runs.UnitResult) -> None:
            progress.console.print(matrix_runs.describe(result), markup=False, highlight=False)
            progress.advance(task)

        if hint is not None:
            matrix = targeted_search.run_targeted(
                files, provider=provider, sabotages=chosen, hint=hint, jobs=jobs,
                lower_tier=not no_lower_tier, on_result=on_result)
        else:
            matrix = matrix_runs.run_matrix(files, provider=provider, sabotages=chosen,
                                            jobs=jobs, lower_tier=not no_lower_tier,
                                            on_result=on_result)
    matrix_runs.render(matrix, console)
    for target, text in ((json_path, matrix_runs.to_json(matrix)),
                         (html_path, matrix_runs.to_html(matrix)),
                         (junit_path, matrix_runs.to_junit(matrix))):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            console.print(f"wrote {target}")
    raise SystemExit(matrix.exit_code)


@command.command("trace")
@click.option("--matrix", "matrix_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Sabotage matrix JSON (`semafore sim sabotage --json`) to join kills from.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("docs/traceability.md"), show_default=True,
              help="Where to write the traceability matrix.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 on any uncovered row, bad cite or stale --out.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the rows, references and problems as JSON here.")
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=Path("."), show_default=True,
              help="Repository root (scenarios/, tests/, docs/; SPEC and seed in ../shared).")
def trace(matrix_path: Path | None, out_path: Path, check: bool, json_path: Path | None,
          root: Path) -> None:
    """Traceability matrix (docs/simulator.md "Traceability"): every seed threat,
    non-guarantee, ADR and SPEC rule with the scenarios and tests citing it. Exit 1 when a row
    has neither, a cite is unknown or unresolved, or (--check) the document is stale."""
    console = output.console()
    out = out_path if out_path.is_absolute() else root / out_path
    sources = dataclasses.replace(tracing.Sources.default(root), out=out)
    if check and matrix_path is None and out.exists():
        named = tracing.matrix_named_in(out.read_text(encoding="utf-8"))
        matrix_path = root / named if named else None
    try:
        result = tracing.build(sources, matrix_path)
    except tracing.TraceInputError as exc:
        raise click.ClickException(str(exc)) from exc
    problems = tracing.check(result, out) if check else result.problems
    if not check:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(tracing.render(result), encoding="utf-8")
        console.print(f"wrote {out}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(tracing.to_json(result), encoding="utf-8")
        console.print(f"wrote {json_path}")
    covered = sum(1 for r in result.rows if r.scenarios or r.tests)
    console.print(f"{len(result.rows)} rows: {covered} covered, "
                  f"{sum(1 for r in result.rows if r.untestable)} not testable here, "
                  f"{len(problems)} problem(s)")
    for problem in problems:
        console.print(f"[red]{problem.kind.value}[/] {problem.where}: {problem.message}",
                      highlight=False)
    if problems:
        raise SystemExit(1)
