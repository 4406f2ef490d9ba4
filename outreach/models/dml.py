"""Concurrency-safe inserts for both engines: ON CONFLICT DO NOTHING, additive and
bitwise-or upserts.

On PostgreSQL a batch travels as one JSON document that ``json_to_recordset``
turns back into typed rows: the statement is the same whatever the batch size, so
it is compiled once, and its one parameter is written by orjson in C. A VALUES
list cost a parse of thousands of placeholders per batch, and arrays per column
are quoted in Python by the driver: either was most of a sync's time. SQLite
takes the rows as executemany parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Table, bindparam, column, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_new(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], key: str = "id"
) -> set[Any]:
    """Insert ``rows``, skipping any whose ``key`` exists; return the keys inserted.

    A row inserted concurrently by another transaction is skipped too (PostgreSQL
    waits for that transaction, then skips), so this never raises on a duplicate.
    """
    if not rows:
        return set()
    dialect, names = _dialect(session), _column_names(table, rows)
    statement = _insert_new_statement(dialect, table, names, key)
    return set(session.execute(statement, _parameters(dialect, table, names, rows)).scalars())


def add_to_counters(
    session: Session,
    table: Table,
    key_columns: Sequence[str],
    value_columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Add each row's values to the stored counter with the same key (insert when new)."""
    _upsert(session, table, key_columns, value_columns, rows, "add")


def merge_bits(
    session: Session,
    table: Table,
    key_columns: Sequence[str],
    value_columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Set each row's bits in the stored words with the same key (insert when new)."""
    _upsert(session, table, key_columns, value_columns, rows, "or")


def _upsert(
    session: Session,
    table: Table,
    key_columns: Sequence[str],
    value_columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    combine: str,
) -> None:
    if not rows:
        return
    dialect, names = _dialect(session), _column_names(table, rows)
    statement = _upsert_statement(
        dialect, table, names, tuple(key_columns), tuple(value_columns), combine
    )
    session.execute(statement, _parameters(dialect, table, names, rows))


# Statements are built once per table and shape: building one costs more than a
# small sync's whole database work.


@lru_cache(maxsize=64)
def _insert_new_statement(dialect: str, table: Table, names: tuple[str, ...], key: str) -> Any:
    statement = _insert(dialect, table, names)
    return statement.on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])


@lru_cache(maxsize=64)
def _upsert_statement(
    dialect: str,
    table: Table,
    names: tuple[str, ...],
    key_columns: tuple[str, ...],
    value_columns: tuple[str, ...],
    combine: str,
) -> Any:
    statement = _insert(dialect, table, names)
    combined = {
        name: (
            table.c[name] + statement.excluded[name]
            if combine == "add"
            else table.c[name].bitwise_or(statement.excluded[name])
        )
        for name in value_columns
    }
    return statement.on_conflict_do_update(index_elements=list(key_columns), set_=combined)


def _dialect(session: Session) -> str:
    name = session.get_bind().dialect.name
    if name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"no conflict-safe insert for {name}")
    return name


def _insert(dialect: str, table: Table, names: tuple[str, ...]) -> Any:
    if dialect == "sqlite":
        return sqlite.insert(table)
    records = (
        func.json_to_recordset(bindparam("rows", type_=JSON))
        .table_valued(*(column(name, table.c[name].type) for name in names))
        .render_derived(with_types=True)
    )
    return postgresql.insert(table).from_select(list(names), records.select())


def _parameters(
    dialect: str, table: Table, names: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> Any:
    if dialect == "sqlite":
        return list(rows)
    return {"rows": [_with_defaults(table, names, row) for row in rows]}


def _column_names(table: Table, rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The columns the rows give, and those with a Python default the rows lack."""
    given = rows[0].keys()
    return tuple(c.name for c in table.columns if c.name in given or c.default is not None)


def _with_defaults(
    table: Table, names: tuple[str, ...], row: Mapping[str, Any]
) -> Mapping[str, Any]:
    if len(row) == len(names):
        return row
    filled = dict(row)
    for name in names:
        if name not in filled:
            default: Any = table.c[name].default
            filled[name] = default.arg if default.is_scalar else default.arg(None)
    return filled
