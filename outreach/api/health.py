"""``/api/v1/healthz`` (the process answers) and ``/api/v1/readyz`` (the database too)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from outreach.api.access import public
from outreach.api.blueprint import Blueprint
from outreach.extensions import db
from schemas.health import HealthSchema, ReadySchema

blp = Blueprint("health", __name__, url_prefix="/api/v1", description="Probes")


@blp.route("/healthz", methods=["GET"])
@public
@blp.response(200, HealthSchema)
def healthz() -> dict[str, Any]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@public
@blp.response(200, ReadySchema)
@blp.alt_response(503, schema=ReadySchema, description="The database is unreachable")
def readyz() -> Any:
    """Readiness: the database answers a query."""
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return {"status": "not ready", "database": "unreachable"}, 503
    return {"status": "ready", "database": "ok"}
