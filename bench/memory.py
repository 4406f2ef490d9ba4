"""Peak memory of ``flask seed-demo --days N`` on a fresh PostgreSQL database.

    .venv/bin/python bench/memory.py               # 60 days, seconds
    .venv/bin/python bench/memory.py --days 365    # the target's size

The command runs as an operator would run it, in its own process; its peak resident
set (``ru_maxrss`` of the finished child) and its duration are recorded in
``bench/results/memory.json``. The gunicorn workers' peak during ingest is recorded
by ``bench/ingest.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import phones

ROOT = phones.ROOT
DATABASE = "outreach_bench_memory"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "memory.json")
    args = parser.parse_args()
    database = phones.fresh_database(DATABASE)
    environment = phones.service_environment(database, ROOT / "instance" / "bench")
    phones.log(f"flask seed-demo --days {args.days}")
    started = time.perf_counter()
    completed = phones.flask(environment, "seed-demo", "--days", str(args.days))
    if completed.returncode != 0:
        raise SystemExit(completed.stderr)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    created = next(
        line for line in completed.stdout.splitlines() if line.startswith("Encounters created")
    )
    phones.log(f"{created}; {seconds:.1f} s, peak RSS {peak_mib} MiB")
    phones.drop_database(DATABASE)
    report = {
        "benchmark": "memory",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seed_demo": {
            "days": args.days,
            "encounters": int(created.rsplit(" ", 1)[1].rstrip(".")),
            "seconds": round(seconds, 1),
            "peak_rss_mib": peak_mib,
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
