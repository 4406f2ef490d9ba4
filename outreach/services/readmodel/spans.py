"""Rollup rows a worker keeps, span by span, while their generation holds.

A span is one organisation's day, week or month. Each write of the counters replaces
the generation token of every span it changes (``services/writes.py``), so a kept
span is read again only when its stored token is not the one it was read under: after
a sync of today's encounters, the day, week and month holding today of one
organisation. A period's sum starts from a kept sum of the spans it differs from
least (the same period before a sync, a year ending a day earlier), takes out the old
rows of the spans that differ and adds their new ones.

Rows are kept as arrays of area numbers (``numbering``) and measures. Each cache
counts its budget in rows; the least recently used span leaves first; a budget of 0
keeps nothing (each request reads all its rows). Its numbering holds at most as many
areas as the budget holds rows, plus those of one read: past that it starts again,
with every span and sum numbered in it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import reduce
from typing import Any, Generic, NamedTuple, TypeVar, cast

import numpy as np
import numpy.typing as npt
import psycopg
from cachetools import LRUCache
from psycopg import sql
from sqlalchemy import ColumnElement, String, Table, and_, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from outreach.models import RollupCellSpan, RollupPerson, RollupSector, RollupSpanGeneration
from outreach.models.dialect import engine_of
from outreach.services.readmodel.numbering import (
    AREA_SEPARATOR,
    AreaNumbering,
    Areas,
    CellSums,
    HexagonNumbering,
    KeyedAreas,
    KeyNumbering,
    Sums,
)
from outreach.services.rollups import CELL_SPAN_VALUES, generation

# One organisation's span: ("day" | "week" | "month", its first day, the organisation's
# id as text: a year of one table is a thousand keys or more per request, and a UUID
# computes its hash in Python each time, where a string keeps it).
SpanKey = tuple[str, date, str]
Generations = dict[SpanKey, int]
# Runs of spans of one kind, by the first and last span starts (``stats.period_spans``).
SpanRuns = Sequence[tuple[str, date, date]]
Measures = npt.NDArray[np.int64]
ENCOUNTERS = CELL_SPAN_VALUES.index("encounters")


@dataclass(frozen=True)
class SpanSource:
    """Where a span's rows are: ``table``, whose rows of one span are those with
    ``start`` (a column) and, with a ``span`` column, that span; each row's area is its
    ``areas`` columns joined by ``AREA_SEPARATOR``, its measures its ``measures``."""

    table: Table
    start: str
    span: str | None
    areas: tuple[str, ...]
    measures: tuple[str, ...]
    # As stored: hexagon measures are 32-bit (migration 0008), counters 64-bit.
    dtype: type[np.integer[Any]]


CELL_SPANS = SpanSource(
    cast(Table, RollupCellSpan.__table__), "start", "span", ("cell",), CELL_SPAN_VALUES, np.int32
)
SECTOR_DAYS = SpanSource(
    cast(Table, RollupSector.__table__),
    "day",
    None,
    ("sector", "shift_kind", "metric"),
    ("value", "basis", "ckey"),
    np.int64,
)
PEOPLE_DAYS = SpanSource(
    cast(Table, RollupPerson.__table__),
    "day",
    None,
    ("ref_hash", "sector", "shift_kind"),
    ("encounters",),
    np.int32,
)


class SpanRows(NamedTuple):
    """The rows of one span, read under ``generation``: each row's area number in
    ``numbering``, in order, and its measures."""

    generation: int
    areas: Areas
    measures: npt.NDArray[np.integer[Any]]
    numbering: AreaNumbering


N = TypeVar("N", bound=AreaNumbering)


class Summed(NamedTuple, Generic[N]):
    """Each area's measures summed over a period's spans, by number in ``numbering``,
    and the rows of those spans."""

    total: Sums
    spans: dict[SpanKey, SpanRows]
    numbering: N


# Spans read by one statement.
SPANS_PER_READ = 32
# Periods whose last sum each cache keeps (each holds on to its spans' rows); none when
# the budget keeps no rows.
MAX_SUMS = 8
# Periods whose span generations, and choices of areas whose rows in each span, each
# cache keeps.
MAX_GENERATIONS = 16
MAX_PICKS = 16


class SpanGenerationCache:
    """The generations of the spans of a few periods, as read under a counters'
    generation (``rollups.generation``), which every write of the counters replaces:
    while it holds, a period's thousand span generations are not read again."""

    def __init__(self) -> None:
        self._kept: LRUCache[Hashable, tuple[int, Generations]] = LRUCache(MAX_GENERATIONS)
        self._lock = threading.Lock()

    def current(
        self, session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None
    ) -> Generations:
        """The generation of each span of ``runs`` (of one organisation, or of all)."""
        # Read before the spans' generations: a change committed in between is in
        # them, and only makes them newer than the token they are kept under.
        counters = generation(session)
        period = (tuple(runs), organisation_id)
        with self._lock:
            kept = self._kept.get(period)
            if kept is not None and kept[0] == counters:
                return kept[1]
        read = span_generations(session, runs, organisation_id)
        with self._lock:
            self._kept[period] = (counters, read)
        return read

    def invalidate(self) -> None:
        with self._lock:
            self._kept.clear()


