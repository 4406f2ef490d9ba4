"""Ready means the schema is at the migrations' head (issue 26, section 6).

On an empty database ``/readyz`` answered ready, after which every request was a 503
whose log line said only ``OperationalError``. Now it is not ready until ``flask db
upgrade`` has run to the head, and the log names the cause.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from outreach import create_app, migrate
from outreach.extensions import db
from tests.helpers import make_settings, postgres_admin


@pytest.fixture
def unmigrated_database(engine_name: str, tmp_path: Path) -> Iterator[str]:
    """A reachable database with no table at all."""
    if engine_name == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin = postgres_admin()
    name = f"outreach_empty_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_ready_only_at_the_migrations_head(
    unmigrated_database: str, engine_name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(unmigrated_database, tmp_path / "instance"))
    client = app.test_client()
    try:
        caplog.set_level(logging.ERROR)
        not_migrated = client.get("/api/v1/readyz")
        assert not_migrated.status_code == 503
        assert not_migrated.get_json() == {
            "status": "not ready",
            "database": "ok",
            "schema": "not at head",
        }
        assert "not migrated" in caplog.text
        assert migrate.head() in caplog.text
        # A request meanwhile: 503, and its log line says why.
        caplog.clear()
        login = client.post("/api/v1/auth/login", json={"username": "a", "password": "b" * 8})
        assert login.status_code == 503
        missing_table = {"sqlite": "no such table", "postgresql": "does not exist"}[engine_name]
        assert missing_table in caplog.text, caplog.text
        # Part way up: still not ready.
        migrate.upgrade(unmigrated_database, "0010")
        assert client.get("/api/v1/readyz").status_code == 503
        migrate.upgrade(unmigrated_database)
        ready = client.get("/api/v1/readyz")
        assert ready.status_code == 200
        assert ready.get_json() == {"status": "ready", "database": "ok"}
    finally:
        db.engine_for(app).dispose()
