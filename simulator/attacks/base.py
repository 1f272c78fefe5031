"""What an account-plane attack is: its declaration, the arena it acts in, what it achieved.

An attack (issue 13 item 6) is one async function acting as an attacker *only* through the
relay's public HTTP and WebSocket API at the relay's URL, so the same function runs against
the in-process relay and against any relay by URL. It is bounded in count (its parameters
have maxima) and in time (:attr:`Arena.deadline_s`), and it reports what it tried and what
it obtained; the ``attack_failed`` assertion judges that record (zero attempts is
inconclusive, never a pass: issue #11).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ParamValue = int | float | str


class AttackError(Exception):
    """The attack cannot run here as declared (no OTP sink for a non-test org, a source
    address outside loopback, …); ``field`` names what is wrong."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        super().__init__(f"{field}: {detail}")


@dataclass(frozen=True)
class Param:
    """One knob of an attack: its type, bounds (every count is bounded) and default."""

    kind: type[int] | type[float] | type[str]
    default: ParamValue
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""

    def check(self, value: object) -> str | None:
        """``None`` if ``value`` is acceptable, else why not."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or isinstance(value, bool):
            return f"must be a {self.kind.__name__}, not {value!r}"
        if isinstance(value, int | float):
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum:g}, not {value!r}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {self.maximum:g} (attacks are bounded), not {value!r}"
        return None


@dataclass(frozen=True)
class Arena:
    """Where and as whom an attack acts.

    ``url`` is the relay's base URL; the attacker connects from ``attacker_address`` (a
    loopback address of its own, 127.0.0.2 by default: a relay that keys throttles by client
    address cannot tell two clients on one address apart, and the simulated users are all on
    ``legit_address``). Login codes come from the relay's test OTP for ``test_orgs`` and
    from the relay's OTP sink (:mod:`semafore.server.otp_sink`) for every other org; the
    sink also stands in for luck where an attack needs "the attacker guessed right".
    ``clock`` is the relay's clock (TOTP steps); ``tag`` makes the ids the attacker creates
    unique per run (an external relay keeps them)."""

    url: str
    org_of: Mapping[str, str]
    devices_of: Mapping[str, tuple[str, ...]]
    test_orgs: frozenset[str]
    otp_sink: Path | None
    clock: Callable[[], float]
    tag: str
    test_otp: str = "000000"
    attacker_address: str = "127.0.0.2"
    legit_address: str = "127.0.0.1"
    deadline_s: float = 120.0  # above the longest bounded hold (slowloris hold_s <= 60)

    def __post_init__(self) -> None:
        for name in ("attacker_address", "legit_address"):
            value = getattr(self, name)
            if not ipaddress.ip_address(value).is_loopback:
                raise AttackError(name, f"{value} is not a loopback address: attacks stay on "
                                  "this machine")
        host = self.url.split("://", 1)[-1].rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):
            raise AttackError("url", f"attacks target a relay on 127.0.0.1, not {host}")


@dataclass
class Outcome:
    """What an attack did: attempts made (requests, connections, guesses), whether it
    reached its goal, what it obtained (``gains``), every answer counted by kind, and
    whether legitimate users kept working while it ran (``legit``: check -> passed), and
    why it proves nothing if it does not (``undecided``)."""

    attempts: int = 0
    succeeded: bool = False
    gains: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    legit: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    undecided: str | None = None
    """Why the run shows nothing either way (the bound under test never engaged, the
    target had nothing to take): inconclusive, never a pass (issue #11)."""

    def gained(self, what: str) -> None:
        """The attacker obtained ``what``: the attack succeeded."""
        self.succeeded = True
        self.gains.append(what)

    def answer(self, label: str, status: int, code: str | None = None) -> None:
        self.attempts += 1
        self.answers[f"{label} {status}{f' {code}' if code else ''}"] += 1

    def evidence(self) -> list[str]:
        lines = [f"attempts: {self.attempts}"]
        lines += [f"answer {k}: x{v}" for k, v in sorted(self.answers.items())]
        lines += [f"gained: {g}" for g in self.gains]
        lines += [f"legit {k}: {'ok' if ok else 'FAILED'}" for k, ok in self.legit.items()]
        lines += self.notes
        if self.undecided is not None:
            lines.append(f"undecided: {self.undecided}")
        return lines


AttackFn = Callable[["Arena", "Request"], Awaitable[Outcome]]


@dataclass(frozen=True)
class Request:
    """One declared attack: the cast user it acts as (an insider) or none (an outsider),
    the cast user it targets, and its parameters (defaults filled in)."""

    actor: str | None
    victim: str | None
    params: Mapping[str, ParamValue]

    def count(self, name: str) -> int:
        return int(self.params[name])

    def number(self, name: str) -> float:
        return float(self.params[name])

    def text(self, name: str) -> str:
        return str(self.params[name])


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: name, the finding it replays (issue 13), whether it needs an
    insider (``actor``) and a ``victim`` from the cast, its parameters and its function."""

    name: str
    finding: str
    summary: str
    needs_actor: bool
    needs_victim: bool
    params: Mapping[str, Param]
    run: AttackFn
    needs_limits: bool = False
    """It attacks a rate limit or quota: meaningless on a relay without them (the loader
    requires ``infrastructure.relay.rate_limits: default``)."""
    needs_non_test_victim: bool = False
    """The victim's org must not be on the test-OTP allow-list."""
