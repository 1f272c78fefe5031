"""The ASGI application: :func:`create_app` wires settings, stores, routes and error shapes.

FastAPI (on Starlette) because the API contract is generated from the same pydantic models
that validate requests, so the served OpenAPI document cannot drift from the code and
schemathesis can fuzz it (docs/server.md explains the choice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semafore import __version__
from semafore.server import models as m
from semafore.server.deps import reject_unknown_query
from semafore.server.errors import ApiError, ErrorBody, responses
from semafore.server.oplog import event
from semafore.server.push import PushPort
from semafore.server.relay import Relay
from semafore.server.routes import accounts, attachments, audit, keys, messages
from semafore.server.settings import Settings
from semafore.server.websocket import device_websocket
from semafore.storage.memory import memory_stores
from semafore.storage.ports import NotDurable, StorageUnavailable, Stores

API_TITLE = "SemaFore relay"


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "body_too_large", f"request body over {limit} bytes", field="body")


class BodyTimeout(ApiError):
    def __init__(self, timeout: float) -> None:
        super().__init__(
            408, "request_timeout", f"request body not received within {timeout:g} s",
            field="body",
        )


class BodyLimit:
    """Refuse oversized bodies while they stream in (Content-Length or actual bytes), and
    bodies that do not arrive within ``Settings.body_timeout`` (issue 13 F-7: uvicorn has no
    body read timeout, so a body trickled a byte at a time held its connection forever).
    The deadline covers the body only: later waits (for a disconnect) are not timed."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _limit(self, scope: Scope) -> int:
        if scope["method"] == "PUT" and scope["path"].startswith("/v1/attachments/"):
            return self.settings.max_attachment_bytes
        return self.settings.max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_json(send, BodyTooLarge(limit))
                return
        seen = 0
        timeout = self.settings.body_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        complete = False

        async def limited() -> Message:
            nonlocal seen, complete
            if complete:
                return await receive()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.0))
            except TimeoutError:
                event("body_timeout", logging.WARNING, method=scope["method"])
                raise BodyTimeout(timeout) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, limited, send)


