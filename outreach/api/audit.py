"""``/api/v1/audit`` and ``/api/v1/governance``: what the health authority checks."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from flask import current_app

from outreach.api.access import PUBLIC, access_of, call_context, requires, settings
from outreach.api.blueprint import Blueprint
from outreach.api.pages import PageResponse, page_body
from outreach.clock import paris_today
from outreach.extensions import db
from outreach.models import AuditEvent, Role
from outreach.services import audit, audit_log, governance
from schemas.audit import (
    AuditEventPageSchema,
    DataUseQuerySchema,
    DataUseSchema,
    EventQuerySchema,
    RegisterSchema,
    VerifyQuerySchema,
    VerifySchema,
)

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="The audit log")
governance_blp = Blueprint(
    "governance", __name__, url_prefix="/api/v1/governance", description="Data governance"
)

DATA_USE_DEFAULT_DAYS = 30


@blp.route("/events", methods=["GET"])
@requires(Role.AUDITOR)
@blp.arguments(EventQuerySchema, location="query")
@blp.response(200, AuditEventPageSchema)
def list_events(query: dict[str, Any]) -> PageResponse:
    """Audit events, newest first, filtered by period, actor, organisation, action, outcome."""
    filters = audit_log.EventFilters(
        start=query.get("from_"),
        end=query.get("to"),
        actor=query.get("actor"),
        organisation=query.get("organisation"),
        action=query.get("action"),
        outcome=query.get("outcome"),
    )
    found = audit_log.list_events(
        db.session, call_context(), filters, page=query["page"], per_page=query["per_page"]
    )

    def out(event: AuditEvent) -> dict[str, Any]:
        fields = {
            column.key: getattr(event, column.key) for column in AuditEvent.__mapper__.column_attrs
        }
        fields["actor_username"] = (
            found.usernames.get(event.actor_user_id) if event.actor_user_id else None
        )
        fields["actor_organisation"] = (
            found.organisations.get(event.actor_org_id) if event.actor_org_id else None
        )
        return fields

    return page_body(found.page, out)


@blp.route("/verify", methods=["GET"])
@requires(Role.AUDITOR)
@blp.arguments(VerifyQuerySchema, location="query")
@blp.response(200, VerifySchema)
@blp.doc(operationId="verify_audit_log")
def verify(query: dict[str, Any]) -> audit.VerifyResult:
    """Recompute the hash chain; with ``head``, also check that head is still in it."""
    expected = None
    if "head" in query:
        seq, _, digest = query["head"].partition(":")
        expected = audit.ChainHead(seq=int(seq), hash=digest)
    return audit_log.verify_chain(db.session, call_context(), expected)


@blp.route("/data-use", methods=["GET"])
@requires(Role.AUDITOR)
@blp.arguments(DataUseQuerySchema, location="query")
@blp.response(200, DataUseSchema)
def data_use(query: dict[str, Any]) -> dict[str, Any]:
    """Per organisation, role and action: requests, records, refusals; raw-row readers."""
    end = query.get("to") or paris_today()
    start = query.get("from_") or end - timedelta(days=DATA_USE_DEFAULT_DAYS - 1)
    found = audit_log.data_use(db.session, call_context(), start, end)
    return {
        "period": {"from": start, "to": end},
        "rows": found.rows,
        "raw_readers": found.raw_readers,
    }


def _routes_by_role() -> dict[Role, list[str]]:
    routes: dict[Role, list[str]] = defaultdict(list)
    for rule in current_app.url_map.iter_rules():
        declared = access_of(current_app, rule.endpoint)
        if declared is None or declared == PUBLIC:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for role in declared:
                routes[Role(role)].append(f"{method} {rule.rule}")
    return {role: sorted(paths) for role, paths in routes.items()}


@governance_blp.route("/register", methods=["GET"])
@requires(Role.AUDITOR, Role.ADMIN)
@governance_blp.response(200, RegisterSchema)
def processing_register() -> dict[str, Any]:
    """The processing register, generated from the running configuration."""
    return governance.register(db.session, call_context(), settings(), _routes_by_role())
