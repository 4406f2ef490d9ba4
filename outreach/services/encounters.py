"""Reading and correcting stored encounters, within the caller's organisation.

An org_admin reads its organisation's encounters; a worker reads the ones it
submitted. Amending keeps the replaced content as a version; deleting is soft and
takes a reason code. Both move the rollups in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from config import Settings
from outreach.models import NO_SHIFT, Encounter, EncounterVersion, Role, Shift, utcnow
from outreach.services import audit, writes
from outreach.services.access import scope_to_organisation
from outreach.services.context import CallContext, Principal
from outreach.services.errors import Invalid, NotFound
from outreach.services.pagination import Page, paginate
from outreach.services.rollups import STORED_FIELDS, Deltas, stored_row
from outreach.services.rows import EncounterChanges, EncounterItem, PersonItem
from outreach.services.sync import (
    EncounterBuilder,
    active_kits,
    encounter_content,
    structure_types,
)


@dataclass(frozen=True)
class EncounterFilters:
    start: date | None = None
    end: date | None = None
    sector: str | None = None
    shift_id: uuid.UUID | None = None

    def as_params(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "sector": self.sector,
            "shift_id": str(self.shift_id) if self.shift_id else None,
        }


def _visible(principal: Principal) -> Select[Encounter]:
    statement = scope_to_organisation(
        select(Encounter).where(Encounter.deleted_at.is_(None)),
        Encounter.organisation_id,
        principal,
    )
    if principal.role == Role.WORKER:
        statement = statement.where(Encounter.created_by == principal.user_id)
    return statement


def _caller(ctx: CallContext) -> Principal:
    assert ctx.principal is not None
    return ctx.principal


def list_encounters(
    session: Session, ctx: CallContext, filters: EncounterFilters, *, page: int, per_page: int
) -> Page[Encounter]:
    statement = _visible(_caller(ctx)).order_by(Encounter.occurred_at.desc(), Encounter.id)
    if filters.start is not None:
        statement = statement.where(Encounter.local_day >= filters.start)
    if filters.end is not None:
        statement = statement.where(Encounter.local_day <= filters.end)
    if filters.sector is not None:
        statement = statement.where(Encounter.sector == filters.sector)
    if filters.shift_id is not None:
        statement = statement.where(Encounter.shift_id == filters.shift_id)
    with session.begin():
        result = paginate(session, statement, page, per_page)
        audit.record(
            session,
            ctx,
            "encounters.read",
            params={**filters.as_params(), "page": page},
            records=len(result.items),
        )
    return result


def _find(session: Session, principal: Principal, encounter_id: uuid.UUID) -> Encounter:
    # The whole key: another association's encounter of this id is none of the caller's.
    encounter = session.scalars(
        _visible(principal).where(
            Encounter.organisation_id == principal.organisation_id, Encounter.id == encounter_id
        )
    ).first()
    if encounter is None:
        raise NotFound("No such encounter.")
    return encounter


def get_encounter(session: Session, ctx: CallContext, encounter_id: uuid.UUID) -> Encounter:
    with session.begin():
        encounter = _find(session, _caller(ctx), encounter_id)
        audit.record(session, ctx, "encounters.read", target=str(encounter.id), records=1)
    return encounter


def person_of(encounter: Encounter) -> PersonItem | None:
    """The person details of a one-person contact (never the ref), ``None`` for a group."""
    if encounter.people != 1:
        return None
    return {
        "age_band": encounter.age_band,
        "gender": encounter.gender,
        "first_contact": encounter.first_contact,
    }


def _as_input(encounter: Encounter) -> EncounterItem:
    """The stored encounter in the shape the sync schema loads (without location or ref)."""
    return {
        "id": encounter.id,
        "occurred_at": encounter.occurred_at,
        "shift_id": encounter.shift_id,
        "setting": encounter.setting,
        "people": encounter.people,
        "person": person_of(encounter),
        "kits": dict(encounter.kits),
        "services": list(encounter.services),
        "referrals": [
            {"to": r["to"], "structure": r.get("structure"), "status": r["status"]}
            for r in encounter.referrals
        ],
    }


def _version(encounter: Encounter, change: str, by: uuid.UUID) -> EncounterVersion:
    return EncounterVersion(
        organisation_id=encounter.organisation_id,
        encounter_id=encounter.id,
        version=encounter.version,
        content=encounter_content(stored_row(encounter)),
        content_hash=encounter.content_hash,
        change=change,
        replaced_by=by,
    )


def amend_encounter(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    encounter_id: uuid.UUID,
    changes: EncounterChanges,
) -> Encounter:
    """Apply ``changes`` (fields of the sync schema); the old content becomes a version."""
    principal = _caller(ctx)
    with session.begin():
        encounter = _find(session, principal, encounter_id)
        item: EncounterItem = {**_as_input(encounter), **changes}
        if item["people"] != 1:
            if changes.get("person") is not None:
                raise Invalid(
                    "Check the form.",
                    {"person": ["Person details are only for a contact with one person."]},
                )
            item["person"] = None
        shift_kind = encounter.shift_kind
        if "shift_id" in changes:
            shift_kind = _shift_kind(session, principal, changes["shift_id"])
        builder = EncounterBuilder(settings, utcnow())
        row, errors = builder.build(
            item,
            encounter.organisation_id,
            encounter.created_by,
            shift_kind,
            active_kits(session) | set(encounter.kits),
            structure_types(session, [item]),
            kept={
                "occurred_at": encounter.occurred_at,
                "cell": encounter.cell,
                "sector": encounter.sector,
                "ref_hash": encounter.ref_hash,
            },
        )
        if row is None:
            raise Invalid("Check the form.", errors)
        changed = row["content_hash"] != encounter.content_hash
        change = writes.NOTHING
        if changed:
            deltas = Deltas()
            deltas.add(stored_row(encounter), sign=-1)
            session.add(_version(encounter, "amend", principal.user_id))
            for name in STORED_FIELDS:
                setattr(encounter, name, row[name])
            encounter.version += 1
            encounter.updated_at = utcnow()
            deltas.add(stored_row(encounter))
            session.flush()
            change = deltas.apply(session)
        writes.record(
            session,
            ctx,
            "encounters.amend",
            change,
            target=str(encounter.id),
            params={"fields": sorted(changes), "changed": changed},
            records=1,
        )
    return encounter


def _shift_kind(session: Session, principal: Principal, shift_id: uuid.UUID | None) -> str:
    if shift_id is None:
        return NO_SHIFT
    kind = session.scalar(
        select(Shift.kind).where(
            Shift.id == shift_id, Shift.organisation_id == principal.organisation_id
        )
    )
    if kind is None:
        raise Invalid("Check the form.", {"shift_id": ["Unknown shift."]})
    return kind


def delete_encounter(
    session: Session, ctx: CallContext, encounter_id: uuid.UUID, reason: str
) -> None:
    """Soft-delete: the row leaves every list and aggregate; its content stays as a version."""
    principal = _caller(ctx)
    with session.begin():
        encounter = _find(session, principal, encounter_id)
        deltas = Deltas()
        deltas.add(stored_row(encounter), sign=-1)
        session.add(_version(encounter, "delete", principal.user_id))
        encounter.deleted_at = utcnow()
        encounter.deleted_reason = reason
        session.flush()
        change = deltas.apply(session)
        writes.record(
            session,
            ctx,
            "encounters.delete",
            change,
            target=str(encounter.id),
            params={"reason": reason},
            records=1,
        )
