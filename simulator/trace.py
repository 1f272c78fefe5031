"""Traceability matrix: every seed threat, non-guarantee, cited ADR and SPEC rule, mapped to the
scenarios and tests that exercise it and the sabotages they kill (issue #11 item 6,
docs/traceability.md, docs/simulator.md "Traceability").

Why: a claim in the seed (§1.1 threats, §1.2 non-guarantees, the ADRs of §4/§6) or a rule of
SPEC.md is only worth something here if something in the harness would go red when the claim
breaks. This module makes that visible row by row and lets CI fail when a row has nothing.

Where the rows come from:

- **Threats** — the bullets of seed §1.1, by their lead sentence (``seed §1.1 Network
  adversary``).
- **Non-guarantees** — the bullets of seed §1.2, plus the one section of the seed that is a
  non-guarantee as a whole, §2.5 (database-tier communication graph: "SemaFore does not claim
  resistance to this adversary class").
- **ADRs** — every ADR number the seed cites (``ADR-0019``, ``ADR-0093 / 0094``, ``ADRs 0093,
  0094, 0095, and 0097``) plus every ``ADR-nnnn`` named in SPEC.md or ``docs/*.md``; titles come
  from seed §6. An ADR that scenarios or tests cite but no document names is an unresolved cite,
  not a new row: a typo must not create its own covered row.
- **SPEC rules** — SPEC.md states its rules in prose, not as numbered MUSTs, so the rules are
  the reviewed table :data:`SPEC_RULES` (stable ids ``SPEC §3 r4``, a short title), and the
  extraction is *checked* against the text both ways: every rule's anchor phrases must occur in
  its section, and every clause of SPEC §1–§8 (a paragraph, list item, table or code block;
  only a lead-in ending in ":" is exempt) must contain an anchor of some rule of its section.
  SPEC states its rules declaratively ("K = HKDF(…)", layouts, "raises X") rather than with
  MUST, so a keyword filter would miss half of them; every clause is treated as normative. A
  SPEC edit therefore fails the trace until the table follows it.

What covers a row: a ``cites:`` entry of a scenario (``scenarios/**/*.yaml``) or a
``@pytest.mark.cites(...)`` on a test function, class or module (``pytestmark``), read
statically from ``tests/**/*.py`` (no test runs). Only *row* cites cover: a section-level cite
(``SPEC §3``, ``seed §3.4 Application-tier scaling``, ``docs/server.md Messages``) is accepted as
a *reference* when that section or heading exists, and is listed, but covers nothing — one
broad cite must not claim ten rules its scenario never exercises. Any cite that has no known
form, or names no existing row/section, is an error, never ignored.

Rows that cannot be exercised in this harness are the short reviewed list :data:`UNTESTABLE`,
each with its reason; a listed row that something does cover is an error too (the list only
shrinks by review, it is never an automatic escape hatch).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from simulator.scenario import ScenarioError, discover, load

# --- rows ------------------------------------------------------------------------------------


class RowGroup(Enum):
    """The four kinds of claim a row can be, in the order docs/traceability.md lists them."""

    THREAT = "threat"
    NON_GUARANTEE = "non-guarantee"
    ADR = "adr"
    SPEC_RULE = "spec-rule"


GROUP_HEADINGS: Mapping[RowGroup, str] = {
    RowGroup.THREAT: "Threats (seed §1.1)",
    RowGroup.NON_GUARANTEE: "Non-guarantees (seed §1.2, §2.5)",
    RowGroup.ADR: "ADRs (cited by the seed, SPEC.md or docs/)",
    RowGroup.SPEC_RULE: "SPEC rules (SPEC.md §1–§8)",
}


@dataclass(frozen=True)
class Row:
    """One claim: ``id`` is also its canonical cite (``seed §1.1 Network adversary``)."""

    id: str
    group: RowGroup
    title: str


@dataclass(frozen=True)
class SpecRule:
    """A SPEC rule: ``anchors`` are verbatim phrases of its section (backticks and ``*``
    dropped, whitespace collapsed) that tie the id to the text it stands for."""

    section: int
    number: int
    title: str
    anchors: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"SPEC §{self.section} r{self.number}"


def _rule(section: int, number: int, title: str, *anchors: str) -> SpecRule:
    return SpecRule(section, number, title, anchors)


SPEC_RULES: tuple[SpecRule, ...] = (
    _rule(1, 1, "Every device owns its own IK, SIK, SPK and OPKs (ADR-0053)",
          "owns, independently of the user's other devices"),
    _rule(1, 2, "key_id is 1-255 bytes of UTF-8 without control or surrogate code points, "
          "validated by every operation", "1–255 bytes of UTF-8 containing no Unicode control",
          "Every operation that takes or emits a key id validates it"),
    _rule(1, 3, "The SPK signature is domain-separated and binds key_id and IK.pub",
          'sig = Ed25519.sign(SIK, "SemaFore-SPK-v1"',
          "a relay cannot pair a victim's signing key"),
    _rule(1, 4, "A bundle fetch claims (atomically removes) one OPK; none left means opk null "
          "and no DH4", "each handed out at most once", "A key bundle for one device is",
          "The server claims (atomically removes) one OPK per bundle fetch",
          "X3DH proceeds without DH4"),
    _rule(2, 1, "The SPK signature is verified before any Diffie-Hellman (InvalidSignature)",
          "On failure raise InvalidSignature and compute no DH"),
    _rule(2, 2, "An all-zero DH output (small-order point) is InvalidKey",
          "An all-zero output (small-order point) raises InvalidKey"),
    _rule(2, 3, "X3DH derivation: DH1-DH4, IKM with the 0xFF prefix, HKDF (ADR-0169)",
          "EK_A = fresh X25519 key pair", "DH1 = X25519(IK_A, SPK_B)", "IKM = 0xFF×32",
          'SK = HKDF(IKM, salt = 0x00×32, info = "SemaFore-X3DH-v1", L = 32)'),
    _rule(2, 4, "AD binds both identities and both device addresses (unknown-key-share)",
          "AD = IK_A.pub || SIK_A.pub", "binds both identities and both addresses"),
    _rule(2, 5, "SMX1 byte layout (magic, flags, EK_A, key ids, nonce, AEAD)",
          "SMX1 layout (architecture §4.3, normative)", "Flags: 0x01 = OPK used"),
    _rule(2, 6, "The SMX1 AEAD uses SK and authenticates the whole header and AD",
          "the AEAD key is SK itself", "the AAD covers the whole SMX1 header"),
    _rule(2, 7, "The sender's identity is resolved by trust on first use; a changed identity "
          "is UntrustedIdentity", "SMX1 carries no identity key",
          "a changed identity raises UntrustedIdentity"),
    _rule(2, 8, "Frames are wrapped in SMX1 until the first reply; a known EK_A reuses the "
          "session", "every frame she sends is wrapped in an SMX1",
          "reuses that session instead of running X3DH again"),
    _rule(2, 9, "An SMX1 naming a missing OPK is UnknownPrekey; a used OPK is deleted",
          "raises UnknownPrekey", "Bob deletes that OPK"),
    _rule(3, 1, "Root, chain and message key derivation (RK0, KDF_RK, KDF_CK, SPK as Bob's "
          "first ratchet key)", "RK0 = HKDF(SK", "Bob's first ratchet key pair is his SPK",
          "KDF_RK(rk, dh_out) = HKDF", "KDF_CK(ck): message key",
          'info = "SemaFore-DR-v1-msg"'),
    _rule(3, 2, "Every frame has a random 12-byte nonce, so a rolled-back state never reuses "
          "a GCM nonce", "random 12-byte nonce carried in the frame",
          "A random nonce makes a rollback harmless"),
    _rule(3, 3, "DR_V1 frame layout and AAD", 'Magic 0x44 0x52 0x56 0x31 ("DRV1")',
          "aad = AD || bytes[0..56)"),
    _rule(3, 4, "MAX_SKIP = 1000: a larger skip in the current chain is TooManySkipped and "
          "changes nothing", "MAX_SKIP = 1000",
          "current receiving chain raises TooManySkipped and changes nothing"),
    _rule(3, 5, "A new ratchet key whose PN is past MAX_SKIP drops the old chain's keys and "
          "the step proceeds", "the old chain's remaining keys are simply not stored"),
    _rule(3, 6, "Skipped keys: stored by (DHs.pub, N), deleted on use, at most 2000, oldest "
          "evicted first", "Skipped message keys are stored by (DHs.pub, N)",
          "at most 2000 per session"),
    _rule(3, 7, "The sending half of a DH step is deferred to the next encrypt",
          "When the sending half of a DH step happens (deferred)",
          "derives the new sending chain only at its next encrypt"),
    _rule(3, 8, "A used or discarded key is DuplicateMessage (5 retired receiving chains "
          "remembered)", "A frame whose key was already used or discarded raises "
          "DuplicateMessage", "last 5 retired receiving chains"),
    _rule(3, 9, "Frames of chains past that memory follow the new-chain rules; past the "
          "accounted messages is DecryptionFailed",
          "A frame of a chain older than that memory",
          "A frame of a remembered chain numbered past the messages accounted for is "
          "DecryptionFailed"),
    _rule(3, 10, "Decryption is transactional: a forged, truncated or replayed frame changes "
          "nothing", "Decryption is transactional",
          "never advances or corrupts a session"),
    _rule(4, 1, "One current and up to 40 archived sessions per remote device; decrypt tries "
          "current then archived", "up to 40 archived ones",
          "Decrypt tries current, then archived newest first"),
    _rule(4, 2, "A new SMX1 with an unknown EK_A becomes current, so simultaneous initiation "
          "converges", "A new incoming SMX1 with an unknown EK_A creates a session",
          "This makes simultaneous initiation converge"),
    _rule(4, 3, "A device that cannot decrypt sends a reset naming only the failed frame's "
          "ratchet key", "it sends the sender a reset envelope naming the failed frame's "
          "ratchet public key and nothing else"),
    _rule(4, 4, "A reset is honoured only for the current sending ratchet key",
          "archives the session and bootstraps a new one",
          "A reset naming any other key is ignored"),
    _rule(5, 1, "The canonical error names",
          "DuplicateMessage, TooManySkipped, UnknownPrekey, UntrustedIdentity, NoSession"),
    _rule(5, 2, "Every framing error is MalformedEnvelope naming the field",
          "MalformedEnvelope (any SMX1/DR_V1 framing error; the message names the field)"),
    _rule(5, 3, "UnsupportedVersion per parser; any other magic is MalformedEnvelope",
          "UnsupportedVersion (per parser", "any other magic, including the other"),
    _rule(6, 1, "Vector files and cases have the specified envelope",
          'Each file is {"file", "version", "spec"',
          "a negative case has id, input and expected_error"),
    _rule(6, 2, "Vectors are byte-exact: every private key and random byte is in input",
          "Every private key and every random byte an operation needs is in input"),
    _rule(6, 3, "x3dh-prekey-v1 covers OPK or none, key id edge cases and every SMX1 "
          "negative", "x3dh-prekey-v1.json — bundles", "negatives for every SMX1 field"),
    _rule(6, 4, "dr-v1-interop covers every continuation path and DR failure mode",
          "dr-v1-interop.json — continuation paths", "Paths cover in-order, ping-pong"),
    _rule(6, 5, "dr-v1-live-result is a seeded multi-device run reproduced byte for byte",
          "dr-v1-live-result.json — a transcript",
          "re-running the same seed must reproduce identical bytes"),
    _rule(6, 6, "Serialised state is versioned and every released format still loads",
          "Serialised session state starts with a format version",
          "keep one fixture per released format"),
    _rule(7, 1, "Adapters speak one JSON request and one response per line, documented with "
          "examples", "reads JSON requests, one per line",
          "docs/ documents each with examples"),
    _rule(7, 2, "The reference implementation ships its own adapter as the gate's baseline",
          "The reference implementation ships its own adapter"),
    _rule(7, 3, "Adapters answer capabilities; Unsupported is reported, never a pass",
          "Every adapter answers capabilities", "never as a pass"),
    _rule(7, 4, "Expected failures carry an owner and an expiry; an expired entry fails the "
          "gate", "each with an owner and an expiry date", "an expired entry fails the gate"),
    _rule(7, 5, "session.digest = SHA-256(label || RK || AD) proves agreement without keys",
          'SHA-256("SemaFore-session-digest-v1" || RK || AD)'),
    _rule(8, 1, "Every plaintext carries a canary and all private key material is registered",
          "carries a unique random canary", "key material must never reach the server either"),
    _rule(8, 2, "The oracle searches every value in every listed encoding",
          "searches each registered value in several encodings"),
    _rule(8, 3, "The oracle scans every tier the adversary would hold and locates each hit",
          "It scans every tier the adversary would hold", "A hit reports tier, location"),
    _rule(8, 4, "The oracle is proven not blind by injected leaks",
          "The oracle must be proven not blind"),
)
"""The reviewed list of SPEC rules (module docstring: how it is kept honest)."""


UNTESTABLE: Mapping[str, str] = {
    "seed §1.2 Endpoint operating system telemetry": (
        "iOS/Android telemetry flows to the OS vendors; the harness has no mobile OS and "
        "SemaFore does not control those flows"),
    "seed §1.2 Push notification routing through APNs and FCM": (
        "the harness has no APNs/FCM; the relay pushes over its own WebSocket only"),
    "seed §1.2 Availability against sustained nation-state-grade denial-of-service": (
        "a volumetric attack is met by edge protection and capacity outside this code; a "
        "flood bounded to 127.0.0.1 on two cores would measure the harness, not the claim"),
    "seed §1.2 Compromise of cryptographic primitives themselves": (
        "a future break of X25519/Ed25519/AES-GCM/HKDF/SHA-256 cannot be simulated; the "
        "Wycheproof suites check correct use, not resistance to a break"),
    "ADR-0068": "an iOS client release flag (SF-007); no iOS client is built here",
    "ADR-0155": (
        "where production storage is hosted (Attomus-controlled, UK) is an operational fact "
        "outside the code"),
    "ADR-0160": "hardening of the product's self-hosted CI runners, not of this code",
    "ADR-0162": (
        "the production SeaweedFS deployment shape and its three-node promotion runbook; the "
        "harness runs its own SeaweedFS, which says nothing about production hosts"),
}
"""Rows this harness cannot exercise, each with the reason (reviewed; keep it short)."""


# --- problems --------------------------------------------------------------------------------


class ProblemKind(Enum):
    """Why ``semafore sim trace --check`` fails; each is a test in
    tests/simulator/test_traceability.py."""

    UNCOVERED = "uncovered"            # a row with neither scenario nor test
    UNKNOWN_CITE = "unknown-cite"      # a cite in no known form
    UNRESOLVED_CITE = "unresolved-cite"  # a known form naming no row / section / heading
    BAD_MARKER = "bad-marker"          # a cites marker trace cannot read statically
    BAD_SCENARIO = "bad-scenario"      # a scenario file that does not load
    SPEC_DRIFT = "spec-drift"          # SPEC.md and SPEC_RULES disagree
    UNTESTABLE_LIST = "untestable-list"  # a listed row that is covered, or no row at all
    STALE_DOC = "stale-doc"            # docs/traceability.md differs from a fresh render


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.where}: {self.message}"


class TraceInputError(Exception):
    """An input of the trace is missing or malformed; ``source`` names the file (and field)."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceInputError(str(path), f"cannot read the {what}: {exc.strerror}") from None


