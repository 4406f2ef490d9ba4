"""Migrations: one head, they build an empty database, and they match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import inspect

from outreach import migrate
from outreach.extensions import db
from outreach.models import Base


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
