"""Reference data: vocabularies, kits, structures."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from schemas.common import PaginationQuery, StrictBoolean, StrictFloat, StrictInteger, page_of
from schemas.vocabulary import REFERRAL_DESTINATIONS

_code = fields.String(
    required=True, validate=validate.Regexp(r"^[a-z0-9_]{2,32}$", error="Use 2 to 32 of a-z 0-9 _.")
)


class CodeLabelSchema(ma.Schema):
    code = fields.String(required=True)
    label = fields.String(required=True)


class VocabularyStructureSchema(ma.Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    destination = fields.String(required=True)


class VocabulariesSchema(ma.Schema):
    shift_kinds = fields.List(fields.Nested(CodeLabelSchema), required=True)
    settings = fields.List(fields.Nested(CodeLabelSchema), required=True)
    age_bands = fields.List(fields.Nested(CodeLabelSchema), required=True)
    genders = fields.List(fields.Nested(CodeLabelSchema), required=True)
    services = fields.List(fields.Nested(CodeLabelSchema), required=True)
    referral_destinations = fields.List(fields.Nested(CodeLabelSchema), required=True)
    referral_statuses = fields.List(fields.Nested(CodeLabelSchema), required=True)
    deletion_reasons = fields.List(fields.Nested(CodeLabelSchema), required=True)
    kits = fields.List(fields.Nested(CodeLabelSchema), required=True)
    structures = fields.List(fields.Nested(VocabularyStructureSchema), required=True)
    associations = fields.List(
        fields.Nested(CodeLabelSchema),
        required=True,
        metadata={"description": "active associations: the `organisation` filter of the stats"},
    )
    h3_resolution = fields.Integer(
        required=True,
        metadata={
            "description": "The H3 resolution of a location's `cell` (OUTREACH_H3_RESOLUTION)."
        },
    )
    sectors = fields.Dict(
        required=True,
        metadata={
            "description": "GeoJSON FeatureCollection; each sector's properties name a `cell` "
            "at `h3_resolution` whose centre lies in the sector, for a phone without a position "
            "(null when no hexagon's centre lies in it: a sector smaller than a hexagon)."
        },
    )


class KitSchema(ma.Schema):
    code = fields.String(required=True)
    label = fields.String(required=True)
    active = StrictBoolean(required=True)


class KitCreateSchema(ma.Schema):
    code = _code
    label = fields.String(required=True, validate=validate.Length(min=1, max=200))


class KitUpdateSchema(ma.Schema):
    label = fields.String(validate=validate.Length(min=1, max=200))
    active = StrictBoolean()


class StructureSchema(ma.Schema):
    id = fields.UUID(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    destination = fields.String(required=True)
    lat = fields.Float(allow_none=True, required=True)
    lon = fields.Float(allow_none=True, required=True)
    capacity = fields.Integer(allow_none=True, required=True)
    opening_hours = fields.String(allow_none=True, required=True)
    active = StrictBoolean(required=True)


StructurePageSchema = page_of(StructureSchema, "StructurePageSchema")


class StructureWriteSchema(ma.Schema):
    code = fields.String(validate=validate.Regexp(r"^[a-z0-9_]{2,64}$"))
    name = fields.String(validate=validate.Length(min=1, max=200))
    destination = fields.String(validate=validate.OneOf(REFERRAL_DESTINATIONS))
    lat = StrictFloat(allow_none=True, validate=validate.Range(min=-90, max=90))
    lon = StrictFloat(allow_none=True, validate=validate.Range(min=-180, max=180))
    capacity = StrictInteger(allow_none=True, validate=validate.Range(min=0, max=100_000))
    opening_hours = fields.String(allow_none=True, validate=validate.Length(max=200))
    active = StrictBoolean()

    @ma.validates_schema
    def position_whole(self, data: dict[str, object], **_kwargs: object) -> None:
        if ("lat" in data) != ("lon" in data) or (data.get("lat") is None) != (
            data.get("lon") is None
        ):
            raise ma.ValidationError("Give both lat and lon, or neither.", "lat")


class StructureUpdateSchema(StructureWriteSchema):
    """The code is what referrals name: it never changes."""

    class Meta:
        exclude = ("code",)


class StructureCreateSchema(StructureWriteSchema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_]{2,64}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    destination = fields.String(required=True, validate=validate.OneOf(REFERRAL_DESTINATIONS))


class StructureQuerySchema(PaginationQuery):
    destination = fields.String(validate=validate.OneOf(REFERRAL_DESTINATIONS))
    active = fields.Boolean()
