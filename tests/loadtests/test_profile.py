"""Profiles as specifications: every bundled profile parses, and malformed ones name the field."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from loadtests.profile import (
    TASKS,
    ProfileError,
    SizeDistribution,
    available_profiles,
    load_profile,
    parse_profile,
    profile_from_dict,
)

REQUIRED = {"office_hours", "broadcast_burst", "attachment_heavy", "reconnect_storm",
            "prekey_exhaustion", "mixed"}


def minimal(**extra: Any) -> dict[str, Any]:
    return {"name": "p", "description": "d", "models": "m", **extra}


def test_every_required_profile_is_bundled_and_documented() -> None:
    assert set(available_profiles()) >= REQUIRED
    docs = (Path(__file__).resolve().parents[2] / "docs" / "load.md").read_text()
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.name == name
        assert profile.description and profile.models and profile.expects
        assert f"`{name}`" in docs, f"docs/load.md does not describe {name}"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_profile_round_trips_through_its_serialised_form(name: str) -> None:
    profile = load_profile(name)
    assert profile_from_dict(profile.to_dict()) == profile


def test_overrides_replace_only_the_run_bounds() -> None:
    base = load_profile("office_hours")
    changed = base.with_overrides(users=3, spawn_rate=1.5, duration=4, max_requests=50)
    assert (changed.users, changed.spawn_rate, changed.duration, changed.max_requests) == (
        3, 1.5, 4.0, 50)
    assert changed.behaviour == base.behaviour and changed.message_size == base.message_size


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (minimal(colour="red"), "colour"),
        ({"description": "d", "models": "m"}, "name"),
        (minimal(users=0), "users"),
        (minimal(users="ten"), "users"),
        (minimal(duration=-1), "duration"),
        (minimal(message_size={"distribution": "zipf"}), "message_size.distribution"),
        (minimal(message_size={"median": 10, "min": 20, "max": 30}), "message_size.median"),
        (minimal(population={"devices_per_user": {17: 1.0}}), "population.devices_per_user.17"),
        (minimal(population={"devices_per_user": {2: -1}}), "population.devices_per_user.2"),
        (minimal(behaviour={"tasks": {"dance": 1}}), "behaviour.tasks.dance"),
        (minimal(behaviour={"tasks": {"send": 0}}), "behaviour.tasks"),
        (minimal(behaviour={"think_time": [3, 1]}), "behaviour.think_time"),
        (minimal(behaviour={"send_via": "carrier pigeon"}), "behaviour.send_via"),
        (minimal(behaviour={"push_batch": 65}), "behaviour.push_batch"),
        (minimal(behaviour={"push_batch": -1}), "behaviour.push_batch"),
        (minimal(broadcast={"recipients": 5000}), "broadcast.recipients"),
        (minimal(prekeys={"batch": 101}), "prekeys"),
        (minimal(reconnect={"refresh_tokens": "yes"}), "reconnect.refresh_tokens"),
        (minimal(expects="WS send"), "expects"),
    ],
)
def test_malformed_profiles_are_refused_naming_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(data)
    assert info.value.field == field


def test_unknown_profile_name_lists_the_bundled_ones() -> None:
    with pytest.raises(ProfileError, match="office_hours"):
        load_profile("no_such_profile")


def test_invalid_yaml_is_a_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert info.value.field == "profile"


def test_a_profile_file_by_path_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(minimal(users=2, behaviour={"tasks": {t: 1 for t in TASKS}})))
    assert load_profile(str(path)).users == 2


@given(
    st.integers(min_value=1, max_value=10_000),
    st.floats(min_value=0.0, max_value=3.0),
    st.integers(min_value=0, max_value=2**32),
)
def test_size_draws_stay_within_bounds(median: int, sigma: float, seed: int) -> None:
    dist = SizeDistribution("lognormal", median, sigma, 1, max(median, 1) * 4)
    rng = random.Random(seed)
    for _ in range(20):
        assert dist.min <= dist.draw(rng) <= dist.max
