"""The engine's per-connection settings, on the real server."""

from __future__ import annotations

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from outreach.models.engine import make_engine


def test_postgresql_sessions_run_in_utc_without_jit(postgresql_url: str) -> None:
    engine = make_engine(postgresql_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW timezone").scalar() == "UTC"
            assert connection.exec_driver_sql("SHOW jit").scalar() == "off"
    finally:
        engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _driver_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_a_pooled_connection_the_server_ended_is_replaced_unseen(postgresql_url: str) -> None:
    engine = make_engine(postgresql_url, pool_size=1, max_overflow=0)
    try:
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first  # the pool hands the same connection back
        with psycopg.connect(_driver_url(postgresql_url), autocommit=True) as admin:
            # Waits (up to 10 s) until the backend has exited.
            ended = admin.execute("SELECT pg_terminate_backend(%s, 10000)", (first,)).fetchone()
        assert ended == (True,)
        # The next checkout finds the socket readable, pings, and connects afresh: the
        # caller never sees the dead connection.
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_a_pooled_connection_in_use_is_handed_out_without_a_ping(postgresql_url: str) -> None:
    engine = make_engine(postgresql_url, pool_size=1, max_overflow=0)
    marker = "SELECT 'the last statement before the checkout'"
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            connection.exec_driver_sql(marker)
        with (
            engine.connect() as connection,
            psycopg.connect(_driver_url(postgresql_url), autocommit=True) as admin,
        ):
            last = admin.execute(
                "SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            # Checked out and not yet used: the backend ran nothing since the marker.
            assert last == (marker,)
            assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pid
    finally:
        engine.dispose()
