"""The reference adapter's operations (SPEC §7), one function per contract operation.

Each handler takes the request's ``args`` and returns the ``result`` object; protocol errors
propagate as :class:`ProtocolError` and become ``{"ok": false, "error": <name>}``. DR sessions
live in this process under opaque handles. Their randomness is *scripted*: ``dr.init`` lists
the ratchet private keys and nonces the session will draw, and a draw is consumed only by an
operation that succeeds (the reference ratchet draws after authenticating, SPEC §3), so a
rejected frame never shifts the script. ``docs/adapter-contract.md`` is the normative text.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from semafore import __version__
from semafore.adapter.args import Args, BadArgument
from semafore.adapter.live import LiveOps
from semafore.adapter.live_extras import FurtherOps
from semafore.protocol import frame as drv1
from semafore.protocol import smx1, x3dh
from semafore.protocol.entropy import EntropyExhausted, ScriptedEntropy
from semafore.protocol.errors import NoSession
from semafore.protocol.keys import (
    DeviceKeys,
    IdentityKeys,
    OneTimePrekey,
    PreKeyBundle,
    PublicOneTimePrekey,
    PublicSignedPrekey,
    SignedPrekey,
    sign_spk,
)
from semafore.protocol.primitives import (
    Ed25519KeyPair,
    X25519KeyPair,
    aead_open,
    aead_seal,
    ed25519_verify,
    hkdf,
    hmac_sha256,
)
from semafore.protocol.ratchet import RatchetState

ADAPTER_NAME = "semafore-reference"
Handler = Callable[[Args], dict[str, Any]]
_T = TypeVar("_T")
_SCRIPT_ARGS = {"ratchet_key": "args.ratchet_keys", "nonce": "args.nonces"}
"""Draw purpose -> the ``dr.init`` argument that scripts it."""


def _hex_all(values: Iterable[bytes]) -> list[str]:
    return [value.hex() for value in values]


class _Script:
    """The randomness a session is scripted to draw; consumed only by successful operations."""

    def __init__(self, ratchet_keys: list[bytes], nonces: list[bytes]) -> None:
        self._queues = {"ratchet_key": deque(ratchet_keys), "nonce": deque(nonces)}

    def attempt(self) -> ScriptedEntropy:
        return ScriptedEntropy({purpose: list(q) for purpose, q in self._queues.items()})

    def commit(self, entropy: ScriptedEntropy) -> None:
        for purpose, _value in entropy.drawn:
            self._queues[purpose].popleft()

    def run(self, operation: Callable[[ScriptedEntropy], _T]) -> _T:
        """Run ``operation`` on the script; its draws are consumed only if it succeeds.

        Running out is ``MalformedEnvelope`` naming the request list that ran out
        (``args.nonces`` / ``args.ratchet_keys``), never a name outside SPEC §5: the
        request did not carry enough values (docs/adapter-contract.md, ``dr.init``).
        """
        entropy = self.attempt()
        try:
            result = operation(entropy)
        except EntropyExhausted as exc:
            field = _SCRIPT_ARGS.get(exc.field or "", "args")
            raise BadArgument(f"{field}: {exc.detail}", field=field) from None
        self.commit(entropy)
        return result


@dataclass
class _Session:
    state: RatchetState
    script: _Script


class ReferenceAdapter:
    """Operation table and per-process state (DR sessions) of the reference adapter."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._next_handle = 1
        self.ops: dict[str, Handler] = {
            "capabilities": self.capabilities,
            "spk.sign": self.spk_sign,
            "x3dh.initiate": self.x3dh_initiate,
            "x3dh.respond": self.x3dh_respond,
            "smx1.parse": self.smx1_parse,
            "drv1.parse": self.drv1_parse,
            "dr.init": self.dr_init,
            "dr.encrypt": self.dr_encrypt,
            "dr.decrypt": self.dr_decrypt,
            "session.digest": self.session_digest,
            "session.close": self.session_close,
            "x25519.public": self.x25519_public,
            "x25519.dh": self.x25519_dh,
            "ed25519.sign": self.ed25519_sign,
            "ed25519.verify": self.ed25519_verify,
            "hkdf": self.hkdf,
            "hmac": self.hmac,
            "aead.seal": self.aead_seal,
            "aead.open": self.aead_open,
        }
        self.live = LiveOps()
        self.ops.update(FurtherOps(self.live).handlers())
        self.ops.update(self.live.handlers())

    # -- discovery ------------------------------------------------------------------------

    def capabilities(self, args: Args) -> dict[str, Any]:
        return {
            "name": ADAPTER_NAME,
            "version": __version__,
            "protocol": "SemaFore wire protocol v1",
            "ops": sorted(self.ops),
        }

    # -- X3DH / SMX1 (SPEC §1, §2) --------------------------------------------------------

    def spk_sign(self, args: Args) -> dict[str, Any]:
        sik = Ed25519KeyPair(args.hex("sik_private", 32))
        sig = sign_spk(sik, args.text("key_id"), args.hex("spk_public"), args.hex("ik_public"))
        return {"sig": sig.hex()}

    def x3dh_initiate(self, args: Args) -> dict[str, Any]:
        identity_args = args.obj("identity")
        identity = IdentityKeys(
            X25519KeyPair.from_private(identity_args.hex("ik_private", 32)),
            Ed25519KeyPair(identity_args.hex("sik_private", 32)),
        )
        bundle = _bundle(args.obj("bundle"))
        ephemeral = X25519KeyPair.from_private(args.hex("ek_private", 32))
        result = x3dh.initiate(identity, args.text("local_address"), bundle, ephemeral)
        envelope = smx1.seal(
            result.sk,
            result.ad,
            result.ephemeral_public,
            result.spk_key_id,
            result.opk_key_id,
            args.hex("nonce", 12),
            args.hex("plaintext"),
        )
        return {
            "ek_public": result.ephemeral_public.hex(),
            "dh": _hex_all(result.dh),
            "sk": result.sk.hex(),
            "ad": result.ad.hex(),
            "rk0": result.rk0.hex(),
            "smx1": envelope.hex(),
        }

    def x3dh_respond(self, args: Args) -> dict[str, Any]:
        keys = _device_keys(args.obj("keys"))
        remote = args.obj("remote")
        envelope = smx1.parse(args.hex("smx1"))
        result = x3dh.respond(
            keys,
            args.text("local_address"),
            remote.hex("ik"),
            remote.hex("sik"),
            remote.text("address"),
            envelope.ephemeral,
            envelope.spk_key_id,
            envelope.opk_key_id,
        )
        plaintext = smx1.open_envelope(envelope, result.sk, result.ad)
        return {
            "dh": _hex_all(result.dh),
            "sk": result.sk.hex(),
            "ad": result.ad.hex(),
            "rk0": result.rk0.hex(),
            "spk_key_id": result.spk_key_id,
            "opk_key_id": result.opk_key_id,
            "plaintext": plaintext.hex(),
        }

    def smx1_parse(self, args: Args) -> dict[str, Any]:
        envelope = smx1.parse(args.hex("data"))
        return {
            "flags": envelope.flags,
            "ek": envelope.ephemeral.hex(),
            "spk_key_id": envelope.spk_key_id,
            "opk_key_id": envelope.opk_key_id,
            "nonce": envelope.nonce.hex(),
            "ciphertext": envelope.ciphertext.hex(),
        }

    def drv1_parse(self, args: Args) -> dict[str, Any]:
        parsed = drv1.parse(args.hex("data"))
        return {
            "ratchet_key": parsed.ratchet_key.hex(),
            "pn": parsed.pn,
            "n": parsed.n,
            "nonce": parsed.nonce.hex(),
            "ciphertext": parsed.ciphertext.hex(),
        }

    # -- Double Ratchet (SPEC §3) ---------------------------------------------------------

    def dr_init(self, args: Args) -> dict[str, Any]:
        role = args.text("role")
        sk, ad = args.hex("sk", 32), args.hex("ad")
        script = _Script(args.hex_list("ratchet_keys"), args.hex_list("nonces"))
        if role == "initiator":
            remote = args.hex("remote_ratchet_key", 32)
            state = script.run(lambda entropy: RatchetState.initiator(sk, ad, remote, entropy))
            session = _Session(state, script)
        elif role == "responder":
            spk = X25519KeyPair.from_private(args.hex("spk_private", 32))
            session = _Session(RatchetState.responder(sk, ad, spk), script)
        else:
            raise BadArgument("role must be 'initiator' or 'responder'", field="args.role")
        handle = f"s{self._next_handle}"
        self._next_handle += 1
        self._sessions[handle] = session
        return {"session": handle}

    def _session(self, args: Args) -> _Session:
        handle = args.text("session")
        try:
            return self._sessions[handle]
        except KeyError:
            raise NoSession(f"no session with handle {handle!r}", field="args.session") from None

    def dr_encrypt(self, args: Args) -> dict[str, Any]:
        session = self._session(args)
        plaintext = args.hex("plaintext")
        frame = session.script.run(lambda entropy: session.state.encrypt(plaintext, entropy))
        return {"frame": frame.hex()}

    def dr_decrypt(self, args: Args) -> dict[str, Any]:
        session = self._session(args)
        plaintext = session.state.decrypt(args.hex("frame"))  # draws nothing (SPEC §3)
        return {"plaintext": plaintext.hex()}

    def session_digest(self, args: Args) -> dict[str, Any]:
        if args.has("device"):  # a live device's current session with args.remote
            return self.live.digest(args)
        return {"digest": self._session(args).state.digest().hex()}

    def session_close(self, args: Args) -> dict[str, Any]:
        self._session(args)
        del self._sessions[args.text("session")]
        return {}

    # -- primitives (optional; lets the gate run primitive-level suites) ------------------

    def x25519_public(self, args: Args) -> dict[str, Any]:
        return {"public": X25519KeyPair.from_private(args.hex("private", 32)).public.hex()}

    def x25519_dh(self, args: Args) -> dict[str, Any]:
        pair = X25519KeyPair.from_private(args.hex("private", 32))
        return {"shared": pair.dh(args.hex("public")).hex()}

    def ed25519_sign(self, args: Args) -> dict[str, Any]:
        pair = Ed25519KeyPair(args.hex("private", 32))
        return {"public": pair.public.hex(), "sig": pair.sign(args.hex("message")).hex()}

    def ed25519_verify(self, args: Args) -> dict[str, Any]:
        ed25519_verify(args.hex("public"), args.hex("sig"), args.hex("message"))
        return {}

    def hkdf(self, args: Args) -> dict[str, Any]:
        length = args.integer("length")
        if not 0 < length <= 255 * 32:
            raise BadArgument("length must be 1..8160", field="args.length")
        okm = hkdf(args.hex("ikm"), args.hex("salt"), args.hex("info"), length)
        return {"okm": okm.hex()}

    def hmac(self, args: Args) -> dict[str, Any]:
        return {"mac": hmac_sha256(args.hex("key"), args.hex("data")).hex()}

    def aead_seal(self, args: Args) -> dict[str, Any]:
        out = aead_seal(
            args.hex("key", 32), args.hex("nonce", 12), args.hex("plaintext"), args.hex("aad")
        )
        return {"ciphertext": out.hex()}

    def aead_open(self, args: Args) -> dict[str, Any]:
        out = aead_open(
            args.hex("key", 32), args.hex("nonce", 12), args.hex("ciphertext"), args.hex("aad")
        )
        return {"plaintext": out.hex()}


