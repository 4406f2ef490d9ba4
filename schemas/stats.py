"""Aggregates as coordinators, auditors and associations read them.

Every count is a whole number, or ``null`` when masked (based on 1 to k-1
encounters); the masked ones are also listed by path under ``suppressed``. Figures
for anyone but the association's own org_admin are perturbed (cell key method), and
every body says so under ``protection``: parts may not add up to totals.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from schemas.common import Day
from schemas.vocabulary import SECTORS, SHIFT_KINDS

NO_SHIFT_KIND = "none"


def _count(description: str = "a count") -> fields.Integer:
    return fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": f"{description}, or null when masked"},
    )


def _counts_by_code(description: str) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(),
        values=fields.Integer(allow_none=True),
        required=True,
        metadata={"description": description},
    )


PERIOD_PATTERN = r"^\d{4}(-W\d{2}|-\d{2}|-Q[1-4])?$"


def _period() -> fields.String:
    return fields.String(
        validate=validate.Regexp(
            PERIOD_PATTERN, error="A period is YYYY-Www (ISO week), YYYY-MM, YYYY-Qn or YYYY."
        ),
        metadata={
            "description": "a period of the grid: ISO week (2026-W49), month (2026-11), "
            "quarter (2026-Q4) or year (2026); the current one as far as published. "
            "Default: the last whole week. Required form of the period for every figure "
            "beyond an org_admin's own association"
        },
    )


class FilterQuerySchema(ma.Schema):
    """Filters every aggregate accepts."""

    sector = fields.String(validate=validate.OneOf(SECTORS))
    organisation = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "an association's slug; an org_admin may name only its own"},
    )
    shift_kind = fields.String(
        validate=validate.OneOf((*SHIFT_KINDS, NO_SHIFT_KIND)),
        metadata={
            "description": f"a shift kind, or '{NO_SHIFT_KIND}' for contacts outside any shift"
        },
    )


class PeriodQuerySchema(FilterQuerySchema):
    period = _period()
    from_ = Day(
        data_key="from",
        metadata={
            "description": "first Paris day, inclusive; default 29 days before 'to' "
            "(an org_admin's own figures, and coverage, only)"
        },
    )
    to = Day(
        metadata={
            "description": "last Paris day, inclusive; default today (an org_admin's own "
            "figures, and coverage, only)"
        }
    )

    @ma.validates_schema
    def ordered_period(self, data: dict[str, Any], **_kwargs: Any) -> None:
        start, end = data.get("from_"), data.get("to")
        if start is not None and end is not None and start > end:
            raise ma.ValidationError("'from' must not be after 'to'.", "from")


class TimeseriesQuerySchema(PeriodQuerySchema):
    bucket = fields.String(
        validate=validate.OneOf(("day", "week", "month")),
        metadata={
            "description": "default: day for an org_admin's own figures, week for protected "
            "ones (which have no daily buckets)"
        },
    )


class MapQuerySchema(PeriodQuerySchema):
    resolution = fields.Integer(load_default=9, validate=validate.OneOf((7, 8, 9)))


class HotspotQuerySchema(FilterQuerySchema):
    period = fields.String(
        validate=validate.Regexp(r"^\d{4}-W\d{2}$", error="A week is YYYY-Www."),
        metadata={"description": "a whole ISO week that has ended; default the last one"},
    )
    resolution = fields.Integer(load_default=9, validate=validate.OneOf((7, 8, 9)))


class ReportQuerySchema(ma.Schema):
    year = fields.Integer(required=True, validate=validate.Range(min=2000, max=2100))
    organisation = fields.String(validate=validate.Length(min=1, max=64))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))


def _day(data_key: str | None = None) -> fields.String:
    """A day the server already formatted (ISO 8601), echoed as given."""
    return fields.String(
        data_key=data_key, attribute=data_key, required=True, metadata={"format": "date"}
    )


class FiltersSchema(ma.Schema):
    period = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "the grid period answered, or null for free days"},
    )
    from_ = _day("from")
    to = _day()
    sector = fields.String(allow_none=True, required=True)
    organisation = fields.String(allow_none=True, required=True)
    shift_kind = fields.String(allow_none=True, required=True)


class SummaryCountsSchema(ma.Schema):
    encounters = _count()
    people = _count("people met, a group contact counting its people")
    distinct_people = _count()
    first_contacts = _count()
    single_contacts = _count()
    women = _count()
    genders = _counts_by_code("one-person contacts by gender")
    age_bands = _counts_by_code("one-person contacts by age band")
    kits_total = _count()
    kits = _counts_by_code("items handed out, by kit code")
    services = _counts_by_code("contacts with each service")
    referrals_total = _count()
    referrals_by_destination = _counts_by_code("referrals by destination, all statuses")
    referrals_by_status = _counts_by_code("referrals by status, all destinations")
    referrals = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.Integer(allow_none=True)),
        required=True,
        metadata={"description": "referrals by destination, then status"},
    )


class ProtectionSchema(ma.Schema):
    """How the figures of a response were published."""

    method = fields.String(
        required=True,
        validate=validate.OneOf(("cell-key", "exact")),
        metadata={
            "description": "cell-key: perturbed, parts may not add up to totals; "
            "exact: the association's own figures"
        },
    )
    k = fields.Integer(required=True, metadata={"description": "the smallest count published"})
    max_deviation = fields.Integer(
        metadata={"description": "the largest distance of a figure from the true count"}
    )
    variance = fields.Float(metadata={"description": "the variance of the deviations"})
    table = fields.String(metadata={"description": "the perturbation table's name (version)"})


def _protection() -> fields.Nested:
    return fields.Nested(ProtectionSchema, required=True)


class SummarySchema(ma.Schema):
    filters = fields.Nested(FiltersSchema, required=True)
    k = fields.Integer(required=True, metadata={"description": "the smallest count published"})
    protection = _protection()
    counts = fields.Nested(SummaryCountsSchema, required=True)
    suppressed = fields.List(fields.String(), required=True)


class SeriesFiltersSchema(FiltersSchema):
    bucket = fields.String(required=True)


class SeriesCountsSchema(ma.Schema):
    encounters = _count()
    people = _count()
    first_contacts = _count()
    women = _count()
    kits = _count()
    referrals = _count()


class SeriesPointSchema(ma.Schema):
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    counts = fields.Nested(SeriesCountsSchema, required=True)


class TimeseriesSchema(ma.Schema):
    filters = fields.Nested(SeriesFiltersSchema, required=True)
    k = fields.Integer(required=True)
    protection = _protection()
    series = fields.List(fields.Nested(SeriesPointSchema), required=True)
    suppressed = fields.List(fields.String(), required=True)


class AreaCountsSchema(ma.Schema):
    encounters = _count()
    people = _count()
    kits = _count()
    referrals = _count()
    suppressed = fields.Boolean(
        required=True, metadata={"description": "true when the area's counts are all masked"}
    )
    suppressed_counts = fields.List(fields.String(), required=True)


# Passed through as built: walking every coordinate through a schema would cost more
# than building the map.
GEOMETRY = {
    "description": "an RFC 7946 Polygon or MultiPolygon, longitude first",
    "type": "object",
    "required": ["type", "coordinates"],
    "properties": {
        "type": {"type": "string", "enum": ["Polygon", "MultiPolygon"]},
        "coordinates": {"type": "array", "items": {"type": "array"}},
    },
}


class CellPropertiesSchema(AreaCountsSchema):
    cell = fields.String(required=True, metadata={"description": "H3 cell"})


class SectorPropertiesSchema(AreaCountsSchema):
    sector = fields.String(required=True)


def _feature_collection(
    name: str, properties: type[ma.Schema], **extra: fields.Field[Any]
) -> type[ma.Schema]:
    feature = ma.Schema.from_dict(
        {
            "type": fields.Constant("Feature", required=True),
            "id": fields.String(required=True),
            "geometry": fields.Raw(required=True, metadata=GEOMETRY),
            "properties": fields.Nested(properties, required=True),
        },
        name=f"{name}Feature",
    )
    return ma.Schema.from_dict(
        {
            "type": fields.Constant("FeatureCollection", required=True),
            "k": fields.Integer(required=True),
            "protection": _protection(),
            "features": fields.List(fields.Nested(feature), required=True),
            **extra,
        },
        name=name,
    )


class MapFiltersSchema(FiltersSchema):
    resolution = fields.Integer(required=True)


HexagonMapSchema = _feature_collection(
    "HexagonMap", CellPropertiesSchema, filters=fields.Nested(MapFiltersSchema, required=True)
)
SectorMapSchema = _feature_collection(
    "SectorMap",
    SectorPropertiesSchema,
    filters=fields.Nested(FiltersSchema, required=True),
    outside_sectors=fields.Nested(AreaCountsSchema, required=True),
)


class HotspotPropertiesSchema(ma.Schema):
    cell = fields.String(required=True)
    sector = fields.String(
        required=True, metadata={"description": "the sector of the hexagon's centre"}
    )
    recent = _count("encounters in the last 7 days")
    baseline = _count("encounters in the 28 days before")
    expected = fields.Float(
        required=True,
        metadata={"description": "a week's expected count (baselines below k count as k)"},
    )
    p_value = fields.Float(required=True)
    score = fields.Float(required=True, metadata={"description": "-log10(p_value)"})


class HotspotFiltersSchema(ma.Schema):
    period = fields.String(required=True, metadata={"description": "the week compared"})
    sector = fields.String(allow_none=True, required=True)
    organisation = fields.String(allow_none=True, required=True)
    shift_kind = fields.String(allow_none=True, required=True)
    resolution = fields.Integer(required=True)


class WindowSchema(ma.Schema):
    from_ = fields.Date(data_key="from", attribute="from", required=True)
    to = fields.Date(required=True)


HotspotsSchema = _feature_collection(
    "Hotspots",
    HotspotPropertiesSchema,
    filters=fields.Nested(HotspotFiltersSchema, required=True),
    recent=fields.Nested(WindowSchema, required=True),
    baseline=fields.Nested(WindowSchema, required=True),
    p_value_threshold=fields.Float(required=True),
)


class SlotSchema(ma.Schema):
    code = fields.String(required=True)
    from_ = fields.String(data_key="from", attribute="from", required=True)
    to = fields.String(required=True)


class CoverageDaySchema(ma.Schema):
    day = fields.Date(required=True)
    covered = fields.Boolean(required=True)
    shifts = fields.Integer(required=True)
    slots = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class WeekBelowTargetSchema(ma.Schema):
    week = fields.String(required=True, metadata={"description": "ISO week, 2026-W47"})
    covered_days = fields.Integer(required=True)
    required_days = fields.Integer(required=True)


class SectorCoverageSchema(ma.Schema):
    sector = fields.String(required=True)
    covered_days = fields.Integer(required=True)
    days = fields.List(fields.Nested(CoverageDaySchema), required=True)
    weeks_below_target = fields.List(fields.Nested(WeekBelowTargetSchema), required=True)


class SectorDaySchema(ma.Schema):
    sector = fields.String(required=True)
    day = fields.Date(required=True)


class CoverageSchema(ma.Schema):
    filters = fields.Nested(FiltersSchema, required=True)
    slots = fields.List(fields.Nested(SlotSchema), required=True)
    target_days_per_week = fields.Integer(required=True)
    sectors = fields.List(fields.Nested(SectorCoverageSchema), required=True)
    uncovered = fields.List(fields.Nested(SectorDaySchema), required=True)


class ShiftTotalsSchema(ma.Schema):
    shifts = fields.Integer(required=True)
    hours = fields.Float(required=True)


class ShiftActivitySchema(ShiftTotalsSchema):
    by_kind = fields.Dict(
        keys=fields.String(), values=fields.Nested(ShiftTotalsSchema), required=True
    )


class ReportCountsSchema(SummaryCountsSchema):
    women_share = fields.Float(
        allow_none=True,
        required=True,
        metadata={"description": "null when it would reveal a masked count"},
    )


class ReportMethodSchema(ma.Schema):
    distinct_people = fields.String(required=True)
    distinct_people_error = fields.Integer(required=True)
    women_share = fields.String(required=True)
    suppression = fields.String(required=True)


class ActivityReportSchema(ma.Schema):
    year = fields.Integer(required=True)
    organisation = fields.String(allow_none=True, required=True)
    period = fields.Nested(WindowSchema, required=True)
    k = fields.Integer(required=True)
    protection = _protection()
    counts = fields.Nested(ReportCountsSchema, required=True)
    shifts = fields.Nested(ShiftActivitySchema, required=True)
    suppressed = fields.List(fields.String(), required=True)
    method = fields.Nested(ReportMethodSchema, required=True)


class OfferedPeriodSchema(ma.Schema):
    period = fields.String(required=True, metadata={"description": "2026-W49, 2026-11, ..."})
    kind = fields.String(
        required=True, validate=validate.OneOf(("week", "month", "quarter", "year"))
    )
    from_ = fields.Date(data_key="from", attribute="from", required=True)
    to = fields.Date(
        required=True, metadata={"description": "the last day answered (to date if current)"}
    )
    complete = fields.Boolean(required=True)


class OfferedPeriodsSchema(ma.Schema):
    default = fields.String(required=True, metadata={"description": "the last whole week"})
    max_versions_covering_a_day = fields.Integer(
        required=True,
        metadata={"description": "at most this many distinct published periods cover a day"},
    )
    periods = fields.List(fields.Nested(OfferedPeriodSchema), required=True)
