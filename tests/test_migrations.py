"""Migrations: one head, they build an empty database, and they match the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import inspect, text

from outreach import migrate
from outreach.extensions import db
from outreach.models import Base
from outreach.services import audit, retention
from outreach.services.context import OPERATOR


def test_one_head(database_url: str) -> None:
    assert len(migrate.heads(database_url)) == 1


def test_models_and_migrations_agree(app: Flask) -> None:
    # The fixture's database was built by the migrations alone.
    with db.engine_for(app).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrade_downgrade_round_trip_via_cli(app: Flask, runner: FlaskCliRunner) -> None:
    """``flask db`` walks the whole history down to empty and back up."""
    engine = db.engine_for(app)
    tables = set(Base.metadata.tables)
    down = runner.invoke(args=["db", "downgrade", "base"])
    assert down.exit_code == 0, down.output
    assert set(inspect(engine).get_table_names()) & tables == set()
    up = runner.invoke(args=["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert "Database upgraded to head." in up.output
    assert tables <= set(inspect(engine).get_table_names())


def test_a_downgrade_that_would_lose_audit_evidence_refuses(
    app: Flask, runner: FlaskCliRunner
) -> None:
    """Below 0004 the purge checkpoints go, below 0001 the events: both refuse, saying why."""
    settings = app.config["OUTREACH_SETTINGS"].with_overrides(audit_retention_days=0)
    with app.app_context():
        audit.record(db.session, OPERATOR, "test.event")
        db.session.commit()
        retention.purge(db.session, OPERATOR, settings)
    for target, table in (("0003", "audit_checkpoints"), ("base", "audit_checkpoints")):
        refused = runner.invoke(args=["db", "downgrade", target])
        assert refused.exit_code == 1
        assert f"refusing to downgrade below 0004: {table} holds 1" in refused.output
        # Nothing was undone.
        with db.engine_for(app).connect() as connection:
            assert (
                connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
                == (migrate.heads(settings.database_url)[0])
            )
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output


def test_a_downgrade_to_base_refuses_while_audit_events_exist(
    app: Flask, runner: FlaskCliRunner
) -> None:
    with app.app_context():
        audit.record(db.session, OPERATOR, "test.event")
        db.session.commit()
    refused = runner.invoke(args=["db", "downgrade", "base"])
    assert refused.exit_code == 1
    assert "refusing to downgrade below 0001: audit_events holds 1" in refused.output
    assert "audit_events" in inspect(db.engine_for(app)).get_table_names()


def test_the_rollup_tables_have_the_documented_fill_factor(app: Flask, engine_name: str) -> None:
    """docs/scaling.md promised a fill factor of 80 that no migration set (issue 26)."""
    if engine_name != "postgresql":
        pytest.skip("SQLite has no fill factor")
    with db.engine_for(app).connect() as connection:
        options = dict(
            connection.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class"
                    " WHERE (relname LIKE 'rollup%' OR relname = 'shift_sectors')"
                    " AND relkind = 'r'"
                )
            ).all()
        )
    tables = [name for name in Base.metadata.tables if name.startswith("rollup")]
    for table in [*tables, "shift_sectors"]:
        assert options[table] == ["fillfactor=80"], table
