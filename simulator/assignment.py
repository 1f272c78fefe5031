"""Which implementation backs each scenario device (issue #15 item 1).

A scenario device is either the reference client in this process (``reference``, the
default) or a live device of an adapter process that implements the live operations of
docs/adapter-contract.md §5, named on the command line: ``--impl go="interop/go-adapter/bin/
goadapter"``. ``--assign`` then says which devices each implementation gets:

- ``round-robin``: devices in the scenario's order (users as declared, each user's devices
  as declared, then devices added by steps in step order) alternate ``reference`` and the
  named implementations in the order given, starting at an offset the scenario seed picks;
- ``NAME``: every device is ``NAME``;
- ``FILE``: a YAML mapping ``user/device: NAME`` (devices named as scenario files name them);
  devices it does not name are ``reference``.

A device may pin its implementation in the scenario itself (``impl: go`` on the user): a pin
wins over ``--assign``. The assignment is a pure function of (devices, pins, strategy, names,
seed), so the same seed gives the same assignment, and the report shows it per device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from semafore.protocol.address import AddressError, DeviceAddress
from simulator.scenario.loader import file_device
from simulator.scenario.model import AddDevice, Restore, Scenario

REFERENCE = "reference"
"""The in-process reference client (semafore.client.DeviceClient), always available."""

ROUND_ROBIN = "round-robin"


class AssignmentError(ValueError):
    """An ``--impl`` / ``--assign`` / ``impl:`` value that cannot be honoured; ``field`` names
    the flag or key at fault."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class Implementation:
    """A named adapter command hosting live devices (contract §5)."""

    name: str
    command: str


def parse_impl(spec: str) -> Implementation:
    """``NAME=COMMAND`` from ``--impl``; ``reference`` is reserved for the in-process client."""
    name, sep, command = spec.partition("=")
    name = name.strip()
    if not sep or not name or not command.strip():
        raise AssignmentError("--impl", f"expected NAME=COMMAND, got {spec!r}")
    if name == REFERENCE:
        raise AssignmentError("--impl", "'reference' is the in-process client; pick another "
                              "name for an adapter")
    if not all(c.isalnum() or c in "-_." for c in name):
        raise AssignmentError("--impl", f"name {name!r} may use letters, digits, '-', '_', '.'")
    return Implementation(name, command.strip())


def implementations(specs: Iterable[str]) -> dict[str, Implementation]:
    """Every ``--impl`` in the order given; a name given twice is an error."""
    out: dict[str, Implementation] = {}
    for spec in specs:
        impl = parse_impl(spec)
        if impl.name in out:
            raise AssignmentError("--impl", f"{impl.name!r} given twice")
        out[impl.name] = impl
    return out


def _offset(seed: int, modulus: int) -> int:
    digest = hashlib.sha256(f"semafore-sim-assign:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % modulus


def assign(
    devices: Sequence[str],
    *,
    strategy: str | None,
    names: Sequence[str],
    seed: int,
    pins: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Device address (``user:device``) -> implementation name for every device of
    ``devices`` (in order).

    ``names`` are the adapter implementations available (``--impl``, in order); ``strategy``
    is ``--assign`` (None: everything ``reference``). A pin names an implementation that must
    be available (else :class:`AssignmentError` naming ``impl``)."""
    known = {REFERENCE, *names}
    pins = dict(pins or {})
    for device, name in sorted(pins.items()):
        if name not in known:
            raise AssignmentError("impl", f"{device} pins {name!r}, which no --impl names "
                                  f"(available: {', '.join(sorted(known))})")
    out: dict[str, str] = {}
    if strategy is None:
        out = dict.fromkeys(devices, REFERENCE)
    elif strategy == ROUND_ROBIN:
        if not names:
            raise AssignmentError("--assign", "round-robin needs at least one --impl")
        cycle = [REFERENCE, *names]
        start = _offset(seed, len(cycle))
        out = {d: cycle[(start + i) % len(cycle)] for i, d in enumerate(devices)}
    elif strategy in known:
        out = dict.fromkeys(devices, strategy)
    else:
        path = Path(strategy)
        if not path.is_file():
            raise AssignmentError("--assign", f"{strategy!r} is neither round-robin, an --impl "
                                  "name, nor a file")
        out = dict.fromkeys(devices, REFERENCE) | _from_file(path, devices, known)
    out.update({d: n for d, n in pins.items() if d in out})
    return out


def scenario_devices(scenario: Scenario) -> list[str]:
    """Every device the scenario ever has, as its address, in the order round-robin
    uses: the declared users' devices, then those ``add_device`` steps install."""
    out = [str(ref) for ref in scenario.initial_devices()]
    for step in scenario.all_steps():
        if isinstance(step, AddDevice):
            name = str(step.device)
            if name not in out:
                out.append(name)
    return out


def scenario_pins(scenario: Scenario) -> dict[str, str]:
    """Device address -> implementation the file pins (``impl:`` on a user)."""
    return {str(DeviceAddress(user.id, device)): name
            for user in scenario.users for device, name in user.impl}


def assign_scenario(scenario: Scenario, *, strategy: str | None, names: Sequence[str],
                    seed: int) -> dict[str, str]:
    """:func:`assign` over the scenario's devices and pins. With ``round-robin`` a device
    that a ``restore`` step makes a clone of another takes that device's implementation and
    is left out of the alternation: an exported state is its implementation's own format
    (docs/adapter-contract.md §5), so a clone exists only on its original's platform, as a
    phone backup restores only onto the same platform."""
    pins = scenario_pins(scenario)
    clones = {str(step.onto): str(step.device) for step in scenario.all_steps()
              if isinstance(step, Restore) and step.onto is not None
              and str(step.onto) not in pins} if strategy == ROUND_ROBIN else {}
    out = assign([d for d in scenario_devices(scenario) if d not in clones],
                 strategy=strategy, names=names, seed=seed, pins=pins)
    for clone, original in clones.items():
        out[clone] = out.get(original, REFERENCE)
    return {d: out[d] for d in scenario_devices(scenario)}


def _from_file(path: Path, devices: Sequence[str], known: set[str]) -> dict[str, str]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AssignmentError("--assign", f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise AssignmentError("--assign", f"{path}: expected a mapping user:device: NAME")
    out: dict[str, str] = {}
    for key, value in doc.items():
        try:
            device = str(file_device(str(key)))
        except AddressError:
            raise AssignmentError("--assign", f"{path}: {key!r} is not a device "
                                  "('user:device')") from None
        if device not in devices:
            raise AssignmentError("--assign", f"{path}: {key!r} is no device of the scenario")
        if not isinstance(value, str) or value not in known:
            raise AssignmentError("--assign", f"{path}: {key}: {value!r} is not an available "
                                  f"implementation ({', '.join(sorted(known))})")
        out[device] = value
    return out


__all__ = [
    "REFERENCE",
    "ROUND_ROBIN",
    "AssignmentError",
    "Implementation",
    "assign",
    "assign_scenario",
    "implementations",
    "parse_impl",
    "scenario_devices",
    "scenario_pins",
]
