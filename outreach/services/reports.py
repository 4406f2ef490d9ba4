"""The annual activity report, in the shape of the CAARUD standard report.

One association (an org_admin's own) or all of them together (coordinator,
auditor): contacts, people, distinct people, women, first contacts, age bands,
material handed out, services, referrals by destination and status, and the
shifts with their hours in the field. Counts come from the rollups and go through
the same publication gate as the summary; shifts are team activity, not people, and are
published as they are. ``render_csv`` writes the French spreadsheet version.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings
from outreach.clock import PARIS, paris_today
from outreach.models import Kit, Shift
from outreach.services import audit
from outreach.services.context import CallContext
from outreach.services.disclosure import Protection
from outreach.services.readmodel import ReadModel
from outreach.services.stats.publication import published_figures
from outreach.services.stats.scope import (
    DaySpan,
    Scope,
    StatsQuery,
    caller,
    publication_gate,
    query_error,
    resolve_scope,
)
from outreach.services.stats.summary import (
    SummaryCounts,
    summary_counts,
    summary_sums,
    suppressed_paths,
    totals,
)
from schemas.vocabulary import (
    AGE_BANDS,
    GENDERS,
    REFERRAL_DESTINATIONS,
    REFERRAL_STATUSES,
    SERVICES,
    SHIFT_KINDS,
    vocabularies,
)

DISTINCT_PEOPLE_METHOD = (
    "Exact count of distinct person refs (keyed hashes) among contacts that carried one; "
    "contacts without a ref are not counted, and a person given two refs counts twice. "
    "The counting itself has no error."
)
WOMEN_SHARE_METHOD = "Women among one-person contacts whose gender was recorded."


class ReportCounts(SummaryCounts):
    # Women among one-person contacts whose gender was recorded, to three decimals.
    women_share: float | None


class ShiftTotals(TypedDict):
    shifts: int
    hours: float


class ReportShifts(TypedDict):
    """The year's shifts and hours in the field, per shift kind and in all."""

    by_kind: dict[str, ShiftTotals]
    shifts: int
    hours: float


class ReportMethod(TypedDict):
    distinct_people: str
    distinct_people_error: int
    women_share: str
    suppression: str


class ReportBody(TypedDict):
    """``/reports/activity``'s answer (``schemas.stats.ActivityReportSchema``)."""

    year: int
    organisation: str | None
    period: DaySpan
    k: int
    protection: Protection
    counts: ReportCounts
    shifts: ReportShifts
    suppressed: list[str]
    method: ReportMethod


@dataclass(frozen=True)
class ActivityReport:
    body: ReportBody
    kit_labels: dict[str, str]


def activity_report(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    model: ReadModel,
    year: int,
    organisation: str | None,
    output: str,
) -> ActivityReport:
    principal = caller(ctx)
    if year > paris_today().year:
        raise query_error("year", "That year has not begun.")
    query = StatsQuery(period=str(year), organisation=organisation)
    with session.begin():
        scope = resolve_scope(session, principal, query)
        data = totals(session, scope, model)
        gate = publication_gate(settings, principal)
        published, suppressed = published_figures(gate, summary_sums(data))
        shifts = _shifts(session, scope, year)
        kit_labels = dict(session.execute(select(Kit.code, Kit.label)).all())
        audit.record(
            session,
            ctx,
            "reports.activity",
            params={"year": year, "organisation": scope.organisation, "format": output},
            records=len(published),
        )
    counts: ReportCounts = {
        **summary_counts(published, data.kit_codes),
        "women_share": _women_share(published),
    }
    body: ReportBody = {
        "year": year,
        "organisation": scope.organisation,
        "period": {"from": scope.start, "to": scope.end},
        "k": settings.small_cell_k,
        "protection": gate.protection(),
        "counts": counts,
        "shifts": shifts,
        "suppressed": suppressed_paths(suppressed),
        "method": {
            "distinct_people": DISTINCT_PEOPLE_METHOD,
            "distinct_people_error": 0,
            "women_share": WOMEN_SHARE_METHOD,
            "suppression": (
                f"Counts based on 1 to {settings.small_cell_k - 1} encounters are masked "
                "(null)."
                + (
                    ""
                    if gate.exact
                    else " Every other count carries a small consistent noise (cell key "
                    f"method, at most {gate.protection()['max_deviation']} either way): "
                    "parts may not add up to totals."
                )
            ),
        },
    }
    return ActivityReport(body=body, kit_labels=kit_labels)


def _women_share(published: dict[str, int | None]) -> float | None:
    women = published["genders.f"]
    recorded = published["single_contacts"]
    unknown = published["genders.unknown"]
    if women is None or recorded is None or unknown is None or recorded - unknown <= 0:
        return None
    return round(women / (recorded - unknown), 3)


