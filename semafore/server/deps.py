"""FastAPI dependencies: the relay instance, the caller's principal, the client IP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from semafore.server.errors import ApiError
from semafore.server.relay import Relay
from semafore.server.tokens import Principal

_bearer = HTTPBearer(auto_error=False, description="access token from /v1/auth/login")


def get_relay(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    relay = get_relay(request)
    token = credentials.credentials if credentials is not None else None
    principal = await relay.authenticate(token)
    request.state.principal = principal
    return principal


def _query_names(dependant: Any) -> frozenset[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


async def reject_unknown_query(request: Request) -> None:
    """Unknown query parameters are an error naming them, not silently ignored: a typo'd
    filter must not turn into "return everything"."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = _query_names(dependant)
    for name in request.query_params:
        if name not in allowed:
            raise ApiError(
                422, "unknown_parameter", "unknown query parameter", field=f"query.{name}"
            )


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


RelayDep = Annotated[Relay, Depends(get_relay)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
IpDep = Annotated[str | None, Depends(client_ip)]
