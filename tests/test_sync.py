"""POST /sync: statuses, validation, atomic batches, limits, organisation from the token."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from outreach.extensions import db
from outreach.models import AuditEvent, Encounter, Role, Shift
from schemas.sync import SyncResponseSchema
from tests.helpers import Account, count_rows, headers_for
from tests.payloads import CHATELET, STALINGRAD, encounter, group, shift

SYNC = "/api/v1/sync"


def statuses(response: Any) -> list[str]:
    return [item["status"] for item in response.get_json()["results"]]


def test_created_then_duplicate_then_conflict(
    app: Flask, client: FlaskClient, headers: dict[str, str], worker: Account
) -> None:
    outing = shift()
    first = encounter(shift_id=outing["id"])
    body = {"shifts": [outing], "encounters": [first, group()]}
    created = client.post(SYNC, json=body, headers=headers)
    assert created.status_code == 200
    assert created.get_json()["counts"] == {
        "created": 3,
        "duplicate": 0,
        "conflict": 0,
        "invalid": 0,
    }
    assert [(r["kind"], r["id"]) for r in created.get_json()["results"]] == [
        ("shift", outing["id"]),
        ("encounter", first["id"]),
        ("encounter", body["encounters"][1]["id"]),
    ]
    resent = client.post(SYNC, json=body, headers=headers)
    assert statuses(resent) == ["duplicate", "duplicate", "duplicate"]
    # The same place snapped again (a metre off, in the same hexagon) is the same content.
    a_metre_north = (STALINGRAD[0] + 0.00001, STALINGRAD[1])
    resolution = app.config["OUTREACH_SETTINGS"].h3_resolution
    assert h3.latlng_to_cell(*a_metre_north, resolution) == h3.latlng_to_cell(
        *STALINGRAD, resolution
    )
    moved_a_little = {**first, "location": {"lat": a_metre_north[0], "lon": a_metre_north[1]}}
    resent_moved = client.post(SYNC, json={"encounters": [moved_a_little]}, headers=headers)
    assert statuses(resent_moved) == ["duplicate"]
    changed = {**first, "kits": {"kit_base": 5}}
    conflict = client.post(SYNC, json={"encounters": [changed]}, headers=headers)
    assert statuses(conflict) == ["conflict"]
    assert "amend" in conflict.get_json()["results"][0]["errors"]["id"][0]
    assert count_rows(app, Encounter) == 2
    assert count_rows(app, Shift) == 1
    stored_kits = client.get(f"/api/v1/encounters/{first['id']}", headers=headers).get_json()[
        "kits"
    ]
    assert stored_kits == {"kit_base": 2, "pipe": 1}


def test_same_id_twice_in_one_batch(
    app: Flask, client: FlaskClient, headers: dict[str, str]
) -> None:
    item = encounter()
    other = {**item, "setting": "metro"}
    response = client.post(SYNC, json={"encounters": [item, item, other]}, headers=headers)
    assert statuses(response) == ["created", "duplicate", "conflict"]
    assert count_rows(app, Encounter) == 1


def _invalid(client: FlaskClient, headers: dict[str, str], item: dict[str, Any]) -> dict[str, Any]:
    response = client.post(SYNC, json={"encounters": [item]}, headers=headers)
    assert response.status_code == 200
    result = response.get_json()["results"][0]
    assert result["status"] == "invalid", result
    errors: dict[str, Any] = result["errors"]
    return errors


def test_each_invalid_item_says_why(client: FlaskClient, headers: dict[str, str]) -> None:
    now = datetime.now(UTC)
    cases: list[tuple[dict[str, Any], str, str]] = [
        (encounter(organisation="someone-else"), "organisation", "Unknown field"),
        (encounter(occurred_at=(now + timedelta(minutes=30)).isoformat()), "occurred_at", "future"),
        (
            encounter(occurred_at=(now - timedelta(days=800)).isoformat()),
            "occurred_at",
            "retention",
        ),
        (encounter(occurred_at="2026-11-20T10:00:00"), "occurred_at", "timezone"),
        (encounter(kits={"crack_pipe_xl": 1}), "kits", "Unknown kit code"),
        (encounter(kits={"pipe": -1}), "kits", "greater than or equal to 0"),
        (encounter(kits={"pipe": 100000}), "kits", "less than or equal to 500"),
        (encounter(kits={"pipe": "3"}), "kits", "Not a valid integer"),
        (encounter(position=(45.76, 4.83)), "location", "outside the service area"),
        ({**group(people=3), "person": {"gender": "f"}}, "person", "one person"),
        (encounter(people=0), "people", "greater than or equal to 1"),
        (encounter(people=51), "people", "less than or equal to 50"),
        (encounter(people=True), "people", "Not a valid integer"),
        (encounter(setting="parking"), "setting", "Must be one of"),
        (encounter(services=["ecoute", "ecoute"]), "services", "twice"),
        (encounter(services=["massage"]), "services", "Must be one of"),
        (
            encounter(referrals=[{"to": "police", "status": "proposed"}]),
            "referrals",
            "Must be one of",
        ),
        (
            encounter(
                referrals=[
                    {"to": "csapa", "structure": "espace_repos_chapelle", "status": "proposed"}
                ]
            ),
            "referrals",
            "No structure",
        ),
        (encounter(shift_id="00000000-0000-4000-8000-000000000000"), "shift_id", "Unknown shift"),
        (encounter(id="not-a-uuid"), "id", "Not a valid UUID"),
        (encounter(location={"lat": "48.88", "lon": 2.36}), "location", "Not a valid number"),
        (encounter(location={"lat": 48.88}), "location", "Missing data"),
        (encounter(person={"ref": "short"}), "person", "Length must be between"),
        # 1 == True in Python: a membership test would take these for booleans.
        (encounter(person={"first_contact": 1}), "person", "Not a valid boolean"),
        (encounter(person={"first_contact": 0.0}), "person", "Not a valid boolean"),
    ]
    for item, field, words in cases:
        errors = _invalid(client, headers, item)
        assert field in errors, (field, errors)
        assert words in str(errors[field]), (field, errors[field])


def test_a_bad_item_does_not_stop_the_good_ones(
    app: Flask, client: FlaskClient, headers: dict[str, str]
) -> None:
    response = client.post(
        SYNC,
        json={"encounters": [encounter(), encounter(kits={"x": 1}), "not an object", encounter()]},
        headers=headers,
    )
    assert statuses(response) == ["created", "invalid", "invalid", "created"]
    assert response.get_json()["results"][2]["id"] is None
    assert count_rows(app, Encounter) == 2


def test_a_sync_takes_one_connection_from_the_pool(
    app: Flask, client: FlaskClient, headers: dict[str, str]
) -> None:
    # The token check and the sync share the request's connection: each checkout
    # costs a ping to the server and the pool's bookkeeping.
    engine = db.engine_for(app)
    checkouts: list[tuple[object, ...]] = []

    def checked_out(*args: object) -> None:
        checkouts.append(args)

    event.listen(engine, "checkout", checked_out)
    try:
        response = client.post(SYNC, json={"encounters": [encounter()]}, headers=headers)
    finally:
        event.remove(engine, "checkout", checked_out)
    assert statuses(response) == ["created"]
    assert len(checkouts) == 1


def test_the_answer_is_the_documented_one(client: FlaskClient, headers: dict[str, str]) -> None:
    # The view answers without a schema walk; the schema must still describe it.
    kept = encounter()
    client.post(SYNC, json={"encounters": [kept]}, headers=headers)
    changed = {**kept, "kits": {"kit_base": 3}}
    response = client.post(
        SYNC,
        json={"encounters": [encounter(), kept, changed, {"id": "x"}, 7]},
        headers=headers,
    )
    answer = response.get_json()
    assert [r["status"] for r in answer["results"]] == [
        "created",
        "duplicate",
        "conflict",
        "invalid",
        "invalid",
    ]
    assert SyncResponseSchema().validate(answer) == {}
    assert answer["counts"] == {"created": 1, "duplicate": 1, "conflict": 1, "invalid": 2}


def test_atomic_stores_nothing_when_any_item_is_invalid(
    app: Flask, client: FlaskClient, headers: dict[str, str]
) -> None:
    body = {"shifts": [shift()], "encounters": [encounter(), encounter(people=0)]}
    response = client.post(SYNC + "?atomic=true", json=body, headers=headers)
    assert response.status_code == 422
    envelope = response.get_json()
    assert envelope["message"] == "1 item(s) are invalid; nothing was stored."
    assert "people" in envelope["errors"]["encounters"]["1"]
    assert count_rows(app, Encounter) == 0
    assert count_rows(app, Shift) == 0
    body["encounters"].pop()
    assert (
        client.post(SYNC + "?atomic=true", json=body, headers=headers).get_json()["counts"][
            "created"
        ]
        == 2
    )


def test_outside_every_sector_is_hors_secteur(client: FlaskClient, headers: dict[str, str]) -> None:
    item = encounter(position=CHATELET)
    assert statuses(client.post(SYNC, json={"encounters": [item]}, headers=headers)) == ["created"]
    stored = client.get(f"/api/v1/encounters/{item['id']}", headers=headers).get_json()
    assert stored["sector"] == "hors_secteur"
    assert len(stored["cell"]) == 15


def test_limits(app: Flask, client: FlaskClient, headers: dict[str, str]) -> None:
    too_many = client.post(
        SYNC, json={"encounters": [group() for _ in range(501)]}, headers=headers
    )
    assert too_many.status_code == 413
    assert too_many.get_json()["code"] == 413
    assert "At most 500 items" in too_many.get_json()["message"]
    oversized = '{"encounters": [' + ",".join(['{"id": "' + "x" * 1000 + '"}'] * 2200) + "]}"
    big = client.post(SYNC, data=oversized, content_type="application/json", headers=headers)
    assert big.status_code == 413
    assert count_rows(app, Encounter) == 0
    exactly = client.post(SYNC, json={"encounters": [group() for _ in range(500)]}, headers=headers)
    assert exactly.get_json()["counts"]["created"] == 500


def test_batch_envelope_is_strict(client: FlaskClient, headers: dict[str, str]) -> None:
    for body in (
        {"encounters": [], "organisation_id": "x"},
        {"encounters": {}},
        [],
        {"shifts": "x"},
    ):
        response = client.post(SYNC, json=body, headers=headers)
        assert response.status_code == 422, body


def test_organisation_and_author_come_from_the_token(
    app: Flask,
    client: FlaskClient,
    headers: dict[str, str],
    worker: Account,
) -> None:
    item = encounter()
    client.post(SYNC, json={"encounters": [item]}, headers=headers)
    with app.app_context():
        session = db.session
        with session.begin():
            stored = session.scalars(
                select(Encounter).where(Encounter.id == uuid.UUID(item["id"]))
            ).one()
    assert stored.organisation_id == worker.organisation_id
    assert stored.created_by == worker.user_id


def _shifts_of(app: Flask, shift_id: str) -> list[tuple[str, str, Any, Any]]:
    """Every association's stored shift under ``shift_id``: (created_by, kind, times)."""
    with app.app_context():
        session = db.session
        with session.begin():
            rows = session.execute(
                select(Shift.created_by, Shift.kind, Shift.started_at, Shift.ended_at)
                .where(Shift.id == uuid.UUID(shift_id))
                .order_by(Shift.kind)
            ).all()
    return [(str(by), kind, start, end) for by, kind, start, end in rows]


