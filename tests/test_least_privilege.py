"""PostgreSQL least privilege: the service's role can append to the audit log, never erase it.

The suite creates two roles and a database owned by the first: migrations and the
retention purge run as that owner (``OUTREACH_ADMIN_DATABASE_URL``), the service as
the second (``OUTREACH_DATABASE_URL``). PostgreSQL only: SQLite has no roles, and
there the chain's attested checkpoints and the auditor's kept heads are the defence
(``test_audit_purge``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from outreach import create_app
from outreach.extensions import db
from outreach.models import AuditCheckpoint, AuditEvent, Role
from tests.helpers import create_account, login, make_settings, postgres_admin

# What the service role may try, and how PostgreSQL refuses it.
ERASURES = {
    "DELETE FROM audit_events": "permission denied for table audit_events",
    "SET LOCAL outreach.audit_purge = 'on'; DELETE FROM audit_events": (
        "permission denied for table audit_events"
    ),
    "UPDATE audit_events SET outcome = 'success'": "permission denied for table audit_events",
    "TRUNCATE audit_events": "permission denied for table audit_events",
    "INSERT INTO audit_checkpoints (seq, hash, at, purged) VALUES (1, 'x', now(), 1)": (
        "permission denied for table audit_checkpoints"
    ),
    "ALTER TABLE audit_events DISABLE TRIGGER ALL": "must be owner of table audit_events",
    "SET LOCAL session_replication_role = replica": (
        'permission denied to set parameter "session_replication_role"'
    ),
    "DROP TABLE audit_checkpoints": "must be owner of table audit_checkpoints",
}


@pytest.fixture
def two_roles() -> Iterator[tuple[str, str]]:
    """An owner role, a service role, and a database the owner owns: (owner URL, service URL)."""
    superuser = postgres_admin()
    base = superuser.url
    tag = uuid.uuid4().hex[:8]
    owner, service, name = (
        f"outreach_owner_{tag}",
        f"outreach_service_{tag}",
        f"outreach_roles_{tag}",
    )
    with superuser.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{owner}" LOGIN'))
        connection.execute(text(f'CREATE ROLE "{service}" LOGIN'))
        connection.execute(text(f'CREATE DATABASE "{name}" OWNER "{owner}"'))
    try:
        yield (
            base.set(username=owner, database=name).render_as_string(hide_password=False),
            base.set(username=service, database=name).render_as_string(hide_password=False),
        )
    finally:
        with superuser.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{service}"'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))
        superuser.dispose()


def test_the_service_role_appends_to_the_audit_log_but_cannot_erase_it(
    two_roles: tuple[str, str], tmp_path: Path
) -> None:
    owner_url, service_url = two_roles
    settings = make_settings(service_url, tmp_path / "instance", admin_database_url=owner_url)
    app = create_app(settings)
    runner = app.test_cli_runner()
    try:
        upgraded = runner.invoke(args=["db", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
        assert "only INSERT and SELECT on the audit log" in upgraded.output
        # The service works as its own role: accounts, logins, their audit events.
        worker = create_account(app, Role.WORKER)
        login(app.test_client(), worker.username)
        with app.app_context():
            session = db.session
            with session.begin():
                assert session.scalar(select(func.current_user())) == make_url(service_url).username
                actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))
                assert list(actions) == [
                    "rollups.rebuild",  # by the migrations
                    "orgs.create",
                    "users.create",
                    "auth.login",
                ]
        # Nothing it can send erases, rewrites or unprotects the log.
        service = create_engine(service_url)
        try:
            for statement, refusal in ERASURES.items():
                with service.connect() as connection, pytest.raises(DBAPIError) as refused:
                    # Without parameters psycopg sends several statements in one query.
                    connection.exec_driver_sql(statement)
                assert refusal in str(refused.value), (statement, str(refused.value))
        finally:
            service.dispose()
        # The purge runs as the owner; the chain it leaves verifies.
        # (a zero-day period, which only tests can set, makes every event due).
        app.config["OUTREACH_SETTINGS"] = settings.with_overrides(audit_retention_days=0)
        purged = runner.invoke(args=["retention", "purge"])
        assert purged.exit_code == 0, purged.output
        verified = runner.invoke(args=["audit", "verify"])
        assert verified.exit_code == 0, verified.output
        assert "purge attested at event" in verified.output
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(AuditCheckpoint)) == 1
    finally:
        db.engine_for(app).dispose()
