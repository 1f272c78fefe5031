"""Turning vector files (SPEC §6) into gate cases: scripted adapter exchanges with expectations.

A :class:`GateCase` is an ordered list of :class:`Exchange` objects. Each exchange is one
adapter request plus what its answer must be (result fields, or a SPEC §5 error name). Values
an earlier answer produced (a DR session handle) are referenced with :class:`Ref`. The gate
and ``semafore vectors verify`` run the same cases, so a vector file and the gate cannot drift
apart. New suites (the live matrix of issue 7) register a builder in :data:`SUITES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class VectorFormatError(Exception):
    """A vector file does not have the shape SPEC §6 and its JSON Schema require."""


@dataclass(frozen=True)
class Ref:
    """A placeholder for a value bound by an earlier exchange of the same case."""

    name: str


@dataclass(frozen=True)
class Exchange:
    """One request and its expected answer: ``expect`` fields, or ``expect_error``."""

    op: str
    args: Mapping[str, Any]
    expect: Mapping[str, Any] | None = None
    expect_error: str | None = None
    bind: tuple[str, str] | None = None  # (name, result field) to remember for later Refs
    label: str = ""


@dataclass(frozen=True)
class GateCase:
    """One vector case (or negative case) as the gate runs it."""

    file: str
    case_id: str
    description: str
    exchanges: tuple[Exchange, ...]
    negative: bool = False

    @property
    def full_id(self) -> str:
        return f"{self.file}:{self.case_id}"

    @property
    def ops(self) -> frozenset[str]:
        return frozenset(exchange.op for exchange in self.exchanges)


def resolve(value: Any, bound: Mapping[str, Any]) -> Any:
    """Replace every :class:`Ref` inside ``value`` with its bound value."""
    if isinstance(value, Ref):
        if value.name not in bound:
            raise KeyError(f"no value bound for {value.name!r}")
        return bound[value.name]
    if isinstance(value, Mapping):
        return {key: resolve(item, bound) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, bound) for item in value]
    return value


def first_difference(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> str | None:
    """Name the first expected field the actual result lacks or disagrees with; for hex
    byte strings, also the first differing byte offset (what a platform team debugs)."""
    for key, want in expected.items():
        if key not in actual:
            return f"result lacks field {key!r}"
        got = actual[key]
        if got != want:
            return f"field {key!r} differs" + _byte_offset(want, got)
    return None


def _byte_offset(want: Any, got: Any) -> str:
    if not (isinstance(want, str) and isinstance(got, str)):
        return ""
    try:
        a, b = bytes.fromhex(want), bytes.fromhex(got)
    except ValueError:
        return ""
    offset = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    if offset is None:
        return f" (length {len(b)}, expected {len(a)})"
    return f" at byte {offset} of {len(a)}"


# -- x3dh-prekey-v1 ------------------------------------------------------------------------


def address(party: Mapping[str, Any]) -> str:
    """``"<user_id>:<device_id>"`` (SPEC §2 step 6)."""
    return f"{party['user_id']}:{party['device_id']}"


def responder_keys(bob: Mapping[str, Any]) -> dict[str, Any]:
    """The ``keys`` argument of ``x3dh.respond`` from a vector's responder private keys."""
    return {
        "ik_private": bob["ik_private"],
        "sik_private": bob["sik_private"],
        "spk": {"key_id": bob["spk"]["key_id"], "private": bob["spk"]["private"]},
        "opks": [] if bob.get("opk") is None else [dict(bob["opk"])],
    }


def sign_args(inp: Mapping[str, Any]) -> dict[str, Any]:
    """The ``spk.sign`` arguments of a negative case's input (SPEC §1)."""
    return {key: inp[key] for key in ("sik_private", "ik_public", "spk_public", "key_id")}


def initiate_args(inp: Mapping[str, Any], bundle: Mapping[str, Any]) -> dict[str, Any]:
    alice = inp["alice"]
    return {
        "identity": {"ik_private": alice["ik_private"], "sik_private": alice["sik_private"]},
        "local_address": address(alice),
        "bundle": dict(bundle),
        "ek_private": inp["ek_private"],
        "nonce": inp["nonce"],
        "plaintext": inp["plaintext"],
    }


