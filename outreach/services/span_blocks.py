"""The map's span rows kept by each worker, span by span, while their generation holds.

A whole-area map sums, per hexagon, the ``RollupCellSpan`` rows of its period: a year
is eleven months and a few edge weeks and days of every organisation, hundreds of
thousands of rows at national volume, and a map computed right after a sync used to
read them all again. A sync changes only the spans of the days it brings (each day,
its week and its month, of its organisation), and raises those spans' generation
(``RollupSpanGeneration``) in its transaction. So each worker keeps the rows it read,
one span of one organisation at a time, as arrays of hexagon numbers and measures,
and reads again only the spans whose generation moved: right after a sync of today's
encounters, today's day row of one organisation. It also keeps the last sums of a few
periods with the rows they were made of, so the next sum starts from the kept one it
differs from least (the same period before a sync, or a year ending a day earlier),
takes out the old rows of the spans that differ and adds the new ones, rather than
adding every span again.

What is kept are counters finer than any response (a hexagon's count may be under
the small-cell threshold). They stay in the worker's memory, are never logged or
served as they are, and leave only through a map's suppression, like the rows a map
reads from the database. The budget counts rows, the least recently used span leaves
first, and a budget of 0 keeps nothing (every map reads all its rows).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from datetime import date
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from outreach.models import RollupCellSpan, RollupSpanGeneration
from outreach.services.rollups import CELL_SPAN_VALUES

# One organisation's span: ("day" | "week" | "month", its first day, the organisation).
SpanKey = tuple[str, date, uuid.UUID]
# Runs of spans of one kind, by the first and last span starts (``stats.period_spans``).
SpanRuns = Sequence[tuple[str, date, date]]
# Kept as 32-bit integers, as stored (migration 0008), and summed as 64-bit ones.
Measures = npt.NDArray[np.int32]
Sums = npt.NDArray[np.int64]
ENCOUNTERS = CELL_SPAN_VALUES.index("encounters")


class SpanRows(NamedTuple):
    """The rows of one span: each hexagon's number and its ``CELL_SPAN_VALUES``."""

    generation: int
    cells: npt.NDArray[np.int32]
    measures: Measures


class CellSums(NamedTuple):
    """Hexagons with encounters, sorted, and their ``CELL_SPAN_VALUES`` summed, row by row."""

    cells: list[str]
    measures: Sums


class _Summed(NamedTuple):
    spans: dict[SpanKey, SpanRows]
    total: Sums


# Periods whose last sum each worker keeps (each holds on to its spans' rows); none
# when the budget keeps no rows.
MAX_SUMS = 8


class SpanBlocks:
    """Span rows by organisation and span, within a budget of rows; safe across threads."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._kept: OrderedDict[SpanKey, SpanRows] = OrderedDict()
        self._rows = 0
        # Spans read from the database since the worker started, kept or not.
        self.spans_read = 0
        # Hexagons by number, in the order first read; numbers are never reused. Their
        # H3 indexes sorted, with each one's number, to number a span's rows at once, and
        # each number's rank in the hexagons' sorted names, to sort a map's at once.
        self._cells: list[str] = []
        self._ids = np.zeros(0, dtype=np.int64)
        self._numbers = np.zeros(0, dtype=np.int32)
        self._rank = np.zeros(0, dtype=np.intp)
        # The last sums of a few periods, with the rows they were summed from: the next
        # sum starts from the one it differs from least, takes out the rows of the spans
        # that differ and adds their new ones, instead of adding every span again (a year
        # is hundreds).
        self._sums: OrderedDict[Hashable, _Summed] = OrderedDict()
        self._lock = threading.Lock()

    def cell_sums(
        self, session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None
    ) -> CellSums:
        """Each hexagon's measures summed over the spans of ``runs`` (of one
        organisation, or of all), read from the database only where they changed."""
        current = self._generations(session, runs, organisation_id)
        spans = self._take(current)
        stale = [key for key in current if key not in spans]
        # Read after their generation: a change committed in between is in the rows,
        # and only makes them newer than the number they are kept under.
        postgresql = session.get_bind().dialect.name == "postgresql"
        read = _aggregated_rows if postgresql else _fetched_rows
        for key, (ids, measures) in zip(stale, read(session, stale), strict=True):
            spans[key] = SpanRows(current[key], self._numbered(ids), measures)
        self._put((key, spans[key]) for key in stale)
        period = (tuple(runs), organisation_id)
        total = self._summed_again(spans)
        if self.max_rows > 0:
            with self._lock:
                self._sums[period] = _Summed(spans, total)
                self._sums.move_to_end(period)
                while len(self._sums) > MAX_SUMS:
                    self._sums.popitem(last=False)
        return self._present(total)

    def __len__(self) -> int:
        return len(self._kept)

    def _generations(
        self, session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None
    ) -> dict[SpanKey, int]:
        table = RollupSpanGeneration
        statement = select(table.span, table.start, table.organisation_id, table.generation).where(
            or_(
                *(
                    and_(table.span == span, table.start.between(first, last))
                    for span, first, last in runs
                )
            )
        )
        if organisation_id is not None:
            statement = statement.where(table.organisation_id == organisation_id)
        rows = session.connection().execute(statement)
        return {(span, start, owner): generation for span, start, owner, generation in rows}

    def _numbered(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
        """The worker's numbers of the hexagons ``ids`` (H3 indexes as integers)."""
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
            return self._numbers[at]

    def _summed_again(self, spans: dict[SpanKey, SpanRows]) -> Sums:
        """The spans' rows summed per hexagon number, from the kept sum that differs from
        them by the fewest spans when that is fewer than all of them: the period's own
        last sum after a sync, or a year ending yesterday for a year ending today. A kept
        row object is the same rows, so only the other spans count."""
        with self._lock:
            kept = list(self._sums.values())
            size = len(self._cells)
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
        total = np.zeros((size, len(CELL_SPAN_VALUES)), dtype=np.int64)
        if base is not None:
            total[: len(base.total)] = base.total
        for before, after in changed.values():
            # A span holds a hexagon once, so fancy-indexed arithmetic counts every row.
            if before is not None:
                total[before.cells] -= before.measures
            if after is not None:
                total[after.cells] += after.measures
        return total

    def _present(self, total: Sums) -> CellSums:
        """The hexagons with encounters, sorted by name, and their sums."""
        with self._lock:
            cells, rank = self._cells, self._rank[: len(total)]
        present = np.flatnonzero(total[:, ENCOUNTERS] > 0)
        order = present[np.argsort(rank[present])]
        return CellSums([cells[number] for number in order.tolist()], total[order])

    def _take(self, current: dict[SpanKey, int]) -> dict[SpanKey, SpanRows]:
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
                size = len(rows.cells)
                if size > self.max_rows:
                    continue
                previous = self._kept.pop(key, None)
                if previous is not None:
                    self._rows -= len(previous.cells)
                self._kept[key] = rows
                self._rows += size
                while self._rows > self.max_rows:
                    _key, evicted = self._kept.popitem(last=False)
                    self._rows -= len(evicted.cells)


