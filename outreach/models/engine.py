"""Engine construction: the per-engine settings that make writes safe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> URL:
    """Parse a database URL, sending bare ``postgresql://`` to psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with WAL and immediate transactions on SQLite.

    JSON columns go through orjson: reading the audit log, for one, is dominated by
    decoding its parameters otherwise (the standard library is ten times slower).
    """
    parsed = normalise_url(url)
    kwargs = {"json_serializer": _json_text, "json_deserializer": orjson.loads, **kwargs}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _make_sqlite_transactions_immediate(engine)
        return engine
    # Sessions in UTC: psycopg then hands back datetime.timezone.utc, which is cheap to
    # compare, instead of a ZoneInfo for the server's own zone name. No JIT: the planner
    # compiles any statement it costs above 100,000, which a year's map and a large
    # batch's upserts are, and the compilation costs more than it saves on statements
    # that run in milliseconds (bench/RESULTS.md).
    connect_args = {"options": "-c timezone=UTC -c jit=off", **kwargs.pop("connect_args", {})}
    engine = create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args=connect_args,
        **kwargs,
    )
    _decode_json_with_orjson(engine)
    return engine


def _decode_json_with_orjson(engine: Engine) -> None:
    # psycopg decodes json columns itself, before SQLAlchemy's deserializer is asked.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        set_json_loads(orjson.loads, dbapi_connection)


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    # pysqlite's own transaction handling starts transactions lazily with a plain
    # BEGIN, so two writers can both read and then fail to upgrade their lock
    # ("database is locked"). Taking the write lock at BEGIN makes the second
    # writer wait (up to the busy timeout) instead. See SQLAlchemy's
    # "Serializable isolation / Savepoints / Transactional DDL" pysqlite recipe.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
