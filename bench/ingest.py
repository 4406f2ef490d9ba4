"""Ingest throughput on PostgreSQL under gunicorn, next to what PostgreSQL itself can take.

    .venv/bin/python bench/ingest.py            # small: ~10,000 encounters, under a minute
    .venv/bin/python bench/ingest.py --full     # 8/16/32 clients x 100/250/500 items
    .venv/bin/python bench/ingest.py --full --repeat 3   # each one 3 times: medians

The service runs under gunicorn (``gunicorn.conf.py``: 2 workers, as many as cores)
on a fresh database. The simulated phones of ``bench/phones.py`` are the clients,
each on its own connection, every body drawn before the clock starts; the network
does not drop here (``phones.py`` proves resends). For each number of clients and
batch size: encounters per second and batch latency p50/p99. Then 32 phones each
send encounters one at a time (their shifts synced first, untimed): p50/p99 of a
sync, as fast as the answers come (closed loop: the saturation), then at fixed offered
rates (open loop, ``--single-rates``: the latency a phone sees at that load), and the
highest of those rates at which the p99 stayed under the 50 ms target.

Every measured phase starts with ``ANALYZE`` of its database, as autovacuum keeps a
production server's planner statistics (this machine's PostgreSQL runs without it), and
reports the CPU it cost: the gunicorn workers' and every PostgreSQL process's, per
encounter for batches and per sync for single encounters (``phones.CpuMeter``).

The limit, the moment each service run ends (the service idle): the very rows the
service stores (built by the service's own code before the run, untimed) and their
rollup increments, written with psycopg straight to a fresh database by as many
connections, one transaction per batch, with no HTTP, no validation and no audit.
``ratio`` is the service's rate over it.

Peak RSS of each gunicorn worker (VmHWM) is read at the end. Results go to
``bench/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import phones
import psycopg

ROOT = phones.ROOT
sys.path.insert(0, str(ROOT))

from config import load_settings  # noqa: E402
from outreach.models import NO_SHIFT  # noqa: E402
from outreach.models.rollups import DAY_WORDS  # noqa: E402
from outreach.services.crypto import person_key, wrap32  # noqa: E402
from outreach.services.rollups import (  # noqa: E402
    CELL_SPAN_KEYS,
    CELL_SPAN_VALUES,
    Deltas,
    person_year_bits,
)
from outreach.services.sync import EncounterBuilder, shift_row  # noqa: E402
from schemas.sync import EncounterSchema, ShiftSchema  # noqa: E402

DATABASE = "outreach_bench_ingest"
LIMIT_DATABASE = "outreach_bench_ingest_limit"
# Reported as medians when a configuration is run several times (--repeat).
MEDIAN_FIGURES = (
    "encounters_per_second",
    "batch_p50_ms",
    "batch_p99_ms",
    "limit_encounters_per_second",
    "ratio",
)


def analyze(database_url: str) -> None:
    """Planner statistics for every table, as autovacuum would have gathered them."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("ANALYZE")


def cpu_split(cpu: dict[str, float | int] | None, count: int) -> dict[str, float]:
    """The service's and PostgreSQL's CPU per item (ms), from a fleet's meter."""
    assert cpu is not None
    if cpu["processes_lost"]:
        phones.log(f"  warning: {cpu['processes_lost']} measured processes ended mid-run")
    service, database = cpu["service"] * 1000 / count, cpu["postgresql"] * 1000 / count
    return {
        "service": round(service, 3),
        "postgresql": round(database, 3),
        "total": round(service + database, 3),
    }


def run_load(
    url: str,
    plans: dict[str, tuple[list[phones.Batch], int, int]],
    size: int,
    seed: str,
    master: int,
) -> dict[str, Any]:
    """The phones of ``plans`` syncing their batches of ``size`` items at once."""
    cpu = time.process_time()
    result = phones.run_fleet(url, plans, drop=0.0, seed=seed, meter=phones.CpuMeter(master))
    cpu = time.process_time() - cpu
    problems = [p for report in result.reports for p in report.problems]
    if problems:
        raise SystemExit(f"the load run failed: {problems[:3]}")
    latencies = result.latencies
    return {
        "clients": len(plans),
        "batch_items": size,
        "encounters": result.encounters,
        "batches": len(latencies),
        "seconds": round(result.seconds, 2),
        "encounters_per_second": round(result.encounters / result.seconds),
        "batch_p50_ms": round(phones.percentile(latencies, 0.5) * 1000, 1),
        "batch_p99_ms": round(phones.percentile(latencies, 0.99) * 1000, 1),
        # The phones run on the same two cores: what they take, the service lacks.
        "client_cpu_share": cpu_share(cpu, result.seconds),
        "cpu_ms_per_encounter": cpu_split(result.cpu, result.encounters),
    }


