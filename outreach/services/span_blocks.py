"""Rollup rows kept by each worker, span by span, while their generation holds.

A whole-area map sums, per hexagon, the ``RollupCellSpan`` rows of its period: a year
is eleven months and a few edge weeks and days of every organisation, hundreds of
thousands of rows at national volume, and a map computed right after a sync used to
read them all again. A sync changes only the spans of the days it brings (each day,
its week and its month, of its organisation), and raises those spans' generation
(``RollupSpanGeneration``) in its transaction. So each worker keeps the rows it read,
one span of one organisation at a time, as arrays of area numbers and measures, and
reads again only the spans whose generation moved: right after a sync of today's
encounters, today's day row of one organisation. It also keeps the last sums of a few
periods with the rows they were made of, so the next sum starts from the kept one it
differs from least (the same period before a sync, or a year ending a day earlier),
takes out the old rows of the spans that differ and adds the new ones, rather than
adding every span again.

The same holds for the fine day tables a sector or shift-kind filter needs: the
sector counters (``RollupSector``) and the person-days (``RollupPerson``) of one
organisation's day are one span, kept as rows of an area named by the row's key
(``stalingrad|rdr|kit:pipe``) and its measures; a filtered summary, time series or
sector map then sums the day spans of its period here instead of reading a year of
rows.

What is kept are counters finer than any response (a hexagon's count may be under
the small-cell threshold; a person ref is a keyed hash). They stay in the worker's
memory, are never logged or served as they are, and leave only through the
publication gate (``disclosure``), like the rows a request reads from the database.
Each budget counts rows, the least recently used span leaves first, and a budget of 0
keeps nothing (every request reads all its rows).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import reduce
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from sqlalchemy import ColumnElement, String, Table, and_, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from outreach.models import RollupCellSpan, RollupPerson, RollupSector, RollupSpanGeneration
from outreach.services.crypto import person_key
from outreach.services.rollups import CELL_SPAN_VALUES, generation

# One organisation's span: ("day" | "week" | "month", its first day, the organisation's
# id as text: a year of one table is a thousand keys or more per request, and a UUID
# computes its hash in Python each time, where a string keeps it).
SpanKey = tuple[str, date, str]
Generations = dict[SpanKey, int]
# Runs of spans of one kind, by the first and last span starts (``stats.period_spans``).
SpanRuns = Sequence[tuple[str, date, date]]
Areas = npt.NDArray[np.int32]
Measures = npt.NDArray[np.int64]
# Summed as 64-bit integers.
Sums = npt.NDArray[np.int64]
ENCOUNTERS = CELL_SPAN_VALUES.index("encounters")
# Between the key columns of an area's name: no key value holds it (sectors, shift
# kinds and metrics are codes of a-z 0-9 _ : -, person refs hexadecimal hashes).
AREA_SEPARATOR = "|"


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
    """The rows of one span: each row's area number, in order, and its measures."""

    generation: int
    areas: Areas
    measures: npt.NDArray[np.integer[Any]]


class _Summed(NamedTuple):
    spans: dict[SpanKey, SpanRows]
    total: Sums


# Spans read by one statement.
SPANS_PER_READ = 32
# Periods whose last sum each worker keeps (each holds on to its spans' rows); none
# when the budget keeps no rows.
MAX_SUMS = 8
# Periods whose span generations, and choices of areas whose rows in each span, each
# worker keeps.
MAX_GENERATIONS = 16
MAX_PICKS = 16


class SpanGenerations:
    """The generations of the spans of a few periods, as read at a counters'
    generation (``rollups.generation``), which rises with every committed change of
    the counters and so of the spans: while it holds, the period's thousand span
    generations are not read again. Safe across threads."""

    def __init__(self) -> None:
        self._kept: OrderedDict[Hashable, tuple[int, Generations]] = OrderedDict()
        self._lock = threading.Lock()

    def current(
        self, session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None
    ) -> Generations:
        """The generation of each span of ``runs`` (of one organisation, or of all)."""
        # Read before the spans' generations: a change committed in between is in
        # them, and only makes them newer than the number they are kept under.
        counters = generation(session)
        period = (tuple(runs), organisation_id)
        with self._lock:
            kept = self._kept.get(period)
            if kept is not None and kept[0] == counters:
                self._kept.move_to_end(period)
                return kept[1]
        read = generations(session, runs, organisation_id)
        with self._lock:
            self._kept[period] = (counters, read)
            self._kept.move_to_end(period)
            while len(self._kept) > MAX_GENERATIONS:
                self._kept.popitem(last=False)
        return read


