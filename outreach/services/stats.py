"""Aggregates for the plan's coordination: totals, time series, hexagon and sector maps.

Every figure here is read from the rollup tables, never from raw encounters. A
request without a sector or shift-kind filter reads the per-organisation tables
(``RollupTotal``, ``PersonYear``, ``RollupCellSpan`` for maps), whose cost does not
grow with the encounters. A filtered summary, time series or sector map sums the day
rows of the finer tables (``RollupSector``, ``RollupPerson``), which each worker keeps
by organisation and day while they hold (``span_blocks.FilteredSpans``), so it reads
only the days that changed since. A filtered hexagon map reads the hexagon day rows.

Every figure leaves through ``disclosure.Gate``; every request is audited
(action, filters, number of counts returned) in the transaction that reads, so the
event is committed before the response exists.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy import BigInteger, ColumnElement, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from config import Settings
from outreach.clock import paris_today
from outreach.models import (
    Kit,
    Organisation,
    OrgKind,
    PersonYear,
    Role,
    RollupCell,
    RollupPerson,
    RollupSector,
    RollupTotal,
)
from outreach.models.rollups import DAY_WORDS
from outreach.services import audit, disclosure, periods
from outreach.services.context import CallContext, Principal
from outreach.services.disclosure import KEY_MASK, Gate
from outreach.services.errors import Invalid
from outreach.services.geo import cell_geometry, cell_parent, sector_geometries
from outreach.services.published import (
    PublishedMap,
    PublishedMaps,
    area_features,
    area_properties,
    published_map,
    render_areas,
)
from outreach.services.rollups import CELL_SPAN_VALUES, MAP_COLUMNS, MAP_METRICS, year_masks
from outreach.services.span_blocks import (
    DaySpans,
    FilteredSpans,
    Generations,
    KeyedAreas,
    SpanBlocks,
    SpanKey,
    SpanRows,
    Sums,
)
from schemas.vocabulary import (
    AGE_BANDS,
    GENDERS,
    OUTSIDE_SECTORS,
    REFERRAL_DESTINATIONS,
    REFERRAL_STATUSES,
    SECTORS,
    SERVICES,
)

DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 3 * 366
BUCKETS = ("day", "week", "month")
# The whole-unit rows a time series can read for each bucket: their starts are the
# buckets' own, so every row falls in one bucket.
BUCKET_UNITS: dict[str, tuple[str, ...]] = {"day": (), "week": ("week",), "month": ("month",)}
# The counts a time series carries per bucket: the summary's headline figures.
SERIES_MEASURES = {
    "encounters": "encounters",
    "people": "people",
    "first_contacts": "first_contacts",
    "women": "gender:f",
    "kits": "kits",
    "referrals": "referrals",
}


@dataclass(frozen=True)
class StatsQuery:
    """Filters as the caller gave them; ``None`` means not given."""

    start: date | None = None
    end: date | None = None
    period: str | None = None
    sector: str | None = None
    organisation: str | None = None
    shift_kind: str | None = None


@dataclass(frozen=True)
class Scope:
    """The filters a stats request runs with, checked against what the caller may see."""

    start: date
    end: date
    sector: str | None
    organisation: str | None
    organisation_id: uuid.UUID | None
    shift_kind: str | None
    # The grid period named (its days are ``start..end``), if one was.
    period: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "sector": self.sector,
            "organisation": self.organisation,
            "shift_kind": self.shift_kind,
        }

    def where(
        self, table: type[RollupSector] | type[RollupCell] | type[RollupPerson]
    ) -> list[ColumnElement[bool]]:
        clauses = [table.day >= self.start, table.day <= self.end]
        if self.sector is not None:
            clauses.append(table.sector == self.sector)
        if self.organisation_id is not None:
            clauses.append(table.organisation_id == self.organisation_id)
        if self.shift_kind is not None:
            clauses.append(table.shift_kind == self.shift_kind)
        return clauses

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def whole_organisations(self) -> bool:
        """No sector or shift-kind filter: the per-organisation rollups can answer."""
        return self.sector is None and self.shift_kind is None

    def spans_where(
        self,
        table: type[RollupTotal],
        units: Sequence[str] = ("month", "week"),
    ) -> list[ColumnElement[bool]]:
        """The per-organisation total rows of the period: whole ``units`` (coarsest
        first) where they fit, day rows for the rest."""
        clauses = [
            or_(
                *(
                    and_(table.span == span, table.start.between(first, last))
                    for span, first, last in period_spans(self.start, self.end, units)
                )
            )
        ]
        if self.organisation_id is not None:
            clauses.append(table.organisation_id == self.organisation_id)
        return clauses


def period_spans(
    start: date, end: date, units: Sequence[str] = ("month", "week")
) -> list[tuple[str, date, date]]:
    """``start..end`` as runs of rows of one span each, given by the first and last row
    starts: the whole units of ``units[0]`` inside, the edges split the same way by the
    finer units, and days for what is left."""
    if not units:
        return [("day", start, end)]
    unit, finer = units[0], units[1:]
    first = _unit_start(start, unit)
    if first < start:
        first = _unit_start(first + timedelta(days=32 if unit == "month" else 7), unit)
    after = _unit_start(end + timedelta(days=1), unit)
    if first >= after:
        return period_spans(start, end, finer)
    spans: list[tuple[str, date, date]] = []
    if start < first:
        spans += period_spans(start, first - timedelta(days=1), finer)
    spans.append((unit, first, _unit_start(after - timedelta(days=1), unit)))
    if after <= end:
        spans += period_spans(after, end, finer)
    return spans


def _unit_start(day: date, unit: str) -> date:
    """The first day of the week (Monday) or month ``day`` falls in."""
    return day - timedelta(days=day.weekday()) if unit == "week" else day.replace(day=1)


def query_error(parameter: str, message: str) -> Invalid:
    """A 422 naming the query parameter at fault, shaped like schema errors."""
    return Invalid(message, {"query": {parameter: [message]}})


def resolve_scope(
    session: Session,
    principal: Principal,
    query: StatsQuery,
    *,
    max_days: int = MAX_PERIOD_DAYS,
    today: date | None = None,
    free_dates: bool = False,
) -> Scope:
    """The period and the organisation filter a request runs with.

    Protected figures (anyone but an association's own org_admin) are published for
    periods of the grid (``periods``): a named ``period``, by default the last whole
    ISO week; free ``from``/``to`` answer 422 unless ``free_dates`` (coverage, which
    counts shifts, not people). Exact figures take a ``period`` or any days, by
    default the last 30. An org_admin sees its own organisation only: naming another
    one answers the same 422 as naming one that does not exist, so the filter is no
    existence oracle.
    """
    today = today or paris_today()
    exact = principal.role == Role.ORG_ADMIN
    named: str | None = None
    if query.period is not None:
        if query.start is not None or query.end is not None:
            raise query_error("period", "Give either 'period' or 'from' and 'to', not both.")
        period = _grid_period(query.period)
        named = period.name
        start = period.start
        if start > today:
            raise query_error("period", f"{period.name} has not begun.")
        last = min(period.end, today) if exact else periods.published_end(period, today)
        if last is None:
            raise query_error("period", _not_yet(period, today))
        end = last
    elif exact or free_dates:
        end = query.end or (max(query.start, today) if query.start else today)
        start = query.start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    else:
        if query.start is not None or query.end is not None:
            raise query_error(
                "from" if query.start is not None else "to",
                "Figures beyond your own association's are published for periods of the "
                f"grid: give 'period' ({periods.PERIOD_FORMATS}), not 'from' or 'to'.",
            )
        week = periods.last_whole_week(today)
        start, end, named = week.start, week.end, week.name
    if start > end:
        raise query_error("from", "'from' must not be after 'to'.")
    if (end - start).days + 1 > max_days:
        raise query_error("from", f"A period spans at most {max_days} days.")
    return Scope(
        start=start,
        end=end,
        sector=query.sector,
        shift_kind=query.shift_kind,
        period=named,
        **_organisation_filter(session, principal, query.organisation),
    )


def offered_periods(ctx: CallContext, settings: Settings) -> dict[str, Any]:
    """The grid periods the caller can ask for now, each with the days it answers, and
    the default: the calendar of the grid, no figure, so not audited."""
    principal = _caller(ctx)
    today = paris_today()
    exact = publication_gate(settings, principal).exact
    return {
        "default": periods.last_whole_week(today).name,
        "max_versions_covering_a_day": periods.MAX_VERSIONS_COVERING_A_DAY,
        "periods": [
            {
                "period": period.name,
                "kind": period.kind,
                "from": period.start,
                "to": end,
                "complete": end == period.end,
            }
            for period, end in periods.offered(today, exact)
        ],
    }


def _grid_period(text: str) -> periods.Period:
    try:
        return periods.parse(text)
    except ValueError as exc:
        raise query_error("period", str(exc)) from None


def _not_yet(period: periods.Period, today: date) -> str:
    """Why nothing of a begun ``period`` is published yet, and what to ask instead."""
    steps = {"month": "whole weeks", "quarter": "whole months", "year": "whole months"}
    return (
        f"Nothing of {period.name} is published yet: a current {period.kind} is published "
        f"by {steps.get(period.kind, 'whole days')}. Ask for "
        f"{periods.last_whole_week(today).name}, the last whole week."
    )


def _organisation_filter(
    session: Session, principal: Principal, slug: str | None
) -> dict[str, Any]:
    if principal.role == Role.ORG_ADMIN:
        if slug is not None and slug != principal.organisation_slug:
            raise query_error("organisation", "No such organisation.")
        return {
            "organisation": principal.organisation_slug,
            "organisation_id": principal.organisation_id,
        }
    if slug is None:
        return {"organisation": None, "organisation_id": None}
    organisation_id = session.scalar(
        select(Organisation.id).where(
            Organisation.slug == slug, Organisation.kind == OrgKind.ASSOCIATION
        )
    )
    if organisation_id is None:
        raise query_error("organisation", "No such organisation.")
    return {"organisation": slug, "organisation_id": organisation_id}


def check_resolution(settings: Settings, resolution: int) -> None:
    if resolution > settings.h3_resolution:
        raise query_error(
            "resolution",
            f"Locations are stored at resolution {settings.h3_resolution}: ask for it or coarser.",
        )


def to_resolution(settings: Settings, cell: str, resolution: int) -> str:
    """The cell, or its parent at a coarser ``resolution``."""
    if resolution == settings.h3_resolution:
        return cell
    return cell_parent(cell, resolution)


# Reading the rollups ---------------------------------------------------------------


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


def cell_amounts(session: Session, scope: Scope, spans: SpanBlocks) -> AreaSums:
    """The map's measures per hexagon with encounters in the scope; without a sector or
    shift-kind filter, from the span rows this worker keeps while they hold."""
    if not scope.whole_organisations:
        return area_amounts(session, RollupCell, scope.where(RollupCell), RollupCell.cell)
    sums = spans.cell_sums(session, period_spans(scope.start, scope.end), scope.organisation_id)
    return AreaSums(sums.cells, reduced_keys(sums.measures[:, _SPAN_AMOUNTS]))


# The hexagon maps a worker publishes ahead for those periods: the API's default
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


def warm_spans(
    session: Session, spans: SpanBlocks, days: FilteredSpans, today: date
) -> tuple[int, int]:
    """Read ahead the whole area's map span rows and filtered stats' day rows of the
    ``warm_periods``, so that a worker's first map or filtered summary of one of them
    reads only what changed since; the number of map spans and of day spans read.
    Nothing is answered or logged from them, so nothing is audited."""
    kept_days = [kept for kept in (days.counters, days.people) if kept.max_rows > 0]
    maps_before = spans.spans_read
    days_before = sum(kept.spans_read for kept in kept_days)
    with session.begin():
        for period in warm_periods(today):
            if spans.max_rows > 0:
                spans.cell_sums(session, period_spans(period.start, period.end), None)
            for kept in kept_days:
                kept.day_sums(session, period.start, period.end, None)
    return (
        spans.spans_read - maps_before,
        sum(kept.spans_read for kept in kept_days) - days_before,
    )


def publish_ahead(
    session: Session, settings: Settings, maps: PublishedMaps, days: FilteredSpans, today: date
) -> int:
    """Publish ahead the coordinators' whole-area maps of the ``warm_periods``, hexagons
    at each of ``WARM_MAP_RESOLUTIONS`` and sectors, from the rows ``warm_spans`` read:
    a worker's first such map is then written again only where a sync changed it, and
    the hexagons' outlines are serialised before anyone waits for them. The number of
    maps published. As in ``warm_spans``, nothing is answered, so nothing is audited;
    the maps are those a coordinator's request would publish, under the same keys."""
    if maps.max_features == 0:
        return 0
    # Without kept rows a map would read its whole period from the database: only what
    # was read ahead is published ahead.
    resolutions = [
        resolution
        for resolution in WARM_MAP_RESOLUTIONS
        if resolution <= settings.h3_resolution and maps.spans.max_rows > 0
    ]
    sectors = days.counters.max_rows > 0
    warm = warm_periods(today)
    gate = disclosure.gate(settings, exact=False)
    with session.begin():
        # The dashboard's default last: the maps least recently published leave first.
        for period in reversed(warm):
            scope = Scope(period.start, period.end, None, None, None, None, period.name)
            for resolution in resolutions:
                publish_hexagon_map(session, settings, maps, gate, scope, resolution)
            if sectors:
                publish_sector_map(session, maps, days, gate, scope)
    return len(warm) * (len(resolutions) + sectors)


# The key columns of the fine day tables' areas (``span_blocks.SECTOR_DAYS``, ``PEOPLE_DAYS``).
COUNTER_SECTOR, COUNTER_KIND, COUNTER_METRIC = range(3)
PERSON_REF, PERSON_SECTOR, PERSON_KIND = range(3)


def _filtered(
    keyed: KeyedAreas, size: int, sector_column: int, kind_column: int, scope: Scope
) -> npt.NDArray[np.bool_]:
    """Which of the first ``size`` areas fall in the scope's sector and shift kind."""
    chosen = np.ones(size, dtype=np.bool_)
    for column, wanted in ((sector_column, scope.sector), (kind_column, scope.shift_kind)):
        if wanted is not None:
            chosen &= keyed.codes[column][:size] == keyed.code(column, wanted)
    return chosen


def distinct_people(
    session: Session, scope: Scope, days: FilteredSpans, current: Generations | None = None
) -> Sum:
    """Distinct person refs met in the scope, and the encounters that carried one,
    from the person-days this worker keeps (any filter)."""
    total, _spans, keyed = days.people.day_sums(
        session, scope.start, scope.end, scope.organisation_id, current
    )
    met = _filtered(keyed, len(total), PERSON_SECTOR, PERSON_KIND, scope) & (total[:, 0] > 0)
    refs = keyed.codes[PERSON_REF][: len(total)][met]
    # Ref codes are small integers: counting them beats sorting them.
    present = np.flatnonzero(np.bincount(refs, minlength=1))
    key = int(days.people.first_keys()[present].sum()) & KEY_MASK
    return Sum(len(present), int(total[met, 0].sum()), key)


class KeptCounters(NamedTuple):
    """The sector counters this worker keeps, summed over a scope's period by area; the
    rows of each day; what each area number stands for; and which areas the scope's
    sector and shift-kind filters keep."""

    total: Sums
    spans: dict[SpanKey, SpanRows]
    keyed: KeyedAreas
    chosen: npt.NDArray[np.bool_]
    kept: DaySpans

    def by_metric(self) -> dict[str, Sum]:
        """The chosen areas' counters summed per metric, for the metrics they hold."""
        metrics = self.keyed.values[COUNTER_METRIC]
        sums = np.zeros((len(metrics), AMOUNTS), dtype=np.int64)
        codes = self.keyed.codes[COUNTER_METRIC][: len(self.total)]
        np.add.at(sums, codes[self.chosen], self.total[self.chosen])
        sums[:, 2] &= KEY_MASK
        # A stored counter's basis is at least one: a metric of basis 0 has no row left.
        return {
            metrics[code]: Sum(value, basis, key)
            for code, (value, basis, key) in enumerate(sums.tolist())
            if basis
        }

    def by_sector(self) -> AreaSums:
        """The map's measures per sector with any, sorted, like ``area_amounts``."""
        size = len(self.total)
        slots = self._slots(MAP_METRICS)
        sectors = self.keyed.codes[COUNTER_SECTOR][:size]
        amounts = np.zeros(
            (len(self.keyed.values[COUNTER_SECTOR]), len(MAP_METRICS), AMOUNTS), np.int64
        )
        chosen = np.flatnonzero(self.chosen & (slots >= 0) & (self.total[:, 1] > 0))
        np.add.at(amounts, (sectors[chosen], slots[chosen]), self.total[chosen])
        names = self.keyed.values[COUNTER_SECTOR]
        present = sorted(
            (names[code], code) for code in np.flatnonzero(amounts[:, :, 1].sum(axis=1)).tolist()
        )
        rows = [code for _name, code in present]
        return AreaSums(
            [name for name, _code in present],
            reduced_keys(amounts[rows].reshape(len(rows), AMOUNTS * len(MAP_METRICS))),
        )

    def by_bucket(self, metrics: Sequence[str], bucket: str) -> dict[tuple[date, str], Sum]:
        """The chosen areas' ``metrics`` summed per ``bucket`` (day, week, month), by
        the bucket's first day, as ``counter_sums`` by bucket."""
        slots = np.where(self.chosen, self._slots(metrics), -1)
        # The few areas asked for (a sector's shift kinds times the metrics), picked
        # from each day's rows: a year is a thousand days or more.
        wanted = np.flatnonzero(slots >= 0).astype(np.int32)
        found = self.kept.picked(wanted, self.spans)
        days = [day for _span, day, _organisation in self.spans]
        starts = {day: bucket_start(day, bucket) for day in set(days)}
        buckets = sorted(set(starts.values()))
        place = {start: index for index, start in enumerate(buckets)}
        # The spans by bucket, then each bucket's run summed at once.
        in_bucket = np.array([place[starts[day]] for day in days], dtype=np.intp)
        order = np.argsort(in_bucket, kind="stable")
        firsts = np.searchsorted(in_bucket[order], np.arange(len(buckets)))
        per_area = np.add.reduceat(found[order], firsts, axis=0) if len(buckets) else found[:0]
        per_metric = np.zeros((len(wanted), len(metrics)), dtype=np.int64)
        per_metric[np.arange(len(wanted)), slots[wanted]] = 1
        amounts = np.einsum("bwm,ws->bsm", per_area, per_metric)
        amounts[:, :, 2] &= KEY_MASK
        return {
            (start, metric): Sum(value, basis, key)
            for start, per_bucket in zip(buckets, amounts.tolist(), strict=True)
            for metric, (value, basis, key) in zip(metrics, per_bucket, strict=True)
            if basis
        }

    def _slots(self, metrics: Sequence[str]) -> npt.NDArray[np.intp]:
        """Each area's place in ``metrics``, or -1 when its metric is not one of them."""
        places = np.full(len(self.keyed.values[COUNTER_METRIC]), -1, dtype=np.intp)
        for slot, metric in enumerate(metrics):
            code = self.keyed.code(COUNTER_METRIC, metric)
            if code >= 0:
                places[code] = slot
        codes: npt.NDArray[np.intp] = places[self.keyed.codes[COUNTER_METRIC][: len(self.total)]]
        return codes


def kept_counters(
    session: Session, scope: Scope, days: FilteredSpans, current: Generations | None = None
) -> KeptCounters:
    """The scope's sector counters from the day rows this worker keeps (``current``:
    the days' generations, when already read)."""
    total, spans, keyed = days.counters.day_sums(
        session, scope.start, scope.end, scope.organisation_id, current
    )
    chosen = _filtered(keyed, len(total), COUNTER_SECTOR, COUNTER_KIND, scope)
    return KeptCounters(total, spans, keyed, chosen, days.counters)


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


# Summary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """Every counter of a scope, summed, plus the distinct-people count."""

    sums: dict[str, Sum]
    people: Sum
    kit_codes: list[str]

    def get(self, metric: str) -> Sum:
        return self.sums.get(metric, Sum(0, 0, 0))


def totals(session: Session, scope: Scope, days: FilteredSpans) -> Totals:
    if scope.whole_organisations:
        rows = counter_sums(session, RollupTotal, scope.spans_where(RollupTotal))
        sums = {key[0]: value for key, value in rows.items()}
        identified = sums.get("identified", Sum(0, 0, 0))
        met, key = distinct_people_met(session, scope)
        people = Sum(met, identified.value, key)
    else:
        # One read of the days' generations for both tables.
        current = days.generations.current(
            session, [("day", scope.start, scope.end)], scope.organisation_id
        )
        sums = kept_counters(session, scope, days, current).by_metric()
        people = distinct_people(session, scope, days, current)
    seen_kits = [m.removeprefix("kit:") for m in sums if m.startswith("kit:")]
    return Totals(sums, people, kit_codes(session, seen_kits))


def summary_sums(data: Totals) -> dict[str, Sum]:
    """Every figure of the summary by its path, as summed."""
    figures: dict[str, Sum] = {
        name: data.get(metric)
        for name, metric in (
            ("encounters", "encounters"),
            ("people", "people"),
            ("first_contacts", "first_contacts"),
            ("single_contacts", "single"),
            ("kits_total", "kits"),
            ("referrals_total", "referrals"),
        )
    }
    figures["distinct_people"] = data.people
    for prefix, metric_prefix, codes in (
        ("age_bands", "age", AGE_BANDS),
        ("genders", "gender", GENDERS),
        ("kits", "kit", data.kit_codes),
        ("services", "service", SERVICES),
        ("referrals_by_destination", "referral_to", REFERRAL_DESTINATIONS),
        ("referrals_by_status", "referral_status", REFERRAL_STATUSES),
    ):
        for code in codes:
            figures[f"{prefix}.{code}"] = data.get(f"{metric_prefix}:{code}")
    for to in REFERRAL_DESTINATIONS:
        for status in REFERRAL_STATUSES:
            figures[f"referrals.{to}.{status}"] = data.get(f"referral:{to}:{status}")
    return figures


def published_figures(
    gate: Gate, figures: dict[str, Sum]
) -> tuple[dict[str, int | None], list[str]]:
    """Each figure as ``gate`` publishes it (``None`` when masked), and the masked paths."""
    paths = list(figures)
    amounts = np.array([figures[path] for path in paths], dtype=np.int64).reshape(len(paths), 3)
    published, masked = gate.publish(amounts[:, 0], amounts[:, 1], amounts[:, 2])
    values = {
        path: None if hidden else value
        for path, value, hidden in zip(paths, published.tolist(), masked.tolist(), strict=True)
    }
    return values, sorted(
        path for path, hidden in zip(paths, masked.tolist(), strict=True) if hidden
    )


def summary_counts(values: dict[str, int | None], kit_codes: Sequence[str]) -> dict[str, Any]:
    """The published summary counts, nested the way the contract shapes them."""

    def group(prefix: str, codes: Sequence[str]) -> dict[str, int | None]:
        return {code: values[f"{prefix}.{code}"] for code in codes}

    return {
        "encounters": values["encounters"],
        "people": values["people"],
        "distinct_people": values["distinct_people"],
        "first_contacts": values["first_contacts"],
        "single_contacts": values["single_contacts"],
        "women": values["genders.f"],
        "genders": group("genders", GENDERS),
        "age_bands": group("age_bands", AGE_BANDS),
        "kits_total": values["kits_total"],
        "kits": group("kits", kit_codes),
        "services": group("services", SERVICES),
        "referrals_total": values["referrals_total"],
        "referrals_by_destination": group("referrals_by_destination", REFERRAL_DESTINATIONS),
        "referrals_by_status": group("referrals_by_status", REFERRAL_STATUSES),
        "referrals": {
            to: {status: values[f"referrals.{to}.{status}"] for status in REFERRAL_STATUSES}
            for to in REFERRAL_DESTINATIONS
        },
    }


def suppressed_paths(suppressed: list[str]) -> list[str]:
    # The summary publishes women once, under genders.f: name it as the reader sees it.
    return ["women" if path == "genders.f" else path for path in suppressed]


def summary(
    session: Session, ctx: CallContext, settings: Settings, days: FilteredSpans, query: StatsQuery
) -> dict[str, Any]:
    principal = _caller(ctx)
    with session.begin():
        scope = resolve_scope(session, principal, query)
        data = totals(session, scope, days)
        gate = publication_gate(settings, principal)
        values, suppressed = published_figures(gate, summary_sums(data))
        audit.record(session, ctx, "stats.summary", params=scope.params(), records=len(values))
    return {
        "filters": scope.params(),
        "k": settings.small_cell_k,
        "protection": gate.protection(),
        "counts": summary_counts(values, data.kit_codes),
        "suppressed": suppressed_paths(suppressed),
    }


def _caller(ctx: CallContext) -> Principal:
    assert ctx.principal is not None
    return ctx.principal


def publication_gate(settings: Settings, principal: Principal) -> Gate:
    """Exact figures for an association's own org_admin (its scope is always its own
    association), perturbed ones for everyone else."""
    return disclosure.gate(settings, exact=principal.role == Role.ORG_ADMIN)


# Time series -----------------------------------------------------------------------


def bucket_start(day: date, bucket: str) -> date:
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def timeseries(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    days: FilteredSpans,
    query: StatsQuery,
    bucket: str | None,
) -> dict[str, Any]:
    principal = _caller(ctx)
    gate = publication_gate(settings, principal)
    today = paris_today()
    bucket = bucket or ("day" if gate.exact else "week")
    if not gate.exact:
        if bucket == "day":
            raise query_error(
                "bucket",
                "Figures beyond your own association's are published by week or month.",
            )
        if query.period is None and query.start is None and query.end is None:
            query = replace(query, period=_default_series_year(today))
    with session.begin():
        scope = resolve_scope(session, principal, query, today=today)
        if not gate.exact:
            scope = _whole_buckets(scope, bucket, today)
        if scope.whole_organisations:
            sums = counter_sums(
                session,
                RollupTotal,
                scope.spans_where(RollupTotal, BUCKET_UNITS[bucket]),
                by=(RollupTotal.start,),
                metrics=SERIES_MEASURES.values(),
            )
        else:
            sums = kept_counters(session, scope, days).by_bucket(
                list(SERIES_MEASURES.values()), bucket
            )
        starts = sorted({bucket_start(day, bucket) for day in scope.days()})
        per_bucket: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for (day, metric), amount in sums.items():
            slot = per_bucket[(bucket_start(day, bucket), metric)]
            slot[0] += amount.value
            slot[1] += amount.basis
            slot[2] = (slot[2] + amount.key) & KEY_MASK
        published, suppressed = published_figures(
            gate,
            {
                f"{start.isoformat()}.{name}": Sum(*per_bucket.get((start, metric), (0, 0, 0)))
                for start in starts
                for name, metric in SERIES_MEASURES.items()
            },
        )
        audit.record(
            session,
            ctx,
            "stats.timeseries",
            params={**scope.params(), "bucket": bucket},
            records=len(published),
        )
    return {
        "filters": {**scope.params(), "bucket": bucket},
        "k": settings.small_cell_k,
        "protection": gate.protection(),
        "series": [
            {
                "start": max(start, scope.start),
                "end": min(_bucket_end(start, bucket), scope.end),
                "counts": {
                    name: published[f"{start.isoformat()}.{name}"] for name in SERIES_MEASURES
                },
            }
            for start in starts
        ],
        "suppressed": suppressed,
    }


def _default_series_year(today: date) -> str:
    """A protected series' default period: this year as far as it is published, or
    last year while no month of this one has ended."""
    return str(today.year if today.month > 1 else today.year - 1)


def _whole_buckets(scope: Scope, bucket: str, today: date) -> Scope:
    """The scope widened to the whole weeks or months of the grid it touches, the last
    one as far as it is published: each bucket of a protected series is then the same
    cell as that week's or month's summary, and answers the same."""
    first = periods.covering(scope.start, bucket)
    last = periods.covering(scope.end, bucket)
    end = periods.published_end(last, today) or last.start - timedelta(days=1)
    return replace(scope, start=first.start, end=end)


def _bucket_end(start: date, bucket: str) -> date:
    if bucket == "week":
        return start + timedelta(days=6)
    if bucket == "month":
        following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return following - timedelta(days=1)
    return start


# Maps ------------------------------------------------------------------------------


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


def area_figures(gate: Gate, sums: AreaSums) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each area's measures as ``gate`` publishes them, and which are masked: every
    measure of an area whose encounters are masked is masked with them."""
    amounts = sums.amounts.reshape(len(sums.areas), len(MAP_METRICS), AMOUNTS)
    values, masked = gate.publish(amounts[:, :, 0], amounts[:, :, 1], amounts[:, :, 2])
    masked |= masked[:, [MAP_METRICS.index("encounters")]]
    values[masked] = 0
    return values, masked


def map_properties(gate: Gate, sums: AreaSums) -> list[bytes]:
    """Each area's published measures (``area_figures``), written."""
    return area_properties(MAP_METRICS, "encounters", *area_figures(gate, sums))


def hexagon_map(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    maps: PublishedMaps,
    query: StatsQuery,
    resolution: int,
) -> dict[str, Any]:
    check_resolution(settings, resolution)
    principal = _caller(ctx)
    with session.begin():
        scope = resolve_scope(session, principal, query)
        filters = {**scope.params(), "resolution": resolution}
        gate = publication_gate(settings, principal)
        kept = publish_hexagon_map(session, settings, maps, gate, scope, resolution)
        audit.record(session, ctx, "stats.map", params=filters, records=kept.records)
    return feature_collection(
        kept, filters=filters, k=settings.small_cell_k, protection=gate.protection()
    )


def publish_hexagon_map(
    session: Session,
    settings: Settings,
    maps: PublishedMaps,
    gate: Gate,
    scope: Scope,
    resolution: int,
) -> PublishedMap:
    """The scope's hexagon map at ``resolution``, as kept if the counters have not
    changed since, else written again from the last version kept (``published``)."""

    def build(previous: PublishedMap | None) -> PublishedMap:
        sums = at_resolution(settings, cell_amounts(session, scope, maps.spans), resolution)
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
    return maps.publish(session, map_key("map", gate, scope, filters), build)


def feature_collection(published: PublishedMap, **members: Any) -> dict[str, Any]:
    """A map's response: ``members`` of the request's, then the published ones; its
    ``features`` are already serialised (``published.PublishedMap``)."""
    return {
        "type": "FeatureCollection",
        **members,
        **published.members,
        "features": published.features,
    }


def map_key(kind: str, gate: Gate, scope: Scope, filters: dict[str, Any]) -> tuple[Any, ...]:
    """What names a published map: its kind, whether exact, whose counts it shows, and
    its filters."""
    return (kind, gate.exact, scope.organisation_id, *sorted(filters.items()))


def sector_map(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    maps: PublishedMaps,
    days: FilteredSpans,
    query: StatsQuery,
) -> dict[str, Any]:
    principal = _caller(ctx)
    with session.begin():
        scope = resolve_scope(session, principal, query)
        gate = publication_gate(settings, principal)
        kept = publish_sector_map(session, maps, days, gate, scope)
        audit.record(session, ctx, "stats.sectors", params=scope.params(), records=kept.records)
    return feature_collection(
        kept, filters=scope.params(), k=settings.small_cell_k, protection=gate.protection()
    )


def publish_sector_map(
    session: Session, maps: PublishedMaps, days: FilteredSpans, gate: Gate, scope: Scope
) -> PublishedMap:
    """The scope's sector map, as kept if the counters have not changed since."""

    def build(_previous: PublishedMap | None) -> PublishedMap:
        sums = kept_counters(session, scope, days).by_sector().over(SECTORS)
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

    return maps.publish(session, map_key("sectors", gate, scope, scope.params()), build)
