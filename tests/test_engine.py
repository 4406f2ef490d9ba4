"""The engine's per-connection settings, on the real server."""

from __future__ import annotations

from outreach.models.engine import make_engine


def test_postgresql_sessions_run_in_utc_without_jit(postgresql_url: str) -> None:
    engine = make_engine(postgresql_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW timezone").scalar() == "UTC"
            assert connection.exec_driver_sql("SHOW jit").scalar() == "off"
    finally:
        engine.dispose()
