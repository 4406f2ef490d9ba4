"""A gunicorn worker killed with SIGKILL in the middle of a sync (issue 8, point 6).

A phone syncs 5,000 encounters, in ten requests of 500 (the most one request may
carry: MAX_ITEMS), to the service under real gunicorn on PostgreSQL. During the
fourth request the worker is killed. To kill it mid-transaction every time, not by
luck, the test holds the audit chain's advisory lock, which a sync takes last,
after its rows are written: once ``pg_locks`` shows the worker waiting on it, the
worker holds an open transaction with 500 encounters and their counters, and gets
SIGKILL. Then: none of that batch is in the database, the master starts a new
worker, the resend stores the batch, the other batches are stored once, the rollups
agree, and the audit chain verifies.

PostgreSQL only: on SQLite the single writer's journal gives the same guarantee,
but no lock lets a test stop a SQLite writer between its writes and its commit.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from outreach import create_app
from outreach.extensions import db
from outreach.models import Encounter, Role, RollupTotal
from outreach.services import audit
from outreach.services.audit import AUDIT_LOCK_KEY
from tests.conftest import PASSWORD, create_account, empty_database, make_settings
from tests.payloads import encounter
from tests.servers import call, gunicorn, idle_wait, wait_until_ready

BATCHES, ITEMS = 10, 500
KILLED = 3


@pytest.fixture
def server(postgresql_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    with gunicorn(postgresql_url, tmp_path / "gunicorn") as running:
        yield running


@pytest.fixture
def service_app(postgresql_url: str, tmp_path: Path) -> Iterator[Flask]:
    flask_app = create_app(make_settings(postgresql_url, tmp_path / "instance"))
    empty_database(flask_app)
    yield flask_app
    db.engine_for(flask_app).dispose()


def _worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def test_a_worker_killed_mid_batch_loses_nothing_and_stores_nothing_twice(
    service_app: Flask,
    server: tuple[subprocess.Popen[bytes], int],
    postgresql_url: str,
) -> None:
    process, port = server
    worker = create_account(service_app, Role.WORKER)
    status, tokens = call(
        port, "POST", "/api/v1/auth/login", {"username": worker.username, "password": PASSWORD}
    )
    assert status == 200, tokens
    token = tokens["access_token"]
    batches = [[encounter() for _ in range(ITEMS)] for _ in range(BATCHES)]
    killed_ids = {item["id"] for item in batches[KILLED]}

    for batch in batches[:KILLED]:
        status, answer = call(port, "POST", "/api/v1/sync", {"encounters": batch}, token)
        assert (status, answer["counts"]["created"]) == (200, ITEMS)

    psql_url = make_url(postgresql_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(psql_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (AUDIT_LOCK_KEY,))
        outcome: dict[str, Any] = {}

        def send() -> None:
            try:
                outcome["answer"] = call(
                    port, "POST", "/api/v1/sync", {"encounters": batches[KILLED]}, token
                )
            except (OSError, http.client.HTTPException) as error:
                outcome["error"] = error

        sender = threading.Thread(target=send)
        sender.start()
        with psycopg.connect(psql_url, autocommit=True) as watcher:
            _wait_for_lock_waiter(watcher)
        (worker_pid,) = _worker_pids(process.pid)
        os.kill(worker_pid, signal.SIGKILL)
        sender.join(timeout=60)
        holder.execute("SELECT pg_advisory_unlock(%s)", (AUDIT_LOCK_KEY,))
    assert "error" in outcome, outcome  # the phone got no answer: it will resend

    with service_app.app_context():
        ids = {str(i) for i in db.session.scalars(select(Encounter.id))}
        assert not ids & killed_ids  # nothing of the killed batch, not one row
        assert len(ids) == KILLED * ITEMS

    wait_until_ready(process, port)
    for batch in batches[KILLED:]:
        status, answer = call(port, "POST", "/api/v1/sync", {"encounters": batch}, token)
        assert (status, answer["counts"]["created"]) == (200, ITEMS), answer["counts"]

    with service_app.app_context():
        stored = db.session.scalar(select(func.count()).select_from(Encounter))
        counted = db.session.scalar(
            select(func.sum(RollupTotal.value)).where(
                RollupTotal.metric == "encounters", RollupTotal.span == "day"
            )
        )
        assert stored == counted == BATCHES * ITEMS
        verified = audit.verify(db.session)
        assert verified.ok, verified
        assert verified.checked >= BATCHES + 1  # the login and every committed sync


def _wait_for_lock_waiter(watcher: psycopg.Connection[Any]) -> None:
    """Until a backend waits on the advisory lock the test holds: the sync's last step."""
    for _ in range(600):
        row = watcher.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
        if row and row[0]:
            return
        idle_wait(0.05)
    raise AssertionError("the sync never reached the audit lock")