# Each span's rows as one array per column, for all the spans in one statement, in the
# binary protocol. A worker's first year at national volume is hundreds of thousands of
# rows: 2.6 s as Python tuples, 1.2-2.5 s as a binary COPY (psycopg takes a COPY a row
# at a time), about 1 s as arrays. Summing them in PostgreSQL would be faster once, but
# would leave no rows to take out when one span changes.
_SPAN_ARRAYS = sql.SQL(
    "SELECT spans.* FROM unnest(%s::text[], %s::date[], %s::uuid[])"
    " WITH ORDINALITY AS asked (span, start, organisation_id, position),"
    # Each span's rows by the primary key: OFFSET 0 keeps the planner from flattening
    # this into a hash join, which scanned the whole table (every year kept) for a year.
    " LATERAL (SELECT array_agg(cell), {measures} FROM rollup_cell_spans AS kept"
    " WHERE kept.span = asked.span AND kept.start = asked.start"
    " AND kept.organisation_id = asked.organisation_id OFFSET 0) AS spans"
    " ORDER BY asked.position"
).format(
    measures=sql.SQL(", ").join(
        sql.SQL("array_agg({})").format(sql.Identifier(name)) for name in CELL_SPAN_VALUES
    )
)
SpanArrays = tuple[npt.NDArray[np.int64], Measures]


def _aggregated_rows(session: Session, keys: Sequence[SpanKey]) -> list[SpanArrays]:
    """Each span's hexagons (H3 indexes as integers) and measures, in ``keys`` order."""
    if not keys:
        return []
    connection = cast(psycopg.Connection[Any], session.connection().connection.driver_connection)
    spans, starts, organisations = (list(column) for column in zip(*keys, strict=True))
    with connection.cursor(binary=True) as cursor:
        rows = cursor.execute(_SPAN_ARRAYS, (spans, starts, organisations)).fetchall()
    # A span with no row any more aggregates to nulls.
    return [
        _arrays(cells or [], [values or [] for values in measures]) for cells, *measures in rows
    ]


def _arrays(cells: Sequence[str], measures: Sequence[Sequence[int]]) -> SpanArrays:
    ids = np.array([int(cell, 16) for cell in cells], dtype=np.int64)
    columns = np.array(measures, dtype=np.int32).reshape(len(CELL_SPAN_VALUES), len(cells))
    return ids, np.ascontiguousarray(columns.T)


def _fetched_rows(session: Session, keys: Sequence[SpanKey]) -> list[SpanArrays]:
    """``_aggregated_rows`` for other engines: a statement per span, rows as tuples."""
    table = RollupCellSpan.__table__.c
    read = []
    for span, start, organisation_id in keys:
        rows = (
            session.connection()
            .execute(
                select(table.cell, *(table[name] for name in CELL_SPAN_VALUES)).where(
                    table.span == span,
                    table.start == start,
                    table.organisation_id == organisation_id,
                )
            )
            .all()
        )
        columns = [[row[index] for row in rows] for index in range(1, 1 + len(CELL_SPAN_VALUES))]
        read.append(_arrays([row[0] for row in rows], columns))
    return read
