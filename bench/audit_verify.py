"""How fast the audit chain verifies: ``flask audit verify`` over N events on PostgreSQL.

    .venv/bin/python bench/audit_verify.py                     # 100,000 events, seconds
    .venv/bin/python bench/audit_verify.py --events 1000000    # the target's size

A fresh database built by the migrations receives N chained events, hashed by the
service's own ``canonical_payload`` and ``chain_hash`` and copied in with COPY (events
shaped like real ones: actor, role, action, parameters, request id, client hash).
Then the operator's command runs as a subprocess, exactly as an operator would run
it, and its wall time gives events per second. Results go to
``bench/results/audit_verify.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import phones
import psycopg

ROOT = phones.ROOT
sys.path.insert(0, str(ROOT))

from outreach.services.audit import GENESIS_HASH, canonical_payload, chain_hash  # noqa: E402

COLUMNS = (
    "seq",
    "at",
    "actor_user_id",
    "actor_org_id",
    "actor_role",
    "action",
    "target",
    "params",
    "records",
    "outcome",
    "request_id",
    "client_hash",
    "prev_hash",
    "hash",
)
ACTIONS = (
    ("sync", "worker", {"created": 120, "duplicate": 0, "conflict": 0, "invalid": 1}),
    ("stats.summary", "coordinator", {"from": "2026-10-24", "to": "2026-11-22", "sector": None}),
    ("encounters.read", "org_admin", {"from": None, "to": None, "page": 1}),
    ("auth.login", "worker", {}),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load(url: str, count: int) -> float:
    started = time.perf_counter()
    users = [uuid.uuid4() for _ in range(50)]
    organisations = [uuid.uuid4() for _ in range(5)]
    at = datetime.now(UTC) - timedelta(days=300)
    prev = GENESIS_HASH
    columns = ", ".join(COLUMNS)
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # bulk load, no triggers
        with cursor.copy(f"COPY audit_events ({columns}) FROM STDIN") as copy:
            for seq in range(1, count + 1):
                action, role, params = ACTIONS[seq % len(ACTIONS)]
                fields: dict[str, Any] = {
                    "seq": seq,
                    "at": at + timedelta(milliseconds=25 * seq),
                    "actor_user_id": users[seq % len(users)],
                    "actor_org_id": organisations[seq % len(organisations)],
                    "actor_role": role,
                    "action": action,
                    "target": None,
                    "params": params,
                    "records": seq % 500,
                    "outcome": "success",
                    "request_id": uuid.UUID(int=seq).hex,
                    "client_hash": "c" * 64,
                    "prev_hash": prev,
                }
                prev = chain_hash(prev, canonical_payload(fields))
                row = [fields[name] for name in COLUMNS[:-1]]
                row[COLUMNS.index("params")] = orjson.dumps(params).decode()
                copy.write_row([*row, prev])
                if seq % 200_000 == 0:
                    log(f"  {seq:,} events written")
        connection.commit()
        connection.autocommit = True
        cursor.execute("VACUUM ANALYZE audit_events")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "audit_verify.json"
    )
    args = parser.parse_args()
    name = f"outreach_bench_audit_{args.events}"
    url = phones.fresh_database(name)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM")
    log(f"writing {args.events:,} chained events into {name}")
    load_seconds = load(url, args.events)
    environment = phones.service_environment(url, ROOT / "instance" / "bench")
    log("flask audit verify")
    started = time.perf_counter()
    result = phones.flask(environment, "audit", "verify")
    seconds = time.perf_counter() - started
    log(result.stdout.strip() or result.stderr.strip())
    if result.returncode != 0:
        raise SystemExit(result.returncode)
    rate = args.events / seconds
    log(
        f"{args.events:,} events verified in {seconds:.1f} s: {rate:,.0f} events/s "
        "(process start included)"
    )
    phones.drop_database(name)
    report = {
        "benchmark": "audit_verify",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "events": args.events,
        "load_seconds": round(load_seconds, 1),
        "verify_seconds": round(seconds, 2),
        "events_per_second": round(rate),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
