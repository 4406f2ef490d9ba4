"""The retention purge: old raw rows go, aggregates stay, the audit chain still verifies."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import delete, func, select

from outreach.clock import paris_today
from outreach.extensions import db
from outreach.models import (
    AuditCheckpoint,
    AuditEvent,
    Encounter,
    EncounterVersion,
    Role,
    RollupPerson,
)
from outreach.services import audit, retention
from outreach.services.context import OPERATOR
from tests.helpers import Account, count_rows, headers_for, tamper, verify_chain
from tests.payloads import at, encounter
from tests.servers import in_terminal


def _seed(client: FlaskClient, make_account: Callable[..., Account]) -> dict[str, object]:
    """12 encounters 10 days ago (one amended), 12 yesterday; with person refs."""
    worker = make_account(Role.WORKER, "assoc-a")
    admin = make_account(Role.ORG_ADMIN, "assoc-a")
    headers = headers_for(client, worker)
    old_day = paris_today() - timedelta(days=10)
    old = [
        encounter(
            occurred_at=at(old_day),
            person={
                "age_band": "25-34",
                "gender": "f",
                "first_contact": False,
                "ref": f"person-ref-{i:04d}",
            },
        )
        for i in range(12)
    ]
    recent = [encounter(occurred_at=at(paris_today() - timedelta(days=1))) for _ in range(12)]
    response = client.post("/api/v1/sync", json={"encounters": old + recent}, headers=headers)
    assert response.get_json()["counts"]["created"] == 24
    admin_headers = headers_for(client, admin)
    amended = client.patch(
        f"/api/v1/encounters/{old[0]['id']}", json={"setting": "metro"}, headers=admin_headers
    )
    assert amended.status_code == 200
    return {"old_day": old_day}


def test_purge_deletes_old_raw_rows_and_keeps_aggregates(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    make_account: Callable[..., Account],
) -> None:
    seeded = _seed(client, make_account)
    old_day = seeded["old_day"]
    app.config["OUTREACH_SETTINGS"] = app.config["OUTREACH_SETTINGS"].with_overrides(
        retention_days=5
    )
    # The association's own org_admin reads exact figures, of any days.
    reader = headers_for(client, make_account(Role.ORG_ADMIN, "assoc-a"))
    url = f"/api/v1/stats/summary?from={old_day}&to={old_day}"
    before = client.get(url, headers=reader).get_json()["counts"]
    assert before["encounters"] == 12
    assert before["distinct_people"] == 12
    # A sector's summary sums the person-days this worker keeps: the purge must undo them.
    in_sector = f"{url}&sector=stalingrad"
    assert client.get(in_sector, headers=reader).get_json()["counts"]["distinct_people"] == 12

    dry = runner.invoke(args=["retention", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would delete 12 encounters, 12 person-days" in dry.output
    assert count_rows(app, Encounter) == 24

    done = runner.invoke(args=["retention", "purge"])
    assert done.exit_code == 0, done.output
    assert "Deleted 12 encounters, 12 person-days" in done.output
    assert count_rows(app, Encounter) == 12
    assert count_rows(app, Encounter, Encounter.local_day < paris_today() - timedelta(days=5)) == 0
    assert count_rows(app, EncounterVersion) == 0
    assert count_rows(app, RollupPerson, RollupPerson.day == old_day) == 0
    after = client.get(url, headers=reader).get_json()["counts"]
    # The counters stay; only the person-days behind distinct people are gone with the rows.
    assert after["encounters"] == 12
    assert after["kits_total"] == before["kits_total"]
    assert after["distinct_people"] == 0
    assert client.get(in_sector, headers=reader).get_json()["counts"]["distinct_people"] == 0

    again = runner.invoke(args=["retention", "purge"])
    assert "Deleted 0 encounters, 0 person-days and 0 audit events" in again.output
    with app.app_context():
        purges = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "retention.purge")
            .order_by(AuditEvent.seq)
        ).all()
    assert [(e.params["dry_run"], e.records) for e in purges] == [
        (True, 24),
        (False, 24),
        (False, 0),
    ]
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output


def test_the_purge_takes_an_old_encounter_not_another_associations_of_the_same_id(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    """Two associations hold one id: the purge takes the old encounter and its version,
    the other association's recent one and its version stay."""
    old = encounter(occurred_at=at(paris_today() - timedelta(days=10)))
    recent = {**old, "occurred_at": at(paris_today() - timedelta(days=1))}
    for slug, item in (("assoc-a", old), ("assoc-b", recent)):
        admin = headers_for(client, make_account(Role.ORG_ADMIN, slug))
        sent = client.post("/api/v1/sync", json={"encounters": [item]}, headers=admin)
        assert sent.get_json()["counts"]["created"] == 1
        amended = client.patch(
            f"/api/v1/encounters/{item['id']}", json={"setting": "metro"}, headers=admin
        )
        assert amended.status_code == 200
    app.config["OUTREACH_SETTINGS"] = app.config["OUTREACH_SETTINGS"].with_overrides(
        retention_days=5
    )
    done = runner.invoke(args=["retention", "purge"])
    assert "Deleted 1 encounters" in done.output, done.output
    with app.app_context():
        session = db.session
        with session.begin():
            kept = session.scalars(select(Encounter)).one()
            versions = session.scalars(select(EncounterVersion)).one()
            assert (kept.local_day, versions.organisation_id) == (
                paris_today() - timedelta(days=1),
                kept.organisation_id,
            )


