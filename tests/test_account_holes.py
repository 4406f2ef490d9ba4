"""Account and token holes of issue 26, section 2, each closed.

- ``PATCH /users/{own id}`` changed one's own password without the current one: a
  stolen 15-minute token became a permanent takeover.
- Deactivating an organisation did not revoke its members' logins: after reactivation
  their old access and refresh tokens worked again.
- A correctly signed token without ``exp`` (or ``iat``) was accepted.
- Login and refresh each had the per-address rate, twice what the README says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from outreach.models import Role
from tests.helpers import PASSWORD, Account, bearer, login

NEW_PASSWORD = "a brand new passphrase"


@pytest.mark.parametrize("role", [Role.ADMIN, Role.ORG_ADMIN])
def test_ones_own_password_changes_only_through_auth_password(
    client: FlaskClient, make_account: Callable[..., Account], role: Role
) -> None:
    me = make_account(role)
    headers = bearer(login(client, me.username)["access_token"])
    response = client.patch(
        f"/api/v1/users/{me.user_id}", json={"password": NEW_PASSWORD}, headers=headers
    )
    assert response.status_code == 422
    assert "/auth/password" in str(response.get_json()["errors"]["password"])
    refused = client.post(
        "/api/v1/auth/login", json={"username": me.username, "password": NEW_PASSWORD}
    )
    assert refused.status_code == 401
    login(client, me.username, PASSWORD)
    # Through /auth/password, with the current password, it works.
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(login(client, me.username)["access_token"]),
    )
    assert changed.status_code == 204
    login(client, me.username, NEW_PASSWORD)


def test_deactivating_an_organisation_ends_its_logins_for_good(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    worker = make_account(Role.WORKER, "assoc-a")
    tokens = login(client, worker.username)
    admin = bearer(login(client, make_account(Role.ADMIN).username)["access_token"])
    url = f"/api/v1/orgs/{worker.organisation_id}"
    for active in (False, True):
        response = client.patch(url, json={"active": active}, headers=admin)
        assert response.status_code == 200, response.get_json()
    me = client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    # Signing in again works once the organisation is active.
    login(client, worker.username)


def _resigned(app: Flask, token: str, *drop: str) -> str:
    secret = app.config["JWT_SECRET_KEY"]
    claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"])
    for name in drop:
        del claims[name]
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize("drop", [("exp",), ("iat",), ("exp", "iat"), ("type",)])
def test_a_signed_token_without_its_standard_claims_is_refused(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account], drop: tuple[str, ...]
) -> None:
    tokens = login(client, make_account(Role.WORKER).username)
    access = _resigned(app, tokens["access_token"])
    assert client.get("/api/v1/auth/me", headers=bearer(access)).status_code == 200
    stripped = _resigned(app, tokens["access_token"], *drop)
    assert client.get("/api/v1/auth/me", headers=bearer(stripped)).status_code == 401
    refresh = _resigned(app, tokens["refresh_token"], *drop)
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert response.status_code == 401


def test_login_and_refresh_share_one_rate_per_address(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    app.config["OUTREACH_LOGIN_RATE"] = "3 per minute"
    account = make_account(Role.WORKER)
    body = {"username": account.username, "password": PASSWORD}
    first = client.post("/api/v1/auth/login", json=body)
    # No rate header rides on an answer that is not a 429 (it overrode a 503's own).
    assert first.status_code == 200
    assert "Retry-After" not in first.headers
    tokens = first.get_json()
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert second.status_code == 200
    third = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second.get_json()["refresh_token"]}
    )
    assert third.status_code == 200
    # The fourth of either kind in the minute is refused: 3 together, not 3 each.
    refused = client.post("/api/v1/auth/login", json=body)
    assert refused.status_code == 429
    assert refused.get_json()["code"] == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
