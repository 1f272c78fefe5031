"""The scenario step kinds: one registry, one module per kind (issue #14 item 1).

Each module of this package declares one step kind (or two that share a model, like
``device_online``/``device_offline``) as a :class:`StepKind` and registers it: the JSON Schema
of its body, how the loader builds its model from a validated body (cross-references checked
there), how the executor runs it and a one-line summary for the docs. The loader
(:mod:`simulator.scenario.loader`), the scenario schema (``semafore sim schema``), the
executor (:mod:`simulator.executor`) and the docs check (tests/simulator/test_step_registry.py)
read this registry and nothing else, so a new step kind is one module here plus its test
(docs/simulator.md "Adding a step kind"). A module outside this package (a test's throwaway
kind) registers the same way and is removed with :func:`unregister`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Step

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT, Validation

Build = Callable[["Builder", Any, "PathT", dict[str, Any]], Step]
"""(builder, the step's validated body, its path in the file, the common fields index/line/
expect) -> the model. Cross-reference errors are ``builder.ctx.error(path, why)``."""
Run = Callable[["Execution", Any], Awaitable[None]]
"""(the running execution, the step) -> None; a failure a device reports is
``execution._failed(step, device, error)``, an impossible step raises ExecutorError."""
Validate = Callable[["Validation", Any, "PathT"], None]
"""Checks beyond the body's schema before anything is built (``concurrently`` validates its
nested steps, ``assert`` its assertion kind)."""


def device_body(**properties: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a step about one device: ``device`` (required), the kind's own
    ``properties`` and the common ``expect`` — one definition for the kinds that share it
    (device_online/offline, add_device, reinstall, remove_device, rotate_spk)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "device": {"$ref": "#/$defs/device"},
            **properties,
            "expect": {"$ref": "#/$defs/stepExpectation"},
        },
        "required": ["device"],
    }


class StepKindError(ValueError):
    """A step kind that cannot be registered; ``field`` names what is wrong."""

    def __init__(self, name: str, field: str, detail: str) -> None:
        super().__init__(f"step kind {name!r}: {field}: {detail}")
        self.name = name
        self.field = field
        self.detail = detail


@dataclass(frozen=True, kw_only=True)
class StepKind:
    """Everything the harness knows about one step kind, in one place."""

    name: str
    model: type[Step]
    summary: str
    schema: Mapping[str, Any]
    build: Build
    run: Run
    validate: Validate | None = None
    adapter_op: str | None = None
    """The contract operation (docs/adapter-contract.md §5) a device of an adapter takes
    this step with; ``None``: the step drives no adapter device through one operation (the
    harness does it, or :mod:`simulator.impl_device` checks what it needs case by case). A
    run assigning such a step to an adapter that does not list the operation is
    ``unsupported``, naming it."""


class _Registry:
    """The registered kinds, and a generation that changes with them."""

    def __init__(self) -> None:
        self.kinds: dict[str, StepKind] = {}
        self.generation = 0
        self.builtin_loaded = False

    def load_builtin(self) -> None:
        """Import every module of this package once: each registers its kind(s)."""
        if self.builtin_loaded:
            return
        self.builtin_loaded = True
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")


_REGISTRY = _Registry()


def register(kind: StepKind) -> StepKind:
    """Add ``kind``; a name taken by another kind, or a model whose ``KINDS`` do not name
    it (the model says which kind a built step is), is refused."""
    if kind.name not in kind.model.KINDS:
        raise StepKindError(
            kind.name, "model", f"{kind.model.__name__}.KINDS is {kind.model.KINDS!r}"
        )
    existing = _REGISTRY.kinds.get(kind.name)
    if existing is not None and existing != kind:
        raise StepKindError(kind.name, "name", f"already registered by {existing.model.__name__}")
    if not kind.summary.strip():
        raise StepKindError(kind.name, "summary", "empty: the docs list every kind with it")
    _REGISTRY.kinds[kind.name] = kind
    _REGISTRY.generation += 1
    return kind


def unregister(name: str) -> None:
    """Remove a kind (a test's throwaway kind, once its test is done)."""
    _REGISTRY.kinds.pop(name, None)
    _REGISTRY.generation += 1


def kinds() -> Mapping[str, StepKind]:
    """Every registered kind by name, in registration order."""
    _REGISTRY.load_builtin()
    return dict(_REGISTRY.kinds)


def kind(name: str) -> StepKind:
    """The kind named ``name`` (KeyError if none)."""
    _REGISTRY.load_builtin()
    return _REGISTRY.kinds[name]


def kind_of(step: Step) -> StepKind:
    """The kind of a built step (its model's ``kind``)."""
    return kind(step.kind)


def generation() -> int:
    """Changes whenever the registry does: caches derived from it (the composed schema) key
    on it."""
    _REGISTRY.load_builtin()
    return _REGISTRY.generation


__all__ = [
    "StepKind",
    "StepKindError",
    "device_body",
    "generation",
    "kind",
    "kind_of",
    "kinds",
    "register",
    "unregister",
]