# --- text helpers ----------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """Lowercase alphanumeric words: cite text is matched word-wise, punctuation-blind."""
    return re.findall(r"[a-z0-9_]+", text.lower())


def _contains_run(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n == 0 or any(list(haystack[i:i + n]) == list(needle)
                         for i in range(len(haystack) - n + 1))


def _flat(text: str) -> str:
    """Markdown emphasis and code marks dropped, whitespace collapsed (anchor matching)."""
    return " ".join(text.replace("`", "").replace("*", "").split())


# --- the seed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSection:
    number: str  # "1.1", "2", …
    heading: str
    body: str


_SEED_HEADING = re.compile(r"^(\d+(?:\.\d+)?)\.?\s+(\S.*)$")
_ADR_GROUP = re.compile(
    r"\bADRs?[- ](\d{4}(?:(?:\s*/\s*|\s*,\s*(?:and\s+)?|\s+and\s+)\d{4})*)")
ROW_SECTIONS: Mapping[str, RowGroup] = {"1.1": RowGroup.THREAT, "1.2": RowGroup.NON_GUARANTEE}
"""Seed sections whose bullets are rows."""
WHOLE_SECTION_ROWS: Mapping[str, RowGroup] = {"2.5": RowGroup.NON_GUARANTEE}
"""Seed sections that are one row as a whole (module docstring: why §2.5)."""


def seed_sections(text: str) -> dict[str, SeedSection]:
    """The numbered sections of the seed ("1. Threat model", "1.1 In scope", …)."""
    sections: dict[str, SeedSection] = {}
    current: tuple[str, str] | None = None
    body: list[str] = []
    for line in text.splitlines():
        match = _SEED_HEADING.match(line)
        if match and not line.startswith(" ") and len(match.group(2)) < 80 \
                and not match.group(2)[0].isdigit():
            if current:
                sections[current[0]] = SeedSection(current[0], current[1], "\n".join(body))
            current, body = (match.group(1), match.group(2).strip()), []
        else:
            body.append(line)
    if current:
        sections[current[0]] = SeedSection(current[0], current[1], "\n".join(body))
    return sections


def _bullets(body: str) -> Iterator[str]:
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith("•"):
            yield stripped.lstrip("•").strip()


def seed_rows(text: str) -> list[Row]:
    """Threat and non-guarantee rows of the seed; raises :class:`TraceInputError` when a
    section the rows come from is missing (the seed changed shape)."""
    sections = seed_sections(text)
    rows: list[Row] = []
    for number, group in ROW_SECTIONS.items():
        if number not in sections:
            raise TraceInputError(f"seed §{number}", "section not found in the seed")
        for bullet in _bullets(sections[number].body):
            title = bullet.split(". ", 1)[0].rstrip(".")
            rows.append(Row(f"seed §{number} {title}", group, title))
    for number, group in WHOLE_SECTION_ROWS.items():
        if number not in sections:
            raise TraceInputError(f"seed §{number}", "section not found in the seed")
        rows.append(Row(f"seed §{number}", group, sections[number].heading))
    return rows


def adr_numbers(text: str) -> list[str]:
    """Every ADR number a text cites, in order of first mention, in all the seed's forms."""
    seen: dict[str, None] = {}
    for group in _ADR_GROUP.findall(text):
        for number in re.findall(r"\d{4}", group):
            seen.setdefault(f"ADR-{number}", None)
    return list(seen)


def adr_titles(seed_text: str) -> dict[str, str]:
    """Titles from the seed's "Cited ADRs" list (``• ADR-0093 / 0094 — Retention …``)."""
    titles: dict[str, str] = {}
    for section in seed_sections(seed_text).values():
        for bullet in _bullets(section.body):
            head, sep, title = bullet.partition("—")
            if sep and head.strip().startswith("ADR"):
                for adr in adr_numbers(head):
                    titles[adr] = title.strip().rstrip(".")
    return titles


# --- SPEC.md ---------------------------------------------------------------------------------


_SPEC_HEADING = re.compile(r"^## (\d+)\. (.+)$")


@dataclass(frozen=True)
class SpecSection:
    number: int
    heading: str
    clauses: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.clauses)


