"""Concurrency-safe inserts for both engines: ON CONFLICT DO NOTHING and additive upserts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no conflict-safe insert for {dialect}")


def insert_new(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], key: str = "id"
) -> set[Any]:
    """Insert ``rows``, skipping any whose ``key`` exists; return the keys inserted.

    A row inserted concurrently by another transaction is skipped too (PostgreSQL
    waits for that transaction, then skips), so this never raises on a duplicate.
    """
    if not rows:
        return set()
    statement = (
        _insert(session, table)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c[key])
    )
    return set(session.execute(statement).scalars())


def add_to_counters(
    session: Session,
    table: Table,
    key_columns: Sequence[str],
    value_columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Add each row's values to the stored counter with the same key (insert when new)."""
    if not rows:
        return
    statement = _insert(session, table).values(list(rows))
    statement = statement.on_conflict_do_update(
        index_elements=list(key_columns),
        set_={name: table.c[name] + statement.excluded[name] for name in value_columns},
    )
    session.execute(statement)
