"""A worker that starts while its database does not answer reads ahead once it does.

Its read-ahead (``outreach.read_ahead``) failed once and never tried again: that worker
served every first map and filtered summary the slow way until it was restarted
(issue 26, section 8). Here the database is missing when the worker starts (not yet
created on PostgreSQL, not yet migrated on SQLite) and appears while it waits.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from outreach import create_app, migrate, read_ahead
from outreach.extensions import db
from tests.helpers import make_settings, postgres_admin


@pytest.fixture
def late_database(engine_name: str, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """A URL whose database does not exist yet, and (PostgreSQL) its name to create."""
    if engine_name == "sqlite":
        yield f"sqlite:///{tmp_path / 'late.db'}", None
        return
    admin = postgres_admin()
    name = f"outreach_late_{uuid.uuid4().hex[:8]}"
    yield admin.url.set(database=name).render_as_string(hide_password=False), name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_the_read_ahead_tries_again_until_the_database_answers(
    late_database: tuple[str, str | None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, to_create = late_database
    app = create_app(make_settings(url, tmp_path / "instance"))
    caplog.set_level(logging.INFO, logger="outreach.read_ahead")
    worker = threading.Thread(
        target=read_ahead, args=(app,), kwargs={"retry_waits": (0.05,) * 600}, daemon=True
    )
    worker.start()
    tried = threading.Event()
    for _ in range(600):
        if "not read ahead yet" in caplog.text:
            tried.set()
            break
        tried.wait(0.05)
    assert tried.is_set(), caplog.text
    if to_create is not None:
        admin = postgres_admin()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{to_create}"'))
        admin.dispose()
    migrate.upgrade(url)
    worker.join(60)
    db.engine_for(app).dispose()
    assert not worker.is_alive()
    assert "read ahead 0 map spans and 0 day spans" in caplog.text, caplog.text
