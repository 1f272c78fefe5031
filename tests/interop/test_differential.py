"""Differential properties: the reference and the Go adapter answer *identically*.

The pinned vectors fix a few hundred paths; these properties let hypothesis choose the paths:
any schedule of sends, out-of-order and duplicate deliveries, tampered frames and digests
produces byte-identical frames, plaintexts, digests and error names from both
implementations, and any mutation of an SMX1 or DR_V1 envelope is judged the same way.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from .conftest import ROOT, Adapter

# A cold Go build (toolchain std cache empty) takes ~1 min of wall time on a loaded 2-core CI
# runner and `go test` compiles its own binaries: allow more than the suite default.
pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Pair:
    """The two adapters, fed the same requests; every answer is compared on the spot."""

    def __init__(self, go_adapter: Path) -> None:
        self.ref = Adapter(shlex.split(f"{shlex.quote(sys.executable)} -m semafore.adapter"))
        self.go = Adapter([str(go_adapter)])

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Run op on both; assert the same outcome; return the reference's answer."""
        ref, go = self.ref.call(op, **args), self.go.call(op, **args)
        assert (ref["ok"], ref.get("error"), ref.get("result")) == (
            go["ok"],
            go.get("error"),
            go.get("result"),
        ), f"{op} {json.dumps(args)[:300]}\n ref: {ref}\n  go: {go}"
        return ref

    def call_sessions(self, op: str, handles: tuple[str, str], **args: Any) -> dict[str, Any]:
        """Like call, for session ops whose handle may differ between the adapters."""
        ref = self.ref.call(op, session=handles[0], **args)
        go = self.go.call(op, session=handles[1], **args)
        event(f"{op}: {ref.get('error', 'ok')}")
        assert (ref["ok"], ref.get("error"), ref.get("result")) == (
            go["ok"],
            go.get("error"),
            go.get("result"),
        ), f"{op} {json.dumps(args)[:300]}\n ref: {ref}\n  go: {go}"
        return ref

    def close(self) -> None:
        self.ref.close()
        self.go.close()


@pytest.fixture(scope="module")
def pair(go_adapter: Path) -> Iterator[Pair]:
    p = Pair(go_adapter)
    yield p
    p.close()


def scripted(seed: bytes, label: str, n: int, size: int) -> list[str]:
    """n pseudo-random values derived from one drawn seed (keeps hypothesis' choices small)."""
    return [
        hashlib.sha256(b"%s|%s|%d" % (seed, label.encode(), i)).digest()[:size].hex()
        for i in range(n)
    ]


def init_session(pair: Pair, role: str, args: dict[str, Any]) -> tuple[str, str]:
    ref = pair.ref.call("dr.init", role=role, **args)
    go = pair.go.call("dr.init", role=role, **args)
    assert ref["ok"] and go["ok"], (ref, go)
    return (ref["result"]["session"], go["result"]["session"])  # type: ignore[index]


@SETTINGS
@given(data=st.data())
def test_any_conversation_is_byte_identical(pair: Pair, data: st.DataObject) -> None:
    draw = data.draw
    seed = draw(st.binary(min_size=4, max_size=4))
    sk, ad = bytes.fromhex(scripted(seed, "sk", 1, 32)[0]), draw(st.binary(max_size=200))
    bob_spk = scripted(seed, "spk", 1, 32)[0]
    common = {"sk": sk.hex(), "ad": ad.hex()}
    bob_pub = _x25519_public(bob_spk)  # the initiator's remote_ratchet_key
    alice = init_session(
        pair,
        "initiator",
        {
            **common,
            "remote_ratchet_key": bob_pub,
            "ratchet_keys": scripted(seed, "alice-dh", 40, 32),
            "nonces": scripted(seed, "alice-nonce", 120, 12),
        },
    )
    bob = init_session(
        pair,
        "responder",
        {
            **common,
            "spk_private": bob_spk,
            "ratchet_keys": scripted(seed, "bob-dh", 40, 32),
            "nonces": scripted(seed, "bob-nonce", 120, 12),
        },
    )
    sides = {"alice": alice, "bob": bob}
    other = {"alice": "bob", "bob": "alice"}
    in_flight: dict[str, list[str]] = {"alice": [], "bob": []}  # frames addressed to a side
    delivered: dict[str, list[str]] = {"alice": [], "bob": []}
    steps = draw(st.integers(min_value=1, max_value=60))
    for _ in range(steps):
        side = draw(st.sampled_from(["alice", "bob"]))
        action = draw(
            st.sampled_from(["send", "send", "deliver", "deliver", "replay", "tamper", "digest"])
        )
        if action == "send":
            plaintext = draw(st.binary(max_size=64)).hex()
            answer = pair.call_sessions("dr.encrypt", sides[side], plaintext=plaintext)
            if answer["ok"]:
                in_flight[other[side]].append(answer["result"]["frame"])
        elif action == "deliver" and in_flight[side]:
            frame = in_flight[side].pop(draw(st.integers(0, len(in_flight[side]) - 1)))
            pair.call_sessions("dr.decrypt", sides[side], frame=frame)
            delivered[side].append(frame)
        elif action == "replay" and delivered[side]:
            frame = draw(st.sampled_from(delivered[side]))
            pair.call_sessions("dr.decrypt", sides[side], frame=frame)
        elif action == "tamper" and (in_flight[side] or delivered[side]):
            forged = bytearray.fromhex(draw(st.sampled_from(in_flight[side] + delivered[side])))
            at = draw(st.integers(0, len(forged) - 1))
            forged[at] ^= draw(st.integers(1, 255))
            pair.call_sessions("dr.decrypt", sides[side], frame=forged.hex())
        else:
            pair.call_sessions("session.digest", sides[side])
    for handles in sides.values():
        pair.call_sessions("session.digest", handles)
        pair.call_sessions("session.close", handles)


