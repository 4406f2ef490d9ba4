"""PostgreSQL stopped under load, then started again (issue 8, point 7).

The shared test server cannot be stopped (other tests use it), so this test runs
its own PostgreSQL cluster, made with the server's ``initdb`` on a free port, and
stops it with ``pg_ctl stop -m immediate`` (a crash, as far as clients can tell)
while threads keep calling the service. Every answer must be a success or a 503 in
the envelope, ``/readyz`` must say not ready while it is down, and once it is back
the same application object serves again: no restart.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from outreach import create_app, migrate
from outreach.models import Role
from tests.helpers import PASSWORD, create_account, headers_for, make_settings
from tests.payloads import encounter
from tests.servers import Cluster


def test_database_stopped_under_load_then_back(cluster: Cluster, tmp_path: Path) -> None:
    migrate.upgrade(cluster.url)
    app = create_app(make_settings(cluster.url, tmp_path / "instance"))
    client = app.test_client()
    worker = create_account(app, Role.WORKER)
    headers = headers_for(client, worker)

    answers = Answers()
    stop_calling = threading.Event()

    def call(make_request: Callable[[FlaskClient], TestResponse]) -> None:
        own = app.test_client()
        while not stop_calling.is_set():
            answers.add(make_request(own))

    requests = [
        lambda c: c.get("/api/v1/auth/me", headers=headers),
        lambda c: c.post("/api/v1/sync", json={"encounters": [encounter()]}, headers=headers),
        lambda c: c.get("/api/v1/encounters", headers=headers),
    ]
    threads = [threading.Thread(target=call, args=(make,)) for make in requests]
    for thread in threads:
        thread.start()
    answers.wait_for(200, 20)
    cluster.stop()
    answers.wait_for(503, 20)
    down = client.get("/api/v1/readyz")
    assert down.status_code == 503
    assert down.get_json() == {"status": "not ready", "database": "unreachable"}
    assert client.get("/api/v1/healthz").status_code == 200  # the process lives
    refused = client.get("/api/v1/auth/me", headers=headers)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    # A login's own answer, not the rate limiter's window (it said 48).
    credentials = {"username": worker.username, "password": PASSWORD}
    refused_login = client.post("/api/v1/auth/login", json=credentials)
    assert refused_login.status_code == 503
    assert refused_login.headers.getlist("Retry-After") == ["5"]
    cluster.start()
    answers.wait_for(200, answers.count(200) + 20)
    stop_calling.set()
    for thread in threads:
        thread.join(timeout=60)

    assert not answers.bad, answers.bad[:5]
    assert client.get("/api/v1/readyz").status_code == 200
    stored = client.post("/api/v1/sync", json={"encounters": [encounter()]}, headers=headers)
    assert stored.status_code == 200
    assert stored.get_json()["counts"]["created"] == 1


class Answers:
    """Statuses seen by the calling threads; a waiter wakes on each new answer."""

    def __init__(self) -> None:
        self._statuses: Counter[int] = Counter()
        self._changed = threading.Condition()
        self.bad: list[tuple[int, object]] = []

    def add(self, response: TestResponse) -> None:
        body = response.get_json()
        with self._changed:
            self._statuses[response.status_code] += 1
            if response.status_code not in (200, 503) or (
                response.status_code == 503 and body["code"] != 503
            ):
                self.bad.append((response.status_code, body))
            self._changed.notify_all()

    def count(self, status: int) -> int:
        with self._changed:
            return self._statuses[status]

    def wait_for(self, status: int, count: int) -> None:
        """Until ``count`` answers of ``status`` are in (the threads keep calling)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._statuses[status] >= count, timeout=60):
                raise AssertionError(f"never {count} answers of {status}: {dict(self._statuses)}")
