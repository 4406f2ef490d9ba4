"""The audit log, its verification, data-use figures and the processing register."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from schemas.common import Day, PaginationQuery, page_of

OUTCOMES = ("success", "denied", "failed", "invalid")
HEAD = r"^\d+:[0-9a-f]{64}$"


def _ordered(data: dict[str, Any]) -> None:
    start, end = data.get("from_"), data.get("to")
    if start is not None and end is not None and start > end:
        raise ma.ValidationError("'from' must not be after 'to'.", "from")


class EventQuerySchema(PaginationQuery):
    from_ = Day(data_key="from", metadata={"description": "first Paris day, inclusive"})
    to = Day(metadata={"description": "last Paris day, inclusive"})
    actor = fields.String(
        validate=validate.Length(min=1, max=64), metadata={"description": "username"}
    )
    organisation = fields.String(
        validate=validate.Length(min=1, max=64), metadata={"description": "slug"}
    )
    action = fields.String(validate=validate.Length(min=1, max=64))
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))

    @ma.validates_schema
    def ordered_period(self, data: dict[str, Any], **_kwargs: Any) -> None:
        _ordered(data)


class AuditEventSchema(ma.Schema):
    seq = fields.Integer(required=True)
    at = fields.AwareDateTime(required=True)
    actor_user_id = fields.UUID(allow_none=True, required=True)
    actor_username = fields.String(allow_none=True, required=True)
    actor_org_id = fields.UUID(allow_none=True, required=True)
    actor_organisation = fields.String(allow_none=True, required=True)
    actor_role = fields.String(allow_none=True, required=True)
    action = fields.String(required=True)
    target = fields.String(allow_none=True, required=True)
    params = fields.Dict(required=True)
    records = fields.Integer(required=True)
    outcome = fields.String(required=True)
    request_id = fields.String(allow_none=True, required=True)
    client_hash = fields.String(allow_none=True, required=True)
    prev_hash = fields.String(required=True)
    hash = fields.String(required=True)


AuditEventPageSchema = page_of(AuditEventSchema, "AuditEventPageSchema")


class VerifyQuerySchema(ma.Schema):
    head = fields.String(
        validate=validate.Regexp(HEAD, error="Expected SEQ:HASH as printed by flask audit head."),
        metadata={"description": "a head handed out earlier that must still be in the chain"},
    )


class PurgeSchema(ma.Schema):
    audit_before = fields.String(
        required=True, metadata={"description": "every event before this time was purged"}
    )
    audit_retention_days = fields.Integer(required=True)
    through_seq = fields.Integer(
        required=True, metadata={"description": "the last event this purge removed"}
    )
    events = fields.Integer(required=True)
    attested_at = fields.String(required=True)
    attested_by_seq = fields.Integer(
        required=True, metadata={"description": "the purge's own event, later in the chain"}
    )


class VerifySchema(ma.Schema):
    ok = fields.Boolean(required=True)
    checked = fields.Integer(required=True)
    first_broken_seq = fields.Integer(allow_none=True, required=True)
    head_hash = fields.String(required=True)
    head_seq = fields.Integer(required=True)
    reason = fields.String(allow_none=True, required=True)
    purges = fields.List(
        fields.Nested(PurgeSchema),
        required=True,
        metadata={"description": "the purges the chain attests and the verification relied on"},
    )
    head_status = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "with head: found, or purged (older than a purge)"},
    )
    head_note = fields.String(allow_none=True, required=True)


class DataUseQuerySchema(ma.Schema):
    from_ = Day(data_key="from", metadata={"description": "default: 29 days before 'to'"})
    to = Day(metadata={"description": "default: today (Paris)"})

    @ma.validates_schema
    def ordered_period(self, data: dict[str, Any], **_kwargs: Any) -> None:
        _ordered(data)


class DataUseRowSchema(ma.Schema):
    organisation = fields.String(allow_none=True, required=True)
    role = fields.String(allow_none=True, required=True)
    action = fields.String(required=True)
    requests = fields.Integer(required=True)
    records = fields.Integer(required=True)
    refusals = fields.Integer(required=True)


class RawReaderSchema(ma.Schema):
    username = fields.String(required=True)
    organisation = fields.String(allow_none=True, required=True)
    role = fields.String(allow_none=True, required=True)
    requests = fields.Integer(required=True)
    records = fields.Integer(required=True)


class PeriodSchema(ma.Schema):
    from_ = fields.Date(data_key="from", attribute="from", required=True)
    to = fields.Date(required=True)


class DataUseSchema(ma.Schema):
    period = fields.Nested(PeriodSchema, required=True)
    rows = fields.List(fields.Nested(DataUseRowSchema), required=True)
    raw_readers = fields.List(
        fields.Nested(RawReaderSchema),
        required=True,
        metadata={"description": "accounts that read raw encounter rows, most records first"},
    )


class RecipientSchema(ma.Schema):
    role = fields.String(required=True)
    organisation_kind = fields.String(required=True)
    routes = fields.List(fields.String(), required=True)


class RegisterSchema(ma.Schema):
    name = fields.String(required=True)
    controller = fields.String(required=True)
    purposes = fields.List(fields.String(), required=True)
    legal_basis = fields.List(fields.String(), required=True)
    data_subjects = fields.String(required=True)
    categories = fields.List(fields.Dict(), required=True)
    never_collected = fields.List(fields.String(), required=True)
    recipients = fields.List(fields.Nested(RecipientSchema), required=True)
    location_precision = fields.Dict(required=True)
    small_cell_threshold = fields.Integer(required=True)
    retention = fields.Dict(required=True)
    security_measures = fields.Dict(required=True)
    hosting = fields.Dict(required=True)
    transfers = fields.String(required=True)
