"""Concurrency-safe inserts for both engines: ON CONFLICT DO NOTHING, additive,
bitwise-or and replacing upserts.

On PostgreSQL a batch travels as one JSON document that ``json_to_recordset``
turns back into typed rows: the statement is the same whatever the batch size, so
it is compiled once, and its one parameter is written by orjson in C. A VALUES
list would cost a parse of thousands of placeholders per batch, and arrays per
column are quoted in Python by the driver. The statements go to psycopg itself
(``driver``). SQLite takes the rows as executemany parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, Table, bindparam, cast, column, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from outreach.models import driver
from outreach.models.dialect import engine_of


def insert_new(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> set[Any]:
    """Insert ``rows``, skipping any whose primary key exists; return the ``id`` of each
    row inserted (the rows' ids are distinct: their other key columns are shared).

    A row inserted concurrently by another transaction is skipped too (PostgreSQL
    waits for that transaction, then skips), so this never raises on a duplicate.
    """
    if not rows:
        return set()
    dialect, names = engine_of(session), _column_names(table, rows)
    statement = _insert_new_statement(dialect, table, names)
    if dialect == "sqlite":
        return set(session.execute(statement, list(rows)).scalars())
    inserted = driver.rows(session, statement, {"rows": _json(table, names, rows)})
    return {key for (key,) in inserted}


@dataclass(frozen=True)
class Upsert:
    """Rows to merge into ``table`` by ``key_columns``: their ``value_columns`` are added
    to the stored ones (``combine="add"``), or-ed into them bit by bit (``"or"``) or
    written over them (``"set"``).
    Added columns named in ``wrapped`` are signed 32-bit sums modulo 2^32 (cell keys):
    the rows give them already wrapped (``crypto.wrap32``)."""

    table: Table
    key_columns: tuple[str, ...]
    value_columns: tuple[str, ...]
    rows: Sequence[Mapping[str, Any]]
    combine: str
    wrapped: tuple[str, ...] = ()

    def shape(self) -> UpsertShape:
        names = _column_names(self.table, self.rows)
        return (
            self.table,
            names,
            self.key_columns,
            self.value_columns,
            self.combine,
            self.wrapped,
        )


UpsertShape = tuple[Table, tuple[str, ...], tuple[str, ...], tuple[str, ...], str, tuple[str, ...]]


def upsert_all(session: Session, upserts: Sequence[Upsert]) -> None:
    """Apply the upserts (insert rows whose key is new). On PostgreSQL they go as one
    statement, each a data-modifying CTE: a sync's counters cost one round trip."""
    pending = [upsert for upsert in upserts if upsert.rows]
    if not pending:
        return
    dialect = engine_of(session)
    if dialect == "sqlite":
        for upsert in pending:
            session.execute(_upsert_statement(dialect, *upsert.shape()), list(upsert.rows))
        return
    shapes = tuple(upsert.shape() for upsert in pending)
    driver.execute(
        session,
        _combined_statement(shapes),
        {
            f"rows_{index}": _json(upsert.table, names, upsert.rows)
            for index, (upsert, (_t, names, *_rest)) in enumerate(zip(pending, shapes, strict=True))
        },
    )


# Statements are built once per table and shape: building one costs more than a
# small sync's whole database work.


@lru_cache(maxsize=64)
def _insert_new_statement(dialect: str, table: Table, names: tuple[str, ...]) -> Any:
    statement = _insert(dialect, table, names)
    key = list(table.primary_key.columns)
    return statement.on_conflict_do_nothing(index_elements=key).returning(table.c.id)


@lru_cache(maxsize=64)
def _upsert_statement(
    dialect: str,
    table: Table,
    names: tuple[str, ...],
    key_columns: tuple[str, ...],
    value_columns: tuple[str, ...],
    combine: str,
    wrapped: tuple[str, ...],
    parameter: str = "rows",
) -> Any:
    statement = _insert(dialect, table, names, parameter)
    combined = {
        name: (
            _wrapped_sum(table.c[name], statement.excluded[name])
            if name in wrapped
            else table.c[name] + statement.excluded[name]
            if combine == "add"
            else table.c[name].bitwise_or(statement.excluded[name])
            if combine == "or"
            else statement.excluded[name]
        )
        for name in value_columns
    }
    return statement.on_conflict_do_update(index_elements=list(key_columns), set_=combined)


def _wrapped_sum(stored: Any, added: Any) -> Any:
    """``stored + added`` modulo 2^32 as a signed 32-bit integer, on both engines: in
    64 bits (PostgreSQL would overflow a 32-bit sum), shifted positive before the
    modulo (whose sign follows the dividend on both)."""
    return (cast(stored, BigInteger) + added + 3 * (1 << 31)) % (1 << 32) - (1 << 31)


@lru_cache(maxsize=64)
def _combined_statement(shapes: tuple[UpsertShape, ...]) -> Any:
    # PostgreSQL runs every data-modifying CTE to completion, referenced or not. Its
    # documentation leaves their order open; the executor runs unreferenced ones one
    # after another as written, so transactions lock rows table by table in one order
    # (the concurrency tests would see a deadlock as a 5xx).
    upserts = [
        _upsert_statement("postgresql", *shape, parameter=f"rows_{index}").cte(f"upsert_{index}")
        for index, shape in enumerate(shapes)
    ]
    return select(literal(1)).add_cte(*upserts)


def _insert(dialect: str, table: Table, names: tuple[str, ...], parameter: str = "rows") -> Any:
    if dialect == "sqlite":
        return sqlite.insert(table)
    records = (
        func.json_to_recordset(bindparam(parameter, type_=JSON))
        .table_valued(*(column(name, table.c[name].type) for name in names))
        .render_derived(with_types=True)
    )
    return postgresql.insert(table).from_select(list(names), records.select())


def _json(table: Table, names: tuple[str, ...], rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows, with their defaults, as the JSON document ``json_to_recordset`` reads."""
    return orjson.dumps(_with_defaults(table, names, rows)).decode()


def _column_names(table: Table, rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The columns the rows give, and those with a Python default the rows lack."""
    given = rows[0].keys()
    return tuple(c.name for c in table.columns if c.name in given or c.default is not None)


def _with_defaults(
    table: Table, names: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> Sequence[Mapping[str, Any]]:
    """The rows with the Python defaults of the columns they lack, worked out once per
    statement: its rows are written at one moment (``created_at``, ``version``). The
    rows name their own keys, so no key is left to a default such as ``uuid4``."""
    missing = [name for name in names if name not in rows[0]]
    if not missing:
        return rows
    defaults = {}
    for name in missing:
        default: Any = table.c[name].default
        defaults[name] = default.arg if default.is_scalar else default.arg(None)
    return [{**row, **defaults} for row in rows]
