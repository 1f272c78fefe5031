"""The recipient device set: which of a user's devices a sender must (and can) encrypt to.

Seed §4.2: a message to a user is encrypted once per recipient device, each over its own
X3DH-bootstrapped session; SPEC §1: a session starts from a bundle, which needs the device's
identity keys (IK, SIK) and a signed prekey (OPKs are optional). So a device is in its user's
recipient device set exactly when it is **registered** (it logged in and was given a
registration id) **and has published an identity and a signed prekey**. A device that
logged in but never published (a fresh install that crashed before its first key upload, a
client that only reads) cannot be encrypted to, so it is not in the set.

This is the one definition both sides of Signal's device-set protocol use
(docs/server.md "Recipient device set"): the send check (409 ``missing`` / ``extra``, 410
``stale``) and the key directory (bundles, identity lookups). If the two disagreed, a sender
told a device is ``missing`` could never fetch its bundle and would give up
("device set kept changing"): the user would be unreachable.
"""

from __future__ import annotations

from semafore.storage.ports import Device, Stores


async def recipient_devices(stores: Stores, user_id: str) -> dict[str, Device]:
    """The user's recipient devices by id: registered and keyed (module docstring).

    Two store reads whatever the number of devices: the account store's device list and
    the key store's :meth:`~semafore.storage.ports.KeyStore.published_devices`."""
    registered = await stores.accounts.list_devices(user_id)
    if not registered:
        return {}
    published = await stores.keys.published_devices(user_id)
    return {d.device_id: d for d in registered if d.device_id in published}