class _KeptSum(NamedTuple):
    spans: dict[SpanKey, SpanRows]
    total: Sums
    numbering: AreaNumbering


def _row_count(rows: SpanRows) -> int:
    return len(rows.areas)


class SpanRowsCache(Generic[N]):
    """One source's span rows by organisation and span, within ``max_rows``, their
    areas numbered by a numbering that ``new_numbering`` makes; safe across threads."""

    def __init__(
        self,
        source: SpanSource,
        max_rows: int,
        new_numbering: Callable[[], N],
        generations: SpanGenerationCache | None = None,
    ) -> None:
        self.source = source
        self.max_rows = max_rows
        self.generations = generations or SpanGenerationCache()
        self._new_numbering = new_numbering
        self._numbering = new_numbering()
        self._rows: LRUCache[SpanKey, SpanRows] = LRUCache(max_rows, getsizeof=_row_count)
        # Spans read from the database since the worker started, kept or not.
        self.spans_read = 0
        # The last sums of a few periods, with the rows they were summed from.
        self._sums: LRUCache[Hashable, _KeptSum] = LRUCache(MAX_SUMS)
        # The rows of a few choices of areas in each span they were picked from, by the
        # chosen area numbers: a year's time series of one sector picks them from a
        # thousand spans, and after a sync only the spans read again are picked anew.
        self._picks: LRUCache[bytes, dict[SpanKey, tuple[SpanRows, Measures]]]
        self._picks = LRUCache(MAX_PICKS)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def numbered_areas(self) -> int:
        return len(self._numbering)

    def invalidate(self) -> None:
        """Forget every row, sum and area number."""
        with self._lock:
            self._renumber()

    def summed(
        self,
        session: Session,
        runs: SpanRuns,
        organisation_id: uuid.UUID | None,
        current: Generations | None = None,
    ) -> Summed[N]:
        """Each area's measures summed over the spans of ``runs`` (of one organisation,
        or of all), read from the database only where they changed. ``current``: their
        generations, when already read."""
        if current is None:
            current = self.generations.current(session, runs, organisation_id)
        with self._lock:
            if len(self._numbering) > self.max_rows:
                self._renumber()
            numbering = self._numbering
            spans = self._take(current, numbering)
        stale = [key for key in current if key not in spans]
        # Read after their generation: a change committed in between is in the rows,
        # and only makes them newer than the token they are kept under.
        postgresql = engine_of(session) == "postgresql"
        read = _aggregated_rows if postgresql else _fetched_rows
        # A few spans a statement: a year's rows read at once as Python objects would
        # take far more memory than the arrays they end as.
        for first in range(0, len(stale), SPANS_PER_READ):
            keys = stale[first : first + SPANS_PER_READ]
            for key, (names, measures) in zip(keys, read(session, self.source, keys), strict=True):
                areas = numbering.numbered(names)
                order = np.argsort(areas)
                spans[key] = SpanRows(current[key], areas[order], measures[order], numbering)
        self._put([(key, spans[key]) for key in stale], numbering)
        period = (tuple(runs), organisation_id)
        total = self._summed_again(period, spans, numbering)
        # Shared by the requests that find nothing changed since: read only.
        total.setflags(write=False)
        if self.max_rows > 0:
            with self._lock:
                if numbering is self._numbering:
                    self._sums[period] = _KeptSum(spans, total, numbering)
        return Summed(total, spans, numbering)

    def picked(self, areas: Areas, spans: dict[SpanKey, SpanRows]) -> Measures:
        """The measures of the ``areas`` (sorted numbers) in each of ``spans``, in their
        order: an array of spans x areas x measures, zeros where a span has no row of
        an area. Picked again only from the spans not picked from before."""
        choice = areas.tobytes()
        with self._lock:
            kept = self._picks.get(choice, {})
        picks: dict[SpanKey, tuple[SpanRows, Measures]] = {}
        for key, rows in spans.items():
            before = kept.get(key)
            # A span read again is another object: its rows are picked anew.
            if before is None or before[0] is not rows:
                before = (rows, _pick(rows, areas))
            picks[key] = before
        if self.max_rows > 0:
            with self._lock:
                self._picks[choice] = picks
        shape = (0, len(areas), len(self.source.measures))
        if not picks:
            return np.zeros(shape, dtype=np.int64)
        return np.stack([measures for _rows, measures in picks.values()])

    def _renumber(self) -> None:
        """Start a new numbering, and forget what was numbered in the old one; with the
        lock held."""
        self._numbering = self._new_numbering()
        self._rows.clear()
        self._sums.clear()
        self._picks.clear()

    def _summed_again(self, period: Hashable, spans: dict[SpanKey, SpanRows], numbering: N) -> Sums:
        """The spans' rows summed per area number, from a kept sum when it differs from
        them by fewer spans than all of them: the period's own last sum (after a sync),
        else the kept sum that differs least (a year ending yesterday for a year ending
        today). A kept row object is the same rows, so only the other spans count."""
        with self._lock:
            own = self._sums.get(period)
            # The period's own last sum, when there is one, is the usual base (the same
            # request after a sync): the others are not compared, a thousand keys each.
            candidates = [own] if own is not None else list(self._sums.values())
        kept = [last for last in candidates if last.numbering is numbering]
        size = len(numbering)
        base: _KeptSum | None = None
        changed: dict[SpanKey, tuple[SpanRows | None, SpanRows | None]]
        changed = {key: (None, rows) for key, rows in spans.items()}
        for last in kept:
            differing = {
                key: (last.spans.get(key), spans.get(key))
                for key in last.spans.keys() | spans.keys()
                if last.spans.get(key) is not spans.get(key)
            }
            if len(differing) < len(changed):
                base, changed = last, differing
        if base is not None and not changed and len(base.total) == size:
            # Nothing to take out or add: the kept sum itself (read only; at national
            # volume a copy of the person-days' sum is tens of megabytes).
            return base.total
        total = np.zeros((size, len(self.source.measures)), dtype=np.int64)
        if base is not None:
            total[: len(base.total)] = base.total
        for before, after in changed.values():
            # A span holds an area once, so fancy-indexed arithmetic counts every row.
            if before is not None:
                total[before.areas] -= before.measures
            if after is not None:
                total[after.areas] += after.measures
        return total

    def _take(self, current: Generations, numbering: AreaNumbering) -> dict[SpanKey, SpanRows]:
        """The kept spans whose generation is still ``current``; with the lock held."""
        taken = {}
        for key, token in current.items():
            kept = self._rows.get(key)
            if kept is not None and kept.generation == token and kept.numbering is numbering:
                taken[key] = kept
        return taken

    def _put(self, spans: Iterable[tuple[SpanKey, SpanRows]], numbering: AreaNumbering) -> None:
        with self._lock:
            for key, rows in spans:
                self.spans_read += 1
                # A span numbered in a numbering since replaced is not kept, nor one
                # over the whole budget.
                if numbering is self._numbering and len(rows.areas) <= self.max_rows:
                    self._rows[key] = rows


