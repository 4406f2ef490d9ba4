"""``/stats/timeseries``: the summary's headline counts per day, week or month.

Protected series are published by week or month only, each bucket the whole week or
month of the grid (the last as far as published), so that it answers the same as that
period's summary; exact ones by day too. Audited like the summary.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta
from typing import TypedDict

from sqlalchemy.orm import Session

from config import Settings
from outreach.clock import paris_today
from outreach.models import RollupTotal
from outreach.services import audit, periods
from outreach.services.context import CallContext
from outreach.services.disclosure import KEY_MASK, Protection
from outreach.services.readmodel import ReadModel
from outreach.services.stats.counters import Sum, counter_sums
from outreach.services.stats.filtered import kept_counters
from outreach.services.stats.publication import published_figures
from outreach.services.stats.scope import (
    Filters,
    Scope,
    StatsQuery,
    bucket_start,
    caller,
    publication_gate,
    query_error,
    resolve_scope,
)

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


class SeriesFilters(Filters):
    bucket: str


class SeriesPoint(TypedDict):
    """One bucket of a series: its days within the period and its published counts
    (``None`` where masked), by ``SERIES_MEASURES`` name."""

    start: date
    end: date
    counts: dict[str, int | None]


class Series(TypedDict):
    """``/stats/timeseries``'s answer, shaped like the summary's."""

    filters: SeriesFilters
    k: int
    protection: Protection
    series: list[SeriesPoint]
    suppressed: list[str]


def timeseries(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    model: ReadModel,
    query: StatsQuery,
    bucket: str | None,
) -> Series:
    principal = caller(ctx)
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
            sums = kept_counters(session, scope, model).by_bucket(
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
    return start if bucket == "day" else periods.covering(start, bucket).end
