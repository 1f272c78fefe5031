"""``semafore sim run --impl NAME=COMMAND [--impl …] [--assign …]`` (issue #15 item 1).

Scenario devices backed by adapters implementing the live operations (docs/adapter-contract.md
§5) next to the in-process reference client; :mod:`simulator.assignment` says which device
gets which implementation and :mod:`simulator.impl_device` drives them. The options are a
decorator so ``sim run`` keeps one signature; the choice reaches the executor through
:func:`runner_for`, which ``sim run``'s executor lookup asks first.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import click

from semafore.deploy.settings import ProviderKind
from simulator.assignment import AssignmentError, Implementation, implementations

_CHOSEN: contextvars.ContextVar[tuple[dict[str, Implementation], str | None] | None] = \
    contextvars.ContextVar("semafore_sim_implementations", default=None)


def implementation_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--impl`` (repeatable) and ``--assign``; the embedded relay only (an adapter's
    devices reach the in-process relay through their proxy links)."""

    @click.option("--impl", "impl_specs", multiple=True, metavar="NAME=COMMAND",
                  help="An adapter hosting live devices (docs/adapter-contract.md §5), e.g. "
                  "go=interop/go-adapter/bin/goadapter. Repeatable.")
    @click.option("--assign", "assign_strategy", metavar="round-robin|NAME|FILE",
                  help="Which devices each --impl backs: alternate reference and the "
                  "adapters (seeded), all NAME, or a YAML file user/device: NAME. Default "
                  "with --impl: round-robin. A device's impl: in the scenario wins.")
    @functools.wraps(func)
    def wrapper(*args: Any, impl_specs: tuple[str, ...], assign_strategy: str | None,
                **kwargs: Any) -> Any:
        if assign_strategy is not None and not impl_specs and assign_strategy != "reference":
            raise click.BadParameter("needs at least one --impl", param_hint="--assign")
        if not impl_specs:
            return func(*args, **kwargs)
        try:
            chosen = implementations(impl_specs)
        except AssignmentError as exc:
            raise click.BadParameter(exc.detail, param_hint=exc.field) from None
        if kwargs.get("relay") is not None or kwargs.get("provider", ProviderKind.EMBEDDED) \
                != ProviderKind.EMBEDDED:
            raise click.BadParameter("adapter devices run on the embedded relay only",
                                     param_hint="--impl")
        if kwargs.get("leak", "off") != "off":
            raise click.BadParameter("--leaky-relay is for reference-only runs",
                                     param_hint="--impl")
        token = _CHOSEN.set((chosen, assign_strategy or "round-robin"))
        try:
            return func(*args, **kwargs)
        finally:
            _CHOSEN.reset(token)

    return wrapper


def runner_for(executor: ModuleType) -> Callable[..., Any] | None:
    """The executor entry point for the chosen implementations (None: none chosen)."""
    chosen = _CHOSEN.get()
    if chosen is None:
        return None
    impls, strategy = chosen
    run: Callable[..., Any] = executor.run_with_implementations

    def runner(scenario: Any, *, provider: str, seed: int | None,
               on_step: Callable[..., None], **_: Any) -> Any:
        return run(scenario, implementations=impls, strategy=strategy, seed=seed,
                   on_step=on_step)

    return runner


__all__ = ["implementation_options", "runner_for"]