def _clauses(lines: Iterable[str]) -> Iterator[str]:
    """Paragraphs, list items, tables and code blocks of one SPEC section."""
    block: list[str] = []
    fence = False
    for line in lines:
        if fence:
            block.append(line)
            if line.startswith("```"):
                fence = False
                yield "\n".join(block)
                block = []
            continue
        if line.startswith("```"):
            if block:
                yield "\n".join(block)
            block, fence = [line], True
        elif not line.strip():
            if block:
                yield "\n".join(block)
            block = []
        elif re.match(r"^(- |\d+\. )", line) or (
                line.startswith("|") and block and not block[-1].startswith("|")):
            if block:
                yield "\n".join(block)
            block = [line]
        else:
            block.append(line)
    if block:
        yield "\n".join(block)


def spec_sections(text: str) -> dict[int, SpecSection]:
    """The ``## n. Title`` sections of SPEC.md with their clauses (the preamble is not a
    section: it states conventions and the revision log, no rule)."""
    sections: dict[int, SpecSection] = {}
    current: tuple[int, str] | None = None
    lines: list[str] = []
    for line in [*text.splitlines(), "## 0. end"]:
        match = _SPEC_HEADING.match(line)
        if match:
            if current:
                sections[current[0]] = SpecSection(current[0], current[1],
                                                   tuple(_clauses(lines)))
            current, lines = (int(match.group(1)), match.group(2).strip()), []
        elif current:
            lines.append(line)
    return sections


