"""Ciphertext-only attachments (ADR-0157, ADR-0054) and hash-only screenshot reports (ADR-0159)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from semafore.server import models as m
from semafore.server.deps import IpDep, PrincipalDep, RelayDep
from semafore.server.errors import ApiError, responses

router = APIRouter()
FileId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
OCTET = "application/octet-stream"


@router.post(
    "/v1/attachments",
    status_code=201,
    tags=["attachments"],
    responses=responses(401, 404, 413),
    summary="Declare an attachment: ciphertext size, SHA-256 and recipients; nothing else",
)
async def create_attachment(
    body: m.AttachmentCreate, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.AttachmentCreated:
    return await relay.create_attachment(principal, body, ip)


@router.put(
    "/v1/attachments/{file_id}",
    status_code=204,
    tags=["attachments"],
    responses=responses(401, 404, 409, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {OCTET: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    summary="Upload the ciphertext (application/octet-stream); size and SHA-256 are checked",
)
async def upload_attachment(
    file_id: FileId, request: Request, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != OCTET:
        raise ApiError(415, "unsupported_media_type", f"send {OCTET}", field="header.content-type")
    meta = await relay.upload_meta(principal, file_id, ip)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > meta.size:
            raise ApiError(
                413, "size_exceeds_declared", "body larger than the declared size", field="body"
            )
        chunks.append(chunk)
    await relay.store_attachment(meta, b"".join(chunks))
    return Response(status_code=204)


@router.get(
    "/v1/attachments/{file_id}",
    tags=["attachments"],
    responses={
        200: {"content": {OCTET: {"schema": {"type": "string", "format": "binary"}}}},
        **responses(401, 404),
    },
    response_class=Response,
    summary="Download the ciphertext (owner and listed recipients of the same org only)",
)
async def download_attachment(
    file_id: FileId, relay: RelayDep, principal: PrincipalDep
) -> Response:
    meta, data = await relay.download_attachment(principal, file_id)
    return Response(
        content=data,
        media_type=OCTET,
        headers={"X-Content-SHA256": m.b64encode(meta.sha256)},
    )


@router.post(
    "/v1/screenshots",
    status_code=201,
    tags=["screenshots"],
    responses=responses(401, 404),
    summary="Report a screenshot: hashes and ids only, never an image",
)
async def screenshot(
    body: m.ScreenshotReport, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.ReportCreated:
    return await relay.screenshot(principal, body, ip)
