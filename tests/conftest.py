"""Fixtures: one app per test on SQLite and on PostgreSQL, accounts, tokens; the plain
functions they use, and tests share, are in ``helpers.py``.

Every test that takes ``app`` (or ``client``) runs twice, once per engine. Each
engine's database is created fresh for the run and brought up by the Alembic
migrations (not ``create_all``), then emptied before every test.

PostgreSQL comes from ``OUTREACH_TEST_POSTGRES_URL`` (default: the local server,
trust auth). When it is unreachable the PostgreSQL half is skipped locally and
fails under ``CI=true`` (``helpers.postgres_admin``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import text

from config import Settings
from outreach import create_app, migrate
from outreach.extensions import db
from outreach.models import Role
from tests.helpers import (
    Account,
    create_account,
    empty_database,
    free_port,
    headers_for,
    make_settings,
    postgres_admin,
    unavailable,
)
from tests.servers import POSTGRES_BIN, Cluster

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgresql_url(worker_id: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (and xdist worker), migrated."""
    admin = postgres_admin()
    name = f"outreach_test_{worker_id}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh SQLite file for this test run (and xdist worker), migrated."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'outreach.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def database_url(engine_name: str, request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{engine_name}_url")
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "instance")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    flask_app = create_app(settings)
    empty_database(flask_app)
    yield flask_app
    db.engine_for(flask_app).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def make_account(app: Flask) -> Callable[..., Account]:
    """``create_account`` on this test's app."""

    def make(role: Role, org_slug: str | None = None, username: str | None = None) -> Account:
        return create_account(app, role, org_slug, username)

    return make


@pytest.fixture
def auth_headers(
    client: FlaskClient, make_account: Callable[..., Account]
) -> Callable[..., dict[str, str]]:
    """Headers with a fresh access token for a new user of ``role``."""

    def headers(role: Role, org_slug: str | None = None) -> dict[str, str]:
        return headers_for(client, make_account(role, org_slug))

    return headers


@pytest.fixture
def worker(make_account: Callable[..., Account]) -> Account:
    """A worker of the association ``maraude-nord``."""
    return make_account(Role.WORKER, "maraude-nord")


@pytest.fixture
def headers(client: FlaskClient, worker: Account) -> dict[str, str]:
    """Headers with an access token of ``worker``."""
    return headers_for(client, worker)


@pytest.fixture
def people(client: FlaskClient, make_account: Callable[..., Account]) -> dict[str, dict[str, str]]:
    """Headers of a worker and org_admin of two associations, a coordinator and an auditor."""
    made = {
        "worker": make_account(Role.WORKER, "assoc-a"),
        "admin_a": make_account(Role.ORG_ADMIN, "assoc-a"),
        "admin_b": make_account(Role.ORG_ADMIN, "assoc-b"),
        "coordinator": make_account(Role.COORDINATOR),
        "auditor": make_account(Role.AUDITOR),
    }
    return {name: headers_for(client, account) for name, account in made.items()}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test's own, which it may stop and start."""
    if POSTGRES_BIN is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        unavailable("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    # Outside pytest's own temporary tree, which the postgres user may not enter.
    home = Path(tempfile.mkdtemp(prefix="outreach-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    server = Cluster(home, free_port())
    try:
        server.run("initdb", "-D", str(home / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        server.start()
        yield server
    finally:
        server.stop(check=False)
        shutil.rmtree(home, ignore_errors=True)