def cpu_share(cpu_seconds: float, seconds: float) -> float:
    """CPU time as a share of the whole machine's over ``seconds``."""
    return round(cpu_seconds / (seconds * (os.cpu_count() or 1)), 3)


def run_single(
    url: str,
    database_url: str,
    master: int,
    accounts: dict[str, list[str]],
    clients: int,
    per_phone: int,
    seed: str,
    rate: float | None = None,
) -> dict[str, Any]:
    """Phones online: each of ``per_phone`` encounters synced alone, the phone's shifts
    synced first (neither timed nor metered). Every phone sends as many, so that all
    ``clients`` are busy to the end and an offered rate holds.

    Closed loop without ``rate`` (each phone sends the next as soon as it has the answer:
    the server's saturation); open loop with it (the fleet sends ``rate`` syncs a second
    whatever the answers, latency counted from when each was due)."""
    chosen = _first(accounts, clients)
    # Enough days that the quietest phone has its share (about ten encounters a day).
    plans = phones.plan_fleet(chosen, per_phone // 4 + 2, 500, seed)
    queues = {
        username: [item for batch in queue for item in batch.encounters]
        for username, (queue, _, _) in plans.items()
    }
    length = min(per_phone, *(len(queue) for queue in queues.values()))
    shifts: dict[str, tuple[list[phones.Batch], int, int]] = {}
    singles: dict[str, tuple[list[phones.Batch], int, int]] = {}
    for username, (queue, _, count) in plans.items():
        every_shift = [shift for batch in queue for shift in batch.shifts]
        shifts[username] = ([phones.Batch(every_shift, [])], 0, count)
        singles[username] = (
            [phones.Batch([], [item]) for item in queues[username][:length]],
            length,
            0,
        )
    phones.run_fleet(url, shifts, drop=0.0, seed=seed)
    analyze(database_url)
    result = phones.run_fleet(
        url, singles, drop=0.0, seed=seed, rate=rate, meter=phones.CpuMeter(master)
    )
    problems = [p for report in result.reports for p in report.problems]
    if problems:
        raise SystemExit(f"the single-encounter run failed: {problems[:3]}")
    latencies = result.latencies
    return {
        "clients": clients,
        "loop": f"open, {rate:g} syncs/s offered" if rate else "closed",
        "rate": rate,
        "syncs": len(latencies),
        "seconds": round(result.seconds, 2),
        "syncs_per_second": round(len(latencies) / result.seconds),
        "p50_ms": round(phones.percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(phones.percentile(latencies, 0.99) * 1000, 1),
        "cpu_ms_per_sync": cpu_split(result.cpu, len(latencies)),
    }


# Issue 7's latency target for a single-encounter sync from 32 phones.
SINGLE_P99_TARGET_MS = 50.0


def single_capacity(singles: list[dict[str, Any]]) -> float | None:
    """The highest offered rate (syncs/s) at which the p99 stayed under the target, and
    every lower rate's too; ``None`` if not even the lowest did."""
    capacity = None
    for single in sorted((s for s in singles if s["rate"]), key=lambda s: s["rate"]):
        if single["p99_ms"] >= SINGLE_P99_TARGET_MS:
            break
        capacity = single["rate"]
    return capacity


def _first(accounts: dict[str, list[str]], count: int) -> dict[str, list[str]]:
    """``count`` workers taken across associations in turn."""
    order = [name for group in zip(*accounts.values(), strict=False) for name in group]
    chosen = set(order[:count])
    return {slug: [u for u in names if u in chosen] for slug, names in accounts.items()}


def worker_peak_rss(master: int) -> list[int]:
    """VmHWM of each gunicorn worker, in MiB."""
    peaks = []
    for pid, parent, _name in phones.processes():
        if parent != master:
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        peaks.append(int(fields["VmHWM"].split()[0]) // 1024)
    return sorted(peaks)


# The limit --------------------------------------------------------------------------

SQL_SHIFTS = """
INSERT INTO shifts (id, organisation_id, created_by, kind, started_at, ended_at,
                    planned_sectors, content_hash, created_at)
SELECT * FROM json_to_recordset(%s::json) AS r(id uuid, organisation_id uuid,
  created_by uuid, kind text, started_at timestamptz, ended_at timestamptz,
  planned_sectors json, content_hash text, created_at timestamptz)
ON CONFLICT (organisation_id, id) DO NOTHING
"""
SQL_ENCOUNTERS = """
INSERT INTO encounters (id, organisation_id, created_by, shift_id, shift_kind, occurred_at,
  local_day, cell, sector, setting, people, age_band, gender, first_contact, ref_hash, kits,
  services, referrals, content_hash, record_key, version, created_at, updated_at)
SELECT *, 1, now(), now() FROM json_to_recordset(%s::json) AS r(id uuid,
  organisation_id uuid, created_by uuid, shift_id uuid, shift_kind text, occurred_at timestamptz,
  local_day date, cell text, sector text, setting text, people int, age_band text,
  gender text, first_contact bool, ref_hash text, kits json, services json, referrals json,
  content_hash text, record_key int)
ON CONFLICT (organisation_id, id) DO NOTHING RETURNING id
"""


def _wrapped(table: str, column: str) -> str:
    """A cell key's sum modulo 2^32, as ``dml.Upsert.wrapped`` has the service write it."""
    return (
        f"{column} = (({table}.{column}::bigint + excluded.{column} + 6442450944)"
        # %% : the statement goes through psycopg's %s placeholders.
        " %% 4294967296) - 2147483648"
    )


SQL_COUNTERS = {
    "rollup_sectors": (
        "day date, organisation_id uuid, sector text, shift_kind text, metric text,"
        " value bigint, basis bigint, ckey int",
        "day, organisation_id, sector, shift_kind, metric",
        "value = rollup_sectors.value + excluded.value,"
        " basis = rollup_sectors.basis + excluded.basis, " + _wrapped("rollup_sectors", "ckey"),
    ),
    "rollup_cells": (
        "day date, organisation_id uuid, sector text, shift_kind text, cell text, metric text,"
        " value bigint, basis bigint, ckey int",
        "day, organisation_id, sector, shift_kind, cell, metric",
        "value = rollup_cells.value + excluded.value, basis = rollup_cells.basis + excluded.basis, "
        + _wrapped("rollup_cells", "ckey"),
    ),
    "rollup_people": (
        "day date, organisation_id uuid, sector text, shift_kind text, ref_hash text,"
        " encounters int",
        "day, organisation_id, sector, shift_kind, ref_hash",
        "encounters = rollup_people.encounters + excluded.encounters",
    ),
    "rollup_totals": (
        "span text, start date, organisation_id uuid, metric text, value bigint, basis bigint,"
        " ckey int",
        "span, start, organisation_id, metric",
        "value = rollup_totals.value + excluded.value,"
        " basis = rollup_totals.basis + excluded.basis, " + _wrapped("rollup_totals", "ckey"),
    ),
    "rollup_cell_spans": (
        "span text, start date, organisation_id uuid, cell text, "
        + ", ".join(f"{name} int" for name in CELL_SPAN_VALUES),
        "span, start, organisation_id, cell",
        ", ".join(
            _wrapped("rollup_cell_spans", name)
            if name in CELL_SPAN_KEYS
            else f"{name} = rollup_cell_spans.{name} + excluded.{name}"
            for name in CELL_SPAN_VALUES
        ),
    ),
    "rollup_span_generations": (
        "span text, start date, organisation_id uuid, generation bigint",
        "span, start, organisation_id",
        "generation = rollup_span_generations.generation + excluded.generation",
    ),
    "rollup_person_years": (
        "year int, organisation_id uuid, ref_hash text, "
        + ", ".join(f"{word} bigint" for word in DAY_WORDS)
        + ", person_key int",
        "year, organisation_id, ref_hash",
        ", ".join(f"{word} = rollup_person_years.{word} | excluded.{word}" for word in DAY_WORDS),
    ),
}


def _counter_sql(table: str) -> str:
    columns, key, update = SQL_COUNTERS[table]
    names = ", ".join(part.split()[0] for part in columns.split(","))
    return (
        f"INSERT INTO {table} ({names}) SELECT * FROM json_to_recordset(%s::json) AS r({columns})"
        f" ON CONFLICT ({key}) DO UPDATE SET {update}"
    )


def stored_rows(
    plans: dict[str, tuple[list[phones.Batch], int, int]],
    owners: dict[str, tuple[uuid.UUID, uuid.UUID]],
) -> dict[str, list[list[tuple[str, bytes]]]]:
    """For each phone, each batch as the statements and JSON parameters the limit sends.

    The rows are built by the service's own code (schemas, builder, rollup deltas),
    so the limit writes exactly what the service writes.
    """
    settings = load_settings(
        {"OUTREACH_ENV": "development", "OUTREACH_INSTANCE_PATH": str(ROOT / "instance" / "bench")}
    )
    builder = EncounterBuilder(settings, datetime.now(UTC))
    kits = set(_kit_codes())
    out: dict[str, list[list[tuple[str, bytes]]]] = {}
    for username, (queue, _, _) in plans.items():
        organisation, user = owners[username]
        statements = []
        for batch in queue:
            shift_rows, kinds = [], {}
            for raw in batch.shifts:
                item = ShiftSchema().load(raw)
                shift_rows.append(
                    {**shift_row(item, organisation, user), "created_at": datetime.now(UTC)}
                )
                kinds[item["id"]] = item["kind"]
            rows, deltas = [], Deltas()
            for raw in batch.encounters:
                item = EncounterSchema().load(raw)
                row, errors = builder.build(
                    item, organisation, user, kinds.get(item["shift_id"], NO_SHIFT), kits, {}
                )
                assert row is not None, errors
                rows.append(row)
                deltas.add(row)
            cell_spans = deltas.cell_spans()
            statements.append(
                [
                    (SQL_SHIFTS, orjson.dumps(shift_rows)),
                    (SQL_ENCOUNTERS, orjson.dumps(rows)),
                    *(
                        (_counter_sql(table), orjson.dumps(_counter_rows(table, amounts)))
                        for table, amounts in (
                            ("rollup_sectors", deltas.sectors),
                            ("rollup_cells", deltas.cells),
                            ("rollup_totals", deltas.totals()),
                            ("rollup_cell_spans", cell_spans),
                            # Each changed span's generation changed, as writes.record marks it.
                            (
                                "rollup_span_generations",
                                {key[:3]: [1] for key in cell_spans},
                            ),
                            ("rollup_people", {k: [v] for k, v in deltas.people.items()}),
                            (
                                "rollup_person_years",
                                {
                                    key: [*words, person_key(key[2])]
                                    for key, words in person_year_bits(
                                        (day, organisation, ref)
                                        for day, organisation, _s, _k, ref in deltas.people
                                    ).items()
                                },
                            ),
                        )
                    ),
                ]
            )
        out[username] = statements
    return out


def _kit_codes() -> list[str]:
    vocabularies = json.loads((ROOT / "data" / "vocabularies.json").read_text())
    return [entry["code"] for entry in vocabularies["kits"]]


def _counter_rows(table: str, amounts: dict[tuple[Any, ...], list[int]]) -> list[dict[str, Any]]:
    names = [part.split()[0] for part in SQL_COUNTERS[table][0].split(",")]
    wrapped = {index for index, name in enumerate(names) if name in ("ckey", *CELL_SPAN_KEYS)}
    # Sorted keys, as the service sorts them, so concurrent batches cannot deadlock.
    return [
        {
            name: wrap32(value) if index in wrapped else value
            for index, (name, value) in enumerate(zip(names, (*key, *values), strict=True))
        }
        for key, values in sorted(amounts.items())
    ]


def run_limit(
    database_url: str, work: dict[str, list[list[tuple[str, bytes]]]]
) -> tuple[float, float]:
    """Every phone's batches written at once, one connection each; seconds taken and
    the CPU seconds of this process (the writer's own share of the machine)."""
    # Without JIT, as the service's own sessions run (outreach/models/engine.py).
    connections = {name: psycopg.connect(database_url, options="-c jit=off") for name in work}

    def write(name: str) -> None:
        connection = connections[name]
        for statements in work[name]:
            with connection.transaction():
                for sql, parameter in statements:
                    connection.execute(sql, (parameter.decode(),), prepare=True)

    cpu = time.process_time()
    seconds = phones.run_threads([functools.partial(write, name) for name in work])
    cpu = time.process_time() - cpu
    for connection in connections.values():
        connection.close()
    return seconds, cpu


def owners_of(database_url: str) -> dict[str, tuple[uuid.UUID, uuid.UUID]]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT u.username, u.organisation_id, u.id FROM users u WHERE u.username LIKE 'sim-%'"
        ).fetchall()
    return {username: (organisation, user) for username, organisation, user in rows}


def copy_accounts(source: str, target: str) -> None:
    """The limit's database gets the same organisations and users (foreign keys)."""
    with psycopg.connect(source) as src, psycopg.connect(target) as dst:
        for table in ("organisations", "users"):
            with (
                src.cursor().copy(f"COPY {table} TO STDOUT") as out,
                dst.cursor().copy(f"COPY {table} FROM STDIN") as into,
            ):
                for data in out:
                    into.write(data)
        dst.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--full", action="store_true", help="The full matrix: 8/16/32 clients x 100/250/500 items."
    )
    parser.add_argument("--clients", help="Comma-separated client counts (default 8,32).")
    parser.add_argument("--batches", help="Comma-separated batch sizes in items (default 500).")
    parser.add_argument("--days", type=int, help="Days of work each phone syncs (default 10).")
    parser.add_argument(
        "--single-rates",
        help="Syncs a second offered by the 32 single-encounter phones"
        " (default 50,100; 50,100,150,200 with --full).",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Service and limit pairs per configuration; the medians are reported (default 1).",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = parser.parse_args()
    clients = [int(n) for n in (args.clients or ("8,16,32" if args.full else "8,32")).split(",")]
    sizes = [int(n) for n in (args.batches or ("100,250,500" if args.full else "500")).split(",")]
    days = args.days or (90 if args.full else 10)
    single_syncs = 150 if args.full else 60
    single_rates = args.single_rates or ("50,100,150,200" if args.full else "50,100")
    seed = uuid.uuid4().hex[:8]

    database = phones.fresh_database(DATABASE)
    instance = ROOT / "instance" / "bench"
    environment = phones.service_environment(database, instance)
    # The single-encounter runs take 32 phones whatever the batch runs take.
    accounts = phones.create_accounts(
        environment, associations=4, workers=max(*clients, 32) // 4 + 1
    )
    runs: list[dict[str, Any]] = []
    port = phones.free_port()
    url = f"http://127.0.0.1:{port}"
    with phones.gunicorn(environment, port) as server:
        owners = owners_of(database)
        for count in clients:
            for size in sizes:
                pairs = []
                for repeat in range(args.repeat):
                    run_seed = f"{seed}-{count}-{size}-{repeat}"
                    plans = phones.plan_fleet(_first(accounts, count), days, size, run_seed)
                    limit = prepare_limit(plans, database, owners)
                    phones.log(
                        f"service: {count} clients, batches of {size} items, {days} days each"
                    )
                    analyze(database)
                    figures = run_load(url, plans, size, run_seed, server.pid)
                    split = figures["cpu_ms_per_encounter"]
                    phones.log(
                        f"  {figures['encounters']:,} encounters in {figures['seconds']} s: "
                        f"{figures['encounters_per_second']:,}/s, batch p50 "
                        f"{figures['batch_p50_ms']} ms, p99 {figures['batch_p99_ms']} ms; "
                        f"CPU per encounter {split['service']:.3f} ms service + "
                        f"{split['postgresql']:.3f} ms PostgreSQL; "
                        f"the phones took {figures['client_cpu_share']:.0%} of the CPU"
                    )
                    # The limit at once, the service idle: this machine's speed drifts
                    # within minutes, and a ratio of runs far apart would measure the drift.
                    measure_limit(figures, *limit)
                    pairs.append(figures)
                runs.append(median_of(pairs))
        singles = []
        for rate in [None, *(float(r) for r in single_rates.split(",") if r)]:
            loop = f"{rate:g} syncs/s offered (open loop)" if rate else "closed loop"
            phones.log(f"service: 32 clients, one encounter per sync, {loop}")
            single = run_single(
                url,
                database,
                server.pid,
                accounts,
                32,
                single_syncs,
                f"{seed}-single-{rate}",
                rate,
            )
            split = single["cpu_ms_per_sync"]
            phones.log(
                f"  {single['syncs']:,} syncs: {single['syncs_per_second']:,}/s, "
                f"p50 {single['p50_ms']} ms, p99 {single['p99_ms']} ms; CPU per sync "
                f"{split['service']:.2f} ms service + {split['postgresql']:.2f} ms PostgreSQL"
                f" = {split['total']:.2f} ms"
            )
            singles.append(single)
        capacity = single_capacity(singles)
        phones.log(
            f"single-encounter syncs from 32 phones: p99 under {SINGLE_P99_TARGET_MS:g} ms "
            + (f"up to {capacity:g} syncs/s offered" if capacity else "at no rate offered")
        )
        peaks = worker_peak_rss(server.pid)
        phones.log(f"peak RSS of the gunicorn workers: {peaks} MiB")

    phones.drop_database(DATABASE)

    report = {
        "benchmark": "ingest",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "server": "gunicorn -c gunicorn.conf.py (2 workers x 4 threads), PostgreSQL on this host",
        "runs": runs,
        "single_encounter": singles,
        "single_p99_under_target_up_to": single_capacity(singles),
        "worker_peak_rss_mib": peaks,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


def median_of(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's figures: each the (low) median over its service and limit pairs,
    every pair kept under ``pairs``."""
    if len(pairs) == 1:
        return pairs[0]
    summary: dict[str, Any] = {
        "clients": pairs[0]["clients"],
        "batch_items": pairs[0]["batch_items"],
        "encounters": sum(pair["encounters"] for pair in pairs),
    }
    for name in MEDIAN_FIGURES:
        summary[name] = statistics.median_low(pair[name] for pair in pairs)
    summary["pairs"] = pairs
    phones.log(
        f"  median of {len(pairs)}: {summary['encounters_per_second']:,}/s, limit "
        f"{summary['limit_encounters_per_second']:,}/s, ratio {summary['ratio']:.0%}"
    )
    return summary


def prepare_limit(
    plans: dict[str, tuple[list[phones.Batch], int, int]],
    database: str,
    owners: dict[str, tuple[uuid.UUID, uuid.UUID]],
) -> tuple[str, dict[str, list[list[tuple[str, bytes]]]]]:
    """A fresh database and the statements the limit will send: built before the service
    runs (the longest step at full size), so that the limit runs the moment it is done."""
    work = stored_rows(plans, owners)
    limit_database = phones.fresh_database(LIMIT_DATABASE)
    copy_accounts(database, limit_database)
    return limit_database, work


def measure_limit(
    figures: dict[str, Any], limit_database: str, work: dict[str, list[list[tuple[str, bytes]]]]
) -> None:
    """The rows the service run stored, written by psycopg alone to their fresh database."""
    analyze(limit_database)
    seconds, cpu = run_limit(limit_database, work)
    limit = round(figures["encounters"] / seconds)
    figures["limit_encounters_per_second"] = limit
    figures["limit_client_cpu_share"] = cpu_share(cpu, seconds)
    figures["ratio"] = round(figures["encounters_per_second"] / limit, 2)
    _check_limit(limit_database, figures["encounters"])
    phones.log(
        f"  limit, {figures['clients']} connections: {limit:,}/s (its writer took "
        f"{figures['limit_client_cpu_share']:.0%} of the CPU); the service reaches "
        f"{figures['ratio']:.0%}"
    )
    phones.drop_database(LIMIT_DATABASE)


def _check_limit(database_url: str, expected: int) -> None:
    with psycopg.connect(database_url) as connection:
        stored = connection.execute("SELECT count(*) FROM encounters").fetchone()
        counted = connection.execute(
            "SELECT sum(value) FROM rollup_sectors WHERE metric = 'encounters'"
        ).fetchone()
    if not stored or not counted or stored[0] != expected or counted[0] != expected:
        raise SystemExit(
            f"the limit run stored {stored} encounters, counted {counted}, not {expected}"
        )


if __name__ == "__main__":
    main()