def respond_args(inp: Mapping[str, Any], alice_public: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "keys": responder_keys(inp["bob"]),
        "local_address": address(inp["bob"]),
        "remote": {
            "ik": alice_public["ik"],
            "sik": alice_public["sik"],
            "address": alice_public["address"],
        },
        "smx1": inp["smx1"],
    }


def x3dh_cases(doc: Mapping[str, Any]) -> list[GateCase]:
    name = doc["file"]
    cases: list[GateCase] = []
    for case in doc["cases"]:
        inp, exp = case["input"], case["expected"]
        bob, bundle = inp["bob"], exp["bundle"]
        exchanges = [
            Exchange(
                "spk.sign",
                {
                    "sik_private": bob["sik_private"],
                    "ik_public": bundle["ik"],
                    "spk_public": bundle["spk"]["pub"],
                    "key_id": bundle["spk"]["key_id"],
                },
                expect={"sig": bundle["spk"]["sig"]},
                label="sign the responder's SPK",
            ),
            Exchange(
                "x3dh.initiate",
                initiate_args(inp, bundle),
                expect={
                    "ek_public": exp["ek_public"],
                    "dh": exp["dh"],
                    "sk": exp["sk"],
                    "ad": exp["ad"],
                    "rk0": exp["rk0"],
                    "smx1": exp["smx1"],
                },
                label="initiator derives SK/AD/RK0 and seals the SMX1",
            ),
            Exchange(
                "smx1.parse",
                {"data": exp["smx1"]},
                expect=exp["parsed"],
                label="parse the SMX1 fields",
            ),
            Exchange(
                "x3dh.respond",
                respond_args({**inp, "smx1": exp["smx1"]}, exp["alice"]),
                expect={
                    "dh": exp["dh"],
                    "sk": exp["sk"],
                    "ad": exp["ad"],
                    "rk0": exp["rk0"],
                    "plaintext": inp["plaintext"],
                },
                label="responder opens the SMX1",
            ),
        ]
        cases.append(GateCase(name, case["id"], case["description"], tuple(exchanges)))
    for neg in doc["negative"]:
        cases.append(_x3dh_negative(name, neg))
    return cases


def _x3dh_negative(name: str, neg: Mapping[str, Any]) -> GateCase:
    inp, error = neg["input"], neg["expected_error"]
    operation = inp["operation"]
    if operation == "smx1.parse":
        exchange = Exchange("smx1.parse", {"data": inp["smx1"]}, expect_error=error)
    elif operation == "spk.sign":
        exchange = Exchange("spk.sign", sign_args(inp), expect_error=error)
    elif operation == "x3dh.initiate":
        exchange = Exchange("x3dh.initiate", initiate_args(inp, inp["bundle"]), expect_error=error)
    elif operation == "x3dh.respond":
        exchange = Exchange("x3dh.respond", respond_args(inp, inp["alice"]), expect_error=error)
    else:
        raise VectorFormatError(f"{name}:{neg['id']}: unknown operation {operation!r}")
    return GateCase(name, neg["id"], neg.get("description", ""), (exchange,), negative=True)


# -- dr-v1-interop -------------------------------------------------------------------------


def dr_cases(doc: Mapping[str, Any]) -> list[GateCase]:
    name = doc["file"]
    cases: list[GateCase] = []
    for case in doc["cases"]:
        cases.append(_dr_path(name, case))
    for neg in doc["negative"]:
        inp = neg["input"]
        if inp["operation"] != "drv1.parse":
            raise VectorFormatError(f"{name}:{neg['id']}: unknown operation {inp['operation']!r}")
        exchange = Exchange(
            "drv1.parse", {"data": inp["frame"]}, expect_error=neg["expected_error"]
        )
        cases.append(GateCase(name, neg["id"], neg.get("description", ""), (exchange,), True))
    return cases


