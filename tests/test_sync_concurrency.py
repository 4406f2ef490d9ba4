"""Resends under concurrency: stored once, no 5xx, no "database is locked"."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from outreach.extensions import db
from outreach.models import Encounter, RollupSector, Shift
from outreach.services import audit, rollups, writes
from outreach.services.context import OPERATOR
from tests.payloads import encounter, group, shift


def _post_many(
    app: Flask, headers: dict[str, str], bodies: list[dict[str, Any]], threads: int
) -> list[Any]:
    def post(body: dict[str, Any]) -> Any:
        response = app.test_client().post("/api/v1/sync", json=body, headers=headers)
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(post, bodies))


def _scalar(app: Flask, statement: Any) -> Any:
    with app.app_context():
        session = db.session
        with session.begin():
            return session.scalar(statement)


def test_same_batch_from_twenty_threads_is_stored_once(app: Flask, headers: dict[str, str]) -> None:
    outing = shift()
    batch = {
        "shifts": [outing],
        "encounters": [encounter(shift_id=outing["id"]) for _ in range(30)]
        + [group() for _ in range(20)],
    }
    results = _post_many(app, headers, [batch] * 20, threads=20)
    assert {status for status, _ in results} == {200}
    created = sum(body["counts"]["created"] for _, body in results)
    duplicates = sum(body["counts"]["duplicate"] for _, body in results)
    assert created == 51
    assert duplicates == 51 * 19
    assert all(body["counts"]["conflict"] == 0 for _, body in results)
    assert _scalar(app, select(func.count()).select_from(Encounter)) == 50
    assert _scalar(app, select(func.count()).select_from(Shift)) == 1
    # Rollups counted each encounter once.
    encounters_counted = _scalar(
        app, select(func.sum(RollupSector.value)).where(RollupSector.metric == "encounters")
    )
    assert encounters_counted == 50


def test_changed_resend_races_report_conflicts(app: Flask, headers: dict[str, str]) -> None:
    original = group()
    variants = [{"encounters": [{**original, "people": 2 + (n % 2)}]} for n in range(20)]
    results = _post_many(app, headers, variants, threads=20)
    assert {status for status, _ in results} == {200}
    outcome = [body["results"][0]["status"] for _, body in results]
    assert outcome.count("created") == 1
    assert set(outcome) <= {"created", "duplicate", "conflict"}
    stored_people = _scalar(app, select(Encounter.people))
    winners = [n for n, status in enumerate(outcome) if status == "created"]
    assert stored_people == 2 + (winners[0] % 2)
    for n, status in enumerate(outcome):
        if status == "duplicate":
            assert 2 + (n % 2) == stored_people
        if status == "conflict":
            assert 2 + (n % 2) != stored_people


def test_eight_writers_hundred_batches_exact_counts(
    app: Flask, headers: dict[str, str], engine_name: str
) -> None:
    batches = [{"encounters": [group(people=2) for _ in range(3)]} for _ in range(100)]
    results = _post_many(app, headers, batches, threads=8)
    assert [status for status, _ in results] == [200] * 100, {s for s, _ in results}
    assert _scalar(app, select(func.count()).select_from(Encounter)) == 300
    assert (
        _scalar(app, select(func.sum(RollupSector.value)).where(RollupSector.metric == "people"))
        == 600
    )
    with app.app_context():
        session = db.session
        with session.begin():
            assert audit.verify(session).ok
            incremental = rollups.snapshot(session)
            writes.record(session, OPERATOR, "rollups.rebuild", rollups.rebuild(session).change)
            assert rollups.snapshot(session) == incremental
