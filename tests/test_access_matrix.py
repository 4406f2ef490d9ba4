"""Every route declares who may call it, and the declaration holds for every role.

The table ``POLICY`` in ``tests/helpers.py`` is the policy. A route missing from it, or
declaring other roles than it says, fails; so does a route that lets in a role it should
refuse.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

from flask import Flask
from flask.testing import FlaskClient

from outreach.api.access import PUBLIC, access_of
from outreach.models import Role
from tests.helpers import POLICY, Account, headers_for


def _routes(app: Flask) -> Iterator[tuple[str, str, frozenset[Role] | str | None]]:
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, rule.rule, access_of(app, rule.endpoint)


def test_every_route_declares_its_access_and_matches_the_policy(app: Flask) -> None:
    seen = set()
    for method, rule, declared in _routes(app):
        assert declared is not None, f"{method} {rule} declares no access (@requires or @public)"
        assert (method, rule) in POLICY, f"{method} {rule} is missing from the policy table"
        assert declared == POLICY[(method, rule)], f"{method} {rule} declares {declared}"
        seen.add((method, rule))
    assert seen == set(POLICY), f"policy names routes that do not exist: {set(POLICY) - seen}"


def _concrete(rule: str) -> str:
    concrete = re.sub(r"<uuid:\w+>", str(uuid.uuid4()), rule)
    return concrete.replace("<string:code>", "no_such_kit")


def test_each_role_gets_exactly_what_the_policy_allows(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    accounts = {role: make_account(role) for role in Role}
    checked = 0
    for (method, rule), allowed in POLICY.items():
        if allowed == PUBLIC:
            continue
        path = _concrete(rule)
        anonymous = client.open(path, method=method, json={} if method != "GET" else None)
        assert anonymous.status_code == 401, f"{method} {rule} without a token"
        for role, account in accounts.items():
            # A fresh login each time: some calls (logout, password) end the login.
            response = client.open(
                path,
                method=method,
                headers=headers_for(client, account),
                json={} if method != "GET" else None,
            )
            if role in allowed:
                assert response.status_code not in (401, 403), f"{role} refused {method} {rule}"
            else:
                assert response.status_code == 403, f"{role} let into {method} {rule}"
                assert response.get_json()["message"] == "Your role does not allow this."
            checked += 1
    assert checked >= 5 * 20


def test_auditor_can_write_nothing(app: Flask) -> None:
    for method, rule, declared in _routes(app):
        assert declared is not None
        if method in {"POST", "PUT", "PATCH", "DELETE"} and declared != PUBLIC:
            own_session_only = rule in {"/api/v1/auth/logout", "/api/v1/auth/password"}
            assert own_session_only or Role.AUDITOR not in declared, f"auditor may {method} {rule}"
