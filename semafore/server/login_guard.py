"""How hard guessing a login code is: the backoff schedule and its computed bound (issue 13).

A login code (six digits, ``10**6`` values) is bound to the (org, user, client address) that
asked for it. Each code dies after ``Settings.otp_max_failures`` wrong guesses; every code
that dies in a row at one address doubles the wait before that address may ask or guess
again (``otp_backoff_base`` seconds, at most ``otp_backoff_cap``); a right code resets it.
:func:`guess_chance` is the resulting bound for one attacker address against one account;
docs/server.md quotes it and ``tests/server/test_login_guard.py`` pins it below 0.1 %.
"""

from __future__ import annotations

from semafore.server.settings import Settings

CODE_SPACE = 10**6
"""Six decimal digits (``models.LoginRequest.otp``)."""


def backoff(settings: Settings, strikes: int) -> float:
    """Seconds an address waits after its ``strikes``-th dead code in a row (strikes >= 1)."""
    exponent = min(max(strikes - 1, 0), 62)
    return float(min(settings.otp_backoff_base * 2**exponent, settings.otp_backoff_cap))


def codes_within(settings: Settings, seconds: float) -> int:
    """Most codes one address can see die against one account within ``seconds``: each costs
    its backoff before the next may be asked for (request and guesses themselves take no
    time, the attacker's best case)."""
    elapsed, codes = 0.0, 0
    while elapsed <= seconds:
        codes += 1
        elapsed += backoff(settings, codes)
    return codes


def guess_chance(settings: Settings, seconds: float = 30 * 86400.0) -> float:
    """Probability that one address guesses a fresh random code of one account within
    ``seconds``: every code is new and uniform, every guess on it distinct, so each code
    falls with probability ``max_failures / CODE_SPACE`` and the codes are independent."""
    per_code = settings.otp_max_failures / CODE_SPACE
    return 1.0 - (1.0 - per_code) ** codes_within(settings, seconds)
