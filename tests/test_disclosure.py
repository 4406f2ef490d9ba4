"""The attacker's test: one coordinator token, every answer combined, the truth from the
database.

Each family of attacks that recovered masked counts exactly before the cell key
method (complementary suppression answered 100 %: ``docs/disclosure.md``) is played
against sixty days of demo activity of two associations, on both engines: period
differences over a calendar replayed day by day (the to-date figures), a month minus
its weeks, a total minus the other sectors, associations or shift kinds, a hexagon
minus its children, repeats to average. For each family the rate at which a masked
count (1 to k-1) comes out exactly is compared with what the noise alone allows: two
independent draws of the table agree about a third of the time, one draw is 0 about
four times in ten, so no family may recover more than half its targets. The rates are
written to ``test-output/disclosure/<engine>.json`` for the record.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import h3
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from outreach.clock import fixed_today, paris_today
from outreach.extensions import db
from outreach.models import Encounter
from outreach.services import demo, periods
from schemas.vocabulary import OUTSIDE_SECTORS, SECTORS, SHIFT_KINDS
from tests.helpers import DEMO_PASSWORD, headers_for

K = 11
# No family may recover more masked counts exactly than this share of its targets.
MAX_EXACT_SHARE = 0.5
# A family is judged on at least this many masked targets.
MIN_TARGETS = 20
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "disclosure"
# The encounter column behind each filter.
COLUMNS = {"sector": "sector", "organisation": "organisation_id", "shift_kind": "shift_kind"}
PROTECTED_ROUTES = (
    "/api/v1/stats/summary",
    "/api/v1/stats/timeseries",
    "/api/v1/stats/map",
    "/api/v1/stats/sectors",
)


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """Seven weeks of both demo associations; the coordinator's and an auditor's tokens."""
    settings = app.config["OUTREACH_SETTINGS"]
    with app.app_context():
        session = db.session
        passwords = app.extensions["outreach.security"].passwords
        demo.seed_demo_accounts(session, passwords, DEMO_PASSWORD)
        demo.seed_demo_activity(session, settings, days=49)
    return {
        "coordinator": headers_for(client, "demo-coordinator", DEMO_PASSWORD),
        "auditor": headers_for(client, "demo-auditor", DEMO_PASSWORD),
    }


class Attack:
    """An attacker's requests and a family's tally of masked counts recovered."""

    def __init__(self, app: Flask, client: FlaskClient, headers: dict[str, str]) -> None:
        self.app, self.client, self.headers = app, client, headers
        self.results: dict[str, list[bool]] = defaultdict(list)

    def get(self, url: str) -> Any:
        response = self.client.get(url, headers=self.headers)
        assert response.status_code == 200, (url, response.get_json())
        return response.get_json()

    def encounters(self, period: str, **filters: str) -> int | None:
        query = "&".join(f"{name}={value}" for name, value in filters.items())
        body = self.get(f"/api/v1/stats/summary?period={period}&{query}")
        count: int | None = body["counts"]["encounters"]
        return count

    def truth(self, first: date, last: date, **filters: Any) -> int:
        """The stored encounters of ``first..last`` matching ``filters`` (columns)."""
        with self.app.app_context():
            statement = select(func.count()).where(
                Encounter.deleted_at.is_(None),
                Encounter.local_day >= first,
                Encounter.local_day <= last,
                *(getattr(Encounter, name) == value for name, value in filters.items()),
            )
            return int(db.session.scalar(statement) or 0)

    def judge(self, family: str, truth: int, estimate: float | None) -> None:
        """Count a masked target (1 to k-1): recovered if the estimate is exactly it."""
        if 0 < truth < K:
            self.results[family].append(estimate is not None and estimate == truth)

    def rates(self) -> dict[str, dict[str, float | int]]:
        return {
            family: {"targets": len(hits), "exact": sum(hits), "share": sum(hits) / len(hits)}
            for family, hits in sorted(self.results.items())
        }


def _organisation(app: Flask, slug: str) -> uuid.UUID:
    from outreach.models import Organisation

    with app.app_context():
        found = db.session.scalar(select(Organisation.id).where(Organisation.slug == slug))
        assert found is not None
        return found


def _parts(
    attack: Attack,
    period: periods.Period,
    name: str,
    column: str,
    values: list[str],
    **within: str,
) -> None:
    """Total minus every other part, for each part of one breakdown of one period
    (``within`` other filters, given to every request and to the truth)."""
    total = attack.encounters(period.name, **within)
    published = {
        value: attack.encounters(period.name, **within, **{name: value}) for value in values
    }
    for value in values:
        others = [published[other] for other in values if other != value]
        estimate = None
        if total is not None and None not in others:
            estimate = total - sum(o for o in others if o is not None)
        truth_filter = {
            column: _column_value(attack, column, value),
            **{COLUMNS[key]: _column_value(attack, COLUMNS[key], v) for key, v in within.items()},
        }
        truth = attack.truth(period.start, period.end, **truth_filter)
        attack.judge(f"total minus the other {name}s", truth, estimate)
        attack.judge("total minus the other parts, any breakdown", truth, estimate)


def _column_value(attack: Attack, column: str, value: str) -> Any:
    return _organisation(attack.app, value) if column == "organisation_id" else value


def test_free_dates_are_refused_to_protected_readers(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    for who in ("coordinator", "auditor"):
        for route in PROTECTED_ROUTES:
            for query in ("from=2026-01-01", "to=2026-01-31", "from=2026-01-01&to=2026-01-31"):
                response = client.get(f"{route}?{query}", headers=world[who])
                assert response.status_code == 422, (who, route, query)
                assert "period" in response.get_json()["message"]


def test_the_same_cell_always_answers_the_same(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    """Repeating a request teaches nothing; nor does reaching a cell by another route:
    a week's bucket is that week's summary, a year's report that year's summary."""
    attack = Attack(app, client, world["coordinator"])
    week = periods.last_whole_week(paris_today())
    urls = [
        f"{route}?period={week.name}&sector={sector}"
        for route in PROTECTED_ROUTES
        for sector in ("stalingrad", "eole", OUTSIDE_SECTORS)
    ]
    for url in urls:
        assert len({json.dumps(attack.get(url), sort_keys=True) for _ in range(3)}) == 1, url
    series = attack.get(f"/api/v1/stats/timeseries?period={week.name}&bucket=week")
    summary = attack.get(f"/api/v1/stats/summary?period={week.name}")
    assert series["series"][0]["counts"]["encounters"] == summary["counts"]["encounters"]
    year = (paris_today().replace(day=1) - timedelta(days=1)).year
    report = attack.get(f"/api/v1/reports/activity?year={year}")
    whole_year = attack.get(f"/api/v1/stats/summary?period={year}")
    for name in ("encounters", "people", "distinct_people", "women", "kits_total"):
        assert report["counts"][name] == whole_year["counts"][name], name


def test_combining_answers_recovers_no_masked_count_beyond_chance(
    app: Flask, client: FlaskClient, world: dict[str, Any], engine_name: str
) -> None:
    attack = Attack(app, client, world["coordinator"])
    today = paris_today()
    weeks = [periods.last_whole_week(today - timedelta(weeks=back)) for back in range(6)]

    # Each protected answer breaks down by sector, association and shift kind; every
    # part but one published gives the last as the total minus the others.
    associations = ["maraude-nord", "rdr-est"]
    kinds = [*SHIFT_KINDS, "none"]
    for week in weeks:
        _parts(attack, week, "sector", "sector", [*SECTORS])
        _parts(attack, week, "organisation", "organisation_id", associations)
        _parts(attack, week, "shift_kind", "shift_kind", kinds)
        for association in associations:
            _parts(attack, week, "sector", "sector", [*SECTORS], organisation=association)
        for sector in SECTORS:
            _parts(attack, week, "shift_kind", "shift_kind", kinds, sector=sector)
            _parts(attack, week, "organisation", "organisation_id", associations, sector=sector)

    # A month minus the whole weeks inside it: the edge days.
    month = periods.month_period(weeks[-1].start)
    inside = [w for w in weeks if month.start <= w.start and w.end <= month.end]
    for sector in SECTORS:
        whole = attack.encounters(month.name, sector=sector)
        parts = [attack.encounters(w.name, sector=sector) for w in inside]
        estimate = None
        if whole is not None and None not in parts:
            estimate = whole - sum(p for p in parts if p is not None)
        covered = {w.start + timedelta(days=d) for w in inside for d in range(7)}
        edges = [
            month.start + timedelta(days=d)
            for d in range((month.end - month.start).days + 1)
            if month.start + timedelta(days=d) not in covered
        ]
        truth = sum(attack.truth(day, day, sector=sector) for day in edges)
        attack.judge("a month minus its weeks", truth, estimate)

    # A resolution-8 hexagon minus its published children at resolution 9.
    for week in weeks:
        fine = attack.get(f"/api/v1/stats/map?period={week.name}&resolution=9")["features"]
        coarse = attack.get(f"/api/v1/stats/map?period={week.name}&resolution=8")["features"]
        shown = {f["id"]: f["properties"]["encounters"] for f in fine}
        for parent in coarse:
            children = [c for c in shown if h3.cell_to_parent(c, 8) == parent["id"]]
            for child in children:
                others = [shown[c] for c in children if c != child]
                estimate = None
                if parent["properties"]["encounters"] is not None and None not in others:
                    estimate = parent["properties"]["encounters"] - sum(
                        o for o in others if o is not None
                    )
                truth = attack.truth(week.start, week.end, cell=child)
                attack.judge("a hexagon minus its children", truth, estimate)

    # The calendar replayed: every day of the last five weeks the attacker asks for the
    # current week, month, quarter and year to date, per sector; two consecutive
    # versions of one period differ by what the step added, and every estimate of one
    # day's count is averaged.
    versions: dict[tuple[str, str], list[tuple[date, int | None]]] = defaultdict(list)
    covering: dict[date, set[str]] = defaultdict(set)
    first_day = today - timedelta(days=21)
    for offset in range(22):
        day = first_day + timedelta(days=offset)
        with fixed_today(day):
            offered = attack.get("/api/v1/stats/periods")["periods"]
        current = [p for p in offered if not p["complete"]]
        for published in current:
            end = date.fromisoformat(published["to"])
            for covered in range((end - date.fromisoformat(published["from"])).days + 1):
                covering[end - timedelta(days=covered)].add(f"{published['period']}@{end}")
            for sector in SECTORS:
                with fixed_today(day):
                    count = attack.encounters(published["period"], sector=sector)
                versions[(published["period"], sector)].append((end, count))
    estimates: dict[tuple[date, date, str], list[int]] = defaultdict(list)
    for (_period, sector), seen in versions.items():
        distinct = sorted(set(seen))
        for (before_end, before), (after_end, after) in itertools.pairwise(distinct):
            if before_end == after_end:
                continue
            step = (before_end + timedelta(days=1), after_end, sector)
            estimates[step].append(None if before is None or after is None else after - before)
    for (start, end, sector), found in estimates.items():
        truth = attack.truth(start, end, sector=sector)
        usable = [estimate for estimate in found if estimate is not None]
        attack.judge("consecutive to-date versions", truth, usable[0] if usable else None)
        if usable:
            attack.judge("consecutive to-date versions, both published", truth, usable[0])
            attack.judge("every to-date difference averaged", truth, sum(usable) / len(usable))
    # However many requests, few distinct published periods cover one day.
    assert max(len(names) for names in covering.values()) <= periods.MAX_VERSIONS_COVERING_A_DAY

    rates = attack.rates()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / f"{engine_name}.json").write_text(json.dumps(rates, indent=1) + "\n")
    judged = {family: r for family, r in rates.items() if r["targets"] >= MIN_TARGETS}
    for family in (
        "total minus the other parts, any breakdown",
        "a hexagon minus its children",
        "consecutive to-date versions, both published",
    ):
        assert family in judged, rates
    for family, rate in judged.items():
        assert rate["share"] <= MAX_EXACT_SHARE, (family, rate)


def test_exact_figures_stay_the_associations_own(
    app: Flask, client: FlaskClient, make_account: Callable[..., Any], world: dict[str, Any]
) -> None:
    """The org_admin's exact figures are its own association's and no other's."""
    from outreach.models import Role

    admin = make_account(Role.ORG_ADMIN, "maraude-nord")
    headers = headers_for(client, admin)
    week = periods.last_whole_week(paris_today())
    own = client.get(f"/api/v1/stats/summary?period={week.name}", headers=headers).get_json()
    assert own["protection"]["method"] == "exact"
    assert own["filters"]["organisation"] == "maraude-nord"
    attack = Attack(app, client, headers)
    truth = attack.truth(week.start, week.end, organisation_id=_organisation(app, "maraude-nord"))
    assert own["counts"]["encounters"] == truth
    refused = client.get(
        f"/api/v1/stats/summary?period={week.name}&organisation=asso-b", headers=headers
    )
    assert refused.status_code == 422
