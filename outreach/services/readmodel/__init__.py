"""The read model: every per-worker cache of the statistics, behind one object.

``ReadModel`` keeps, in each worker's memory:

- the maps it published (``maps.PublishedMapCache``), served again while the
  counters' generation is the one they were published under;
- the hexagon span rows maps are summed from (``spans.CellSpanCache``), and the day
  rows of the fine tables that filtered summaries, series and sector maps are summed
  from (``spans.DaySpanCache``: sector counters and person-days), each span kept while
  its own generation is the stored one;
- the generations of a few periods' spans (``spans.SpanGenerationCache``).

Nothing else keeps state between requests: the app registers one ``ReadModel``
(``create_app``), the stats use cases are handed it, and nothing else reads it. Every
write of the counters replaces the generations it changes with a random token, in its
own transaction (``services/writes.py``): a cache made under another token than the
stored one is not served, whatever happened to the database (a restore included).

What is kept is finer than any response (a hexagon's count may be under the
publication threshold; a person ref is a keyed hash): it stays in memory, is never
logged or served as it is, and leaves only through the publication gate
(``disclosure``). Each cache has a budget (``OUTREACH_MAP_CACHE_FEATURES``,
``OUTREACH_MAP_CACHE_SPAN_ROWS``, ``OUTREACH_STATS_CACHE_DAY_ROWS``); the least
recently used entry leaves first (``cachetools``), a budget of 0 keeps nothing, and
the numbering of the areas of kept rows is bounded by the row budget (``numbering``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable
from datetime import date
from typing import NamedTuple

from sqlalchemy.orm import Session

from config import Settings
from outreach.services.crypto import person_key
from outreach.services.readmodel.maps import PublishedMap, PublishedMapCache
from outreach.services.readmodel.numbering import CellSums
from outreach.services.readmodel.spans import (
    PEOPLE_DAYS,
    SECTOR_DAYS,
    CellSpanCache,
    DaySpanCache,
    DaySums,
    Generations,
    SpanGenerationCache,
    SpanRuns,
)


class Usage(NamedTuple):
    """What a read model holds and has read since it was made."""

    published_maps: int
    map_spans_kept: int
    map_spans_read: int
    sector_days_read: int
    people_days_read: int
    # Areas each cache has numbered (``numbering``).
    numbered_hexagons: int
    numbered_sector_areas: int
    numbered_people_areas: int


class ReadModel:
    """One worker's caches of the statistics (module docstring); safe across threads."""

    def __init__(self, map_features: int, map_span_rows: int, day_rows: int) -> None:
        self._maps = PublishedMapCache(map_features)
        self._hexagons = CellSpanCache(map_span_rows)
        # Both fine tables' spans are the same days: their generations are read once.
        self._day_generations = SpanGenerationCache()
        self._sector_days = DaySpanCache(SECTOR_DAYS, day_rows, self._day_generations)
        self._people_days = DaySpanCache(PEOPLE_DAYS, day_rows, self._day_generations, person_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadModel:
        return cls(
            settings.map_cache_features,
            settings.map_cache_span_rows,
            settings.stats_cache_day_rows,
        )

    @property
    def keeps_maps(self) -> bool:
        return self._maps.max_features > 0

    @property
    def keeps_map_spans(self) -> bool:
        return self._hexagons.max_rows > 0

    @property
    def keeps_day_rows(self) -> bool:
        return self._sector_days.max_rows > 0

    def published_map(
        self, session: Session, key: Hashable, build: Callable[[PublishedMap | None], PublishedMap]
    ) -> PublishedMap:
        """The map ``key`` names, as published if the counters have not changed since,
        else from ``build`` (given the version published before, if any)."""
        return self._maps.publish(session, key, build)

    def cell_sums(
        self, session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None
    ) -> CellSums:
        """Each hexagon's measures summed over the spans of ``runs`` (of one
        organisation, or of all)."""
        return self._hexagons.cell_sums(session, runs, organisation_id)

    def day_generations(
        self, session: Session, start: date, end: date, organisation_id: uuid.UUID | None
    ) -> Generations:
        """The generations of the days ``start..end``, for ``sector_days`` and
        ``people_days`` asked about the same days."""
        return self._day_generations.current(session, [("day", start, end)], organisation_id)

    def sector_days(
        self,
        session: Session,
        start: date,
        end: date,
        organisation_id: uuid.UUID | None,
        current: Generations | None = None,
    ) -> DaySums:
        """The sector counters (``RollupSector``) summed over the days ``start..end``."""
        return self._sector_days.day_sums(session, start, end, organisation_id, current)

    def people_days(
        self,
        session: Session,
        start: date,
        end: date,
        organisation_id: uuid.UUID | None,
        current: Generations | None = None,
    ) -> DaySums:
        """The person-days (``RollupPerson``) summed over the days ``start..end``."""
        return self._people_days.day_sums(session, start, end, organisation_id, current)

    def usage(self) -> Usage:
        return Usage(
            published_maps=len(self._maps),
            map_spans_kept=len(self._hexagons),
            map_spans_read=self._hexagons.spans_read,
            sector_days_read=self._sector_days.spans_read,
            people_days_read=self._people_days.spans_read,
            numbered_hexagons=self._hexagons.numbered_areas,
            numbered_sector_areas=self._sector_days.numbered_areas,
            numbered_people_areas=self._people_days.numbered_areas,
        )

    def invalidate(self) -> None:
        """Forget everything kept: the next requests read as a new worker's would."""
        self._maps.invalidate()
        self._day_generations.invalidate()
        for cache in (self._hexagons, self._sector_days, self._people_days):
            cache.invalidate()
