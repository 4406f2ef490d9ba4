"""What the auditor does alone: read events, verify the chain, read data use, the register.

Tampering is done as a database superuser could (triggers switched off); the chain
must find each kind of change at the right event, through the API and the command.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from outreach.clock import paris_today
from outreach.extensions import db
from outreach.models import AuditEvent, Role
from outreach.services import audit
from tests.helpers import Account, headers_for, tamper
from tests.payloads import encounter


@pytest.fixture
def auditor(client: FlaskClient, make_account: Callable[..., Account]) -> dict[str, str]:
    return headers_for(client, make_account(Role.AUDITOR))


def _activity(client: FlaskClient, make_account: Callable[..., Account]) -> dict[str, Any]:
    """A worker syncs, its org_admin reads rows, a coordinator reads stats, one refusal."""
    worker = make_account(Role.WORKER, "assoc-a")
    admin = make_account(Role.ORG_ADMIN, "assoc-a")
    coordinator = make_account(Role.COORDINATOR)
    worker_headers = headers_for(client, worker)
    admin_headers = headers_for(client, admin)
    coordinator_headers = headers_for(client, coordinator)
    client.post(
        "/api/v1/sync", json={"encounters": [encounter() for _ in range(3)]}, headers=worker_headers
    )
    assert client.get("/api/v1/encounters", headers=admin_headers).status_code == 200
    assert client.get("/api/v1/encounters", headers=admin_headers).status_code == 200
    assert client.get("/api/v1/stats/summary", headers=coordinator_headers).status_code == 200
    assert client.get("/api/v1/encounters", headers=coordinator_headers).status_code == 403
    return {"worker": worker, "admin": admin, "coordinator": coordinator}


def test_events_are_filtered_paginated_and_their_reading_audited(
    client: FlaskClient, make_account: Callable[..., Account], auditor: dict[str, str]
) -> None:
    people = _activity(client, make_account)
    everything = client.get("/api/v1/audit/events?per_page=500", headers=auditor).get_json()
    # The auditor's organisation, account and login (3); then 3 accounts in 2 organisations
    # (5), their 3 logins, a sync, 2 reads, a summary and a refusal (8).
    assert everything["total"] == len(everything["items"]) == 16
    seqs = [e["seq"] for e in everything["items"]]
    assert seqs == sorted(seqs, reverse=True)
    reads = client.get(
        "/api/v1/audit/events?action=encounters.read&organisation=assoc-a", headers=auditor
    ).get_json()
    assert reads["total"] == 2
    assert {e["actor_username"] for e in reads["items"]} == {people["admin"].username}
    assert all(e["records"] == 3 for e in reads["items"])
    denied = client.get(
        f"/api/v1/audit/events?outcome=denied&actor={people['coordinator'].username}",
        headers=auditor,
    ).get_json()
    assert [e["action"] for e in denied["items"]] == ["access.denied"]
    today = paris_today()
    period = client.get(
        f"/api/v1/audit/events?from={today - timedelta(days=3)}&to={today - timedelta(days=1)}",
        headers=auditor,
    ).get_json()
    assert period["total"] == 0
    paged = client.get("/api/v1/audit/events?per_page=2&page=2", headers=auditor).get_json()
    assert (paged["page"], len(paged["items"])) == (2, 2)
    listing = client.get("/api/v1/audit/events?action=audit.events", headers=auditor).get_json()
    # Each listing above is itself an event; the newest is the second page's.
    assert listing["total"] == 5
    assert listing["items"][0]["params"]["page"] == 2
    unknown = client.get("/api/v1/audit/events?actor=nobody", headers=auditor)
    assert unknown.status_code == 422
    assert "actor" in unknown.get_json()["errors"]["query"]


def _verify(client: FlaskClient, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/audit/verify{query}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _first_read(app: Flask) -> int:
    """The sequence number of the first ``encounters.read`` event."""
    with app.app_context():
        seq = db.session.scalar(
            select(AuditEvent.seq).where(AuditEvent.action == "encounters.read").limit(1)
        )
    assert seq is not None
    return seq


def _event(app: Flask, seq: int) -> dict[str, Any]:
    with app.app_context():
        row = db.session.execute(select(AuditEvent.__table__).where(AuditEvent.seq == seq)).one()
        return dict(row._mapping)


def test_verify_finds_each_kind_of_tampering_at_its_event(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account], auditor: dict[str, str]
) -> None:
    _activity(client, make_account)
    clean = _verify(client, auditor)
    assert clean["ok"] is True
    assert clean["first_broken_seq"] is None
    head = f"{clean['head_seq']}:{clean['head_hash']}"

    # Swap the contents of events 5 and 6 (keeping their sequence numbers).
    fifth, sixth = _event(app, 5), _event(app, 6)
    swapped = [
        update(AuditEvent).where(AuditEvent.seq == 5).values(hash="x" * 64),
        update(AuditEvent)
        .where(AuditEvent.seq == 6)
        .values(**{k: v for k, v in fifth.items() if k != "seq"}),
        update(AuditEvent)
        .where(AuditEvent.seq == 5)
        .values(**{k: v for k, v in sixth.items() if k != "seq"}),
    ]
    tamper(app, *swapped)
    result = _verify(client, auditor)
    assert (result["ok"], result["first_broken_seq"]) == (False, 5)
    tamper(
        app,
        update(AuditEvent).where(AuditEvent.seq == 5).values(hash="y" * 64),
        update(AuditEvent)
        .where(AuditEvent.seq == 6)
        .values(**{k: v for k, v in sixth.items() if k != "seq"}),
        update(AuditEvent)
        .where(AuditEvent.seq == 5)
        .values(**{k: v for k, v in fifth.items() if k != "seq"}),
    )
    assert _verify(client, auditor, f"?head={head}")["ok"] is True

    # A forged event in the middle: renumber the tail up by one and insert.
    with app.app_context():
        last = db.session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()))
    assert last is not None
    forged = {**_event(app, 7), "seq": 8, "action": "auth.login", "hash": "f" * 64}
    tamper(
        app,
        *[
            update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq + 1)
            for seq in range(last, 7, -1)
        ],
        insert(AuditEvent).values(**forged),
    )
    result = _verify(client, auditor)
    assert (result["ok"], result["first_broken_seq"]) == (False, 8)


EDITS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "at": lambda event: event["at"] + timedelta(microseconds=1),
    "actor_user_id": lambda event: uuid.uuid4(),
    "actor_org_id": lambda event: None,
    "actor_role": lambda event: "coordinator",
    "params": lambda event: {**event["params"], "per_page": 1},
    "records": lambda event: event["records"] + 1,
    "target": lambda event: "someone",
    "request_id": lambda event: "0" * 32,
}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_any_edit_of_any_field_is_found(
    app: Flask,
    client: FlaskClient,
    make_account: Callable[..., Account],
    auditor: dict[str, str],
    column: str,
) -> None:
    """Each field the hash covers, changed by the least amount, breaks the chain there."""
    _activity(client, make_account)
    seq = _first_read(app)
    event = _event(app, seq)
    tamper(
        app, update(AuditEvent).where(AuditEvent.seq == seq).values({column: EDITS[column](event)})
    )
    result = _verify(client, auditor)
    assert (result["ok"], result["first_broken_seq"], result["reason"]) == (
        False,
        seq,
        "content does not match its hash",
    )


def test_params_stored_with_other_spacing_and_key_order_still_verify(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account], auditor: dict[str, str]
) -> None:
    """The hash covers what the parameters say, not how the database spells them."""
    _activity(client, make_account)
    seq = _first_read(app)
    params = _event(app, seq)["params"]
    assert len(params) > 1
    respelled = (
        "{ "
        + " ,  ".join(
            f"{json.dumps(key)} : {json.dumps(value)}" for key, value in reversed(params.items())
        )
        + " }"
    )
    with app.app_context():
        on_postgresql = db.session.get_bind().dialect.name == "postgresql"
    respell = (
        "UPDATE audit_events SET params = CAST(:params AS json) WHERE seq = :seq"
        if on_postgresql
        else "UPDATE audit_events SET params = :params WHERE seq = :seq"
    )
    tamper(app, text(respell).bindparams(params=respelled, seq=seq))
    with app.app_context():
        stored = db.session.scalar(select(AuditEvent.params).where(AuditEvent.seq == seq))
        spelled = db.session.scalar(
            text("SELECT CAST(params AS text) FROM audit_events WHERE seq = :seq"), {"seq": seq}
        )
    assert spelled == respelled
    assert stored == params
    assert _verify(client, auditor)["ok"] is True


def test_verify_command_names_the_first_broken_event(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _activity(client, make_account)
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    tamper(app, delete(AuditEvent).where(AuditEvent.seq == 3))
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1
    assert "BROKEN at event 4" in broken.output


def test_the_database_refuses_to_rewrite_the_log(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account], engine_name: str
) -> None:
    _activity(client, make_account)
    if engine_name != "postgresql":
        # SQLite has no such guard; the register must not claim one.
        headers = headers_for(client, make_account(Role.AUDITOR))
        register = client.get("/api/v1/governance/register", headers=headers).get_json()
        assert "need PostgreSQL" in register["security_measures"]["audit_log"]
        return
    engine = db.engine_for(app)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO audit_checkpoints (seq, hash, at, purged) VALUES (0, 'x', now(), 0)"
        )
    for statement in (
        "UPDATE audit_events SET records = 0 WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
        "TRUNCATE audit_events",
        "UPDATE audit_checkpoints SET seq = 0",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.exec_driver_sql(statement)
    # The purge's guarded path may delete, never update.
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL outreach.audit_purge = 'on'")
        with pytest.raises(DBAPIError, match="append-only"), connection.begin_nested():
            connection.exec_driver_sql("UPDATE audit_events SET records = 0 WHERE seq = 2")
        connection.exec_driver_sql("DELETE FROM audit_events WHERE seq = 1")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT min(seq) FROM audit_events").scalar() == 2


def test_chain_holds_with_syncs_and_reads_at_once(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account], auditor: dict[str, str]
) -> None:
    workers = [make_account(Role.WORKER, "assoc-a") for _ in range(4)]
    coordinators = [make_account(Role.COORDINATOR) for _ in range(4)]
    callers = [headers_for(client, a) for a in workers + coordinators]
    failures: list[str] = []

    def work(index: int, headers: dict[str, str]) -> None:
        local = app.test_client()
        for _ in range(5):
            if index < len(workers):
                response = local.post(
                    "/api/v1/sync",
                    json={"encounters": [encounter() for _ in range(5)]},
                    headers=headers,
                )
            else:
                response = local.get("/api/v1/stats/summary", headers=headers)
            if response.status_code != 200:
                failures.append(response.get_data(as_text=True))

    threads = [threading.Thread(target=work, args=(i, h)) for i, h in enumerate(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    result = _verify(client, auditor)
    assert result["ok"] is True
    with app.app_context():
        count = db.session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()))
        syncs = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "sync")).all()
    # Everything before the verification, which is then appended itself.
    assert result["checked"] == count - 1
    assert len(syncs) == 20


def test_data_use_shows_who_read_how_much(
    client: FlaskClient, make_account: Callable[..., Account], auditor: dict[str, str]
) -> None:
    people = _activity(client, make_account)
    body = client.get("/api/v1/audit/data-use", headers=auditor).get_json()
    today = paris_today()
    assert body["period"] == {"from": str(today - timedelta(days=29)), "to": str(today)}
    rows = {(r["organisation"], r["role"], r["action"]): r for r in body["rows"]}
    reads = rows[("assoc-a", "org_admin", "encounters.read")]
    assert (reads["requests"], reads["records"], reads["refusals"]) == (2, 6, 0)
    refused = rows[("city-one", "coordinator", "access.denied")]
    assert refused["refusals"] == 1
    assert rows[("city-one", "coordinator", "stats.summary")]["requests"] == 1
    assert body["raw_readers"] == [
        {
            "username": people["admin"].username,
            "organisation": "assoc-a",
            "role": "org_admin",
            "requests": 2,
            "records": 6,
        }
    ]
    bad = client.get("/api/v1/audit/data-use?from=2020-01-01&to=2026-01-01", headers=auditor)
    assert bad.status_code == 422


def test_register_follows_the_running_configuration(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    app.config["OUTREACH_SETTINGS"] = app.config["OUTREACH_SETTINGS"].with_overrides(
        small_cell_k=7, retention_days=400, controller="Ville de Paris (DSOL)"
    )
    for role in (Role.AUDITOR, Role.ADMIN):
        headers = headers_for(client, make_account(role))
        body = client.get("/api/v1/governance/register", headers=headers).get_json()
        assert body["small_cell_threshold"] == 7
        assert body["retention"]["raw_encounters_days"] == 400
        assert body["controller"] == "Ville de Paris (DSOL)"
        assert body["location_precision"]["h3_resolution"] == 9
        assert 0.05 < body["location_precision"]["hexagon_area_km2"] < 0.2
        recipients = {r["role"]: r for r in body["recipients"]}
        assert "POST /api/v1/sync" in recipients["worker"]["routes"]
        assert "GET /api/v1/audit/verify" in recipients["auditor"]["routes"]
        assert not any(
            r.startswith(("POST", "PATCH", "DELETE")) and "auth" not in r
            for r in recipients["auditor"]["routes"]
        )
        assert any("Position GPS" in item for item in body["never_collected"])
        assert "password" not in str(body["hosting"]).lower()
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "governance.register")
        ).all()
    assert len(events) == 2
    assert events[0].outcome == audit.Outcome.SUCCESS