async def _send_json(send: Send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    """One structured line per request: route template (never the raw path), status, time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            principal = scope.get("state", {}).get("principal")
            event(
                "http_request",
                method=scope["method"],
                route=getattr(route, "path", "unmatched"),
                status=status,
                duration_ms=round((time.perf_counter() - start) * 1000, 3),
                org_id=getattr(principal, "org_id", None),
                sub=getattr(principal, "user_id", None),
                device_id=getattr(principal, "device_id", None),
            )


def _field_of(loc: Any) -> str:
    return ".".join(str(p) for p in loc)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid", "type": "invalid"}
    code = "invalid_json" if first.get("type") == "json_invalid" else "invalid_request"
    if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
        code = "missing_body"
    return JSONResponse(
        {"error": code, "field": _field_of(first.get("loc", ())), "detail": str(first.get("msg"))},
        status_code=422,
    )


def _leaf_routes(routes: Any) -> Any:
    for route in routes:
        router = getattr(route, "original_router", None)  # FastAPI's included-router wrapper
        if router is not None:
            yield from _leaf_routes(router.routes)
        else:
            yield route


def _allowed_methods(request: Request) -> str:
    """Every method any route serves for this path (Starlette names only the first route's)."""
    exact: set[str] = set()  # a concrete path wins over templates (OpenAPI path matching)
    templated: set[str] = set()
    for route in _leaf_routes(request.app.routes):
        match, _ = route.matches({**request.scope, "method": "__NONE__"})
        if match != Match.NONE:
            path = getattr(route, "path", "")
            target = exact if path == request.url.path and "{" not in path else templated
            target.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(exact or templated))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, ApiError):  # raised while FastAPI read the body (BodyLimit)
        return await _api_error(request, exc.__cause__)
    if exc.status_code == 400:  # Starlette could not parse the body (e.g. not UTF-8 JSON)
        return JSONResponse(
            {"error": "invalid_json", "field": "body", "detail": str(exc.detail)}, status_code=422
        )
    codes = {404: "not_found", 405: "method_not_allowed"}
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    body = {
        "error": codes.get(exc.status_code, "http_error"),
        "field": None,
        "detail": str(exc.detail),
    }
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def _not_durable(request: Request, exc: Exception) -> JSONResponse:
    """A write the store could not confirm durable (:class:`NotDurable`) is not acknowledged:
    503 with ``Retry-After``, which the client's retry policy honours, resending under the
    same send key (docs/backends.md "`WAIT N` on the send")."""
    retry_after = exc.retry_after if isinstance(exc, NotDurable) else 1
    event("write_not_durable", logging.WARNING, error=type(exc).__name__)
    return JSONResponse(
        {"error": "not_durable", "field": None, "detail": "write not confirmed durable; retry"},
        status_code=503, headers={"Retry-After": str(retry_after)},
    )


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A backend that cannot serve the call now (:class:`StorageUnavailable`: unreachable, or
    no live copy) is 503 with ``Retry-After``, not an unexpected 500: the same call may succeed
    after a failover or from another copy (seed §3.5), and the client's retry policy honours
    it. The log names the error's type only, never its text (it may hold a blob's path)."""
    retry_after = exc.retry_after if isinstance(exc, StorageUnavailable) else 1
    event("storage_unavailable", logging.WARNING, error=type(exc).__name__)
    return JSONResponse(
        {"error": "storage_unavailable", "field": None,
         "detail": "a backend cannot serve this now; retry"},
        status_code=503, headers={"Retry-After": str(retry_after)},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    event("internal_error", logging.ERROR, error=type(exc).__name__)
    return JSONResponse(
        {"error": "internal", "field": None, "detail": "internal error"}, status_code=500
    )


async def _retention_loop(relay: Relay) -> None:
    while True:
        await asyncio.sleep(relay.settings.retention_interval)
        try:
            await relay.enforce_retention()
        except Exception as exc:  # keep the job alive; the failure is logged
            event("retention_failed", logging.ERROR, error=type(exc).__name__)


def create_app(settings: Settings, stores: Stores, push: PushPort | None = None) -> FastAPI:
    """The relay as an ASGI app. The caller owns ``stores`` (and closes them); the app starts
    and stops ``push`` (default: the in-process hub; replicas pass
    :meth:`semafore.deploy.stores.BackendHandles.push_hub`, docs/backends.md)."""
    relay = Relay(settings, stores, push)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        await relay.hub.start()
        if settings.retention_interval > 0:
            task = asyncio.create_task(_retention_loop(relay))
        event("relay_started", test_mode=settings.test_mode)
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await relay.hub.close()

    app = FastAPI(
        title=API_TITLE,
        version=__version__,
        description=(
            "Reference relay of SemaFore Sim: accounts, key directory, per-device envelope "
            "queues, attachments, audit and retention. Bytes are standard base64 with padding. "
            "Errors are {error, field, detail}. See docs/server.md."
        ),
        lifespan=lifespan,
    )
    app.state.relay = relay
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(NotDurable, _not_durable)
    app.add_exception_handler(StorageUnavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
    strict_query = [Depends(reject_unknown_query)]
    for module in (accounts, keys, messages, attachments, audit):
        app.include_router(module.router, dependencies=strict_query)

    @app.get("/v1/health", tags=["health"], dependencies=strict_query, responses=responses())
    async def health() -> m.Health:
        return m.Health(status="ok", test_mode=settings.test_mode)

    app.add_api_websocket_route("/v1/websocket", device_websocket)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(AccessLog)
    _install_openapi(app)
    return app


def _install_openapi(app: FastAPI) -> None:
    """Replace FastAPI's default 422 schema with ours: every error is an ErrorBody."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = base()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                response = operation.get("responses", {}).get("422")
                if response is None:
                    continue
                content = response.setdefault("content", {}).setdefault("application/json", {})
                content["schema"] = {"$ref": "#/components/schemas/ErrorBody"}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def openapi_document(settings: Settings | None = None) -> str:
    """The OpenAPI document exactly as committed under docs/openapi.json."""
    app = create_app(settings or Settings(), memory_stores())
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
