"""Reading the rollup tables: counters summed by the database, never raw encounters.

A request without a sector or shift-kind filter reads the per-organisation tables
(``RollupTotal``, ``PersonYear``, and for hexagon maps ``RollupCellSpan`` through the
span rows this worker's read model keeps, ``readmodel``), whose cost does not grow
with the encounters; a filtered hexagon map reads the hexagon day rows. Every sum
carries the encounters behind it (its basis) and its cell key modulo 2^32, which the
disclosure gate needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, ColumnElement, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from outreach.models import Kit, PersonYear, RollupCell, RollupSector, RollupTotal
from outreach.models.rollups import DAY_WORDS
from outreach.services.disclosure import KEY_MASK
from outreach.services.readmodel import ReadModel
from outreach.services.rollups import CELL_SPAN_VALUES, MAP_COLUMNS, MAP_METRICS, year_masks
from outreach.services.stats.scope import Scope, period_spans


class Sum(NamedTuple):
    """A summed counter, the encounters behind it and its cell key (the sum of their
    record keys, modulo 2^32 when published). A tuple: a whole-area map makes tens of
    thousands, and a frozen dataclass cost more to build than its row to fetch."""

    value: int
    basis: int
    key: int


def counter_sums(
    session: Session,
    table: type[RollupSector | RollupCell | RollupTotal],
    where: Sequence[ColumnElement[bool]],
    *,
    by: Sequence[Any] = (),
    metrics: Iterable[str] | None = None,
) -> dict[tuple[Any, ...], Sum]:
    """Summed counters of the rows ``where`` selects, keyed by ``(*by, metric)``."""
    # Sums cast back to bigint: PostgreSQL's sum of a bigint is a numeric, which the
    # driver would turn into a Decimal per value.
    statement = (
        select(
            *by,
            table.metric,
            cast(func.sum(table.value), BigInteger),
            cast(func.sum(table.basis), BigInteger),
            cast(func.sum(table.ckey), BigInteger),
        )
        .where(*where)
        .group_by(*by, table.metric)
    )
    if metrics is not None:
        statement = statement.where(table.metric.in_(list(metrics)))
    # Through the connection, all rows at once: plain rows, without the ORM's result
    # loading (a tenth of a whole-area map's time).
    rows = session.connection().execute(statement).all()
    return {
        (*key, metric): Sum(value, basis, ckey & KEY_MASK)
        for *key, metric, value, basis, ckey in rows
    }


class AreaSums(NamedTuple):
    """A map's areas and their measures: per area a row of the value, the basis and the
    cell key of each of MAP_METRICS, in turn. A whole-area map has thousands of areas, summed,
    masked and written as arrays rather than area by area."""

    areas: list[str]
    amounts: npt.NDArray[np.int64]

    def over(self, areas: Sequence[str]) -> AreaSums:
        """The same measures for ``areas``, in their order, zero where none were summed."""
        rows = {area: index for index, area in enumerate(self.areas)}
        amounts = np.zeros((len(areas), AMOUNTS * len(MAP_METRICS)), dtype=np.int64)
        for index, area in enumerate(areas):
            if area in rows:
                amounts[index] = self.amounts[rows[area]]
        return AreaSums(list(areas), amounts)


# Where each MAP_METRICS measure's value and basis sit in a RollupCellSpan row.
_SPAN_AMOUNTS = [
    CELL_SPAN_VALUES.index(column) for metric in MAP_METRICS for column in MAP_COLUMNS[metric]
]
# Value, basis and key of each measure.
AMOUNTS = 3


def reduced_keys(amounts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``amounts`` (``AreaSums``) with their cell keys modulo 2^32, in place: stored keys
    are wrapped row by row, so only reduced sums compare across ways of summing."""
    amounts[:, AMOUNTS - 1 :: AMOUNTS] &= KEY_MASK
    return amounts


def area_amounts(
    session: Session,
    table: type[RollupSector | RollupCell],
    where: Sequence[ColumnElement[bool]],
    area: Any,
) -> AreaSums:
    """The map's measures summed per ``area`` (a column of ``table``) over the rows
    ``where`` selects, for the areas with encounters, sorted."""
    slots = {metric: AMOUNTS * index for index, metric in enumerate(MAP_METRICS)}
    amounts: dict[str, list[int]] = {}
    sums = counter_sums(session, table, where, by=(area,), metrics=MAP_METRICS)
    for (name, metric), total in sums.items():
        row = amounts.setdefault(name, [0] * (AMOUNTS * len(MAP_METRICS)))
        row[slots[metric] : slots[metric] + AMOUNTS] = total
    areas = sorted(amounts)
    return AreaSums(
        areas,
        np.array([amounts[name] for name in areas], dtype=np.int64).reshape(
            len(areas), AMOUNTS * len(MAP_METRICS)
        ),
    )


def cell_amounts(session: Session, scope: Scope, model: ReadModel) -> AreaSums:
    """The map's measures per hexagon with encounters in the scope; without a sector or
    shift-kind filter, from the span rows this worker keeps while they hold."""
    if not scope.whole_organisations:
        return area_amounts(session, RollupCell, scope.where(RollupCell), RollupCell.cell)
    sums = model.cell_sums(session, period_spans(scope.start, scope.end), scope.organisation_id)
    return AreaSums(sums.cells, reduced_keys(sums.measures[:, _SPAN_AMOUNTS]))


def distinct_people_met(session: Session, scope: Scope) -> tuple[int, int]:
    """Distinct person refs met in the period and the sum of their person keys, from
    the person-year bitmaps: one row per person, organisation and year, whatever the
    period's length."""
    met_in_period = or_(
        *(
            and_(
                PersonYear.year == year,
                or_(
                    *(
                        getattr(PersonYear, word).bitwise_and(mask) != 0
                        for word, mask in zip(DAY_WORDS, masks, strict=True)
                        if mask
                    )
                ),
            )
            for year, masks in year_masks(scope.start, scope.end).items()
        )
    )
    statement = select(PersonYear.ref_hash, func.min(PersonYear.person_key).label("key")).where(
        met_in_period
    )
    if scope.organisation_id is not None:
        statement = statement.where(PersonYear.organisation_id == scope.organisation_id)
    people = statement.group_by(PersonYear.ref_hash).subquery()
    count, key = session.execute(
        select(func.count(), cast(func.coalesce(func.sum(people.c.key), 0), BigInteger))
    ).one()
    return int(count), int(key) & KEY_MASK


def kit_codes(session: Session, seen: Iterable[str]) -> list[str]:
    """The catalogue's kit codes, plus any retired code still found in the counts."""
    catalogue = list(session.scalars(select(Kit.code).order_by(Kit.code)))
    return catalogue + sorted(set(seen) - set(catalogue))
