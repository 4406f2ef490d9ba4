"""Object-level access (issue 8, point 2), table-driven from the URL map.

Every route that takes an id is listed below as scoped to an organisation or as a
shared resource (the plan's directory, the kit catalogue, the platform admin's
organisations); a new id route that is in neither list fails the test. For each
scoped route, a caller of another association who holds the role the route wants
gets 404, the same answer as for an id that does not exist, and nothing changes.
List filters naming another association return nothing of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from outreach.models import Role
from tests.helpers import Account, headers_for, login, row_counts
from tests.payloads import encounter

# Scoped routes: the role of the stranger who tries, the body sent, the object named.
SCOPED: dict[tuple[str, str], tuple[Role, dict[str, Any] | None, str]] = {
    ("GET", "/api/v1/users/<uuid:user_id>"): (Role.ORG_ADMIN, None, "user"),
    ("PATCH", "/api/v1/users/<uuid:user_id>"): (Role.ORG_ADMIN, {"active": False}, "user"),
    ("GET", "/api/v1/encounters/<uuid:encounter_id>"): (Role.WORKER, None, "encounter"),
    ("PATCH", "/api/v1/encounters/<uuid:encounter_id>"): (
        Role.ORG_ADMIN,
        {"people": 3},
        "encounter",
    ),
    ("DELETE", "/api/v1/encounters/<uuid:encounter_id>"): (
        Role.ORG_ADMIN,
        {"reason": "entered_in_error"},
        "encounter",
    ),
}
# Shared by design (docs/design.md): one directory and one catalogue for the whole plan,
# and organisations managed by the platform admin alone.
SHARED = {
    ("GET", "/api/v1/orgs/<uuid:organisation_id>"),
    ("PATCH", "/api/v1/orgs/<uuid:organisation_id>"),
    ("GET", "/api/v1/structures/<uuid:structure_id>"),
    ("PATCH", "/api/v1/structures/<uuid:structure_id>"),
    ("PATCH", "/api/v1/kits/<string:code>"),
}


def _id_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or "<" not in rule.rule:
            continue
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((method, rule.rule))
    return routes


def test_every_id_route_is_closed_to_other_associations(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    assert _id_routes(app) == set(SCOPED) | SHARED
    owner = make_account(Role.WORKER, "asso-a")
    make_account(Role.ORG_ADMIN, "asso-a")
    owner_headers = headers_for(client, owner)
    item = encounter()
    synced = client.post("/api/v1/sync", json={"encounters": [item]}, headers=owner_headers)
    assert synced.get_json()["counts"]["created"] == 1
    objects = {"user": str(owner.user_id), "encounter": item["id"]}
    strangers = {
        role: headers_for(client, make_account(role, "asso-b"))
        for role in (Role.WORKER, Role.ORG_ADMIN)
    }
    before_rows = row_counts(app)
    before_encounter = client.get(f"/api/v1/encounters/{item['id']}", headers=owner_headers)

    for (method, rule), (role, body, kind) in SCOPED.items():
        url = re.sub(r"<[a-z]+:[a-z_]+>", objects[kind], rule)
        missing = re.sub(r"<[a-z]+:[a-z_]+>", "00000000-0000-4000-8000-000000000000", rule)
        answer = client.open(url, method=method, json=body, headers=strangers[role])
        unknown = client.open(missing, method=method, json=body, headers=strangers[role])
        assert answer.status_code == 404, (method, rule, answer.get_json())
        # Indistinguishable from an id that does not exist: no existence oracle.
        assert answer.get_json() == unknown.get_json(), (method, rule)

    assert row_counts(app) == before_rows
    after = client.get(f"/api/v1/encounters/{item['id']}", headers=owner_headers)
    assert after.get_json() == before_encounter.get_json()
    assert login(client, owner.username)["role"] == "worker"  # still active


def test_list_filters_naming_another_association_return_nothing_of_it(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    theirs = make_account(Role.WORKER, "asso-a")
    stranger = make_account(Role.ORG_ADMIN, "asso-b")
    headers = headers_for(client, stranger)
    answer = client.get(f"/api/v1/users?organisation_id={theirs.organisation_id}", headers=headers)
    # The caller's own scope and the filter combine: an empty page, not the other's users.
    assert answer.status_code == 200
    assert (answer.get_json()["items"], answer.get_json()["total"]) == ([], 0)
    summary = client.get(
        f"/api/v1/stats/summary?organisation={theirs.organisation_slug}", headers=headers
    )
    unknown = client.get("/api/v1/stats/summary?organisation=no-such-association", headers=headers)
    assert summary.status_code == unknown.status_code == 422
    assert summary.get_json()["errors"] == unknown.get_json()["errors"]
