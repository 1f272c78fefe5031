"""Machine-readable API errors: every refusal is ``{"error", "field", "detail"}``.

``error`` is a stable snake_case code, ``field`` names the offending request field (dotted
path, e.g. ``body.envelopes.0.body``) or is null. Handlers raise :class:`ApiError`; the app
turns it, request-validation failures and anything unexpected into this shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "field": self.field, "detail": self.detail, **self.extra}


class ErrorBody(BaseModel):
    error: str = Field(description="stable snake_case error code")
    field: str | None = Field(description="dotted path of the offending field, if any")
    detail: str


class MismatchedDevices(ErrorBody):
    """409: the envelope set does not cover exactly the recipient's current devices."""

    missing: list[str]
    extra: list[str]


class StaleDevices(ErrorBody):
    """410: envelopes name a registration id that is no longer the device's current one."""

    stale: list[str]


class UserMismatch(BaseModel):
    user_id: str
    missing: list[str]
    extra: list[str]


class UserStale(BaseModel):
    user_id: str
    stale: list[str]


class BroadcastMismatch(ErrorBody):
    mismatched: list[UserMismatch]


class BroadcastStale(ErrorBody):
    stale_users: list[UserStale]


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing, invalid or expired credentials",
    403: "Authenticated but not allowed",
    404: "Not found (or not visible to this caller)",
    409: "Conflict with current state",
    410: "Gone: stale state",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid field (the error names it)",
    429: "Rate limited: retry after the Retry-After seconds",
}


def responses(*codes: int, **models: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route: each code with the error model it answers."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, 422, 429}):
        entry: dict[str, Any] = {
            "model": models.get(f"r{code}", ErrorBody),
            "description": _DESCRIPTIONS[code],
        }
        if code == 429:
            entry["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
            }
        out[code] = entry
    return out