def spec_rows(text: str, rules: Sequence[SpecRule] = SPEC_RULES
              ) -> tuple[list[Row], list[Problem]]:
    """The SPEC rule rows, and drift problems: an anchor not in its section, a clause (other
    than a lead-in ending in ":") no rule anchors, a rule of a section SPEC does not have."""
    sections = spec_sections(text)
    problems: list[Problem] = []
    by_section: dict[int, list[SpecRule]] = {}
    for rule in rules:
        by_section.setdefault(rule.section, []).append(rule)
        section = sections.get(rule.section)
        if section is None:
            problems.append(Problem(ProblemKind.SPEC_DRIFT, rule.id,
                                    f"SPEC.md has no section §{rule.section}"))
            continue
        flat = _flat(section.text)
        for anchor in rule.anchors:
            if _flat(anchor) not in flat:
                problems.append(Problem(ProblemKind.SPEC_DRIFT, rule.id,
                                        f"anchor {anchor!r} is not in SPEC §{rule.section}"))
    for number, section in sorted(sections.items()):
        anchors = [_flat(a) for r in by_section.get(number, []) for a in r.anchors]
        for clause in section.clauses:
            flat = _flat(clause)
            if not flat.endswith(":") and not any(a in flat for a in anchors):
                problems.append(Problem(
                    ProblemKind.SPEC_DRIFT, f"SPEC §{number}",
                    f"clause with no rule in SPEC_RULES: {flat[:100]!r}"))
    rows = [Row(r.id, RowGroup.SPEC_RULE, r.title) for r in rules]
    return rows, problems


