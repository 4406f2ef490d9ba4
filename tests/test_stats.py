"""Aggregates: figures, filters, suppression, GeoJSON, coverage, hotspots, reports, audit.

Data goes in through ``POST /sync`` as phones send it; figures come out of the
stats routes, on both engines.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import h3
import pytest
from flask import Flask
from flask.testing import FlaskClient
from shapely.geometry import shape
from sqlalchemy import select

from outreach.api.reads import READ_MODEL_KEY
from outreach.clock import paris_today
from outreach.extensions import db
from outreach.models import AuditEvent
from outreach.services import periods
from tests.helpers import get, seed_mixed_day, statements_of, sync
from tests.payloads import CENTRES, MAX_DEVIATION, at, encounter, shift

STATS_ROUTES = (
    "/api/v1/stats/summary",
    "/api/v1/stats/timeseries?bucket=week",
    "/api/v1/stats/map?resolution=8",
    "/api/v1/stats/sectors",
    "/api/v1/stats/coverage",
    "/api/v1/stats/hotspots",
    # The year of last month: published to protected readers whatever today is.
    f"/api/v1/reports/activity?year={(paris_today().replace(day=1) - timedelta(days=1)).year}",
)


def last_week() -> periods.Period:
    """The protected views' default period."""
    return periods.last_whole_week(paris_today())


def assert_protected(published: Any, exact: Any, path: str = "") -> None:
    """``published`` is ``exact`` through the cell key gate: 0 stays 0, 1 to k-1 is
    masked, any other count is within the table's deviation and never below k (a
    magnitude over few encounters may be masked too)."""
    if isinstance(exact, dict):
        assert set(published) == set(exact), path
        for key, item in exact.items():
            assert_protected(published[key], item, f"{path}.{key}")
    elif isinstance(exact, int) and not isinstance(exact, bool):
        if exact == 0:
            assert published == 0, path
        elif exact < 11:
            assert published is None, path
        elif published is not None:
            assert published >= 11, path
            assert abs(published - exact) <= MAX_DEVIATION, path


