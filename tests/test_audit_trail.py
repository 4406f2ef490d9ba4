"""Nothing unaudited: every data route, called as it is meant to be, leaves an event.

The walk goes over the app's URL map, so a new route fails here until it audits (or
is added, with its reason, to the few reference-data reads that do not). Each call
must succeed; the event is found by the request id the response carries.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from outreach.api.access import PUBLIC, access_of
from outreach.clock import paris_today
from outreach.extensions import db
from outreach.models import AuditEvent, Role
from tests.helpers import PASSWORD, POLICY, Account, headers_for
from tests.payloads import encounter

# Reference data read by every phone at start-up: nothing about people or use.
NOT_AUDITED = {
    ("GET", "/api/v1/vocabularies"),
    ("GET", "/api/v1/structures"),
    ("GET", "/api/v1/structures/<uuid:structure_id>"),
    # The calendar of the grid: which periods one may ask for, no figure.
    ("GET", "/api/v1/stats/periods"),
}
# Who makes each call, in order of preference among the roles a route admits.
CALLER_PREFERENCE = (Role.ORG_ADMIN, Role.COORDINATOR, Role.AUDITOR, Role.ADMIN, Role.WORKER)


def _world(client: FlaskClient, make_account: Callable[..., Account]) -> dict[str, Any]:
    accounts = {role: make_account(role) for role in Role}
    worker = accounts[Role.WORKER]
    headers = headers_for(client, worker)
    stored = encounter()
    response = client.post("/api/v1/sync", json={"encounters": [stored]}, headers=headers)
    assert response.get_json()["counts"]["created"] == 1
    coordinator = headers_for(client, accounts[Role.COORDINATOR])
    structure = client.post(
        "/api/v1/structures",
        json={"code": "walk_test", "name": "Walk test", "destination": "caarud"},
        headers=coordinator,
    ).get_json()
    return {"accounts": accounts, "encounter": stored["id"], "structure": structure["id"]}


def _call(route: tuple[str, str], world: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The concrete path and body of a successful call to ``route``."""
    _method, rule = route
    accounts = world["accounts"]
    worker_org = accounts[Role.WORKER]
    path = (
        rule.replace("<uuid:encounter_id>", world["encounter"])
        .replace("<uuid:structure_id>", world["structure"])
        .replace("<uuid:organisation_id>", str(worker_org.organisation_id))
        .replace("<uuid:user_id>", str(worker_org.user_id))
        .replace("<string:code>", "pipe")
    )
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/auth/logout"): {},
        ("POST", "/api/v1/auth/password"): {
            "current_password": PASSWORD,
            "new_password": "another long passphrase",
        },
        ("POST", "/api/v1/orgs"): {
            "slug": f"walk-{uuid.uuid4().hex[:6]}",
            "name": "Walk",
            "kind": "association",
        },
        ("PATCH", "/api/v1/orgs/<uuid:organisation_id>"): {"name": "Renamed"},
        ("POST", "/api/v1/users"): {
            "username": f"walk-{uuid.uuid4().hex[:6]}",
            "password": PASSWORD,
            "role": "worker",
        },
        ("PATCH", "/api/v1/users/<uuid:user_id>"): {"role": "worker"},
        ("POST", "/api/v1/kits"): {"code": f"walk_{uuid.uuid4().hex[:6]}", "label": "Walk kit"},
        ("PATCH", "/api/v1/kits/<string:code>"): {"label": "Pipe à crack"},
        ("POST", "/api/v1/structures"): {
            "code": f"walk_{uuid.uuid4().hex[:6]}",
            "name": "Another",
            "destination": "csapa",
        },
        ("PATCH", "/api/v1/structures/<uuid:structure_id>"): {"name": "Renamed"},
        ("POST", "/api/v1/sync"): {"encounters": [encounter()]},
        ("PATCH", "/api/v1/encounters/<uuid:encounter_id>"): {"people": 2},
        ("DELETE", "/api/v1/encounters/<uuid:encounter_id>"): {"reason": "entered_in_error"},
    }
    if rule == "/api/v1/reports/activity":
        path += f"?year={paris_today().year}"
    return path, bodies.get(route)


def test_every_data_route_writes_an_audit_event(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    world = _world(client, make_account)
    walked = 0
    for rule in app.url_map.iter_rules():
        declared = access_of(app, rule.endpoint)
        if declared == PUBLIC:
            continue
        assert declared is not None
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if (method, rule.rule) in NOT_AUDITED:
                continue
            role = next(r for r in CALLER_PREFERENCE if r in declared)
            # A fresh caller each time: logout and password changes end their login.
            caller = make_account(role, world["accounts"][role].organisation_slug)
            path, body = _call((method, rule.rule), world)
            headers = headers_for(client, caller)
            response = client.open(path, method=method, json=body, headers=headers)
            assert response.status_code < 400, (method, rule.rule, response.get_json())
            request_id = response.headers["X-Request-ID"]
            with app.app_context():
                events = db.session.scalars(
                    select(AuditEvent).where(AuditEvent.request_id == request_id)
                ).all()
            assert events, f"{method} {rule.rule} answered {response.status_code} unaudited"
            assert all(e.outcome == "success" for e in events), (method, rule.rule)
            walked += 1
    # Every route of the policy table that is neither public nor exempt, no fewer.
    assert walked == sum(
        1 for route, allowed in POLICY.items() if allowed != PUBLIC and route not in NOT_AUDITED
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", f"/api/v1/encounters/{uuid.UUID(int=7)}", None, 404),
        ("PATCH", f"/api/v1/encounters/{uuid.UUID(int=7)}", {"people": 2}, 404),
        ("POST", "/api/v1/sync", {"encounters": "many"}, 422),
        ("GET", "/api/v1/stats/summary?sector=atlantis", None, 422),
    ],
)
def test_failed_requests_leave_a_trace(
    app: Flask,
    client: FlaskClient,
    make_account: Callable[..., Account],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    admin = make_account(Role.ORG_ADMIN)
    headers = headers_for(client, admin)
    response = client.open(path, method=method, json=body, headers=headers)
    assert response.status_code == status
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.request_id == response.headers["X-Request-ID"])
        ).one()
    assert event.action == "request.failed"
    assert event.outcome == ("invalid" if status == 422 else "failed")
    assert event.params == {"status": status, "method": method}
    assert event.actor_user_id == admin.user_id


def test_a_read_whose_event_cannot_be_written_fails(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account], engine_name: str
) -> None:
    """No event, no data: with the audit table gone, a stats read answers an error."""
    coordinator = make_account(Role.COORDINATOR)
    headers = headers_for(client, coordinator)
    assert client.get("/api/v1/stats/summary", headers=headers).status_code == 200
    # Answer the failure as in production instead of raising it into the test.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    engine = db.engine_for(app)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE audit_events RENAME TO audit_events_away")
    try:
        response = client.get("/api/v1/stats/summary", headers=headers)
        assert response.status_code == 503
        assert "counts" not in (response.get_json() or {})
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE audit_events_away RENAME TO audit_events")
