"""Stored encounters as their organisation reads and corrects them."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from schemas.common import Day, PaginationQuery, StrictBoolean, page_of
from schemas.sync import EncounterSchema
from schemas.vocabulary import DELETION_REASONS, SECTORS


class StoredPersonSchema(ma.Schema):
    age_band = fields.String(required=True)
    gender = fields.String(required=True)
    first_contact = StrictBoolean(required=True)
    ref_known = StrictBoolean(
        required=True, metadata={"description": "Whether a person ref was given (never the ref)."}
    )


class StoredReferralSchema(ma.Schema):
    to = fields.String(required=True)
    structure = fields.String(allow_none=True, required=True)
    status = fields.String(required=True)


class StoredEncounterSchema(ma.Schema):
    id = fields.UUID(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    local_day = fields.Date(required=True, metadata={"description": "Paris calendar day"})
    shift_id = fields.UUID(allow_none=True, required=True)
    shift_kind = fields.String(required=True)
    cell = fields.String(required=True, metadata={"description": "H3 cell"})
    sector = fields.String(required=True)
    setting = fields.String(required=True)
    people = fields.Integer(required=True)
    person = fields.Nested(StoredPersonSchema, allow_none=True, required=True)
    kits = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    services = fields.List(fields.String(), required=True)
    referrals = fields.List(fields.Nested(StoredReferralSchema), required=True)
    version = fields.Integer(required=True)
    created_by = fields.UUID(required=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


EncounterPageSchema = page_of(StoredEncounterSchema, "EncounterPageSchema")


class EncounterQuerySchema(PaginationQuery):
    from_ = Day(data_key="from", metadata={"description": "first Paris day, inclusive"})
    to = Day(metadata={"description": "last Paris day, inclusive"})
    sector = fields.String(validate=validate.OneOf(SECTORS))
    shift_id = fields.UUID()

    @ma.validates_schema
    def ordered_period(self, data: dict[str, object], **_kwargs: object) -> None:
        start, end = data.get("from_"), data.get("to")
        if start is not None and end is not None and start > end:  # type: ignore[operator]
            raise ma.ValidationError("'from' must not be after 'to'.", "from")


class EncounterAmendSchema(EncounterSchema):
    """Any field of the sync schema but the id; what is absent stays as stored."""

    class Meta:
        exclude = ("id",)


class EncounterDeleteSchema(ma.Schema):
    reason = fields.String(required=True, validate=validate.OneOf(DELETION_REASONS))
