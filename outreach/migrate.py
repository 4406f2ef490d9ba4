"""Alembic driven from the app's settings, for ``flask db`` and the tests; the service
role's privileges on PostgreSQL."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from outreach.models.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


# Revisions after which the rollups must be rebuilt from the raw encounters (they add
# what every counter keeps); ``flask db upgrade`` does it when it applies one.
REBUILDS = frozenset({"0013", "0014"})


def alembic_config(database_url: str, pepper: str | None = None) -> Config:
    config = Config()
    # Migrations that derive keyed values from existing rows read it (0013).
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


class DowngradeRefused(RuntimeError):
    """A downgrade would lose data: audit events or purge checkpoints, or one of the
    encounters or shifts two associations hold under one id."""


# Revisions whose downgrade drops audit evidence, and the table it would drop.
_EVIDENCE = {"0004": "audit_checkpoints", "0001": "audit_events"}
# Revisions that gave each association its own id space, and the table whose ids they
# scoped: below one, an id is unique across associations again.
_ID_SPACES = {"0017": "shifts", "0016": "encounters"}


def shared_ids_refusal(connection: Connection, revision: str) -> str | None:
    """Why the downgrade below ``revision`` of ``_ID_SPACES`` (one id space for every
    association) cannot run, or ``None`` when no id of its table is held by two
    associations."""
    table = _ID_SPACES[revision]
    shared = connection.execute(
        # A fixed table name of _ID_SPACES.
        text(
            f"SELECT count(*) FROM (SELECT id FROM {table} GROUP BY id"  # noqa: S608
            " HAVING count(*) > 1) AS shared"
        )
    ).scalar()
    if not shared:
        return None
    kind = table.removesuffix("s")
    return (
        f"refusing to downgrade below {revision}: {shared} {kind} id(s) are each held by more"
        f" than one association, and before {revision} an id is unique across associations"
        " (one of each would have to be merged into the other or dropped). Keep this revision."
    )


def downgrade(database_url: str, revision: str) -> None:
    """Revert migrations down to ``revision``, refusing before anything is undone if that
    would drop audit events or checkpoints that exist, or encounters or shifts two
    associations hold under one id.

    The revisions' own downgrades refuse too, but SQLite does not undo the steps already
    taken, and a database left half way down serves nothing.
    """
    config = alembic_config(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            undone = _revisions_undone(ScriptDirectory.from_config(config), current, revision)
            for step in _ID_SPACES:
                refusal = shared_ids_refusal(connection, step) if step in undone else None
                if refusal is not None:
                    raise DowngradeRefused(refusal)
            for step, table in _EVIDENCE.items():
                if step not in undone:
                    continue
                # A fixed table name of _EVIDENCE.
                count = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: S608
                if count:
                    raise DowngradeRefused(
                        f"refusing to downgrade below {step}: {table} holds {count} row(s) of"
                        " audit evidence that the downgrade would drop (the remaining log would"
                        " no longer verify, and no upgrade brings them back)"
                    )
    finally:
        engine.dispose()
    command.downgrade(config, revision)


def _revisions_undone(script: ScriptDirectory, current: str | None, target: str) -> list[str]:
    # The history is one line (tests/test_migrations.py): newest first.
    line = [rev.revision for rev in script.walk_revisions()]
    if current is None or current not in line:
        return []
    start = line.index(current)
    if target == "base":
        end = len(line)
    elif target.startswith("-") and target[1:].isdigit():
        end = start + int(target[1:])
    elif target in line:
        end = line.index(target)
    else:
        return line[start:]
    return line[start:end]


@cache
def head() -> str:
    """The newest revision of the migration scripts (there is one: tests/test_migrations.py)."""
    return str(ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head())


def heads(database_url: str) -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


# What the service's role may do to the audit tables: append and read events, read
# checkpoints. Deleting events (the purge) and writing checkpoints need the owner.
AUDIT_PRIVILEGES = {
    "audit_events": "SELECT, INSERT",
    "audit_checkpoints": "SELECT",
    "audit_time_order": "SELECT",
}
READ_ONLY_TABLES = ("alembic_version",)


def grant_service_role(owner_url: str, service_url: str) -> str | None:
    """Give the service URL's role what it needs and no more, as the tables' owner.

    Every other table: read and write. The audit tables: ``AUDIT_PRIVILEGES`` only,
    so the role cannot update, delete or truncate them, and, not owning them, cannot
    switch their triggers off. Run after every upgrade (new tables need their grants);
    nothing to do on SQLite or when both URLs name the same role. Returns the role.
    """
    owner, service = make_url(owner_url), make_url(service_url)
    if owner.get_backend_name() != "postgresql" or not service.username:
        return None
    if service.username == owner.username:
        return None
    role = '"' + service.username.replace('"', '""') + '"'
    engine = create_engine(owner_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
            connection.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"))
            connection.execute(
                text(
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
                )
            )
            for table in (*AUDIT_PRIVILEGES, *READ_ONLY_TABLES):
                connection.execute(text(f"REVOKE ALL ON {table} FROM {role}"))
            for table, privileges in AUDIT_PRIVILEGES.items():
                connection.execute(text(f"GRANT {privileges} ON {table} TO {role}"))
            for table in READ_ONLY_TABLES:
                connection.execute(text(f"GRANT SELECT ON {table} TO {role}"))
            connection.execute(
                text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
            )
    finally:
        engine.dispose()
    return service.username
