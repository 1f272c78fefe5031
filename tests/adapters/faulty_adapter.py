"""A deliberately broken platform adapter: the reference adapter with one injected fault.

    python tests/adapters/faulty_adapter.py --fault NAME [--op OP] [--at N] [--once PATH]

Protocol faults (a real implementation bug, on every request):
  flip-ciphertext       dr.encrypt returns its frame with the last ciphertext byte flipped
  wrong-hkdf-info       X3DH derives SK with info "SemaFore-X3DH-v2" instead of "-v1"
  skip-signature-check  x3dh.initiate accepts any SPK signature
  no-dr                 lists the dr.* operations in capabilities but answers Unsupported
Live faults (the live matrix, docs/gate.md; each a real interop bug):
  nonce-reuse               every live device draws the same 12-byte AEAD nonce
  no-smx1-resend            the initiator wraps only its first message in SMX1, so a lost
                            first message leaves the peer unable to bootstrap
  wrong-ratchet-step-order  KDF_RK's outputs are taken in the wrong order (the new root key
                            becomes the chain key and vice versa) at every DH ratchet step
  drop-skipped-keys         skipped message keys are never stored (out-of-order loses messages)
  no-live                   lists no live operations (the matrix must say unsupported)
  leak-plaintext            after each live.send, uploads the plaintext unencrypted as an
                            attachment (the conversation works; only the oracle can see it)
  hide-sync-copies          live.send sends the sync copies to the sender's own devices but
                            leaves them out of its result (the wire scan would miss them)
Process faults (fire at the N-th request whose op is OP; with --once only in the first
process that reaches it, so the restarted adapter is healthy):
  crash      exit with status 3 without answering
  hang       stop answering (sleeps until killed)
  garbage    answer with a line that is not JSON
  wrong-id   answer with another request's id
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from semafore.adapter import live
from semafore.adapter.args import Args
from semafore.adapter.ops import ReferenceAdapter
from semafore.adapter.server import handle_line
from semafore.protocol import ratchet, session_cipher, x3dh
from semafore.protocol.entropy import Entropy
from semafore.protocol.keys import PreKeyBundle

PROTOCOL_FAULTS = ("flip-ciphertext", "wrong-hkdf-info", "skip-signature-check", "no-dr")
LIVE_FAULTS = (
    "nonce-reuse", "no-smx1-resend", "wrong-ratchet-step-order", "drop-skipped-keys", "no-live",
    "leak-plaintext", "hide-sync-copies",
)
PROCESS_FAULTS = ("crash", "hang", "garbage", "wrong-id")


class FaultyAdapter(ReferenceAdapter):
    def __init__(self, fault: str) -> None:
        super().__init__()
        if fault == "flip-ciphertext":
            self.ops["dr.encrypt"] = self._flipped_encrypt
        elif fault == "wrong-hkdf-info":
            x3dh.X3DH_INFO = b"SemaFore-X3DH-v2"  # the bug: a wrong HKDF info string
        elif fault == "skip-signature-check":
            PreKeyBundle.verify = lambda self: None  # type: ignore[method-assign]
        elif fault == "no-dr":
            listed = self.capabilities(Args({}))
            for op in [op for op in self.ops if op.startswith("dr.")]:
                del self.ops[op]
            self.ops["capabilities"] = lambda args: listed
        elif fault in LIVE_FAULTS:
            install_live_fault(fault, self)

    def _flipped_encrypt(self, args: Args) -> dict[str, Any]:
        frame = bytearray.fromhex(self.dr_encrypt(args)["frame"])
        frame[-1] ^= 0x01
        return {"frame": frame.hex()}


class _FixedNonce:
    """Entropy that repeats one nonce: the bug a platform has when it seeds per process."""

    def __init__(self, inner: Entropy) -> None:
        self._inner = inner

    def random_bytes(self, n: int, purpose: str) -> bytes:
        return b"\x42" * n if purpose == "nonce" else self._inner.random_bytes(n, purpose)


def install_live_fault(fault: str, adapter: ReferenceAdapter) -> None:
    if fault == "nonce-reuse":
        real_entropy = live._entropy
        live._entropy = lambda *a: _FixedNonce(real_entropy(*a))
    elif fault == "no-smx1-resend":
        real_encrypt = session_cipher.encrypt

        def encrypt_once(record: Any, plaintext: bytes, entropy: Entropy) -> bytes:
            out = real_encrypt(record, plaintext, entropy)
            if record.current is not None and record.current.wraps_in_smx1:
                record.current.bootstrap = None  # the bug: stop wrapping after one SMX1
            return out

        session_cipher.encrypt = encrypt_once
    elif fault == "wrong-ratchet-step-order":
        real_kdf_rk = ratchet.kdf_rk

        def swapped(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
            root, chain = real_kdf_rk(rk, dh_out)
            return chain, root

        ratchet.kdf_rk = swapped
    elif fault == "drop-skipped-keys":
        ratchet.RatchetState._store_skipped = lambda self, items: None  # type: ignore[method-assign]
    elif fault == "leak-plaintext":
        real_send = adapter.ops["live.send"]

        def leaky_send(args: Args) -> dict[str, Any]:
            result = real_send(args)
            client = adapter.live._devices[args.text("device")].connected()
            plaintext = args.hex("plaintext")

            async def upload() -> None:
                created = await client.http.json(
                    "POST", "/v1/attachments",
                    json={"size": len(plaintext),
                          "sha256": base64.b64encode(hashlib.sha256(plaintext).digest()).decode(),
                          "recipients": [args.text("to")]},
                )
                await client.http.call(
                    "PUT", f"/v1/attachments/{created['file_id']}", content=plaintext,
                    headers={"Content-Type": "application/octet-stream"},
                )

            adapter.live._run(upload())
            return result

        adapter.ops["live.send"] = leaky_send
    elif fault == "hide-sync-copies":
        real_send = adapter.ops["live.send"]

        def hiding_send(args: Args) -> dict[str, Any]:
            result = real_send(args)
            result["envelopes"] = [e for e in result["envelopes"] if not e.get("sync")]
            return result

        adapter.ops["live.send"] = hiding_send
    elif fault == "no-live":
        for op in [op for op in adapter.ops if op.startswith("live.")]:
            del adapter.ops[op]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--fault", required=True, choices=PROTOCOL_FAULTS + LIVE_FAULTS + PROCESS_FAULTS
    )
    parser.add_argument("--op", default=None, help="process faults: only count this op")
    parser.add_argument("--at", type=int, default=1, help="process faults: fire at the N-th")
    parser.add_argument("--once", type=Path, default=None, help="marker file: fire only once")
    opts = parser.parse_args()
    adapter = FaultyAdapter(opts.fault)
    seen = 0
    for line in sys.stdin.buffer:
        request = json.loads(line)
        if opts.fault in PROCESS_FAULTS and (opts.op is None or request.get("op") == opts.op):
            seen += 1
            if seen == opts.at and not (opts.once and opts.once.exists()):
                if opts.once:
                    opts.once.touch()
                fire(opts.fault, request)
                continue
        response = handle_line(adapter, line)
        sys.stdout.write(json.dumps(response) + "\n")
        sys.stdout.flush()
    return 0


def fire(fault: str, request: dict[str, Any]) -> None:
    if fault == "crash":
        sys.stderr.write("faulty adapter: simulated crash\n")
        sys.stderr.flush()
        os._exit(3)
    if fault == "hang":
        while True:
            time.sleep(60)
    if fault == "garbage":
        sys.stdout.write("Segmentation fault (core dumped)\n")
    elif fault == "wrong-id":
        sys.stdout.write(json.dumps({"id": -1, "ok": True, "result": {}}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
