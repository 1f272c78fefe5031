"""Admin-only audit query, SIEM export (NDJSON), delivery proofs and retention (seed §2.4)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from semafore.server import models as m
from semafore.server.deps import PrincipalDep, RelayDep
from semafore.server.errors import responses
from semafore.server.relay import audit_out
from semafore.storage.ports import AuditQuery

router = APIRouter(tags=["audit"])
OrgId = Annotated[str, Path(pattern=m.ID_PATTERN, max_length=64)]
EventType = m.AuditType
EXPORT_PAGE = 500


@router.get("/v1/orgs/{org_id}/audit", responses=responses(401, 403))
async def audit_query(
    org_id: OrgId,
    relay: RelayDep,
    principal: PrincipalDep,
    event_type: Annotated[list[EventType] | None, Query(max_length=8)] = None,
    actor_user_id: Annotated[str | None, Query(pattern=m.ID_PATTERN, max_length=64)] = None,
    subject_user_id: Annotated[str | None, Query(pattern=m.ID_PATTERN, max_length=64)] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11)] = None,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> m.AuditPage:
    query = AuditQuery(
        org_id=org_id,
        event_types=tuple(event_type or ()),
        actor_user_id=actor_user_id,
        subject_user_id=subject_user_id,
        since=since,
        until=until,
        after_seq=after_seq,
        limit=limit,
    )
    return await relay.audit_page(principal, query)


@router.get(
    "/v1/orgs/{org_id}/audit/export",
    responses={
        200: {
            "description": "One audit event per line (docs/audit-schema.md), oldest first",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **responses(401, 403),
    },
    response_class=StreamingResponse,
    summary="SIEM export: this organisation's audit events as NDJSON from a cursor",
)
async def audit_export(
    org_id: OrgId,
    relay: RelayDep,
    principal: PrincipalDep,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> StreamingResponse:
    await relay.require_admin(principal, org_id)

    async def lines() -> AsyncIterator[bytes]:
        cursor = after_seq
        while True:
            page = await relay.stores.audit.query(
                AuditQuery(org_id=org_id, after_seq=cursor, limit=EXPORT_PAGE)
            )
            for event in page:
                yield (
                    json.dumps(audit_out(event).model_dump(), separators=(",", ":")) + "\n"
                ).encode()
            if len(page) < EXPORT_PAGE:
                return
            cursor = page[-1].seq

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get("/v1/orgs/{org_id}/deliveries", responses=responses(401, 403))
async def deliveries(
    org_id: OrgId,
    relay: RelayDep,
    principal: PrincipalDep,
    after: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> m.DeliveryPage:
    return await relay.deliveries(principal, org_id, after, limit)


@router.get("/v1/orgs/{org_id}/retention", tags=["retention"], responses=responses(401, 403))
async def get_retention(org_id: OrgId, relay: RelayDep, principal: PrincipalDep) -> m.RetentionOut:
    return await relay.get_retention(principal, org_id)


@router.put("/v1/orgs/{org_id}/retention", tags=["retention"], responses=responses(401, 403))
async def put_retention(
    org_id: OrgId, body: m.RetentionIn, relay: RelayDep, principal: PrincipalDep
) -> m.RetentionOut:
    return await relay.put_retention(principal, org_id, body)
