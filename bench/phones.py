"""A fleet of simulated phones: log in, queue encounters offline, sync over real HTTP.

    .venv/bin/python bench/phones.py                       # 24 phones, 3 associations, ~20 s
    .venv/bin/python bench/phones.py --phones 96 --days 30 --drop 0.2

Each phone belongs to a worker of one of several associations. It works a few days
offline (realistic shifts and encounters, drawn as ``seed-demo`` draws them), then
syncs its queue in batches over HTTP to a running service. The network drops at
random, in the two ways that matter: the request is cut before the server has it
all (nothing may be stored), or the answer is lost after the server committed (the
phone resends, and must get ``duplicate``, never a second row). Like a real phone,
it waits on an answer the service cannot give yet (503, 429, 502, 504, or no
connection: ``Retry-After`` when given, else a doubling backoff) and sends the same
batch again, for up to ten minutes. At the end the database itself is asked: every
encounter this run queued is stored exactly once, under its association, and the
rollups grew by exactly the ones it stored; problems are printed before the figures,
and the figures count only what the service acknowledged. It can run again on the
same database (``--url`` and ``--database``): existing accounts are kept.
``tests/test_outage_phones.py`` restarts PostgreSQL under it.

Without ``--url`` the script builds a fresh PostgreSQL database, starts the service
under gunicorn on it, runs the fleet and drops the database; ``bench/ingest.py``
drives the same phones as its load generator.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outreach.migrate import upgrade  # noqa: E402
from outreach.services.demo import field_day, worked_days  # noqa: E402
from outreach.services.geo import sector_centres  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "simulated-phone-passphrase-2026"
ACKNOWLEDGED = frozenset({"created", "duplicate"})


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# The database and the service ----------------------------------------------------


def fresh_database(name: str, admin_url: str = ADMIN_URL) -> str:
    """Create ``name`` from scratch with the migrations; return its psycopg URL."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    upgrade(sqlalchemy_url(url))
    return url


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flask(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``flask --app app ARGUMENTS`` as an operator would, output captured."""
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def service_environment(database_url: str, instance: Path) -> dict[str, str]:
    """The service's settings for a bench: development secrets kept in ``instance``."""
    return {
        **os.environ,
        "OUTREACH_ENV": "development",
        "OUTREACH_DATABASE_URL": sqlalchemy_url(database_url),
        "OUTREACH_INSTANCE_PATH": str(instance),
        # A whole fleet logs in from one address: it is not a brute-force attempt.
        "OUTREACH_LOGIN_RATE": "100000 per minute",
    }


def create_accounts(
    environment: dict[str, str], associations: int, workers: int
) -> dict[str, list[str]]:
    """Associations ``sim-1``... each with ``workers`` worker accounts; usernames by slug."""
    from sqlalchemy import select

    from config import load_settings
    from outreach import create_app
    from outreach.api.access import security
    from outreach.extensions import db
    from outreach.models import OrgKind, Role, User
    from outreach.services import accounts, directory
    from outreach.services.context import OPERATOR

    app = create_app(load_settings(environment))
    usernames: dict[str, list[str]] = {}
    with app.app_context():
        directory.seed_structures(db.session, OPERATOR)
        for number in range(1, associations + 1):
            slug = f"sim-{number}"
            organisation, _ = accounts.get_or_create_organisation(
                db.session,
                OPERATOR,
                slug=slug,
                name=f"Association simulée {number}",
                kind=OrgKind.ASSOCIATION,
            )
            usernames[slug] = [f"{slug}-worker-{w}" for w in range(1, workers + 1)]
            for username in usernames[slug]:
                # A run before this one may have made it: the simulator runs again.
                with db.session.begin():
                    exists = db.session.scalar(select(User.id).where(User.username == username))
                if exists is None:
                    accounts.create_user(
                        db.session,
                        OPERATOR,
                        security().passwords,
                        accounts.NewUser(username, PASSWORD, Role.WORKER, organisation.id),
                    )

    db.engine_for(app).dispose()
    return usernames


@contextmanager
def gunicorn(
    environment: dict[str, str], port: int, workers: int = 2
) -> Iterator[subprocess.Popen[bytes]]:
    """The service under gunicorn, as production runs it; stopped on exit."""
    process = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--config",
            str(ROOT / "gunicorn.conf.py"),
            "app:app",
        ],
        cwd=ROOT,
        env=environment,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/api/v1/readyz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("gunicorn did not become ready")
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The phones -----------------------------------------------------------------------


