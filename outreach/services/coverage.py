"""Which sectors a team covered, per Paris day and time slot, and which nobody did.

A shift covers a sector during each slot its time span overlaps when the sector was
planned for it, never because it met someone there. This reads shifts, never
encounters. It counts shifts, not people, so nothing here goes through the
publication gate: team presence in a public place is not about anyone met.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings
from outreach.clock import PARIS
from outreach.models import Shift
from outreach.services import audit
from outreach.services.context import CallContext
from outreach.services.stats.scope import Filters, Scope, StatsQuery, caller, resolve_scope
from schemas.vocabulary import OUTSIDE_SECTORS, SECTORS


@dataclass(frozen=True)
class Slot:
    code: str
    start_hour: int
    end_hour: int


SLOTS = (
    Slot("night", 0, 6),
    Slot("morning", 6, 12),
    Slot("afternoon", 12, 18),
    Slot("evening", 18, 24),
)
MAX_COVERAGE_DAYS = 92
NAMED_SECTORS = tuple(s for s in SECTORS if s != OUTSIDE_SECTORS)

# A slot's hours, "HH:00" to "HH:00".
SlotHours = TypedDict("SlotHours", {"code": str, "from": str, "to": str})


class DayCoverage(TypedDict):
    """A sector's day: whether any shift covered it, how many, and how many per slot."""

    day: date
    covered: bool
    shifts: int
    slots: dict[str, int]


class WeekBelowTarget(TypedDict):
    week: str
    covered_days: int
    required_days: int


class SectorCoverage(TypedDict):
    sector: str
    covered_days: int
    days: list[DayCoverage]
    weeks_below_target: list[WeekBelowTarget]


class Uncovered(TypedDict):
    sector: str
    day: date


class Coverage(TypedDict):
    """``/stats/coverage``'s answer: per sector and day the shifts present, and the gaps."""

    filters: Filters
    slots: list[SlotHours]
    target_days_per_week: int
    sectors: list[SectorCoverage]
    uncovered: list[Uncovered]


def _slot_bounds(day: date, slot: Slot) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(slot.start_hour), PARIS)
    end_day = day + timedelta(days=1) if slot.end_hour == 24 else day
    end = datetime.combine(end_day, time(slot.end_hour % 24), PARIS)
    return start, end


def slots_overlapped(started_at: datetime, ended_at: datetime) -> list[tuple[date, str]]:
    """The Paris (day, slot) pairs a time span overlaps, DST changes included."""
    found = []
    day = started_at.astimezone(PARIS).date()
    last_day = ended_at.astimezone(PARIS).date()
    while day <= last_day:
        for slot in SLOTS:
            start, end = _slot_bounds(day, slot)
            if started_at < end and ended_at > start:
                found.append((day, slot.code))
        day += timedelta(days=1)
    return found


# A shift is known by its association and its id: two associations may hold one id.
ShiftKey = tuple[uuid.UUID, uuid.UUID]


def _shifts(session: Session, scope: Scope) -> list[tuple[ShiftKey, datetime, datetime, set[str]]]:
    window_start = datetime.combine(scope.start, time(0), PARIS)
    window_end = datetime.combine(scope.end + timedelta(days=1), time(0), PARIS)
    conditions = [Shift.started_at < window_end, Shift.ended_at > window_start]
    if scope.organisation_id is not None:
        conditions.append(Shift.organisation_id == scope.organisation_id)
    if scope.shift_kind is not None:
        conditions.append(Shift.kind == scope.shift_kind)
    # The sectors a shift planned, never where it met someone: coverage says where teams
    # went, and must not tell that a person was met in a sector on a day.
    rows = session.execute(
        select(
            Shift.organisation_id, Shift.id, Shift.started_at, Shift.ended_at, Shift.planned_sectors
        ).where(*conditions)
    )
    return [((org, sid), start, end, set(planned)) for org, sid, start, end, planned in rows]


def coverage(session: Session, ctx: CallContext, settings: Settings, query: StatsQuery) -> Coverage:
    principal = caller(ctx)
    with session.begin():
        # Coverage counts shifts, never people: any days, as for exact figures.
        scope = resolve_scope(
            session, principal, query, max_days=MAX_COVERAGE_DAYS, free_dates=True
        )
        sectors = [scope.sector] if scope.sector in NAMED_SECTORS else list(NAMED_SECTORS)
        if scope.sector == OUTSIDE_SECTORS:
            sectors = []
        presence: dict[tuple[str, date, str], set[ShiftKey]] = defaultdict(set)
        for shift, started_at, ended_at, shift_sectors in _shifts(session, scope):
            for day, slot in slots_overlapped(started_at, ended_at):
                for sector in shift_sectors.intersection(sectors):
                    presence[(sector, day, slot)].add(shift)
        days = scope.days()
        grid = [
            _sector_row(sector, days, presence, settings.coverage_target_days) for sector in sectors
        ]
        audit.record(
            session,
            ctx,
            "stats.coverage",
            params=scope.params(),
            records=len(sectors) * len(days),
        )
    return {
        "filters": scope.params(),
        "slots": [
            {"code": s.code, "from": f"{s.start_hour:02d}:00", "to": f"{s.end_hour:02d}:00"}
            for s in SLOTS
        ],
        "target_days_per_week": settings.coverage_target_days,
        "sectors": grid,
        "uncovered": [
            {"sector": row["sector"], "day": cell["day"]}
            for row in grid
            for cell in row["days"]
            if not cell["covered"]
        ],
    }


def _sector_row(
    sector: str,
    days: list[date],
    presence: dict[tuple[str, date, str], set[ShiftKey]],
    target: int,
) -> SectorCoverage:
    cells: list[DayCoverage] = []
    for day in days:
        slots = {slot.code: len(presence.get((sector, day, slot.code), ())) for slot in SLOTS}
        shifts = set().union(*(presence.get((sector, day, s.code), set()) for s in SLOTS))
        cells.append({"day": day, "covered": bool(shifts), "shifts": len(shifts), "slots": slots})
    covered_by_week: dict[str, list[bool]] = defaultdict(list)
    for cell in cells:
        year, number, _weekday = cell["day"].isocalendar()
        covered_by_week[f"{year}-W{number:02d}"].append(cell["covered"])
    below: list[WeekBelowTarget] = []
    for week, covered in covered_by_week.items():
        # A week cut by the period's edges asks for no more days than it has.
        required = min(target, len(covered))
        if sum(covered) < required:
            below.append({"week": week, "covered_days": sum(covered), "required_days": required})
    return {
        "sector": sector,
        "covered_days": sum(cell["covered"] for cell in cells),
        "days": cells,
        "weeks_below_target": below,
    }
