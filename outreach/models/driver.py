"""The hot path's statements on PostgreSQL, run by psycopg itself on the session's connection.

Through SQLAlchemy's execution layer a statement costs tens of microseconds around the
database's own work (an execution context, parameter processing, a result object), and
a single-encounter sync runs half a dozen. The statements sent here are built once (the
callers keep them), rendered once per statement, and sent prepared, their parameters
already in the driver's types (JSON as text; uuids, dates and numbers as psycopg adapts
them). What comes back is psycopg's rows: only statements whose columns need no
SQLAlchemy result processing (no enums, no JSON) belong here.

On SQLite the statement goes through the session as any other. Errors come back as
SQLAlchemy's, and a connection lost on the way is invalidated, as SQLAlchemy does for
its own statements: callers and error handlers cannot tell the two paths apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy import Insert, Select, TextClause
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from outreach.models.dialect import engine_of

Statement = Select[Any] | Insert | TextClause


def rows(
    session: Session, statement: Statement, parameters: Mapping[str, Any]
) -> Sequence[tuple[Any, ...]]:
    """Every row ``statement`` returns, as tuples."""
    if engine_of(session) != "postgresql":
        return [tuple(row) for row in session.execute(statement, parameters)]
    return _run(session, statement, parameters).fetchall()


def first_alone(
    session: Session, statement: Statement, parameters: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of one statement that reads and needs no transaction around it.

    On PostgreSQL it runs in autocommit, a statement being its own snapshot: no BEGIN
    and COMMIT round trips. The connection leaves autocommit before it goes back, so
    the next transaction on it is one (SQLAlchemy's isolation-level execution option
    would outlive this read on a session's next transaction). SQLite's transactions
    cost no round trip, and its connections begin theirs ``IMMEDIATE`` (``engine.py``):
    the statement runs in one.
    """
    with session.begin():
        if engine_of(session) != "postgresql":
            row = session.execute(statement, parameters).first()
            return None if row is None else tuple(row)
        raw = _driver_connection(session.connection())
        raw.autocommit = True
        try:
            found: tuple[Any, ...] | None = _run(session, statement, parameters).fetchone()
        finally:
            if not raw.closed:
                raw.autocommit = False
        return found


def execute(session: Session, statement: Statement, parameters: Mapping[str, Any]) -> None:
    """Run ``statement``, whose rows, if any, nobody reads."""
    if engine_of(session) != "postgresql":
        session.execute(statement, parameters)
        return
    _run(session, statement, parameters)


def _run(
    session: Session, statement: Statement, parameters: Mapping[str, Any]
) -> psycopg.Cursor[tuple[Any, ...]]:
    connection = session.connection()
    sql, constants = _rendered(statement, connection.dialect)
    values = {**constants, **parameters}
    driver = _driver_connection(connection)
    try:
        return driver.execute(sql, values, prepare=True)
    except psycopg.Error as exc:
        # SQLAlchemy types the driver's errors and connections as its DBAPI protocols.
        lost = connection.dialect.is_disconnect(exc, driver, None)  # type: ignore[arg-type]
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            values,
            exc,
            psycopg.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=connection.dialect,
        ) from exc


def _driver_connection(connection: Connection) -> psycopg.Connection[tuple[Any, ...]]:
    """The psycopg connection under a session's connection."""
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


@lru_cache(maxsize=256)
def _rendered(statement: Statement, dialect: Dialect) -> tuple[str, Mapping[str, Any]]:
    """The statement's SQL for psycopg and the values of its constants (``literal(1)``,
    the modulus of a wrapped sum), which SQLAlchemy sends as parameters too."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), dict(compiled.params)
