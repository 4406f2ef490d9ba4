"""Fixtures: one app per test on SQLite and on PostgreSQL, accounts, tokens.

Every test that takes ``app`` (or ``client``) runs twice, once per engine. Each
engine's database is created fresh for the run and brought up by the Alembic
migrations (not ``create_all``), then emptied before every test.

PostgreSQL comes from ``OUTREACH_TEST_POSTGRES_URL`` (default: the local server,
trust auth). When it is unreachable the PostgreSQL half is skipped locally and
fails under ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import make_url

from config import Settings
from outreach import create_app, migrate
from outreach.extensions import db
from outreach.models import Base, Kit, OrgKind, Role
from outreach.services import accounts
from outreach.services.access import ROLE_ORG_KIND
from outreach.services.context import OPERATOR
from schemas.vocabulary import vocabularies

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct horse battery staple"
ENGINES = ("sqlite", "postgresql")


def _postgres_admin_url() -> str:
    return os.environ.get("OUTREACH_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@pytest.fixture(scope="session")
def postgresql_url(worker_id: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (and xdist worker), migrated."""
    admin_url = make_url(_postgres_admin_url())
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        message = f"PostgreSQL unreachable at {admin_url.render_as_string()}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"outreach_test_{worker_id}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
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


def make_settings(database_url: str, instance_path: Path, **overrides: Any) -> Settings:
    """Testing settings: fixed secrets, cheap argon2, in-memory rate limits."""
    return Settings(
        env="testing",
        database_url=database_url,
        secret_key="test-secret-key-" + "s" * 32,
        jwt_secret="test-jwt-secret-" + "j" * 32,
        pepper="test-pepper-" + "p" * 32,
        demo_password="demo password for tests",
        argon2_time_cost=1,
        argon2_memory_kib=8,
        argon2_parallelism=1,
        login_rate="10000 per minute",
        instance_path=instance_path,
    ).with_overrides(**overrides)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "instance")


def empty_database(flask_app: Flask) -> None:
    """Every table empty but for the kit catalogue the migrations seed."""
    engine = db.engine_for(flask_app)
    tables = list(reversed(Base.metadata.sorted_tables))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # The audit tables refuse TRUNCATE; replica mode (superuser) skips triggers.
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            names = ", ".join(f'"{table.name}"' for table in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(table.delete())
        connection.execute(
            insert(Kit),
            [{"code": k["code"], "label": k["label"]} for k in vocabularies()["kits"]],
        )


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


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    role: Role
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    organisation_slug: str


def create_account(
    flask_app: Flask, role: Role, org_slug: str | None = None, username: str | None = None
) -> Account:
    """Create a user (and its organisation when new) through the account service."""
    kind: OrgKind = ROLE_ORG_KIND[role]
    slug = org_slug or f"{kind.value.replace('_', '-')}-one"
    username = username or f"{role.value.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    with flask_app.app_context():
        session = db.session
        organisation, _ = accounts.get_or_create_organisation(
            session, OPERATOR, slug=slug, name=slug, kind=kind
        )
        passwords = flask_app.extensions["outreach.security"].passwords
        user = accounts.create_user(
            session,
            OPERATOR,
            passwords,
            accounts.NewUser(
                username=username, password=PASSWORD, role=role, organisation_id=organisation.id
            ),
        )
        return Account(
            username=user.username,
            password=PASSWORD,
            role=role,
            user_id=user.id,
            organisation_id=organisation.id,
            organisation_slug=organisation.slug,
        )


@pytest.fixture
def make_account(app: Flask) -> Callable[..., Account]:
    """``create_account`` on this test's app."""

    def make(role: Role, org_slug: str | None = None, username: str | None = None) -> Account:
        return create_account(app, role, org_slug, username)

    return make


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def free_port() -> int:
    """A TCP port nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth_headers(
    client: FlaskClient, make_account: Callable[..., Account]
) -> Callable[..., dict[str, str]]:
    """Headers with a fresh access token for a new user of ``role``."""

    def headers(role: Role, org_slug: str | None = None) -> dict[str, str]:
        account = make_account(role, org_slug)
        return bearer(login(client, account.username)["access_token"])

    return headers


@contextmanager
def statements_of(app: Flask) -> Iterator[list[str]]:
    """The SQL statements the app's engine sends while the block runs."""
    seen: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = db.engine_for(app)
    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", capture)
