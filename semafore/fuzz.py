"""Coverage-guided fuzzing of every SemaFore parser and decrypt path (atheris + libFuzzer).

The contract under test (SPEC §5, issue 2): arbitrary bytes never make the protocol raise
anything but a :class:`~semafore.protocol.errors.ProtocolError`, and a failed decrypt leaves
every piece of state exactly as it was. Anything else (a ``ValueError``, ``IndexError``,
``UnicodeDecodeError``, a state that changed on error, a parse that does not round-trip) is
a *finding*: libFuzzer stops, prints the traceback and writes the input to a crash file.

Targets (``--target``):

``smx1``
    ``smx1.parse``; whatever parses must re-encode to the same bytes.
``drv1``
    ``frame.parse``; whatever parses must re-encode to the same bytes.
``ratchet``
    ``RatchetState.decrypt`` on an established session (seeds: in-order, skipped-ahead and
    new-chain frames); state unchanged on every error.
``session``
    ``session_cipher.decrypt`` (SMX1 resend, fresh SMX1 → X3DH respond, DR_V1 frames) and
    ``handle_reset`` / ``reset_for_undecryptable`` on the responder's record and device
    keys; both unchanged on every error.
``state``
    the persisted-state parsers (``RatchetState.parse``, ``SessionRecord.parse``,
    ``parse_device_keys``); whatever parses must re-serialise to the same bytes.
``all``
    the first input byte picks one of the above.
``canary``
    crashes on purpose on its own seed: proves a finding fails the run (used by the tests).

Seeds are valid inputs built deterministically (``SeededEntropy``), so the fuzzer starts
deep inside the formats instead of at the magic bytes.

    python -m semafore.fuzz --runs 200000 --target all
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

try:  # atheris is the optional "fuzz" extra; without it only the harness is importable
    import atheris
except ImportError:  # pragma: no cover
    atheris = None

# Coverage instrumentation must wrap the first import of the code under test; only when run
# as the fuzzing command, so importing the harness (tests) leaves the protocol untouched.
_instrumented: AbstractContextManager[Any] = (
    atheris.instrument_imports(include=["semafore.protocol"])
    if atheris is not None and __name__ == "__main__"
    else nullcontext()
)
with _instrumented:
    from semafore.protocol import frame, session_cipher, smx1
    from semafore.protocol.entropy import SeededEntropy
    from semafore.protocol.errors import ProtocolError
    from semafore.protocol.keys import (
        DeviceKeys,
        IdentityKeys,
        parse_device_keys,
        serialize_device_keys,
    )
    from semafore.protocol.ratchet import RatchetState
    from semafore.protocol.session import SessionRecord

TARGET_NAMES = ("smx1", "drv1", "ratchet", "session", "state")
ALICE = "alice:phone"
BOB = "bob:laptop"
STATS_EVERY = 100
CANARY = b"SEMAFORE-FUZZ-CANARY"
FINDING_EXIT = 77  # libFuzzer's exit code for a crashing input


class FuzzFinding(AssertionError):
    """An invariant broke without an exception being raised (round trip, transactionality)."""


@dataclass
class Harness:
    """The fuzz targets and the fixtures they run against; ``outcomes`` counts results."""

    seeds: dict[str, list[bytes]]
    ratchet_snapshot: bytes  # Bob's ratchet after one round trip
    record_snapshot: bytes  # Bob's session record with Alice
    keys_snapshot: bytes  # Bob's device keys (one OPK left)
    alice_ik: bytes
    alice_sik: bytes
    outcomes: dict[str, Counter[str]] = field(
        default_factory=lambda: {name: Counter() for name in (*TARGET_NAMES, "canary")}
    )
    runs: int = 0
    ratchet: RatchetState = field(init=False)
    record: SessionRecord = field(init=False)
    keys: DeviceKeys = field(init=False)

    def __post_init__(self) -> None:
        self._reset_ratchet()
        self._reset_session()

    @property
    def targets(self) -> dict[str, Callable[[bytes], str]]:
        return {
            "smx1": self.fuzz_smx1,
            "drv1": self.fuzz_drv1,
            "ratchet": self.fuzz_ratchet,
            "session": self.fuzz_session,
            "state": self.fuzz_state,
            "canary": self.fuzz_canary,
        }

    # -- fixtures and seeds ---------------------------------------------------------------

    @classmethod
    def build(cls) -> Harness:
        entropy = SeededEntropy(b"semafore-fuzz-v1")
        seeds: dict[str, list[bytes]] = {name: [] for name in TARGET_NAMES}

        # Bob (responder) with two OPKs; Alice bootstraps with the first.
        alice = IdentityKeys.generate(entropy.fork("alice"))
        bob_keys = DeviceKeys.generate(entropy.fork("bob"), opk_count=2)
        opk_ids = list(bob_keys.opks)
        alice_record = SessionRecord()
        alice_record.install(
            session_cipher.initiate_session(
                alice, ALICE, bob_keys.bundle("bob", "laptop", opk_ids[0]), entropy
            )
        )
        first = session_cipher.encrypt(alice_record, b"first", entropy)
        resend = session_cipher.encrypt(alice_record, b"resent smx1", entropy)
        bob_record = SessionRecord()

        def bob_decrypt(envelope: bytes) -> bytes:
            return session_cipher.decrypt(
                bob_record, bob_keys, BOB, alice.ik.public, alice.sik.public, ALICE, envelope
            )

        bob_decrypt(first)
        reply = session_cipher.encrypt(bob_record, b"reply", entropy)
        session_cipher.decrypt(
            alice_record,
            DeviceKeys.generate(entropy.fork("alice-device")),
            ALICE,
            bob_keys.identity.ik.public,
            bob_keys.identity.sik.public,
            BOB,
            reply,
        )
        # A second, independent bootstrap with the other OPK (X3DH respond path).
        other_record = SessionRecord()
        other_record.install(
            session_cipher.initiate_session(
                alice, ALICE, bob_keys.bundle("bob", "laptop", opk_ids[1]), entropy
            )
        )
        fresh_smx1 = session_cipher.encrypt(other_record, b"fresh bootstrap", entropy)

        record_snapshot = bob_record.serialize()
        keys_snapshot = serialize_device_keys(bob_keys)
        if bob_record.current is None:  # pragma: no cover
            raise RuntimeError("fuzz fixture: Bob has no session after the bootstrap")
        bob_ratchet = bob_record.current.ratchet
        ratchet_snapshot = bob_ratchet.serialize()

        # Alice's next frames: a new chain (she ratchets on Alice's reply), then more.
        frames = [session_cipher.encrypt(alice_record, b"m%d" % i, entropy) for i in range(4)]
        seeds["session"] = [resend, fresh_smx1, frames[0], frames[2]]
        seeds["session"].append(session_cipher.encode_reset(bob_ratchet.sending_ratchet_key))
        seeds["ratchet"] = [frames[0], frames[3]]
        seeds["drv1"] = [frames[0], frames[1][:72], b"DRV1"]

        # SMX1 shapes: with and without OPK, non-ASCII and 255-byte key ids.
        env = smx1.parse(first)
        inner = b"DRV1" + bytes(52) + bytes(16)
        sk = bytes(range(32))
        seeds["smx1"] = [first, b"SMX1"]
        for spk_id, opk_id in (("spk-0", None), ("clé-ß-😀", "opk-ü"), ("k" * 255, "o" * 255)):
            seeds["smx1"].append(
                smx1.seal(sk, b"ad", env.ephemeral, spk_id, opk_id, bytes(12), inner)
            )

        seeds["state"] = [
            ratchet_snapshot,
            record_snapshot,
            keys_snapshot,
            alice_record.serialize(),
            serialize_device_keys(DeviceKeys.generate(entropy.fork("spare"), opk_count=3)),
        ]
        seeds["canary"] = [CANARY]
        return cls(
            seeds,
            ratchet_snapshot,
            record_snapshot,
            keys_snapshot,
            alice.ik.public,
            alice.sik.public,
        )

    def _reset_ratchet(self) -> None:
        self.ratchet = RatchetState.parse(self.ratchet_snapshot)

    def _reset_session(self) -> None:
        self.record = SessionRecord.parse(self.record_snapshot)
        self.keys = parse_device_keys(self.keys_snapshot)

    # -- targets: each returns "ok" or the canonical error name ---------------------------

    def fuzz_smx1(self, data: bytes) -> str:
        try:
            envelope = smx1.parse(data)
        except ProtocolError as exc:
            return exc.name
        try:
            again = smx1.encode(envelope)
        except ProtocolError as exc:
            raise FuzzFinding(f"smx1.encode rejects what smx1.parse accepted: {exc}") from exc
        if again != bytes(data):
            raise FuzzFinding("smx1: encode(parse(x)) != x")
        return "ok"

    def fuzz_drv1(self, data: bytes) -> str:
        try:
            parsed = frame.parse(data)
        except ProtocolError as exc:
            return exc.name
        header = frame.encode_header(parsed.ratchet_key, parsed.pn, parsed.n, parsed.nonce)
        if header != parsed.header or header + parsed.ciphertext != bytes(data):
            raise FuzzFinding("drv1: encode(parse(x)) != x")
        return "ok"

    def fuzz_ratchet(self, data: bytes) -> str:
        state = self.ratchet
        before = state.serialize()
        try:
            state.decrypt(data)
        except ProtocolError as exc:
            if state.serialize() != before:
                raise FuzzFinding(f"ratchet state changed on {exc.name}") from exc
            return exc.name
        self._reset_ratchet()  # a real decrypt advanced the state: start clean next time
        return "ok"

    def fuzz_session(self, data: bytes) -> str:
        record, keys = self.record, self.keys
        before = (record.serialize(), serialize_device_keys(keys))
        reset = session_cipher.reset_for_undecryptable(data)
        if reset is not None and session_cipher.parse_reset(reset) != bytes(data[4:36]):
            raise FuzzFinding("reset_for_undecryptable names another ratchet key")
        try:
            if data[:4] == session_cipher.RESET_MAGIC:
                changed = session_cipher.handle_reset(record, data)
                outcome = "reset-archived" if changed else "reset-ignored"
            else:
                session_cipher.decrypt(
                    record, keys, BOB, self.alice_ik, self.alice_sik, ALICE, data
                )
                changed, outcome = True, "ok"
        except ProtocolError as exc:
            if (record.serialize(), serialize_device_keys(keys)) != before:
                raise FuzzFinding(f"session record or device keys changed on {exc.name}") from exc
            return exc.name
        if changed:
            self._reset_session()
        elif (record.serialize(), serialize_device_keys(keys)) != before:
            raise FuzzFinding("an ignored reset changed the session record")
        return outcome

    def fuzz_state(self, data: bytes) -> str:
        parsers: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
            ("ratchet", lambda raw: RatchetState.parse(raw).serialize()),
            ("record", lambda raw: SessionRecord.parse(raw).serialize()),
            ("device_keys", lambda raw: serialize_device_keys(parse_device_keys(raw))),
        )
        accepted = []
        for name, round_trip in parsers:
            try:
                again = round_trip(data)
            except ProtocolError:
                continue
            if again != bytes(data):
                raise FuzzFinding(f"{name} state: serialize(parse(x)) != x")
            accepted.append(name)
        return "ok:" + "+".join(accepted) if accepted else "rejected"

    def fuzz_canary(self, data: bytes) -> str:
        if data.startswith(CANARY):
            raise ValueError("canary: a non-ProtocolError exception, as a real bug would raise")
        return "ok"

    # -- dispatch -------------------------------------------------------------------------

    def one_input(self, target: str, data: bytes) -> None:
        """Run one input; a non-``ProtocolError`` exception propagates to libFuzzer."""
        self.runs += 1
        if target == "all":
            if not data:
                return
            target = TARGET_NAMES[data[0] % len(TARGET_NAMES)]
            data = data[1:]
        outcome = self.targets[target](data)
        self.outcomes[target][outcome] += 1

    def seeds_for(self, target: str) -> list[bytes]:
        if target != "all":
            return self.seeds[target]
        return [
            bytes((index,)) + seed
            for index, name in enumerate(TARGET_NAMES)
            for seed in self.seeds[name]
        ]

    def stats(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "outcomes": {name: dict(counter) for name, counter in self.outcomes.items() if counter},
        }


def _save_finding(artifacts: Path, data: bytes, trace: str) -> None:
    """``crash-<sha1>`` (the input, libFuzzer's naming) and ``crash-<sha1>.txt`` (traceback)."""
    name = "crash-" + hashlib.sha1(data, usedforsecurity=False).hexdigest()
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / name).write_bytes(data)
    (artifacts / f"{name}.txt").write_text(trace, encoding="utf-8")