def test_a_shift_of_another_organisation_cannot_be_used(
    app: Flask,
    client: FlaskClient,
    make_account: Callable[..., Account],
    headers: dict[str, str],
    worker: Account,
) -> None:
    other_worker = make_account(Role.WORKER, "rdr-est")
    other = headers_for(client, other_worker)
    outing = shift()
    assert statuses(client.post(SYNC, json={"shifts": [outing]}, headers=other)) == ["created"]
    theirs = _shifts_of(app, outing["id"])
    errors = _invalid(client, headers, encounter(shift_id=outing["id"]))
    assert "Unknown shift" in errors["shift_id"][0]
    # The same shift id from this organisation is a new shift of its own, never a
    # conflict or a takeover: the other's shift is untouched.
    own = {**outing, "kind": "sociale"}
    met = encounter(shift_id=outing["id"])
    sent = client.post(SYNC, json={"shifts": [own], "encounters": [met]}, headers=headers)
    assert statuses(sent) == ["created", "created"]
    assert statuses(client.post(SYNC, json={"shifts": [own]}, headers=headers)) == ["duplicate"]
    stored = _shifts_of(app, outing["id"])
    assert stored[0] == theirs[0]
    assert stored[1][:2] == (str(worker.user_id), "sociale")
    with app.app_context():
        session = db.session
        with session.begin():
            kind = session.scalars(
                select(Encounter.shift_kind).where(Encounter.id == uuid.UUID(met["id"]))
            ).one()
    assert kind == "sociale"


def test_roles_that_may_not_sync(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    for role in (Role.COORDINATOR, Role.AUDITOR, Role.ADMIN):
        response = client.post(SYNC, json={"encounters": [encounter()]}, headers=auth_headers(role))
        assert response.status_code == 403


def test_sync_is_audited_with_its_counts(
    app: Flask, client: FlaskClient, headers: dict[str, str]
) -> None:
    client.post(
        SYNC, json={"encounters": [encounter(), encounter(), encounter(people=0)]}, headers=headers
    )
    with app.app_context():
        session = db.session
        with session.begin():
            event = session.scalars(select(AuditEvent).where(AuditEvent.action == "sync")).one()
    assert event.records == 2
    assert event.params["created"] == 2
    assert event.params["invalid"] == 1
