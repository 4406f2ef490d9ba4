"""What a stats request covers, and who asks.

A request names a period of the grid or days, and filters (sector, organisation,
shift kind); ``resolve_scope`` checks them against what the caller may see and
answers the ``Scope`` every read runs with. Protected figures (anyone but an
association's own org_admin) are published for periods of the grid only. Bad filters
answer a 422 naming the query parameter at fault (``query_error``) before anything is
read.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypedDict

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from config import Settings
from outreach.clock import paris_today
from outreach.models import (
    Organisation,
    OrgKind,
    Role,
    RollupCell,
    RollupPerson,
    RollupSector,
    RollupTotal,
)
from outreach.services import disclosure, periods
from outreach.services.context import CallContext, Principal
from outreach.services.disclosure import Gate
from outreach.services.errors import Invalid
from outreach.services.geo import cell_parent

DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 3 * 366


# The filters an answer says it ran with (``schemas.stats.FiltersSchema``), days as ISO
# dates. "from" is a keyword: the functional form names it.
Filters = TypedDict(
    "Filters",
    {
        "period": str | None,
        "from": str,
        "to": str,
        "sector": str | None,
        "organisation": str | None,
        "shift_kind": str | None,
    },
)
# A run of days, first and last included.
DaySpan = TypedDict("DaySpan", {"from": date, "to": date})
# A grid period one can ask for now, with the days it answers and whether that is all.
OfferedPeriod = TypedDict(
    "OfferedPeriod", {"period": str, "kind": str, "from": date, "to": date, "complete": bool}
)


class OfferedPeriods(TypedDict):
    """``/stats/periods``: the grid periods one can ask for now, and the default."""

    default: str
    max_versions_covering_a_day: int
    periods: list[OfferedPeriod]


class OrganisationFilter(TypedDict):
    """Whose counts a scope reads: one association's (slug and id), or every one."""

    organisation: str | None
    organisation_id: uuid.UUID | None


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

    def params(self) -> Filters:
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
    first = bucket_start(start, unit)
    if first < start:
        first = bucket_start(first + timedelta(days=32 if unit == "month" else 7), unit)
    after = bucket_start(end + timedelta(days=1), unit)
    if first >= after:
        return period_spans(start, end, finer)
    spans: list[tuple[str, date, date]] = []
    if start < first:
        spans += period_spans(start, first - timedelta(days=1), finer)
    spans.append((unit, first, bucket_start(after - timedelta(days=1), unit)))
    if after <= end:
        spans += period_spans(after, end, finer)
    return spans


def bucket_start(day: date, bucket: str) -> date:
    """The first day of the week (Monday) or month ``day`` falls in, or ``day`` itself
    for a ``bucket`` of days."""
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


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


def offered_periods(ctx: CallContext, settings: Settings) -> OfferedPeriods:
    """The grid periods the caller can ask for now, each with the days it answers, and
    the default: the calendar of the grid, no figure, so not audited."""
    principal = caller(ctx)
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
) -> OrganisationFilter:
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


def caller(ctx: CallContext) -> Principal:
    assert ctx.principal is not None
    return ctx.principal


def publication_gate(settings: Settings, principal: Principal) -> Gate:
    """Exact figures for an association's own org_admin (its scope is always its own
    association), perturbed ones for everyone else."""
    return disclosure.gate(settings, exact=principal.role == Role.ORG_ADMIN)
