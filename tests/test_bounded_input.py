"""Errors that escaped the envelope (issue 26, section 4).

Far days (``to=9999-12-31`` on summary and timeseries, ``hotspots?to=0001-01-05``,
a parameter hotspots no longer take: they name a week of the period grid) overflowed
the date arithmetic behind them into a bare 500: every day a query names is now
bounded (422), and so is every period. A request that ends in a 500 left no audit
event: it now writes its ``request.failed`` event, signed in or not.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from outreach.api.access import requires
from outreach.extensions import db
from outreach.models import AuditEvent, Role
from tests.helpers import Account, headers_for

FAR_DAYS = ("9999-12-31", "0001-01-05", "1999-12-31", "2101-01-01")


@pytest.mark.parametrize(
    ("role", "path", "parameter"),
    [
        # Free days are an org_admin's own figures' (and coverage's): far ones are bounded
        # before anything else, for anyone.
        (Role.COORDINATOR, "/api/v1/stats/summary", "to"),
        (Role.COORDINATOR, "/api/v1/stats/summary", "from"),
        (Role.ORG_ADMIN, "/api/v1/stats/timeseries", "to"),
        (Role.ORG_ADMIN, "/api/v1/stats/map", "to"),
        (Role.COORDINATOR, "/api/v1/stats/coverage", "to"),
        (Role.ORG_ADMIN, "/api/v1/encounters", "from"),
        (Role.AUDITOR, "/api/v1/audit/events", "to"),
        (Role.AUDITOR, "/api/v1/audit/data-use", "from"),
    ],
)
def test_a_far_day_is_a_422_not_a_500(
    client: FlaskClient,
    auth_headers: Callable[..., dict[str, str]],
    role: Role,
    path: str,
    parameter: str,
) -> None:
    headers = auth_headers(role)
    for day in FAR_DAYS:
        response = client.get(f"{path}?{parameter}={day}", headers=headers)
        assert response.status_code == 422, (day, response.get_json())
        body = response.get_json()
        assert body["code"] == 422
        assert "between 2000-01-01 and 2100-12-31" in str(body["errors"])


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/stats/summary",
        "/api/v1/stats/timeseries",
        "/api/v1/stats/map",
        "/api/v1/stats/sectors",
        "/api/v1/stats/hotspots",
    ],
)
def test_a_far_period_is_a_422_not_a_500(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]], path: str
) -> None:
    headers = auth_headers(Role.COORDINATOR)
    for period in ("0001-W01", "1999-W52", "9998-W01", "9998", "0001-Q1"):
        response = client.get(f"{path}?period={period}", headers=headers)
        assert response.status_code == 422, (period, response.get_json())
        assert "period" in response.get_json()["errors"]["query"]


def _failed_events(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        session = db.session
        with session.begin():
            events = list(
                session.scalars(select(AuditEvent).where(AuditEvent.action == "request.failed"))
            )
            session.expunge_all()
            return events


def test_a_500_still_writes_its_request_failed_event(
    app: Flask, make_account: Callable[..., Account]
) -> None:
    @requires(Role.COORDINATOR)
    def explode() -> None:
        raise RuntimeError("a fault in a view")

    app.add_url_rule("/api/v1/test-explode", "test_explode", explode)
    app.add_url_rule(
        "/api/v1/test-explode-anonymous", "test_explode_anonymous", explode.__wrapped__
    )  # type: ignore[attr-defined]
    # Testing mode re-raises by default; production answers, which is what we check.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    account = make_account(Role.COORDINATOR)
    headers = headers_for(client, account)
    assert client.get("/api/v1/test-explode", headers=headers).status_code == 500
    assert client.get("/api/v1/test-explode-anonymous").status_code == 500
    events = _failed_events(app)
    assert [(e.target, e.params, e.outcome, e.actor_role) for e in events] == [
        ("test_explode", {"status": 500, "method": "GET"}, "failed", "coordinator"),
        ("test_explode_anonymous", {"status": 500, "method": "GET"}, "failed", None),
    ]
