"""``/api/v1/stats``: anonymised aggregates for the plan's coordination."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

from outreach.api.access import call_context, requires, settings
from outreach.api.blueprint import Blueprint
from outreach.api.reads import read_model
from outreach.extensions import db
from outreach.models import Role
from outreach.services import coverage, hotspots
from outreach.services.stats import maps, scope, series
from outreach.services.stats import summary as summaries
from outreach.services.stats.maps import FeatureCollection
from schemas.geojson import HexagonMapSchema, HotspotsSchema, SectorMapSchema
from schemas.stats import (
    CoverageSchema,
    HotspotQuerySchema,
    MapQuerySchema,
    OfferedPeriodsSchema,
    PeriodQuerySchema,
    SummarySchema,
    TimeseriesQuerySchema,
    TimeseriesSchema,
)

blp = Blueprint(
    "stats",
    __name__,
    url_prefix="/api/v1/stats",
    description="Aggregates under disclosure control (cell key method, period grid); "
    "every request for figures is audited",
)

READERS = (Role.COORDINATOR, Role.AUDITOR, Role.ORG_ADMIN)
GEOJSON = "application/geo+json"


def geojson(body: FeatureCollection) -> Response:
    """A FeatureCollection whose ``features`` are already serialised: the other members
    are written around them. A map's features are serialised once, when published, and
    sent as they are each time it is served again; a schema walk would cost more than
    its queries. The documented schema still describes it, and the API tests validate it.
    """
    members = {name: value for name, value in body.items() if name != "features"}
    head = orjson.dumps(members)[:-1] + b',"features":'
    # Three chunks rather than one joined body: the features are not copied again.
    return Response(iter((head, body["features"], b"}")), mimetype=GEOJSON)


def _query(args: dict[str, Any]) -> scope.StatsQuery:
    return scope.StatsQuery(
        start=args.get("from_"),
        end=args.get("to"),
        period=args.get("period"),
        sector=args.get("sector"),
        organisation=args.get("organisation"),
        shift_kind=args.get("shift_kind"),
    )


@blp.route("/periods", methods=["GET"])
@requires(*READERS)
@blp.response(200, OfferedPeriodsSchema)
def offered_periods() -> scope.OfferedPeriods:
    """The periods of the grid one can ask for now, each with the days it answers."""
    return scope.offered_periods(call_context(), settings())


@blp.route("/summary", methods=["GET"])
@requires(*READERS)
@blp.arguments(PeriodQuerySchema, location="query")
@blp.response(200, SummarySchema)
def summary(args: dict[str, Any]) -> summaries.Summary:
    """Totals for a period of the grid (default: the last whole week) and filters."""
    return summaries.summary(db.session, call_context(), settings(), read_model(), _query(args))


@blp.route("/timeseries", methods=["GET"])
@requires(*READERS)
@blp.arguments(TimeseriesQuerySchema, location="query")
@blp.response(200, TimeseriesSchema)
def timeseries(args: dict[str, Any]) -> series.Series:
    """The summary's headline counts per day, week (from Monday) or calendar month."""
    return series.timeseries(
        db.session, call_context(), settings(), read_model(), _query(args), args.get("bucket")
    )


@blp.route("/map", methods=["GET"])
@requires(*READERS)
@blp.arguments(MapQuerySchema, location="query")
@blp.response(200, HexagonMapSchema, content_type=GEOJSON)
@blp.doc(operationId="get_map")
def hexagon_map(args: dict[str, Any]) -> Response:
    """A GeoJSON FeatureCollection of the H3 hexagons with activity, with their counts."""
    return geojson(
        maps.hexagon_map(
            db.session,
            call_context(),
            settings(),
            read_model(),
            _query(args),
            args["resolution"],
        )
    )


@blp.route("/sectors", methods=["GET"])
@requires(*READERS)
@blp.arguments(PeriodQuerySchema, location="query")
@blp.response(200, SectorMapSchema, content_type=GEOJSON)
@blp.doc(operationId="get_sectors")
def sector_map(args: dict[str, Any]) -> Response:
    """A GeoJSON FeatureCollection of the sectors with their counts."""
    return geojson(
        maps.sector_map(
            db.session,
            call_context(),
            settings(),
            read_model(),
            _query(args),
        )
    )


@blp.route("/coverage", methods=["GET"])
@requires(Role.COORDINATOR, Role.AUDITOR)
@blp.arguments(PeriodQuerySchema, location="query")
@blp.response(200, CoverageSchema)
@blp.doc(operationId="get_coverage")
def sector_coverage(args: dict[str, Any]) -> coverage.Coverage:
    """Shift presence per sector, day and time slot (at most 92 days), and the gaps."""
    return coverage.coverage(db.session, call_context(), settings(), _query(args))


@blp.route("/hotspots", methods=["GET"])
@requires(Role.COORDINATOR)
@blp.arguments(HotspotQuerySchema, location="query")
@blp.response(200, HotspotsSchema, content_type=GEOJSON)
@blp.doc(operationId="get_hotspots")
def hotspot_cells(args: dict[str, Any]) -> Response:
    """Hexagons whose week clearly exceeds their previous 28 days (scene moving)."""
    return geojson(
        hotspots.hotspots(
            db.session,
            call_context(),
            settings(),
            read_model(),
            _query(args),
            args["resolution"],
        )
    )