class KeptSpans:
    """One source's span rows by organisation and span, within a budget of rows, their
    areas numbered by the worker; safe across threads. A subclass numbers the areas."""

    def __init__(
        self, source: SpanSource, max_rows: int, span_generations: SpanGenerations | None = None
    ) -> None:
        self.source = source
        self.max_rows = max_rows
        self.generations = span_generations or SpanGenerations()
        self._kept: OrderedDict[SpanKey, SpanRows] = OrderedDict()
        self._rows = 0
        # Spans read from the database since the worker started, kept or not.
        self.spans_read = 0
        # The last sums of a few periods, with the rows they were summed from: the next
        # sum starts from the one it differs from least, takes out the rows of the spans
        # that differ and adds their new ones, instead of adding every span again (a year
        # is hundreds).
        self._sums: OrderedDict[Hashable, _Summed] = OrderedDict()
        # The rows of a few choices of areas in each span they were picked from, by the
        # chosen area numbers: a year's time series of one sector picks them from a
        # thousand spans, and after a sync only the spans read again are picked anew.
        self._picks: OrderedDict[bytes, dict[SpanKey, tuple[SpanRows, Measures]]] = OrderedDict()
        self._lock = threading.Lock()

    def summed(
        self,
        session: Session,
        runs: SpanRuns,
        organisation_id: uuid.UUID | None,
        current: Generations | None = None,
    ) -> tuple[Sums, dict[SpanKey, SpanRows]]:
        """Each area's measures summed over the spans of ``runs`` (of one organisation,
        or of all), by area number, read from the database only where they changed; and
        the rows of those spans. ``current``: their generations, when already read."""
        if current is None:
            current = self.generations.current(session, runs, organisation_id)
        spans = self._take(current)
        stale = [key for key in current if key not in spans]
        # Read after their generation: a change committed in between is in the rows,
        # and only makes them newer than the number they are kept under.
        postgresql = session.get_bind().dialect.name == "postgresql"
        read = _aggregated_rows if postgresql else _fetched_rows
        # A few spans a statement: a year's rows read at once, as Python objects, took a
        # worker's memory to 1.2 GB at 10 M encounters, and the allocator kept it.
        for first in range(0, len(stale), SPANS_PER_READ):
            keys = stale[first : first + SPANS_PER_READ]
            for key, (names, measures) in zip(keys, read(session, self.source, keys), strict=True):
                areas = self._numbered(names)
                order = np.argsort(areas)
                spans[key] = SpanRows(current[key], areas[order], measures[order])
        self._put((key, spans[key]) for key in stale)
        period = (tuple(runs), organisation_id)
        total = self._summed_again(period, spans)
        # Shared by the requests that find nothing changed since: read only.
        total.setflags(write=False)
        if self.max_rows > 0:
            with self._lock:
                self._sums[period] = _Summed(spans, total)
                self._sums.move_to_end(period)
                while len(self._sums) > MAX_SUMS:
                    self._sums.popitem(last=False)
        return total, spans

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
                self._picks.move_to_end(choice)
                while len(self._picks) > MAX_PICKS:
                    self._picks.popitem(last=False)
        shape = (0, len(areas), len(self.source.measures))
        if not picks:
            return np.zeros(shape, dtype=np.int64)
        return np.stack([measures for _rows, measures in picks.values()])

    def __len__(self) -> int:
        return len(self._kept)

    def _numbered(self, names: Sequence[str]) -> Areas:
        """The worker's numbers of the areas ``names``, numbering the new ones."""
        raise NotImplementedError

    def _area_count(self) -> int:
        raise NotImplementedError

    def _summed_again(self, period: Hashable, spans: dict[SpanKey, SpanRows]) -> Sums:
        """The spans' rows summed per area number, from a kept sum when it differs from
        them by fewer spans than all of them: the period's own last sum (after a sync),
        else the kept sum that differs least (a year ending yesterday for a year ending
        today). A kept row object is the same rows, so only the other spans count."""
        with self._lock:
            own = self._sums.get(period)
            # The period's own last sum, when there is one, is the usual base (the same
            # request after a sync): the others are not compared, a thousand keys each.
            kept = [own] if own is not None else list(self._sums.values())
            size = self._area_count()
        base: _Summed | None = None
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

    def _take(self, current: Generations) -> dict[SpanKey, SpanRows]:
        """The kept spans whose generation is still ``current``."""
        taken = {}
        with self._lock:
            for key, generation in current.items():
                kept = self._kept.get(key)
                if kept is not None and kept.generation == generation:
                    self._kept.move_to_end(key)
                    taken[key] = kept
        return taken

    def _put(self, spans: Iterable[tuple[SpanKey, SpanRows]]) -> None:
        with self._lock:
            for key, rows in spans:
                self.spans_read += 1
                size = len(rows.areas)
                if size > self.max_rows:
                    continue
                previous = self._kept.pop(key, None)
                if previous is not None:
                    self._rows -= len(previous.areas)
                self._kept[key] = rows
                self._rows += size
                while self._rows > self.max_rows:
                    _key, evicted = self._kept.popitem(last=False)
                    self._rows -= len(evicted.areas)