@dataclass
class Batch:
    """One sync request: the shifts its encounters belong to, then the encounters."""

    shifts: list[dict[str, Any]]
    encounters: list[dict[str, Any]]

    def body(self) -> bytes:
        return orjson.dumps({"shifts": self.shifts, "encounters": self.encounters})


def offline_queue(
    team: str, areas: tuple[str, ...], days: list[date], seed: str
) -> list[dict[str, list[dict[str, Any]]]]:
    """What a phone gathered over ``days`` without network: one entry per day."""
    centres = sector_centres()
    return [
        field_day(random.Random(f"{seed}/{team}/{day}"), team, areas, day, centres) for day in days
    ]


def batches(queue: list[dict[str, list[dict[str, Any]]]], size: int) -> list[Batch]:
    """Cut a queue into syncs of at most ``size`` items, each carrying its encounters' shifts."""
    shifts = {item["id"]: item for day in queue for item in day["shifts"]}
    cut: list[Batch] = []
    current = Batch([], [])
    for encounter in (item for day in queue for item in day["encounters"]):
        new_shift = all(s["id"] != encounter["shift_id"] for s in current.shifts)
        if len(current.shifts) + len(current.encounters) + 1 + new_shift > size:
            cut.append(current)
            current, new_shift = Batch([], []), True
        if new_shift:
            current.shifts.append(shifts[encounter["shift_id"]])
        current.encounters.append(encounter)
    if current.encounters:
        cut.append(current)
    return cut


class Dropped(Exception):
    """The simulated network lost the request or its answer."""


