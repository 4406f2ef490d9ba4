"""Engine construction: the per-engine settings that make writes safe."""

from __future__ import annotations

import select
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A pooled connection idle this long is pinged before use even if its socket is quiet:
# a firewall or a NAT may have dropped it without a word.
PING_AFTER_IDLE_SECONDS = 30.0
_IDLE_SINCE = "outreach.idle_since"


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
        parsed, connect_args=connect_args, **{"pool_size": 5, "max_overflow": 5, **kwargs}
    )
    _decode_json_with_orjson(engine)
    _check_pooled_connections(engine)
    return engine


def _check_pooled_connections(engine: Engine) -> None:
    """Hand out no pooled connection the server has closed, at no round trip's cost.

    An idle connection has nothing to read: the server speaks first only when it ends
    the connection (a restart, a crash, ``pg_terminate_backend``), and its socket then
    turns readable. So a connection is pinged (``SELECT 1``) before use only when its
    socket is readable or it has been idle over ``PING_AFTER_IDLE_SECONDS``; a failed
    ping makes the pool connect afresh (SQLAlchemy's custom pessimistic ping). A
    connection the server loses while it is checked out fails its request with a 503
    either way and is not handed out again; the pool's other connections are checked
    at their own next checkout.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None:  # just connected
            return
        try:
            socket = select.poll()
            socket.register(dbapi_connection.fileno(), select.POLLIN)
            if socket.poll(0) or time.monotonic() - idle_since >= PING_AFTER_IDLE_SECONDS:
                dbapi_connection.execute("SELECT 1")
                dbapi_connection.rollback()
        except psycopg.Error as exc:
            raise DisconnectionError("the pooled connection is gone") from exc


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