def _pick(rows: SpanRows, areas: Areas) -> Measures:
    """The measures of ``areas`` in one span's rows, which are in area order."""
    picked = np.zeros((len(areas), rows.measures.shape[1]), dtype=np.int64)
    if len(rows.areas):
        at = rows.areas.searchsorted(areas)
        found = rows.areas.take(at, mode="clip") == areas
        picked[found] = rows.measures[at[found]]
    return picked


class CellSpanCache(SpanRowsCache[HexagonNumbering]):
    """The map's hexagon span rows (``RollupCellSpan``)."""

    def __init__(self, max_rows: int) -> None:
        super().__init__(CELL_SPANS, max_rows, HexagonNumbering)

    def cell_sums(
        self, session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None
    ) -> CellSums:
        """Each hexagon's measures summed over the spans of ``runs`` (of one
        organisation, or of all), read from the database only where they changed."""
        summed = self.summed(session, runs, organisation_id)
        return summed.numbering.present(summed.total, ENCOUNTERS)


@dataclass(frozen=True)
class DaySums:
    """A fine day table's areas' measures summed over some days (``total``, by area
    number), the rows of each day, and what each area number stands for."""

    total: Sums
    spans: dict[SpanKey, SpanRows]
    keyed: KeyedAreas
    numbering: KeyNumbering
    cache: DaySpanCache

    def picked(self, areas: Areas) -> Measures:
        """The measures of ``areas`` in each day's rows (``SpanRowsCache.picked``)."""
        return self.cache.picked(areas, self.spans)

    def first_keys(self) -> npt.NDArray[np.int64]:
        """The key derived from each value of the first key column, by code."""
        return self.numbering.first_keys()