# --- cites -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Citer:
    """Who cites: a scenario (by name) or a test (by pytest node id)."""

    kind: str  # "scenario" | "test"
    name: str
    location: str  # file:line


@dataclass(frozen=True)
class Cite:
    text: str
    citer: Citer


@dataclass(frozen=True)
class Resolution:
    """A cite resolves to rows (coverage), to a reference (a section, covering nothing), or to
    a problem."""

    rows: tuple[str, ...] = ()
    reference: str | None = None
    problem: tuple[ProblemKind, str] | None = None


_SEED_CITE = re.compile(r"^seed §(\d+(?:\.\d+)?)(?:\s+(.*))?$")
_SPEC_CITE = re.compile(r"^SPEC §(\d+)(?:\s+r(\d+)\b)?(?:\s+(.*))?$")
_ADR_CITE = re.compile(r"^(ADR-\d{4})(?:\s+(.*))?$")
_DOC_CITE = re.compile(r"^(docs/[\w./-]+\.md)(?:\s+(.*))?$")


class CiteIndex:
    """Resolves cite text against the rows and the sections a reference may name."""

    def __init__(self, rows: Sequence[Row], seed: Mapping[str, SeedSection],
                 spec: Mapping[int, SpecSection], docs: Mapping[str, Sequence[str]]) -> None:
        self.rows = {r.id: r for r in rows}
        self.seed = seed
        self.spec = spec
        self.docs = docs

    def resolve(self, text: str) -> Resolution:
        cite = " ".join(text.split())
        for pattern, method in ((_SEED_CITE, self._seed), (_SPEC_CITE, self._spec),
                                (_ADR_CITE, self._adr), (_DOC_CITE, self._doc)):
            match = pattern.match(cite)
            if match:
                return method(match)
        return Resolution(problem=(ProblemKind.UNKNOWN_CITE, (
            f"{cite!r} is in no known form (seed §n.m <title>, SPEC §n rK, SPEC §n, "
            "ADR-nnnn, docs/<file>.md <heading>)")))

    @staticmethod
    def _unresolved(message: str) -> Resolution:
        return Resolution(problem=(ProblemKind.UNRESOLVED_CITE, message))

    def _seed(self, match: re.Match[str]) -> Resolution:
        number, words = match.group(1), _words(match.group(2) or "")
        section = self.seed.get(number)
        if section is None:
            return self._unresolved(f"the seed has no section §{number}")
        if number in ROW_SECTIONS and words:
            candidates = [r for r in self.rows.values() if r.id.startswith(f"seed §{number} ")
                          and _contains_run(_words(r.title), words)]
            if len(candidates) != 1:
                titles = [r.title for r in self.rows.values()
                          if r.id.startswith(f"seed §{number} ")]
                return self._unresolved(
                    f"{match.group(0)!r} names {len(candidates)} rows of seed §{number} "
                    f"(its rows: {titles})")
            return Resolution(rows=(candidates[0].id,))
        if not _contains_run(_words(section.heading), words):
            return self._unresolved(
                f"seed §{number} is {section.heading!r}, not {match.group(2)!r}")
        row_id = f"seed §{number}"
        if row_id in self.rows:
            return Resolution(rows=(row_id,))
        return Resolution(reference=f"seed §{number} {section.heading}")

    def _spec(self, match: re.Match[str]) -> Resolution:
        number, rule, rest = int(match.group(1)), match.group(2), match.group(3) or ""
        section = self.spec.get(number)
        if section is None:
            return self._unresolved(f"SPEC.md has no section §{number}")
        if rule is not None:
            row = self.rows.get(f"SPEC §{number} r{rule}")
            if row is None:
                return self._unresolved(f"SPEC §{number} has no rule r{rule}")
            if not _contains_run(_words(row.title), _words(rest)):
                return self._unresolved(f"{row.id} is {row.title!r}, not {rest!r}")
            return Resolution(rows=(row.id,))
        if not _contains_run(_words(section.heading), _words(rest)):
            return self._unresolved(
                f"SPEC §{number} is {section.heading!r}, not {rest!r}; cite a rule as "
                f"'SPEC §{number} rK'")
        return Resolution(reference=f"SPEC §{number} {section.heading}")

    def _adr(self, match: re.Match[str]) -> Resolution:
        row = self.rows.get(match.group(1))
        if row is None:
            return self._unresolved(
                f"{match.group(1)} is cited by neither the seed, SPEC.md nor docs/")
        if not _contains_run(_words(row.title), _words(match.group(2) or "")):
            return self._unresolved(f"{row.id} is {row.title!r}, not {match.group(2)!r}")
        return Resolution(rows=(row.id,))

    def _doc(self, match: re.Match[str]) -> Resolution:
        path, words = match.group(1), _words(match.group(2) or "")
        headings = self.docs.get(path)
        if headings is None:
            return self._unresolved(f"{path} does not exist")
        hits = [h for h in headings if _contains_run(_words(h), words)]
        if not hits:
            return self._unresolved(f"{path} has no heading {match.group(2)!r}")
        return Resolution(reference=f"{path} {hits[0] if words else ''}".strip())


