"""Published maps are served again until the counters change, and never across callers.

A map request served from a worker's read model reads no counter row, answers the
same body and is audited like any other; a sync, an amendment, a deletion, a rebuild
or a purge replaces the counters' generation in its own transaction, and so does a
restore of the database: the next request reads the counters again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import h3
import numpy as np
import orjson
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from config import Settings
from outreach import create_app, read_ahead
from outreach.api.reads import READ_MODEL_KEY
from outreach.clock import paris_today
from outreach.extensions import db
from outreach.models import AuditEvent, Base, Encounter, Role
from outreach.services import periods, rollups
from outreach.services.readmodel import ReadModel
from outreach.services.readmodel.maps import (
    PublishedMap,
    Rendered,
    area_properties,
    published_map,
    render_areas,
)
from outreach.services.rollups import MAP_METRICS
from outreach.services.stats.counters import AMOUNTS, cell_amounts
from outreach.services.stats.scope import Scope
from outreach.services.stats.warmup import warm_periods
from tests.helpers import Account, get, headers_for, seed_mixed_day, statements_of, sync
from tests.payloads import CENTRES, MAX_DEVIATION, STALINGRAD, at, encounter
from tests.servers import gunicorn, wait_for


def last_published_day() -> date:
    """The last day of last month: inside a year published to protected readers (this
    one to the end of last month, or last year, whole), whatever today is."""
    return paris_today().replace(day=1) - timedelta(days=1)


def its_year() -> str:
    """The grid year holding ``last_published_day``."""
    return f"period={last_published_day().year}"


MAP_ROUTES = (
    f"/api/v1/stats/map?{its_year()}",
    f"/api/v1/stats/map?resolution=8&{its_year()}",
    f"/api/v1/stats/sectors?{its_year()}",
    "/api/v1/stats/hotspots",
)
COUNTER_TABLES = ("rollup_cell_spans", "rollup_span_generations", "rollup_cells", "rollup_sectors")


def counter_reads(statements: list[str]) -> list[str]:
    return [
        s
        for s in statements
        if s.lstrip().upper().startswith("SELECT") and any(t in s for t in COUNTER_TABLES)
    ]


def audited(app: Flask, action: str) -> list[int]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditEvent.records)
                .where(AuditEvent.action == action)
                .order_by(AuditEvent.seq)
            )
        )


def test_a_map_is_served_again_until_a_sync_changes_the_counters(
    app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    day = last_published_day()
    seed_mixed_day(client, people["worker"], day)
    coordinator = people["coordinator"]
    for url in MAP_ROUTES:
        with statements_of(app) as first_reads:
            first = get(client, coordinator, url)
        # The first map reads the counters; the next may be built from the rows it kept.
        assert counter_reads(first_reads) or url != MAP_ROUTES[0], url
        with statements_of(app) as again_reads:
            again = get(client, coordinator, url)
        assert counter_reads(again_reads) == [], url
        assert again == first, url
    # Served again or not, each request left its event, with the same count released.
    for action in ("stats.map", "stats.sectors", "stats.hotspots"):
        records = audited(app, action)
        assert len(records) == (4 if action == "stats.map" else 2)
        assert records[0] == records[1]

    # Twelve encounters in a hexagon no map showed: the next map reads and shows it.
    year_map = f"/api/v1/stats/map?{its_year()}"
    before = {f["id"] for f in get(client, coordinator, year_map)["features"]}
    new_place = (48.8320, 2.3560)
    sync(
        client,
        people["worker"],
        encounters=[encounter(new_place, occurred_at=at(day, 16)) for _ in range(12)],
    )
    with statements_of(app) as after_reads:
        after = get(client, coordinator, year_map)
    assert counter_reads(after_reads)
    shown = {f["id"]: f["properties"] for f in after["features"]}
    assert set(shown) - before == {h3.latlng_to_cell(*new_place, 9)}
    # Published through the cell key method: within its deviation of the truth.
    assert abs(shown[h3.latlng_to_cell(*new_place, 9)]["encounters"] - 12) <= MAX_DEVIATION


def test_a_resend_leaves_the_generation_and_every_change_replaces_it(
    app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    def generation() -> int:
        with app.app_context(), db.session.begin():
            return rollups.generation(db.session)

    worker = people["worker"]
    admin = people["admin_a"]
    items = [encounter(CENTRES["eole"]) for _ in range(2)]
    seen = [generation()]
    assert seen == [0]

    def replaced() -> bool:
        """Whether the generation is one never seen before (then remembered)."""
        current = generation()
        new = current not in seen
        seen.append(current)
        return new

    sync(client, worker, encounters=items)
    assert replaced()
    sync(client, worker, encounters=items)  # duplicates: nothing changed
    assert generation() == seen[-1]
    target = items[0]["id"]
    amended = client.patch(f"/api/v1/encounters/{target}", json={"people": 3}, headers=admin)
    assert amended.status_code == 200, amended.get_json()
    assert replaced()
    unchanged = client.patch(f"/api/v1/encounters/{target}", json={"people": 3}, headers=admin)
    assert unchanged.status_code == 200, unchanged.get_json()
    assert generation() == seen[-1]
    deleted = client.delete(f"/api/v1/encounters/{target}", json={"reason": "other"}, headers=admin)
    assert deleted.status_code == 204
    assert replaced()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["rollups", "rebuild"]).exit_code == 0
    assert replaced()
    assert runner.invoke(args=["retention", "purge"]).exit_code == 0
    assert replaced()


# What a dump of the database holds of the counters and of what names their state.
RESTORED_TABLES = (
    "rollup_sectors",
    "rollup_cells",
    "rollup_totals",
    "rollup_cell_spans",
    "rollup_people",
    "rollup_person_years",
    "rollup_span_generations",
    "rollup_generation",
)


def dumped(app: Flask) -> dict[str, list[dict[str, object]]]:
    """The rows of ``RESTORED_TABLES``, as a dump keeps them."""
    with app.app_context(), db.session.begin():
        return {
            name: [
                dict(row)
                for row in db.session.execute(select(Base.metadata.tables[name])).mappings()
            ]
            for name in RESTORED_TABLES
        }


def restore(app: Flask, dump: dict[str, list[dict[str, object]]]) -> None:
    """Put ``dump`` back in place of the rows of its tables, as a restore would."""
    with app.app_context(), db.session.begin():
        for name, rows in dump.items():
            table = Base.metadata.tables[name]
            db.session.execute(delete(table))
            if rows:
                db.session.execute(insert(table), rows)


def test_a_worker_answers_a_restored_database_and_not_what_it_kept(
    app: Flask, client: FlaskClient, settings: Settings, people: dict[str, dict[str, str]]
) -> None:
    day = last_published_day()
    seed_mixed_day(client, people["worker"], day)
    coordinator = people["coordinator"]
    urls = (
        f"/api/v1/stats/map?{its_year()}",
        f"/api/v1/stats/summary?{its_year()}&sector=stalingrad",
    )
    dump = dumped(app)
    # Twelve encounters outside every sector, kept by this worker in its maps and rows.
    outside = (48.8320, 2.3560)
    sync_twelve(client, people, day, outside)
    kept = [get(client, coordinator, url) for url in urls]
    assert h3.latlng_to_cell(*outside, 9) in {f["id"] for f in kept[0]["features"]}
    # The database restored to before them, then one sync of twelve in Stalingrad.
    restore(app, dump)
    sync_twelve(client, people, day, STALINGRAD)
    answers = [get(client, coordinator, url) for url in urls]
    assert h3.latlng_to_cell(*outside, 9) not in {f["id"] for f in answers[0]["features"]}
    with worker_keeping_nothing(settings) as fresh:
        assert answers == [get(fresh.test_client(), coordinator, url) for url in urls]


def test_each_organisation_gets_its_own_map(
    client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    seed_mixed_day(client, people["worker"], last_published_day())
    year_map = f"/api/v1/stats/map?{its_year()}"
    own = get(client, people["admin_a"], year_map)
    assert own["features"]
    assert own["filters"]["organisation"] == "assoc-a"
    other = get(client, people["admin_b"], year_map)
    assert other["features"] == []
    assert other["filters"]["organisation"] == "assoc-b"
    whole = get(client, people["coordinator"], year_map)
    assert whole["filters"]["organisation"] is None
    assert [f["id"] for f in whole["features"]] == [f["id"] for f in own["features"]]


class Builder:
    """Builds a map of ``features`` features and counts how often it was asked to."""

    def __init__(self, features: int) -> None:
        self.features = features
        self.builds = 0

    def __call__(self, _previous: PublishedMap | None) -> PublishedMap:
        self.builds += 1
        return published_map([b"{}"] * self.features, 0)


def test_the_budget_keeps_the_most_recent_maps_and_never_one_too_big(app: Flask) -> None:
    with app.app_context(), db.session.begin():
        session = db.session
        model = ReadModel(map_features=10, map_span_rows=0, day_rows=0)
        small, medium, other, huge = Builder(4), Builder(6), Builder(3), Builder(11)
        model.published_map(session, "small", small)
        model.published_map(session, "medium", medium)
        assert model.usage().published_maps == 2
        model.published_map(session, "small", small)  # used last: medium is now the oldest
        model.published_map(session, "other", other)  # 13 features: medium leaves
        assert model.usage().published_maps == 2
        model.published_map(session, "small", small)
        model.published_map(session, "medium", medium)
        assert small.builds == 1
        assert medium.builds == 2
        model.published_map(session, "huge", huge)
        model.published_map(session, "huge", huge)
        assert huge.builds == 2
        nothing = ReadModel(map_features=0, map_span_rows=0, day_rows=0)
        nothing.published_map(session, "small", small)
        assert nothing.usage().published_maps == 0


def seed_two_associations(
    client: FlaskClient,
    people: dict[str, dict[str, str]],
    make_account: Callable[..., Account],
    days_ago: tuple[int, ...],
    other_days_ago: int,
) -> date:
    """``seed_mixed_day`` by the worker of assoc-a on each of ``days_ago`` and by one of
    assoc-b ``other_days_ago``; today."""
    worker_b = headers_for(client, make_account(Role.WORKER, "assoc-b"))
    today = paris_today()
    for days in days_ago:
        seed_mixed_day(client, people["worker"], today - timedelta(days=days))
    seed_mixed_day(client, worker_b, today - timedelta(days=other_days_ago))
    return today


def sync_twelve(
    client: FlaskClient,
    people: dict[str, dict[str, str]],
    day: date,
    place: tuple[float, float],
) -> None:
    """Twelve encounters at ``place`` on ``day``'s afternoon, synced by assoc-a's worker."""
    encounters = [encounter(place, occurred_at=at(day, 16)) for _ in range(12)]
    sync(client, people["worker"], encounters=encounters)


@contextmanager
def worker_keeping_nothing(settings: Settings) -> Iterator[Flask]:
    """A second app on the same database that keeps no span or day row: what a worker
    that kept nothing answers."""
    fresh = create_app(settings.with_overrides(map_cache_span_rows=0, stats_cache_day_rows=0))
    try:
        yield fresh
    finally:
        db.engine_for(fresh).dispose()


def test_a_map_after_a_sync_reads_again_only_the_spans_the_sync_changed(
    app: Flask,
    client: FlaskClient,
    settings: Settings,
    make_account: Callable[..., Account],
    people: dict[str, dict[str, str]],
) -> None:
    seed_two_associations(client, people, make_account, (70, 45, 20, 1), 30)
    url = f"/api/v1/stats/map?{its_year()}"
    coordinator = people["coordinator"]
    model = app.extensions[READ_MODEL_KEY]
    get(client, coordinator, url)
    # Each span of the period with rows, once: at least the months of the seeds of two
    # organisations (a year's grid period is whole months).
    cold = model.usage().map_spans_read
    assert cold >= 4
    new_place = (48.8320, 2.3560)
    sync_twelve(client, people, last_published_day(), new_place)
    after = get(client, coordinator, url)
    # Only the synced organisation's spans holding that day: its day, week or month.
    assert 1 <= model.usage().map_spans_read - cold <= 3
    assert h3.latlng_to_cell(*new_place, 9) in {f["id"] for f in after["features"]}
    with worker_keeping_nothing(settings) as fresh:
        assert get(fresh.test_client(), coordinator, url) == after


def test_a_filtered_summary_and_series_after_a_sync_read_again_only_the_day_it_changed(
    app: Flask,
    client: FlaskClient,
    settings: Settings,
    make_account: Callable[..., Account],
    people: dict[str, dict[str, str]],
) -> None:
    seed_two_associations(client, people, make_account, (70, 45, 20, 1), 30)
    day = last_published_day()
    period = f"{its_year()}&sector=stalingrad"
    url = f"/api/v1/stats/summary?{period}"
    series = f"/api/v1/stats/timeseries?bucket=week&{period}"
    coordinator = people["coordinator"]
    model = app.extensions[READ_MODEL_KEY]

    def days_read() -> tuple[int, int]:
        usage = model.usage()
        return usage.sector_days_read, usage.people_days_read

    before = get(client, coordinator, url)
    weeks_before = get(client, coordinator, series)
    # Each organisation's days with rows, once.
    cold = days_read()
    assert min(cold) >= 4
    sync_twelve(client, people, day, STALINGRAD)
    after = get(client, coordinator, url)
    weeks_after = get(client, coordinator, series)
    # Only the synced organisation's yesterday, of each table.
    assert days_read() == (cold[0] + 1, cold[1] + 1)
    # Two perturbed figures: their difference is 12 within both deviations.
    change = after["counts"]["encounters"] - before["counts"]["encounters"]
    assert abs(change - 12) <= 2 * MAX_DEVIATION
    synced = day.isoformat()
    grown = [
        (new["counts"]["encounters"] or 0) - (old["counts"]["encounters"] or 0)
        for old, new in zip(weeks_before["series"], weeks_after["series"], strict=True)
    ]
    week = next(
        index
        for index, bucket in enumerate(weeks_after["series"])
        if bucket["start"] <= synced <= bucket["end"]
    )
    # The other weeks are the same cells, so the same figures.
    assert [g for index, g in enumerate(grown) if index != week] == [0] * (len(grown) - 1)
    assert abs(grown[week] - 12) <= 2 * MAX_DEVIATION
    with worker_keeping_nothing(settings) as fresh:
        assert get(fresh.test_client(), coordinator, url) == after
        assert get(fresh.test_client(), coordinator, series) == weeks_after


def warm_urls(today: date) -> list[str]:
    """The coordinators' whole-area maps of the periods each worker reads ahead
    (``stats.warmup.warm_periods``): hexagons at resolutions 9 and 8, and sectors."""
    return [
        url
        for period in warm_periods(today)
        for url in (
            f"/api/v1/stats/map?period={period.name}",
            f"/api/v1/stats/map?period={period.name}&resolution=8",
            f"/api/v1/stats/sectors?period={period.name}",
        )
    ]


def test_a_worker_reads_ahead_the_spans_of_its_first_maps(
    app: Flask,
    client: FlaskClient,
    settings: Settings,
    make_account: Callable[..., Account],
    people: dict[str, dict[str, str]],
) -> None:
    today = seed_two_associations(client, people, make_account, (365, 200, 45, 20, 1), 3)
    model = app.extensions[READ_MODEL_KEY]
    read_ahead(app)
    warmed = model.usage().map_spans_read
    # Spans of the warm periods (months, weeks, days) holding rows: at least a month of
    # each year's seeds.
    assert warmed >= 4
    coordinator, org_admin = people["coordinator"], people["admin_a"]
    warm = warm_periods(today)
    maps = {url: get(client, coordinator, url) for url in warm_urls(today)}
    # An organisation's map of the same days is made of its own spans among them.
    for period in warm:
        get(client, org_admin, f"/api/v1/stats/map?from={period.start}&to={period.end}")
    assert model.usage().map_spans_read == warmed
    assert any(m["features"] for m in maps.values())
    # So are the day rows of the warm periods' filtered summaries (a series widens its
    # period to whole buckets, whose edge days may lie outside).
    usage = model.usage()
    read_days = (usage.sector_days_read, usage.people_days_read)
    assert min(read_days) >= 2
    for period in warm:
        url = f"/api/v1/stats/summary?period={period.name}&sector=eole"
        maps[url] = get(client, coordinator, url)
    usage = model.usage()
    assert (usage.map_spans_read, usage.sector_days_read, usage.people_days_read) == (
        warmed,
        *read_days,
    )
    with worker_keeping_nothing(settings) as fresh:
        read_ahead(fresh)
        assert fresh.extensions[READ_MODEL_KEY].usage().map_spans_read == 0
        for url, body in maps.items():
            assert get(fresh.test_client(), coordinator, url) == body


def test_a_worker_publishes_ahead_the_coordinators_maps_of_its_periods(
    app: Flask,
    client: FlaskClient,
    settings: Settings,
    make_account: Callable[..., Account],
    people: dict[str, dict[str, str]],
) -> None:
    today = seed_two_associations(client, people, make_account, (200, 20, 1), 3)
    read_ahead(app)
    coordinator, org_admin = people["coordinator"], people["admin_a"]
    ahead = [*warm_urls(today), "/api/v1/stats/map?resolution=8", "/api/v1/stats/map"]
    model = app.extensions[READ_MODEL_KEY]
    # Each warm period at resolutions 9 and 8 and by sector.
    published = 3 * len(warm_periods(today))
    assert model.usage().published_maps == published
    bodies = {url: get(client, coordinator, url) for url in ahead}
    # Each served as published ahead (the default period is the first warm one), none
    # published again; and audited as any other.
    assert model.usage().published_maps == published
    assert len(audited(app, "stats.map")) == len(ahead) - published // 3
    assert len(audited(app, "stats.sectors")) == published // 3
    # Not an organisation's own map, nor another period's: those are written on request.
    get(client, org_admin, "/api/v1/stats/map")
    get(client, coordinator, f"/api/v1/stats/map?period={today.year - 2}")
    assert model.usage().published_maps == published + 2
    with worker_keeping_nothing(settings) as fresh:
        for url, body in bodies.items():
            assert get(fresh.test_client(), coordinator, url) == body, url


def test_a_gunicorn_worker_reads_the_spans_ahead_when_it_starts(
    client: FlaskClient,
    people: dict[str, dict[str, str]],
    database_url: str,
    tmp_path: Path,
) -> None:
    today = paris_today()
    seed_mixed_day(client, people["worker"], periods.last_whole_week(today).start)
    log = tmp_path / "gunicorn.log"
    with gunicorn(database_url, tmp_path / "gunicorn", log=log) as (process, _port):
        wait_for(process, lambda: "maps in" in log.read_text(), "the read-ahead")
    # The day's span, or its week's or month's if whole in a warm period; and the day's
    # sector counters and person-days; then the warm periods' maps at resolutions 9 and
    # 8 and of sectors.
    published = 3 * len(warm_periods(today))
    assert re.search(
        rf"read ahead [1-3] map spans and 2 day spans and published {published} maps in \d",
        log.read_text(),
    )


def test_a_rebuild_reads_every_span_again_even_one_it_emptied(
    app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    today = paris_today()
    seed_mixed_day(client, people["worker"], today - timedelta(days=3))
    seed_mixed_day(client, people["worker"], today - timedelta(days=12))
    scope = Scope(
        start=today - timedelta(days=20),
        end=today,
        sector=None,
        organisation=None,
        organisation_id=None,
        shift_kind=None,
    )
    kept = app.extensions[READ_MODEL_KEY]
    stalingrad = h3.latlng_to_cell(*CENTRES["stalingrad"], 9)

    def encounters() -> dict[str, int]:
        with app.app_context(), db.session.begin():
            sums = cell_amounts(db.session, scope, kept)
            return dict(
                zip(
                    sums.areas,
                    sums.amounts[:, AMOUNTS * MAP_METRICS.index("encounters")].tolist(),
                    strict=True,
                )
            )

    assert encounters()[stalingrad] == 24
    # Counters out of step with the encounters, as a rebuild is there to repair: one
    # day's encounters gone behind the service's back.
    with app.app_context(), db.session.begin():
        db.session.execute(
            update(Encounter)
            .where(Encounter.local_day == today - timedelta(days=12))
            .values(deleted_at=datetime.now(UTC))
        )
    assert app.test_cli_runner().invoke(args=["rollups", "rebuild"]).exit_code == 0
    assert encounters()[stalingrad] == 12


def test_the_span_budget_keeps_recent_spans_and_none_when_zero(
    app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    today = paris_today()
    for days_ago in (3, 10, 40):
        seed_mixed_day(client, people["worker"], today - timedelta(days=days_ago))
    scope = Scope(
        start=today - timedelta(days=60),
        end=today,
        sector=None,
        organisation=None,
        organisation_id=None,
        shift_kind=None,
    )
    with app.app_context(), db.session.begin():
        everything = ReadModel(map_features=0, map_span_rows=1_000, day_rows=0)
        whole = cell_amounts(db.session, scope, everything)
        assert everything.usage().map_spans_kept >= 2
        # Each seeded day is two hexagons: a budget of two rows keeps the last span read.
        one = ReadModel(map_features=0, map_span_rows=2, day_rows=0)
        assert cell_amounts(db.session, scope, one).areas == whole.areas
        assert one.usage().map_spans_kept == 1
        nothing = ReadModel(map_features=0, map_span_rows=0, day_rows=0)
        assert cell_amounts(db.session, scope, nothing).amounts.tolist() == whole.amounts.tolist()
        assert nothing.usage().map_spans_kept == 0


AREAS = [f"area-{index}" for index in range(8)]
MEASURES = ("encounters", "people")
area_states = st.dictionaries(
    st.sampled_from(AREAS),
    st.tuples(st.integers(0, 4), st.integers(0, 4), st.booleans(), st.booleans()),
)


def rendered(state: dict[str, tuple[int, int, bool, bool]], previous: Rendered | None) -> Rendered:
    areas = sorted(state)
    values = np.array([state[a][:2] for a in areas], dtype=np.int64).reshape(len(areas), 2)
    masked = np.array([state[a][2:] for a in areas], dtype=np.bool_).reshape(len(areas), 2)
    return render_areas(
        "cell",
        MEASURES,
        "encounters",
        areas,
        lambda area: orjson.dumps({"type": "Point", "area": area}),
        values,
        masked,
        previous,
    )


@hypothesis_settings(max_examples=200, deadline=None)
@given(before=area_states, after=area_states)
def test_a_map_written_again_from_its_last_version_is_the_one_written_afresh(
    before: dict[str, tuple[int, int, bool, bool]], after: dict[str, tuple[int, int, bool, bool]]
) -> None:
    previous = rendered(before, None)
    again = rendered(after, previous)
    assert again.features == rendered(after, None).features
    # An area shown with the same counts keeps the bytes written before.
    for area, row in again.rows.items():
        if area in before and before[area] == after[area]:
            assert again.features[row] is previous.features[previous.rows[area]]


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    measures=st.lists(
        # Names a %-format or JSON would take for its own, and any others.
        st.sampled_from(["%", "%d", "100%", '"quoted"', "kits"])
        | st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    data=st.data(),
)
def test_area_properties_are_the_published_counts_and_their_masks(
    measures: list[str], data: st.DataObject
) -> None:
    rows = data.draw(st.integers(0, 20))
    cells = st.tuples(st.integers(0, 2**53), st.booleans())
    drawn = data.draw(
        st.lists(
            st.lists(cells, min_size=len(measures), max_size=len(measures)),
            min_size=rows,
            max_size=rows,
        )
    )
    values = np.array([[v for v, _ in row] for row in drawn], dtype=np.int64)
    masked = np.array([[m for _, m in row] for row in drawn], dtype=np.bool_)
    values, masked = values.reshape(rows, len(measures)), masked.reshape(rows, len(measures))
    leader = data.draw(st.sampled_from(measures))
    written = area_properties(measures, leader, values, masked)
    for row, members in enumerate(written):
        hidden = [name for name, mask in zip(measures, masked[row], strict=True) if mask]
        assert orjson.loads(b"{" + members + b"}") == {
            **{
                name: None if mask else int(value)
                for name, value, mask in zip(measures, values[row], masked[row], strict=True)
            },
            "suppressed": leader in hidden,
            "suppressed_counts": hidden,
        }
