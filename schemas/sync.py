"""``POST /sync``: the batch, each shift and encounter a phone sends, and the answer.

The batch is parsed in two steps so that one bad item does not sink the others: the
envelope (``SyncBodySchema``) takes the items as raw objects, then each is loaded with
``ShiftSchema`` or ``EncounterSchema`` and reported on by itself.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from schemas.common import StrictBoolean, StrictFloat, StrictInteger
from schemas.vocabulary import (
    AGE_BANDS,
    GENDERS,
    OUTSIDE_SECTORS,
    REFERRAL_DESTINATIONS,
    REFERRAL_STATUSES,
    SECTORS,
    SERVICES,
    SETTINGS,
    SHIFT_KINDS,
)

MAX_ITEMS = 500
MAX_PEOPLE = 50
MAX_KIT_COUNT = 500
MAX_SHIFT_HOURS = 24
PLANNABLE_SECTORS = tuple(code for code in SECTORS if code != OUTSIDE_SECTORS)


def _moment() -> fields.AwareDateTime:
    return fields.AwareDateTime(
        required=True,
        error_messages={
            "invalid_awareness": "Give the time with its timezone offset, "
            "e.g. 2026-11-20T21:30:00+01:00."
        },
    )


# An H3 cell index as h3 writes it: 15 lowercase hexadecimal digits. Whether it is a
# real cell, at the service's resolution and inside the service area, is the sync's check.
CELL_PATTERN = r"^[0-9a-f]{15}$"


class LocationSchema(ma.Schema):
    """Input only: a point ``{lat, lon, accuracy_m?}`` is snapped to a hexagon and a sector,
    then dropped; or a hexagon ``{cell}`` the phone snapped itself, so that no coordinate
    leaves it. Either form, never both."""

    lat = StrictFloat(
        validate=validate.Range(min=-90, max=90),
        metadata={"description": "With lon: a point, snapped at ingest and dropped."},
    )
    lon = StrictFloat(validate=validate.Range(min=-180, max=180))
    accuracy_m = StrictFloat(validate=validate.Range(min=0, max=100_000))
    cell = fields.String(
        validate=validate.Regexp(CELL_PATTERN, error="Not an H3 cell index."),
        metadata={
            "description": "Instead of a point: the H3 hexagon at the service's resolution "
            "(OUTREACH_H3_RESOLUTION), inside the service area. Its sector is the one "
            "containing the hexagon's centre."
        },
    )

    @ma.validates_schema
    def point_or_cell(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "cell" in data:
            if data.keys() - {"cell"}:
                raise ma.ValidationError("Send a cell or a point (lat, lon), not both.", "cell")
            return
        missing = {name: ["Missing data for required field."] for name in ("lat", "lon")}
        for name in data:
            missing.pop(name, None)
        if missing:
            raise ma.ValidationError(missing)


class PersonSchema(ma.Schema):
    age_band = fields.String(load_default="unknown", validate=validate.OneOf(AGE_BANDS))
    gender = fields.String(load_default="unknown", validate=validate.OneOf(GENDERS))
    first_contact = StrictBoolean(load_default=False)
    ref = fields.String(
        validate=validate.Length(min=8, max=128),
        metadata={"description": "Opaque token derived by the phone; stored only as a keyed hash."},
    )


class ReferralSchema(ma.Schema):
    to = fields.String(required=True, validate=validate.OneOf(REFERRAL_DESTINATIONS))
    structure = fields.String(validate=validate.Length(min=1, max=64))
    status = fields.String(required=True, validate=validate.OneOf(REFERRAL_STATUSES))


class EncounterSchema(ma.Schema):
    id = fields.UUID(required=True)
    occurred_at = _moment()
    shift_id = fields.UUID(allow_none=True)
    location = fields.Nested(
        LocationSchema,
        required=True,
        metadata={
            "description": "Either a point `{lat, lon, accuracy_m?}` (dropped once snapped) "
            "or the hexagon the phone snapped itself, `{cell}`; never both."
        },
    )
    setting = fields.String(required=True, validate=validate.OneOf(SETTINGS))
    people = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_PEOPLE))
    person = fields.Nested(PersonSchema)
    kits = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=32)),
        values=StrictInteger(validate=validate.Range(min=0, max=MAX_KIT_COUNT)),
        load_default=dict,
    )
    services = fields.List(
        fields.String(validate=validate.OneOf(SERVICES)),
        load_default=list,
        validate=validate.Length(max=len(SERVICES)),
    )
    referrals = fields.List(
        fields.Nested(ReferralSchema), load_default=list, validate=validate.Length(max=20)
    )

    @ma.validates_schema
    def person_only_alone(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("person") is not None and data.get("people", 1) != 1:
            raise ma.ValidationError(
                "Person details are only for a contact with one person.", "person"
            )
        services = data.get("services", [])
        if len(set(services)) != len(services):
            raise ma.ValidationError("A service is listed twice.", "services")


class ShiftSchema(ma.Schema):
    id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(SHIFT_KINDS))
    started_at = _moment()
    ended_at = _moment()
    planned_sectors = fields.List(
        fields.String(validate=validate.OneOf(PLANNABLE_SECTORS)),
        load_default=list,
        validate=validate.Length(max=len(PLANNABLE_SECTORS)),
    )

    @ma.validates_schema
    def plausible_span(self, data: dict[str, Any], **_kwargs: Any) -> None:
        started, ended = data.get("started_at"), data.get("ended_at")
        if started is None or ended is None:
            return
        if ended < started:
            raise ma.ValidationError("A shift ends after it starts.", "ended_at")
        if ended - started > timedelta(hours=MAX_SHIFT_HOURS):
            raise ma.ValidationError(f"A shift lasts at most {MAX_SHIFT_HOURS} hours.", "ended_at")
        sectors = data.get("planned_sectors", [])
        if len(set(sectors)) != len(sectors):
            raise ma.ValidationError("A sector is listed twice.", "planned_sectors")


class ItemList(fields.List[Any]):
    """A list documented by its items' schema but loaded as raw values: each item is
    loaded by itself afterwards (``outreach.api.sync``), so that one bad item is
    answered ``invalid`` while the others are stored."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        return value


class SyncBodySchema(ma.Schema):
    shifts = ItemList(fields.Nested(ShiftSchema), load_default=list)
    encounters = ItemList(fields.Nested(EncounterSchema), load_default=list)


class SyncQuerySchema(ma.Schema):
    atomic = fields.Boolean(
        load_default=False,
        metadata={"description": "Store nothing (422) if any item is invalid."},
    )


class ItemResultSchema(ma.Schema):
    id = fields.String(allow_none=True, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("shift", "encounter")))
    status = fields.String(
        required=True, validate=validate.OneOf(("created", "duplicate", "conflict", "invalid"))
    )
    errors = fields.Dict()


class SyncCountsSchema(ma.Schema):
    created = fields.Integer(required=True)
    duplicate = fields.Integer(required=True)
    conflict = fields.Integer(required=True)
    invalid = fields.Integer(required=True)


class SyncResponseSchema(ma.Schema):
    results = fields.List(fields.Nested(ItemResultSchema), required=True)
    counts = fields.Nested(SyncCountsSchema, required=True)
