"""Error handlers: every failure leaves in the one JSON envelope.

``{"code", "status", "message", "errors"?}``, for use-case failures, HTTP errors
(flask-smorest's handler, extended by ``extensions.Api`` to keep headers), lost
database connections (503) and anything unexpected (500, logged).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, request
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.exc import OperationalError, ProgrammingError
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.http import HTTP_STATUS_CODES

from outreach.extensions import limiter
from outreach.services.errors import ServiceError, TooManyAttempts, Unauthorized

log = logging.getLogger(__name__)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def envelope(code: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "code": code,
        "status": HTTP_STATUS_CODES.get(code, "Error"),
        "message": message,
    }
    if errors:
        payload["errors"] = errors
    return payload


def handle_service_error(error: ServiceError) -> tuple[dict[str, Any], int, dict[str, str]]:
    headers: dict[str, str] = {}
    if isinstance(error, TooManyAttempts):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="outreach"'
    return envelope(error.status, error.message, error.errors), error.status, headers


# SQLSTATEs of a transaction the server aborted to settle a collision with another:
# deadlock_detected, serialization_failure. The server is up; a retry succeeds.
COLLISIONS = frozenset({"40P01", "40001"})


def handle_database_unavailable(
    error: OperationalError | ProgrammingError,
) -> tuple[dict[str, Any], int, dict[str, str]]:
    # The driver's message may quote SQL or parameters: it goes to the log, never
    # to the client.
    if getattr(error.orig, "sqlstate", None) in COLLISIONS:
        log.error("transaction aborted by the database: %s", type(error.orig).__name__)
        return (
            envelope(
                503,
                "The request collided with another one and was rolled back (a deadlock);"
                " nothing was stored. Retry it.",
            ),
            503,
            {"Retry-After": "1"},
        )
    # The first line names the cause ("no such table: users", "connection refused");
    # the lines after it may quote values.
    cause = str(error.orig or error).strip().splitlines()[:1]
    log.error(
        "database unavailable: %s: %s",
        type(error.orig or error).__name__,
        cause[0][:300] if cause else "",
    )
    return (
        envelope(503, "The database is unavailable; retry shortly."),
        503,
        {"Retry-After": "5"},
    )


# SQLSTATEs of a schema behind the code: undefined table, column, function.
SCHEMA_BEHIND = frozenset({"42P01", "42703", "42883"})


def handle_schema_behind(error: ProgrammingError) -> tuple[dict[str, Any], int, dict[str, str]]:
    """503 while the database lacks what the code expects (``flask db upgrade`` not run),
    as SQLite's "no such table" already is; any other programming error stays a 500."""
    if getattr(error.orig, "sqlstate", None) not in SCHEMA_BEHIND:
        raise error
    return handle_database_unavailable(error)


def handle_rate_limited(error: RateLimitExceeded) -> tuple[dict[str, Any], int, dict[str, str]]:
    """429 in the envelope, with the seconds until the limit's window frees a request."""
    current = limiter.current_limit
    wait = int(current.reset_at - time.time()) if current is not None else 60
    return (
        envelope(429, error.description or "Too many requests."),
        429,
        {"Retry-After": str(max(1, wait))},
    )


def require_json_body() -> None:
    """Refuse a request body that is not JSON with 415 before any view parses it."""
    if request.method not in BODY_METHODS or not request.path.startswith("/api/"):
        return
    has_body = (request.content_length or 0) > 0 or request.headers.get("Transfer-Encoding")
    if has_body and request.mimetype != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(ProgrammingError, handle_schema_behind)
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)

    app.before_request(require_json_body)
