"""Extension objects, created unbound and wired to an app by ``create_app``.

``Api`` is the exception: flask-smorest keeps one app's spec on the object, so the
factory makes one per app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_smorest import Api as SmorestApi
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

from outreach.models.engine import make_engine
from outreach.services.crypto import keyed_hash


class Api(SmorestApi):  # type: ignore[misc]
    """flask-smorest's Api, keeping the headers an HTTP error carries (``Allow`` on 405)."""

    def handle_http_exception(self, error: HTTPException) -> Any:
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("message", error.description or payload["status"])
        merged = dict(error.get_headers())
        merged.pop("Content-Type", None)
        merged.update(headers or {})
        return payload, code, merged


@dataclass(frozen=True)
class _DatabaseState:
    engine: Engine
    sessions: sessionmaker[Session]


class Database:
    """Engine and sessions of one app; a session lives for one app context."""

    _key = "outreach.database"

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["OUTREACH_SETTINGS"].database_url)
        app.extensions[self._key] = _DatabaseState(
            engine=engine, sessions=sessionmaker(engine, expire_on_commit=False)
        )
        app.teardown_appcontext(self._close_session)

    def _state(self, app: Flask | None = None) -> _DatabaseState:
        state: _DatabaseState = (app or current_app).extensions[self._key]
        return state

    def engine_for(self, app: Flask) -> Engine:
        return self._state(app).engine

    @property
    def engine(self) -> Engine:
        return self._state().engine

    @property
    def session(self) -> Session:
        """The session of the current app context, created on first use.

        It keeps one connection for the whole context: a request's token check, use
        case and audit are several transactions, and each checkout from the pool
        cost a ping to the server and the pool's bookkeeping (bench/RESULTS.md).
        """
        if "db_session" not in g:
            g.db_connection = self._state().engine.connect()
            g.db_session = self._state().sessions(bind=g.db_connection)
        session: Session = g.db_session
        return session

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()
            g.pop("db_connection").close()


def client_key() -> str:
    """The caller as rate limits and audit events know it: a keyed hash of its address
    (after ProxyFix, if configured), so neither Redis nor the log holds an address."""
    pepper = current_app.config["OUTREACH_SETTINGS"].pepper
    return keyed_hash(pepper, "client", request.remote_addr or "unknown")


db = Database()
jwt = JWTManager()
# No rate headers on every answer: the library would put its window's Retry-After on
# each login and refresh answer, over a 503's own (tests/test_database_gone.py). A 429
# carries its Retry-After from ``api.errors.handle_rate_limited``.
limiter = Limiter(key_func=client_key, default_limits=[], headers_enabled=False)