def _pick(rows: SpanRows, areas: Areas) -> Measures:
    """The measures of ``areas`` in one span's rows, which are in area order."""
    picked = np.zeros((len(areas), rows.measures.shape[1]), dtype=np.int64)
    if len(rows.areas):
        at = rows.areas.searchsorted(areas)
        found = rows.areas.take(at, mode="clip") == areas
        picked[found] = rows.measures[at[found]]
    return picked


class CellSums(NamedTuple):
    """Hexagons with encounters, sorted, and their ``CELL_SPAN_VALUES`` summed, row by row."""

    cells: list[str]
    measures: Sums


class SpanBlocks(KeptSpans):
    """The map's hexagon span rows (``RollupCellSpan``)."""

    def __init__(self, max_rows: int) -> None:
        super().__init__(CELL_SPANS, max_rows)
        # Hexagons by number, in the order first read; numbers are never reused. Their
        # H3 indexes sorted, with each one's number, to number a span's rows at once, and
        # each number's rank in the hexagons' sorted names, to sort a map's at once.
        self._cells: list[str] = []
        self._ids = np.zeros(0, dtype=np.int64)
        self._numbers = np.zeros(0, dtype=np.int32)
        self._rank = np.zeros(0, dtype=np.intp)

    def cell_sums(
        self, session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None
    ) -> CellSums:
        """Each hexagon's measures summed over the spans of ``runs`` (of one
        organisation, or of all), read from the database only where they changed."""
        total, _spans = self.summed(session, runs, organisation_id)
        return self._present(total)

    def _area_count(self) -> int:
        return len(self._cells)

    def _numbered(self, names: Sequence[str]) -> Areas:
        """The worker's numbers of the hexagons ``names`` (H3 indexes)."""
        ids = np.array([int(cell, 16) for cell in names], dtype=np.int64)
        with self._lock:
            at = np.searchsorted(self._ids, ids)
            if len(self._ids):
                known = self._ids[np.minimum(at, len(self._ids) - 1)] == ids
            else:
                known = np.zeros(len(ids), dtype=np.bool_)
            if not known.all():
                new = np.unique(ids[~known])
                self._cells.extend(f"{cell:x}" for cell in new.tolist())
                every = np.concatenate((self._ids[np.argsort(self._numbers)], new))
                self._numbers = np.argsort(every).astype(np.int32)
                self._ids = every[self._numbers]
                self._rank = np.empty(len(self._cells), dtype=np.intp)
                self._rank[np.argsort(np.array(self._cells))] = np.arange(len(self._cells))
                at = np.searchsorted(self._ids, ids)
            numbers: Areas = self._numbers[at]
            return numbers

    def _present(self, total: Sums) -> CellSums:
        """The hexagons with encounters, sorted by name, and their sums."""
        with self._lock:
            cells, rank = self._cells, self._rank[: len(total)]
        present = np.flatnonzero(total[:, ENCOUNTERS] > 0)
        order = present[np.argsort(rank[present])]
        return CellSums([cells[number] for number in order.tolist()], total[order])


class KeyedAreas(NamedTuple):
    """Every area a worker numbered, by number: the code of each of its key columns,
    and each column's values by code."""

    codes: tuple[npt.NDArray[np.int32], ...]
    values: tuple[list[str], ...]

    def code(self, column: int, value: str) -> int:
        """The code of ``value`` in key column ``column``; -1 when no area holds it."""
        values = self.values[column]
        return values.index(value) if value in values else -1


