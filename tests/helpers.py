"""Plain functions and tables the tests share; their fixtures are in ``conftest.py``.

No test module imports another test module (``test_layout`` checks it): what two
modules need lives here, in ``payloads.py`` (what phones send), ``servers.py``
(processes a test starts) or ``accessibility.py`` (axe-core in a browser page).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, event, func, insert, select, text
from sqlalchemy.engine import make_url

from config import Settings
from outreach.api.access import PUBLIC
from outreach.extensions import db
from outreach.models import AuditEvent, Base, Kit, OrgKind, Role
from outreach.services import accounts, audit
from outreach.services.access import ROLE_ORG_KIND
from outreach.services.context import OPERATOR
from schemas.vocabulary import vocabularies
from tests.payloads import CENTRES, at, encounter

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct horse battery staple"
# What ``make_settings`` gives the demo accounts (``flask seed-demo``, the browser tests).
DEMO_PASSWORD = "demo password for tests"


def unavailable(message: str) -> NoReturn:
    """A test that needs what this machine lacks (a server, a program) is skipped
    locally and fails under ``CI=true``: CI must run every test, never skip one."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def postgres_admin() -> Engine:
    """An AUTOCOMMIT engine on the test PostgreSQL server as its superuser, from
    ``OUTREACH_TEST_POSTGRES_URL`` (default: the local server, trust auth); its ``url``
    is the base for the databases a test creates. ``unavailable`` when it does not answer."""
    admin_url = make_url(os.environ.get("OUTREACH_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        unavailable(f"PostgreSQL unreachable at {admin_url.render_as_string()}: {exc}")
    return admin


def make_settings(database_url: str, instance_path: Path, **overrides: Any) -> Settings:
    """Testing settings: fixed secrets, cheap argon2, in-memory rate limits."""
    return Settings(
        env="testing",
        database_url=database_url,
        secret_key="test-secret-key-" + "s" * 32,
        jwt_secret="test-jwt-secret-" + "j" * 32,
        pepper="test-pepper-" + "p" * 32,
        demo_password=DEMO_PASSWORD,
        argon2_time_cost=1,
        argon2_memory_kib=8,
        argon2_parallelism=1,
        login_rate="10000 per minute",
        instance_path=instance_path,
    ).with_overrides(**overrides)


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


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def headers_for(
    client: FlaskClient, who: Account | str, password: str = PASSWORD
) -> dict[str, str]:
    """Headers with a fresh access token of ``who``, an account or a username, which
    must log in with ``password``: by default the one ``create_account`` gives; the
    demo accounts' is ``DEMO_PASSWORD``. The one way tests get a user's headers."""
    username = who.username if isinstance(who, Account) else who
    return bearer(login(client, username, password)["access_token"])


def free_port() -> int:
    """A TCP port nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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


def count_rows(app: Flask, model: type, *where: Any) -> int:
    """How many rows of ``model``'s table match ``where`` (all of them without)."""
    with app.app_context():
        session = db.session
        with session.begin():
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def row_counts(app: Flask) -> dict[str, int]:
    """Rows per table but the audit log's, which grows with every request, refusals too."""
    with app.app_context():
        return {
            table.name: db.session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
            if table.name != AuditEvent.__tablename__
        }


def audit_events(app: Flask) -> list[AuditEvent]:
    """The whole audit log, in its order."""
    with app.app_context():
        session = db.session
        with session.begin():
            return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def verify_chain(app: Flask, head: audit.ChainHead | None = None) -> audit.VerifyResult:
    """The audit service's verification of the chain, against a kept ``head`` if given."""
    with app.app_context():
        session = db.session
        with session.begin():
            return audit.verify(session, head)


def tamper(app: Flask, *statements: Any) -> None:
    """Change the log behind the service's back, as a database superuser could."""
    with app.app_context():
        session = db.session
        with session.begin():
            if session.get_bind().dialect.name == "postgresql":
                # The append-only triggers refuse this; a superuser switches them off.
                session.execute(text("SET LOCAL session_replication_role = replica"))
            for statement in statements:
                session.execute(statement)


def sync(client: FlaskClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """``POST /sync`` of ``body``, which must be accepted whole."""
    response = client.post("/api/v1/sync", json=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    result: dict[str, Any] = response.get_json()
    assert result["counts"]["invalid"] == 0, result
    return result


def get(client: FlaskClient, headers: dict[str, str], url: str, status: int = 200) -> Any:
    """The JSON answer to ``GET url``, which must have ``status``."""
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def seed_mixed_day(client: FlaskClient, headers: dict[str, str], day: date) -> None:
    """12 women in Stalingrad with kits and a referral; 3 men in Éole given naloxone only."""
    stalingrad = [encounter(CENTRES["stalingrad"], occurred_at=at(day)) for _ in range(12)]
    eole = [
        encounter(
            CENTRES["eole"],
            occurred_at=at(day, 15),
            person={"age_band": "25-34", "gender": "m", "first_contact": False},
            kits={"naloxone": 1},
            referrals=[],
        )
        for _ in range(3)
    ]
    sync(client, headers, encounters=stalingrad + eole)


# Who may call each route: ``test_access_matrix`` holds the routes to it,
# ``test_mass_assignment`` sends each writing route's allowed roles extra fields.
W, OA, C, AU, AD = Role.WORKER, Role.ORG_ADMIN, Role.COORDINATOR, Role.AUDITOR, Role.ADMIN
EVERYONE = frozenset(Role)

POLICY: dict[tuple[str, str], frozenset[Role] | str] = {
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/refresh"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): EVERYONE,
    ("GET", "/api/v1/auth/me"): EVERYONE,
    ("POST", "/api/v1/auth/password"): EVERYONE,
    ("GET", "/api/v1/orgs"): frozenset({AD}),
    ("POST", "/api/v1/orgs"): frozenset({AD}),
    ("GET", "/api/v1/orgs/<uuid:organisation_id>"): frozenset({AD}),
    ("PATCH", "/api/v1/orgs/<uuid:organisation_id>"): frozenset({AD}),
    ("GET", "/api/v1/users"): frozenset({AD, OA}),
    ("POST", "/api/v1/users"): frozenset({AD, OA}),
    ("GET", "/api/v1/users/<uuid:user_id>"): frozenset({AD, OA}),
    ("PATCH", "/api/v1/users/<uuid:user_id>"): frozenset({AD, OA}),
    ("GET", "/api/v1/vocabularies"): EVERYONE,
    ("POST", "/api/v1/kits"): frozenset({AD}),
    ("PATCH", "/api/v1/kits/<string:code>"): frozenset({AD}),
    ("GET", "/api/v1/structures"): EVERYONE,
    ("POST", "/api/v1/structures"): frozenset({C, AD}),
    ("GET", "/api/v1/structures/<uuid:structure_id>"): EVERYONE,
    ("PATCH", "/api/v1/structures/<uuid:structure_id>"): frozenset({C, AD}),
    ("POST", "/api/v1/sync"): frozenset({W, OA}),
    ("GET", "/api/v1/encounters"): frozenset({W, OA}),
    ("GET", "/api/v1/encounters/<uuid:encounter_id>"): frozenset({W, OA}),
    ("PATCH", "/api/v1/encounters/<uuid:encounter_id>"): frozenset({OA}),
    ("DELETE", "/api/v1/encounters/<uuid:encounter_id>"): frozenset({OA}),
    ("GET", "/api/v1/stats/periods"): frozenset({C, AU, OA}),
    ("GET", "/api/v1/stats/summary"): frozenset({C, AU, OA}),
    ("GET", "/api/v1/stats/timeseries"): frozenset({C, AU, OA}),
    ("GET", "/api/v1/stats/map"): frozenset({C, AU, OA}),
    ("GET", "/api/v1/stats/sectors"): frozenset({C, AU, OA}),
    ("GET", "/api/v1/stats/coverage"): frozenset({C, AU}),
    ("GET", "/api/v1/stats/hotspots"): frozenset({C}),
    ("GET", "/api/v1/reports/activity"): frozenset({C, AU, OA}),
    ("GET", "/api/v1/audit/events"): frozenset({AU}),
    ("GET", "/api/v1/audit/verify"): frozenset({AU}),
    ("GET", "/api/v1/audit/data-use"): frozenset({AU}),
    ("GET", "/api/v1/governance/register"): frozenset({AU, AD}),
    ("GET", "/api/v1/healthz"): PUBLIC,
    ("GET", "/api/v1/readyz"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    ("GET", "/static/<path:filename>"): PUBLIC,
    ("GET", "/dashboard"): PUBLIC,
    ("GET", "/dashboard/static/<path:filename>"): PUBLIC,
    # The field app's shell: it logs in through the API like any client.
    ("GET", "/app/"): PUBLIC,
    ("GET", "/app/sw.js"): PUBLIC,
    ("GET", "/app/manifest.webmanifest"): PUBLIC,
    ("GET", "/app/static/<path:filename>"): PUBLIC,
}
