"""``/stats/map`` and ``/stats/sectors``: hexagon and sector maps, published.

A map is published under a key naming its kind, whether exact, whose counts and its
filters (``map_key``), and served as kept by the read model (``readmodel``) until the
counters change; then it is written again from the last version kept. Its features
leave already serialised. Audited like the summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

import numpy as np
import orjson
from sqlalchemy.orm import Session

from config import Settings
from outreach.services import audit
from outreach.services.context import CallContext
from outreach.services.disclosure import Gate, Protection
from outreach.services.geo import cell_geometry, sector_geometries
from outreach.services.readmodel import ReadModel
from outreach.services.readmodel.maps import (
    PublishedMap,
    area_features,
    published_map,
    render_areas,
)
from outreach.services.rollups import MAP_METRICS
from outreach.services.stats.counters import AreaSums, cell_amounts, reduced_keys
from outreach.services.stats.filtered import kept_counters
from outreach.services.stats.publication import area_figures, map_properties
from outreach.services.stats.scope import (
    Filters,
    Scope,
    StatsQuery,
    caller,
    check_resolution,
    publication_gate,
    resolve_scope,
    to_resolution,
)
from schemas.vocabulary import OUTSIDE_SECTORS, SECTORS


class FeatureCollection(TypedDict):
    """What every map answers: its ``features`` are already serialised
    (``published.PublishedMap``), and ``api.stats.geojson`` writes the other members
    around them, in their order."""

    type: Literal["FeatureCollection"]
    k: int
    protection: Protection
    features: bytes


class MapFilters(Filters):
    resolution: int


class HexagonMap(FeatureCollection):
    filters: MapFilters


class SectorMap(FeatureCollection):
    filters: Filters
    # The encounters outside every named sector, as published: they have no outline.
    outside_sectors: orjson.Fragment


def at_resolution(settings: Settings, sums: AreaSums, resolution: int) -> AreaSums:
    """Each cell's measures summed into its parent at ``resolution``."""
    if resolution == settings.h3_resolution:
        return sums
    parents, inverse = np.unique(
        [to_resolution(settings, cell, resolution) for cell in sums.areas], return_inverse=True
    )
    summed = np.zeros((len(parents), sums.amounts.shape[1]), dtype=np.int64)
    np.add.at(summed, inverse, sums.amounts)
    return AreaSums(parents.tolist(), reduced_keys(summed))


def hexagon_map(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    model: ReadModel,
    query: StatsQuery,
    resolution: int,
) -> HexagonMap:
    check_resolution(settings, resolution)
    principal = caller(ctx)
    with session.begin():
        scope = resolve_scope(session, principal, query)
        filters: MapFilters = {**scope.params(), "resolution": resolution}
        gate = publication_gate(settings, principal)
        kept = publish_hexagon_map(session, settings, model, gate, scope, resolution)
        audit.record(session, ctx, "stats.map", params=filters, records=kept.records)
    return {
        "type": "FeatureCollection",
        "filters": filters,
        "k": settings.small_cell_k,
        "protection": gate.protection(),
        "features": kept.features,
    }


def publish_hexagon_map(
    session: Session,
    settings: Settings,
    model: ReadModel,
    gate: Gate,
    scope: Scope,
    resolution: int,
) -> PublishedMap:
    """The scope's hexagon map at ``resolution``, as kept if the counters have not
    changed since, else written again from the last version kept (``published``)."""

    def build(previous: PublishedMap | None) -> PublishedMap:
        sums = at_resolution(settings, cell_amounts(session, scope, model), resolution)
        values, masked = area_figures(gate, sums)
        rendered = render_areas(
            "cell",
            MAP_METRICS,
            "encounters",
            sums.areas,
            cell_geometry,
            values,
            masked,
            previous.rendered if previous is not None else None,
        )
        return published_map(
            rendered.features, len(sums.areas) * len(MAP_METRICS), rendered=rendered
        )

    filters = {**scope.params(), "resolution": resolution}
    return model.published_map(session, map_key("map", gate, scope, filters), build)


def map_key(kind: str, gate: Gate, scope: Scope, filters: Mapping[str, Any]) -> tuple[Any, ...]:
    """What names a published map: its kind, whether exact, whose counts it shows, and
    its filters."""
    return (kind, gate.exact, scope.organisation_id, *sorted(filters.items()))


def sector_map(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    model: ReadModel,
    query: StatsQuery,
) -> SectorMap:
    principal = caller(ctx)
    with session.begin():
        scope = resolve_scope(session, principal, query)
        gate = publication_gate(settings, principal)
        kept = publish_sector_map(session, model, gate, scope)
        audit.record(session, ctx, "stats.sectors", params=scope.params(), records=kept.records)
    return {
        "type": "FeatureCollection",
        "filters": scope.params(),
        "k": settings.small_cell_k,
        "protection": gate.protection(),
        "outside_sectors": kept.members["outside_sectors"],
        "features": kept.features,
    }


def publish_sector_map(
    session: Session, model: ReadModel, gate: Gate, scope: Scope
) -> PublishedMap:
    """The scope's sector map, as kept if the counters have not changed since."""

    def build(_previous: PublishedMap | None) -> PublishedMap:
        sums = kept_counters(session, scope, model).by_sector().over(SECTORS)
        properties = dict(zip(SECTORS, map_properties(gate, sums), strict=True))
        geometries = sector_geometries()
        # Encounters outside every named sector have no outline to draw; they count
        # in their own member so the features and it add up to the summary.
        return published_map(
            area_features(
                "sector",
                list(geometries),
                list(geometries.values()),
                [properties[sector] for sector in geometries],
            ),
            len(SECTORS) * len(MAP_METRICS),
            {"outside_sectors": orjson.Fragment(b"{" + properties[OUTSIDE_SECTORS] + b"}")},
        )

    return model.published_map(session, map_key("sectors", gate, scope, scope.params()), build)
