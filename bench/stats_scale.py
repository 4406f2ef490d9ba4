"""Stats latency at scale on PostgreSQL, next to a plain GROUP BY over the raw encounters.

    .venv/bin/python bench/stats_scale.py                 # 50,000 encounters, under a minute
    .venv/bin/python bench/stats_scale.py --full          # 1 million, then 10 million

For each size: a fresh database built by the migrations; a year of synthetic
encounters (realistic kits, services, referrals, a population of person refs, the
hexagons of the service area) copied straight into ``encounters`` with psycopg's
COPY, and their rollups computed by the service's own ``rollups.Deltas`` (the code
every sync runs) and copied alongside. Then each stats request runs through the
whole Flask stack in process (token check, audit event, suppression, JSON), timed
over ``--repeat`` calls after warm-up, and the raw-table GROUP BY runs over the same
period through psycopg. Each map and each filtered request is timed again right
after a sync of the last two days by one association (its spans' and the counters'
generations replaced before each call, untimed, as ``writes.record`` replaces them), and
as a new worker's first, its spans read and its default maps published ahead as
gunicorn has each new worker do (the read-ahead timed apart; the 90-day map is not one
of those published ahead); each hexagon map also after every span changed (as after
``flask rollups rebuild``). Results go to ``bench/results/stats_scale.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import runpy
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import h3
import orjson
import psycopg
from shapely.geometry import mapping, shape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from outreach import create_app, read_ahead  # noqa: E402
from outreach.api.reads import READ_MODEL_KEY  # noqa: E402
from outreach.clock import PARIS, paris_today  # noqa: E402
from outreach.extensions import db  # noqa: E402
from outreach.migrate import upgrade  # noqa: E402
from outreach.models import OrgKind, Role  # noqa: E402
from outreach.models.rollups import DAY_WORDS  # noqa: E402
from outreach.services import accounts, periods  # noqa: E402
from outreach.services.context import OPERATOR  # noqa: E402
from outreach.services.crypto import person_key, record_key, wrap32  # noqa: E402
from outreach.services.demo import KIT_WEIGHTS, REFERRAL_WEIGHTS, SERVICE_WEIGHTS  # noqa: E402
from outreach.services.geo import (  # noqa: E402
    cell_geometry,
    cell_parent,
    geography,
    sector_geometries,
)
from outreach.services.rollups import (  # noqa: E402
    CELL_SPAN_KEY,
    CELL_SPAN_KEYS,
    CELL_SPAN_VALUES,
    TOTAL_KEY,
    Deltas,
    day_bit,
    spans_of,
)
from outreach.services.writes import new_token  # noqa: E402
from schemas.vocabulary import AGE_BANDS, GENDERS, SHIFT_KINDS, sector_features  # noqa: E402

DAYS = 365
TOTAL_COLUMNS = (*TOTAL_KEY, "value", "basis", "ckey")
CELL_SPAN_COLUMNS = (*CELL_SPAN_KEY, *CELL_SPAN_VALUES)
PEOPLE_POPULATION = 3_000
PASSWORD = "benchmark password 1234"
# The service's pepper (``bench_settings``): the loaded record keys are those it derives.
PEPPER = "bench-pepper-" + "p" * 32
ENCOUNTER_COLUMNS = (
    "id",
    "organisation_id",
    "created_by",
    "shift_id",
    "shift_kind",
    "occurred_at",
    "local_day",
    "cell",
    "sector",
    "setting",
    "people",
    "age_band",
    "gender",
    "first_contact",
    "ref_hash",
    "kits",
    "services",
    "referrals",
    "content_hash",
    "record_key",
    "version",
    "created_at",
    "updated_at",
)
# The positions of the cell keys in a cell span's measures: stored modulo 2^32.
SPAN_KEYS = [CELL_SPAN_VALUES.index(name) for name in CELL_SPAN_KEYS]


def _counter(amounts: list[int]) -> tuple[int, int, int]:
    """A counter's value, basis and cell key, as stored."""
    value, basis, key = amounts
    return value, basis, wrap32(key)


def _span(measures: list[int]) -> list[int]:
    """A cell span's measures, its keys as stored."""
    return [wrap32(m) if index in SPAN_KEYS else m for index, m in enumerate(measures)]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# Synthetic activity ------------------------------------------------------------------


