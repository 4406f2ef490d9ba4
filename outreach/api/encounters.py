"""``/api/v1/encounters``: an organisation reads and corrects what it recorded."""

from __future__ import annotations

import uuid
from typing import Any

from outreach.api.access import call_context, requires, settings
from outreach.api.blueprint import Blueprint
from outreach.api.pages import PageResponse, page_body
from outreach.extensions import db
from outreach.models import Encounter, Role
from outreach.services import encounters
from outreach.services.rows import EncounterChanges
from schemas.encounters import (
    EncounterAmendSchema,
    EncounterDeleteSchema,
    EncounterPageSchema,
    EncounterQuerySchema,
    StoredEncounterSchema,
)

blp = Blueprint(
    "encounters", __name__, url_prefix="/api/v1/encounters", description="Stored encounters"
)


def _out(encounter: Encounter) -> dict[str, Any]:
    person = encounters.person_of(encounter)
    shown = None if person is None else {**person, "ref_known": encounter.ref_hash is not None}
    return {
        "id": encounter.id,
        "occurred_at": encounter.occurred_at,
        "local_day": encounter.local_day,
        "shift_id": encounter.shift_id,
        "shift_kind": encounter.shift_kind,
        "cell": encounter.cell,
        "sector": encounter.sector,
        "setting": encounter.setting,
        "people": encounter.people,
        "person": shown,
        "kits": encounter.kits,
        "services": encounter.services,
        "referrals": encounter.referrals,
        "version": encounter.version,
        "created_by": encounter.created_by,
        "created_at": encounter.created_at,
        "updated_at": encounter.updated_at,
    }


@blp.route("", methods=["GET"])
@requires(Role.ORG_ADMIN, Role.WORKER)
@blp.arguments(EncounterQuerySchema, location="query")
@blp.response(200, EncounterPageSchema)
def list_encounters(query: dict[str, Any]) -> PageResponse:
    """Encounters of your organisation (org_admin) or your own submissions (worker)."""
    filters = encounters.EncounterFilters(
        start=query.get("from_"),
        end=query.get("to"),
        sector=query.get("sector"),
        shift_id=query.get("shift_id"),
    )
    result = encounters.list_encounters(
        db.session, call_context(), filters, page=query["page"], per_page=query["per_page"]
    )
    return page_body(result, _out)


@blp.route("/<uuid:encounter_id>", methods=["GET"])
@requires(Role.ORG_ADMIN, Role.WORKER)
@blp.response(200, StoredEncounterSchema)
def get_encounter(encounter_id: uuid.UUID) -> dict[str, Any]:
    """One encounter."""
    return _out(encounters.get_encounter(db.session, call_context(), encounter_id))


@blp.route("/<uuid:encounter_id>", methods=["PATCH"])
@requires(Role.ORG_ADMIN)
@blp.arguments(EncounterAmendSchema(partial=True))
@blp.response(200, StoredEncounterSchema)
def amend_encounter(changes: EncounterChanges, encounter_id: uuid.UUID) -> dict[str, Any]:
    """Correct an encounter; the replaced content is kept as a version."""
    encounter = encounters.amend_encounter(
        db.session,
        call_context(),
        settings(),
        encounter_id,
        changes,
    )
    return _out(encounter)


@blp.route("/<uuid:encounter_id>", methods=["DELETE"])
@requires(Role.ORG_ADMIN)
@blp.arguments(EncounterDeleteSchema)
@blp.response(204)
def delete_encounter(body: dict[str, Any], encounter_id: uuid.UUID) -> None:
    """Delete an encounter (soft, with a reason code); aggregates follow."""
    encounters.delete_encounter(db.session, call_context(), encounter_id, body["reason"])