def doc_headings(docs_dir: Path, exclude: Iterable[Path] = ()) -> dict[str, list[str]]:
    """``docs/<file>.md`` → its markdown headings (for reference cites)."""
    skip = {p.resolve() for p in exclude}
    out: dict[str, list[str]] = {}
    for path in sorted(docs_dir.glob("*.md")):
        if path.resolve() in skip:
            continue
        text = path.read_text(encoding="utf-8")
        out[f"docs/{path.name}"] = [m.group(1).strip() for m in
                                    re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)]
    return out


def scenario_cites(scenarios_dir: Path, root: Path) -> tuple[list[Cite], list[Problem]]:
    """The ``cites:`` of every scenario, read through the scenario loader (the one parser of
    the format); a file that does not load is a problem, not a crash."""
    cites: list[Cite] = []
    problems: list[Problem] = []
    for path in discover([scenarios_dir]):
        rel = _rel(path, root)
        try:
            scenario = load(path)
        except ScenarioError as exc:
            problems.append(Problem(ProblemKind.BAD_SCENARIO, rel, str(exc)))
            continue
        line = _cites_line(path)
        citer = Citer("scenario", scenario.name, f"{rel}:{line}")
        cites.extend(Cite(text, citer) for text in scenario.cites)
    return cites, problems


def _cites_line(path: Path) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("cites:"):
            return number
    return 1


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _is_cites_mark(node: ast.expr) -> bool:
    """``pytest.mark.cites`` or ``mark.cites`` (``from pytest import mark``)."""
    if not (isinstance(node, ast.Attribute) and node.attr == "cites"):
        return False
    owner = node.value
    return ((isinstance(owner, ast.Attribute) and owner.attr == "mark")
            or (isinstance(owner, ast.Name) and owner.id == "mark"))


class _MarkScan(ast.NodeVisitor):
    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.stack: list[str] = []
        self.cites: list[Cite] = []
        self.problems: list[Problem] = []

    def _marks(self, expr: ast.expr, node_id: str) -> None:
        items = expr.elts if isinstance(expr, (ast.List, ast.Tuple)) else [expr]
        for item in items:
            if not (isinstance(item, ast.Call) and _is_cites_mark(item.func)):
                continue
            where = f"{self.rel}:{item.lineno}"
            if not item.args or item.keywords:
                self.problems.append(Problem(ProblemKind.BAD_MARKER, where,
                                             "cites takes one or more strings, no keywords"))
            for arg in item.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    self.cites.append(Cite(arg.value, Citer("test", node_id, where)))
                else:
                    self.problems.append(Problem(
                        ProblemKind.BAD_MARKER, where,
                        "cites arguments must be string literals (trace reads them without "
                        "running the tests)"))

    def visit_Module(self, node: ast.Module) -> None:
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets):
                self._marks(stmt.value, self.rel)
        self.generic_visit(node)

    def _decorated(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
                   prefix: str) -> None:
        node_id = "::".join([self.rel, *self.stack, node.name])
        marked = [d for d in node.decorator_list
                  if isinstance(d, ast.Call) and _is_cites_mark(d.func)]
        if marked and not node.name.startswith(prefix):
            self.problems.append(Problem(
                ProblemKind.BAD_MARKER, f"{self.rel}:{node.lineno}",
                f"cites on {node.name!r}, which pytest does not collect as a test"))
        for decorator in marked:
            self._marks(decorator, node_id)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._decorated(node, "Test")
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._decorated(node, "test")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._decorated(node, "test")


def collect_test_cites(tests_dir: Path, root: Path) -> tuple[list[Cite], list[Problem]]:
    """Every ``@pytest.mark.cites(...)`` under ``tests_dir``, by an AST scan (no import, no
    test run): fast, and blind to nothing a decorator or ``pytestmark`` can say statically."""
    cites: list[Cite] = []
    problems: list[Problem] = []
    for path in sorted(tests_dir.rglob("*.py")):
        rel = _rel(path, root)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        except SyntaxError as exc:
            problems.append(Problem(ProblemKind.BAD_MARKER, f"{rel}:{exc.lineno}",
                                    f"cannot parse: {exc.msg}"))
            continue
        scan = _MarkScan(rel)
        scan.visit(tree)
        cites += scan.cites
        problems += scan.problems
    return cites, problems




# --- sabotage matrix -------------------------------------------------------------------------


@dataclass(frozen=True)
class SabotageMatrix:
    """``semafore sim sabotage --json``: which scenarios and tests kill which sabotage."""

    source: str
    digest: str
    killers: Mapping[str, frozenset[str]]  # sabotage name -> scenario names / test node ids

    def killed_by(self, scenarios: Iterable[str], tests: Iterable[str]) -> list[str]:
        """Sabotages any of these kill. A killing test id matches a cited node when equal
        after dropping ``[params]``, or when the cite is on its class or module."""
        names = set(scenarios)
        nodes = list(tests)
        out = []
        for sabotage, killers in self.killers.items():
            for killer in killers:
                bare = killer.split("[", 1)[0]
                if bare in names or any(bare == n or bare.startswith(n + "::") for n in nodes):
                    out.append(sabotage)
                    break
        return sorted(out)


