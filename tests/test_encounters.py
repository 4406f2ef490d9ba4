"""Reading back and correcting encounters: scope, versions, deletion, audit, rollups."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from outreach.extensions import db
from outreach.models import AuditEvent, Encounter, EncounterVersion, Role, RollupSector
from tests.helpers import Account, headers_for
from tests.payloads import encounter, group, shift

SYNC = "/api/v1/sync"
ENCOUNTERS = "/api/v1/encounters"


def _sum(app: Flask, metric: str) -> int:
    with app.app_context():
        session = db.session
        with session.begin():
            total = session.scalar(
                select(func.sum(RollupSector.value)).where(RollupSector.metric == metric)
            )
    return int(total or 0)


def _setup(client: FlaskClient, make_account: Callable[..., Account]) -> dict[str, Any]:
    worker = make_account(Role.WORKER, "maraude-nord")
    colleague = make_account(Role.WORKER, "maraude-nord")
    org_admin = make_account(Role.ORG_ADMIN, "maraude-nord")
    outsider = make_account(Role.WORKER, "rdr-est")
    outing = shift()
    mine = [encounter(shift_id=outing["id"]), group(people=3)]
    theirs = [encounter()]
    client.post(
        SYNC, json={"shifts": [outing], "encounters": mine}, headers=headers_for(client, worker)
    )
    client.post(SYNC, json={"encounters": theirs}, headers=headers_for(client, colleague))
    return {
        "worker": worker,
        "colleague": colleague,
        "org_admin": org_admin,
        "outsider": outsider,
        "shift": outing,
        "mine": mine,
        "theirs": theirs,
    }


def test_who_reads_what(client: FlaskClient, make_account: Callable[..., Account]) -> None:
    s = _setup(client, make_account)
    ids = lambda response: {item["id"] for item in response.get_json()["items"]}  # noqa: E731
    worker_list = client.get(ENCOUNTERS, headers=headers_for(client, s["worker"]))
    assert ids(worker_list) == {e["id"] for e in s["mine"]}
    admin_list = client.get(ENCOUNTERS, headers=headers_for(client, s["org_admin"]))
    assert ids(admin_list) == {e["id"] for e in s["mine"] + s["theirs"]}
    assert admin_list.get_json()["total"] == 3
    outsider = headers_for(client, s["outsider"])
    assert client.get(ENCOUNTERS, headers=outsider).get_json()["items"] == []
    for item in s["mine"]:
        assert client.get(f"{ENCOUNTERS}/{item['id']}", headers=outsider).status_code == 404
    # A colleague's encounter is not the worker's own submission.
    colleague_item = s["theirs"][0]["id"]
    assert (
        client.get(
            f"{ENCOUNTERS}/{colleague_item}", headers=headers_for(client, s["worker"])
        ).status_code
        == 404
    )
    one = client.get(
        f"{ENCOUNTERS}/{s['mine'][0]['id']}", headers=headers_for(client, s["worker"])
    ).get_json()
    assert one["person"] == {
        "age_band": "25-34",
        "gender": "f",
        "first_contact": True,
        "ref_known": False,
    }
    assert one["sector"] == "stalingrad"
    assert "ref_hash" not in one
    assert "location" not in one


def test_filters(client: FlaskClient, make_account: Callable[..., Account]) -> None:
    s = _setup(client, make_account)
    headers = headers_for(client, s["org_admin"])
    by_shift = client.get(f"{ENCOUNTERS}?shift_id={s['shift']['id']}", headers=headers).get_json()
    assert [item["id"] for item in by_shift["items"]] == [s["mine"][0]["id"]]
    assert client.get(f"{ENCOUNTERS}?sector=stalingrad", headers=headers).get_json()["total"] == 3
    assert client.get(f"{ENCOUNTERS}?sector=eole", headers=headers).get_json()["total"] == 0
    assert (
        client.get(f"{ENCOUNTERS}?from=2000-01-01&to=2000-01-31", headers=headers).get_json()[
            "total"
        ]
        == 0
    )
    bad = client.get(f"{ENCOUNTERS}?from=2026-02-01&to=2026-01-01", headers=headers)
    assert bad.status_code == 422
    assert "from" in bad.get_json()["errors"]["query"]
    assert client.get(f"{ENCOUNTERS}?sector=moon", headers=headers).status_code == 422


def test_amend_keeps_the_previous_version_and_moves_rollups(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    s = _setup(client, make_account)
    target = s["mine"][1]["id"]  # a group of 3
    headers = headers_for(client, s["org_admin"])
    assert _sum(app, "people") == 5
    response = client.patch(
        f"{ENCOUNTERS}/{target}", json={"people": 5, "kits": {"pipe": 4}}, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["people"], body["kits"], body["version"]) == (5, {"pipe": 4}, 2)
    assert _sum(app, "people") == 7
    assert _sum(app, "kit:pipe") == 1 + 1 + 4  # two untouched encounters, the amended one
    with app.app_context():
        session = db.session
        with session.begin():
            versions = session.scalars(
                select(EncounterVersion).where(EncounterVersion.encounter_id == uuid.UUID(target))
            ).all()
    assert [(v.version, v.change, v.content["people"]) for v in versions] == [(1, "amend", 3)]
    # The phone's resend of its original is now a conflict, never an overwrite.
    resend = client.post(
        SYNC, json={"encounters": [s["mine"][1]]}, headers=headers_for(client, s["worker"])
    )
    assert resend.get_json()["results"][0]["status"] == "conflict"
    # Invalid amendments are refused and change nothing.
    for bad in (
        {"people": 0},
        {"person": {"gender": "f"}},
        {"organisation_id": str(uuid.uuid4())},
        {"id": str(uuid.uuid4())},
    ):
        assert (
            client.patch(f"{ENCOUNTERS}/{target}", json=bad, headers=headers).status_code == 422
        ), bad
    assert _sum(app, "people") == 7
    assert (
        client.patch(
            f"{ENCOUNTERS}/{target}", json={"people": 1}, headers=headers_for(client, s["worker"])
        ).status_code
        == 403
    )
    assert (
        client.patch(
            f"{ENCOUNTERS}/{target}", json={"people": 1}, headers=headers_for(client, s["outsider"])
        ).status_code
        == 403
    )


def test_org_admin_of_another_association_gets_404(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    s = _setup(client, make_account)
    stranger = headers_for(client, make_account(Role.ORG_ADMIN, "rdr-est"))
    target = s["mine"][0]["id"]
    assert (
        client.patch(f"{ENCOUNTERS}/{target}", json={"people": 2}, headers=stranger).status_code
        == 404
    )
    assert (
        client.delete(
            f"{ENCOUNTERS}/{target}", json={"reason": "other"}, headers=stranger
        ).status_code
        == 404
    )
    assert client.get(f"{ENCOUNTERS}/{target}", headers=stranger).status_code == 404


def test_delete_is_soft_with_a_reason_and_leaves_the_aggregates(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    s = _setup(client, make_account)
    headers = headers_for(client, s["org_admin"])
    target = s["mine"][0]["id"]
    assert client.delete(f"{ENCOUNTERS}/{target}", json={}, headers=headers).status_code == 422
    assert (
        client.delete(
            f"{ENCOUNTERS}/{target}", json={"reason": "because I said so"}, headers=headers
        ).status_code
        == 422
    )
    assert _sum(app, "encounters") == 3
    assert (
        client.delete(
            f"{ENCOUNTERS}/{target}", json={"reason": "entered_in_error"}, headers=headers
        ).status_code
        == 204
    )
    assert _sum(app, "encounters") == 2
    assert _sum(app, "gender:f") == 1
    assert client.get(f"{ENCOUNTERS}/{target}", headers=headers).status_code == 404
    assert (
        client.delete(
            f"{ENCOUNTERS}/{target}", json={"reason": "other"}, headers=headers
        ).status_code
        == 404
    )
    # A late resend of the deleted encounter does not bring it back.
    resend = client.post(
        SYNC, json={"encounters": [s["mine"][0]]}, headers=headers_for(client, s["worker"])
    )
    assert resend.get_json()["results"][0]["status"] == "duplicate"
    assert _sum(app, "encounters") == 2
    with app.app_context():
        session = db.session
        with session.begin():
            row = session.scalars(select(Encounter).where(Encounter.id == uuid.UUID(target))).one()
    assert row.deleted_reason == "entered_in_error"
    assert row.deleted_at is not None


def test_reads_and_corrections_are_audited_with_record_counts(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    s = _setup(client, make_account)
    headers = headers_for(client, s["org_admin"])
    client.get(ENCOUNTERS, headers=headers)
    client.get(f"{ENCOUNTERS}/{s['mine'][0]['id']}", headers=headers)
    client.patch(f"{ENCOUNTERS}/{s['mine'][0]['id']}", json={"setting": "gare"}, headers=headers)
    client.delete(
        f"{ENCOUNTERS}/{s['mine'][1]['id']}", json={"reason": "duplicate_entry"}, headers=headers
    )
    with app.app_context():
        session = db.session
        with session.begin():
            events = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.like("encounters.%"))
                .order_by(AuditEvent.seq)
            ).all()
    assert [(e.action, e.records) for e in events] == [
        ("encounters.read", 3),
        ("encounters.read", 1),
        ("encounters.amend", 1),
        ("encounters.delete", 1),
    ]
    assert events[3].params == {"reason": "duplicate_entry"}
