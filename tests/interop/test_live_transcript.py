"""The recorded live run (vectors/dr-v1-live-result.json) opened through the adapter contract
by the reference and the Go adapter (docs/adapter-contract.md §6).

The transcript holds every device installation's identity keys and every prekey it made
(at installation, and later by SPK rotation or OPK top-up), so an independent implementation
can open every SMX1 envelope: X3DH with the recipient's prekeys, then the inner frames of the
initiator's first chain (a resend with the same EK_A continues the same responder session).
Every such envelope must open with each adapter and carry the content the run recorded as
decrypted: texts, and the read receipt in its documented form (kind ``receipt``, empty body,
``rcpt`` = the acknowledged message ids).
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import pytest

from .conftest import ROOT, Adapter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

TRANSCRIPT = ROOT / "vectors" / "dr-v1-live-result.json"
SMX1_HEX = b"SMX1".hex()


@pytest.fixture(params=["reference", "go"])
def adapter_command(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "go":
        return [str(request.getfixturevalue("go_adapter"))]
    return [sys.executable, "-m", "semafore.adapter"]


def _respond(
    go: Adapter,
    env: dict[str, Any],
    to: dict[str, Any],
    spk: dict[str, str],
    sender: dict[str, Any],
) -> Any:
    return go.call(
        "x3dh.respond",
        keys={
            "ik_private": to["ik_private"],
            "sik_private": to["sik_seed"],
            "spk": spk,
            "opks": [*to["opks"], *to["later_opks"]],
        },
        local_address=env["to"].replace("/", ":"),
        remote={
            "ik": sender["ik_public"],
            "sik": sender["sik_public"],
            "address": env["from"].replace("/", ":"),
        },
        smx1=env["body"],
    )


def test_each_adapter_opens_every_smx1_envelope_of_the_live_run(
    adapter_command: list[str],
) -> None:
    if not TRANSCRIPT.is_file():
        pytest.skip("no dr-v1-live-result.json in vectors/")
    case = json.loads(TRANSCRIPT.read_text())["cases"][0]
    installs: dict[str, list[dict[str, Any]]] = {}
    for ins in case["input"]["installs"]:  # a reinstalled device has several, oldest first
        installs.setdefault(ins["device"], []).append(ins)
    recorded = {(d["device"], d["message_id"]): d for d in case["expected"]["decrypted"]}
    go = Adapter(adapter_command)
    sessions: dict[tuple[str, str, str], str] = {}  # (to, from, EK_A) -> responder session
    opened: list[int] = []
    receipts: list[int] = []
    closed: list[tuple[int, str, str]] = []
    try:
        for env in case["expected"]["envelopes"]:
            if not env["body"].startswith(SMX1_HEX):
                continue
            parsed: Any = go.call("smx1.parse", data=env["body"])
            assert parsed["ok"], (env["seq"], parsed)
            # Which installation of each side was live is not recorded per envelope: the
            # AEAD decides (AD binds both identities, so only the right pair opens).
            answer: Any = {"ok": False, "error": "NoSession"}
            spk_id = parsed["result"]["spk_key_id"]
            for to in installs[env["to"]]:
                for spk in (to["spk"], *to["later_spks"]):
                    if spk["key_id"] != spk_id:
                        continue
                    for sender in installs[env["from"]]:
                        if not answer["ok"]:
                            answer = _respond(go, env, to, spk, sender)
                            spk_private = spk["private"]
            if not answer["ok"]:
                closed.append((env["seq"], parsed["result"]["spk_key_id"], answer["error"]))
                continue
            result = answer["result"]
            key = (env["to"], env["from"], parsed["result"]["ek"])
            if key not in sessions:
                init: Any = go.call(
                    "dr.init",
                    role="responder",
                    sk=result["sk"],
                    ad=result["ad"],
                    spk_private=spk_private,
                    ratchet_keys=[],
                    nonces=[],
                )
                assert init["ok"], init
                sessions[key] = init["result"]["session"]
            plain: Any = go.call("dr.decrypt", session=sessions[key], frame=result["plaintext"])
            assert plain["ok"], (env["seq"], plain)
            content = bytes.fromhex(plain["result"]["plaintext"])
            assert content.startswith(b"SFC1"), (env["seq"], content[:8])
            doc = json.loads(content[4:])
            assert content[4:] == canonical(doc), env["seq"]  # keys sorted, no spaces
            record = recorded[(env["to"], env["message_id"])]
            assert (doc["id"], doc["kind"], doc.get("sync")) == (
                env["message_id"],
                record["kind"],
                record["sync_to"],
            ), env["seq"]
            assert base64.b64decode(doc["body"]).decode() == record["body"], env["seq"]
            assert doc.get("rcpt", []) == record["receipt_for"], env["seq"]
            if doc["kind"] == "receipt":
                receipts.append(env["seq"])
                assert doc["body"] == "" and doc["rcpt"], doc
            opened.append(env["seq"])
    finally:
        go.close()
    smx1_count = sum(e["body"].startswith(SMX1_HEX) for e in case["expected"]["envelopes"])
    assert closed == [], closed
    assert len(opened) == smx1_count >= 15
    assert receipts  # the receipt reached alice/laptop, a first contact: an SMX1


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
