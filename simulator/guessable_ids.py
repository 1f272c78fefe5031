"""The log reader's dictionary: user and device ids a real deployment plausibly uses.

Seed §2.3 says identifiers reach the operational logs only as 8-hex SHA-256 prefixes, so a
log reader "sees substantially less". An unkeyed prefix of a *guessable* id is no secret: the
reader hashes candidate ids and looks the prefixes up (issue 13 F-12 reversed 6,471 of 10,252
logged values with 16 names). This module builds the candidates such a reader would try,
most likely first, the way password crackers order a wordlist:

1. bare names: common first names, surnames, role accounts (``admin``, ``support``), and
   device names (``phone``, ``laptop``, ``iphone``, ``pixel``…);
2. name combinations in the usual directory formats: ``first.last``, ``firstlast``,
   ``flast``, ``f.last``, ``first_last``, ``first-last``, ``last.first``, ``firstl``…;
   numbered devices (``laptop-2``, ``phone2``) and model names (``iphone-15``, ``pixel-8``);
   ``olivias-iphone``-style owned devices; role accounts bound to an organisation id
   (``operator-acme``, ``acme-admin``: org ids are raw in the logs by design, seed §2.3) and
   every bare name qualified by one (``acme.alice``, ``alice@acme``, ``acme/alice``…), as a
   multi-tenant directory spells its accounts;
3. numbered people (``olivia2``, ``j.smith3``, ``jsmith7``).

``size`` caps the list (a slower adversary); the tier that crosses the cap is sampled with
``seed``, so a capped dictionary is reproducible. Nothing here knows a scenario's cast: the
lists are generic, so what a run reverses measures how guessable its ids are, not how well the
dictionary was tuned (docs/scenarios.md ``log_pseudonyms``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

FIRST_NAMES = (
    "james", "john", "robert", "michael", "william", "david", "richard", "joseph", "thomas",
    "charles", "daniel", "matthew", "anthony", "mark", "paul", "steven", "andrew", "joshua",
    "kevin", "brian", "george", "edward", "ryan", "jacob", "gary", "eric", "jonathan",
    "stephen", "peter", "adam", "noah", "liam", "oliver", "elijah", "lucas", "mason", "ethan",
    "aiden", "harry", "jack", "oscar", "leo", "alex", "sam", "ben", "tom", "dan", "chris",
    "mary", "patricia", "jennifer", "linda", "elizabeth", "barbara", "susan", "jessica",
    "sarah", "karen", "lisa", "nancy", "betty", "sandra", "ashley", "emily", "donna",
    "michelle", "carol", "amanda", "melissa", "deborah", "stephanie", "rebecca", "laura",
    "helen", "anna", "emma", "olivia", "ava", "sophia", "isabella", "mia", "charlotte",
    "amelia", "harper", "evelyn", "grace", "chloe", "lucy", "ella", "kate", "alice", "bob",
    "eve", "dave", "frank", "heidi", "ivan", "judy", "mallory", "trent", "victor", "wendy",
    "mohammed", "muhammad", "ahmed", "ali", "omar", "fatima", "aisha", "yusuf", "hassan",
    "priya", "raj", "rahul", "amit", "anil", "sunil", "deepak", "neha", "pooja", "anjali",
    "arjun", "vikram", "wei", "li", "ming", "jing", "yan", "hui", "lei", "jun", "xin",
    "hiroshi", "yuki", "kenji", "sakura", "jose", "juan", "luis", "carlos", "jorge", "pedro",
    "maria", "ana", "carmen", "lucia", "sofia", "pablo", "diego", "javier", "miguel",
    "pierre", "jean", "louis", "marie", "camille", "hans", "klaus", "jan", "piotr",
    "tomasz", "katarzyna", "olga", "dmitri", "sergei", "natasha", "elena", "kwame",
    "kofi", "amara", "chidi", "ngozi", "sean", "siobhan", "aoife", "niamh", "ciara", "conor",
)
"""Frequent given names across the populations a UK-hosted enterprise messenger serves,
plus the cryptographers' cast (alice, bob, …) every test deployment uses."""

SURNAMES = (
    "smith", "jones", "williams", "taylor", "brown", "davies", "evans", "wilson", "thomas",
    "johnson", "roberts", "robinson", "thompson", "wright", "walker", "white", "edwards",
    "hughes", "green", "hall", "lewis", "harris", "clarke", "patel", "jackson", "wood",
    "turner", "martin", "cooper", "hill", "ward", "morris", "moore", "clark", "lee", "king",
    "baker", "harrison", "morgan", "allen", "james", "scott", "phillips", "watson", "davis",
    "parker", "price", "bennett", "young", "griffiths", "mitchell", "kelly", "cook",
    "carter", "richardson", "bailey", "collins", "bell", "shaw", "murphy", "miller",
    "cox", "richards", "khan", "marshall", "anderson", "simpson", "ellis", "adams", "singh",
    "begum", "wilkinson", "foster", "chapman", "powell", "webb", "rogers", "gray", "mason",
    "ali", "hussain", "campbell", "matthews", "owen", "palmer", "holmes", "mills", "barnes",
    "knight", "lloyd", "butler", "russell", "barker", "fisher", "stevens", "jenkins",
    "murray", "dixon", "harvey", "garcia", "rodriguez", "martinez", "hernandez", "lopez",
    "gonzalez", "perez", "sanchez", "ramirez", "torres", "wang", "zhang", "chen", "liu",
    "yang", "huang", "zhao", "wu", "zhou", "sharma", "kumar", "gupta", "shah", "mehta",
    "nguyen", "tran", "kim", "park", "tanaka", "suzuki", "sato", "muller", "schmidt",
    "schneider", "fischer", "weber", "nowak", "kowalski", "kowalczyk", "ivanov", "petrov",
    "rossi", "russo", "ferrari", "silva", "santos", "oliveira", "costa", "pereira",
    "okafor", "mensah", "obi", "oconnor", "obrien", "byrne", "ryan", "walsh", "doyle",
)
"""Frequent family names (UK census top names, then the largest diasporas)."""