def load_matrix(path: Path, root: Path) -> SabotageMatrix:
    """Read and check a sabotage matrix; errors name the file and the field."""
    raw = _read(path, "sabotage matrix")
    source = _rel(path, root)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TraceInputError(source, f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or not isinstance(data.get("sabotages"), list):
        raise TraceInputError(source, "expected an object with a 'sabotages' list")
    killers: dict[str, set[str]] = {}
    for i, entry in enumerate(data["sabotages"]):
        where = f"{source}: sabotages[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TraceInputError(where, "'name' must be a string")
        by = entry.get("killed_by", [])
        if not isinstance(by, list) or not all(isinstance(k, str) for k in by):
            raise TraceInputError(f"{where}.killed_by", "must be a list of strings")
        killers.setdefault(entry["name"], set()).update(by)
    for key in ("scenarios", "tests"):
        for i, entry in enumerate(data.get(key, [])):
            where = f"{source}: {key}[{i}]"
            if not isinstance(entry, dict):
                raise TraceInputError(where, "must be an object")
            killer = entry.get("name", entry.get("id"))
            kills = entry.get("kills", [])
            if not isinstance(killer, str):
                raise TraceInputError(f"{where}.name", "must be a string")
            if not isinstance(kills, list) or not all(isinstance(k, str) for k in kills):
                raise TraceInputError(f"{where}.kills", "must be a list of strings")
            for sabotage in kills:
                killers.setdefault(sabotage, set()).add(killer)
    return SabotageMatrix(source, hashlib.sha256(raw.encode()).hexdigest()[:12],
                          {k: frozenset(v) for k, v in killers.items()})


# --- the trace -------------------------------------------------------------------------------


@dataclass
class RowCoverage:
    row: Row
    scenarios: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)
    sabotages: list[str] | None = None  # None: no matrix given
    untestable: str | None = None


@dataclass
class Trace:
    rows: list[RowCoverage]
    references: dict[str, list[str]]  # section reference -> citers
    problems: list[Problem]
    matrix: SabotageMatrix | None = None


@dataclass(frozen=True)
class Sources:
    """Where the trace reads from; :meth:`default` is the repository layout (SPEC.md and the
    seed live beside the project, in ``../shared``, as docs/protocol.md says)."""

    root: Path
    seed: Path
    spec: Path
    scenarios: Path
    tests: Path
    docs: Path
    out: Path

    @classmethod
    def default(cls, root: Path) -> Sources:
        shared = root.resolve().parent / "shared"
        return cls(root=root, seed=shared / "seed" / "architecture-and-threat-model.txt",
                   spec=shared / "SPEC.md", scenarios=root / "scenarios", tests=root / "tests",
                   docs=root / "docs", out=root / "docs" / "traceability.md")


def all_rows(seed_text: str, spec_text: str, docs_texts: Iterable[str],
             rules: Sequence[SpecRule] = SPEC_RULES) -> tuple[list[Row], list[Problem]]:
    """Every row, in document order per group, and SPEC drift problems."""
    rows = seed_rows(seed_text)
    titles = adr_titles(seed_text)
    adrs = adr_numbers(seed_text)
    for text in [spec_text, *docs_texts]:
        adrs += [a for a in re.findall(r"\bADR-\d{4}\b", text) if a not in adrs]
    rows += [Row(a, RowGroup.ADR, titles.get(a, "named in SPEC.md or docs/, not in seed §6"))
             for a in sorted(adrs)]
    spec, problems = spec_rows(spec_text, rules)
    return rows + spec, problems


def build(sources: Sources, matrix: Path | None = None, *,
          rules: Sequence[SpecRule] | None = None,
          untestable: Mapping[str, str] | None = None) -> Trace:
    """Read every source, resolve every cite, and report every problem except staleness
    (:func:`check` adds that). ``rules`` / ``untestable`` default to :data:`SPEC_RULES` /
    :data:`UNTESTABLE` (read at call time)."""
    rules = SPEC_RULES if rules is None else rules
    untestable = UNTESTABLE if untestable is None else untestable
    seed_text = _read(sources.seed, "seed (architecture and threat model)")
    spec_text = _read(sources.spec, "SPEC")
    docs = [p for p in sorted(sources.docs.glob("*.md"))
            if p.resolve() != sources.out.resolve()]
    rows, problems = all_rows(seed_text, spec_text,
                              [p.read_text(encoding="utf-8") for p in docs], rules)
    index = CiteIndex(rows, seed_sections(seed_text), spec_sections(spec_text),
                      doc_headings(sources.docs, exclude=[sources.out]))
    s_cites, s_problems = scenario_cites(sources.scenarios, sources.root)
    t_cites, t_problems = collect_test_cites(sources.tests, sources.root)
    problems += s_problems + t_problems
    coverage = {r.id: RowCoverage(r) for r in rows}
    references: dict[str, list[str]] = {}
    for cite in s_cites + t_cites:
        resolution = index.resolve(cite.text)
        if resolution.problem:
            kind, message = resolution.problem
            problems.append(Problem(kind, cite.citer.location, message))
            continue
        if resolution.reference:
            citers = references.setdefault(resolution.reference, [])
            if cite.citer.name not in citers:
                citers.append(cite.citer.name)
        for row_id in resolution.rows:
            target = coverage[row_id]
            bucket = target.scenarios if cite.citer.kind == "scenario" else target.tests
            if cite.citer.name not in bucket:
                bucket.append(cite.citer.name)
    for row_id, reason in untestable.items():
        if row_id not in coverage:
            problems.append(Problem(ProblemKind.UNTESTABLE_LIST, row_id,
                                    "listed as untestable but no such row exists"))
            continue
        entry = coverage[row_id]
        entry.untestable = reason
        if entry.scenarios or entry.tests:
            problems.append(Problem(
                ProblemKind.UNTESTABLE_LIST, row_id,
                f"listed as untestable but covered by {sorted(entry.scenarios + entry.tests)}; "
                "remove it from UNTESTABLE"))
    loaded = load_matrix(matrix, sources.root) if matrix is not None else None
    for entry in coverage.values():
        entry.scenarios.sort()
        entry.tests.sort()
        if loaded is not None:
            entry.sabotages = loaded.killed_by(entry.scenarios, entry.tests)
        if not (entry.scenarios or entry.tests or entry.untestable):
            problems.append(Problem(ProblemKind.UNCOVERED, entry.row.id,
                                    f"{entry.row.title!r} has no scenario and no test"))
    return Trace(list(coverage.values()), dict(sorted(references.items())), problems, loaded)