def test_a_summary_is_exact_for_its_association_and_protected_for_others(
    client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    week = last_week()
    seed_mixed_day(client, people["worker"], week.start + timedelta(days=2))
    # Every encounter is association A's: its org_admin sees them exactly.
    exact = get(client, people["admin_a"], f"/api/v1/stats/summary?period={week.name}")
    counts = exact["counts"]
    assert exact["protection"] == {"method": "exact", "k": 11}
    assert exact["suppressed"] == []
    assert (counts["encounters"], counts["people"], counts["single_contacts"]) == (15, 15, 15)
    assert (counts["first_contacts"], counts["women"], counts["genders"]["m"]) == (12, 12, 3)
    assert (counts["kits"]["naloxone"], counts["kits"]["kit_base"]) == (3, 24)

    body = get(client, people["coordinator"], "/api/v1/stats/summary")
    assert body["k"] == 11
    assert body["protection"]["method"] == "cell-key"
    assert body["protection"]["max_deviation"] == MAX_DEVIATION
    assert_protected(body["counts"], counts)
    assert body["counts"]["genders"]["m"] is None
    assert body["counts"]["kits"]["naloxone"] is None
    assert {"kits.naloxone", "genders.m"} <= set(body["suppressed"])
    # By default, the last whole week.
    assert body["filters"]["period"] == week.name
    assert (body["filters"]["from"], body["filters"]["to"]) == (
        week.start.isoformat(),
        week.end.isoformat(),
    )
    # The same cells answer the same, however often asked.
    assert get(client, people["coordinator"], "/api/v1/stats/summary") == body

    eole = get(client, people["coordinator"], "/api/v1/stats/summary?sector=eole")
    assert eole["counts"]["encounters"] is None
    assert "encounters" in eole["suppressed"]


def test_an_org_admin_sees_its_own_association_only(
    client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    seed_mixed_day(client, people["worker"], paris_today() - timedelta(days=1))
    own = get(client, people["admin_a"], "/api/v1/stats/summary")
    assert own["counts"]["encounters"] == 15
    assert own["filters"]["organisation"] == "assoc-a"
    other = get(client, people["admin_b"], "/api/v1/stats/summary")
    assert other["counts"]["encounters"] == 0
    assert other["filters"]["organisation"] == "assoc-b"
    refused = get(client, people["admin_b"], "/api/v1/stats/map?organisation=assoc-a", 422)
    unknown = get(client, people["coordinator"], "/api/v1/stats/map?organisation=nope", 422)
    # The same answer for another association's slug and a slug that does not exist.
    assert refused == unknown
    assert refused["errors"] == {"query": {"organisation": ["No such organisation."]}}
    filtered = get(client, people["coordinator"], "/api/v1/stats/summary?organisation=assoc-b")
    assert filtered["counts"]["encounters"] == 0


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/stats/summary?from=2026-05-02&to=2026-05-01", "from"),
        ("/api/v1/stats/summary?from=2020-01-01&to=2026-01-01", "from"),
        ("/api/v1/stats/summary?from=yesterday", "from"),
        ("/api/v1/stats/summary?sector=montmartre", "sector"),
        ("/api/v1/stats/summary?shift_kind=patrol", "shift_kind"),
        ("/api/v1/stats/summary?colour=red", "colour"),
        ("/api/v1/stats/timeseries?bucket=year", "bucket"),
        ("/api/v1/stats/map?resolution=10", "resolution"),
        ("/api/v1/stats/map?resolution=nine", "resolution"),
        ("/api/v1/stats/coverage?from=2026-01-01&to=2026-06-01", "from"),
        ("/api/v1/stats/hotspots?from=2026-01-01", "from"),
        ("/api/v1/reports/activity", "year"),
        ("/api/v1/reports/activity?year=1999", "year"),
        (f"/api/v1/reports/activity?year={paris_today().year + 1}", "year"),
        ("/api/v1/reports/activity?year=2026&format=xlsx", "format"),
        # The grid: a malformed, impossible or future period, dates beside one, free dates
        # and daily buckets for protected figures, hotspots of anything but a whole week.
        ("/api/v1/stats/summary?period=2026-13", "period"),
        ("/api/v1/stats/summary?period=2026-11-01", "period"),
        ("/api/v1/stats/summary?period=2026-W54", "period"),
        ("/api/v1/stats/summary?period=9998-Q1", "period"),
        ("/api/v1/stats/summary?period=2026-11&to=2026-11-30", "period"),
        ("/api/v1/stats/summary?to=2026-11-30", "to"),
        ("/api/v1/stats/map?from=2026-11-01", "from"),
        ("/api/v1/stats/timeseries?bucket=day", "bucket"),
        ("/api/v1/stats/hotspots?period=2026-11", "period"),
        ("/api/v1/reports/activity?year=9998", "year"),
    ],
)
def test_invalid_filters_answer_422_naming_the_parameter(
    client: FlaskClient, people: dict[str, dict[str, str]], url: str, parameter: str
) -> None:
    body = get(client, people["coordinator"], url, 422)
    assert body["code"] == 422
    assert parameter in body["errors"]["query"], body


