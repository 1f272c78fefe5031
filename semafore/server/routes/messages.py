"""Per-device envelope sets, queues, acknowledgements and broadcasts (ADR-0055, ADR-0158)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from semafore.server import models as m
from semafore.server.deps import IpDep, PrincipalDep, RelayDep
from semafore.server.errors import (
    ApiError,
    BroadcastStale,
    ErrorBody,
    StaleDevices,
    UserMismatch,
    responses,
)

router = APIRouter(tags=["messages"])
UserId = Annotated[str, Path(pattern=m.ID_PATTERN, max_length=64)]

IDEMPOTENT = (
    "Idempotent per (sender device, recipient, `message_id`): a retry with the same envelope set "
    "(recipients, registration ids, bodies) gets the original answer with the same delivery "
    "ids and queues nothing, even if the recipient's devices changed since; another envelope "
    "set under a used `message_id` is 409 `message_id_reused` (field `body.message_id`). "
    "The relay remembers a send as long as the organisation keeps envelopes (at most 30 "
    "days), see docs/server.md \"Messages\"."
)


class SendConflict(ErrorBody):
    """409 ``mismatched_devices`` (with ``missing``/``extra``: the envelope set does not cover
    exactly the recipient's current devices) or ``message_id_reused`` (the message id was
    used for another envelope set)."""

    missing: list[str] | None = None
    extra: list[str] | None = None


class BroadcastConflict(ErrorBody):
    """409 ``mismatched_devices`` (with ``mismatched``) or ``message_id_reused``."""

    mismatched: list[UserMismatch] | None = None


@router.put(
    "/v1/messages/{user_id}",
    responses=responses(400, 401, 404, 409, 410, 413, r409=SendConflict, r410=StaleDevices),
    summary="Send one message as one envelope per recipient device (Signal's device-set check)",
    description=IDEMPOTENT,
)
async def send(
    user_id: UserId, body: m.SendRequest, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.SendResponse:
    return await relay.send(principal, user_id, body, ip)


@router.get("/v1/messages", responses=responses(401), summary="Fetch this device's queue")
async def fetch(
    relay: RelayDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> m.EnvelopesOut:
    return await relay.fetch(principal, limit)


@router.post(
    "/v1/messages/ack",
    responses=responses(401),
    summary="Acknowledge envelopes: only now are they deleted (at-least-once delivery)",
)
async def ack(body: m.AckRequest, relay: RelayDep, principal: PrincipalDep) -> m.AckResponse:
    return m.AckResponse(acked=await relay.ack(principal, body.delivery_ids))


@router.delete(
    "/v1/messages/ack/{delivery_id}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 404),
)
async def ack_one(
    delivery_id: Annotated[str, Path(min_length=1, max_length=64)],
    relay: RelayDep,
    principal: PrincipalDep,
) -> Response:
    if not await relay.ack(principal, [delivery_id]):
        raise ApiError(404, "not_found", "no such envelope in this device's queue")
    return Response(status_code=204)


@router.post(
    "/v1/broadcasts",
    responses=responses(
        400, 401, 403, 404, 409, 410, 413, r409=BroadcastConflict, r410=BroadcastStale
    ),
    summary="Admin broadcast: per-recipient-device envelopes for many users, all or nothing",
    description=IDEMPOTENT,
)
async def broadcast(
    body: m.BroadcastRequest, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.BroadcastResponse:
    return await relay.broadcast(principal, body, ip)
