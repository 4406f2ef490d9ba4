"""Organisations and users: who manages whom, and organisation scoping (404, not 403)."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from outreach.models import Role
from tests.helpers import Account, bearer, headers_for, login

USERS = "/api/v1/users"


def test_admin_creates_organisations_and_users(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    admin = auth_headers(Role.ADMIN)
    created = client.post(
        "/api/v1/orgs",
        json={"slug": "Aurore-75", "name": "Aurore", "kind": "association"},
        headers=admin,
    )
    assert created.status_code == 201
    org = created.get_json()
    assert (org["slug"], org["kind"], org["active"]) == ("aurore-75", "association", True)

    user = client.post(
        USERS,
        json={
            "username": "Field.Worker",
            "password": "a long enough password",
            "role": "worker",
            "organisation_id": org["id"],
        },
        headers=admin,
    )
    assert user.status_code == 201
    assert user.get_json()["username"] == "field.worker"
    assert user.get_json()["organisation_id"] == org["id"]
    assert "password" not in user.get_json()
    assert "password_hash" not in user.get_json()

    listing = client.get("/api/v1/orgs?kind=association", headers=admin).get_json()
    assert [item["slug"] for item in listing["items"]] == ["aurore-75"]
    assert (listing["page"], listing["per_page"], listing["total"]) == (1, 50, 1)


def test_role_must_fit_the_organisation_kind(
    client: FlaskClient,
    auth_headers: Callable[..., dict[str, str]],
    make_account: Callable[..., Account],
) -> None:
    admin = auth_headers(Role.ADMIN)
    association = make_account(Role.WORKER).organisation_id
    response = client.post(
        USERS,
        json={
            "username": "would-be-coord",
            "password": "a long enough password",
            "role": "coordinator",
            "organisation_id": str(association),
        },
        headers=admin,
    )
    assert response.status_code == 422
    assert "worker, org_admin" in response.get_json()["errors"]["role"][0]


def test_admin_must_name_an_existing_organisation(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    admin = auth_headers(Role.ADMIN)
    body = {"username": "nobody-org", "password": "a long enough password", "role": "worker"}
    assert client.post(USERS, json=body, headers=admin).status_code == 422
    body["organisation_id"] = "00000000-0000-4000-8000-000000000000"
    response = client.post(USERS, json=body, headers=admin)
    assert response.status_code == 422
    assert response.get_json()["errors"]["organisation_id"] == ["No such organisation."]


def test_duplicate_username_is_a_conflict(
    client: FlaskClient,
    auth_headers: Callable[..., dict[str, str]],
    make_account: Callable[..., Account],
) -> None:
    existing = make_account(Role.WORKER, "maraude-nord")
    org_admin = auth_headers(Role.ORG_ADMIN, "maraude-nord")
    response = client.post(
        USERS,
        json={
            "username": existing.username,
            "password": "a long enough password",
            "role": "worker",
        },
        headers=org_admin,
    )
    assert response.status_code == 409


def test_org_admin_manages_its_own_association_only(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    org_admin = make_account(Role.ORG_ADMIN, "maraude-nord")
    own_worker = make_account(Role.WORKER, "maraude-nord")
    foreign_worker = make_account(Role.WORKER, "rdr-est")
    headers = headers_for(client, org_admin)

    created = client.post(
        USERS,
        json={"username": "new-recruit", "password": "a long enough password", "role": "worker"},
        headers=headers,
    )
    assert created.status_code == 201
    assert created.get_json()["organisation_id"] == str(org_admin.organisation_id)

    listing = client.get(USERS + "?per_page=500", headers=headers).get_json()
    names = {item["username"] for item in listing["items"]}
    assert names == {org_admin.username, own_worker.username, "new-recruit"}

    # Another association's user does not exist as far as this org_admin can tell.
    assert client.get(f"{USERS}/{own_worker.user_id}", headers=headers).status_code == 200
    for method in ("GET", "PATCH"):
        response = client.open(
            f"{USERS}/{foreign_worker.user_id}",
            method=method,
            json={"active": False} if method == "PATCH" else None,
            headers=headers,
        )
        assert response.status_code == 404
    assert login(client, foreign_worker.username)["role"] == "worker"

    # Filtering by another organisation returns nothing of it.
    filtered = client.get(
        f"{USERS}?organisation_id={foreign_worker.organisation_id}", headers=headers
    ).get_json()
    assert filtered["items"] == []
    assert filtered["total"] == 0


def test_org_admin_cannot_choose_organisation_or_grant_other_roles(
    client: FlaskClient,
    make_account: Callable[..., Account],
) -> None:
    org_admin = make_account(Role.ORG_ADMIN, "maraude-nord")
    other_org = make_account(Role.WORKER, "rdr-est").organisation_id
    worker = make_account(Role.WORKER, "maraude-nord")
    headers = headers_for(client, org_admin)
    named_org = client.post(
        USERS,
        json={
            "username": "smuggled",
            "password": "a long enough password",
            "role": "worker",
            "organisation_id": str(other_org),
        },
        headers=headers,
    )
    assert named_org.status_code == 422
    assert "organisation_id" in named_org.get_json()["errors"]
    promote = client.patch(f"{USERS}/{worker.user_id}", json={"role": "admin"}, headers=headers)
    assert promote.status_code == 422
    demote_self = client.patch(
        f"{USERS}/{org_admin.user_id}", json={"role": "worker"}, headers=headers
    )
    assert demote_self.status_code == 422


def test_role_change_revokes_and_applies(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    org_admin = make_account(Role.ORG_ADMIN, "maraude-nord")
    worker = make_account(Role.WORKER, "maraude-nord")
    worker_tokens = login(client, worker.username)
    response = client.patch(
        f"{USERS}/{worker.user_id}",
        json={"role": "org_admin"},
        headers=headers_for(client, org_admin),
    )
    assert response.status_code == 200
    assert response.get_json()["role"] == "org_admin"
    assert (
        client.get("/api/v1/auth/me", headers=bearer(worker_tokens["access_token"])).status_code
        == 401
    )
    assert login(client, worker.username)["role"] == "org_admin"


def test_admin_deactivates_an_organisation(
    client: FlaskClient,
    auth_headers: Callable[..., dict[str, str]],
    make_account: Callable[..., Account],
) -> None:
    worker = make_account(Role.WORKER, "maraude-nord")
    tokens = login(client, worker.username)
    admin = auth_headers(Role.ADMIN)
    response = client.patch(
        f"/api/v1/orgs/{worker.organisation_id}", json={"active": False}, headers=admin
    )
    assert response.status_code == 200
    assert response.get_json()["active"] is False
    assert client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"])).status_code == 401
    refused = client.post(
        "/api/v1/auth/login", json={"username": worker.username, "password": worker.password}
    )
    assert refused.status_code == 401


def test_pagination_caps_the_page_size(
    client: FlaskClient,
    auth_headers: Callable[..., dict[str, str]],
    make_account: Callable[..., Account],
) -> None:
    admin = auth_headers(Role.ADMIN)
    for _ in range(3):
        make_account(Role.WORKER)
    capped = client.get(USERS + "?per_page=100000", headers=admin).get_json()
    assert capped["per_page"] == 500
    answer = client.get(USERS + "?per_page=2&role=worker&page=2", headers=admin)
    page = answer.get_json()
    assert (page["page"], page["per_page"], page["total"]) == (2, 2, 3)
    assert len(page["items"]) == 1
    # RFC 8288 links, with the request's filters kept and only the page changed.
    base = f"http://localhost{USERS}?per_page=2&role=worker"
    assert answer.headers["Link"] == (
        f'<{base}&page=1>; rel="first", <{base}&page=1>; rel="prev", <{base}&page=2>; rel="last"'
    )
    first = client.get(USERS + "?per_page=2", headers=admin).headers["Link"]
    assert 'rel="prev"' not in first
    assert f'<http://localhost{USERS}?per_page=2&page=2>; rel="next"' in first
    assert client.get(USERS + "?per_page=0", headers=admin).status_code == 422
    assert client.get(USERS + "?page=-1", headers=admin).status_code == 422
