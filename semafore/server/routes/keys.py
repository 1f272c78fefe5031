"""Key directory (SPEC §1): identity keys, signed prekey, one-time prekeys, bundles, and an
identity-only lookup that claims nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from semafore.server import models as m
from semafore.server.deps import IpDep, PrincipalDep, RelayDep
from semafore.server.errors import responses

router = APIRouter(tags=["keys"])
UserId = Annotated[str, Path(pattern=m.ID_PATTERN, max_length=64)]
DeviceId = Annotated[str, Path(pattern=m.ID_PATTERN, max_length=64)]


@router.put(
    "/v1/keys",
    responses=responses(401, 409),
    summary="Publish this device's IK, SIK, SPK and a batch of OPKs (SPK signature verified)",
)
async def upload_keys(body: m.KeyUpload, relay: RelayDep, principal: PrincipalDep) -> m.KeyCount:
    return await relay.upload_keys(principal, body)


@router.post("/v1/keys/opks", responses=responses(401, 409))
async def add_opks(body: m.OpkUpload, relay: RelayDep, principal: PrincipalDep) -> m.KeyCount:
    return await relay.add_opks(principal, body)


@router.put("/v1/keys/spk", responses=responses(401, 409), summary="Rotate the signed prekey")
async def rotate_spk(
    body: m.SignedPrekeyIn, relay: RelayDep, principal: PrincipalDep
) -> m.KeyCount:
    return await relay.rotate_spk(principal, body)


@router.get("/v1/keys", responses=responses(401), summary="This device's OPK count and SPK id")
async def key_count(relay: RelayDep, principal: PrincipalDep) -> m.KeyCount:
    return await relay.key_count(principal)


@router.get(
    "/v1/keys/{user_id}",
    responses=responses(401, 404),
    summary="Bundles of all the user's devices, claiming one OPK per device atomically",
)
async def fetch_bundles(
    user_id: UserId, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.BundlesOut:
    return await relay.fetch_bundles(principal, user_id, None, ip)


@router.get("/v1/keys/{user_id}/{device_id}", responses=responses(401, 404))
async def fetch_device_bundle(
    user_id: UserId, device_id: DeviceId, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.BundlesOut:
    return await relay.fetch_bundles(principal, user_id, device_id, ip)


# Not under /v1/keys/{user_id}/...: any segment there is a device id (ID_PATTERN allows
# "identity"), so an identity route in that space would shadow a device of that name.
@router.get(
    "/v1/identities/{user_id}",
    responses=responses(401, 404),
    summary="Identity keys (IK, SIK) and registration id of the user's devices; claims no OPK",
)
async def fetch_identities(
    user_id: UserId, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.IdentitiesOut:
    return await relay.fetch_identities(principal, user_id, None, ip)


@router.get(
    "/v1/identities/{user_id}/{device_id}",
    responses=responses(401, 404),
    summary="Identity keys and registration id of one device; claims no OPK",
)
async def fetch_device_identity(
    user_id: UserId, device_id: DeviceId, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.IdentitiesOut:
    return await relay.fetch_identities(principal, user_id, device_id, ip)