class DaySpanCache(SpanRowsCache[KeyNumbering]):
    """The rows of one organisation's day in a fine day table (``SECTOR_DAYS``,
    ``PEOPLE_DAYS``), their areas numbered by name."""

    def __init__(
        self,
        source: SpanSource,
        max_rows: int,
        generations: SpanGenerationCache | None = None,
        first_key: Callable[[str], int] = lambda _value: 0,
    ) -> None:
        super().__init__(
            source, max_rows, lambda: KeyNumbering(len(source.areas), first_key), generations
        )

    def day_sums(
        self,
        session: Session,
        start: date,
        end: date,
        organisation_id: uuid.UUID | None,
        current: Generations | None = None,
    ) -> DaySums:
        """The areas' measures summed over the days ``start..end`` (of one organisation,
        or of all)."""
        summed = self.summed(session, [("day", start, end)], organisation_id, current)
        return DaySums(summed.total, summed.spans, summed.numbering.keyed(), summed.numbering, self)


def span_generations(
    session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None
) -> Generations:
    """The generation of each span of ``runs`` (of one organisation, or of all)."""
    table = RollupSpanGeneration
    owner = sql_cast(table.organisation_id, String)
    statement = select(table.span, table.start, owner, table.generation).where(
        or_(
            *(
                and_(table.span == span, table.start.between(first, last))
                for span, first, last in runs
            )
        )
    )
    if organisation_id is not None:
        statement = statement.where(table.organisation_id == organisation_id)
    rows = session.connection().execute(statement).all()
    return {(span, start, owner): token for span, start, owner, token in rows}


# Each span's area names and measures, one array per column, for all the spans in one
# statement, in the binary protocol: arrays are the cheapest form a year's rows travel
# in. Summing them in PostgreSQL would leave no rows to take out when one span changes.
# Each span's rows by the primary key: OFFSET 0 keeps the planner from flattening this
# into a hash join, which would scan the whole table.
def _span_arrays_sql(source: SpanSource) -> sql.Composed:
    where = [
        sql.SQL("kept.{} = asked.start").format(sql.Identifier(source.start)),
        sql.SQL("kept.organisation_id = asked.organisation_id"),
    ]
    if source.span is not None:
        where.append(sql.SQL("kept.{} = asked.span").format(sql.Identifier(source.span)))
    return sql.SQL(
        "SELECT spans.* FROM unnest(%s::text[], %s::date[], %s::uuid[])"
        " WITH ORDINALITY AS asked (span, start, organisation_id, position),"
        " LATERAL (SELECT array_agg({area}), {measures} FROM {table} AS kept"
        " WHERE {where} OFFSET 0) AS spans"
        " ORDER BY asked.position"
    ).format(
        area=sql.SQL(f" || '{AREA_SEPARATOR}' || ").join(map(sql.Identifier, source.areas)),
        measures=sql.SQL(", ").join(
            sql.SQL("array_agg({})").format(sql.Identifier(name)) for name in source.measures
        ),
        table=sql.Identifier(source.table.name),
        where=sql.SQL(" AND ").join(where),
    )


_SPAN_ARRAYS = {
    source: _span_arrays_sql(source) for source in (CELL_SPANS, SECTOR_DAYS, PEOPLE_DAYS)
}
SpanArrays = tuple[list[str], npt.NDArray[np.integer[Any]]]


def _aggregated_rows(
    session: Session, source: SpanSource, keys: Sequence[SpanKey]
) -> list[SpanArrays]:
    """Each span's area names and measures, in ``keys`` order."""
    if not keys:
        return []
    connection = cast(psycopg.Connection[Any], session.connection().connection.driver_connection)
    spans, starts, organisations = (list(column) for column in zip(*keys, strict=True))
    with connection.cursor(binary=True) as cursor:
        rows = cursor.execute(_SPAN_ARRAYS[source], (spans, starts, organisations)).fetchall()
    # A span with no row any more aggregates to nulls.
    return [
        _arrays(source, names or [], [values or [] for values in measures])
        for names, *measures in rows
    ]


def _arrays(source: SpanSource, names: list[str], measures: Sequence[Sequence[int]]) -> SpanArrays:
    columns = np.array(measures, dtype=source.dtype).reshape(len(source.measures), len(names))
    return names, np.ascontiguousarray(columns.T)


def _fetched_rows(
    session: Session, source: SpanSource, keys: Sequence[SpanKey]
) -> list[SpanArrays]:
    """``_aggregated_rows`` for other engines: a statement per span, rows as tuples."""
    table = source.table.c
    area: ColumnElement[str] = reduce(
        lambda joined, column: joined + AREA_SEPARATOR + column,
        [table[column] for column in source.areas],
    )
    read = []
    for span, start, organisation_id in keys:
        where = [table[source.start] == start, table.organisation_id == uuid.UUID(organisation_id)]
        if source.span is not None:
            where.append(table[source.span] == span)
        rows = (
            session.connection()
            .execute(select(area, *(table[name] for name in source.measures)).where(*where))
            .all()
        )
        columns = [[row[index] for row in rows] for index in range(1, 1 + len(source.measures))]
        read.append(_arrays(source, [row[0] for row in rows], columns))
    return read