def test_a_map_masks_small_hexagons_and_perturbs_the_rest(
    client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    day = paris_today() - timedelta(days=1)
    batches = {"stalingrad": 12, "eole": 3, "porte_chapelle": 20}
    sync(
        client,
        people["worker"],
        encounters=[
            encounter(CENTRES[sector], occurred_at=at(day))
            for sector, n in batches.items()
            for _ in range(n)
        ],
    )
    week = f"period={periods.week_period(day).name}"
    for url, area in (("/api/v1/stats/map", "cell"), ("/api/v1/stats/sectors", "sector")):
        exact = get(client, people["admin_a"], f"{url}?{week}")
        body = get(client, people["coordinator"], f"{url}?{week}")
        assert body["protection"]["method"] == "cell-key"
        truth = {f["properties"][area]: f["properties"] for f in exact["features"]}
        shown = {f["properties"][area]: f["properties"] for f in body["features"]}
        assert set(shown) == set(truth)
        measures = ("encounters", "people", "kits", "referrals")
        for name, properties in shown.items():
            assert_protected(
                {m: properties[m] for m in measures}, {m: truth[name][m] for m in measures}
            )
            # An area whose encounters are masked hides every measure.
            if properties["suppressed"]:
                assert all(properties[m] is None for m in measures)
    sectors = get(client, people["coordinator"], f"/api/v1/stats/sectors?{week}")
    published = {
        f["properties"]["sector"]: f["properties"]["encounters"] for f in sectors["features"]
    }
    assert published["eole"] is None
    assert published["rosa_parks"] == 0
    # Perturbed by design: within the table's deviation is the one right answer.
    assert abs(published["porte_chapelle"] - 20) <= MAX_DEVIATION


def test_a_coarser_map_sums_the_hexagons_inside_each_cell(
    client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    day = paris_today() - timedelta(days=1)
    # 12 encounters (k is 11) at each sector's centre and at two points 150 m and 300 m
    # east of it: hexagons of resolution 9 that share a parent at 8 or 7, or do not.
    places = [(lat, lon + shift) for lat, lon in CENTRES.values() for shift in (0, 0.002, 0.004)]
    sync(
        client,
        people["worker"],
        encounters=[encounter(place, occurred_at=at(day)) for place in places for _ in range(12)],
    )
    counts = {}
    # Exact figures (the association's own) add up; protected ones are cells of their own.
    for resolution in (9, 8, 7):
        features = get(client, people["admin_a"], f"/api/v1/stats/map?resolution={resolution}")
        counts[resolution] = {
            f["id"]: (f["properties"]["encounters"], f["properties"]["people"])
            for f in features["features"]
        }
    assert sum(n for n, _people in counts[9].values()) == 12 * len(places)
    for coarse in (8, 7):
        expected: dict[str, list[int]] = {}
        for cell, (encounters, people_met) in counts[9].items():
            parent = expected.setdefault(h3.cell_to_parent(cell, coarse), [0, 0])
            parent[0] += encounters
            parent[1] += people_met
        assert {cell: tuple(sums) for cell, sums in expected.items()} == counts[coarse]
    assert set(counts[9]) == {h3.latlng_to_cell(*place, 9) for place in places}


def _polygons(collection: dict[str, Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
    assert collection["type"] == "FeatureCollection"
    for feature in collection["features"]:
        assert feature["type"] == "Feature"
        yield shape(feature["geometry"]), feature


def test_geojson_follows_rfc_7946(client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    day = paris_today() - timedelta(days=1)
    sync(
        client,
        people["worker"],
        encounters=[encounter(c, occurred_at=at(day)) for c in CENTRES.values() for _ in range(2)],
    )
    week = periods.week_period(day).name
    collections = [
        (
            get(client, people["coordinator"], f"/api/v1/stats/map?resolution={r}&period={week}"),
            "cell",
        )
        for r in (7, 8, 9)
    ]
    collections.append(
        (get(client, people["coordinator"], f"/api/v1/stats/sectors?period={week}"), "sector")
    )
    checked = 0
    for collection, area in collections:
        for geometry, feature in _polygons(collection):
            assert geometry.is_valid, feature["id"]
            for polygon in getattr(geometry, "geoms", [geometry]):
                ring = list(polygon.exterior.coords)
                assert ring[0] == ring[-1]
                assert polygon.exterior.is_ccw, f"{feature['id']} is clockwise"
                # Longitude first: Paris is at about 2.35 E, 48.86 N.
                assert all(2 < x < 3 and 48 < y < 49 for x, y in ring)
            properties = feature["properties"]
            assert area in properties
            assert {"encounters", "people", "kits", "referrals", "suppressed"} <= set(properties)
            checked += 1
    assert checked > len(CENTRES)


def test_timeseries_buckets_add_up(client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    # Three Mondays back, so buckets are whole weeks.
    monday = paris_today() - timedelta(days=paris_today().weekday() + 14)
    days = [monday, monday + timedelta(days=3), monday + timedelta(days=8)]
    sync(
        client,
        people["worker"],
        encounters=[encounter(occurred_at=at(d)) for d in days for _ in range(11)],
    )
    url = f"/api/v1/stats/timeseries?from={monday}&to={monday + timedelta(days=13)}"
    weekly = get(client, people["admin_a"], url + "&bucket=week")
    # Protected, a week's bucket is the same cell as that week's summary: the same figure.
    for point in weekly["series"]:
        week = periods.week_period(date.fromisoformat(point["start"])).name
        series = get(client, people["coordinator"], f"/api/v1/stats/timeseries?period={week}")
        summary = get(client, people["coordinator"], f"/api/v1/stats/summary?period={week}")
        assert [p["start"] for p in series["series"]] == [point["start"]]
        assert_protected(series["series"][0]["counts"], point["counts"])
        assert series["series"][0]["counts"]["encounters"] == summary["counts"]["encounters"]
    assert [p["start"] for p in weekly["series"]] == [
        monday.isoformat(),
        (monday + timedelta(days=7)).isoformat(),
    ]
    assert [p["counts"]["encounters"] for p in weekly["series"]] == [22, 11]
    assert weekly["series"][0]["end"] == (monday + timedelta(days=6)).isoformat()
    daily = get(client, people["admin_a"], url + "&bucket=day")
    assert len(daily["series"]) == 14
    shown = {p["start"]: p["counts"]["encounters"] for p in daily["series"]}
    assert shown[days[0].isoformat()] == 11
    assert shown[(monday + timedelta(days=1)).isoformat()] == 0
    monthly = get(client, people["admin_a"], url + "&bucket=month")
    # A month bucket starts on the 1st, or on 'from' when the period starts mid-month.
    next_month = (monday.replace(day=28) + timedelta(days=4)).replace(day=1)
    month_starts = [monday] + ([next_month] if next_month <= monday + timedelta(days=13) else [])
    assert [p["start"] for p in monthly["series"]] == [d.isoformat() for d in month_starts]


def test_coverage_by_sector_day_and_slot(
    app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    sunday = paris_today() - timedelta(days=paris_today().weekday() + 1)
    night = shift(
        kind="rdr",
        started_at=at(sunday, 1),
        ended_at=at(sunday, 4),
        planned_sectors=["stalingrad"],
    )
    met_in_eole = encounter(CENTRES["eole"], occurred_at=at(sunday, 2), shift_id=night["id"])
    sync(client, people["worker"], shifts=[night], encounters=[met_in_eole])
    url = f"/api/v1/stats/coverage?from={sunday - timedelta(days=6)}&to={sunday}"
    body = get(client, people["coordinator"], url)
    rows = {row["sector"]: row for row in body["sectors"]}
    assert set(rows) == set(CENTRES)
    cell = rows["stalingrad"]["days"][-1]
    assert cell["day"] == sunday.isoformat()
    assert cell["covered"]
    assert cell["slots"] == {"night": 1, "morning": 0, "afternoon": 0, "evening": 0}
    assert rows["stalingrad"]["covered_days"] == 1
    assert rows["stalingrad"]["weeks_below_target"][0]["required_days"] == 7
    # Coverage is where shifts planned to go, never where someone was met: the shift's
    # encounter in Éole does not show Éole as visited.
    assert rows["eole"]["covered_days"] == 0
    uncovered = {(u["sector"], u["day"]) for u in body["uncovered"]}
    assert ("stalingrad", sunday.isoformat()) not in uncovered
    assert ("eole", sunday.isoformat()) in uncovered
    assert len(uncovered) == len(CENTRES) * 7 - 1
    # Another association's shifts are not counted when filtering on one association.
    filtered = get(client, people["coordinator"], url + "&organisation=assoc-b")
    assert all(not day["covered"] for row in filtered["sectors"] for day in row["days"])
    # Two associations' shifts under one id are two shifts.
    sync(client, people["admin_b"], shifts=[night])
    both = {row["sector"]: row for row in get(client, people["coordinator"], url)["sectors"]}
    cell = both["stalingrad"]["days"][-1]
    assert (cell["shifts"], cell["slots"]["night"]) == (2, 2)
    get(client, people["admin_a"], url, 403)


def test_the_weekly_target_is_configurable(
    client: FlaskClient, people: dict[str, dict[str, str]], app: Flask
) -> None:
    app.config["OUTREACH_SETTINGS"] = app.config["OUTREACH_SETTINGS"].with_overrides(
        coverage_target_days=1
    )
    sunday = paris_today() - timedelta(days=paris_today().weekday() + 1)
    evening = shift(started_at=at(sunday, 19), ended_at=at(sunday, 23), planned_sectors=["eole"])
    sync(client, people["worker"], shifts=[evening])
    url = f"/api/v1/stats/coverage?from={sunday - timedelta(days=6)}&to={sunday}"
    body = get(client, people["coordinator"], url)
    rows = {row["sector"]: row for row in body["sectors"]}
    assert body["target_days_per_week"] == 1
    assert rows["eole"]["weeks_below_target"] == []
    assert rows["stalingrad"]["weeks_below_target"][0]["required_days"] == 1


def test_hotspots_flag_a_moving_scene_and_not_a_steady_one(
    client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    week = last_week()
    end = week.end
    steady = [
        encounter(CENTRES["stalingrad"], occurred_at=at(end - timedelta(days=d), 12 + i))
        for d in range(35)
        for i in range(2)
    ]
    moving = [
        encounter(CENTRES["rosa_parks"], occurred_at=at(end - timedelta(days=d), 12 + i))
        for d in range(7)
        for i in range(3)
    ]
    sync(client, people["worker"], encounters=steady + moving)
    # By default, the last whole week against the 28 days before.
    body = get(client, people["coordinator"], "/api/v1/stats/hotspots")
    assert body["filters"]["period"] == week.name
    assert body["recent"] == {"from": week.start.isoformat(), "to": end.isoformat()}
    flagged = [f["properties"] for f in body["features"]]
    assert len(flagged) == 1
    hotspot = flagged[0]
    # A published count is perturbed, by design: within the table's deviation is its one
    # right answer, and so are the p-value and score derived from it (below 0.01 and
    # above 2 for every count within the deviation of 21 over 2.75 expected).
    assert abs(hotspot["recent"] - 21) <= MAX_DEVIATION
    assert hotspot["baseline"] == 0
    # An empty baseline counts as k = 11 encounters over 28 days: 2.75 expected a week.
    assert hotspot["expected"] == 2.75
    assert hotspot["p_value"] < 0.01
    assert hotspot["score"] > 2
    steady_map = get(
        client, people["admin_a"], f"/api/v1/stats/map?to={end}&from={end - timedelta(days=34)}"
    )
    assert sorted(f["properties"]["encounters"] for f in steady_map["features"]) == [21, 70]
    # Coarser hexagons hold the same scene: the one hexagon of the moving scene.
    coarse = get(
        client, people["coordinator"], f"/api/v1/stats/hotspots?period={week.name}&resolution=8"
    )
    coarse_flagged = [f["properties"] for f in coarse["features"]]
    assert [p["cell"] for p in coarse_flagged] == [h3.latlng_to_cell(*CENTRES["rosa_parks"], 8)]
    assert abs(coarse_flagged[0]["recent"] - 21) <= MAX_DEVIATION


def test_activity_report_as_json_and_french_csv(
    client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    # The last day of last month: within what a year's report publishes to everyone.
    day = paris_today().replace(day=1) - timedelta(days=1)
    outing = shift(started_at=at(day, 9), ended_at=at(day, 13), kind="souterraine")
    sync(client, people["worker"], shifts=[outing])
    seed_mixed_day(client, people["worker"], day)
    year = day.year
    body = get(client, people["admin_a"], f"/api/v1/reports/activity?year={year}")
    assert body["organisation"] == "assoc-a"
    assert body["counts"]["encounters"] == 15
    # The association's own report is exact: 12 women of 15 recorded genders.
    assert body["counts"]["women_share"] == 0.8
    assert body["shifts"]["by_kind"]["souterraine"] == {"shifts": 1, "hours": 4.0}
    assert body["shifts"]["hours"] == 4.0
    assert body["method"]["distinct_people_error"] == 0
    # The association's own report runs to today.
    assert body["period"] == {
        "from": f"{year}-01-01",
        "to": min(date(year, 12, 31), paris_today()).isoformat(),
    }

    response = client.get(
        f"/api/v1/reports/activity?year={year}&format=csv", headers=people["coordinator"]
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert f"activite-{year}-toutes-associations.csv" in response.headers["Content-Disposition"]
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert rows[0] == ["Rubrique", "Indicateur", "Code", "Valeur", "Secret statistique", "Clé"]
    # The key is unique and is the figure's path in the JSON report.
    keys = [row[5] for row in rows[1:]]
    assert len(keys) == len(set(keys))
    assert {"counts.age_bands.unknown", "counts.genders.unknown"} <= set(keys)
    by_key = {row[5]: row for row in rows[1:]}
    assert by_key["shifts.by_kind.souterraine.hours"][3] == "4,0"
    assert by_key["shifts.by_kind.souterraine.shifts"][3] == "1"
    by_code = {(row[0], row[2]): row for row in rows[1:]}
    # Perturbed by design: within the table's deviation is the one right answer.
    assert abs(int(by_code[("File active", "encounters")][3]) - 15) <= MAX_DEVIATION
    assert by_code[("Matériel distribué", "naloxone")][3:5] == ["", "oui"]
    assert by_code[("Matériel distribué", "kit_base")][1] == "Kit base (inhalation de crack)"
    assert by_code[("Maraudes", "hours")][3] == "4,0"
    # No count between 1 and k - 1 anywhere in the sheet.
    for row in rows[1:]:
        if row[3] and row[2] not in {"women_share"} and row[0] != "Maraudes":
            assert not 0 < float(row[3].replace(",", ".")) < 11, row


def published_counts(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every count a stats body publishes, by path (geometry, filters and scores left out)."""
    skipped = {
        "geometry",
        "filters",
        "k",
        "protection",
        "p_value",
        "score",
        "expected",
        "p_value_threshold",
    }
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in skipped:
                yield from published_counts(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from published_counts(item, f"{path}[{index}]")
    elif isinstance(value, int) and not isinstance(value, bool):
        yield path, value


ENCOUNTERS_TABLE = re.compile(r"\b(from|join|into|update)\s+\"?encounters\"?(\s|$|,|\))", re.I)


def test_stats_read_only_rollups(
    app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    seed_mixed_day(client, people["worker"], last_week().start + timedelta(days=1))
    # One sector's map too: it reads the fine hexagon rows; and one sector's summary:
    # it sums the sector counters' and person-days' day rows, which the sector map reads
    # too (on PostgreSQL through the driver, which the engine's events do not see).
    routes = (
        *STATS_ROUTES,
        "/api/v1/stats/map?sector=stalingrad",
        "/api/v1/stats/summary?sector=stalingrad",
    )
    with statements_of(app) as statements:
        bodies = {url: get(client, people["coordinator"], url) for url in routes}
    usage = app.extensions[READ_MODEL_KEY].usage()
    assert usage.sector_days_read > 0
    assert usage.people_days_read > 0
    assert any("rollup_totals" in s for s in statements)
    assert any("rollup_person_years" in s for s in statements)
    # Maps of every sector read the span rows (on PostgreSQL through the driver, which
    # the engine's events do not see) after their generations; a sector's map, the fine
    # ones.
    assert any("rollup_span_generations" in s for s in statements)
    assert usage.map_spans_read > 0
    assert any("rollup_cells" in s for s in statements)
    assert ENCOUNTERS_TABLE.search("SELECT x FROM encounters WHERE y")  # the probe works
    readers = [s for s in statements if ENCOUNTERS_TABLE.search(s)]
    assert readers == []
    # And what they read leaves with no count between 1 and k - 1 (coverage and the
    # report's shift section count shifts, not people).
    for url, body in bodies.items():
        if "coverage" in url:
            continue
        counted = body["counts"] if "reports" in url else body
        small = [(p, v) for p, v in published_counts(counted) if 0 < v < 11]
        assert small == [], url


def test_every_stats_and_report_request_is_audited(
    app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    seed_mixed_day(client, people["worker"], paris_today() - timedelta(days=1))
    for url in STATS_ROUTES:
        if "/stats/" in url:
            url += ("&" if "?" in url else "?") + "sector=eole"
        get(client, people["coordinator"], url)
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.action.like("stats.%") | (AuditEvent.action == "reports.activity")
            )
        ).all()
    actions = {e.action: e for e in events}
    assert set(actions) == {
        "stats.summary",
        "stats.timeseries",
        "stats.map",
        "stats.sectors",
        "stats.coverage",
        "stats.hotspots",
        "reports.activity",
    }
    for action, audit_event in actions.items():
        assert audit_event.outcome == "success"
        assert audit_event.actor_role == "coordinator"
        if action != "reports.activity":
            assert audit_event.params["sector"] == "eole", action
        assert audit_event.records >= 0
    assert actions["stats.summary"].records > 50
    assert actions["stats.map"].params["resolution"] == 8


def test_maps_are_sent_as_geojson_written_around_their_published_features(
    client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    day = last_week().start + timedelta(days=1)
    sync(
        client,
        people["worker"],
        encounters=[encounter(c, occurred_at=at(day)) for c in CENTRES.values() for _ in range(2)],
    )
    for url, area in (("/api/v1/stats/map", "cell"), ("/api/v1/stats/sectors", "sector")):
        first, again = (client.get(url, headers=people["coordinator"]) for _ in range(2))
        assert first.status_code == again.status_code == 200
        assert first.mimetype == "application/geo+json"
        assert first.get_data() == again.get_data()
        body = json.loads(first.get_data())
        assert body["type"] == "FeatureCollection"
        assert body["filters"]["to"] == last_week().end.isoformat()
        assert len(body["features"]) > 2
        assert len({feature["id"] for feature in body["features"]}) == len(body["features"])
        for feature in body["features"]:
            assert feature["type"] == "Feature"
            assert feature["properties"][area] == feature["id"]
            assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert "outside_sectors" in body
