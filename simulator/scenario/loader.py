"""Load a scenario file: YAML with source positions → JSON Schema → cross-references → model.

Every rejection is a :class:`ScenarioError` naming the file, the line and column, and the
offending key as a path (``steps[3].send.to``), so a reviewer can fix a file without reading
this code. Nothing is half-built: the model exists only if the whole file is valid.

The JSON Schema (:func:`schema`: ``schema/scenario-v1.base.json`` plus each registered step
kind's body schema, :mod:`simulator.steps`) is the format's contract; this module adds
what a schema cannot say (a device sent from must exist at that point of the timeline, an
assertion's adversary must have been created by an earlier compromise step…).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import jsonschema
import yaml

from semafore.deploy.settings import ProviderKind, RedisTopology, Shape
from semafore.protocol.address import SEPARATOR, DeviceAddress
from semafore.storage.redis import ReplicaWait
from simulator import steps
from simulator.scenario.model import (
    FORMAT_VERSION,
    Assertion,
    Attack,
    Compromise,
    CompromiseKind,
    Concurrently,
    Deployment,
    Expectation,
    FileNote,
    MessageSelector,
    Organisation,
    RelayConfig,
    Requirements,
    Scenario,
    Step,
    StepExpectation,
    User,
    shape_unmet,
)

SCHEMA_PATH = Path(__file__).with_name("schema") / "scenario-v1.base.json"

PathT = tuple[str | int, ...]


RETIRED_SEPARATOR = "/"
"""Scenario and ``--assign`` files written before issue #14 item 1 name a device
``user/device``; they are still read (a file that validated keeps validating), each use with a
deprecation note in ``semafore sim validate``, and written ``user:device`` today."""


def file_device(text: str) -> DeviceAddress:
    """The device a file names: ``user:device``, the one textual form (SPEC §2 step 6; the
    schema's ``$defs.device``, docs/scenarios.md), or the retired ``user/device``
    (:func:`retired_spelling`)."""
    if retired_spelling(text):
        user, _, device = text.partition(RETIRED_SEPARATOR)
        return DeviceAddress(user, device)
    return DeviceAddress.parse(text)


def retired_spelling(text: str) -> bool:
    """``text`` names a device the pre-issue-#14 way, ``user/device``."""
    return RETIRED_SEPARATOR in text and SEPARATOR not in text


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


def schema() -> dict[str, Any]:
    """The scenario format's JSON Schema: the document (``schema/scenario-v1.base.json``) with
    one alternative per registered step kind (:mod:`simulator.steps`) and the provider names
    of :class:`ProviderKind` filled in: each list exists once, where its concept lives."""
    return _composed(steps.generation())


@cache
def _composed(generation: int) -> dict[str, Any]:
    del generation  # the cache key: a step kind registered later gets a new schema
    base = cast(dict[str, Any], json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    base["properties"]["providers"]["items"] = {"enum": [kind.value for kind in ProviderKind]}
    base["properties"]["requires"]["properties"]["shape"] = {"enum": [s.value for s in Shape]}
    base["properties"]["requires"]["properties"]["redis"] = {
        "enum": [t.value for t in RedisTopology]}
    base["$defs"]["step"] = {"oneOf": [
        {"type": "object", "additionalProperties": False, "required": [name],
         "properties": {name: dict(kind.schema)}}
        for name, kind in steps.kinds().items()]}
    return base


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
        self.notes: list[FileNote] = []

    def error(self, path: PathT, message: str) -> ScenarioError:
        e = self.where(path, message)
        return ScenarioError(self.file, e.line, e.column, e.key, e.message)

    def note(self, path: PathT, message: str) -> None:
        """Record something read but no longer written (``sim validate`` prints it)."""
        self.notes.append(self.where(path, message))

    def where(self, path: PathT, message: str) -> FileNote:
        probe = path
        while probe and probe not in self.doc.marks:
            probe = probe[:-1]
        line, col = self.doc.marks.get(probe, (None, None))
        return FileNote(line, col, _fmt(path), message)


# --- schema validation -------------------------------------------------------------------------


def _sub_schema(ref_schema: Mapping[str, Any]) -> dict[str, Any]:
    return {**ref_schema, "$defs": schema()["$defs"]}


_VALIDATORS: dict[tuple[int, int], jsonschema.Draft202012Validator] = {}


def _check(ctx: _Ctx, instance: Any, sub: Mapping[str, Any], base: PathT) -> None:
    key = (steps.generation(), id(sub))
    validator = _VALIDATORS.get(key)
    if validator is None:  # sub-schemas are parts of the cached schema(): ids are stable
        validator = _VALIDATORS[key] = jsonschema.Draft202012Validator(_sub_schema(sub))
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


def _top_schema() -> dict[str, Any]:
    return _top_schema_of(steps.generation())


@cache
def _top_schema_of(generation: int) -> dict[str, Any]:
    """The document schema with steps checked one by one (for precise errors)."""
    del generation  # the cache key
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
    check = Validation(ctx)
    for i, step in enumerate(data["steps"]):
        check.step(step, ("steps", i))


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


class Validation:
    """Checks a step against its kind's schema before anything is built; a kind's
    ``validate`` hook (simulator.steps) gets this to check nested steps or assertions."""

    def __init__(self, ctx: _Ctx) -> None:
        self.ctx = ctx

    def step(self, step: Any, path: PathT) -> None:
        known = steps.kinds()
        name = _one_key(self.ctx, step, path, "step", dict(known))
        kind = known[name]
        if kind.validate is not None:
            kind.validate(self, step[name], path)
        else:
            _check(self.ctx, step[name], kind.schema, (*path, name))

    def assertion(self, body: Any, path: PathT) -> None:
        """``assert``: one assertion kind, its body checked against that kind's schema."""
        kinds = _assertion_schemas()
        akind = _one_key(self.ctx, body, path, "assertion", kinds)
        _check(self.ctx, body[akind], kinds[akind], (*path, akind))


# --- model building and cross-reference checks ---------------------------------------------


class Builder:
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
        self.attachments: set[str] = set()  # the labels of attach steps so far
        self.adversaries: dict[str, Compromise] = {}
        self.index = 0
        self.server_replicas = 1
        self.shape: Shape | None = None  # ``requires.shape``, known before the steps
        self.redis: RedisTopology | None = None  # ``requires.redis``, likewise
        self.primary_faulted = False  # an infra step so far targets redis-primary
        self.attacks: dict[str, Attack] = {}
        self.snapshots: dict[str, DeviceAddress] = {}  # snapshot name -> the device it backs up
        self.relay = RelayConfig()

    # helpers

    def line(self, path: PathT) -> int:
        return self.ctx.doc.marks.get(path, (0, 0))[0]

    def file_device(self, text: str, path: PathT) -> DeviceAddress:
        """:func:`file_device`, noting the retired ``user/device`` spelling where it is."""
        ref = file_device(text)
        if retired_spelling(text):
            self.ctx.note(path, f"device {text!r}: 'user/device' is the retired spelling; "
                                f"write {str(ref)!r} (user:device, docs/scenarios.md)")
        return ref

    def device(self, text: str, path: PathT, *, existing: bool = True) -> DeviceAddress:
        ref = self.file_device(text, path)
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
                self.org(org, ("users", i, "generate", "org"))
                width = len(str(gen["count"]))
                names = tuple(f"d{k}" for k in range(1, gen.get("devices", 1) + 1))
                for k in range(1, gen["count"] + 1):
                    self._user(User(id=f"{gen['prefix']}{k:0{width}d}", org=org, devices=names),
                               ("users", i, "generate"))
                continue
            org = entry.get("org", default_org)
            self.org(org, ("users", i, "org"))
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

    def org(self, org: str, path: PathT) -> None:
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
        if isinstance(body, dict) and "expect" in body:
            body = dict(body)
            common["expect"] = StepExpectation(error=body.pop("expect")["error"])
        return steps.kind(kind).build(self, body if body is not None else {}, p, common)

    def requirements(self, raw: dict[str, Any]) -> Requirements:
        """``requires:`` (issue #16 item 5). A shape none of the file's ``providers`` can run
        is an error here: such a file could only ever be skipped."""
        shape = Shape(raw["shape"]) if "shape" in raw else None
        self.shape = shape
        redis = RedisTopology(raw["redis"]) if "redis" in raw else None
        self.redis = redis
        if redis is not None and shape is not Shape.CLUSTER:
            raise self.ctx.error(("requires", "redis"), "a Redis topology is a layout of the "
                                 "cluster shape: declare 'shape: cluster' with it")
        if shape is Shape.CLUSTER:
            listed = [ProviderKind(p) for p in self.ctx.doc.data.get("providers", ProviderKind)]
            if all(shape_unmet(shape, p) for p in listed):
                raise self.ctx.error(("requires", "shape"), "none of the scenario's providers "
                                     f"({', '.join(p.value for p in listed)}) runs the "
                                     "cluster shape: list one that does in 'providers'")
        wait = None
        if "redis_wait" in raw:
            if shape is not Shape.CLUSTER:
                raise self.ctx.error(("requires", "redis_wait"), "WAIT needs a replica: declare "
                                     "'shape: cluster' with it (a single Redis has none)")
            wait = ReplicaWait(raw["redis_wait"])
        return Requirements(shape=shape, redis=redis, redis_wait=wait)

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
            ref = self.file_device(text, (*base, text))
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
                if SEPARATOR in who or retired_spelling(who):  # a device: its address
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
    builder = Builder(ctx)
    builder.cast(data)
    requires = builder.requirements(data.get("requires", {}))
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
        requires=requires,
        notes=tuple(sorted(ctx.notes, key=lambda n: (n.line or 0, n.column or 0))),
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
