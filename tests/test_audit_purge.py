"""Purge checkpoints count only when the chain attests them; times never go backwards.

The attacks are those of issue 26, run as a process that writes to the database: a
checkpoint row slipped in and the events before it deleted, a forged purge record
cutting more than the retention period allows, an event dated before its
predecessor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from outreach.extensions import db
from outreach.models import AuditCheckpoint, AuditEvent, AuditTimeOrder, Role, utcnow
from outreach.services import audit, retention
from outreach.services.context import OPERATOR
from tests.helpers import Account, headers_for, verify_chain


def _activity(client: FlaskClient, make_account: Callable[..., Account]) -> dict[str, str]:
    """A dozen events: logins and reads of a worker, an auditor's token."""
    worker = make_account(Role.WORKER, "assoc-a")
    for _ in range(4):
        client.get("/api/v1/auth/me", headers=headers_for(client, worker))
    return headers_for(client, make_account(Role.AUDITOR))


def _event(app: Flask, seq: int) -> AuditEvent:
    with app.app_context():
        session = db.session
        with session.begin():
            event = session.get(AuditEvent, seq)
            assert event is not None
            session.expunge(event)
            return event


def _unprotected(session: Session) -> None:
    """What a database writer does to get past PostgreSQL's append-only trigger."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL outreach.audit_purge = 'on'"))


def _cut_before(app: Flask, seq: int) -> None:
    """The attack: a checkpoint at ``seq - 1`` and every event before ``seq`` deleted."""
    cut = _event(app, seq - 1)
    with app.app_context():
        session = db.session
        with session.begin():
            _unprotected(session)
            session.add(AuditCheckpoint(seq=cut.seq, hash=cut.hash, at=utcnow(), purged=cut.seq))
            session.execute(delete(AuditEvent).where(AuditEvent.seq < seq))


def test_a_checkpoint_no_purge_attests_does_not_verify(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    make_account: Callable[..., Account],
) -> None:
    auditor = _activity(client, make_account)
    kept = client.get("/api/v1/audit/verify", headers=auditor).get_json()
    assert kept["ok"] is True
    head = f"{kept['head_seq']}:{kept['head_hash']}"
    _cut_before(app, 8)
    # Before issue 26, all three answered ok: the checkpoint row alone was trusted.
    result = verify_chain(app)
    assert (result.ok, result.first_broken_seq) == (False, 8)
    assert "no purge in the chain attests" in (result.reason or "")
    for query in ("", f"?head={head}"):
        answer = client.get(f"/api/v1/audit/verify{query}", headers=auditor).get_json()
        assert (answer["ok"], answer["first_broken_seq"]) == (False, 8)
    cli = runner.invoke(args=["audit", "verify"])
    assert cli.exit_code == 1
    assert "BROKEN at event 8" in cli.output


def test_a_checkpoint_beside_events_it_would_have_purged_does_not_verify(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _activity(client, make_account)
    cut = _event(app, 5)
    with app.app_context():
        session = db.session
        with session.begin():
            session.add(AuditCheckpoint(seq=cut.seq, hash=cut.hash, at=utcnow(), purged=5))
    result = verify_chain(app)
    assert (result.ok, result.first_broken_seq) == (False, 5)


def _append(session: Session, **overrides: Any) -> None:
    """Append a well-chained event as a writer of the database would, any field forged."""
    head = session.execute(
        select(AuditEvent.seq, AuditEvent.hash, AuditEvent.at).order_by(AuditEvent.seq.desc())
    ).first()
    assert head is not None
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        "at": max(utcnow(), head.at),
        "actor_user_id": None,
        "actor_org_id": None,
        "actor_role": "operator",
        "action": "forged",
        "target": None,
        "params": {},
        "records": 0,
        "outcome": audit.Outcome.SUCCESS,
        "request_id": None,
        "client_hash": None,
        "prev_hash": head.hash,
        **overrides,
    }
    fields["hash"] = audit.chain_hash(head.hash, audit.canonical_payload(fields))
    session.execute(insert(AuditEvent), fields)


def test_a_forged_purge_record_cutting_inside_the_retention_period_does_not_verify(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _activity(client, make_account)
    cut = _event(app, 7)
    _cut_before(app, 8)
    with app.app_context():
        session = db.session
        with session.begin():
            now = utcnow()
            _append(
                session,
                action=audit.CHECKPOINT_ACTION,
                params={
                    "checkpoint_seq": cut.seq,
                    "checkpoint_hash": cut.hash,
                    "checkpoint_at": audit.iso_time(cut.at),
                    "audit_before": audit.iso_time(now),
                    "audit_retention_days": 365,
                    "purged": 7,
                },
            )
        forged_seq = db.session.scalar(select(func.max(AuditEvent.seq)))
    result = verify_chain(app)
    assert (result.ok, result.first_broken_seq) == (False, forged_seq)
    assert "365-day retention" in (result.reason or "")


def test_event_times_never_go_backwards(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    auditor = _activity(client, make_account)
    with app.app_context():
        session = db.session
        with session.begin():
            # A head dated ahead of this clock, as a concurrent writer's event can be.
            _append(session, at=utcnow() + timedelta(minutes=10))
        ahead = session.scalar(select(func.max(AuditEvent.at)))
    # The next events are dated at the head's time, not before it (before: a read of
    # the clock outside the chain lock went first).
    assert client.get("/api/v1/audit/verify", headers=auditor).get_json()["ok"] is True
    events = _events_after(app, 0)
    assert [e.at for e in events[-2:]] == [ahead, ahead]
    assert verify_chain(app).ok
    # An event dated before its predecessor is refused by the verifier.
    with app.app_context():
        session = db.session
        with session.begin():
            _append(session, at=utcnow() - timedelta(hours=1))
    result = verify_chain(app)
    assert result.ok is False
    assert result.reason == "its time is before the event before it"


def _events_after(app: Flask, seq: int) -> list[AuditEvent]:
    with app.app_context():
        session = db.session
        with session.begin():
            events = list(
                session.scalars(
                    select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)
                )
            )
            session.expunge_all()
            return events


def test_a_real_purge_is_reported_and_a_head_older_than_it_is_named(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    make_account: Callable[..., Account],
) -> None:
    auditor = _activity(client, make_account)
    old = _event(app, 3)
    cutoff = _event(app, 6).at
    settings = app.config["OUTREACH_SETTINGS"].with_overrides(audit_retention_days=0)
    limits = retention.Cutoffs(encounters_before=date(2000, 1, 1), audit_before=cutoff)
    with app.app_context():
        retention.purge(db.session, OPERATOR, settings, limits=limits, batch=2)
    checkpoints = [e for e in _events_after(app, 0) if e.action == audit.CHECKPOINT_ACTION]
    assert [e.params["checkpoint_seq"] for e in checkpoints] == [2, 4, 5]
    assert {e.params["audit_before"] for e in checkpoints} == {audit.iso_time(cutoff)}
    answer = client.get(f"/api/v1/audit/verify?head={old.seq}:{old.hash}", headers=auditor)
    body = answer.get_json()
    assert body["ok"] is True
    assert body["purges"] == [
        {
            "audit_before": audit.iso_time(cutoff),
            "audit_retention_days": 0,
            "through_seq": 5,
            "events": 5,
            "attested_at": audit.iso_time(checkpoints[-1].at),
            "attested_by_seq": checkpoints[-1].seq,
        }
    ]
    assert body["head_status"] == "purged"
    assert (
        f"event 3 is older than the purge recorded at event {checkpoints[-1].seq}"
        in (body["head_note"])
    )
    cli = runner.invoke(args=["audit", "verify", "--head", f"{old.seq}:{old.hash}"])
    assert cli.exit_code == 0, cli.output
    assert "5 events before" in cli.output
    assert "older than the purge" in cli.output


def test_the_purge_refuses_a_cut_off_inside_the_retention_period(app: Flask) -> None:
    settings = app.config["OUTREACH_SETTINGS"]
    limits = retention.Cutoffs(encounters_before=date(2000, 1, 1), audit_before=utcnow())
    with app.app_context(), pytest.raises(ValueError, match="365-day retention"):
        retention.purge(db.session, OPERATOR, settings, limits=limits)


def test_times_are_checked_only_after_the_upgrade_that_ordered_them(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    """A log written before migration 0011 may step back a little; it still verifies."""
    _activity(client, make_account)
    with app.app_context():
        session = db.session
        with session.begin():
            _append(session, at=utcnow() - timedelta(seconds=1))
            legacy = session.scalar(select(func.max(AuditEvent.seq)))
            session.add(AuditTimeOrder(id=1, ordered_after=legacy))
    assert verify_chain(app).ok
    with app.app_context():
        session = db.session
        with session.begin():
            _append(session, at=utcnow() - timedelta(hours=1))
    assert verify_chain(app).reason == "its time is before the event before it"


def test_a_purge_made_before_the_upgrade_is_attested_by_its_closing_event(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    """Purges before migration 0011 left only their ``retention.purge`` event, naming the
    checkpoint's sequence and the cut-off: it attests them in the log written before."""
    _activity(client, make_account)
    cutoff = _event(app, 5).at
    _cut_before(app, 5)
    with app.app_context():
        session = db.session
        with session.begin():
            _append(
                session,
                action="retention.purge",
                params=audit.sanitise_params(
                    {
                        "audit_before": cutoff,
                        "audit_events": 4,
                        "checkpoint_seq": 4,
                        "dry_run": False,
                        "audit_retention_days": 0,
                    }
                ),
            )
    # Without the upgrade's mark, such a record is not enough.
    assert verify_chain(app).reason == (
        "the chain starts after event 4, but no purge in the chain attests that checkpoint"
    )
    with app.app_context():
        session = db.session
        with session.begin():
            head = session.scalar(select(func.max(AuditEvent.seq)))
            session.add(AuditTimeOrder(id=1, ordered_after=head))
    verified = verify_chain(app)
    assert verified.ok, verified.reason
    assert [(p.through_seq, p.events) for p in verified.purges] == [(4, 4)]