ROLE_NAMES = (
    "admin", "administrator", "operator", "ops", "it", "support", "helpdesk", "security",
    "root", "owner", "manager", "service", "bot", "noreply", "test", "demo", "guest", "user",
    "info", "hr", "finance", "sales", "compliance", "audit", "sysadmin", "superuser",
)
"""Shared and administrative account names."""

DEVICE_NAMES = (
    "phone", "mobile", "cell", "iphone", "android", "pixel", "galaxy", "samsung", "oneplus",
    "laptop", "notebook", "macbook", "mac", "desktop", "pc", "workstation", "imac", "tablet",
    "ipad", "surface", "chromebook", "web", "browser", "console", "cli", "work-phone",
    "work-laptop", "home-pc", "home-laptop", "personal", "main", "primary", "secondary",
    "backup", "device", "client", "desk", "office", "home", "work",
)
"""Device labels apps and users give: form factors, brands, places."""

DEVICE_MODELS = {"iphone": range(6, 17), "pixel": range(3, 10), "galaxy-s": range(8, 25)}
"""Model-numbered devices (``iphone-15``, ``pixel8``, ``galaxy-s23``)."""

_OWNED_DEVICES = ("phone", "iphone", "ipad", "laptop", "macbook", "pixel", "android")
_SEPARATORS = ("", "-", "_")


def _names() -> Iterator[str]:
    yield from FIRST_NAMES
    yield from SURNAMES
    yield from ROLE_NAMES
    yield from DEVICE_NAMES


def _combinations(orgs: Iterable[str]) -> Iterator[str]:
    for first in FIRST_NAMES:
        f = first[0]
        for last in SURNAMES:
            l0 = last[0]
            yield from (f"{first}.{last}", f"{first}{last}", f"{f}{last}", f"{f}.{last}",
                        f"{first}_{last}", f"{first}-{last}", f"{last}.{first}",
                        f"{last}{first}", f"{last}{f}", f"{last}.{f}", f"{first}{l0}",
                        f"{first}.{l0}")
        for device in _OWNED_DEVICES:
            yield from (f"{first}s-{device}", f"{first}-{device}", f"{first}s{device}")
    for device in DEVICE_NAMES:
        for n in range(1, 10):
            for sep in _SEPARATORS:
                yield f"{device}{sep}{n}"
    for model, numbers in DEVICE_MODELS.items():
        for n in numbers:
            for sep in _SEPARATORS:
                yield f"{model}{sep}{n}"
    for org in orgs:
        yield org
        for role in ROLE_NAMES:
            yield from (f"{role}-{org}", f"{org}-{role}", f"{role}.{org}", f"{role}_{org}",
                        f"{role}@{org}", f"{org}.{role}")
        for name in _names():  # org-qualified accounts, as directories write them
            yield from (f"{org}.{name}", f"{name}@{org}", f"{name}.{org}", f"{org}-{name}",
                        f"{org}_{name}", f"{org}/{name}", f"{org}:{name}")


def _numbered() -> Iterator[str]:
    for first in FIRST_NAMES:
        for n in range(1, 100):
            yield f"{first}{n}"
        for last in SURNAMES:
            for n in range(1, 10):
                yield from (f"{first}.{last}{n}", f"{first[0]}{last}{n}")
    for role in ROLE_NAMES:
        for n in range(1, 10):
            yield f"{role}{n}"


def guessable_ids(*, orgs: Iterable[str] = (), size: int | None = None,
                  seed: int = 0) -> list[str]:
    """Candidate ids, most likely first, without duplicates: every tier whole while it fits
    in ``size`` (None: no cap), the tier that crosses the cap sampled with ``seed``.
    ``orgs`` are organisation ids the reader saw (raw) in the logs."""
    if size is not None and size < 1:
        raise ValueError(f"dictionary size must be at least 1, not {size}")
    org_ids = sorted(set(orgs))
    out: list[str] = []
    seen: set[str] = set()
    for tier in (_names(), _combinations(org_ids), _numbered()):
        fresh = [c for c in dict.fromkeys(tier) if c not in seen]
        room = None if size is None else size - len(out)
        if room is not None and len(fresh) > room:
            fresh = random.Random(seed).sample(fresh, room)
        out.extend(fresh)
        seen.update(fresh)
        if size is not None and len(out) >= size:
            break
    return out
