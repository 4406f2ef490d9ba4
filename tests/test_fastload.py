"""The compiled loaders give what marshmallow gives, or step aside for it."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import marshmallow as ma
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.common import PaginationQuery
from schemas.fastload import compile_plain, fast_loader
from schemas.sync import PLANNABLE_SECTORS, EncounterSchema, ShiftSchema
from schemas.vocabulary import (
    AGE_BANDS,
    GENDERS,
    REFERRAL_DESTINATIONS,
    REFERRAL_STATUSES,
    SERVICES,
    SETTINGS,
    SHIFT_KINDS,
)

SCHEMAS = {"encounter": EncounterSchema(), "shift": ShiftSchema()}
PLAIN = {kind: compile_plain(schema) for kind, schema in SCHEMAS.items()}
CODES = (*SETTINGS, *AGE_BANDS, *GENDERS, *SERVICES, *REFERRAL_DESTINATIONS, *SHIFT_KINDS)

uuids = st.uuids().map(str)
moments = st.builds(
    lambda at, minutes: at.astimezone(timezone(timedelta(minutes=minutes))).isoformat(),
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([0, 60, 120, -300]),
)
people = st.fixed_dictionaries(
    {},
    optional={
        "age_band": st.sampled_from(AGE_BANDS),
        "gender": st.sampled_from(GENDERS),
        "first_contact": st.booleans(),
        "ref": st.text(min_size=8, max_size=40),
    },
)
referrals = st.fixed_dictionaries(
    {"to": st.sampled_from(REFERRAL_DESTINATIONS), "status": st.sampled_from(REFERRAL_STATUSES)},
    optional={"structure": st.text(min_size=1, max_size=20)},
)


@st.composite
def encounters(draw: st.DrawFn) -> dict[str, Any]:
    item = draw(
        st.fixed_dictionaries(
            {
                "id": uuids,
                "occurred_at": moments,
                "location": st.fixed_dictionaries(
                    {
                        "lat": st.floats(min_value=-90, max_value=90) | st.integers(-90, 90),
                        "lon": st.floats(min_value=-180, max_value=180),
                    },
                    optional={"accuracy_m": st.integers(0, 500) | st.floats(0, 500)},
                )
                # A hexagon the phone snapped itself: any 15 hex digits pass the schema.
                | st.fixed_dictionaries({"cell": st.from_regex(r"\A[0-9a-f]{15}\Z")}),
                "setting": st.sampled_from(SETTINGS),
                "people": st.integers(1, 50),
            },
            optional={
                "shift_id": st.none() | uuids,
                "kits": st.dictionaries(st.text(min_size=1, max_size=32), st.integers(0, 500)),
                "services": st.lists(st.sampled_from(SERVICES), unique=True),
                "referrals": st.lists(referrals, max_size=3),
            },
        )
    )
    if item["people"] == 1 and draw(st.booleans()):
        item["person"] = draw(people)
    return item


shifts = st.fixed_dictionaries(
    {
        "id": uuids,
        "kind": st.sampled_from(SHIFT_KINDS),
        "started_at": st.just("2026-11-20T20:00:00+01:00"),
        "ended_at": st.sampled_from(["2026-11-21T01:30:00+01:00", "2026-11-21T00:30:00Z"]),
    },
    optional={"planned_sectors": st.lists(st.sampled_from(PLANNABLE_SECTORS), unique=True)},
)
VALID = {"encounter": encounters(), "shift": shifts}

# Values a phone (or an attacker) could put anywhere: near misses of every kind.
odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1, 0, 1.0, 0.0, "1", "true", "", "2026-11-20T10:00:00", "not-a-uuid"]),
    st.sampled_from(CODES),
    uuids,
    moments,
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, each in value.items():
            found += _paths(each, (*path, key))
    elif isinstance(value, list):
        for index, each in enumerate(value):
            found += _paths(each, (*path, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> Any:
    item = copy.deepcopy(draw(VALID[kind]))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(item)))
        if not path:
            return draw(odd_values)
        parent = item
        for step in path[:-1]:
            parent = parent[step]
        operation = draw(st.sampled_from(["replace", "drop", "add"]))
        if operation == "replace":
            parent[path[-1]] = draw(odd_values)
        elif operation == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["organisation", "lat", "cell", "extra", "ref"]))] = 1
    return item


def _typed(value: Any) -> Any:
    """A value with every type spelled out: 1, 1.0 and True compare equal in Python."""
    if isinstance(value, dict):
        return ("dict", sorted((key, _typed(each)) for key, each in value.items()))
    if isinstance(value, list):
        return ("list", [_typed(each) for each in value])
    if isinstance(value, datetime):
        return ("datetime", value.isoformat())
    return (type(value).__name__, repr(value))


def _marshmallow(kind: str, raw: Any) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = SCHEMAS[kind].load(raw)
    except ma.ValidationError:
        return None
    return loaded


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_valid_items_take_the_compiled_path_and_load_the_same(kind: str, data: Any) -> None:
    raw = data.draw(VALID[kind])
    expected = _marshmallow(kind, raw)
    got = PLAIN[kind](raw)
    if expected is None:
        # A drawn item the schema-level rules refuse (a service twice, say): both refuse.
        assert got is None
        return
    assert got is not None, raw
    assert _typed(got) == _typed(expected)


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_near_misses_load_the_same_or_go_to_marshmallow(kind: str, data: Any) -> None:
    raw = data.draw(mutated(kind))
    expected = _marshmallow(kind, raw)
    got = PLAIN[kind](raw)
    if expected is None:
        assert got is None, raw
    elif got is not None:
        assert _typed(got) == _typed(expected)
    # Through the loader the sync uses: marshmallow's answer whichever path ran.
    if expected is None:
        with pytest.raises(ma.ValidationError):
            fast_loader(SCHEMAS[kind])(raw)
    else:
        assert _typed(fast_loader(SCHEMAS[kind])(raw)) == _typed(expected)


def test_the_examples_that_matter_most() -> None:
    base = {
        "id": str(uuid.uuid4()),
        "occurred_at": "2026-11-20T21:30:00+01:00",
        "location": {"lat": 48, "lon": 2.37},
        "setting": SETTINGS[0],
        "people": 1,
        "person": {"first_contact": True},
    }
    loaded = PLAIN["encounter"](base)
    assert loaded is not None
    assert type(loaded["location"]["lat"]) is float
    assert loaded["id"] == uuid.UUID(base["id"])
    assert (loaded["kits"], loaded["services"], loaded["referrals"]) == ({}, [], [])
    assert "shift_id" not in loaded  # no default: absent, as marshmallow leaves it
    for person in ({"first_contact": 1}, {"first_contact": "true"}, {"unknown": 1}):
        assert PLAIN["encounter"]({**base, "person": person}) is None
    assert PLAIN["encounter"]({**base, "people": True}) is None
    assert PLAIN["encounter"]({**base, "people": 2}) is None  # person with a group
    assert PLAIN["encounter"]({**base, "organisation": "other"}) is None
    assert PLAIN["encounter"]({**base, "occurred_at": "2026-11-20T21:30:00"}) is None
    hexagon = {**base, "location": {"cell": "891fb466257ffff"}}
    assert PLAIN["encounter"](hexagon) == {**loaded, "location": {"cell": "891fb466257ffff"}}
    for location in (
        {"cell": "891fb466257ffff", "lat": 48.0},
        {"cell": "891FB466257FFFF"},
        {"lat": 48.0},
        {},
    ):
        assert PLAIN["encounter"]({**base, "location": location}) is None


def test_what_cannot_compile_is_refused_when_built() -> None:
    with pytest.raises(TypeError, match="post_load"):
        compile_plain(PaginationQuery())
