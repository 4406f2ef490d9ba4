"""Alembic driven from the app's settings, for ``flask db`` and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from outreach.models.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


# Revisions after which the rollups must be rebuilt from the raw encounters (they add
# what every counter keeps); ``flask db upgrade`` does it when it applies one.
REBUILDS = frozenset({"0011", "0012"})


def alembic_config(database_url: str, pepper: str | None = None) -> Config:
    config = Config()
    # Migrations that derive keyed values from existing rows read it (0011).
    config.attributes["pepper"] = pepper
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' would be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head", pepper: str | None = None) -> bool:
    """Upgrade to ``revision``; whether a revision of ``REBUILDS`` was applied."""
    config = alembic_config(database_url, pepper)
    before = set(current(database_url))
    command.upgrade(config, revision)
    script = ScriptDirectory.from_config(config)
    applied = {
        rev.revision
        for head in current(database_url)
        for rev in script.iterate_revisions(head, "base")
    }
    applied -= {rev.revision for head in before for rev in script.iterate_revisions(head, "base")}
    return bool(applied & REBUILDS)


def current(database_url: str) -> list[str]:
    """The revisions the database is at (none when unmigrated)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def heads(database_url: str) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