def _write_seeds(corpus: Path, seeds: list[bytes]) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(seeds):
        (corpus / f"seed-{index:03d}").write_bytes(seed)


def _child(
    harness: Harness,
    target: str,
    corpus: Path,
    artifacts: Path,
    stats_path: Path,
    runs: int,
    seed: int,
    max_len: int,
    extra: tuple[str, ...],
) -> None:
    """The forked fuzzing process: libFuzzer owns it and ends it with ``exit()``."""

    def write_stats() -> None:
        stats_path.write_text(json.dumps(harness.stats()), encoding="utf-8")

    def test_one_input(data: bytes) -> None:
        try:
            harness.one_input(target, data)
        except BaseException:
            write_stats()
            _save_finding(artifacts, data, traceback.format_exc())
            raise
        if harness.runs % STATS_EVERY == 0 or harness.runs >= runs:
            write_stats()

    argv = [
        sys.argv[0],
        str(corpus),
        f"-runs={runs}",
        f"-seed={seed}",
        f"-max_len={max_len}",
        f"-artifact_prefix={artifacts}{os.sep}",
        "-timeout=30",
        "-print_final_stats=1",
        *extra,
    ]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Number of inputs libFuzzer executes (seeds included).",
)
@click.option(
    "--target",
    type=click.Choice([*TARGET_NAMES, "all", "canary"]),
    default="all",
    show_default=True,
    help="What to fuzz (see module docs).",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="libFuzzer's random seed (same seed, same run).",
)
@click.option(
    "--max-len",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Largest input libFuzzer generates.",
)
@click.option(
    "--corpus",
    type=click.Path(file_okay=False, path_type=Path),
    help="Corpus directory to read and grow (default: a fresh temporary one).",
)
@click.option(
    "--artifacts",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("fuzz-artifacts"),
    show_default=True,
    help="Where crash inputs are written.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JSON summary here ('-' for stdout).",
)
@click.option(
    "--reproduce",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run one saved input (a crash file) through --target, without libFuzzer.",
)
@click.option(
    "--libfuzzer-arg",
    "extra",
    multiple=True,
    help="Extra libFuzzer flag, e.g. -max_total_time=60 (repeatable).",
)
def main(
    runs: int,
    target: str,
    seed: int,
    max_len: int,
    corpus: Path | None,
    artifacts: Path,
    json_path: Path | None,
    reproduce: Path | None,
    extra: tuple[str, ...],
) -> None:
    """Fuzz SemaFore's parsers and decrypt paths; exit 1 on any finding."""
    if reproduce is not None:
        harness = Harness.build()
        harness.one_input(target, reproduce.read_bytes())  # a finding raises (exit 1)
        outcomes = {name: dict(c) for name, c in harness.outcomes.items() if c}
        click.echo(f"{reproduce}: no finding ({target}): {outcomes}")
        return
    if atheris is None:
        raise click.ClickException("atheris is not installed: pip install '.[fuzz]'")
    harness = Harness.build()
    workdir = Path(tempfile.mkdtemp(prefix="semafore-fuzz-"))
    try:
        corpus_dir = corpus if corpus is not None else workdir / "corpus"
        _write_seeds(corpus_dir, harness.seeds_for(target))
        created_artifacts = not artifacts.exists()
        artifacts.mkdir(parents=True, exist_ok=True)  # libFuzzer insists it exists
        known_artifacts = set(artifacts.iterdir())
        stats_path = workdir / "stats.json"
        started = time.monotonic()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; libFuzzer ends it with exit()
            try:
                _child(
                    harness, target, corpus_dir, artifacts, stats_path, runs, seed, max_len, extra
                )
            except SystemExit:  # atheris' verdict on an uncaught exception (a finding)
                os._exit(FINDING_EXIT)
            os._exit(70)  # libFuzzer returned instead of exiting: should not happen
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        stats: dict[str, Any] = {"runs": 0, "outcomes": {}}
        if stats_path.exists():
            stats = json.loads(stats_path.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    new_artifacts = sorted(str(p) for p in set(artifacts.glob("*")) - known_artifacts)
    if created_artifacts and not new_artifacts:
        artifacts.rmdir()  # leave no empty folder behind after a clean run
    summary = {
        "target": target,
        "requested_runs": runs,
        "executed": stats["runs"],
        "outcomes": stats["outcomes"],
        "exit_code": code,
        "clean": code == 0,
        "artifacts": new_artifacts,
        "seconds": round(time.monotonic() - started, 2),
    }
    verdict = "clean" if code == 0 else f"FINDING (libFuzzer exit {code})"
    click.echo(
        f"semafore.fuzz {target}: {stats['runs']} executions in {summary['seconds']} s, {verdict}",
        err=json_path == Path("-"),
    )
    for name, outcomes in stats["outcomes"].items():
        top = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1]))
        click.echo(f"  {name}: {top}", err=json_path == Path("-"))
    if json_path is not None:
        text = json.dumps(summary, indent=2)
        if json_path == Path("-"):
            click.echo(text)
        else:
            json_path.write_text(text + "\n", encoding="utf-8")
    sys.exit(0 if code == 0 else 1)


if __name__ == "__main__":
    main()
