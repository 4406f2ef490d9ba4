"""The read model's memory stays within its budgets, the numbering of areas included,
and what it answers after numbering again is what a worker keeping nothing answers."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import h3
from flask import Flask

from outreach.extensions import db
from outreach.services import rollups, writes
from outreach.services.context import OPERATOR
from outreach.services.readmodel import ReadModel
from outreach.services.stats.counters import cell_amounts
from outreach.services.stats.filtered import distinct_people, kept_counters
from outreach.services.stats.scope import Scope
from tests.helpers import empty_database
from tests.payloads import STALINGRAD

ORGANISATION = uuid.UUID(int=1)
FIRST_DAY = date(2025, 3, 3)
DAYS = 12
# Each day meets its own people in its own hexagons: nothing is met twice.
PER_DAY = 10
BUDGET = 30
CELLS = sorted(h3.grid_disk(h3.latlng_to_cell(*STALINGRAD, 9), 6))[: DAYS * PER_DAY]


def _row(day: int, index: int) -> dict[str, Any]:
    return {
        "record_key": day * PER_DAY + index,
        "local_day": FIRST_DAY + timedelta(days=day),
        "organisation_id": ORGANISATION,
        "sector": "stalingrad",
        "shift_kind": "maraude",
        "cell": CELLS[day * PER_DAY + index],
        "people": 1,
        "age_band": None,
        "gender": "f",
        "first_contact": True,
        "ref_hash": f"{day * PER_DAY + index:064x}",
        "kits": {"pipe": 1},
        "services": [],
        "referrals": [],
    }


def _day(day: int) -> Scope:
    first = FIRST_DAY + timedelta(days=day)
    return Scope(first, first, "stalingrad", None, ORGANISATION, None)


def _answers(session: Any, scope: Scope, model: ReadModel) -> tuple[Any, ...]:
    whole = Scope(scope.start, scope.end, None, None, scope.organisation_id, None)
    hexagons = cell_amounts(session, whole, model)
    return (
        dict(zip(hexagons.areas, hexagons.amounts.tolist(), strict=True)),
        kept_counters(session, scope, model).by_metric(),
        distinct_people(session, scope, model),
    )


def test_the_numbering_of_areas_stays_within_the_budget_and_answers_stay_right(
    app: Flask,
) -> None:
    empty_database(app)
    assert len(CELLS) == DAYS * PER_DAY
    model = ReadModel(map_features=0, map_span_rows=BUDGET, day_rows=BUDGET)
    nothing = ReadModel(map_features=0, map_span_rows=0, day_rows=0)
    with app.app_context():
        session = db.session
        with session.begin():
            deltas = rollups.Deltas()
            for day in range(DAYS):
                for index in range(PER_DAY):
                    deltas.add(_row(day, index))
            writes.record(session, OPERATOR, "rollups.test", deltas.apply(session))
        highest = 0
        for day in range(DAYS):
            with session.begin():
                assert _answers(session, _day(day), model) == _answers(session, _day(day), nothing)
            usage = model.usage()
            highest = max(highest, usage.numbered_hexagons, usage.numbered_people_areas)
            # The budget, and the areas of the one read that went past it.
            assert usage.numbered_hexagons <= BUDGET + PER_DAY
            assert usage.numbered_people_areas <= BUDGET + PER_DAY
        # Every area was met once: without a bound, the numbering would hold them all.
        assert highest < DAYS * PER_DAY
        # The whole period after numbering again many times, and a day asked again.
        everything = Scope(
            FIRST_DAY, FIRST_DAY + timedelta(days=DAYS - 1), "stalingrad", None, None, None
        )
        for scope in (everything, _day(0), everything):
            with session.begin():
                assert _answers(session, scope, model) == _answers(session, scope, nothing)
