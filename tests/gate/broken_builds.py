"""TEST ONLY: deliberately broken builds of the reference adapter, one per gap of issue 15
item 6 (bugs an independent implementation shipped while passing all 222 earlier gate cases).

Each build is the reference adapter with one realistic defect patched into the real code path
for the duration of a ``with`` block (process-global, restored on exit): the key-id check
that only knows C0, a signer or an initiator that never validates key ids, a magic check that
calls any ``SMX``/``DRV`` prefix a version, and a retired-chain memory of the wrong size.
``semafore.sabotage`` has no switch for these (its switches sit in ``semafore/protocol``,
which these tests must not edit), so the builds live here and patch module attributes.
"""

from __future__ import annotations

import contextlib
import struct
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from semafore.adapter.args import Args
from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle
from semafore.gate.cases import GateCase
from semafore.gate.runner import run_case
from semafore.gate.transport import InProcessTransport
from semafore.gate.verdict import Verdict
from semafore.protocol import frame, keys, ratchet, smx1
from semafore.protocol.errors import MalformedEnvelope, UnsupportedVersion
from semafore.protocol.primitives import Ed25519KeyPair

KeyIdEncoder = Callable[..., bytes]


@contextlib.contextmanager
def _patched(target: object, name: str, value: object) -> Iterator[None]:
    before = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, before)


def _unchecked_key_id(key_id: str, field: str = "key_id") -> bytes:
    """Key ids taken as given: no length, UTF-8 or control-character check."""
    return key_id.encode("utf-8", "surrogatepass")


def _c0_only_key_id(key_id: str, field: str = "key_id") -> bytes:
    """A key-id check written as ``ch < " "``: length and C0 are refused, DEL and C1
    (U+007F, U+0080..U+009F, all Unicode category Cc) slip through."""
    raw = key_id.encode("utf-8")
    if not 1 <= len(raw) <= keys.MAX_KEY_ID_BYTES:
        raise MalformedEnvelope(f"{field} must be 1..255 bytes of UTF-8", field=field)
    if any(ch < " " or unicodedata.category(ch) == "Cs" for ch in key_id):
        raise MalformedEnvelope(f"{field} contains a control character", field=field)
    return raw


@contextlib.contextmanager
def _key_ids_encoded_by(encoder: KeyIdEncoder) -> Iterator[None]:
    """Every key-id check of the reference (signing, verifying, sealing and parsing SMX1)
    goes through ``keys.encode_key_id``; ``smx1`` imported it by name."""
    with _patched(keys, "encode_key_id", encoder), _patched(smx1, "encode_key_id", encoder):
        yield


def _unchecked_spk_sign(
    sik: Ed25519KeyPair, key_id: str, spk_public: bytes, ik_public: bytes
) -> bytes:
    raw = _unchecked_key_id(key_id)
    return sik.sign(
        keys.SPK_SIGNATURE_DOMAIN + struct.pack(">H", len(raw)) + raw + spk_public + ik_public
    )


