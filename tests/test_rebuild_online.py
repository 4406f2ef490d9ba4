"""``flask rollups rebuild`` while phones sync (issue 26, section 8).

Run beside live syncs, the rebuild deleted and rewrote counter rows that the syncs
were writing: each side came to hold rows the other waited for, PostgreSQL aborted one
(a deadlock), and the syncs it hit were answered "The database is unavailable". Now the
rebuild first takes a ``SHARE`` lock on the tables every counter writer writes first:
it waits for the syncs in flight, and a sync arriving during it waits there, before it
holds any counter row. Each step is observed in ``pg_locks``, never timed.

PostgreSQL only: on SQLite a rebuild's immediate transaction already excludes every
writer, and ``test_rollups`` checks what it computes on both engines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from outreach.api.errors import handle_database_unavailable
from outreach.extensions import db
from outreach.models import AUDIT_LOCK_KEY, Role
from outreach.services import rollups, writes
from outreach.services.context import OPERATOR
from tests.helpers import headers_for
from tests.payloads import encounter

# Locks some backend waits for, other than the test's own advisory lock.
_WAITING = text(
    "SELECT l.locktype, c.relname, l.mode FROM pg_locks l"
    " LEFT JOIN pg_class c ON c.oid = l.relation"
    " WHERE NOT l.granted AND l.pid <> pg_backend_pid()"
)


def _waits(observer: Connection) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in observer.execute(_WAITING)]


def _until(observer: Connection, holds: Callable[[list[tuple[Any, ...]]], bool]) -> None:
    """Poll ``pg_locks`` until ``holds`` (a backend reaching a lock gives nothing to wait on)."""
    pause = threading.Event()
    for _ in range(600):
        if holds(_waits(observer)):
            return
        pause.wait(0.05)
    raise AssertionError(f"never reached; waiting now: {_waits(observer)}")


@contextmanager
def _observer(database_url: str) -> Iterator[Connection]:
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


@pytest.fixture
def worker_headers(client: FlaskClient, make_account: Callable[..., Any]) -> dict[str, str]:
    return headers_for(client, make_account(Role.WORKER))


def _sync(app: Flask, headers: dict[str, str], count: int) -> int:
    items = [encounter() for _ in range(count)]
    response = app.test_client().post("/api/v1/sync", json={"encounters": items}, headers=headers)
    return int(response.status_code)


def test_a_rebuild_and_syncs_wait_for_each_other_before_any_counter_row(
    app: Flask, worker_headers: dict[str, str], database_url: str, engine_name: str
) -> None:
    if engine_name != "postgresql":
        pytest.skip("SQLite has one writer at a time; there is nothing to interleave")
    assert _sync(app, worker_headers, 5) == 200
    reading, resume = threading.Event(), threading.Event()
    with _observer(database_url) as observer, ThreadPoolExecutor(max_workers=2) as pool:
        try:
            _interleave(app, worker_headers, observer, pool, reading, resume)
        finally:
            # Whatever failed, nothing is left waiting on the test.
            resume.set()
            observer.execute(text("SELECT pg_advisory_unlock_all()"))
    final = app.test_cli_runner().invoke(args=["rollups", "rebuild"])
    assert "Rebuilt from 12 encounters" in final.output
    assert "0 differed" in final.output


def test_a_deadlock_is_reported_as_a_deadlock(
    app: Flask, database_url: str, engine_name: str
) -> None:
    if engine_name != "postgresql":
        pytest.skip("a deadlock between sessions is PostgreSQL's")
    engine = create_engine(database_url)
    first, second = engine.connect(), engine.connect()
    try:
        # Two transactions each holding an advisory lock the other then asks for.
        first.execute(text("SELECT pg_advisory_xact_lock(1)"))
        second.execute(text("SELECT pg_advisory_xact_lock(2)"))
        with ThreadPoolExecutor(max_workers=1) as pool:
            waiting = pool.submit(first.execute, text("SELECT pg_advisory_xact_lock(2)"))
            with _observer(database_url) as observer:
                _until(observer, lambda waits: ("advisory", None, "ExclusiveLock") in waits)
            failures: list[OperationalError] = []
            try:
                second.execute(text("SELECT pg_advisory_xact_lock(1)"))
            except OperationalError as error:
                failures.append(error)
            try:
                waiting.result()
            except OperationalError as error:
                failures.append(error)
    finally:
        first.close()
        second.close()
        engine.dispose()
    assert len(failures) == 1
    with app.test_request_context("/api/v1/sync"):
        body, status, headers = handle_database_unavailable(failures[0])
    assert status == 503
    assert "deadlock" in body["message"]
    assert "unavailable" not in body["message"]
    assert headers == {"Retry-After": "1"}


def _interleave(
    app: Flask,
    worker_headers: dict[str, str],
    observer: Connection,
    pool: ThreadPoolExecutor,
    reading: threading.Event,
    resume: threading.Event,
) -> None:
    # 1. A sync in flight: held at its very end (the audit chain lock), after it
    # wrote its encounters and their counter rows.
    observer.execute(text("SELECT pg_advisory_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    in_flight = pool.submit(_sync, app, worker_headers, 3)
    _until(observer, lambda waits: ("advisory", None, "ExclusiveLock") in waits)
    rebuilt = pool.submit(app.test_cli_runner().invoke, args=["rollups", "rebuild"])
    # The rebuild waits for that sync at its first lock, holding no counter row
    # (it used to wait inside its DELETE of the counters, holding the ones before).
    _until(observer, lambda waits: len(waits) == 2)
    assert ("relation", "encounters", "ShareLock") in _waits(observer)
    observer.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": AUDIT_LOCK_KEY})
    assert in_flight.result() == 200
    result = rebuilt.result()
    assert result.exit_code == 0, result.output
    assert "0 differed" in result.output

    # 2. A sync arriving during a rebuild waits at the encounters, holding nothing
    # the rebuild needs, and is stored once it is done.
    def paused_rebuild() -> rollups.RebuildSummary:
        def progress(_count: int) -> None:
            reading.set()
            resume.wait()

        with app.app_context():
            session = db.session
            with session.begin():
                summary = rollups.rebuild(session, progress=progress)
                writes.record(session, OPERATOR, "rollups.rebuild", summary.change)
                return summary

    rebuilding: Future[rollups.RebuildSummary] = pool.submit(paused_rebuild)
    assert reading.wait(30)
    arriving = pool.submit(_sync, app, worker_headers, 4)
    _until(observer, lambda waits: ("relation", "encounters", "RowExclusiveLock") in waits)
    resume.set()
    assert rebuilding.result().encounters == 8
    assert arriving.result() == 200
