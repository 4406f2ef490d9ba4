"""Reading and publishing ahead when a worker starts.

The grid periods coordinators, the dashboard and reports ask for most
(``warm_periods``) are read ahead into this worker's kept rows and their whole-area
maps published ahead, so that a worker's first request for one reads and writes only
what changed since. Nothing is answered, so nothing is audited.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from sqlalchemy.orm import Session

from config import Settings
from outreach.services import disclosure, periods
from outreach.services.readmodel import ReadModel
from outreach.services.stats.maps import publish_hexagon_map, publish_sector_map
from outreach.services.stats.scope import Scope, period_spans

# The hexagon maps a worker publishes ahead for the warm periods: the API's default
# resolution and the dashboard's.
WARM_MAP_RESOLUTIONS = (9, 8)


def warm_periods(today: date) -> list[periods.Period]:
    """The grid periods a worker reads ahead when it starts, as far as published, the
    protected default (the last whole week) first: the current week, month, quarter
    and year, the last whole month and the last whole year, which coordinators, the
    dashboard's picker and reports ask for. Other periods share most of their spans."""
    last_month = periods.month_period(today.replace(day=1) - timedelta(days=1))
    quarter = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    candidates = [
        periods.last_whole_week(today),
        periods.week_period(today),
        periods.month_period(today),
        last_month,
        periods.parse(quarter),
        periods.parse(str(today.year)),
        periods.parse(str(today.year - 1)),
    ]
    warm: list[periods.Period] = []
    for period in candidates:
        end = periods.published_end(period, today)
        if end is not None and period.name not in {kept.name for kept in warm}:
            warm.append(replace(period, end=end))
    return warm


def warm_spans(session: Session, model: ReadModel, today: date) -> tuple[int, int]:
    """Read ahead the whole area's map span rows and filtered stats' day rows of the
    ``warm_periods``, so that a worker's first map or filtered summary of one of them
    reads only what changed since; the number of map spans and of day spans read.
    Nothing is answered or logged from them, so nothing is audited."""
    before = model.usage()
    with session.begin():
        for period in warm_periods(today):
            if model.keeps_map_spans:
                model.cell_sums(session, period_spans(period.start, period.end), None)
            if model.keeps_day_rows:
                current = model.day_generations(session, period.start, period.end, None)
                model.sector_days(session, period.start, period.end, None, current)
                model.people_days(session, period.start, period.end, None, current)
    after = model.usage()
    return (
        after.map_spans_read - before.map_spans_read,
        after.sector_days_read
        + after.people_days_read
        - before.sector_days_read
        - before.people_days_read,
    )


def publish_ahead(session: Session, settings: Settings, model: ReadModel, today: date) -> int:
    """Publish ahead the coordinators' whole-area maps of the ``warm_periods``, hexagons
    at each of ``WARM_MAP_RESOLUTIONS`` and sectors, from the rows ``warm_spans`` read:
    a worker's first such map is then written again only where a sync changed it, and
    the hexagons' outlines are serialised before anyone waits for them. The number of
    maps published. As in ``warm_spans``, nothing is answered, so nothing is audited;
    the maps are those a coordinator's request would publish, under the same keys."""
    if not model.keeps_maps:
        return 0
    # Without kept rows a map would read its whole period from the database: only what
    # was read ahead is published ahead.
    resolutions = [
        resolution
        for resolution in WARM_MAP_RESOLUTIONS
        if resolution <= settings.h3_resolution and model.keeps_map_spans
    ]
    sectors = model.keeps_day_rows
    warm = warm_periods(today)
    gate = disclosure.gate(settings, exact=False)
    with session.begin():
        # The dashboard's default last: the maps least recently published leave first.
        for period in reversed(warm):
            scope = Scope(period.start, period.end, None, None, None, None, period.name)
            for resolution in resolutions:
                publish_hexagon_map(session, settings, model, gate, scope, resolution)
            if sectors:
                publish_sector_map(session, model, gate, scope)
    return len(warm) * (len(resolutions) + sectors)