class DaySpans(KeptSpans):
    """The rows of one organisation's day in a fine day table (``SECTOR_DAYS``,
    ``PEOPLE_DAYS``), their areas numbered by name."""

    def __init__(
        self,
        source: SpanSource,
        max_rows: int,
        span_generations: SpanGenerations | None = None,
        first_key: Callable[[str], int] = lambda _value: 0,
    ) -> None:
        super().__init__(source, max_rows, span_generations)
        self._numbers: dict[str, int] = {}
        width = len(source.areas)
        # Per key column: the codes of the areas numbered since ``keyed`` last ran (it
        # adds them to its arrays: building those from lists was 10 ms a request after a
        # sync that brought new people), each code's value and each value's code.
        self._new_codes: list[list[int]] = [[] for _ in range(width)]
        self._first_key = first_key
        self._first_keys: list[int] = []
        self._first_keys_array = np.zeros(0, dtype=np.int64)
        self._values: list[list[str]] = [[] for _ in range(width)]
        self._value_codes: list[dict[str, int]] = [{} for _ in range(width)]
        self._keyed = KeyedAreas(
            tuple(np.zeros(0, dtype=np.int32) for _ in range(width)),
            tuple([] for _ in range(width)),
        )

    def day_sums(
        self,
        session: Session,
        start: date,
        end: date,
        organisation_id: uuid.UUID | None,
        current: Generations | None = None,
    ) -> tuple[Sums, dict[SpanKey, SpanRows], KeyedAreas]:
        """The areas' measures summed over the days ``start..end`` (of one organisation,
        or of all), the rows of each day, and what each area number stands for."""
        total, spans = self.summed(session, [("day", start, end)], organisation_id, current)
        return total, spans, self.keyed()

    def keyed(self) -> KeyedAreas:
        with self._lock:
            if self._new_codes[0]:
                self._keyed = KeyedAreas(
                    tuple(
                        np.concatenate((codes, np.array(new, dtype=np.int32)))
                        for codes, new in zip(self._keyed.codes, self._new_codes, strict=True)
                    ),
                    tuple(list(values) for values in self._values),
                )
                for new in self._new_codes:
                    new.clear()
            return self._keyed

    def _area_count(self) -> int:
        return len(self._numbers)

    def _numbered(self, names: Sequence[str]) -> Areas:
        with self._lock:
            numbers = self._numbers
            numbered = [numbers.get(name, -1) for name in names]
            # A span holds an area once: each name missing is new, and numbered once.
            for index in [index for index, number in enumerate(numbered) if number < 0]:
                numbered[index] = numbers[names[index]] = len(numbers)
                self._code(names[index])
            return np.array(numbered, dtype=np.int32)

    def _code(self, name: str) -> None:
        """Record the codes of a newly numbered area's key values."""
        for column, value in enumerate(name.split(AREA_SEPARATOR)):
            code = self._value_codes[column].get(value)
            if code is None:
                code = self._value_codes[column][value] = len(self._values[column])
                self._values[column].append(value)
                if column == 0:
                    self._first_keys.append(self._first_key(value))
            self._new_codes[column].append(code)

    def first_keys(self) -> npt.NDArray[np.int64]:
        """The key derived from each value of the first key column, by code (a person
        ref's person key), for the values numbered so far."""
        with self._lock:
            if len(self._first_keys_array) != len(self._first_keys):
                self._first_keys_array = np.array(self._first_keys, dtype=np.int64)
            return self._first_keys_array


class FilteredSpans:
    """The fine day tables' spans a worker keeps for stats with a sector or shift-kind
    filter: sector counters and person-days, each within ``max_rows``."""

    def __init__(self, max_rows: int) -> None:
        # Both tables' spans are the same days: their generations are read once.
        self.generations = SpanGenerations()
        self.counters = DaySpans(SECTOR_DAYS, max_rows, self.generations)
        self.people = DaySpans(PEOPLE_DAYS, max_rows, self.generations, person_key)


def generations(session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None) -> Generations:
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
    return {(span, start, owner): generation for span, start, owner, generation in rows}


# Each span's area names and measures, one array per column, for all the spans in one
# statement, in the binary protocol. A worker's first year at national volume is
# hundreds of thousands of rows: 2.6 s as Python tuples, 1.2-2.5 s as a binary COPY
# (psycopg takes a COPY a row at a time), about 1 s as arrays. Summing them in
# PostgreSQL would be faster once, but would leave no rows to take out when one span
# changes. Each span's rows by the primary key: OFFSET 0 keeps the planner from
# flattening this into a hash join, which scanned the whole table (every year kept).
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
