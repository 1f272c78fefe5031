"""The executor's side of account-plane attacks: the relay configuration a scenario asks for
(``infrastructure.relay``), login codes for the simulated users, running ``attack`` steps and
judging ``attack_failed`` (issue 13 item 6; docs/threats.md).

The executor holds one :class:`AttackHarness` per run and calls it at four points (settings,
the fleet's OTP source, the ``attack`` step, the ``attack_failed`` assertion), so what is
specific to attacks stays here.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from semafore.client.account import OtpSource
from semafore.client.errors import ClientError
from semafore.server.settings import DEFAULT_RATE_LIMITS
from simulator.attacks import ATTACKS, Arena, AttackError, Outcome, judge, request_for, run_attack
from simulator.attacks.wire import Wire
from simulator.report.model import Outcome as Verdict
from simulator.scenario.model import Assertion, Attack, Scenario

TEST_OTP = "000000"
"""The relay's test OTP (``Settings.test_otp``, the simulator's relays keep the default)."""


class AttackHarness:
    """One run's attacks: the OTP sink (a temporary directory for the in-process relay, the
    operator's ``--relay-otp-sink DIR`` for an external one), the outcome of every attack
    step by its ``as:`` name, and why an attack could not run."""

    def __init__(self, scenario: Scenario, *, otp_sink: Path | None = None,
                 external: bool = False) -> None:
        self.scenario = scenario
        self.config = scenario.infrastructure.relay
        self.test_orgs = self.config.test_orgs_for(tuple(o.id for o in scenario.organisations))
        self.external = external
        self._own_sink: Path | None = None
        needs_sink = self.config.test_orgs is not None or any(
            isinstance(s, Attack) for s in scenario.all_steps())
        if otp_sink is None and needs_sink and not external:
            otp_sink = self._own_sink = Path(tempfile.mkdtemp(prefix="semafore-otp-sink-"))
        self.otp_sink = otp_sink
        self.outcomes: dict[str, Outcome] = {}
        self.errors: dict[str, str] = {}
        self.url: Callable[[], str | None] = lambda: None
        self.clock: Callable[[], float] = time.time

    def bind(self, url: Callable[[], str | None], clock: Callable[[], float]) -> None:
        """The relay's URL (known once it started) and its clock (TOTP steps)."""
        self.url, self.clock = url, clock

    def settings_overrides(self) -> dict[str, Any]:
        """Relay settings for the in-process relay (``harness_relay.relay_settings``)."""
        out: dict[str, Any] = {}
        if self.config.rate_limits == "default":
            out["rate_limits"] = dict(DEFAULT_RATE_LIMITS)
        if self.config.test_orgs is not None:
            out["test_orgs"] = self.test_orgs
        if self.config.header_timeout_s is not None:
            out["header_timeout"] = self.config.header_timeout_s
        if self.otp_sink is not None:
            out["otp_sink"] = str(self.otp_sink)
        return out

    def otp_source(self) -> OtpSource:
        """The simulated users' logins: the test OTP for test orgs, a code requested from
        127.0.0.1 and read from the sink for the others."""

        async def source(org_id: str, user_id: str) -> str:
            if org_id in self.test_orgs or self.otp_sink is None:
                return TEST_OTP
            try:
                async with Wire(self._arena(), "127.0.0.1") as wire:
                    return await wire.code_for(org_id, user_id)
            except AttackError as exc:  # a failed login step of that device, not a crash
                raise ClientError(str(exc), field=exc.field) from exc

        return source

    def _arena(self) -> Arena:
        url = self.url()
        if url is None:
            raise AttackError("url", "the relay is not started yet")
        return Arena(
            url=url,
            org_of={u.id: u.org for u in self.scenario.users},
            devices_of={u.id: u.devices for u in self.scenario.users},
            test_orgs=self.test_orgs,
            otp_sink=self.otp_sink,
            clock=self.clock,
            tag=secrets.token_hex(3),
            test_otp=TEST_OTP,
        )

    async def run(self, step: Attack) -> Outcome | str:
        """Run the attack; its outcome, or why it could not run (a string)."""
        params = dict(step.params)
        try:
            outcome = await run_attack(step.attack, self._arena(),
                                       request_for(step.attack, step.actor, step.victim, params))
        except (AttackError, httpx.HTTPError, OSError, TimeoutError) as exc:
            self.errors[step.name] = f"{type(exc).__name__}: {exc}"
            return self.errors[step.name]
        self.outcomes[step.name] = outcome
        return outcome

    def evaluate(self, step: Assertion) -> tuple[Verdict, str, list[str]]:
        """``attack_failed``: held with evidence, violated, or inconclusive."""
        name = step.attack or ""
        outcome = self.outcomes.get(name)
        if outcome is None:
            why = self.errors.get(name, "it never ran")
            return Verdict.INCONCLUSIVE, f"attack {name} did not run: {why}", []
        failed, summary = judge(outcome)
        verdict = {True: Verdict.HELD, False: Verdict.VIOLATED, None: Verdict.INCONCLUSIVE}[failed]
        kind = next((s.attack for s in self.scenario.all_steps()
                     if isinstance(s, Attack) and s.name == name), "")
        finding = ATTACKS[kind].finding if kind in ATTACKS else "?"
        return verdict, f"{kind} ({finding}): {summary}", outcome.evidence()

    def close(self) -> None:
        if self._own_sink is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self._own_sink)
