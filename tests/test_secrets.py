"""No secret, token, raw ref or coordinate reaches a log line or the audit log (issue 8, 12, 28).

A full scenario runs with every logger at DEBUG: logins right and wrong, a sync with a
person ref and a position, an item outside the service area, a malformed body
carrying a password, a refresh, reads of data and of the audit log, a password
change, a logout. Then every captured log line, as the shipped JSON formatter writes
it (access lines included), and every stored audit event, is searched for each secret
the scenario handled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from config import Settings
from config.logs import formatter
from outreach.extensions import db
from outreach.models import AuditEvent, Role
from tests.helpers import PASSWORD, Account, bearer, headers_for, login
from tests.payloads import STALINGRAD, encounter

RAW_REF = "phone-derived-ref-7f3a9c21"
NEW_PASSWORD = "a brand new passphrase 42"
WRONG_PASSWORD = "guess-number-one-xyz"
LYON = (45.764043, 4.835659)
COUNTS = {"created": 1, "duplicate": 0, "conflict": 0, "invalid": 1}


def test_a_full_scenario_leaks_nothing(
    app: Flask,
    client: FlaskClient,
    settings: Settings,
    make_account: Callable[..., Account],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    worker = make_account(Role.WORKER)
    coordinator = make_account(Role.COORDINATOR)
    auditor = make_account(Role.AUDITOR)

    assert (
        client.post(
            "/api/v1/auth/login", json={"username": worker.username, "password": WRONG_PASSWORD}
        ).status_code
        == 401
    )
    client.post(
        "/api/v1/auth/login",
        data=f'{{"username": "{worker.username}", "password": "{WRONG_PASSWORD}"',
        content_type="application/json",
    )
    tokens = login(client, worker.username)
    headers = bearer(tokens["access_token"])
    item = encounter(person={"ref": RAW_REF, "age_band": "25-34"})
    outside = encounter(position=LYON)  # outside the service area: refused
    answer = client.post("/api/v1/sync", json={"encounters": [item, outside]}, headers=headers)
    assert answer.get_json()["counts"] == COUNTS
    assert client.get("/api/v1/encounters", headers=headers).status_code == 200
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    renewed = refreshed.get_json()
    coordinator_headers = headers_for(client, coordinator)
    assert client.get("/api/v1/stats/summary", headers=coordinator_headers).status_code == 200
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(renewed["access_token"]),
    )
    assert changed.status_code == 204
    final = login(client, worker.username, NEW_PASSWORD)
    client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": final["refresh_token"]},
        headers=bearer(final["access_token"]),
    )
    auditor_headers = headers_for(client, auditor)
    assert client.get("/api/v1/audit/events", headers=auditor_headers).status_code == 200

    secrets = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "new password": NEW_PASSWORD,
        "pepper": settings.pepper,
        "JWT secret": settings.jwt_secret,
        "secret key": settings.secret_key,
        "raw ref": RAW_REF,
        "latitude": str(STALINGRAD[0]),
        "longitude": str(STALINGRAD[1]),
        "latitude outside": str(LYON[0]),
    }
    for name, issued in (("first", tokens), ("refreshed", renewed), ("final", final)):
        for kind in ("access_token", "refresh_token"):
            # The signature alone is enough to tell a leaked token.
            secrets[f"{name} {kind}"] = issued[kind].rsplit(".", 1)[-1]
    with app.app_context():
        events = db.session.execute(
            select(AuditEvent.target, AuditEvent.params, AuditEvent.action)
        ).all()
    audit_text = orjson.dumps([list(event) for event in events]).decode()
    # Each record as the shipped JSON formatter writes it: its extra fields too (the
    # access lines' path, role, ids), not only the message.
    shipped = formatter()
    log_text = "\n".join(shipped.format(record) for record in caplog.records)
    access = [record for record in caplog.records if record.name == "outreach.access"]
    assert len(access) == 13  # one line per request above
    # An organisation and a user per account (6), then one per request above but the
    # body that is not JSON.
    assert len(events) == 6 + 12, [event.action for event in events]
    for name, secret in secrets.items():
        assert secret not in log_text, f"{name} in the logs"
        assert secret not in audit_text, f"{name} in the audit log"
