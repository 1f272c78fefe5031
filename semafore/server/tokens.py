"""Access and refresh tokens (ADR-0163).

Access tokens are HS256 JWTs, short-lived, bound to audience, issuer, organisation, device
and refresh family; decoding pins the algorithm list, so ``alg: none`` and algorithm
confusion are refused by construction. Refresh tokens are 32 random bytes, stored only as
SHA-256; each use rotates to a new token of the same family, the family has an absolute
expiry that rotation never extends, and presenting an already-used token revokes the whole
family (the thief and the victim both lose it; the victim logs in again).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal, cast

import jwt

from semafore.server.settings import Settings
from semafore.storage.ports import RefreshToken, TokenStore

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "aud", "iss", "org", "dev", "role", "fam", "typ"]


class TokenError(Exception):
    """The presented token is not acceptable; ``code`` is the API error code."""

    def __init__(self, code: str, detail: str, device: tuple[str, str] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.device = device  # (user_id, device_id) whose token family was just revoked


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified claims of an access token."""

    user_id: str
    org_id: str
    device_id: str
    role: Literal["member", "admin"]
    family_id: str
    expires_at: float = 0.0


def issue_access(settings: Settings, principal: Principal, now: float) -> str:
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": principal.user_id,
        "org": principal.org_id,
        "dev": principal.device_id,
        "role": principal.role,
        "fam": principal.family_id,
        "typ": "access",
        "iat": int(now),
        "nbf": int(now) - 1,
        "exp": int(now) + settings.access_ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def verify_access(settings: Settings, token: str, now: float) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            audience=settings.audience,
            issuer=settings.issuer,
            # Times are checked below against the relay's clock, which tests control.
            options={
                "require": REQUIRED_CLAIMS,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidAudienceError as exc:
        raise TokenError("invalid_token", "wrong audience") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("invalid_token", type(exc).__name__) from exc
    for name in ("exp", "nbf", "iat"):
        if not isinstance(claims.get(name), int) or isinstance(claims.get(name), bool):
            raise TokenError("invalid_token", f"claim {name} malformed")
    if claims["exp"] <= now:
        raise TokenError("token_expired", "access token expired")
    if claims["nbf"] > now + 1:
        raise TokenError("invalid_token", "token not yet valid")
    if claims.get("typ") != "access" or claims.get("role") not in ("member", "admin"):
        raise TokenError("invalid_token", "not an access token")
    for name in ("sub", "org", "dev", "fam"):
        if not isinstance(claims.get(name), str):
            raise TokenError("invalid_token", f"claim {name} malformed")
    return Principal(
        user_id=claims["sub"],
        org_id=claims["org"],
        device_id=claims["dev"],
        role=cast(Literal["member", "admin"], claims["role"]),
        family_id=claims["fam"],
        expires_at=float(claims["exp"]),
    )


def refresh_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_refresh_value() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")


def new_family_id(role: Literal["member", "admin"] = "member") -> str:
    """A refresh family id that records the role granted when the family began.

    Refreshing never raises a family above that role, so admin rights always trace back to
    a login or switch-org that verified a TOTP code (ADR-0161).
    """
    return f"{role}.{uuid.uuid4().hex}"


def family_role(family_id: str) -> Literal["member", "admin"]:
    return "admin" if family_id.startswith("admin.") else "member"


async def issue_refresh(
    settings: Settings,
    store: TokenStore,
    *,
    user_id: str,
    org_id: str,
    device_id: str,
    family_id: str,
    family_expires_at: float,
    now: float,
) -> str:
    value = new_refresh_value()
    await store.put_refresh(
        RefreshToken(
            token_hash=refresh_hash(value),
            family_id=family_id,
            user_id=user_id,
            org_id=org_id,
            device_id=device_id,
            issued_at=now,
            family_expires_at=family_expires_at,
        )
    )
    return value


async def rotate_refresh(
    settings: Settings, store: TokenStore, value: str, now: float
) -> RefreshToken:
    """Consume ``value``; return its record if it may be rotated, else raise TokenError.

    Reuse of a consumed token revokes the family before answering (ADR-0163).
    """
    use = await store.use_refresh(refresh_hash(value))
    if use is None:
        raise TokenError("invalid_token", "unknown refresh token")
    token = use.token
    if use.reused:
        await store.revoke_family(token.family_id)
        raise TokenError(
            "refresh_reused",
            "refresh token reuse: the token family is revoked",
            device=(token.user_id, token.device_id),
        )
    if await store.is_family_revoked(token.family_id):
        raise TokenError("token_revoked", "refresh token family revoked")
    if now >= token.family_expires_at:
        raise TokenError("token_expired", "refresh family reached its absolute lifetime")
    if now >= token.issued_at + settings.refresh_ttl:
        raise TokenError("token_expired", "refresh token expired")
    return token