def _dr_path(name: str, case: Mapping[str, Any]) -> GateCase:
    setup, steps = case["input"]["setup"], case["input"]["steps"]
    expected_steps = case["expected"]["steps"]
    if len(steps) != len(expected_steps):
        raise VectorFormatError(f"{name}:{case['id']}: steps and expected.steps differ in length")
    alice, bob = setup["alice"], setup["bob"]
    exchanges: list[Exchange] = [
        Exchange(
            "dr.init",
            {
                "role": "initiator",
                "sk": setup["sk"],
                "ad": setup["ad"],
                "remote_ratchet_key": bob["spk"]["public"],
                "ratchet_keys": [key["private"] for key in alice["ratchet_keys"]],
                "nonces": list(alice["nonces"]),
            },
            bind=("alice", "session"),
            label="initiator session",
        ),
        Exchange(
            "dr.init",
            {
                "role": "responder",
                "sk": setup["sk"],
                "ad": setup["ad"],
                "spk_private": bob["spk"]["private"],
                "ratchet_keys": [key["private"] for key in bob["ratchet_keys"]],
                "nonces": list(bob["nonces"]),
            },
            bind=("bob", "session"),
            label="responder session",
        ),
    ]
    frames: list[str] = []
    for index, (step, want) in enumerate(zip(steps, expected_steps, strict=True)):
        op = step["op"]
        where = f"{name}:{case['id']} step {index}"
        if op == "encrypt":
            if "error" in want:
                exchanges.append(
                    Exchange(
                        "dr.encrypt",
                        {"session": Ref(step["side"]), "plaintext": step["plaintext"]},
                        expect_error=want["error"],
                        label=f"step {index}: {step['side']} cannot encrypt",
                    )
                )
                continue
            if "frame" not in want:
                raise VectorFormatError(f"{where}: encrypt without an expected frame")
            frames.append(want["frame"])
            exchanges.append(
                Exchange(
                    "dr.encrypt",
                    {"session": Ref(step["side"]), "plaintext": step["plaintext"]},
                    expect={"frame": want["frame"]},
                    label=f"step {index}: {step['side']} encrypts frame {len(frames) - 1}",
                )
            )
        elif op == "deliver":
            if "frame" in step:
                k = step["frame"]
                if not 0 <= k < len(frames):
                    raise VectorFormatError(f"{where}: frame {k} not encrypted yet")
                data, what = frames[k], f"frame {k}"
            else:
                data, what = step["data"], "crafted bytes"
            exchanges.append(
                Exchange(
                    "dr.decrypt",
                    {"session": Ref(step["to"]), "frame": data},
                    expect={"plaintext": want["plaintext"]} if "plaintext" in want else None,
                    expect_error=want.get("error"),
                    label=f"step {index}: deliver {what} to {step['to']}",
                )
            )
        elif op == "digest":
            exchanges.append(
                Exchange(
                    "session.digest",
                    {"session": Ref(step["side"])},
                    expect={"digest": want["digest"]},
                    label=f"step {index}: {step['side']} session digest",
                )
            )
        else:
            raise VectorFormatError(f"{where}: unknown step op {op!r}")
    return GateCase(name, case["id"], case["description"], tuple(exchanges))


SuiteBuilder = Callable[[Mapping[str, Any]], list[GateCase]]

SUITES: dict[str, SuiteBuilder] = {
    "x3dh-prekey-v1": x3dh_cases,
    "dr-v1-interop": dr_cases,
    # "dr-v1-live-result": replay_cases  <- hook: arrives with the simulator issue (SPEC §6)
}
"""Vector file name (without ``.json``) -> case builder. The gate runs every known file."""


def cases_for(documents: Iterable[Mapping[str, Any]]) -> list[GateCase]:
    out: list[GateCase] = []
    for doc in documents:
        builder = SUITES.get(doc["file"])
        if builder is None:
            raise VectorFormatError(f"no gate suite for vector file {doc['file']!r}")
        out.extend(builder(doc))
    return out
