"""Load profiles: what a population of devices does, as a named YAML file (docs/load.md).

A profile fixes the *shape* of the traffic (how many devices a user has, how big messages
are, which actions a device takes and how often) and default run bounds (users, spawn rate,
duration). The command line overrides the bounds; nothing else about a profile is implicit.
The parser is strict: an unknown key, a wrong type or an out-of-range value is a
:class:`ProfileError` naming the dotted field, and a profile is either fully valid or not
loaded at all.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
TASKS = ("send", "attachment", "fetch_bundle", "poll", "reconnect", "replenish", "idle")
"""Actions a virtual device can take; weights in ``behaviour.tasks`` pick among them."""


class ProfileError(ValueError):
    """A profile file or override is malformed; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class SizeDistribution:
    """Plaintext sizes in bytes: log-normal around ``median`` (chat and files are heavy-tailed),
    clipped to ``[min, max]``; ``fixed`` draws ``median`` every time."""

    kind: Literal["lognormal", "fixed"] = "lognormal"
    median: int = 80
    sigma: float = 1.0
    min: int = 1
    max: int = 4096

    def draw(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            return self.median
        value = round(rng.lognormvariate(math.log(self.median), self.sigma))
        return max(self.min, min(self.max, value))


@dataclass(frozen=True)
class Population:
    """Who exists: devices per user (a distribution) and how many contacts each user talks to."""

    devices_per_user: dict[int, float] = field(default_factory=lambda: {1: 0.4, 2: 0.4, 3: 0.2})
    contacts: int = 3

    def draw_devices(self, rng: random.Random) -> int:
        counts = sorted(self.devices_per_user)
        return rng.choices(counts, weights=[self.devices_per_user[c] for c in counts])[0]


@dataclass(frozen=True)
class Behaviour:
    """What each online device does between its think times."""

    think_time: tuple[float, float] = (1.0, 3.0)
    tasks: dict[str, int] = field(default_factory=lambda: {"send": 1})
    send_via: Literal["websocket", "http"] = "websocket"
    ack_batch: int = 20
    ack_interval: float = 0.2
    login_on_start: bool = True
    # Envelopes per pushed WebSocket frame the device asks for (docs/server.md "WebSocket"):
    # 64 is what the reference SDK asks; 0 models a client taking one frame per envelope.
    push_batch: int = 64


@dataclass(frozen=True)
class Broadcast:
    """One admin device broadcasting to many users (POST /v1/broadcasts)."""

    enabled: bool = False
    recipients: int = 1000
    interval: float = 5.0
    messages: int = 4


@dataclass(frozen=True)
class Attachments:
    """Ciphertext blobs uploaded, announced in a message and downloaded by every recipient."""

    size: SizeDistribution = field(
        default_factory=lambda: SizeDistribution("lognormal", 200_000, 1.0, 1_000, 4_000_000)
    )
    pool: int = 8
    download: bool = True


@dataclass(frozen=True)
class Reconnect:
    """Synchronised outages: every device drops its socket at once, then all reconnect."""

    outage_every: float = 0.0
    outage_length: float = 0.0
    refresh_tokens: bool = True


@dataclass(frozen=True)
class Prekeys:
    """One-time prekey supply (SPEC §1): how many each device starts with and how it tops up."""

    initial: int = 20
    low_water: int = 10
    batch: int = 20
    batches: int = 4


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    models: str
    users: int = 10
    spawn_rate: float = 5.0
    duration: float = 30.0
    max_requests: int | None = None
    people: int | None = None
    messages_per_device: int = 40
    message_size: SizeDistribution = field(default_factory=SizeDistribution)
    population: Population = field(default_factory=Population)
    behaviour: Behaviour = field(default_factory=Behaviour)
    broadcast: Broadcast = field(default_factory=Broadcast)
    attachments: Attachments = field(default_factory=Attachments)
    reconnect: Reconnect = field(default_factory=Reconnect)
    prekeys: Prekeys = field(default_factory=Prekeys)
    expects: tuple[str, ...] = ()
    """Request names a run of this profile must show (the tests check them)."""

    def with_overrides(
        self,
        *,
        users: int | None = None,
        spawn_rate: float | None = None,
        duration: float | None = None,
        max_requests: int | None = None,
    ) -> Profile:
        changes: dict[str, Any] = {}
        if users is not None:
            changes["users"] = _positive_int(users, "users")
        if spawn_rate is not None:
            changes["spawn_rate"] = _positive_float(spawn_rate, "spawn_rate")
        if duration is not None:
            changes["duration"] = _positive_float(duration, "duration")
        if max_requests is not None:
            changes["max_requests"] = _positive_int(max_requests, "max_requests")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The profile in its YAML shape (``parse_profile(p.to_dict()) == p``)."""
        raw: dict[str, Any] = _plain(dataclasses.asdict(self))
        for holder, key in ((raw, "message_size"), (raw["attachments"], "size")):
            size = holder[key]
            size["distribution"] = size.pop("kind")
        raw["population"]["devices_per_user"] = {
            int(k): v for k, v in raw["population"]["devices_per_user"].items()
        }
        for optional in ("max_requests", "people"):
            if raw[optional] is None:
                del raw[optional]
        return raw


# --- parsing ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _positive_int(value: Any, path: str, *, zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProfileError(path, f"must be an integer, got {type(value).__name__}")
    if value < 0 or (value == 0 and not zero):
        raise ProfileError(path, f"must be {'>= 0' if zero else '> 0'}, got {value}")
    return value


def _positive_float(value: Any, path: str, *, zero: bool = False) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProfileError(path, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        raise ProfileError(path, f"must be {'>= 0' if zero else '> 0'}, got {value}")
    return number


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(path, "must be a non-empty string")
    return value.strip()


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ProfileError(path, "must be true or false")
    return value


def _mapping(value: Any, path: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProfileError(path, "must be a mapping")
    for key in value:
        if not isinstance(key, str) or key not in allowed:
            raise ProfileError(f"{path}.{key}" if path else str(key), "unknown key")
    return value


def _size(value: Any, path: str) -> SizeDistribution:
    data = _mapping(value, path, {"distribution", "median", "sigma", "min", "max"})
    kind = data.get("distribution", "lognormal")
    if kind not in ("lognormal", "fixed"):
        raise ProfileError(f"{path}.distribution", "must be 'lognormal' or 'fixed'")
    dist = SizeDistribution(
        kind=kind,
        median=_positive_int(data.get("median", 80), f"{path}.median"),
        sigma=_positive_float(data.get("sigma", 1.0), f"{path}.sigma", zero=True),
        min=_positive_int(data.get("min", 1), f"{path}.min"),
        max=_positive_int(data.get("max", 4096), f"{path}.max"),
    )
    if not dist.min <= dist.median <= dist.max:
        raise ProfileError(f"{path}.median", "must lie within [min, max]")
    return dist


def _population(value: Any, path: str) -> Population:
    data = _mapping(value, path, {"devices_per_user", "contacts"})
    raw = data.get("devices_per_user", {1: 0.4, 2: 0.4, 3: 0.2})
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = {raw: 1.0}
    if not isinstance(raw, Mapping) or not raw:
        raise ProfileError(f"{path}.devices_per_user", "must be an integer or {count: weight}")
    dist: dict[int, float] = {}
    for key, weight in raw.items():
        where = f"{path}.devices_per_user.{key}"
        # JSON (the serialised profile) turns integer keys into text.
        count = int(key) if isinstance(key, str) and key.isdigit() else key
        count_int = _positive_int(count, where)
        if count_int > 16:
            raise ProfileError(where, "at most 16 devices per user (the relay's limit)")
        dist[count_int] = _positive_float(weight, where)
    return Population(dist, _positive_int(data.get("contacts", 3), f"{path}.contacts"))


def _behaviour(value: Any, path: str) -> Behaviour:
    data = _mapping(
        value,
        path,
        {
            "think_time",
            "tasks",
            "send_via",
            "ack_batch",
            "ack_interval",
            "login_on_start",
            "push_batch",
        },
    )
    think = data.get("think_time", [1.0, 3.0])
    if not isinstance(think, list) or len(think) != 2:
        raise ProfileError(f"{path}.think_time", "must be [min, max] seconds")
    low = _positive_float(think[0], f"{path}.think_time.0", zero=True)
    high = _positive_float(think[1], f"{path}.think_time.1", zero=True)
    if low > high:
        raise ProfileError(f"{path}.think_time", "min must not exceed max")
    tasks_raw = _mapping(data.get("tasks", {"send": 1}), f"{path}.tasks", set(TASKS))
    tasks = {k: _positive_int(v, f"{path}.tasks.{k}", zero=True) for k, v in tasks_raw.items()}
    if not any(tasks.values()):
        raise ProfileError(f"{path}.tasks", "at least one task needs a positive weight")
    send_via = data.get("send_via", "websocket")
    if send_via not in ("websocket", "http"):
        raise ProfileError(f"{path}.send_via", "must be 'websocket' or 'http'")
    return Behaviour(
        think_time=(low, high),
        tasks=tasks,
        send_via=send_via,
        ack_batch=_positive_int(data.get("ack_batch", 20), f"{path}.ack_batch"),
        ack_interval=_positive_float(data.get("ack_interval", 0.2), f"{path}.ack_interval"),
        login_on_start=_bool(data.get("login_on_start", True), f"{path}.login_on_start"),
        push_batch=_push_batch(data.get("push_batch", 64), f"{path}.push_batch"),
    )


def _push_batch(value: Any, path: str) -> int:
    batch = _positive_int(value, path, zero=True)
    if batch > 64:
        raise ProfileError(path, "at most 64 envelopes per frame (relay limit)")
    return batch


def _broadcast(value: Any, path: str) -> Broadcast:
    data = _mapping(value, path, {"enabled", "recipients", "interval", "messages"})
    recipients = _positive_int(data.get("recipients", 1000), f"{path}.recipients")
    if recipients > 1000:
        raise ProfileError(f"{path}.recipients", "at most 1000 users per broadcast (relay limit)")
    return Broadcast(
        enabled=_bool(data.get("enabled", True), f"{path}.enabled"),
        recipients=recipients,
        interval=_positive_float(data.get("interval", 5.0), f"{path}.interval"),
        messages=_positive_int(data.get("messages", 4), f"{path}.messages"),
    )


def _attachments(value: Any, path: str) -> Attachments:
    data = _mapping(value, path, {"size", "pool", "download"})
    default = Attachments()
    return Attachments(
        size=_size(data["size"], f"{path}.size") if "size" in data else default.size,
        pool=_positive_int(data.get("pool", default.pool), f"{path}.pool"),
        download=_bool(data.get("download", True), f"{path}.download"),
    )


def _reconnect(value: Any, path: str) -> Reconnect:
    data = _mapping(value, path, {"outage_every", "outage_length", "refresh_tokens"})
    return Reconnect(
        outage_every=_positive_float(
            data.get("outage_every", 0), f"{path}.outage_every", zero=True
        ),
        outage_length=_positive_float(
            data.get("outage_length", 0), f"{path}.outage_length", zero=True
        ),
        refresh_tokens=_bool(data.get("refresh_tokens", True), f"{path}.refresh_tokens"),
    )


def _prekeys(value: Any, path: str) -> Prekeys:
    data = _mapping(value, path, {"initial", "low_water", "batch", "batches"})
    prekeys = Prekeys(
        initial=_positive_int(data.get("initial", 20), f"{path}.initial", zero=True),
        low_water=_positive_int(data.get("low_water", 10), f"{path}.low_water", zero=True),
        batch=_positive_int(data.get("batch", 20), f"{path}.batch"),
        batches=_positive_int(data.get("batches", 4), f"{path}.batches", zero=True),
    )
    if prekeys.batch > 100 or prekeys.initial > 100:
        raise ProfileError(path, "at most 100 one-time prekeys per upload (relay limit)")
    return prekeys


TOP_KEYS = {
    "name",
    "description",
    "models",
    "users",
    "spawn_rate",
    "duration",
    "max_requests",
    "people",
    "messages_per_device",
    "message_size",
    "population",
    "behaviour",
    "broadcast",
    "attachments",
    "reconnect",
    "prekeys",
    "expects",
}


def parse_profile(data: Any, source: str = "<profile>") -> Profile:
    """Validate a profile mapping (as loaded from YAML); raise :class:`ProfileError`."""
    top = _mapping(data, "", TOP_KEYS)
    for required in ("name", "description", "models"):
        if required not in top:
            raise ProfileError(required, f"missing in {source}")
    max_requests = top.get("max_requests")
    people = top.get("people")
    expects = top.get("expects", [])
    if not isinstance(expects, list) or not all(isinstance(e, str) for e in expects):
        raise ProfileError("expects", "must be a list of request names")
    profile = Profile(
        name=_string(top["name"], "name"),
        description=_string(top["description"], "description"),
        models=_string(top["models"], "models"),
        users=_positive_int(top.get("users", 10), "users"),
        spawn_rate=_positive_float(top.get("spawn_rate", 5.0), "spawn_rate"),
        duration=_positive_float(top.get("duration", 30.0), "duration"),
        max_requests=None if max_requests is None else _positive_int(max_requests, "max_requests"),
        people=None if people is None else _positive_int(people, "people"),
        messages_per_device=_positive_int(
            top.get("messages_per_device", 40), "messages_per_device", zero=True
        ),
        message_size=_size(top.get("message_size", {}), "message_size"),
        population=_population(top.get("population", {}), "population"),
        behaviour=_behaviour(top.get("behaviour", {}), "behaviour"),
        broadcast=_broadcast(top["broadcast"], "broadcast") if "broadcast" in top else Broadcast(),
        attachments=_attachments(top.get("attachments", {}), "attachments"),
        reconnect=_reconnect(top.get("reconnect", {}), "reconnect"),
        prekeys=_prekeys(top.get("prekeys", {}), "prekeys"),
        expects=tuple(expects),
    )
    if profile.behaviour.tasks.get("attachment") and profile.attachments.pool < 1:
        raise ProfileError("attachments.pool", "attachment tasks need a blob pool")
    return profile


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    """A bundled profile by name (``office_hours``) or any YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(available_profiles())
        raise ProfileError("profile", f"no profile {name_or_path!r} (bundled: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError("profile", f"{path}: not valid YAML ({exc})") from exc
    return parse_profile(data, str(path))


def profile_from_dict(data: Mapping[str, Any]) -> Profile:
    """Inverse of :meth:`Profile.to_dict` (the locust process reads the profile this way)."""
    return parse_profile(dict(data), "<serialised profile>")
