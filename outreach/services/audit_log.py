"""What the health authority reads of the audit log: events, verification, data use.

Each of these reads is itself an event of the log, written in the transaction that
reads, so the auditor's own activity is as visible as anyone's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.orm import Session

from outreach.clock import PARIS
from outreach.models import AuditEvent, Organisation, User
from outreach.services import audit
from outreach.services.context import CallContext
from outreach.services.errors import Invalid
from outreach.services.pagination import Page, paginate

# Actions that hand raw encounter rows to their caller: who does it, and how much,
# is what an auditor looks at first.
RAW_READ_ACTIONS = ("encounters.read",)
MAX_DATA_USE_DAYS = 366


@dataclass(frozen=True)
class EventFilters:
    start: date | None = None
    end: date | None = None
    actor: str | None = None
    organisation: str | None = None
    action: str | None = None
    outcome: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "actor": self.actor,
            "organisation": self.organisation,
            "action": self.action,
            "outcome": self.outcome,
        }


def _query_error(parameter: str, message: str) -> Invalid:
    return Invalid(message, {"query": {parameter: [message]}})


def _paris_bounds(start: date | None, end: date | None) -> list[ColumnElement[bool]]:
    clauses = []
    if start is not None:
        clauses.append(AuditEvent.at >= datetime.combine(start, time(0), PARIS))
    if end is not None:
        clauses.append(AuditEvent.at < datetime.combine(end + timedelta(days=1), time(0), PARIS))
    return clauses


def _organisation_id(session: Session, slug: str) -> uuid.UUID:
    organisation_id = session.scalar(select(Organisation.id).where(Organisation.slug == slug))
    if organisation_id is None:
        raise _query_error("organisation", "No such organisation.")
    return organisation_id


def _actor_id(session: Session, username: str) -> uuid.UUID:
    user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise _query_error("actor", "No such user.")
    return user_id


def _events_query(session: Session, filters: EventFilters) -> Select[Any]:
    statement: Select[Any] = (
        select(AuditEvent)
        .where(*_paris_bounds(filters.start, filters.end))
        .order_by(AuditEvent.seq.desc())
    )
    if filters.actor is not None:
        statement = statement.where(AuditEvent.actor_user_id == _actor_id(session, filters.actor))
    if filters.organisation is not None:
        organisation_id = _organisation_id(session, filters.organisation)
        statement = statement.where(AuditEvent.actor_org_id == organisation_id)
    if filters.action is not None:
        statement = statement.where(AuditEvent.action == filters.action)
    if filters.outcome is not None:
        statement = statement.where(AuditEvent.outcome == filters.outcome)
    return statement


@dataclass(frozen=True)
class EventPage:
    page: Page[AuditEvent]
    usernames: dict[uuid.UUID, str]
    organisations: dict[uuid.UUID, str]


def list_events(
    session: Session, ctx: CallContext, filters: EventFilters, *, page: int, per_page: int
) -> EventPage:
    """Events newest first, with the names of their actors and organisations."""
    with session.begin():
        result = paginate(session, _events_query(session, filters), page, per_page)
        user_ids = {e.actor_user_id for e in result.items if e.actor_user_id}
        org_ids = {e.actor_org_id for e in result.items if e.actor_org_id}
        usernames = dict(
            session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all()
        )
        organisations = dict(
            session.execute(
                select(Organisation.id, Organisation.slug).where(Organisation.id.in_(org_ids))
            ).all()
        )
        audit.record(
            session,
            ctx,
            "audit.events",
            params={**filters.params(), "page": page, "per_page": per_page},
            records=len(result.items),
        )
    return EventPage(result, usernames, organisations)


def verify_chain(
    session: Session,
    ctx: CallContext,
    expected_head: audit.ChainHead | None,
    progress: Callable[[int], None] = lambda _n: None,
) -> audit.VerifyResult:
    """Recompute the chain; the verification itself is then appended to it."""
    with session.begin():
        result = audit.verify(session, expected_head, progress)
        audit.record(
            session,
            ctx,
            "audit.verify",
            outcome=audit.Outcome.SUCCESS if result.ok else audit.Outcome.FAILED,
            params={
                "head": f"{expected_head.seq}:{expected_head.hash}" if expected_head else None,
                "ok": result.ok,
                "first_broken_seq": result.first_broken_seq,
                "head_status": result.head_status,
            },
            records=result.checked,
        )
    return result


@dataclass(frozen=True)
class DataUse:
    rows: list[dict[str, Any]]
    raw_readers: list[dict[str, Any]]


def data_use(session: Session, ctx: CallContext, start: date, end: date) -> DataUse:
    """Requests, records and refusals per organisation, role and action; raw-row readers."""
    if start > end:
        raise _query_error("from", "'from' must not be after 'to'.")
    if (end - start).days + 1 > MAX_DATA_USE_DAYS:
        raise _query_error("from", f"A period spans at most {MAX_DATA_USE_DAYS} days.")
    period = and_(*_paris_bounds(start, end))
    refused = case((AuditEvent.outcome == audit.Outcome.DENIED, 1), else_=0)
    with session.begin():
        grouped = session.execute(
            select(
                Organisation.slug,
                AuditEvent.actor_role,
                AuditEvent.action,
                func.count(),
                func.coalesce(func.sum(AuditEvent.records), 0),
                func.sum(refused),
            )
            .outerjoin(Organisation, Organisation.id == AuditEvent.actor_org_id)
            .where(period)
            .group_by(Organisation.slug, AuditEvent.actor_role, AuditEvent.action)
            .order_by(Organisation.slug, AuditEvent.actor_role, AuditEvent.action)
        ).all()
        readers = session.execute(
            select(
                User.username,
                Organisation.slug,
                AuditEvent.actor_role,
                func.count(),
                func.coalesce(func.sum(AuditEvent.records), 0),
            )
            .join(User, User.id == AuditEvent.actor_user_id)
            .outerjoin(Organisation, Organisation.id == AuditEvent.actor_org_id)
            .where(
                period,
                AuditEvent.action.in_(RAW_READ_ACTIONS),
                AuditEvent.outcome == audit.Outcome.SUCCESS,
            )
            .group_by(User.username, Organisation.slug, AuditEvent.actor_role)
            .order_by(func.coalesce(func.sum(AuditEvent.records), 0).desc(), User.username)
        ).all()
        rows = [
            {
                "organisation": slug,
                "role": role,
                "action": action,
                "requests": int(requests),
                "records": int(records),
                "refusals": int(refusals or 0),
            }
            for slug, role, action, requests, records, refusals in grouped
        ]
        raw_readers = [
            {
                "username": username,
                "organisation": slug,
                "role": role,
                "requests": int(requests),
                "records": int(records),
            }
            for username, slug, role, requests, records in readers
        ]
        audit.record(
            session,
            ctx,
            "audit.data_use",
            params={"from": start.isoformat(), "to": end.isoformat()},
            records=len(rows) + len(raw_readers),
        )
    return DataUse(rows=rows, raw_readers=raw_readers)
