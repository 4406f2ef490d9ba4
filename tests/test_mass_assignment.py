"""No body can set what the server owns (issue 8, point 4).

Table-driven from the OpenAPI document: every operation that takes a JSON body is
called by a role allowed on it, with each server-owned field its schema does not
declare (organisation, author, timestamps, versions, hashes...). Each call answers
422 naming that field as unknown, and nothing is written. A sync item naming one is
refused the same way. Fields a schema declares on purpose (an admin choosing a new
user's organisation) are covered by the access tests of their routes, e.g.
``test_org_admin_cannot_choose_organisation_or_grant_other_roles``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from outreach.models import Role
from tests.helpers import POLICY, Account, headers_for, row_counts
from tests.payloads import encounter, shift

SERVER_OWNED = (
    "organisation",
    "organisation_id",
    "org",
    "created_by",
    "created_at",
    "updated_at",
    "deleted_at",
    "version",
    "content_hash",
    "ref_hash",
    "role",
    "id",
    "is_admin",
)


def _body_operations(client: FlaskClient) -> list[tuple[str, str, set[str]]]:
    """(method, path, declared body fields) of every operation with a JSON body."""
    document = client.get("/api/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":  # shared path parameters, not an operation
                continue
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
            found.append((method.upper(), path, set(schema.get("properties", {}))))
    return found


def _allowed_role(method: str, path: str) -> Role:
    """A role the policy lets call the route (a worker where anyone may)."""
    rule = re.sub(r"\{code\}", "<string:code>", path)
    rule = re.sub(r"\{([a-z_]+)\}", r"<uuid:\1>", rule)
    allowed = POLICY[(method, rule)]
    return sorted(allowed)[0] if isinstance(allowed, frozenset) else Role.WORKER


def test_no_body_sets_a_server_owned_field(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    operations = _body_operations(client)
    assert len(operations) >= 10, operations  # the document was read, not an empty list
    roles = {_allowed_role(method, path) for method, path, _declared in operations}
    tokens = {role: headers_for(client, make_account(role)) for role in roles}
    before = row_counts(app)
    tried = 0
    for method, path, declared in operations:
        role = _allowed_role(method, path)
        url = re.sub(r"\{code\}", "pipe", path)
        url = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), url)
        for name in SERVER_OWNED:
            if name in declared:
                continue
            response = client.open(url, method=method, json={name: "x"}, headers=tokens[role])
            assert response.status_code == 422, (method, path, name, response.get_json())
            errors = response.get_json()["errors"]
            assert errors["json"].get(name) == ["Unknown field."], (method, path, name, errors)
            tried += 1
    assert tried > 100
    assert row_counts(app) == before


def test_a_sync_item_naming_a_server_owned_field_is_refused(
    app: Flask, client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    headers = auth_headers(Role.WORKER)
    before = row_counts(app)
    for name in SERVER_OWNED:
        if name == "id":
            continue  # the phone's own identifier of the item
        body: dict[str, Any] = {
            "shifts": [{**shift(), name: "x"}],
            "encounters": [{**encounter(), name: "x"}],
        }
        response = client.post("/api/v1/sync?atomic=true", json=body, headers=headers)
        assert response.status_code == 422, (name, response.get_json())
        answer = client.post("/api/v1/sync", json=body, headers=headers).get_json()
        for result in answer["results"]:
            assert result["status"] == "invalid", (name, result)
            assert result["errors"][name] == ["Unknown field."], (name, result)
    assert row_counts(app) == before