# --- output ----------------------------------------------------------------------------------


_MATRIX_LINE = re.compile(r"^Sabotage matrix: `([^`]+)`", re.MULTILINE)


def _cell(items: Sequence[str], *, code: bool = True) -> str:
    if not items:
        return "—"
    return "<br>".join(f"`{i}`" if code else i for i in items)


def render(trace: Trace) -> str:
    """docs/traceability.md: deterministic (no dates), so staleness is a text comparison."""
    covered = sum(1 for r in trace.rows if r.scenarios or r.tests)
    untestable = sum(1 for r in trace.rows if r.untestable)
    lines = [
        "# Traceability matrix",
        "",
        "<!-- Generated by `semafore sim trace` (simulator/trace.py); do not edit by hand. -->",
        "",
        "Every seed threat and non-guarantee, every ADR the seed, SPEC.md or docs/ cite, and "
        "every SPEC rule, with the scenarios (`cites:`) and tests (`@pytest.mark.cites`) that "
        "exercise it. Section-level cites are references and cover no row; see "
        "docs/scenarios.md \"Citing what a scenario covers\" and docs/simulator.md "
        "\"Traceability\".",
        "",
        f"Rows: {len(trace.rows)}; covered: {covered}; not testable here: {untestable}; "
        f"uncovered: {len(trace.rows) - covered - untestable}.",
        "",
    ]
    if trace.matrix is None:
        lines += ["Sabotage matrix: none given (`semafore sim trace --matrix FILE`).", ""]
    else:
        lines += [f"Sabotage matrix: `{trace.matrix.source}` (sha256 {trace.matrix.digest}).",
                  ""]
    for group in RowGroup:
        lines += [f"## {GROUP_HEADINGS[group]}", "",
                  "| Row | Title | Scenarios | Tests | Sabotages killed |",
                  "|---|---|---|---|---|"]
        for entry in (r for r in trace.rows if r.row.group is group):
            if entry.untestable and not (entry.scenarios or entry.tests):
                what = f"not testable here: {entry.untestable}"
                cells = [what, "—"]
            else:
                cells = [_cell(entry.scenarios), _cell(entry.tests)]
            kills = "—" if entry.sabotages is None else _cell(entry.sabotages)
            title = entry.row.title.replace("|", "\\|")
            lines.append(f"| {entry.row.id} | {title} | {cells[0]} | {cells[1]} | {kills} |")
        lines.append("")
    lines += ["## Section references (cover no row)", "",
              "| Reference | Cited by |", "|---|---|"]
    for reference, citers in trace.references.items():
        lines.append(f"| {reference} | {_cell(sorted(citers))} |")
    lines.append("")
    return "\n".join(lines)


def matrix_named_in(doc_text: str) -> str | None:
    """The matrix path a rendered doc records (``--check`` re-renders with the same one)."""
    match = _MATRIX_LINE.search(doc_text)
    return match.group(1) if match else None


def check(trace: Trace, doc: Path) -> list[Problem]:
    """Every problem of ``trace`` plus ``stale-doc`` when ``doc`` is not its rendering."""
    problems = list(trace.problems)
    try:
        current = doc.read_text(encoding="utf-8")
    except OSError:
        current = None
    if current != render(trace):
        problems.append(Problem(ProblemKind.STALE_DOC, str(doc),
                                "missing" if current is None else
                                "differs from a fresh render; run `semafore sim trace`"))
    return problems


def to_json(trace: Trace) -> str:
    """Machine output: rows with their coverage, references and problems."""
    data: dict[str, Any] = {
        "rows": [{"id": e.row.id, "group": e.row.group.value, "title": e.row.title,
                  "scenarios": e.scenarios, "tests": e.tests, "sabotages": e.sabotages,
                  "untestable": e.untestable} for e in trace.rows],
        "references": trace.references,
        "matrix": None if trace.matrix is None else trace.matrix.source,
        "problems": [{"kind": p.kind.value, "where": p.where, "message": p.message}
                     for p in trace.problems],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
