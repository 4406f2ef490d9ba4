"""``/stats/summary``: every counter of a scope, summed and published.

Without a sector or shift-kind filter the totals come from the per-organisation rows
(``counters``), else from the kept day rows (``filtered``). The request is audited
(action, filters, number of counts) in the transaction that reads, so the event is
committed before the response exists. Reports publish the same totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from sqlalchemy.orm import Session

from config import Settings
from outreach.models import RollupTotal
from outreach.services import audit
from outreach.services.context import CallContext
from outreach.services.disclosure import Protection
from outreach.services.readmodel import ReadModel
from outreach.services.stats.counters import Sum, counter_sums, distinct_people_met, kit_codes
from outreach.services.stats.filtered import distinct_people, kept_counters
from outreach.services.stats.publication import published_figures
from outreach.services.stats.scope import (
    Filters,
    Scope,
    StatsQuery,
    caller,
    publication_gate,
    resolve_scope,
)
from schemas.vocabulary import (
    AGE_BANDS,
    GENDERS,
    REFERRAL_DESTINATIONS,
    REFERRAL_STATUSES,
    SERVICES,
)

# A published count: ``None`` where the gate masks it.
Count = int | None


class SummaryCounts(TypedDict):
    """The published summary counts, nested the way the contract shapes them
    (``schemas.stats.SummaryCountsSchema``); each group is keyed by vocabulary code."""

    encounters: Count
    people: Count
    distinct_people: Count
    first_contacts: Count
    single_contacts: Count
    women: Count
    genders: dict[str, Count]
    age_bands: dict[str, Count]
    kits_total: Count
    kits: dict[str, Count]
    services: dict[str, Count]
    referrals_total: Count
    referrals_by_destination: dict[str, Count]
    referrals_by_status: dict[str, Count]
    referrals: dict[str, dict[str, Count]]


class Summary(TypedDict):
    """``/stats/summary``'s answer: its filters, the gate's protection, the counts and
    the paths of those masked."""

    filters: Filters
    k: int
    protection: Protection
    counts: SummaryCounts
    suppressed: list[str]


@dataclass(frozen=True)
class Totals:
    """Every counter of a scope, summed, plus the distinct-people count."""

    sums: dict[str, Sum]
    people: Sum
    kit_codes: list[str]

    def get(self, metric: str) -> Sum:
        return self.sums.get(metric, Sum(0, 0, 0))


def totals(session: Session, scope: Scope, model: ReadModel) -> Totals:
    if scope.whole_organisations:
        rows = counter_sums(session, RollupTotal, scope.spans_where(RollupTotal))
        sums = {key[0]: value for key, value in rows.items()}
        identified = sums.get("identified", Sum(0, 0, 0))
        met, key = distinct_people_met(session, scope)
        people = Sum(met, identified.value, key)
    else:
        # One read of the days' generations for both tables.
        current = model.day_generations(session, scope.start, scope.end, scope.organisation_id)
        sums = kept_counters(session, scope, model, current).by_metric()
        people = distinct_people(session, scope, model, current)
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


def summary_counts(values: dict[str, Count], kit_codes: Sequence[str]) -> SummaryCounts:
    """The published summary counts, each from its path in ``values``."""

    def group(prefix: str, codes: Sequence[str]) -> dict[str, Count]:
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
    session: Session, ctx: CallContext, settings: Settings, model: ReadModel, query: StatsQuery
) -> Summary:
    principal = caller(ctx)
    with session.begin():
        scope = resolve_scope(session, principal, query)
        data = totals(session, scope, model)
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
