"""Reference SemaFore client SDK (issue 5): devices, accounts, transport (docs/client.md)."""

from semafore.client.account import Account, create_organisation, enrol_members, fixed_otp
from semafore.client.client import ClientEvent, DeviceClient, Received, SendResult
from semafore.client.clock import Clock, ManualClock, SystemClock
from semafore.client.content import AttachmentPointer, Content
from semafore.client.device import Device, IdentityPolicy, PrekeyPolicy
from semafore.client.errors import (
    AttachmentError,
    ClientError,
    DeliveryFailed,
    MalformedClientState,
    MalformedContent,
    ServerRejected,
    TransportError,
)

__all__ = [
    "Account",
    "AttachmentError",
    "AttachmentPointer",
    "ClientError",
    "ClientEvent",
    "Clock",
    "Content",
    "DeliveryFailed",
    "Device",
    "DeviceClient",
    "IdentityPolicy",
    "MalformedClientState",
    "MalformedContent",
    "ManualClock",
    "PrekeyPolicy",
    "Received",
    "SendResult",
    "ServerRejected",
    "SystemClock",
    "TransportError",
    "create_organisation",
    "enrol_members",
    "fixed_otp",
]
