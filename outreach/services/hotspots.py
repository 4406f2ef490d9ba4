"""Where the scene is moving: hexagons whose last week clearly exceeds their own past.

For each hexagon, the encounters of a whole ISO week of the grid (by default the last
one) are compared with the 28 days before, scaled to a week (rate-adjusted: 7/28 of the baseline
count). Under a Poisson model with that expected count, a week at least as busy as
the one observed has probability ``p``; a cell is flagged when ``p`` is below the
configured level and its week counts at least k encounters.

Baselines below k count as k, for two reasons: a near-empty past should not make a
handful of encounters look like an outbreak, and the published score must not let
anyone recompute a masked baseline.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from datetime import timedelta
from typing import TypedDict

import orjson
from sqlalchemy.orm import Session

from config import Settings
from outreach.services import audit, periods
from outreach.services.context import CallContext
from outreach.services.geo import cell_geometry, sector_of_cell
from outreach.services.readmodel import ReadModel
from outreach.services.readmodel.maps import PublishedMap, area_features, published_map
from outreach.services.rollups import MAP_METRICS
from outreach.services.stats.counters import cell_amounts
from outreach.services.stats.maps import FeatureCollection, at_resolution, map_key
from outreach.services.stats.publication import area_figures
from outreach.services.stats.scope import (
    DaySpan,
    StatsQuery,
    caller,
    check_resolution,
    publication_gate,
    query_error,
    resolve_scope,
)


class HotspotFilters(TypedDict):
    period: str
    sector: str | None
    organisation: str | None
    shift_kind: str | None
    resolution: int


class Hotspots(FeatureCollection):
    """``/stats/hotspots``'s answer: the week compared, the 28 days before it, and the
    threshold a cell's p-value fell below."""

    filters: HotspotFilters
    recent: DaySpan
    baseline: DaySpan
    p_value_threshold: float


RECENT_DAYS = 7
BASELINE_DAYS = 28
# Scores are -log10(p); beyond this p is below what floating point represents.
MAX_SCORE = 300.0


def poisson_upper_tail(observed: int, expected: float) -> float:
    """P(X >= observed) for X ~ Poisson(expected), accurate far into the tail."""
    if observed <= 0:
        return 1.0

    def log_pmf(i: int) -> float:
        return -expected + i * math.log(expected) - math.lgamma(i + 1)

    if observed <= expected:
        below = sum(math.exp(log_pmf(i)) for i in range(observed))
        return max(0.0, 1.0 - below)
    # Past the mode the terms shrink geometrically: sum from the observed count up.
    total, i = 0.0, observed
    while True:
        term = math.exp(log_pmf(i))
        total += term
        if term < total * 1e-16 or term == 0.0:
            return min(1.0, total)
        i += 1


def hotspots(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    model: ReadModel,
    query: StatsQuery,
    resolution: int,
) -> Hotspots:
    check_resolution(settings, resolution)
    principal = caller(ctx)
    k = settings.small_cell_k
    gate = publication_gate(settings, principal)
    with session.begin():
        recent_period = resolve_scope(session, principal, query)
        week = periods.parse(recent_period.period or "")
        if week.kind != "week" or recent_period.end != week.end:
            raise query_error(
                "period", "Hotspots compare a whole ISO week (YYYY-Www) that has ended."
            )
        baseline_period = replace(
            recent_period,
            start=recent_period.start - timedelta(days=BASELINE_DAYS),
            end=recent_period.start - timedelta(days=1),
        )
        scope = recent_period
        filters: HotspotFilters = {
            "period": week.name,
            "sector": scope.sector,
            "organisation": scope.organisation,
            "shift_kind": scope.shift_kind,
            "resolution": resolution,
        }

        def build(_previous: PublishedMap | None) -> PublishedMap:
            # Per cell at the asked resolution: [recent encounters, baseline encounters],
            # as published: every derived figure (expected, p, score) comes from the
            # published counts, so none can be inverted into a true one.
            counts: dict[str, list[int | None]] = defaultdict(lambda: [0, 0])
            for slot, period in enumerate((recent_period, baseline_period)):
                sums = at_resolution(settings, cell_amounts(session, period, model), resolution)
                values, masked = area_figures(gate, sums)
                encounters = MAP_METRICS.index("encounters")
                for cell, value, hidden in zip(
                    sums.areas,
                    values[:, encounters].tolist(),
                    masked[:, encounters].tolist(),
                    strict=True,
                ):
                    counts[cell][slot] = None if hidden else value
            flagged = []
            for cell, (recent, baseline) in counts.items():
                expected = max(baseline or 0, k) * RECENT_DAYS / BASELINE_DAYS
                if recent is None or recent < k:
                    continue
                p_value = poisson_upper_tail(recent, expected)
                if p_value < settings.hotspot_p_value:
                    flagged.append((cell, recent, baseline, expected, p_value))
            flagged.sort(key=lambda item: (item[4], item[0]))
            cells = [cell for cell, *_ in flagged]
            features = area_features(
                "cell",
                cells,
                [cell_geometry(cell) for cell in cells],
                [
                    orjson.dumps(
                        {
                            "sector": sector_of_cell(cell),
                            "recent": recent,
                            "baseline": baseline,
                            "expected": round(expected, 2),
                            "p_value": p_value,
                            "score": _score(p_value),
                        }
                    )[1:-1]
                    for cell, recent, baseline, expected, p_value in flagged
                ],
            )
            return published_map(features, 2 * len(flagged))

        kept = model.published_map(session, map_key("hotspots", gate, scope, filters), build)
        audit.record(session, ctx, "stats.hotspots", params=filters, records=kept.records)
    return {
        "type": "FeatureCollection",
        "filters": filters,
        "k": k,
        "protection": gate.protection(),
        "recent": {"from": recent_period.start, "to": recent_period.end},
        "baseline": {"from": baseline_period.start, "to": baseline_period.end},
        "p_value_threshold": settings.hotspot_p_value,
        "features": kept.features,
    }


def _score(p_value: float) -> float:
    """-log10(p), rounded: 2 means one chance in a hundred, 5 one in a hundred thousand."""
    return round(min(MAX_SCORE, -math.log10(p_value)) if p_value > 0 else MAX_SCORE, 2)
