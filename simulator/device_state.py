"""Backups of a reference device's state, put back later or onto another device (issue #15
item 4: restore from an older backup, a cloned device).

A backup holds what an app's backup holds: the serialized device (identity, prekeys,
sessions; Device.serialize) — never the random source. Putting it back onto the same
device rolls its sessions back to the backup (the field bug class "Bad MAC after restore");
putting it onto another device of the same user makes a clone: that device keeps its own
address and relay login, takes the original's identity and sessions, and publishes the
cloned identity and prekeys (its peers see an identity change, seed §4.5).

Either way the device re-derives message keys it already used (SPEC §3): only the random
nonce keeps AES-GCM safe, which ``no_key_nonce_reuse`` (simulator.nonce_reuse) checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from semafore.client import DeviceClient
from semafore.client.device import Device


@dataclass(frozen=True)
class Backup:
    """One device's state at one moment."""

    address: str
    state: bytes


def take(client: DeviceClient) -> Backup:
    return Backup(client.address, client.device.serialize())


async def put_back(client: DeviceClient, backup: Backup, otp: str) -> None:
    """Replace ``client``'s state with ``backup``: its own (a restore keeps the relay login
    and registration), or another device's (a clone: the relay never lets a registered
    device change identity keys, so the install unregisters, logs in again with ``otp`` and
    publishes the cloned identity and prekeys, as a copied app would on first launch)."""
    restored = Device.parse(backup.state)
    current = client.device
    restored = dataclasses.replace(restored, user_id=current.user_id,
                                   device_id=current.device_id,
                                   registration_id=current.registration_id)
    if backup.address == client.address:
        client.device = restored
        return
    await client.remove_device(current.device_id)
    client.device = restored
    await client.register(otp)


__all__ = ["Backup", "put_back", "take"]