def _bundle(args: Args) -> PreKeyBundle:
    spk = args.obj("spk")
    opk = args.optional_obj("opk")
    return PreKeyBundle(
        args.text("user_id"),
        args.text("device_id"),
        args.hex("ik"),
        args.hex("sik"),
        PublicSignedPrekey(spk.text("key_id"), spk.hex("pub"), spk.hex("sig")),
        None if opk is None else PublicOneTimePrekey(opk.text("key_id"), opk.hex("pub")),
    )


def _device_keys(args: Args) -> DeviceKeys:
    identity = IdentityKeys(
        X25519KeyPair.from_private(args.hex("ik_private", 32)),
        Ed25519KeyPair(args.hex("sik_private", 32)),
    )
    spk_args = args.obj("spk")
    spk_pair = X25519KeyPair.from_private(spk_args.hex("private", 32))
    key_id = spk_args.text("key_id")
    spk = SignedPrekey(
        key_id, spk_pair, sign_spk(identity.sik, key_id, spk_pair.public, identity.ik.public)
    )
    opks = {}
    for item in args.objs("opks"):
        opk_id = item.text("key_id")
        opks[opk_id] = OneTimePrekey(opk_id, X25519KeyPair.from_private(item.hex("private", 32)))
    return DeviceKeys(identity, spk, opks=opks)
