"""Load a scenario file: YAML with source positions → JSON Schema → cross-references → model.

Every rejection is a :class:`ScenarioError` naming the file, the line and column, and the
offending key as a path (``steps[3].send.to``), so a reviewer can fix a file without reading
this code. Nothing is half-built: the model exists only if the whole file is valid.

The JSON Schema (``schema/scenario-v1.schema.json``) is the format's contract; this module adds
what a schema cannot say (a device sent from must exist at that point of the timeline, an
assertion's adversary must have been created by an earlier compromise step…).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import jsonschema
import yaml

from semafore.deploy.settings import ProviderKind
from semafore.protocol.address import DeviceAddress
from simulator.attacks import ATTACKS
from simulator.scenario.model import (
    FORMAT_VERSION,
    MECHANISM_STATS,
    AddDevice,
    Assertion,
    AssertionKind,
    Attach,
    Attack,
    Broadcast,
    Compromise,
    CompromiseKind,
    Concurrently,
    Deployment,
    ExhaustOpks,
    Expectation,
    Infra,
    InfraAction,
    InfraTarget,
    MessageSelector,
    MetadataClass,
    Network,
    NetworkFault,
    Organisation,
    ReadReceipt,
    Reinstall,
    RelayConfig,
    RemoveDevice,
    Replay,
    Restore,
    RotateSpk,
    Scenario,
    Screenshot,
    Send,
    SetOnline,
    Snapshot,
    Step,
    StepExpectation,
    Sync,
    User,
    Wait,
)

SCHEMA_PATH = Path(__file__).with_name("schema") / "scenario-v1.schema.json"

PathT = tuple[str | int, ...]


def file_device(text: str) -> DeviceAddress:
    """The device a scenario file names ``user/device`` (the format's notation, checked by the
    schema's ``$defs.device``; docs/scenarios.md): everything after the loader holds the
    :class:`DeviceAddress`, which reports print ``user:device`` (SPEC §2)."""
    user, _, device = text.partition("/")
    return DeviceAddress(user, device)


class ScenarioError(Exception):
    """A scenario file is invalid. ``key`` is the path of the offending key."""

    def __init__(
        self, file: str, line: int | None, column: int | None, key: str, message: str
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
        where = file if line is None else f"{file}:{line}:{column}"
        super().__init__(f"{where}: {key or '<document>'}: {message}")


@cache
def schema() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


# --- YAML with marks -------------------------------------------------------------------------


@dataclass
class _Doc:
    """The parsed document and the (line, column) of every key and value by path."""

    data: Any
    marks: dict[PathT, tuple[int, int]]


def _compose(text: str, file: str) -> _Doc:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise ScenarioError(file, line, col, "", f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(file, None, None, "", f"not valid YAML: {exc}") from None
    if node is None:
        raise ScenarioError(file, 1, 1, "", "empty file")
    marks: dict[PathT, tuple[int, int]] = {}
    constructor = yaml.SafeLoader("")

    def build(n: yaml.Node, path: PathT) -> Any:
        marks.setdefault(path, (n.start_mark.line + 1, n.start_mark.column + 1))
        if isinstance(n, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node, deep=True)
                where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if not isinstance(key, str):
                    raise ScenarioError(file, *where, _fmt(path), f"key {key!r} is not a string")
                if key in out:
                    raise ScenarioError(file, *where, _fmt((*path, key)), "duplicate key")
                marks[(*path, key)] = where
                out[key] = build(value_node, (*path, key))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    try:
        data = build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise ScenarioError(file, line, col, "", f"not valid YAML: {exc.problem}") from None
    return _Doc(data, marks)


def _fmt(path: PathT) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Ctx:
    def __init__(self, file: str, doc: _Doc) -> None:
        self.file = file
        self.doc = doc

    def error(self, path: PathT, message: str) -> ScenarioError:
        probe = path
        while probe and probe not in self.doc.marks:
            probe = probe[:-1]
        line, col = self.doc.marks.get(probe, (None, None))
        return ScenarioError(self.file, line, col, _fmt(path), message)


# --- schema validation -------------------------------------------------------------------------


def _sub_schema(ref_schema: dict[str, Any]) -> dict[str, Any]:
    return {**ref_schema, "$defs": schema()["$defs"]}


_VALIDATORS: dict[int, jsonschema.Draft202012Validator] = {}


def _check(ctx: _Ctx, instance: Any, sub: dict[str, Any], base: PathT) -> None:
    validator = _VALIDATORS.get(id(sub))
    if validator is None:  # sub-schemas are parts of the cached schema(): ids are stable
        validator = _VALIDATORS[id(sub)] = jsonschema.Draft202012Validator(_sub_schema(sub))
    errors = list(validator.iter_errors(instance))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    assert error is not None
    path = (*base, *error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        raise ctx.error((*path, extra[0]), f"unknown key {extra[0]!r} (allowed: {allowed})")
    if error.validator == "required":
        raise ctx.error(path, error.message)
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Report the alternative that got furthest: the most specific message.
        inner = max(error.context, key=lambda e: len(e.absolute_path))
        path = (*path, *inner.relative_path)
        raise ctx.error(path, f"{_describe(error.instance)} is not valid here: {inner.message}")
    raise ctx.error(path, error.message)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@cache
def _top_schema() -> dict[str, Any]:
    """The document schema with steps checked one by one (for precise errors)."""
    top = dict(schema())
    top_props = dict(top["properties"])
    top_props["steps"] = {"type": "array", "minItems": 1}
    top["properties"] = top_props
    return top


def _validate(ctx: _Ctx) -> None:
    data = ctx.doc.data
    if not isinstance(data, dict):
        raise ctx.error((), "a scenario is a mapping (version, name, cites, users, steps…)")
    if "version" in data and data["version"] != FORMAT_VERSION:
        raise ctx.error(
            ("version",),
            f"unsupported format version {data['version']!r} (this build reads {FORMAT_VERSION})",
        )
    _check(ctx, data, _top_schema(), ())
    for i, step in enumerate(data["steps"]):
        _validate_step(ctx, step, ("steps", i))


@cache
def _step_schemas() -> dict[str, dict[str, Any]]:
    return {
        next(iter(alt["properties"])): alt["properties"][next(iter(alt["properties"]))]
        for alt in schema()["$defs"]["step"]["oneOf"]
    }


@cache
def _assertion_schemas() -> dict[str, dict[str, Any]]:
    return {
        next(iter(alt["properties"])): alt["properties"][next(iter(alt["properties"]))]
        for alt in schema()["$defs"]["assertion"]["oneOf"]
    }


def _one_key(ctx: _Ctx, value: Any, path: PathT, what: str, known: dict[str, Any]) -> str:
    if not isinstance(value, dict) or len(value) != 1:
        raise ctx.error(
            path, f"a {what} is a mapping with exactly one key, the {what} kind: {sorted(known)}"
        )
    kind = str(next(iter(value)))
    if kind not in known:
        raise ctx.error((*path, kind), f"unknown {what} kind {kind!r} (known: {sorted(known)})")
    return kind


def _validate_step(ctx: _Ctx, step: Any, path: PathT) -> None:
    kinds = _step_schemas()
    kind = _one_key(ctx, step, path, "step", kinds)
    body = step[kind]
    if kind == "concurrently":
        if not isinstance(body, list) or len(body) < 2:
            raise ctx.error((*path, kind), "concurrently takes a list of two or more steps")
        for i, inner in enumerate(body):
            _validate_step(ctx, inner, (*path, kind, i))
        return
    if kind == "assert":
        akinds = _assertion_schemas()
        akind = _one_key(ctx, body, (*path, kind), "assertion", akinds)
        _check(ctx, body[akind], akinds[akind], (*path, kind, akind))
        return
    _check(ctx, body, kinds[kind], (*path, kind))


# --- model building and cross-reference checks ---------------------------------------------


class _Builder:
    """Walks the validated document in timeline order, tracking which devices exist, which
    labels and adversaries were defined, so a reference to something that is not there (yet)
    is reported at the line that makes it."""

    def __init__(self, ctx: _Ctx) -> None:
        self.ctx = ctx
        self.orgs: dict[str, Organisation] = {}
        self.users: dict[str, User] = {}
        self.devices: set[DeviceAddress] = set()
        self.ever_devices: set[DeviceAddress] = set()
        self.labels: set[str] = set()
        self.adversaries: dict[str, Compromise] = {}
        self.index = 0
        self.server_replicas = 1
        self.attacks: dict[str, Attack] = {}
        self.snapshots: dict[str, DeviceAddress] = {}  # snapshot name -> the device it backs up
        self.relay = RelayConfig()

    # helpers

    def line(self, path: PathT) -> int:
        return self.ctx.doc.marks.get(path, (0, 0))[0]

    def device(self, text: str, path: PathT, *, existing: bool = True) -> DeviceAddress:
        ref = file_device(text)
        if ref.user not in self.users:
            raise self.ctx.error(path, f"unknown user {ref.user!r} in device {text!r}")
        if existing and ref not in self.devices:
            state = "was removed earlier" if ref in self.ever_devices else "does not exist"
            raise self.ctx.error(path, f"device {text!r} {state} at this point of the timeline")
        return ref

    def devices_of(
        self, value: Any, path: PathT, *, ever: bool = False
    ) -> tuple[DeviceAddress, ...]:
        """Devices that exist now (``ever``: that existed at some earlier point — assertions
        may speak about a device that has since been removed)."""
        items = value if isinstance(value, list) else [value]
        out = []
        for i, v in enumerate(items):
            p = (*path, i) if isinstance(value, list) else path
            ref = self.device(v, p, existing=not ever)
            if ever and ref not in self.ever_devices:
                raise self.ctx.error(p, f"device {v!r} does not exist at this point")
            out.append(ref)
        return tuple(out)

    def user_ids(self, value: Any, path: PathT) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        for i, user in enumerate(items):
            if user not in self.users:
                p = (*path, i) if isinstance(value, list) else path
                raise self.ctx.error(p, f"unknown user {user!r}")
        return tuple(items)

    def new_label(self, label: str, path: PathT) -> str:
        if label in self.labels:
            raise self.ctx.error(path, f"message label {label!r} is already used")
        self.labels.add(label)
        return label

    def known_label(self, label: str, path: PathT) -> str:
        if label not in self.labels:
            raise self.ctx.error(path, f"no earlier step sends a message labelled {label!r}")
        return label

    def adversary(self, name: str, path: PathT, *kinds: CompromiseKind) -> Compromise:
        comp = self.adversaries.get(name)
        if comp is None:
            raise self.ctx.error(path, f"no earlier compromise step creates adversary {name!r}")
        if kinds and comp.compromise not in kinds:
            wanted = ", ".join(k.value for k in kinds)
            raise self.ctx.error(
                path, f"adversary {name!r} is a {comp.compromise.value} compromise; needs {wanted}"
            )
        return comp

    # cast

    def cast(self, data: dict[str, Any]) -> None:
        for i, org in enumerate(data.get("organisations", [])):
            if org["id"] in self.orgs:
                raise self.ctx.error(
                    ("organisations", i, "id"), f"duplicate organisation {org['id']!r}"
                )
            self.orgs[org["id"]] = Organisation(id=org["id"], name=org.get("name", ""))
        default_org = next(iter(self.orgs), "default")
        if not self.orgs:
            self.orgs[default_org] = Organisation(id=default_org)
        for i, entry in enumerate(data["users"]):
            if "generate" in entry:
                gen = entry["generate"]
                org = gen.get("org", default_org)
                self._org(org, ("users", i, "generate", "org"))
                width = len(str(gen["count"]))
                names = tuple(f"d{k}" for k in range(1, gen.get("devices", 1) + 1))
                for k in range(1, gen["count"] + 1):
                    self._user(User(id=f"{gen['prefix']}{k:0{width}d}", org=org, devices=names),
                               ("users", i, "generate"))
                continue
            org = entry.get("org", default_org)
            self._org(org, ("users", i, "org"))
            devices = tuple(entry["devices"])
            self._user(User(id=entry["id"], org=org, devices=devices,
                            impl=self._impl_pins(entry.get("impl"), devices, ("users", i))),
                       ("users", i, "id"))

    def _impl_pins(self, raw: Any, devices: tuple[str, ...],
                   path: PathT) -> tuple[tuple[str, str], ...]:
        """``impl: NAME`` pins every device of the user, ``impl: {device: NAME}`` some."""
        if raw is None:
            return ()
        if isinstance(raw, str):
            return tuple((d, raw) for d in devices)
        for device in raw:
            if device not in devices:
                raise self.ctx.error((*path, "impl", device),
                                     f"{device!r} is not one of this user's devices")
        return tuple((d, str(raw[d])) for d in devices if d in raw)

    def _org(self, org: str, path: PathT) -> None:
        if org not in self.orgs:
            raise self.ctx.error(path, f"unknown organisation {org!r}")

    def _user(self, user: User, path: PathT) -> None:
        if user.id in self.users:
            raise self.ctx.error(path, f"duplicate user {user.id!r}")
        self.users[user.id] = user
        for ref in user.addresses():
            self.devices.add(ref)
            self.ever_devices.add(ref)

    # steps

    def steps(self, raw: list[Any], base: PathT) -> tuple[Step, ...]:
        return tuple(self.step(s, (*base, i)) for i, s in enumerate(raw))

    def step(self, raw: dict[str, Any], path: PathT) -> Step:
        kind = next(iter(raw))
        body = raw[kind]
        p = (*path, kind)
        index = self.index
        self.index += 1
        common: dict[str, Any] = {"index": index, "line": self.line(path)}
        if kind == "concurrently":
            return Concurrently(**common, steps=self.steps(body, p))
        if isinstance(body, dict) and "expect" in body:
            body = dict(body)
            common["expect"] = StepExpectation(error=body.pop("expect")["error"])
        method = getattr(self, f"_{kind}")
        return cast(Step, method(body if body is not None else {}, p, common))

    def _send(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return Send(**c, sender=self.device(b["from"], (*p, "from")),
                    to=self.user_ids(b["to"], (*p, "to")),
                    label=self.new_label(b["label"], (*p, "label")), count=b.get("count", 1),
                    size=b.get("size", 64), text=b.get("text"), withhold=b.get("withhold", False))

    def _broadcast(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        to = b.get("to", "org")
        sender = self.device(b["from"], (*p, "from"))
        return Broadcast(**c, sender=sender,
                         to=() if to == "org" else self.user_ids(to, (*p, "to")),
                         label=self.new_label(b["label"], (*p, "label")), count=b.get("count", 1),
                         size=b.get("size", 64), text=b.get("text"))

    def _attach(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return Attach(**c, sender=self.device(b["from"], (*p, "from")),
                      to=self.user_ids(b["to"], (*p, "to")),
                      label=self.new_label(b["label"], (*p, "label")), size=b.get("size", 4096))

    def _read_receipt(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return ReadReceipt(**c, device=self.device(b["device"], (*p, "device")),
                           message=self.known_label(b["message"], (*p, "message")))

    def _screenshot(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return Screenshot(**c, device=self.device(b["device"], (*p, "device")),
                          message=self.known_label(b["message"], (*p, "message")))

    def _sync(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        devices = self.devices_of(b["devices"], (*p, "devices")) if "devices" in b else ()
        return Sync(**c, devices=devices, timeout_ms=b.get("timeout_ms", 30_000))

    def _wait(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return Wait(**c, ms=b["ms"])

    def _device_online(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return SetOnline(**c, device=self.device(b["device"], (*p, "device")), online=True)

    def _device_offline(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return SetOnline(**c, device=self.device(b["device"], (*p, "device")), online=False)

    def _network(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        scope = b.get("scope", "global")
        ref = None if scope == "global" else self.device(scope, (*p, "scope"))
        fault = NetworkFault(b["fault"])
        if fault is NetworkFault.DELAY and not b.get("delay_ms"):
            raise self.ctx.error((*p, "delay_ms"), "a delay fault needs delay_ms > 0")
        channel = b.get("channel", "both")
        match = b.get("match")
        if match is not None and channel != "http":
            raise self.ctx.error((*p, "match"), "match selects HTTP requests: it needs "
                                 "channel: http")
        if match is not None and fault in (NetworkFault.CUT, NetworkFault.HEAL):
            raise self.ctx.error((*p, "match"), f"a {fault.value} acts on whole connections, "
                                 "not on matched requests")
        return Network(**c, fault=fault, scope=ref, direction=b.get("direction", "both"),
                       probability=float(b.get("probability", 1.0)), count=b.get("count"),
                       delay_ms=b.get("delay_ms", 0), jitter_ms=b.get("jitter_ms", 0),
                       window=b.get("window", 2), channel=channel, match=match)

    def _infra(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        during = b.get("during")
        if during is not None:
            self.known_label(during, (*p, "during"))
        target = InfraTarget(b["target"])
        replica = b.get("replica")
        if replica is not None and target is not InfraTarget.SERVER:
            raise self.ctx.error((*p, "replica"), f"'replica' applies to target server only "
                                 f"({target.value} is one instance)")
        if replica is not None and replica >= self.server_replicas:
            raise self.ctx.error(
                (*p, "replica"),
                f"replica {replica} does not exist: the scenario runs {self.server_replicas} "
                f"server replica(s), numbered 0-{self.server_replicas - 1} "
                "(infrastructure.server_replicas)")
        return Infra(**c, action=InfraAction(b["action"]), target=target, replica=replica,
                     during=during)

    def deployment(self, raw: dict[str, Any]) -> Deployment:
        """``infrastructure:``; placed devices are checked once the whole timeline is known
        (a device added by a later step may be placed too)."""
        count = raw.get("server_replicas", 1)
        self.server_replicas = count
        return Deployment(server_replicas=count, log_hash=raw.get("log_hash", "sha256"))

    def placement(self, raw: dict[str, Any], deployment: Deployment) -> Deployment:
        base: PathT = ("infrastructure", "placement")
        out = []
        for text, index in raw.get("placement", {}).items():
            ref = file_device(text)
            if ref not in self.ever_devices:
                raise self.ctx.error((*base, text), f"device {text!r} is never installed")
            if index >= deployment.server_replicas:
                raise self.ctx.error(
                    (*base, text),
                    f"replica {index} does not exist: the scenario runs "
                    f"{deployment.server_replicas} server replica(s), numbered "
                    f"0-{deployment.server_replicas - 1}")
            out.append((ref, index))
        return dataclasses.replace(deployment, placement=tuple(out))

    def relay_config(self, raw: dict[str, Any]) -> RelayConfig:
        """``infrastructure.relay`` (read before the timeline: attack steps are checked
        against it)."""
        test_orgs = raw.get("test_orgs")
        self.relay = RelayConfig(
            rate_limits=raw.get("rate_limits", "unlimited"),
            test_orgs=None if test_orgs is None else tuple(test_orgs),
            header_timeout_s=raw.get("header_timeout_s"))
        return self.relay

    def _attack(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        """An attack step, checked against its registry entry (simulator.attacks) and the
        relay it needs: a scenario whose attack could not fail on its relay is refused."""
        spec = ATTACKS.get(b["kind"])
        if spec is None:
            raise self.ctx.error((*p, "kind"), f"unknown attack {b['kind']!r} (known: "
                                 f"{sorted(ATTACKS)})")
        name = b["as"]
        if name in self.attacks:
            raise self.ctx.error((*p, "as"), f"attack {name!r} already exists")
        who: dict[str, str | None] = {}
        for role, needed in (("actor", spec.needs_actor), ("victim", spec.needs_victim)):
            if needed and role not in b:
                raise self.ctx.error(p, f"attack {spec.name} needs a cast user as {role!r}")
            if not needed and role in b:
                raise self.ctx.error((*p, role), f"attack {spec.name} takes no {role!r}")
            who[role] = self.user_ids(b[role], (*p, role))[0] if role in b else None
        actor, victim = who["actor"], who["victim"]
        if actor is not None and victim is not None:
            if self.users[actor].org != self.users[victim].org:
                raise self.ctx.error((*p, "victim"), f"{actor} attacks from inside the "
                                     f"victim's organisation: {victim} is in another")
            if actor == victim:
                raise self.ctx.error((*p, "victim"), "an attacker does not attack itself")
        params: dict[str, int | float | str] = {}
        for key, value in b.get("params", {}).items():
            param = spec.params.get(key)
            if param is None:
                raise self.ctx.error((*p, "params", key), f"unknown parameter {key!r} of "
                                     f"{spec.name} (known: {sorted(spec.params)})")
            problem = param.check(value)
            if problem is not None:
                raise self.ctx.error((*p, "params", key), problem)
            params[key] = value
        self._attack_needs(spec.name, p, victim, params)
        step = Attack(**c, attack=spec.name, name=name, actor=actor, victim=victim,
                      params=tuple(sorted(params.items())))
        self.attacks[name] = step
        return step

    def _attack_needs(self, kind: str, p: PathT, victim: str | None,
                      params: dict[str, int | float | str]) -> None:
        """What the attack needs from the relay configuration (``infrastructure.relay``)."""
        spec = ATTACKS[kind]
        test_orgs = self.relay.test_orgs_for(tuple(self.orgs))
        if spec.needs_limits and self.relay.rate_limits != "default":
            raise self.ctx.error(p, f"attack {kind} tests the relay's rate limits and "
                                 "quotas: set infrastructure.relay.rate_limits: default")
        if spec.needs_non_test_victim and victim is not None \
                and self.users[victim].org in test_orgs:
            raise self.ctx.error((*p, "victim"), f"{victim}'s org is on the test-OTP allow-list "
                                 "(infrastructure.relay.test_orgs): leave it off")
        if kind == "test_otp_escape":
            org = str(params.get("test_org", spec.params["test_org"].default))
            if org not in test_orgs or org in self.orgs:
                raise self.ctx.error((*p, "params", "test_org"), f"{org!r} must be on "
                                     "infrastructure.relay.test_orgs and not an organisation "
                                     "of the cast (the attacker claims it)")
        for count, bound in (("sends", "max_accepted"), ("fetches", "max_claims"),
                             ("sockets", "max_open")):
            if count in spec.params and bound in spec.params:
                n, most = (params.get(k, spec.params[k].default) for k in (count, bound))
                if float(n) <= float(most):
                    raise self.ctx.error((*p, "params", count), f"{count} {n} never exceeds "
                                         f"{bound} {most}: the attack could not fail")
        hold = params.get("hold_s", spec.params["hold_s"].default) if kind == "slowloris" else 0
        limit = self.relay.header_timeout_s
        if kind == "slowloris" and (limit is None or float(hold) <= limit):
            raise self.ctx.error((*p, "params", "hold_s"), "hold_s must be longer than "
                                 "infrastructure.relay.header_timeout_s (set it)")

    def _reinstall(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return Reinstall(**c, device=self.device(b["device"], (*p, "device")))

    def _add_device(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        ref = self.device(b["device"], (*p, "device"), existing=False)
        if ref in self.devices:
            raise self.ctx.error((*p, "device"), f"device {ref} already exists")
        self.devices.add(ref)
        self.ever_devices.add(ref)
        return AddDevice(**c, device=ref)

    def _remove_device(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        ref = self.device(b["device"], (*p, "device"))
        self.devices.discard(ref)
        return RemoveDevice(**c, device=ref)

    def _snapshot(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        device = self.device(b["device"], (*p, "device"))
        if b["as"] in self.snapshots:
            raise self.ctx.error((*p, "as"), f"snapshot {b['as']!r} is already taken")
        self.snapshots[b["as"]] = device
        return Snapshot(**c, device=device, name=b["as"])

    def _restore(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        device = self.device(b["device"], (*p, "device"))
        if self.snapshots.get(b["from"]) != device:
            raise self.ctx.error((*p, "from"), f"no earlier snapshot of {device} is named "
                                 f"{b['from']!r}")
        onto = self.device(b["onto"], (*p, "onto")) if "onto" in b else None
        if onto is not None and (onto.user != device.user or onto == device):
            raise self.ctx.error((*p, "onto"), "a clone goes onto another device of the same "
                                 "user")
        return Restore(**c, device=device, name=b["from"], onto=onto)

    def _rotate_spk(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return RotateSpk(**c, device=self.device(b["device"], (*p, "device")),
                         keep_previous=b.get("keep_previous", True))

    def _exhaust_opks(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        return ExhaustOpks(**c, devices=self.devices_of(b["devices"], (*p, "devices")),
                           replenish=b.get("replenish", False))

    def _replay(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        to = self.devices_of(b["to"], (*p, "to")) if "to" in b else ()
        return Replay(**c, message=self.known_label(b["message"], (*p, "message")), to=to,
                      kind=b.get("kind", "any"), times=b.get("times", 1))

    def _compromise(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        kind = CompromiseKind(b["kind"])
        name = b["as"]
        if name in self.adversaries:
            raise self.ctx.error((*p, "as"), f"adversary {name!r} already exists")
        device = user = org = None
        if kind is CompromiseKind.DEVICE:
            if "device" not in b:
                raise self.ctx.error(p, "a device compromise names its 'device'")
            device = self.device(b["device"], (*p, "device"))
        elif "device" in b:
            raise self.ctx.error((*p, "device"), f"'device' is for kind device, not {kind.value}")
        if kind is CompromiseKind.ALL_DEVICES:
            if "user" not in b:
                raise self.ctx.error(p, "an all_devices compromise names its 'user'")
            user = self.user_ids(b["user"], (*p, "user"))[0]
        elif "user" in b:
            raise self.ctx.error((*p, "user"), f"'user' is for kind all_devices, not {kind.value}")
        if "org" in b:
            if kind is not CompromiseKind.SUBPOENA:
                raise self.ctx.error((*p, "org"), "'org' applies to kind subpoena only")
            org = b["org"]
            self._org(org, (*p, "org"))
        comp = Compromise(**c, compromise=kind, name=name, device=device, user=user, org=org,
                          window=b.get("window", "whole_run"), with_wire=b.get("with_wire", True))
        self.adversaries[name] = comp
        return comp

    def _assert(self, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
        akind = next(iter(b))
        body = b[akind] or {}
        q = (*p, akind)
        kind = AssertionKind(akind)
        fields: dict[str, Any] = {"assertion": kind}
        if "messages" in body:
            fields["messages"] = self.selector(body["messages"], (*q, "messages"))
        if "devices" in body:
            fields["devices"] = self.devices_of(body["devices"], (*q, "devices"), ever=True)
        if "device" in body:
            fields["devices"] = self.devices_of(body["device"], (*q, "device"), ever=True)
        if "error" in body:
            fields["error"] = body["error"]
        passive = (CompromiseKind.SERVER, CompromiseKind.NETWORK, CompromiseKind.INSIDER,
                   CompromiseKind.SUBPOENA, CompromiseKind.DATABASE)
        device_kinds = (CompromiseKind.DEVICE,)
        needs: dict[AssertionKind, tuple[CompromiseKind, ...]] = {
            AssertionKind.ADVERSARY_DECRYPTS_NOTHING: passive,
            AssertionKind.COMPROMISE_SCOPE: (CompromiseKind.DEVICE, CompromiseKind.ALL_DEVICES),
            AssertionKind.FORWARD_SECRECY: device_kinds,
            AssertionKind.POST_COMPROMISE_SECURITY: device_kinds,
            # the adversaries whose view holds the relay's operational logs
            AssertionKind.LOG_PSEUDONYMS: (CompromiseKind.SERVER, CompromiseKind.INSIDER,
                                           CompromiseKind.SUBPOENA),
        }
        if "adversary" in body:
            self.adversary(body["adversary"], (*q, "adversary"), *needs.get(kind, ()))
            fields["adversary"] = body["adversary"]
        if "adversaries" in body:
            for i, name in enumerate(body["adversaries"]):
                self.adversary(name, (*q, "adversaries", i), *passive)
            fields["adversaries"] = tuple(body["adversaries"])
        elif kind is AssertionKind.ORACLE_CLEAN and not any(
            c.compromise in passive for c in self.adversaries.values()
        ):
            raise self.ctx.error(q, "oracle_clean scans relay-side views, and no earlier "
                                 "compromise step creates one: add e.g. "
                                 "'compromise: {kind: server, as: relay}' (else it scans nothing "
                                 "and cannot fail)")
        for key in ("round_trips", "identifiers", "documented", "allow_empty", "at_least",
                    "at_most"):
            if key in body:
                fields[key] = body[key]
        if "sees" in body:
            fields["sees"] = tuple(MetadataClass(s) for s in body["sees"])
        if kind is AssertionKind.METADATA_NOT_EXPOSED:
            if "adversary" not in body or not body.get("sees"):
                raise self.ctx.error(q, "metadata_not_exposed names an 'adversary' and what it "
                                     "must not see ('sees')")
            self.adversary(body["adversary"], (*q, "adversary"), *passive)
        if kind is AssertionKind.ATTACK_FAILED:
            if body["attack"] not in self.attacks:
                raise self.ctx.error((*q, "attack"), f"no earlier attack step is named "
                                     f"{body['attack']!r}")
            fields["attack"] = body["attack"]
        if kind is AssertionKind.MECHANISM:
            stat = body["stat"]
            if stat not in MECHANISM_STATS:
                raise self.ctx.error((*q, "stat"), f"unknown stat {stat!r} (known: "
                                     f"{sorted(MECHANISM_STATS)})")
            fields["stat"] = stat
            if "at_least" not in body and "at_most" not in body:
                fields["at_least"] = 1  # the mechanism happened at least once
            low, high = fields.get("at_least"), fields.get("at_most")
            if low is not None and high is not None and low > high:
                raise self.ctx.error((*q, "at_most"), f"at_most {high} is below at_least {low}: "
                                     "the assertion could never hold")
            if low == 0 and high is None:
                raise self.ctx.error((*q, "at_least"), "at_least: 0 without at_most can never "
                                     "fail")
        if kind is AssertionKind.LOG_PSEUDONYMS:
            fields.update(self.log_pseudonyms(body, q))
        if kind is AssertionKind.RECOVERED_WITHIN:
            fields["exchanges"] = body["exchanges"]
            fields["after"] = self.known_label(body["after"], (*q, "after"))
        return Assertion(**c, **fields)

    def log_pseudonyms(self, body: dict[str, Any], q: PathT) -> dict[str, Any]:
        """``log_pseudonyms``: exactly one bound (an exposure or a guarantee, never both:
        one assertion has one outcome), and the dictionary's size and seed."""
        bounds = [k for k in ("reversed_at_least", "reversed_at_most") if k in body]
        if len(bounds) != 1:
            raise self.ctx.error(q, "log_pseudonyms takes exactly one of reversed_at_least "
                                 "(the documented exposure) or reversed_at_most (a guarantee)")
        dictionary = body.get("dictionary", {})
        return {bounds[0]: float(body[bounds[0]]),
                "dictionary_size": dictionary.get("size"),
                "dictionary_seed": dictionary.get("seed")}

    def selector(self, raw: Any, path: PathT) -> MessageSelector:
        if raw == "all":
            return MessageSelector(all=True)
        if isinstance(raw, list):
            labels = tuple(self.known_label(x, (*path, i)) for i, x in enumerate(raw))
            return MessageSelector(labels=labels)
        labels = tuple(
            self.known_label(x, (*path, "labels", i)) for i, x in enumerate(raw.get("labels", []))
        )
        parties: dict[str, list[str]] = {"from": [], "to": []}
        for side in ("from", "to"):
            for i, who in enumerate(raw.get(side, [])):
                if "/" in who:  # a device: the selector holds its address
                    parties[side].append(str(self.device(who, (*path, side, i), existing=False)))
                    continue
                if who not in self.users:
                    raise self.ctx.error((*path, side, i), f"unknown user {who!r}")
                parties[side].append(who)
        for side in ("before", "after"):
            if side in raw:
                self.adversary(raw[side], (*path, side))
        return MessageSelector(labels=labels, senders=tuple(parties["from"]),
                               recipients=tuple(parties["to"]), before=raw.get("before"),
                               after=raw.get("after"))


def _semantic(ctx: _Ctx, data: dict[str, Any], steps: tuple[Step, ...]) -> None:
    expect = Expectation(data.get("expect", "pass"))
    exposures = [s for s in _flat(steps) if isinstance(s, Assertion) and s.is_exposure]
    if expect is Expectation.EXPOSED and not exposures:
        raise ctx.error(("expect",), "expect: exposed needs at least one 'exposed', "
                        "'metadata_exposed' or 'log_pseudonyms' (reversed_at_least) assertion "
                        "demonstrating the documented exposure")
    if expect is Expectation.PASS and exposures:
        first = exposures[0]
        raise ctx.error(("expect",), f"step at line {first.line} asserts an exposure; such a "
                        "scenario must declare 'expect: exposed' (seed §1.2 / §2.5)")
    if not any(isinstance(s, Assertion) for s in _flat(steps)):
        raise ctx.error(("steps",), "a scenario without any assertion can never fail")


def _flat(steps: tuple[Step, ...]) -> Iterator[Step]:
    for step in steps:
        yield step
        if isinstance(step, Concurrently):
            yield from _flat(step.steps)


# --- entry points ----------------------------------------------------------------------------


def loads(text: str, *, file: str = "<string>", path: Path | None = None) -> Scenario:
    """Parse and validate one scenario from its text; with ``path`` (the file it was read
    from), its ``name`` must also equal that file's name."""
    ctx = _Ctx(file, _compose(text, file))
    _validate(ctx)
    data: dict[str, Any] = ctx.doc.data
    builder = _Builder(ctx)
    builder.cast(data)
    infrastructure = data.get("infrastructure", {})
    deployment = builder.deployment(infrastructure)
    deployment = dataclasses.replace(
        deployment, relay=builder.relay_config(infrastructure.get("relay", {})))
    steps = builder.steps(data["steps"], ("steps",))
    deployment = builder.placement(infrastructure, deployment)
    _semantic(ctx, data, steps)
    if path is not None and data["name"] != path.stem:
        # docs/scenarios.md "File format": the name is the file name, so a verdict row, a
        # JUnit test case and a sabotage kill always lead back to exactly one file.
        raise ctx.error(("name",), f"{data['name']!r} must equal the file name "
                                   f"{path.stem!r} ({path.name} without its suffix)")
    return Scenario(
        version=data["version"],
        name=data["name"],
        description=data.get("description", "").strip(),
        cites=tuple(data["cites"]),
        expect=Expectation(data.get("expect", "pass")),
        seed=data.get("seed", 0),
        providers=tuple(ProviderKind(p) for p in data.get("providers", ProviderKind)),
        timeout_s=data.get("timeout_s", 300),
        organisations=tuple(builder.orgs.values()),
        users=tuple(builder.users.values()),
        steps=steps,
        path=path,
        source_digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        tags=tuple(data.get("tags", ())),
        infrastructure=deployment,
    )


def load(path: str | Path) -> Scenario:
    """Load one scenario file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ScenarioError(str(p), None, None, "", f"cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(p), None, None, "", f"not UTF-8 at byte {exc.start}") from None
    return loads(text, file=str(p), path=p)


def discover(paths: list[str | Path]) -> list[Path]:
    """Expand directories to the ``*.yaml``/``*.yml`` files under them, sorted, de-duplicated."""
    found: list[Path] = []
    for entry in paths:
        p = Path(entry)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml")))
        else:
            found.append(p)
    seen: set[Path] = set()
    out = []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
