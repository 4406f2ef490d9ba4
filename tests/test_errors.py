"""Every error leaves in the one envelope: {code, status, message, errors?}."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from config import Settings
from outreach import create_app
from outreach.extensions import db
from outreach.models import AuditEvent, Organisation, Role
from tests.helpers import empty_database, make_settings

LOGIN = "/api/v1/auth/login"


def assert_envelope(body: Any, code: int, status: str) -> None:
    assert isinstance(body, dict)
    assert body["code"] == code
    assert body["status"] == status
    assert isinstance(body["message"], str)
    assert body["message"]
    assert set(body) <= {"code", "status", "message", "errors"}


def test_400_malformed_json(client: FlaskClient) -> None:
    response = client.post(LOGIN, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert_envelope(response.get_json(), 400, "Bad Request")
    assert response.get_json()["errors"] == {"json": ["Invalid JSON body."]}


def test_400_deeply_nested_json_is_refused_not_crashed(client: FlaskClient) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = client.post(LOGIN, data=body, content_type="application/json")
    assert response.status_code == 400
    assert_envelope(response.get_json(), 400, "Bad Request")


def test_422_a_nul_character_is_refused_before_it_reaches_the_database(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    # PostgreSQL's text cannot hold NUL: a username carrying one was a 500 there.
    body = '{"username": "demo\\u0000worker", "password": "x"}'
    response = client.post(LOGIN, data=body, content_type="application/json")
    assert response.status_code == 422
    assert_envelope(response.get_json(), 422, "Unprocessable Entity")
    assert response.get_json()["errors"] == {"json": ["Text may not contain NUL characters."]}
    # An escaped backslash before "u0000" is no NUL: the login is answered as usual.
    literal = '{"username": "demo\\\\u0000worker", "password": "x"}'
    assert client.post(LOGIN, data=literal, content_type="application/json").status_code == 401
    headers = auth_headers(Role.AUDITOR)
    response = client.get("/api/v1/audit/events?actor=demo%00worker", headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"query": ["Text may not contain NUL characters."]}


def test_401_without_token(client: FlaskClient) -> None:
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert_envelope(response.get_json(), 401, "Unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", ["Bearer not.a.token", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a.b.c.d"]
)
def test_401_bad_tokens(client: FlaskClient, header: str) -> None:
    response = client.get("/api/v1/auth/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert_envelope(response.get_json(), 401, "Unauthorized")


def test_403_wrong_role(client: FlaskClient, auth_headers: Callable[..., dict[str, str]]) -> None:
    response = client.get("/api/v1/orgs", headers=auth_headers(Role.WORKER))
    assert response.status_code == 403
    assert_envelope(response.get_json(), 403, "Forbidden")


def test_404_unknown_route_and_unknown_object(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert_envelope(response.get_json(), 404, "Not Found")
    admin = auth_headers(Role.ADMIN)
    missing = client.get("/api/v1/orgs/00000000-0000-4000-8000-000000000000", headers=admin)
    assert missing.status_code == 404
    assert_envelope(missing.get_json(), 404, "Not Found")
    # A malformed id does not match the route at all.
    assert client.get("/api/v1/orgs/not-a-uuid", headers=admin).status_code == 404


def test_405_carries_allow(client: FlaskClient) -> None:
    response = client.put(LOGIN, json={})
    assert response.status_code == 405
    assert_envelope(response.get_json(), 405, "Method Not Allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}


def test_409_conflict(client: FlaskClient, auth_headers: Callable[..., dict[str, str]]) -> None:
    admin = auth_headers(Role.ADMIN)
    body = {"slug": "gaia", "name": "Gaïa", "kind": "association"}
    assert client.post("/api/v1/orgs", json=body, headers=admin).status_code == 201
    again = client.post("/api/v1/orgs", json=body, headers=admin)
    assert again.status_code == 409
    assert_envelope(again.get_json(), 409, "Conflict")
    assert again.get_json()["errors"] == {"slug": ["Taken."]}


def test_413_oversized_body(app: Flask, client: FlaskClient) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 2 * 1024 * 1024
    body = '{"username": "' + "a" * limit + '", "password": "x"}'
    response = client.post(LOGIN, data=body, content_type="application/json")
    assert response.status_code == 413
    assert_envelope(response.get_json(), 413, "Request Entity Too Large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_415_wrong_content_type(client: FlaskClient, content_type: str) -> None:
    response = client.post(
        LOGIN, data='{"username": "a", "password": "b"}', content_type=content_type
    )
    assert response.status_code == 415
    assert_envelope(response.get_json(), 415, "Unsupported Media Type")


def test_422_names_the_fields(client: FlaskClient) -> None:
    response = client.post(LOGIN, json={"username": "a", "password": "b", "role": "admin"})
    assert response.status_code == 422
    assert_envelope(response.get_json(), 422, "Unprocessable Entity")
    assert response.get_json()["errors"]["json"]["role"] == ["Unknown field."]


def test_422_unknown_query_parameter(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    response = client.get("/api/v1/users?rolee=worker", headers=auth_headers(Role.ADMIN))
    assert response.status_code == 422
    assert "rolee" in response.get_json()["errors"]["query"]


def test_429_login_rate_per_client(database_url: str, tmp_path: Path) -> None:
    settings: Settings = make_settings(database_url, tmp_path, login_rate="2 per minute")
    app = create_app(settings)
    empty_database(app)
    client = app.test_client()
    body = {"username": "nobody-at-all", "password": "whatever password"}
    statuses = [client.post(LOGIN, json=body).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    response = client.post(LOGIN, json=body)
    assert_envelope(response.get_json(), 429, "Too Many Requests")
    db.engine_for(app).dispose()


def test_500_is_an_envelope_and_hides_details(app: Flask) -> None:
    def explode() -> None:
        raise RuntimeError("secret internals")

    app.add_url_rule("/api/v1/test-explode", "test_explode", explode)
    # Testing mode re-raises by default; production answers, which is what we check.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/api/v1/test-explode")
    assert response.status_code == 500
    assert_envelope(response.get_json(), 500, "Internal Server Error")
    assert "secret internals" not in response.get_data(as_text=True)


def test_invalid_request_writes_nothing(
    app: Flask, client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    admin = auth_headers(Role.ADMIN)

    def counts() -> tuple[int | None, int | None]:
        with app.app_context():
            session = db.session
            with session.begin():
                return (
                    session.scalar(select(func.count()).select_from(Organisation)),
                    session.scalar(select(func.count()).where(AuditEvent.action == "orgs.create")),
                )

    before = counts()
    for body in (
        {"slug": "x", "name": "ok", "kind": "association"},
        {"slug": "valid-slug", "name": "ok", "kind": "police"},
        {"slug": "valid-slug", "name": "ok", "kind": "association", "id": "x"},
    ):
        assert client.post("/api/v1/orgs", json=body, headers=admin).status_code == 422
    assert counts() == before
