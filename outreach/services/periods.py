"""The fixed grid of periods protected figures are published for.

A protected request names a ``period``: an ISO week (``2026-W49``), a calendar month
(``2026-11``), a quarter (``2026-Q4``) or a year (``2026``), in Paris days. A period
that has ended is published whole. The current one is published *to date*, but only in
steps of the next finer grain, so that few distinct answers ever cover one day:

- the current week, up to yesterday;
- the current month, up to the last Sunday (the end of its last whole ISO week);
- the current quarter and year, up to the end of their last whole month.

So one day is covered, for one set of filters, by at most 7 versions of its week, 6
of its month (its Sundays and the whole month), 3 of its quarter and 12 of its year:
``MAX_VERSIONS_COVERING_A_DAY``. Differencing two versions of one period yields a
noisy figure of the finer grain, which is itself a published cell; only the week's
versions resolve single days. An association's own exact figures (org_admin) are not
protected: its periods run to today.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

PERIOD_FORMATS = "YYYY-Www (ISO week), YYYY-MM, YYYY-Qn or YYYY"
_PATTERN = re.compile(r"^(\d{4})(?:-W(\d{2})|-(\d{2})|-Q([1-4]))?$")
MAX_VERSIONS_COVERING_A_DAY = 7 + 6 + 3 + 12
EARLIEST_YEAR = 2000


@dataclass(frozen=True)
class Period:
    """A period of the grid: its name, its kind and its whole span of Paris days."""

    name: str
    kind: str
    start: date
    end: date


def parse(text: str) -> Period:
    """The period ``text`` names; ``ValueError`` with a message a person can act on."""
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(f"A period is {PERIOD_FORMATS}.")
    year = int(match[1])
    if not EARLIEST_YEAR <= year <= 9998:
        raise ValueError(f"A period's year is from {EARLIEST_YEAR} to 9998.")
    if match[2] is not None:
        try:
            start = date.fromisocalendar(year, int(match[2]), 1)
        except ValueError:
            raise ValueError(f"{year} has no ISO week {match[2]}.") from None
        return Period(text, "week", start, start + timedelta(days=6))
    if match[3] is not None:
        month = int(match[3])
        if not 1 <= month <= 12:
            raise ValueError("A month is 01 to 12.")
        return month_period(date(year, month, 1))
    if match[4] is not None:
        first = 3 * (int(match[4]) - 1) + 1
        return Period(text, "quarter", date(year, first, 1), _month_end(date(year, first + 2, 1)))
    return Period(text, "year", date(year, 1, 1), date(year, 12, 31))


def week_period(day: date) -> Period:
    """The ISO week ``day`` falls in."""
    year, week, _weekday = day.isocalendar()
    start = day - timedelta(days=day.weekday())
    return Period(f"{year}-W{week:02d}", "week", start, start + timedelta(days=6))


def month_period(day: date) -> Period:
    """The calendar month ``day`` falls in."""
    start = day.replace(day=1)
    return Period(f"{start.year}-{start.month:02d}", "month", start, _month_end(start))


def last_whole_week(today: date) -> Period:
    """The last ISO week that has ended: what protected views show by default."""
    return week_period(today - timedelta(days=today.weekday() + 1))


def published_end(period: Period, today: date) -> date | None:
    """The last day of ``period`` published to protected readers on ``today``, or
    ``None`` while nothing of it is."""
    if period.end < today:
        return period.end
    if period.kind == "week":
        cut = today - timedelta(days=1)
    elif period.kind == "month":
        cut = today - timedelta(days=today.weekday() + 1)
    else:
        cut = today.replace(day=1) - timedelta(days=1)
    return cut if cut >= period.start else None


def covering(day: date, bucket: str) -> Period:
    """The week or month of the grid that ``day`` falls in."""
    return week_period(day) if bucket == "week" else month_period(day)


def _month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def offered(today: date, exact: bool) -> list[tuple[Period, date]]:
    """The recent periods of the grid with the last day each answers on ``today``:
    eight weeks, twelve months, four quarters and three years back from the current
    ones; protected readers only those with something published (``published_end``)."""
    candidates: list[Period] = []
    monday = today - timedelta(days=today.weekday())
    candidates += [week_period(monday - timedelta(weeks=back)) for back in range(9)]
    first = today.replace(day=1)
    for _ in range(13):
        candidates.append(month_period(first))
        first = (first - timedelta(days=1)).replace(day=1)
    quarter = (today.month - 1) // 3 + 1
    year = today.year
    for _ in range(5):
        candidates.append(parse(f"{year}-Q{quarter}"))
        quarter, year = (quarter - 1, year) if quarter > 1 else (4, year - 1)
    candidates += [parse(str(today.year - back)) for back in range(3)]
    answered = []
    for period in candidates:
        end = min(period.end, today) if exact else published_end(period, today)
        if end is not None:
            answered.append((period, end))
    return answered
