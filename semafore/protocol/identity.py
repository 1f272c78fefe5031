"""Trust on first use for remote device identities (SPEC §2: SMX1 carries no identity key).

The recipient resolves ``IK_A``/``SIK_A`` for the sender device named in the outer envelope;
the first pair seen for an address is pinned, and a different pair later raises
``UntrustedIdentity`` unless the caller's policy accepts the change (e.g. a verified reinstall).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from semafore import sabotage
from semafore.protocol.errors import UntrustedIdentity


@dataclass(frozen=True)
class RemoteIdentity:
    ik: bytes
    sik: bytes


@dataclass
class IdentityStore:
    trusted: dict[str, RemoteIdentity] = field(default_factory=dict)

    def check(self, address: str, identity: RemoteIdentity, *, accept_change: bool = False) -> bool:
        """Pin on first use; return True if the identity changed and ``accept_change`` let it."""
        known = self.trusted.get(address)
        if known is None:
            self.trusted[address] = identity
            return False
        same = hmac.compare_digest(known.ik + known.sik, identity.ik + identity.sik)
        if same:
            return False
        if sabotage.active("client.ignores_identity_change"):  # pragma: no mutate
            self.trusted[address] = identity  # pragma: no mutate (silently re-pinned)
            return False  # pragma: no mutate
        if not accept_change:
            raise UntrustedIdentity(f"identity keys of {address} changed", field="identity")
        self.trusted[address] = identity
        return True
