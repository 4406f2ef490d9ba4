"""Incremental rollups equal a rebuild from raw rows, whatever happened before."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from outreach.extensions import db
from outreach.models import Role, RollupCell, RollupPerson, RollupSector, RollupTotal
from outreach.models.rollups import DAY_WORDS
from outreach.services import rollups, writes
from outreach.services.context import OPERATOR
from outreach.services.crypto import person_key
from outreach.services.disclosure import KEY_MASK
from outreach.services.readmodel import ReadModel
from outreach.services.stats.counters import (
    AreaSums,
    Sum,
    area_amounts,
    cell_amounts,
    counter_sums,
    distinct_people_met,
)
from outreach.services.stats.filtered import distinct_people, kept_counters
from outreach.services.stats.scope import Scope, bucket_start, period_spans
from outreach.services.stats.series import BUCKET_UNITS, SERIES_MEASURES
from tests.helpers import Account, empty_database, headers_for
from tests.payloads import encounter

POSITIONS = [(48.8841, 2.3690), (48.8878, 2.3625), (48.8588, 2.3472), (48.8967, 2.3735)]

encounter_args = st.fixed_dictionaries(
    {
        "position": st.sampled_from(POSITIONS),
        "people": st.integers(1, 4),
        "gender": st.sampled_from(["f", "m", "x", "unknown"]),
        "first": st.booleans(),
        "ref": st.none() | st.sampled_from(["ref-alpha-01", "ref-bravo-02", "ref-charlie-3"]),
        "kits": st.dictionaries(
            st.sampled_from(["pipe", "kit_base", "naloxone"]), st.integers(0, 5), max_size=3
        ),
        "referrals": st.lists(
            st.fixed_dictionaries(
                {
                    "to": st.sampled_from(["assore", "espace_repos"]),
                    "status": st.sampled_from(["proposed", "accepted"]),
                }
            ),
            max_size=2,
        ),
        "hours_ago": st.integers(1, 24 * 20),
    }
)
operation = st.one_of(
    st.tuples(st.just("sync"), st.lists(encounter_args, min_size=1, max_size=4)),
    st.tuples(st.just("amend"), st.integers(0, 50), encounter_args),
    st.tuples(st.just("delete"), st.integers(0, 50)),
)


def _payload(args: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    item = encounter(position=args["position"], kits=args["kits"], referrals=args["referrals"])
    item["occurred_at"] = (datetime.now(UTC) - timedelta(hours=args["hours_ago"])).isoformat()
    item["people"] = args["people"]
    if args["people"] == 1:
        item["person"] = {"gender": args["gender"], "first_contact": args["first"]}
        if args["ref"]:
            item["person"]["ref"] = args["ref"]
    else:
        item.pop("person")
    return item


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=st.lists(operation, min_size=1, max_size=8))
def test_incremental_equals_rebuilt(
    app: Flask, make_account: Callable[..., Account], operations: list[Any]
) -> None:
    empty_database(app)
    client: FlaskClient = app.test_client()
    org_admin = make_account(Role.ORG_ADMIN, "maraude-nord")
    headers = headers_for(client, org_admin)
    stored: list[str] = []
    for op in operations:
        if op[0] == "sync":
            items = [_payload(args) for args in op[1]]
            response = client.post("/api/v1/sync", json={"encounters": items}, headers=headers)
            assert response.status_code == 200
            stored += [r["id"] for r in response.get_json()["results"] if r["status"] == "created"]
        elif stored and op[0] == "amend":
            target = stored[op[1] % len(stored)]
            changes = {k: v for k, v in _payload(op[2]).items() if k not in {"id"}}
            response = client.patch(f"/api/v1/encounters/{target}", json=changes, headers=headers)
            # ``stored`` holds only what is stored and not deleted: every amend finds its row.
            assert response.status_code == 200, response.get_json()
        elif stored and op[0] == "delete":
            target = stored.pop(op[1] % len(stored))
            response = client.delete(
                f"/api/v1/encounters/{target}", json={"reason": "other"}, headers=headers
            )
            assert response.status_code == 204
    with app.app_context():
        session = db.session
        with session.begin():
            incremental = rollups.snapshot(session)
            writes.record(session, OPERATOR, "rollups.rebuild", rollups.rebuild(session).change)
            rebuilt = rollups.snapshot(session)
    assert incremental == rebuilt
    # No empty counter is kept: every stored row still counts at least one encounter
    # (its basis, or the count its table keeps last), or a day of a person-year.
    count_at = {"sectors": 1, "cells": 1, "totals": 1}
    for name, table in incremental.items():
        for values in table.values():
            if name == "person_years":
                assert any(values[: len(DAY_WORDS)])
            else:
                assert values[count_at.get(name, -1)] > 0


def test_rollups_rebuild_command(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient, headers: dict[str, str]
) -> None:
    client.post(
        "/api/v1/sync", json={"encounters": [encounter() for _ in range(5)]}, headers=headers
    )
    result = runner.invoke(args=["rollups", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "Rebuilt from 5 encounters" in result.output
    assert "0 differed" in result.output
    assert str(uuid.UUID(int=0)) not in result.output


def test_counters_written_without_their_change_marked_never_commit(app: Flask) -> None:
    empty_database(app)
    deltas = rollups.Deltas()
    deltas.add(
        {
            "record_key": 7,
            "local_day": date(2025, 1, 6),
            "organisation_id": uuid.UUID(int=1),
            "sector": "eole",
            "shift_kind": "maraude",
            "cell": "891fb466257ffff",
            "people": 1,
            "age_band": None,
            "gender": "f",
            "first_contact": True,
            "ref_hash": "a" * 64,
            "kits": {},
            "services": [],
            "referrals": [],
        }
    )
    with app.app_context():
        session = db.session
        with pytest.raises(writes.UnfinishedWrite), session.begin():
            deltas.apply(session)
        with session.begin():
            assert rollups.snapshot(session)["sectors"] == {}
            assert rollups.generation(session) == 0


ORGANISATIONS = [uuid.UUID(int=1), uuid.UUID(int=2)]
# Across a leap year's last day (the bitmaps' last bit) and a year boundary.
FIRST_DAY = date(2024, 11, 20)
LAST_DAY = date(2025, 3, 10)
days = st.dates(FIRST_DAY, LAST_DAY)
stored_rows = st.builds(
    lambda day, organisation_id, sector, kind, people, ref_hash, kits, cell, referrals, services, key: {  # noqa: E501
        "record_key": key,
        "local_day": day,
        "organisation_id": organisation_id,
        "sector": sector,
        "shift_kind": kind,
        "cell": cell,
        "shift_id": None,
        "people": people,
        "age_band": None,
        "gender": "f" if people == 1 else None,
        "first_contact": people == 1,
        "ref_hash": ref_hash if people == 1 else None,
        "kits": kits,
        "services": services,
        "referrals": referrals,
    },
    days,
    st.sampled_from(ORGANISATIONS),
    st.sampled_from(["stalingrad", "eole"]),
    st.sampled_from(["maraude", "none"]),
    st.integers(1, 3),
    st.sampled_from(["a" * 64, "b" * 64, "c" * 64]),
    st.dictionaries(st.sampled_from(["pipe", "naloxone"]), st.integers(0, 3), max_size=2),
    st.sampled_from(["891fb466257ffff", "891fb46625bffff"]),
    st.sampled_from([[], [{"to": "assore", "status": "accepted"}]]),
    st.sampled_from([["soins"], []]),
    st.integers(-(2**31), 2**31 - 1),
)


def _scope(
    first: date,
    second: date,
    organisation_id: uuid.UUID | None,
    sector: str | None = None,
    shift_kind: str | None = None,
) -> Scope:
    return Scope(
        start=min(first, second),
        end=max(first, second),
        sector=sector,
        organisation=None,
        organisation_id=organisation_id,
        shift_kind=shift_kind,
    )


scopes = st.builds(_scope, days, days, st.sampled_from([None, *ORGANISATIONS]))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(stored_rows, min_size=1, max_size=30),
    removed=st.sets(st.integers(0, 29)),
    asked=st.lists(scopes, min_size=1, max_size=5),
)
def test_organisation_rollups_answer_like_the_fine_ones(
    app: Flask, rows: list[dict[str, Any]], removed: set[int], asked: list[Scope]
) -> None:
    empty_database(app)
    # Span rows a worker keeps from the first maps, then asked again after the change.
    kept = ReadModel(map_features=0, map_span_rows=10_000, day_rows=0)
    with app.app_context():
        session = db.session
        _write(session, rows)
        with session.begin():
            for scope in asked:
                cell_amounts(session, scope, kept)
        _write(session, [rows[index] for index in removed & set(range(len(rows)))], sign=-1)
        with session.begin():
            for scope in asked:
                assert scope.whole_organisations
                fine = counter_sums(session, RollupSector, scope.where(RollupSector))
                whole = counter_sums(session, RollupTotal, scope.spans_where(RollupTotal))
                assert whole == fine
                people = _fine_distinct_people(session, scope)
                assert distinct_people_met(session, scope) == (people.value, people.key)
                assert whole.get(("identified",), Sum(0, 0, 0)).value == people.basis
                fine_cells = _by_area(
                    area_amounts(session, RollupCell, scope.where(RollupCell), RollupCell.cell)
                )
                assert _by_area(cell_amounts(session, scope, kept)) == fine_cells
                fresh = ReadModel(map_features=0, map_span_rows=0, day_rows=0)
                assert _by_area(cell_amounts(session, scope, fresh)) == fine_cells
                by_day = counter_sums(
                    session, RollupSector, scope.where(RollupSector), by=(RollupSector.day,)
                )
                for bucket, units in BUCKET_UNITS.items():
                    by_start = counter_sums(
                        session,
                        RollupTotal,
                        scope.spans_where(RollupTotal, units),
                        by=(RollupTotal.start,),
                    )
                    assert _per_bucket(by_start, bucket) == _per_bucket(by_day, bucket)


filtered_scopes = st.builds(
    _scope,
    days,
    days,
    st.sampled_from([None, *ORGANISATIONS]),
    st.sampled_from([None, "stalingrad", "eole", "chapelle"]),
    st.sampled_from([None, "maraude", "none", "rdr"]),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(stored_rows, min_size=1, max_size=30),
    changed=st.sets(st.integers(0, 29)),
    asked=st.lists(filtered_scopes, min_size=1, max_size=5),
)
def test_filtered_stats_from_kept_days_answer_like_the_fine_rows(
    app: Flask, rows: list[dict[str, Any]], changed: set[int], asked: list[Scope]
) -> None:
    """Filtered summaries, series and sector maps summed from the day rows a worker
    keeps equal those of the fine rows, after deletions and amendments that change only
    services or only the person ref (neither touches a hexagon measure)."""
    empty_database(app)
    kept = ReadModel(map_features=0, map_span_rows=0, day_rows=10_000)
    with app.app_context():
        session = db.session
        _write(session, rows)
        with session.begin():
            for scope in asked:
                _kept_answers(session, scope, kept)
        with session.begin():
            amended = rollups.Deltas()
            for index in changed & set(range(len(rows))):
                row = rows[index]
                amended.add(row, sign=-1)
                if index % 3 == 1:
                    amended.add({**row, "services": [] if row["services"] else ["soins"]})
                elif index % 3 == 2 and row["ref_hash"]:
                    amended.add({**row, "ref_hash": "d" * 64})
            writes.record(session, OPERATOR, "rollups.test", amended.apply(session))
        with session.begin():
            for scope in asked:
                fine = _fine_answers(session, scope)
                assert _kept_answers(session, scope, kept) == fine
                assert (
                    _kept_answers(
                        session, scope, ReadModel(map_features=0, map_span_rows=0, day_rows=0)
                    )
                    == fine
                )


def _write(session: Any, rows: list[dict[str, Any]], sign: int = 1) -> None:
    """Apply the counters of ``rows`` (``sign`` -1: take them out) in one transaction."""
    with session.begin():
        deltas = rollups.Deltas()
        for row in rows:
            deltas.add(row, sign)
        writes.record(session, OPERATOR, "rollups.test", deltas.apply(session))


SERIES_BUCKETS = ("day", "week", "month")


def _kept_answers(session: Any, scope: Scope, kept: ReadModel) -> tuple[Any, ...]:
    counters = kept_counters(session, scope, kept)
    return (
        counters.by_metric(),
        _by_area(counters.by_sector()),
        *(counters.by_bucket(list(SERIES_MEASURES.values()), bucket) for bucket in SERIES_BUCKETS),
        distinct_people(session, scope, kept),
    )


def _fine_answers(session: Any, scope: Scope) -> tuple[Any, ...]:
    where = scope.where(RollupSector)
    by_day = counter_sums(
        session,
        RollupSector,
        where,
        by=(RollupSector.day,),
        metrics=SERIES_MEASURES.values(),
    )
    return (
        {key[0]: amount for key, amount in counter_sums(session, RollupSector, where).items()},
        _by_area(area_amounts(session, RollupSector, where, RollupSector.sector)),
        *(
            {key: Sum(*amount) for key, amount in _per_bucket(by_day, bucket).items()}
            for bucket in SERIES_BUCKETS
        ),
        _fine_distinct_people(session, scope),
    )


def _fine_distinct_people(session: Any, scope: Scope) -> Sum:
    """Distinct person refs of the scope, their encounters and the sum of their person
    keys, from the person-day rows."""
    per_person = session.execute(
        select(RollupPerson.ref_hash, func.sum(RollupPerson.encounters))
        .where(*scope.where(RollupPerson))
        .group_by(RollupPerson.ref_hash)
    ).all()
    return Sum(
        len(per_person),
        sum(int(encounters) for _ref, encounters in per_person),
        sum(person_key(ref) for ref, _encounters in per_person) & KEY_MASK,
    )


def _by_area(sums: AreaSums) -> dict[str, tuple[int, ...]]:
    return dict(zip(sums.areas, map(tuple, sums.amounts.tolist()), strict=True))


def _per_bucket(
    sums: dict[tuple[Any, ...], Sum], bucket: str
) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    totals: dict[tuple[Any, ...], tuple[int, int, int]] = {}
    for (day, metric), amount in sums.items():
        key = (bucket_start(day, bucket), metric)
        value, basis, cell_key = totals.get(key, (0, 0, 0))
        totals[key] = (
            value + amount.value,
            basis + amount.basis,
            (cell_key + amount.key) & KEY_MASK,
        )
    return totals


@pytest.mark.parametrize(
    ("start", "end", "spans"),
    [
        # Wednesday to the Monday after next: one whole week, days around it.
        (
            date(2025, 1, 8),
            date(2025, 1, 20),
            [
                ("day", date(2025, 1, 8), date(2025, 1, 12)),
                ("week", date(2025, 1, 13), date(2025, 1, 13)),
                ("day", date(2025, 1, 20), date(2025, 1, 20)),
            ],
        ),
        (date(2025, 1, 1), date(2025, 1, 31), [("month", date(2025, 1, 1), date(2025, 1, 1))]),
        # A leap year's last days, two whole months, then a week and days of March.
        (
            date(2024, 12, 30),
            date(2025, 3, 11),
            [
                ("day", date(2024, 12, 30), date(2024, 12, 31)),
                ("month", date(2025, 1, 1), date(2025, 2, 1)),
                ("day", date(2025, 3, 1), date(2025, 3, 2)),
                ("week", date(2025, 3, 3), date(2025, 3, 3)),
                ("day", date(2025, 3, 10), date(2025, 3, 11)),
            ],
        ),
        (date(2025, 2, 5), date(2025, 2, 7), [("day", date(2025, 2, 5), date(2025, 2, 7))]),
    ],
)
def test_period_spans(start: date, end: date, spans: list[tuple[str, date, date]]) -> None:
    assert period_spans(start, end) == spans


_ORGANISATIONS = [uuid.UUID(int=n) for n in (1, 2**127, 2**128 - 1)]
_amounts = st.tuples(
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-(2**33), max_value=2**33),
).map(list)
_sector_counters = st.dictionaries(
    st.tuples(
        st.dates(min_value=date(2025, 1, 1), max_value=date(2025, 1, 9)),
        st.sampled_from(_ORGANISATIONS),
        st.sampled_from(["S1", "S2", "hors_secteur"]),
        st.sampled_from(["maraude", "none"]),
    ),
    st.dictionaries(st.sampled_from(["encounters", "kit:a", "kit:b", "people"]), _amounts),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(groups=_sector_counters)
def test_counter_rows_built_by_group_are_those_of_every_full_key_sorted(
    groups: dict[tuple[Any, ...], dict[str, list[int]]],
) -> None:
    # Every writer locks counter rows in the order of their full keys (the order
    # concurrent transactions must share); the group-at-a-time build must keep it.
    flat = {
        (*group, metric): amounts
        for group, counters in groups.items()
        for metric, amounts in counters.items()
    }
    by_group = rollups._CounterChange.by_metric(RollupSector, rollups.SECTOR_KEY, groups)
    by_full_key = rollups._CounterChange.of(
        RollupSector,
        rollups.COUNTER_KEY,
        rollups.COUNTER_VALUES,
        flat,
        rollups.COUNTER_KEYS,
        "basis",
    )
    assert list(by_group.upsert.rows) == list(by_full_key.upsert.rows)
    assert by_group.emptied == by_full_key.emptied
    assert by_group.upsert.key_columns == rollups.COUNTER_KEY
