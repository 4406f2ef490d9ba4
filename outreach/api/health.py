"""``/api/v1/healthz`` (the process answers) and ``/api/v1/readyz`` (the database too,
with its schema at the migrations' head)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from outreach import migrate
from outreach.api.access import public
from outreach.api.blueprint import Blueprint
from outreach.extensions import db
from schemas.health import HealthSchema, ReadySchema

blp = Blueprint("health", __name__, url_prefix="/api/v1", description="Probes")
log = logging.getLogger(__name__)


@blp.route("/healthz", methods=["GET"])
@public
@blp.response(200, HealthSchema)
def healthz() -> dict[str, Any]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@public
@blp.response(200, ReadySchema)
@blp.alt_response(
    503, schema=ReadySchema, description="The database is unreachable or not migrated"
)
def readyz() -> Any:
    """Readiness: the database answers, and its schema is at the migrations' head.

    An empty or older database is not ready: every request it would be sent is a 503.
    """
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            try:
                version = connection.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
            except SQLAlchemyError:
                version = None
    except SQLAlchemyError:
        return {"status": "not ready", "database": "unreachable"}, 503
    expected = migrate.head()
    if version != expected:
        # The revisions go to the log, not to anyone who asks.
        log.error(
            "not ready: the database schema is at %s, the code expects %s: run flask db upgrade",
            version or "no revision (not migrated)",
            expected,
        )
        return {"status": "not ready", "database": "ok", "schema": "not at head"}, 503
    return {"status": "ready", "database": "ok"}