@dataclass
class Phone:
    """One worker's phone talking HTTP/1.1 to the service, keeping its connection."""

    host: str
    port: int
    username: str
    drop: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    token: str = ""
    connection: http.client.HTTPConnection | None = None
    # The Retry-After of the last answer, if it had one.
    retry_after: str | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        reused = self.connection is not None
        try:
            return self._exchange(method, path, body, headers)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed an idle kept-alive connection: reconnect once, as
            # every HTTP client library does.
            if not reused:
                raise
            return self._exchange(method, path, body, headers)

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        self.retry_after = response.getheader("Retry-After")
        try:
            decoded = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            decoded = payload[:200].decode(errors="replace")  # a proxy's page
        return response.status, decoded

    def login(self) -> tuple[int, Any]:
        """Sign in; the status and answer (a 503 during an outage is for the caller to wait on)."""
        self.token = ""
        status, body = self.call(
            "POST",
            "/api/v1/auth/login",
            orjson.dumps({"username": self.username, "password": PASSWORD}),
        )
        if status == 200:
            self.token = body["access_token"]
        return status, body

    def send_sync(self, body: bytes) -> tuple[int, Any]:
        """POST /sync, sometimes losing the request half-way or the answer after it."""
        if self.drop and self.rng.random() < self.drop:
            self._lose(body, before_server=self.rng.random() < 0.5)
        if not self.token:
            status, answer = self.login()
            if status != 200:
                return status, answer
        status, answer = self.call("POST", "/api/v1/sync", body)
        if status == 401:
            status, answer = self.login()
            if status != 200:
                return status, answer
            status, answer = self.call("POST", "/api/v1/sync", body)
        return status, answer

    def _lose(self, body: bytes, before_server: bool) -> None:
        # A raw socket, so the cut happens where a real network would cut.
        self.close()
        with socket.create_connection((self.host, self.port), timeout=120) as raw:
            head = (
                "POST /api/v1/sync HTTP/1.1\r\n"
                f"Host: {self.host}\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {self.token}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            if before_server:
                raw.sendall(head + body[: len(body) // 2])
            else:
                raw.sendall(head + body)
                # Wait until the server has answered, then lose the answer.
                raw.recv(1)
        raise Dropped


@dataclass
class PhoneReport:
    """What one phone saw."""

    sent: int = 0
    batches: int = 0
    drops: int = 0
    resends: int = 0
    # Answers a phone waits on and sends again (503, 429, 502, 504, no connection).
    waits: int = 0
    created: int = 0
    duplicates: int = 0
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# Statuses a phone waits on and sends the same batch again after: the service (or the
# proxy before it) is briefly unable to answer, and says when to come back.
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
# The longest single wait, and how long a phone keeps trying one batch before it gives
# up and reports it: a phone on a bad network retries for a while, never for ever.
MAX_WAIT = 30.0
GIVE_UP_AFTER = 600.0


def retry_wait(retry_after: str | None, waited: int) -> float:
    """Seconds to wait before the next try: the server's ``Retry-After`` when it gave
    one, else a backoff doubling from one second; capped at ``MAX_WAIT``."""
    if retry_after is not None and retry_after.strip().isdigit():
        return min(MAX_WAIT, max(1.0, float(retry_after)))
    return min(MAX_WAIT, 2.0 ** min(waited, 5))


def sync_queue(
    phone: Phone, queue: list[Batch], report: PhoneReport, pace: Pace | None = None
) -> None:
    """Sync every batch until each item is acknowledged, as a phone does.

    A cut request is sent again at once. An answer the service cannot give yet (503,
    429, 502, 504) or a refused connection is waited on (``Retry-After`` when given,
    else a doubling backoff) and the same batch sent again, for up to
    ``GIVE_UP_AFTER`` seconds; only then is the batch a problem, and the phone stops.

    Without ``pace`` the phone sends each batch as soon as the last is answered (a
    closed loop: the load adapts to the server). With it, batch ``k`` is due at
    ``pace.start + k * pace.interval`` whatever the server does (an open loop), and
    its latency counts from when it was due, so time spent queued behind a slow answer
    is counted too (no coordinated omission).
    """
    for number, batch in enumerate(queue):
        body = batch.body()
        due = pace.due(number) if pace else None
        if due is not None:
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        first_try = time.perf_counter()
        waited = 0
        while True:
            if time.perf_counter() - first_try > GIVE_UP_AFTER:
                report.problems.append(
                    f"{phone.username}: a batch still unacknowledged after {GIVE_UP_AFTER:.0f} s"
                )
                return
            started = time.perf_counter() if due is None else due
            try:
                status, answer = phone.send_sync(body)
            except Dropped:
                report.drops += 1
                report.resends += 1
                continue
            except (OSError, http.client.HTTPException):
                # No connection (the service restarting): wait, then try again.
                report.waits += 1
                time.sleep(retry_wait(None, waited))
                waited += 1
                continue
            if status in RETRIED_STATUSES:
                report.waits += 1
                time.sleep(retry_wait(phone.retry_after, waited))
                waited += 1
                continue
            report.latencies.append(time.perf_counter() - started)
            if status != 200:
                report.problems.append(f"{phone.username}: HTTP {status} {answer}")
                return
            statuses = [item["status"] for item in answer["results"]]
            if not ACKNOWLEDGED.issuperset(statuses):
                report.problems.append(f"{phone.username}: {answer['counts']}")
            for item in answer["results"]:
                if item["kind"] == "encounter" and item["status"] in ACKNOWLEDGED:
                    report.created += item["status"] == "created"
                    report.duplicates += item["status"] == "duplicate"
                    report.sent += 1
            report.batches += 1
            break


@dataclass(frozen=True)
class Pace:
    """When a phone's batches are due: one every ``interval`` seconds from ``start``."""

    start: float
    interval: float

    def due(self, number: int) -> float:
        return self.start + number * self.interval


# CPU spent ---------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of a process, all its threads; ``None`` once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces: the fields that follow start after its ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def processes() -> Iterator[tuple[int, int, str]]:
    """Every process as (pid, parent pid, command name)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        head, tail = stat.rsplit(")", 1)
        yield int(entry.name), int(tail.split()[1]), head.split("(", 1)[1]


@dataclass
class CpuMeter:
    """CPU seconds the service (the gunicorn master and its workers) and PostgreSQL (every
    ``postgres`` process: backends, writers, checkpointer) spend between ``start`` and
    ``stop``. A process that ends in between takes its share with it, so ``stop``
    reports how many were lost: a worker recycled mid-run makes the figure too low."""

    master: int
    _before: dict[str, dict[int, float]] = field(default_factory=dict)

    def _snapshot(self) -> dict[str, dict[int, float]]:
        groups: dict[str, dict[int, float]] = {"service": {}, "postgresql": {}}
        for pid, parent, name in processes():
            group = (
                "service"
                if self.master in (pid, parent)
                else "postgresql"
                if name == "postgres"
                else None
            )
            seconds = cpu_seconds(pid) if group else None
            if group and seconds is not None:
                groups[group][pid] = seconds
        return groups

    def start(self) -> None:
        self._before = self._snapshot()

    def stop(self) -> dict[str, float | int]:
        after = self._snapshot()
        spent: dict[str, float | int] = {}
        lost = 0
        for group, before in self._before.items():
            now = after[group]
            lost += len(before.keys() - now.keys())
            spent[group] = sum(now[pid] - before.get(pid, 0.0) for pid in now)
        spent["processes_lost"] = lost
        return spent


# A whole fleet ----------------------------------------------------------------------


@dataclass
class FleetResult:
    phones: int
    encounters: int
    shifts: int
    seconds: float
    reports: list[PhoneReport]
    # CPU seconds by group while the phones synced (logins excluded), given a meter.
    cpu: dict[str, float | int] | None = None

    @property
    def latencies(self) -> list[float]:
        return sorted(x for report in self.reports for x in report.latencies)


def plan_fleet(
    accounts: dict[str, list[str]], days: int, batch_size: int, seed: str
) -> dict[str, tuple[list[Batch], int, int]]:
    """Each worker's batches, with its encounter and shift counts, drawn before the clock runs."""
    names = sorted(sector_centres())
    worked = worked_days(days)
    plans = {}
    for slug, usernames in accounts.items():
        areas = tuple(random.Random(f"{seed}/{slug}").sample(names, k=4))
        for username in usernames:
            queue = offline_queue(f"{seed}-{username}", areas, worked, seed)
            encounters = sum(len(day["encounters"]) for day in queue)
            shifts = sum(len(day["shifts"]) for day in queue)
            plans[username] = (batches(queue, batch_size), encounters, shifts)
    return plans


def run_fleet(
    url: str,
    plans: dict[str, tuple[list[Batch], int, int]],
    drop: float,
    seed: str,
    rate: float | None = None,
    meter: CpuMeter | None = None,
) -> FleetResult:
    """Every phone logs in and syncs its queue at once, one thread each: as fast as the
    server answers, or, given ``rate``, at that many batches a second for the fleet
    (each phone its share, phones evenly out of step), latency counted from when due.
    Given ``meter``, the CPU spent while the phones sync, after their logins."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reports = {username: PhoneReport() for username in plans}
    phones = {
        username: Phone(host, port, username, drop, random.Random(f"{seed}/{username}/net"))
        for username in plans
    }
    run_threads([phone.login for phone in phones.values()])  # argon2: a tenth of a second each
    paces: dict[str, Pace | None] = dict.fromkeys(plans)
    if rate:
        interval = len(plans) / rate
        start = time.perf_counter() + 0.5  # once every thread is up
        for offset, name in enumerate(plans):
            paces[name] = Pace(start + interval * offset / len(plans), interval)
    if meter:
        meter.start()
    seconds = run_threads(
        [
            functools.partial(sync_queue, phones[name], plans[name][0], reports[name], paces[name])
            for name in plans
        ]
    )
    cpu = meter.stop() if meter else None
    for phone in phones.values():
        phone.close()
    return FleetResult(
        phones=len(plans),
        encounters=sum(plan[1] for plan in plans.values()),
        shifts=sum(plan[2] for plan in plans.values()),
        seconds=seconds,
        reports=list(reports.values()),
        cpu=cpu,
    )


@dataclass(frozen=True)
class Stored:
    """What the database holds of a run's encounters, and the rollups' counts."""

    rollups: dict[str, int]
    encounters: dict[str, str]  # id -> association slug
    copies: int  # rows beyond one per id


def queued_ids(plans: dict[str, tuple[list[Batch], int, int]]) -> dict[str, str]:
    """Every encounter id the phones queued, with its association's slug."""
    expected: dict[str, str] = {}
    for username, (queue, _, _) in plans.items():
        slug = username.rsplit("-worker-", 1)[0]
        for batch in queue:
            for item in batch.encounters:
                expected[item["id"]] = slug
    return expected


def stored(database_url: str, ids: list[str]) -> Stored:
    """Ask the database which of ``ids`` it holds, and what the rollups count."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT e.id::text, o.slug FROM encounters e "
            "JOIN organisations o ON o.id = e.organisation_id WHERE e.id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
        totals = connection.execute(
            "SELECT o.slug, sum(r.value) FROM rollup_sectors r "
            "JOIN organisations o ON o.id = r.organisation_id "
            "WHERE r.metric = 'encounters' GROUP BY o.slug"
        ).fetchall()
    found: dict[str, str] = {str(key): str(slug) for key, slug in rows}
    return Stored({slug: int(total) for slug, total in totals}, found, len(rows) - len(found))


def check_stored(
    database_url: str, plans: dict[str, tuple[list[Batch], int, int]], before: Stored
) -> list[str]:
    """Ask the database: each encounter this run queued stored once, under its
    association, and the rollups grew by the encounters this run stored.

    Only this run's encounters are looked at (``before``: what the database held of
    them, and its rollups, before the run), so it can run again on the same database.
    """
    expected = queued_ids(plans)
    after = stored(database_url, list(expected))
    problems = []
    if after.copies:
        problems.append(f"{after.copies} encounters stored more than once")
    missing = expected.keys() - after.encounters.keys()
    wrong_owner = sum(1 for key, slug in after.encounters.items() if expected[key] != slug)
    if missing:
        problems.append(f"{len(missing)} encounters lost")
    if wrong_owner:
        problems.append(f"{wrong_owner} encounters stored under another association")
    new: dict[str, int] = dict.fromkeys(set(expected.values()), 0)
    for key, slug in after.encounters.items():
        new[slug] += key not in before.encounters
    grown = {slug: after.rollups.get(slug, 0) - before.rollups.get(slug, 0) for slug in new}
    if grown != new:
        problems.append(f"the rollups grew by {grown}, this run stored {new}")
    return problems


def run_threads(tasks: list[Callable[[], object]]) -> float:
    """Run every task in its own thread, all at once; the seconds until the last ends."""
    threads = [threading.Thread(target=task) for task in tasks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    index = max(0, min(len(values) - 1, round(share * len(values) + 0.5) - 1))
    return values[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--associations", type=int, default=3)
    parser.add_argument("--phones", type=int, default=24, help="Workers in all (spread evenly).")
    parser.add_argument("--days", type=int, default=7, help="Days each phone stayed offline.")
    parser.add_argument("--batch", type=int, default=200, help="Encounters per sync.")
    parser.add_argument("--drop", type=float, default=0.15, help="Share of syncs the network cuts.")
    parser.add_argument("--seed", default=uuid.uuid4().hex[:8])
    parser.add_argument("--url", help="A running service; its database must be --database.")
    parser.add_argument("--database", help="psycopg URL of the running service's database.")
    args = parser.parse_args()
    if bool(args.url) != bool(args.database):
        parser.error("--url and --database go together")
    workers = max(1, args.phones // args.associations)
    name = "outreach_bench_phones"
    if args.url:
        raise SystemExit(simulate(args, args.url, args.database, None, workers))
    database = fresh_database(name)
    instance = ROOT / "instance" / "bench"
    environment = service_environment(database, instance)
    try:
        accounts = create_accounts(environment, args.associations, workers)
        port = free_port()
        with gunicorn(environment, port):
            code = simulate(args, f"http://127.0.0.1:{port}", database, accounts, workers)
    finally:
        drop_database(name)
    raise SystemExit(code)


def simulate(
    args: argparse.Namespace,
    url: str,
    database: str,
    accounts: dict[str, list[str]] | None,
    workers: int,
) -> int:
    if accounts is None:
        environment = service_environment(database, ROOT / "instance" / "bench")
        accounts = create_accounts(environment, args.associations, workers)
    log(
        f"{sum(map(len, accounts.values()))} phones of {len(accounts)} associations, "
        f"{args.days} days offline each, batches of {args.batch}, {args.drop:.0%} of syncs cut"
    )
    plans = plan_fleet(accounts, args.days, args.batch, args.seed)
    before = stored(database, list(queued_ids(plans)))
    result = run_fleet(url, plans, args.drop, args.seed)
    # Problems first: a figure after them is read knowing what it is worth.
    problems = [p for report in result.reports for p in report.problems]
    problems += check_stored(database, plans, before)
    for problem in problems:
        log(f"PROBLEM: {problem}")
    latencies = result.latencies
    drops = sum(report.drops for report in result.reports)
    waits = sum(report.waits for report in result.reports)
    duplicates = sum(report.duplicates for report in result.reports)
    # Only what the service acknowledged counts, never what the phones queued.
    acknowledged = sum(report.sent for report in result.reports)
    log(
        f"{acknowledged:,} of {result.encounters:,} queued encounters acknowledged in "
        f"{result.seconds:.1f} s ({acknowledged / result.seconds:,.0f} acknowledged "
        f"encounters/s); {drops} syncs cut by the network and resent, {waits} answers "
        f"waited on (503, 429, no connection) and sent again, {duplicates:,} items "
        f"answered duplicate; batch latency p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
    )
    if problems:
        return 1
    log(f"checked in the database: each of the {acknowledged:,} encounters stored exactly once")
    return 0


if __name__ == "__main__":
    main()
