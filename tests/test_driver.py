"""Statements sent through ``models.driver`` behave as SQLAlchemy's own, on both engines:
the same rows, SQLAlchemy's errors, and a lost connection invalidated, not reused."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from sqlalchemy import bindparam, literal, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from outreach.extensions import db
from outreach.models import Kit, driver, utcnow

ACTIVE_KITS = select(Kit.code, literal(7)).where(Kit.active.is_(True)).order_by(Kit.code)
ADD_KIT = text("INSERT INTO kits (code, label, active, created_at) VALUES (:code, 'x', 1 = 1, :at)")
COUNT_PIPES = text("SELECT count(*) FROM kits WHERE code = 'pipe'")


def test_rows_are_those_sqlalchemy_returns(app: Flask) -> None:
    with app.app_context():
        session = db.session
        with session.begin():
            through_driver = driver.rows(session, ACTIVE_KITS, {})
            through_sqlalchemy = [tuple(row) for row in session.execute(ACTIVE_KITS)]
        # The constant comes back too: the rendered statement carries its value.
        assert through_driver == through_sqlalchemy
        assert through_driver
        assert {row[1] for row in through_driver} == {7}


def test_a_database_error_is_sqlalchemys(app: Flask) -> None:
    with app.app_context():
        session = db.session
        with pytest.raises(IntegrityError) as raised, session.begin():
            driver.execute(session, ADD_KIT, {"code": "pipe", "at": utcnow()})
        assert "kits" in str(raised.value.orig)
        # The session goes on, and nothing of the refused statement was kept.
        with session.begin():
            assert driver.rows(session, COUNT_PIPES, {}) == [(1,)]


def test_a_connection_lost_mid_transaction_is_invalidated(app: Flask, engine_name: str) -> None:
    if engine_name != "postgresql":
        pytest.skip("SQLite has no connection to lose")
    with app.app_context():
        session = db.session
        transaction = session.begin()
        own = driver.rows(session, text("SELECT pg_backend_pid()"), {})[0][0]
        with psycopg.connect(_admin_url(app), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (own,))
        with pytest.raises(OperationalError) as raised:
            driver.execute(session, select(bindparam("one", 1)), {})
        assert raised.value.connection_invalidated
        transaction.rollback()
        # The pool connects afresh: the next transaction runs on a new backend.
        with session.begin():
            assert driver.rows(session, text("SELECT pg_backend_pid()"), {})[0][0] != own


def _admin_url(app: Flask) -> str:
    url = db.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def test_the_transaction_after_a_read_alone_is_one(app: Flask) -> None:
    # The read runs in autocommit on PostgreSQL; what the session does next must still
    # be all or nothing.
    with app.app_context():
        session = db.session
        assert driver.first_alone(session, COUNT_PIPES, {}) == (1,)
        transaction = session.begin()
        driver.execute(session, ADD_KIT, {"code": "new-kit", "at": utcnow()})
        with pytest.raises(IntegrityError):
            driver.execute(session, ADD_KIT, {"code": "pipe", "at": utcnow()})
        transaction.rollback()
        with session.begin():
            assert (
                driver.rows(session, text("SELECT code FROM kits WHERE code = 'new-kit'"), {}) == []
            )
