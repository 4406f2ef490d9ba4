"""Login, refresh rotation and reuse detection, logout, lock-out, revocation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from outreach.extensions import db
from outreach.models import RefreshFamily, Role
from tests.helpers import PASSWORD, Account, bearer, login

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"


def _me(client: FlaskClient, token: str) -> int:
    return client.get(ME, headers=bearer(token)).status_code


def test_login_returns_tokens_role_and_organisation(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.WORKER, "maraude-nord")
    body = login(client, account.username)
    assert set(body) == {
        "access_token",
        "refresh_token",
        "expires_in",
        "token_type",
        "role",
        "organisation",
    }
    assert body["expires_in"] == 15 * 60
    assert body["role"] == "worker"
    assert body["organisation"] == {
        "id": str(account.organisation_id),
        "slug": "maraude-nord",
        "kind": "association",
    }
    me = client.get(ME, headers=bearer(body["access_token"])).get_json()
    assert me["user"]["username"] == account.username
    assert me["role"] == "worker"


def test_username_is_case_insensitive(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.WORKER)
    assert login(client, account.username.upper())["role"] == "worker"


def test_unknown_user_and_wrong_password_answer_the_same(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.WORKER)
    wrong = client.post(LOGIN, json={"username": account.username, "password": "x" * 20})
    unknown = client.post(LOGIN, json={"username": "nobody-here", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["message"] == "Unknown username or wrong password."


def test_login_validates_its_body(client: FlaskClient) -> None:
    missing = client.post(LOGIN, json={"username": "someone"})
    assert missing.status_code == 422
    assert "password" in missing.get_json()["errors"]["json"]
    unknown_field = client.post(LOGIN, json={"username": "a", "password": "b", "organisation": "x"})
    assert unknown_field.status_code == 422
    assert "organisation" in unknown_field.get_json()["errors"]["json"]
    wrong_type = client.post(LOGIN, json={"username": 12, "password": ["x"]})
    assert wrong_type.status_code == 422
    assert client.post(LOGIN, json=["not", "an", "object"]).status_code == 422


def test_deactivated_user_cannot_log_in(
    app: Flask,
    client: FlaskClient,
    make_account: Callable[..., Account],
    auth_headers: Callable[..., dict[str, str]],
) -> None:
    account = make_account(Role.WORKER)
    admin = auth_headers(Role.ADMIN)
    response = client.patch(
        f"/api/v1/users/{account.user_id}", json={"active": False}, headers=admin
    )
    assert response.status_code == 200
    refused = client.post(LOGIN, json={"username": account.username, "password": PASSWORD})
    assert refused.status_code == 401


def test_repeated_failures_lock_the_username(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.WORKER)
    limit = app.config["OUTREACH_SETTINGS"].login_max_failures
    for _ in range(limit):
        response = client.post(LOGIN, json={"username": account.username, "password": "wrong" * 4})
        assert response.status_code == 401
    locked = client.post(LOGIN, json={"username": account.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.get_json()["code"] == 429
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    # Another account from the same client is not locked by these failures.
    other = make_account(Role.WORKER)
    assert login(client, other.username)["role"] == "worker"


def test_a_success_clears_earlier_failures(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.WORKER)
    limit = app.config["OUTREACH_SETTINGS"].login_max_failures
    for _ in range(limit - 1):
        client.post(LOGIN, json={"username": account.username, "password": "wrong" * 4})
    login(client, account.username)
    for _ in range(limit - 1):
        client.post(LOGIN, json={"username": account.username, "password": "wrong" * 4})
    assert login(client, account.username)["role"] == "worker"


def test_refresh_rotates_and_reuse_revokes_the_family(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.ORG_ADMIN)
    first = login(client, account.username)
    second = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.get_json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["role"] == "org_admin"
    assert _me(client, rotated["access_token"]) == 200

    reuse = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert "already used" in reuse.get_json()["message"]
    # The whole family is gone: the newest pair too.
    assert client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]}).status_code == 401
    assert _me(client, rotated["access_token"]) == 401
    # Another login of the same user is a separate family and still works.
    assert login(client, account.username)["role"] == "org_admin"


def test_refresh_refuses_access_tokens_and_garbage(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    tokens = login(client, make_account(Role.WORKER).username)
    for token in (tokens["access_token"], "not-a-jwt", tokens["refresh_token"][:-4] + "AAAA"):
        response = client.post(REFRESH, json={"refresh_token": token})
        assert response.status_code == 401
        assert response.get_json()["status"] == "Unauthorized"


def test_refresh_token_is_not_an_access_token(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    tokens = login(client, make_account(Role.WORKER).username)
    assert _me(client, tokens["refresh_token"]) == 401


def test_logout_ends_access_and_refresh_at_once(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.WORKER)
    tokens = login(client, account.username)
    other_login = login(client, account.username)
    response = client.post(
        LOGOUT,
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 204
    assert _me(client, tokens["access_token"]) == 401
    assert client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    # Logging out one phone leaves the user's other logins alone.
    assert _me(client, other_login["access_token"]) == 200


def test_logout_refuses_someone_elses_refresh_token(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    mine = login(client, make_account(Role.WORKER).username)
    theirs = login(client, make_account(Role.WORKER).username)
    response = client.post(
        LOGOUT,
        json={"refresh_token": theirs["refresh_token"]},
        headers=bearer(mine["access_token"]),
    )
    assert response.status_code == 401
    assert _me(client, theirs["access_token"]) == 200


def _revocation_check(client: FlaskClient, account: Account, change: Callable[[], Any]) -> None:
    tokens = login(client, account.username)
    assert _me(client, tokens["access_token"]) == 200
    change()
    assert _me(client, tokens["access_token"]) == 401
    assert client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_deactivation_revokes_tokens_at_once(
    client: FlaskClient,
    make_account: Callable[..., Account],
    auth_headers: Callable[..., dict[str, str]],
) -> None:
    account = make_account(Role.WORKER, "maraude-nord")
    org_admin = auth_headers(Role.ORG_ADMIN, "maraude-nord")

    def deactivate() -> None:
        response = client.patch(
            f"/api/v1/users/{account.user_id}", json={"active": False}, headers=org_admin
        )
        assert response.status_code == 200
        assert response.get_json()["active"] is False

    _revocation_check(client, account, deactivate)


def test_password_change_by_an_admin_revokes_tokens(
    client: FlaskClient,
    make_account: Callable[..., Account],
    auth_headers: Callable[..., dict[str, str]],
) -> None:
    account = make_account(Role.WORKER)
    admin = auth_headers(Role.ADMIN)
    new_password = "a brand new passphrase"

    def change() -> None:
        response = client.patch(
            f"/api/v1/users/{account.user_id}", json={"password": new_password}, headers=admin
        )
        assert response.status_code == 200

    _revocation_check(client, account, change)
    assert login(client, account.username, new_password)["role"] == "worker"


def test_own_password_change_revokes_tokens(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.COORDINATOR)
    tokens = login(client, account.username)
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "not my password", "new_password": "another passphrase"},
        headers=bearer(tokens["access_token"]),
    )
    assert wrong.status_code == 422
    assert "current_password" in wrong.get_json()["errors"]
    short = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=bearer(tokens["access_token"]),
    )
    assert short.status_code == 422
    assert "new_password" in short.get_json()["errors"]
    assert _me(client, tokens["access_token"]) == 200
    done = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another passphrase"},
        headers=bearer(tokens["access_token"]),
    )
    assert done.status_code == 204
    assert _me(client, tokens["access_token"]) == 401
    assert login(client, account.username, "another passphrase")["role"] == "coordinator"


def test_password_policy_minimum_and_no_truncation(
    client: FlaskClient,
    auth_headers: Callable[..., dict[str, str]],
    make_account: Callable[..., Account],
) -> None:
    admin = auth_headers(Role.ADMIN)
    org_id = make_account(Role.WORKER, "maraude-nord").organisation_id

    def create(username: str, password: str) -> Any:
        return client.post(
            "/api/v1/users",
            json={
                "username": username,
                "password": password,
                "role": "worker",
                "organisation_id": str(org_id),
            },
            headers=admin,
        )

    too_short = create("short-pass", "eleven char")
    assert too_short.status_code == 422
    assert "at least 12" in too_short.get_json()["errors"]["password"][0]
    assert create("too-long", "x" * 1025).status_code == 422
    # A long passphrase counts in full: its prefix is a different password.
    long_password = "long passphrase " * 10 + "end"
    assert create("long-pass", long_password).status_code == 201
    prefix = client.post(LOGIN, json={"username": "long-pass", "password": long_password[:-1]})
    assert prefix.status_code == 401
    assert login(client, "long-pass", long_password)["role"] == "worker"


def test_passwords_are_stored_as_argon2id(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.WORKER)
    with app.app_context():
        from outreach.models import User

        session = db.session
        with session.begin():
            stored = session.scalar(select(User.password_hash).where(User.id == account.user_id))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_refresh_family_is_recorded_per_login(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    account = make_account(Role.WORKER)
    login(client, account.username)
    login(client, account.username)
    with app.app_context():
        session = db.session
        with session.begin():
            families = session.scalars(
                select(RefreshFamily).where(RefreshFamily.user_id == account.user_id)
            ).all()
    assert len(families) == 2
    assert all(family.revoked_at is None for family in families)