def _purge_audit_before(app: Flask, seq: int, **kwargs: object) -> retention.PurgeResult:
    """Purge every audit event older than event ``seq`` (no encounter is old enough)."""
    with app.app_context():
        session = db.session
        with session.begin():
            cutoff = session.scalar(select(AuditEvent.at).where(AuditEvent.seq == seq))
        assert cutoff is not None
        limits = retention.Cutoffs(encounters_before=date(2000, 1, 1), audit_before=cutoff)
        # A zero-day period lets the purge cut at an event of a moment ago.
        settings = app.config["OUTREACH_SETTINGS"].with_overrides(audit_retention_days=0)
        return retention.purge(session, OPERATOR, settings, limits=limits, **kwargs)  # type: ignore[arg-type]


def _head(app: Flask) -> audit.ChainHead:
    with app.app_context():
        session = db.session
        with session.begin():
            return audit.read_head(session)


def test_purged_audit_events_leave_a_checkpoint_the_chain_verifies_from(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _seed(client, make_account)
    with app.app_context():
        third = db.session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == 3))
    old_head = audit.ChainHead(seq=3, hash=str(third))
    total = _head(app).seq
    # Two accounts in one organisation (3), two logins, the sync and the amendment.
    assert total == 7
    result = _purge_audit_before(app, 5)
    assert result.audit_events == 4
    assert result.checkpoint_seq == 4
    with app.app_context():
        assert db.session.scalar(select(func.min(AuditEvent.seq))) == 5
        checkpoint = db.session.scalars(select(AuditCheckpoint)).one()
    assert (checkpoint.seq, checkpoint.purged) == (4, 4)
    verified = verify_chain(app)
    assert verified.ok
    # The remaining events plus the purge's checkpoint event and its closing event.
    assert verified.checked == total - 4 + 2
    assert [(p.through_seq, p.events, p.audit_retention_days) for p in verified.purges] == [
        (4, 4, 0)
    ]
    # A head handed out before the purge can no longer be checked, and verify says so.
    stale = verify_chain(app, old_head)
    assert stale.ok
    assert stale.head_status == "purged"
    assert "older than the purge" in (stale.head_note or "")
    assert verified.purges[0].audit_before in (stale.head_note or "")
    # Tampering after the checkpoint is still found at its event.
    tamper(app, delete(AuditEvent).where(AuditEvent.seq == 5))
    broken = verify_chain(app)
    assert (broken.ok, broken.first_broken_seq) == (False, 6)


class Interrupted(Exception):
    pass


def test_an_interrupted_purge_keeps_whole_batches_and_finishes_when_run_again(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _seed(client, make_account)

    def stop_after_first_batch(what: str, _count: int) -> None:
        if what == "audit events":
            raise Interrupted

    with pytest.raises(Interrupted):
        _purge_audit_before(app, 7, batch=2, progress=stop_after_first_batch)
    with app.app_context():
        assert db.session.scalar(select(func.min(AuditEvent.seq))) == 3
    assert verify_chain(app).ok
    finished = _purge_audit_before(app, 7, batch=2)
    assert finished.checkpoint_seq == 6
    with app.app_context():
        checkpoints = db.session.scalars(
            select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)
        ).all()
    assert checkpoints == [2, 4, 6]
    assert verify_chain(app).ok


def test_long_commands_draw_a_progress_bar_on_a_terminal(
    client: FlaskClient, make_account: Callable[..., Account], database_url: str, tmp_path: Path
) -> None:
    """What an operator sees: each long command, run in a terminal, fills its bar."""
    _seed(client, make_account)
    environment = {"OUTREACH_DATABASE_URL": database_url, "OUTREACH_RETENTION_DAYS": "5"}
    for command, label in (
        (["rollups", "rebuild"], "Rebuilding rollups"),
        (["retention", "purge", "--batch-size", "100"], "Purging"),
        (["audit", "verify"], "Verifying the audit chain"),
    ):
        status, screen = in_terminal(command, environment, tmp_path)
        assert status == 0, screen
        assert re.search(rf"{label}\s+\[#+\]\s+100%", screen), screen
        assert "Traceback" not in screen