def _version_blind(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A magic check shared by both parsers: any known family prefix with a version byte
    other than ``1`` is called a newer version, whichever parser was asked."""

    def parse_any_family(data: bytes) -> Any:
        head = bytes(data[:4])
        if len(head) == 4 and head[:3] in (b"SMX", b"DRV") and head[3:] != b"1":
            raise UnsupportedVersion(f"{head!r} is a newer version", field="magic")
        return parse(data)

    return parse_any_family


@dataclass(frozen=True)
class BrokenBuild:
    """One defect, how to build it, and the gate cases that must turn red under it."""

    name: str
    defect: str
    catches: frozenset[str]  # full case ids (file:id); every other case must still pass
    patch: Callable[[ReferenceAdapter], contextlib.AbstractContextManager[None]]


def _key_ids_c0_only(_: ReferenceAdapter) -> contextlib.AbstractContextManager[None]:
    return _key_ids_encoded_by(_c0_only_key_id)


def _sign_unchecked(_: ReferenceAdapter) -> contextlib.AbstractContextManager[None]:
    from semafore.adapter import ops

    return _patched(ops, "sign_spk", _unchecked_spk_sign)


@contextlib.contextmanager
def _initiate_unchecked(adapter: ReferenceAdapter) -> Iterator[None]:
    initiate = adapter.ops["x3dh.initiate"]

    def unchecked(args: Args) -> dict[str, Any]:
        with _key_ids_encoded_by(_unchecked_key_id):
            return initiate(args)

    with _patched(adapter, "ops", {**adapter.ops, "x3dh.initiate": unchecked}):
        yield


@contextlib.contextmanager
def _family_blind_magic(_: ReferenceAdapter) -> Iterator[None]:
    with (
        _patched(smx1, "parse", _version_blind(smx1.parse)),
        _patched(frame, "parse", _version_blind(frame.parse)),
    ):
        yield


def _retired_chains(size: int) -> Callable[[ReferenceAdapter], Any]:
    def build(_: ReferenceAdapter) -> contextlib.AbstractContextManager[None]:
        return _patched(ratchet, "MAX_PREVIOUS_CHAINS", size)

    return build


X3DH, DR = "x3dh-prekey-v1", "dr-v1-interop"
C1_PARSE = {f"{X3DH}:spk-key-id-c1-nel", f"{X3DH}:opk-key-id-c1-009f", f"{X3DH}:spk-key-id-del"}
SIGN = {
    f"{X3DH}:sign-key-id-c1-nel",
    f"{X3DH}:sign-key-id-c1-009f",
    f"{X3DH}:sign-key-id-256-bytes",
    f"{X3DH}:sign-key-id-empty",
}
INITIATE = {
    f"{X3DH}:initiate-spk-key-id-c1-nel",
    f"{X3DH}:initiate-spk-key-id-256-bytes",
    f"{X3DH}:initiate-opk-key-id-c1-009f",
    f"{X3DH}:initiate-opk-key-id-256-bytes",
}
RETIRED_5_BACK = f"{DR}:duplicates-retired-chains"
FORGOTTEN = f"{DR}:forgotten-chain-beyond-max-skip"
UNBOUNDED = sys.maxsize

BUILDS: tuple[BrokenBuild, ...] = (
    BrokenBuild(
        "key-ids-c0-only",
        "key ids are checked for C0 controls only: U+007F and C1 (U+0085, U+009F) pass",
        frozenset(
            C1_PARSE
            | {f"{X3DH}:sign-key-id-c1-nel", f"{X3DH}:sign-key-id-c1-009f"}
            | {f"{X3DH}:initiate-spk-key-id-c1-nel", f"{X3DH}:initiate-opk-key-id-c1-009f"}
        ),
        _key_ids_c0_only,
    ),
    BrokenBuild(
        "spk-sign-unchecked",
        "spk.sign signs any key id (empty, 256 bytes, control characters)",
        frozenset(SIGN),
        _sign_unchecked,
    ),
    BrokenBuild(
        "initiate-unchecked",
        "x3dh.initiate neither validates the bundle's key ids nor the ones it seals into SMX1",
        frozenset(INITIATE),
        _initiate_unchecked,
    ),
    BrokenBuild(
        "magic-family-blind",
        "both parsers answer UnsupportedVersion for SMX<v> and DRV<v> alike",
        frozenset({f"{X3DH}:magic-drv2", f"{DR}:frame-magic-smx2"}),
        _family_blind_magic,
    ),
    *(
        BrokenBuild(
            f"retired-chains-{size}",
            f"the ratchet remembers {size} retired receiving chains instead of 5",
            frozenset({RETIRED_5_BACK}),
            _retired_chains(size),
        )
        for size in (2, 3, 4)
    ),
    *(
        BrokenBuild(
            f"retired-chains-{'unbounded' if size == UNBOUNDED else size}",
            "the ratchet remembers "
            + ("every retired chain" if size == UNBOUNDED else f"{size} retired chains")
            + " instead of 5",
            frozenset({RETIRED_5_BACK, FORGOTTEN}),
            _retired_chains(size),
        )
        for size in (6, 7, 50, UNBOUNDED)
    ),
)
"""Every broken build; :data:`NEW_CASES` is exactly what they catch together."""

NEW_CASES = frozenset().union(*(build.catches for build in BUILDS))


def failing_cases(build: BrokenBuild, cases: list[GateCase]) -> dict[str, str]:
    """Run ``cases`` in-process against the reference adapter with ``build``'s defect in:
    the full case id and verdict detail of every case that does not pass."""
    adapter = ReferenceAdapter()
    failures: dict[str, str] = {}
    with build.patch(adapter):
        transport = InProcessTransport(lambda request: handle(adapter, request))
        for case in cases:
            result = run_case(transport, case, build.name, timeout_s=120.0)
            if result.verdict is not Verdict.PASS:
                failures[case.full_id] = f"{result.verdict.value}: {result.detail}"
    return failures