def _x25519_public(private_hex: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _x3dh_case() -> dict[str, Any]:
    doc = json.loads((ROOT / "vectors" / "x3dh-prekey-v1.json").read_text())
    case: dict[str, Any] = doc["cases"][0]
    return case


def _mutations() -> st.SearchStrategy[tuple[str, int, int]]:
    return st.tuples(
        st.sampled_from(["flip", "truncate", "insert", "delete"]),
        st.integers(min_value=0, max_value=400),
        st.integers(min_value=1, max_value=255),
    )


def _mutate(data: bytes, how: tuple[str, int, int]) -> bytes:
    kind, at, value = how
    at = at % (len(data) + 1)
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + bytes([value]) + data[at:]
    if not data:
        return data
    if at == len(data):
        at -= 1
    if kind == "delete":
        return data[:at] + data[at + 1 :]
    return data[:at] + bytes([data[at] ^ value]) + data[at + 1 :]


@SETTINGS
@given(mutations=st.lists(_mutations(), min_size=1, max_size=3))
def test_any_mutated_smx1_is_judged_alike(
    pair: Pair, mutations: list[tuple[str, int, int]]
) -> None:
    case = _x3dh_case()
    data = bytes.fromhex(case["expected"]["smx1"])
    for how in mutations:
        data = _mutate(data, how)
    pair.call("smx1.parse", data=data.hex())
    bob = case["input"]["bob"]
    keys = {
        "ik_private": bob["ik_private"],
        "sik_private": bob["sik_private"],
        "spk": bob["spk"],
        "opks": [bob["opk"]] if bob["opk"] else [],
    }
    pair.call(
        "x3dh.respond",
        keys=keys,
        local_address=f"{bob['user_id']}:{bob['device_id']}",
        remote=case["expected"]["alice"],
        smx1=data.hex(),
    )


@SETTINGS
@given(
    mutations=st.lists(_mutations(), min_size=1, max_size=3),
    noise=st.binary(max_size=120),
)
def test_any_mutated_drv1_is_judged_alike(
    pair: Pair, mutations: list[tuple[str, int, int]], noise: bytes
) -> None:
    frame = bytes.fromhex(_x3dh_case()["input"]["plaintext"])
    for how in mutations:
        frame = _mutate(frame, how)
    pair.call("drv1.parse", data=frame.hex())
    pair.call("drv1.parse", data=noise.hex())
    pair.call("smx1.parse", data=noise.hex())


@SETTINGS
@given(
    key=st.binary(min_size=32, max_size=32),
    other=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
    message=st.binary(max_size=80),
    flip=st.integers(min_value=0, max_value=10_000),
    length=st.integers(min_value=1, max_value=300),
)
def test_primitives_agree(
    pair: Pair, key: bytes, other: bytes, nonce: bytes, message: bytes, flip: int, length: int
) -> None:
    pair.call("x25519.public", private=key.hex())
    pair.call("x25519.dh", private=key.hex(), public=other.hex())
    signed = pair.call("ed25519.sign", private=key.hex(), message=message.hex())["result"]
    sig = bytearray.fromhex(signed["sig"])
    pair.call("ed25519.verify", public=signed["public"], sig=sig.hex(), message=message.hex())
    sig[flip % 64] ^= 1 << (flip % 8)
    pair.call("ed25519.verify", public=signed["public"], sig=sig.hex(), message=message.hex())
    pair.call("ed25519.verify", public=other.hex(), sig=sig.hex(), message=message.hex())
    pair.call(
        "hkdf", ikm=message.hex(), salt=other.hex(), info=key.hex()[: flip % 40], length=length
    )
    pair.call("hmac", key=other.hex()[: flip % 64], data=message.hex())
    sealed = pair.call(
        "aead.seal", key=key.hex(), nonce=nonce.hex(), plaintext=message.hex(), aad=other.hex()
    )["result"]["ciphertext"]
    pair.call("aead.open", key=key.hex(), nonce=nonce.hex(), ciphertext=sealed, aad=other.hex())
    forged = bytearray.fromhex(sealed)
    forged[flip % len(forged)] ^= 0x80
    pair.call(
        "aead.open", key=key.hex(), nonce=nonce.hex(), ciphertext=forged.hex(), aad=other.hex()
    )


@pytest.mark.parametrize(
    "point",
    [
        "00" * 32,  # zero
        "01" + "00" * 31,  # one
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # order 8
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",  # order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p - 1
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p + 1
        "0000000000000000000000000000000000000000000000000000000000000080",  # zero, high bit set
    ],
)
def test_small_order_points_are_rejected_alike(pair: Pair, point: str) -> None:
    answer = pair.call("x25519.dh", private="42" * 32, public=point)
    assert answer["error"] == "InvalidKey"


KEY_ID_CHARS = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs", "Cc", "M"))
VALID_KEY_ID_CHARS = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs", "M"))
KEY_IDS = st.one_of(
    st.text(VALID_KEY_ID_CHARS, min_size=1, max_size=60),  # mostly valid (1..255 bytes)
    st.text(VALID_KEY_ID_CHARS, min_size=1, max_size=60),
    st.text(KEY_ID_CHARS, max_size=90),  # empty, control characters, > 255 bytes
)


@SETTINGS
@given(
    seed=st.binary(min_size=4, max_size=4),
    spk_id=KEY_IDS,
    opk_id=st.one_of(st.none(), KEY_IDS),
    users=st.tuples(st.text(max_size=12), st.text(max_size=12), st.text(max_size=12)),
    plaintext=st.binary(max_size=200),
    tamper=st.sampled_from(["none", "none", "none", "sig", "key_id", "small-order-spk"]),
)
# empty ids and ids holding the separator: SPEC §2 step 6 encodes any ids into AD (the
# reference once refused them where Go answered)
@example(seed=b"\0\0\0\1", spk_id="spk", opk_id=None, users=("", "", ""), plaintext=b"",
         tamper="none")
@example(seed=b"\0\0\0\2", spk_id="spk", opk_id="o", users=("a:b", "c:", ":d"),
         plaintext=b"x", tamper="none")
def test_any_x3dh_bootstrap_is_byte_identical(
    pair: Pair,
    seed: bytes,
    spk_id: str,
    opk_id: str | None,
    users: tuple[str, str, str],
    plaintext: bytes,
    tamper: str,
) -> None:
    """Random identities, key ids (any Unicode, control characters and over-long ones
    included) and addresses: initiate, parse and respond agree byte for byte or fail alike."""
    key = {
        name: scripted(seed, name, 1, 32)[0]
        for name in ("ik", "sik", "spk", "opk", "aik", "asik", "ek")
    }
    pub = {name: _x25519_public(key[name]) for name in ("ik", "spk", "opk", "aik")}
    bob_sik_pub = pair.call("ed25519.sign", private=key["sik"], message="")["result"]["public"]
    sig = pair.call(
        "spk.sign",
        sik_private=key["sik"],
        ik_public=pub["ik"],
        spk_public=pub["spk"],
        key_id=spk_id,
    )
    bundle: dict[str, Any] = {
        "user_id": users[1],
        "device_id": users[2],
        "ik": pub["ik"],
        "sik": bob_sik_pub,
        "spk": {
            "key_id": spk_id,
            "pub": pub["spk"],
            "sig": sig["result"]["sig"] if sig["ok"] else "00" * 64,
        },
        "opk": None if opk_id is None else {"key_id": opk_id, "pub": pub["opk"]},
    }
    if tamper == "sig":
        bundle["spk"]["sig"] = bundle["spk"]["sig"][:-2] + "ff"
    elif tamper == "key_id":
        bundle["spk"]["key_id"] = spk_id + "x"
    elif tamper == "small-order-spk":
        bundle["spk"]["pub"] = "00" * 32
    init = pair.call(
        "x3dh.initiate",
        identity={"ik_private": key["aik"], "sik_private": key["asik"]},
        local_address=f"{users[0]}:a",
        bundle=bundle,
        ek_private=key["ek"],
        nonce=scripted(seed, "nonce", 1, 12)[0],
        plaintext=plaintext.hex(),
    )
    event(f"x3dh.initiate: {init.get('error', 'ok')}")
    if not init["ok"]:
        return
    smx1 = init["result"]["smx1"]
    pair.call("smx1.parse", data=smx1)
    alice_sik_pub = pair.call("ed25519.sign", private=key["asik"], message="")["result"]["public"]
    keys: dict[str, Any] = {
        "ik_private": key["ik"],
        "sik_private": key["sik"],
        "spk": {"key_id": spk_id, "private": key["spk"]},
        "opks": [] if opk_id is None else [{"key_id": opk_id, "private": key["opk"]}],
    }
    answer = pair.call(
        "x3dh.respond",
        keys=keys,
        local_address=f"{users[1]}:{users[2]}",
        remote={"ik": pub["aik"], "sik": alice_sik_pub, "address": f"{users[0]}:a"},
        smx1=smx1,
    )
    assert answer["ok"], answer
    assert answer["result"]["plaintext"] == plaintext.hex()