def _shifts(session: Session, scope: Scope, year: int) -> ReportShifts:
    conditions = [
        Shift.started_at >= datetime.combine(date(year, 1, 1), time(0), PARIS),
        Shift.started_at < datetime.combine(date(year + 1, 1, 1), time(0), PARIS),
    ]
    if scope.organisation_id is not None:
        conditions.append(Shift.organisation_id == scope.organisation_id)
    by_kind: dict[str, dict[str, float]] = defaultdict(lambda: {"shifts": 0, "hours": 0.0})
    for kind, started_at, ended_at in session.execute(
        select(Shift.kind, Shift.started_at, Shift.ended_at).where(*conditions)
    ):
        by_kind[kind]["shifts"] += 1
        by_kind[kind]["hours"] += (ended_at - started_at).total_seconds() / 3600
    kinds: dict[str, ShiftTotals] = {
        kind: {"shifts": int(by_kind[kind]["shifts"]), "hours": round(by_kind[kind]["hours"], 1)}
        for kind in SHIFT_KINDS
    }
    return {
        "by_kind": kinds,
        "shifts": sum(entry["shifts"] for entry in kinds.values()),
        "hours": round(sum(entry["hours"] for entry in kinds.values()), 1),
    }


# CSV -------------------------------------------------------------------------------

# "Clé" is each row's unique key: the path of its figure in the JSON report (Code
# alone repeats: ``unknown`` is an age band and a gender, each shift kind has two rows).
CSV_HEADER = ("Rubrique", "Indicateur", "Code", "Valeur", "Secret statistique", "Clé")


def _labels(name: str) -> dict[str, str]:
    return {entry["code"]: entry["label"] for entry in vocabularies()[name]}


def render_csv(report: ActivityReport) -> str:
    """The report as a French spreadsheet: UTF-8 with a BOM, ``;``-separated."""
    counts = report.body["counts"]
    rows: list[tuple[str, str, str, str, int | float | None]] = [
        ("counts.encounters", "File active", "Contacts", "encounters", counts["encounters"]),
        ("counts.people", "File active", "Personnes rencontrées", "people", counts["people"]),
        (
            "counts.distinct_people",
            "File active",
            "Personnes distinctes",
            "distinct_people",
            counts["distinct_people"],
        ),
        (
            "counts.first_contacts",
            "File active",
            "Premiers contacts",
            "first_contacts",
            counts["first_contacts"],
        ),
        (
            "counts.single_contacts",
            "File active",
            "Contacts individuels",
            "single_contacts",
            counts["single_contacts"],
        ),
        (
            "counts.women_share",
            "File active",
            "Part des femmes",
            "women_share",
            counts["women_share"],
        ),
    ]
    ages, genders = _labels("age_bands"), _labels("genders")
    rows += [
        (f"counts.age_bands.{code}", "Âge", ages[code], code, counts["age_bands"][code])
        for code in AGE_BANDS
    ]
    rows += [
        (f"counts.genders.{code}", "Genre", genders[code], code, counts["genders"][code])
        for code in GENDERS
    ]
    rows.append(
        ("counts.kits_total", "Matériel distribué", "Total", "kits_total", counts["kits_total"])
    )
    rows += [
        (
            f"counts.kits.{code}",
            "Matériel distribué",
            report.kit_labels.get(code, code),
            code,
            value,
        )
        for code, value in counts["kits"].items()
    ]
    services = _labels("services")
    rows += [
        (f"counts.services.{code}", "Prestations", services[code], code, counts["services"][code])
        for code in SERVICES
    ]
    destinations, statuses = _labels("referral_destinations"), _labels("referral_statuses")
    rows.append(
        (
            "counts.referrals_total",
            "Orientations",
            "Total",
            "referrals_total",
            counts["referrals_total"],
        )
    )
    rows += [
        (
            f"counts.referrals_by_destination.{to}",
            "Orientations",
            f"{destinations[to]} — total",
            to,
            counts["referrals_by_destination"][to],
        )
        for to in REFERRAL_DESTINATIONS
    ]
    rows += [
        (
            f"counts.referrals_by_status.{s}",
            "Orientations",
            f"Total — {statuses[s]}",
            s,
            counts["referrals_by_status"][s],
        )
        for s in REFERRAL_STATUSES
    ]
    rows += [
        (
            f"counts.referrals.{to}.{status}",
            "Orientations",
            f"{destinations[to]} — {statuses[status]}",
            f"{to}:{status}",
            counts["referrals"][to][status],
        )
        for to in REFERRAL_DESTINATIONS
        for status in REFERRAL_STATUSES
    ]
    kinds = _labels("shift_kinds")
    shifts = report.body["shifts"]
    for code in SHIFT_KINDS:
        entry = shifts["by_kind"][code]
        key = f"shifts.by_kind.{code}"
        rows.append((f"{key}.shifts", "Maraudes", f"{kinds[code]} — nombre", code, entry["shifts"]))
        rows.append(
            (
                f"{key}.hours",
                "Maraudes",
                f"{kinds[code]} — heures sur le terrain",
                code,
                entry["hours"],
            )
        )
    rows.append(("shifts.shifts", "Maraudes", "Total — nombre", "shifts", shifts["shifts"]))
    rows.append(
        ("shifts.hours", "Maraudes", "Total — heures sur le terrain", "hours", shifts["hours"])
    )

    buffer = io.StringIO()
    # The BOM and the semicolon are what a French spreadsheet opens without an import dialog.
    buffer.write("\ufeff")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for key, section, label, code, value in rows:
        writer.writerow(
            (
                section,
                label,
                code,
                "" if value is None else _french_number(value),
                "oui" if value is None else "",
                key,
            )
        )
    return buffer.getvalue()


def _french_number(value: int | float) -> str:
    # A French spreadsheet reads "0,25" as a number and "0.25" as text.
    return str(value).replace(".", ",")
