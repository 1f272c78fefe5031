"""Organisations, members, authentication and devices (ADR-0161, ADR-0163, ADR-0164)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from semafore.server import models as m
from semafore.server.deps import IpDep, PrincipalDep, RelayDep
from semafore.server.errors import responses

router = APIRouter()
OrgId = Annotated[str, Path(pattern=m.ID_PATTERN, max_length=64)]
UserId = Annotated[str, Path(pattern=m.ID_PATTERN, max_length=64)]
DeviceId = Annotated[str, Path(pattern=m.ID_PATTERN, max_length=64)]


@router.post(
    "/v1/orgs",
    status_code=201,
    tags=["organisations"],
    responses=responses(409),
    summary="Sign up an organisation with its first admin (returns the admin's TOTP secret)",
)
async def signup(body: m.SignupRequest, relay: RelayDep, ip: IpDep) -> m.SignupResponse:
    return await relay.signup(body, ip)


@router.get("/v1/orgs/{org_id}", tags=["organisations"], responses=responses(401, 403, 404))
async def get_org(org_id: OrgId, relay: RelayDep, principal: PrincipalDep) -> m.OrgOut:
    return await relay.get_org(principal, org_id)


@router.put(
    "/v1/orgs/{org_id}/subscription",
    tags=["organisations"],
    responses=responses(401, 403, 404, 409),
)
async def set_subscription(
    org_id: OrgId, body: m.SubscriptionRequest, relay: RelayDep, principal: PrincipalDep
) -> m.OrgOut:
    return await relay.set_subscription(principal, org_id, body)


@router.get("/v1/orgs/{org_id}/members", tags=["organisations"], responses=responses(401, 403))
async def list_members(org_id: OrgId, relay: RelayDep, principal: PrincipalDep) -> m.MembersOut:
    return await relay.list_members(principal, org_id)


@router.put(
    "/v1/orgs/{org_id}/members/{user_id}",
    tags=["organisations"],
    responses={
        **responses(401, 403, 404, 409),
        202: {"model": m.MemberOut, "description": "The user belongs to another organisation: "
              "invited, joins only by accepting (status 'invited')"},
    },
    summary="Add a member, invite another organisation's user, or change a role (admin only)",
)
async def put_member(
    org_id: OrgId,
    user_id: UserId,
    body: m.MemberRequest,
    relay: RelayDep,
    principal: PrincipalDep,
    response: Response,
) -> m.MemberOut:
    out = await relay.put_member(principal, org_id, user_id, body)
    if out.status == "invited":
        response.status_code = 202
    return out


@router.delete(
    "/v1/orgs/{org_id}/members/{user_id}",
    status_code=204,
    response_class=Response,
    tags=["organisations"],
    responses=responses(401, 403, 404, 409),
)
async def remove_member(
    org_id: OrgId, user_id: UserId, relay: RelayDep, principal: PrincipalDep
) -> Response:
    await relay.remove_member(principal, org_id, user_id)
    return Response(status_code=204)


@router.get(
    "/v1/invitations",
    tags=["organisations"],
    responses=responses(401),
    summary="The caller's pending invitations from other organisations",
)
async def list_invitations(relay: RelayDep, principal: PrincipalDep) -> m.InvitationsOut:
    return await relay.list_invitations(principal)


@router.post(
    "/v1/invitations/{org_id}",
    tags=["organisations"],
    responses=responses(401, 404, 409),
    summary="Accept an invitation: join that organisation (the user's consent)",
)
async def accept_invitation(
    org_id: OrgId, relay: RelayDep, principal: PrincipalDep
) -> m.MemberOut:
    return await relay.accept_invitation(principal, org_id)


@router.delete(
    "/v1/invitations/{org_id}",
    status_code=204,
    response_class=Response,
    tags=["organisations"],
    responses=responses(401, 404),
    summary="Decline an invitation",
)
async def decline_invitation(org_id: OrgId, relay: RelayDep, principal: PrincipalDep) -> Response:
    await relay.decline_invitation(principal, org_id)
    return Response(status_code=204)


@router.post(
    "/v1/auth/otp",
    status_code=202,
    response_class=Response,
    tags=["auth"],
    responses=responses(),
    summary="Send a login OTP to a member (same answer whether or not the account exists)",
)
async def request_otp(body: m.OtpRequest, relay: RelayDep, ip: IpDep) -> Response:
    await relay.request_otp(body, ip)
    return Response(status_code=202)


@router.post("/v1/auth/login", tags=["auth"], responses=responses(401, 403))
async def login(body: m.LoginRequest, relay: RelayDep, ip: IpDep) -> m.TokenPair:
    return await relay.login(body, ip)


@router.post("/v1/auth/refresh", tags=["auth"], responses=responses(401))
async def refresh(body: m.RefreshRequest, relay: RelayDep, ip: IpDep) -> m.TokenPair:
    return await relay.refresh(body, ip)


@router.post("/v1/auth/switch-org", tags=["auth"], responses=responses(401, 403))
async def switch_org(
    body: m.SwitchOrgRequest, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.TokenPair:
    return await relay.switch_org(principal, body, ip)


@router.post(
    "/v1/auth/logout",
    status_code=204,
    response_class=Response,
    tags=["auth"],
    responses=responses(401),
)
async def logout(relay: RelayDep, principal: PrincipalDep) -> Response:
    await relay.logout(principal)
    return Response(status_code=204)


@router.post(
    "/v1/auth/totp", status_code=201, tags=["auth"], responses=responses(401, 403, 409)
)
async def enrol_totp(
    body: m.TotpEnrolRequest, relay: RelayDep, principal: PrincipalDep, ip: IpDep
) -> m.TotpEnrolmentOut:
    return await relay.enrol_totp(principal, body, ip)


@router.get("/v1/devices", tags=["devices"], responses=responses(401))
async def list_devices(relay: RelayDep, principal: PrincipalDep) -> m.DevicesOut:
    return await relay.list_devices(principal)


@router.delete(
    "/v1/devices/{device_id}",
    status_code=204,
    response_class=Response,
    tags=["devices"],
    responses=responses(401, 404),
)
async def remove_device(device_id: DeviceId, relay: RelayDep, principal: PrincipalDep) -> Response:
    await relay.remove_device(principal, device_id)
    return Response(status_code=204)