# The scene concentrates on a few sites: this share of encounters falls in the sectors'
# hexagons and the two rings around them, the rest anywhere in the service area.
SCENE_SHARE = 0.7


def service_area_cells(resolution: int) -> list[tuple[str, str, float]]:
    """Every hexagon of the service area, its sector, and how often the scene is there."""
    area = next(f for f in sector_features() if f["properties"]["kind"] == "service_area")
    geography_ = geography(resolution)
    cells = []
    for cell in h3.geo_to_cells(mapping(shape(area["geometry"])), resolution):
        lat, lng = h3.cell_to_latlng(cell)
        try:
            snapped = geography_.snap(lat, lng)
        except ValueError:
            continue
        cells.append((snapped.cell, snapped.sector))
    sites = {c for c, sector in cells if sector != "hors_secteur"}
    near = {n for c in sites for n in h3.grid_disk(c, 2)}
    scene = [c for c, _s in cells if c in near]
    elsewhere = len(cells) - len(scene)
    weight = SCENE_SHARE / (1 - SCENE_SHARE) * elsewhere / max(1, len(scene))
    return [(c, sector, weight if c in near else 1.0) for c, sector in cells]


class Generator:
    """Deterministic encounters shaped like the demo's, over many more hexagons."""

    def __init__(self, organisations: list[tuple[uuid.UUID, uuid.UUID]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.organisations = organisations
        cells = service_area_cells(9)
        self.cells = [(cell, sector) for cell, sector, _w in cells]
        self.cell_weights = [w for _c, _s, w in cells]
        self.refs = [
            hashlib.sha256(f"bench-{i}".encode()).hexdigest() for i in range(PEOPLE_POPULATION)
        ]
        self.kinds = [*SHIFT_KINDS, "none"]

    def _weighted(self, weights: dict[str, int], k: int) -> list[str]:
        return self.rng.choices(list(weights), weights=list(weights.values()), k=k)

    def day(self, day: date, count: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        places = rng.choices(self.cells, weights=self.cell_weights, k=count)
        now = datetime.now(UTC)
        for cell, sector in places:
            organisation_id, worker_id = rng.choice(self.organisations)
            people = 1 if rng.random() < 0.8 else rng.randint(2, 6)
            alone = people == 1
            kits = {
                code: rng.randint(1, 4)
                for code in set(self._weighted(KIT_WEIGHTS, rng.randint(0, 3)))
            }
            referrals = []
            if rng.random() < 0.12:
                referrals.append(
                    {
                        "to": self._weighted(REFERRAL_WEIGHTS, 1)[0],
                        "structure": None,
                        "status": rng.choice(("proposed", "accepted", "accompanied")),
                    }
                )
            moment = datetime(
                day.year, day.month, day.day, rng.randint(0, 23), rng.randint(0, 59), tzinfo=PARIS
            )
            encounter_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            yield {
                "id": encounter_id,
                "organisation_id": organisation_id,
                "created_by": worker_id,
                "shift_id": None,
                "shift_kind": rng.choice(self.kinds),
                "occurred_at": moment,
                "local_day": day,
                "cell": cell,
                "sector": sector,
                "setting": "rue",
                "people": people,
                "age_band": rng.choice(AGE_BANDS) if alone else None,
                "gender": rng.choice(GENDERS) if alone else None,
                "first_contact": (rng.random() < 0.1) if alone else None,
                "ref_hash": rng.choice(self.refs) if alone and rng.random() < 0.6 else None,
                "kits": kits,
                "services": sorted(set(self._weighted(SERVICE_WEIGHTS, rng.randint(0, 2)))),
                "referrals": referrals,
                "content_hash": hashlib.sha256(encounter_id.bytes).hexdigest(),
                "record_key": record_key(PEPPER, encounter_id),
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }


def load(url: str, size: int, generator: Generator, last_day: date) -> dict[str, Any]:
    """Copy ``size`` encounters over the year ending ``last_day``, with their rollups."""
    started = time.perf_counter()
    per_day, extra = divmod(size, DAYS)
    counts = {
        "encounters": 0,
        "rollup_sectors": 0,
        "rollup_cells": 0,
        "rollup_people": 0,
        "rollup_totals": 0,
        "rollup_cell_spans": 0,
        "rollup_person_years": 0,
    }
    # Week and month counters and person-year bitmaps gather over the load, copied last.
    coarse: dict[tuple[Any, ...], list[int]] = {}
    coarse_cells: dict[tuple[Any, ...], list[int]] = {}
    person_years: dict[tuple[Any, ...], list[int]] = {}
    with psycopg.connect(url) as connection:
        for offset in range(DAYS):
            day = last_day - timedelta(days=DAYS - 1 - offset)
            deltas = Deltas()
            columns = ", ".join(ENCOUNTER_COLUMNS)
            with (
                connection.cursor() as cursor,
                cursor.copy(f"COPY encounters ({columns}) FROM STDIN") as copy,
            ):
                for row in generator.day(day, per_day + (1 if offset < extra else 0)):
                    deltas.add(row)
                    copy.write_row(
                        [
                            orjson.dumps(row[name]).decode()
                            if name in ("kits", "services", "referrals")
                            else row[name]
                            for name in ENCOUNTER_COLUMNS
                        ]
                    )
                    counts["encounters"] += 1
            counts["rollup_sectors"] += _copy(
                connection,
                "rollup_sectors",
                (
                    "day",
                    "organisation_id",
                    "sector",
                    "shift_kind",
                    "metric",
                    "value",
                    "basis",
                    "ckey",
                ),
                ((*k, *_counter(v)) for k, v in deltas.sectors.items()),
            )
            counts["rollup_cells"] += _copy(
                connection,
                "rollup_cells",
                (
                    "day",
                    "organisation_id",
                    "sector",
                    "shift_kind",
                    "cell",
                    "metric",
                    "value",
                    "basis",
                    "ckey",
                ),
                ((*k, *_counter(v)) for k, v in deltas.cells.items()),
            )
            counts["rollup_people"] += _copy(
                connection,
                "rollup_people",
                ("day", "organisation_id", "sector", "shift_kind", "ref_hash", "encounters"),
                ((*k, v) for k, v in deltas.people.items()),
            )
            totals = deltas.totals()
            counts["rollup_totals"] += _copy(
                connection,
                "rollup_totals",
                TOTAL_COLUMNS,
                ((*k, *_counter(v)) for k, v in totals.items() if k[0] == "day"),
            )
            for key, (value, basis, cell_key) in totals.items():
                if key[0] != "day":
                    amounts = coarse.setdefault(key, [0, 0, 0])
                    amounts[0] += value
                    amounts[1] += basis
                    amounts[2] += cell_key
            cell_spans = deltas.cell_spans()
            counts["rollup_cell_spans"] += _copy(
                connection,
                "rollup_cell_spans",
                CELL_SPAN_COLUMNS,
                ((*k, *_span(v)) for k, v in cell_spans.items() if k[0] == "day"),
            )
            for key, measures in cell_spans.items():
                if key[0] != "day":
                    amounts = coarse_cells.setdefault(key, [0] * len(measures))
                    for index, amount in enumerate(measures):
                        amounts[index] += amount
            for person_day, organisation_id, _sector, _kind, ref_hash in deltas.people:
                word, bit = day_bit(person_day)
                words = person_years.setdefault(
                    (person_day.year, organisation_id, ref_hash), [0] * len(DAY_WORDS)
                )
                words[word] |= bit
            connection.commit()
            if offset % 30 == 29 or offset == DAYS - 1:
                rate = counts["encounters"] / (time.perf_counter() - started)
                log(
                    f"  loaded {counts['encounters']:,} encounters "
                    f"({offset + 1} days, {rate:,.0f}/s)"
                )
        counts["rollup_totals"] += _copy(
            connection,
            "rollup_totals",
            TOTAL_COLUMNS,
            ((*k, *_counter(v)) for k, v in coarse.items()),
        )
        counts["rollup_cell_spans"] += _copy(
            connection,
            "rollup_cell_spans",
            CELL_SPAN_COLUMNS,
            ((*k, *_span(v)) for k, v in coarse_cells.items()),
        )
        counts["rollup_person_years"] += _copy(
            connection,
            "rollup_person_years",
            ("year", "organisation_id", "ref_hash", *DAY_WORDS, "person_key"),
            ((*k, *v, person_key(k[2])) for k, v in person_years.items()),
        )
        # Every span of every organisation at its first generation, as after a sync.
        connection.execute(
            "INSERT INTO rollup_span_generations (span, start, organisation_id, generation) "
            "SELECT DISTINCT span, start, organisation_id, 1 FROM rollup_cell_spans"
        )
        connection.commit()
        with connection.cursor() as cursor:
            connection.autocommit = True
            cursor.execute("VACUUM ANALYZE")
    counts["load_seconds"] = round(time.perf_counter() - started, 1)
    return counts


def _copy(
    connection: psycopg.Connection[Any],
    table: str,
    columns: tuple[str, ...],
    rows: Iterator[tuple[Any, ...]],
) -> int:
    written = 0
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


# Measuring -------------------------------------------------------------------------


def timed(
    call: Callable[[], Any], repeat: int, warmup: int, before: Callable[[], Any] = lambda: None
) -> dict[str, float]:
    """Latency of ``call``; ``before`` runs ahead of each call, untimed."""
    for _ in range(warmup):
        before()
        call()
    samples = []
    for _ in range(repeat):
        before()
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(percentile(samples, 0.95), 2),
        "max_ms": round(max(samples), 2),
        "runs": repeat,
    }


def measure(
    app: Any, url: str, token: str, first: date, last: date, repeat: int, raw_repeat: int
) -> dict[str, Any]:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    month_from = last - timedelta(days=29)

    def request(path: str) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path, headers=headers)
            # The whole body, as a client receives it: a streamed response is only
            # written as it is read.
            body = response.get_data()
            assert response.status_code == 200, body[:300]
            return body

        return call

    # Protected requests name periods of the grid (services/periods.py): the default
    # last whole week, the last whole month, its quarter and the year as published.
    today = last + timedelta(days=1)
    week = periods.last_whole_week(today).name
    last_month = periods.month_period(today.replace(day=1) - timedelta(days=1))
    quarter = f"{last_month.start.year}-Q{(last_month.start.month - 1) // 3 + 1}"
    year = str(last_month.start.year)
    endpoints = {
        "summary, week": f"/api/v1/stats/summary?period={week}",
        "summary, year": f"/api/v1/stats/summary?period={year}",
        "summary, week, one sector": f"/api/v1/stats/summary?period={week}&sector=stalingrad",
        "summary, year, one sector": f"/api/v1/stats/summary?period={year}&sector=stalingrad",
        "timeseries by week, year, one sector": (
            f"/api/v1/stats/timeseries?bucket=week&period={year}&sector=stalingrad"
        ),
        "sector map, year": f"/api/v1/stats/sectors?period={year}",
        "map res 8, week": f"/api/v1/stats/map?period={week}&resolution=8",
        "map res 9, week": f"/api/v1/stats/map?period={week}",
        "map res 9, month": f"/api/v1/stats/map?period={last_month.name}",
        "map res 9, year": f"/api/v1/stats/map?period={year}",
        "map res 9, quarter": f"/api/v1/stats/map?period={quarter}",
        "timeseries by week, year": f"/api/v1/stats/timeseries?bucket=week&period={year}",
    }
    results: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as writer:
        organisation = writer.execute(
            "SELECT min(organisation_id::text) FROM rollup_span_generations"
        ).fetchone()
        synced_spans = sorted(
            {span for day in (last - timedelta(days=1), last) for span in spans_of(day)}
        )

        def raise_generation() -> None:
            writer.execute(
                "INSERT INTO rollup_generation (id, generation) VALUES (1, %s) ON CONFLICT (id)"
                " DO UPDATE SET generation = excluded.generation",
                (new_token(),),
            )

        def sync_of_the_last_two_days() -> None:
            # What one association's sync of encounters of the last two days does to the
            # generations (writes.record): each day's, week's and month's span of that
            # organisation, then the counters' own, replaced by a new token.
            token = new_token()
            for span, start in synced_spans:
                writer.execute(
                    "UPDATE rollup_span_generations SET generation = %s "
                    "WHERE span = %s AND start = %s AND organisation_id = %s",
                    (token, span, start, organisation[0] if organisation else None),
                )
            raise_generation()

        def every_span_changed() -> None:
            # As after `flask rollups rebuild`: nothing kept holds.
            writer.execute("UPDATE rollup_span_generations SET generation = %s", (new_token(),))
            raise_generation()

        read_ahead_ms: list[float] = []

        def new_worker() -> None:
            # A worker just started: nothing published, kept or serialised, its spans
            # read and maps published ahead as gunicorn has each new worker do
            # (outreach.read_ahead), timed apart.
            cell_geometry.cache_clear()
            cell_parent.cache_clear()
            sector_geometries.cache_clear()
            app.extensions[READ_MODEL_KEY].invalidate()
            started = time.perf_counter()
            read_ahead(app)
            read_ahead_ms.append((time.perf_counter() - started) * 1000)

        for name, path in endpoints.items():
            results[name] = timed(request(path), repeat, warmup=3)
            log(f"  {name}: p50 {results[name]['p50_ms']} ms, p95 {results[name]['p95_ms']} ms")
            changes = (
                ("after a sync of the last two days", sync_of_the_last_two_days, repeat),
                # Each read-ahead reads a year of rows: a few runs.
                ("a new worker's first, read ahead", new_worker, min(repeat, 3)),
            )
            if "one sector" in name or "sector map" in name:
                # Every day row read again after a rebuild: HUP the workers (README).
                pass
            elif "map" in name:
                changes += (("after every span changed", every_span_changed, repeat),)
            else:
                continue
            for change, before, runs in changes:
                cold = f"{name}, {change}"
                results[cold] = timed(request(path), runs, warmup=1, before=before)
                log(f"  {cold}: p50 {results[cold]['p50_ms']} ms, p95 {results[cold]['p95_ms']} ms")
        results["a new worker's read-ahead of the spans (outreach.read_ahead)"] = {
            "p50_ms": round(statistics.median(read_ahead_ms), 2),
            "p95_ms": round(percentile(read_ahead_ms, 0.95), 2),
            "max_ms": round(max(read_ahead_ms), 2),
            "runs": len(read_ahead_ms),
        }
        log(f"  a new worker's read-ahead: p50 {statistics.median(read_ahead_ms):.0f} ms")
    raw_queries = {
        "raw GROUP BY sector, 30 days": (
            "SELECT sector, count(*), sum(people), count(DISTINCT ref_hash) FROM encounters "
            "WHERE local_day BETWEEN %s AND %s AND deleted_at IS NULL GROUP BY sector",
            (month_from, last),
        ),
        "raw GROUP BY sector, 365 days": (
            "SELECT sector, count(*), sum(people), count(DISTINCT ref_hash) FROM encounters "
            "WHERE local_day BETWEEN %s AND %s AND deleted_at IS NULL GROUP BY sector",
            (first, last),
        ),
        "raw GROUP BY cell, 30 days": (
            "SELECT cell, count(*), sum(people) FROM encounters "
            "WHERE local_day BETWEEN %s AND %s AND deleted_at IS NULL GROUP BY cell",
            (month_from, last),
        ),
        "raw GROUP BY cell, 365 days": (
            "SELECT cell, count(*), sum(people) FROM encounters "
            "WHERE local_day BETWEEN %s AND %s AND deleted_at IS NULL GROUP BY cell",
            (first, last),
        ),
    }
    with psycopg.connect(url) as connection:
        for name, (sql, params) in raw_queries.items():
            with connection.cursor() as cursor:
                results[name] = timed(
                    lambda c=cursor, q=sql, p=params: c.execute(q, p).fetchall(),  # type: ignore[misc]
                    raw_repeat,
                    warmup=1,
                )
            log(f"  {name}: p50 {results[name]['p50_ms']} ms, p95 {results[name]['p95_ms']} ms")
    return results


def table_sizes(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        sizes = {}
        for table in (
            "encounters",
            "rollup_sectors",
            "rollup_cells",
            "rollup_totals",
            "rollup_cell_spans",
            "rollup_people",
            "rollup_person_years",
        ):
            rows, size = cursor.execute(
                f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}"
            ).fetchone() or (0, 0)
            sizes[table] = {"rows": rows, "megabytes": round(size / 2**20, 1)}
        return sizes


# Running -----------------------------------------------------------------------------


def bench_settings(sqlalchemy_url: str) -> Settings:
    return Settings(
        env="testing",
        database_url=sqlalchemy_url,
        secret_key="bench-secret-key-" + "s" * 32,
        jwt_secret="bench-jwt-secret-" + "j" * 32,
        pepper=PEPPER,
        argon2_time_cost=1,
        argon2_memory_kib=8,
        login_rate="100000 per minute",
        instance_path=ROOT / "instance" / "bench",
    )


def create_accounts(app: Any) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Three associations with a worker each, and the coordinator who reads."""
    with app.app_context():
        session = db.session
        passwords = app.extensions["outreach.security"].passwords

        def user(username: str, role: Role, organisation_id: uuid.UUID) -> uuid.UUID:
            new = accounts.NewUser(
                username=username, password=PASSWORD, role=role, organisation_id=organisation_id
            )
            return accounts.create_user(session, OPERATOR, passwords, new).id

        organisations = []
        for index in range(3):
            organisation, _ = accounts.get_or_create_organisation(
                session,
                OPERATOR,
                slug=f"assoc-{index}",
                name=f"Association {index}",
                kind=OrgKind.ASSOCIATION,
            )
            organisations.append(
                (organisation.id, user(f"worker-{index}", Role.WORKER, organisation.id))
            )
        city, _ = accounts.get_or_create_organisation(
            session, OPERATOR, slug="ville", name="Ville", kind=OrgKind.CITY
        )
        user("coordinator", Role.COORDINATOR, city.id)
    return organisations


def loaded_days(url: str) -> tuple[int, date | None]:
    """How many encounters a benchmark database holds, and its last day."""
    try:
        with psycopg.connect(url) as connection:
            row = connection.execute("SELECT count(*), max(local_day) FROM encounters").fetchone()
    except psycopg.Error:
        return 0, None
    return (int(row[0]), row[1]) if row else (0, None)


def run_size(
    admin_url: str, size: int, repeat: int, raw_repeat: int, keep: bool, reuse: bool
) -> dict[str, Any]:
    name = f"outreach_bench_stats_{size}"
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    sqlalchemy_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    count, data_last = loaded_days(url)
    if reuse and count == size and data_last is not None:
        log(f"reusing {name}: {size:,} encounters up to {data_last}")
        upgrade(sqlalchemy_url)
        app = create_app(bench_settings(sqlalchemy_url))
        loaded: dict[str, Any] = {"encounters": size, "reused": True}
    else:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        log(f"{size:,} encounters into {name}")
        upgrade(sqlalchemy_url)
        app = create_app(bench_settings(sqlalchemy_url))
        organisations = create_accounts(app)
        data_last = paris_today() - timedelta(days=1)
        loaded = load(url, size, Generator(organisations, seed=size), data_last)
    # The periods end yesterday in Paris as the run measures, not as the data was
    # loaded: those are the periods each worker reads and publishes ahead, and a load
    # may cross midnight in Paris (23:00 UTC in winter) or a kept database be reused.
    last = paris_today() - timedelta(days=1)
    first = last - timedelta(days=DAYS - 1)
    if data_last != last:
        log(f"the data ends {data_last}; the periods end {last}, yesterday in Paris")
    token = (
        app.test_client()
        .post("/api/v1/auth/login", json={"username": "coordinator", "password": PASSWORD})
        .get_json()["access_token"]
    )
    # As a gunicorn worker does once it has loaded the app (gunicorn.conf.py).
    runpy.run_path(str(ROOT / "gunicorn.conf.py"))["post_worker_init"](None)
    latencies = measure(app, url, token, first, last, repeat, raw_repeat)
    result = {
        "size": size,
        "loaded": loaded,
        "periods_end": last.isoformat(),
        "tables": table_sizes(url),
        "latency": latencies,
    }
    db.engine_for(app).dispose()
    if not keep:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000])
    parser.add_argument("--full", action="store_true", help="1 million and 10 million encounters")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per stats request")
    parser.add_argument("--raw-repeat", type=int, default=5, help="timed runs per raw query")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="measure a database kept earlier instead of loading"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "stats_scale.json"
    )
    args = parser.parse_args()
    sizes = [1_000_000, 10_000_000] if args.full else args.sizes
    with psycopg.connect(args.admin_url) as connection:
        server = connection.execute("SHOW server_version").fetchone()
    report = {
        "benchmark": "stats_scale",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgresql": server[0] if server else None,
            "platform": platform.platform(),
        },
        "runs": [
            run_size(
                args.admin_url,
                size,
                args.repeat,
                args.raw_repeat,
                args.keep or args.reuse,
                args.reuse,
            )
            for size in sizes
        ],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"results written to {args.output}")


if __name__ == "__main__":
    main()
