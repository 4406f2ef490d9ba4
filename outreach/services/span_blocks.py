"""The map's span rows kept by each worker, span by span, while their generation holds.

A whole-area map sums, per hexagon, the ``RollupCellSpan`` rows of its period: a year
is eleven months and a few edge weeks and days of every organisation, hundreds of
thousands of rows at national volume, and a map computed right after a sync used to
read them all again. A sync changes only the spans of the days it brings (each day,
its week and its month, of its organisation), and raises those spans' generation
(``RollupSpanGeneration``) in its transaction. So each worker keeps the rows it read,
one span of one organisation at a time, as arrays of hexagon numbers and measures,
and reads again only the spans whose generation moved: right after a sync of today's
encounters, today's day row of one organisation.

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
from collections.abc import Iterable, Sequence
from datetime import date
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
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


class SpanBlocks:
    """Span rows by organisation and span, within a budget of rows; safe across threads."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._kept: OrderedDict[SpanKey, SpanRows] = OrderedDict()
        self._rows = 0
        # Hexagons by number, in the order first read; numbers are never reused.
        self._cells: list[str] = []
        self._numbers: dict[str, int] = {}
        self._lock = threading.Lock()

    def cell_sums(
        self, session: Session, runs: SpanRuns, organisation_id: uuid.UUID | None
    ) -> CellSums:
        """Each hexagon's measures summed over the spans of ``runs`` (of one
        organisation, or of all), read from the database only where they changed."""
        current = self._generations(session, runs, organisation_id)
        spans = self._take(current)
        stale = [key for key in current if key not in spans]
        for key in stale:
            # Read after their generation: a change committed in between is in the rows,
            # and only makes them newer than the number they are kept under.
            spans[key] = self._read(session, key, current[key])
        self._put((key, spans[key]) for key in stale)
        return self._summed(spans.values())

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

    def _read(self, session: Session, key: SpanKey, generation: int) -> SpanRows:
        table = RollupCellSpan.__table__.c
        span, start, organisation_id = key
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
        measures = np.array([row[1:] for row in rows], dtype=np.int32).reshape(
            len(rows), len(CELL_SPAN_VALUES)
        )
        return SpanRows(generation, self._numbered(row[0] for row in rows), measures)

    def _numbered(self, cells: Iterable[str]) -> npt.NDArray[np.int32]:
        with self._lock:
            numbers = []
            for cell in cells:
                number = self._numbers.get(cell)
                if number is None:
                    number = self._numbers[cell] = len(self._cells)
                    self._cells.append(cell)
                numbers.append(number)
        return np.array(numbers, dtype=np.int32)

    def _summed(self, spans: Iterable[SpanRows]) -> CellSums:
        with self._lock:
            cells = list(self._cells)
        total = np.zeros((len(cells), len(CELL_SPAN_VALUES)), dtype=np.int64)
        for rows in spans:
            # A span holds a hexagon once, so fancy-indexed addition adds every row.
            total[rows.cells] += rows.measures
        present = np.flatnonzero(total[:, ENCOUNTERS] > 0)
        order = sorted(present.tolist(), key=cells.__getitem__)
        return CellSums([cells[number] for number in order], total[order])

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
