"""HTTP (httpx, async) access to a relay at any base URL (docs/server.md, docs/openapi.json).

:class:`RelayHttp` turns the relay's JSON API into typed calls: it adds the bearer token,
refreshes it when it expires, retries on connection failures, 429 and 5xx with exponential
back-off, and raises :class:`ServerRejected` carrying the relay's machine-readable error
(``{"error", "field", "detail", ...}``) for everything else. Retrying a send whose answer
was lost can enqueue it twice; recipients drop the copy by message id (at-least-once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from semafore.client.backoff import Backoff
from semafore.client.errors import ServerRejected, TransportError
from semafore.protocol.entropy import Entropy

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
Sleep = Callable[[float], Awaitable[None]]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA store costs ~0.2 s, and a fleet
    creates a client per device."""
    return ssl.create_default_context()


class SharedConnectionPool(httpx.AsyncBaseTransport):
    """One keep-alive connection pool that many devices of one process borrow (pass it as
    ``transport=`` to each device's :class:`RelayHttp`).

    Why: a device's own pool sits idle between its rare requests (a bundle or identity
    lookup per new session), the relay closes idle keep-alives, and every lookup then pays a
    new TCP connection on both ends; thousands of devices would also hold thousands of
    descriptors at the relay. A fleet shard's devices instead share ``max_connections``
    warm connections (issue 16 item 6, docs/simulator.md "Sharded fleet"). Requests still
    carry each device's own bearer token: only the sockets are shared.

    Closing a borrowing device leaves the pool open; :meth:`close` closes it."""

    def __init__(self, max_connections: int = 32) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections: at least 1, not {max_connections}")
        self._pool = httpx.AsyncHTTPTransport(
            verify=_tls_context(),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
        )
        self.requests = 0
        """Requests sent through the pool, by every borrowing device."""
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.closed:  # httpx's own pool would quietly open new connections
            raise httpx.ConnectError("the shared connection pool is closed", request=request)
        self.requests += 1
        return await self._pool.handle_async_request(request)

    async def aclose(self) -> None:
        """A borrowing device closed: the pool stays open for the others."""

    async def close(self) -> None:
        """Close every connection; a request after this fails (``httpx.ConnectError``)."""
        self.closed = True
        await self._pool.aclose()


class RelayHttp:
    """One device's HTTP connection pool to the relay (or its share of a
    :class:`SharedConnectionPool`)."""

    def __init__(
        self,
        base_url: str,
        entropy: Entropy,
        *,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "semafore-sim-client/1",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.entropy = entropy
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.on_tokens: Callable[[dict[str, Any]], None] | None = None
        self.reauthenticate: Callable[[], Awaitable[Any]] | None = None
        """Log in again (a fresh OTP) when the refresh family itself has expired."""
        self.requests = 0
        self.retries = 0
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            verify=_tls_context(),
            headers={"User-Agent": user_agent},
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
        )

    async def close(self) -> None:
        await self._client.aclose()

    def set_tokens(self, pair: dict[str, Any]) -> None:
        self.access_token = pair["access_token"]
        self.refresh_token = pair["refresh_token"]
        if self.on_tokens is not None:
            self.on_tokens(pair)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """One API call; returns the 2xx response or raises ServerRejected / TransportError."""
        refreshed = False
        attempt = 0
        while True:
            hdrs = dict(headers or {})
            if auth and self.access_token:
                hdrs["Authorization"] = f"Bearer {self.access_token}"
            self.requests += 1
            try:
                response = await self._client.request(
                    method, path, json=json, content=content, params=params, headers=hdrs
                )
            except httpx.TransportError as exc:
                if not retry or attempt + 1 >= self.backoff.attempts:
                    raise TransportError(
                        f"{method} {path}: {type(exc).__name__}", field="connection"
                    ) from exc
                await self._wait(attempt)
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            body = _json_or_none(response)
            code = body.get("error", "http_error") if isinstance(body, dict) else "http_error"
            if (
                response.status_code == 401
                and auth
                and code in ("token_expired", "invalid_token", "token_revoked")
                and not refreshed
                and self.refresh_token
            ):
                refreshed = True
                await self.refresh()
                continue
            retryable = response.status_code in RETRY_STATUSES and retry
            if retryable and attempt + 1 < self.backoff.attempts:
                after = response.headers.get("Retry-After")
                await self._wait(attempt, float(after) if after and after.isdigit() else None)
                attempt += 1
                continue
            detail = body.get("detail", response.text[:200]) if isinstance(body, dict) else ""
            raise ServerRejected(response.status_code, str(code), str(detail), body)

    async def _wait(self, attempt: int, at_least: float | None = None) -> None:
        self.retries += 1
        delay = self.backoff.delay(attempt, self.entropy)
        if at_least is not None:
            delay = max(delay, min(at_least, self.backoff.cap))
        await self.sleep(delay)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def refresh(self) -> None:
        """Rotate the refresh token (ADR-0163); past the family's lifetime, log in again."""
        try:
            pair = await self.json(
                "POST", "/v1/auth/refresh", json={"refresh_token": self.refresh_token}, auth=False
            )
        except ServerRejected as exc:
            if exc.status != 401 or self.reauthenticate is None:
                raise
            await self.reauthenticate()
            return
        self.set_tokens(pair)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
