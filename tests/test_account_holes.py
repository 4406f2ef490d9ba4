"""Account and token holes of issue 26, section 2, each closed.

- ``PATCH /users/{own id}`` changed one's own password without the current one: a
  stolen 15-minute token became a permanent takeover.
- Deactivating an organisation did not revoke its members' logins: after reactivation
  their old access and refresh tokens worked again.
- A correctly signed token without ``exp`` (or ``iat``) was accepted.
- Re-sending another association's encounter id was answered ``conflict`` where a new
  id is ``created``: an existence oracle across associations.
- Login and refresh each had the per-address rate, twice what the README says.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from outreach.extensions import db
from outreach.models import Encounter, EncounterVersion, Role, Shift
from outreach.services import rollups, writes
from outreach.services.context import OPERATOR
from tests.helpers import PASSWORD, Account, bearer, headers_for, login
from tests.payloads import encounter, group, shift

NEW_PASSWORD = "a brand new passphrase"


@pytest.mark.parametrize("role", [Role.ADMIN, Role.ORG_ADMIN])
def test_ones_own_password_changes_only_through_auth_password(
    client: FlaskClient, make_account: Callable[..., Account], role: Role
) -> None:
    me = make_account(role)
    headers = headers_for(client, me)
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
        headers=headers_for(client, me),
    )
    assert changed.status_code == 204
    login(client, me.username, NEW_PASSWORD)


def test_deactivating_an_organisation_ends_its_logins_for_good(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    worker = make_account(Role.WORKER, "assoc-a")
    tokens = login(client, worker.username)
    admin = headers_for(client, make_account(Role.ADMIN))
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


SYNC = "/api/v1/sync"
# What differs between two stored encounters whatever their ids: their ids, and the
# moments of the requests that wrote them.
OWN = ("id", "created_at", "updated_at")


def _association(app: Flask, organisation_id: uuid.UUID) -> dict[str, Any]:
    """Everything stored for one association: shifts, encounters, versions, counters."""
    with app.app_context():
        session = db.session
        with session.begin():
            tables = (Shift.__table__, Encounter.__table__, EncounterVersion.__table__)
            rows = {
                table.name: sorted(
                    session.execute(
                        select(table).where(table.c.organisation_id == organisation_id)
                    ).all(),
                    key=str,
                )
                for table in tables
            }
            counters = {
                name: {key: value for key, value in table.items() if organisation_id in key}
                for name, table in rollups.snapshot(session).items()
            }
    return {**rows, "counters": counters}


def _beside_new_twins(*items: dict[str, Any]) -> list[dict[str, Any]]:
    """Each of another association's items (as it stored it, or with other content),
    followed by a new id with the same body."""
    return [twin for item in items for twin in (item, {**item, "id": str(uuid.uuid4())})]


def _sync_answers(
    client: FlaskClient, headers: dict[str, str], body: dict[str, Any]
) -> list[tuple[str, Any]]:
    """Each item's status and errors, in order, for ``POST /sync`` of ``body``."""
    response = client.post(SYNC, json=body, headers=headers)
    assert response.status_code == 200
    return [(r["status"], r.get("errors")) for r in response.get_json()["results"]]


def _answers(
    client: FlaskClient, headers: dict[str, str], method: str, ids: list[str], **kw: Any
) -> tuple[list[int], list[dict[str, Any]]]:
    """``method`` on ``/encounters/{id}`` for each id: the status codes, and the bodies
    without what is each encounter's own."""
    answers = [
        client.open(f"/api/v1/encounters/{i}", method=method, headers=headers, **kw) for i in ids
    ]
    bodies = [
        {k: v for k, v in (a.get_json(silent=True) or {}).items() if k not in OWN} for a in answers
    ]
    return [a.status_code for a in answers], bodies


def test_another_associations_encounter_ids_answer_as_new_ids(
    app: Flask,
    client: FlaskClient,
    make_account: Callable[..., Account],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B sends A's encounter ids (A's content, and other content) beside new ids with the
    same bodies, then resends, amends, deletes and reads them: each of A's ids answers
    exactly as its new twin, A's rows and counters never move, B stores each once."""
    a_worker = make_account(Role.WORKER, "assoc-a")
    b_admin = make_account(Role.ORG_ADMIN, "assoc-b")
    a = headers_for(client, a_worker)
    b = headers_for(client, b_admin)
    by_a = [encounter(), group(people=3)]
    sent = client.post(SYNC, json={"encounters": by_a}, headers=a).get_json()
    assert [r["status"] for r in sent["results"]] == ["created", "created"]
    a_before = _association(app, a_worker.organisation_id)

    probes = _beside_new_twins(by_a[0], {**by_a[1], "people": 5})
    ids = [p["id"] for p in probes]

    def sync(items: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        return _sync_answers(client, b, {"encounters": items})

    assert sync(probes) == [("created", None)] * 4
    assert sync(probes) == [("duplicate", None)] * 4
    changed = [{**p, "kits": {"pipe": 4}} for p in probes]
    conflicts = sync(changed)
    assert [status for status, _ in conflicts] == ["conflict"] * 4
    assert conflicts[::2] == conflicts[1::2]

    codes, bodies = _answers(client, b, "GET", ids)
    assert codes == [200] * 4
    assert bodies[::2] == bodies[1::2]
    codes, bodies = _answers(client, b, "PATCH", ids, json={"setting": "metro"})
    assert codes == [200] * 4
    assert bodies[::2] == bodies[1::2]
    assert {body["version"] for body in bodies} == {2}
    codes, _ = _answers(client, b, "DELETE", ids[:2], json={"reason": "entered_in_error"})
    assert codes == [204, 204]
    codes, bodies = _answers(client, b, "GET", ids)
    assert codes == [404, 404, 200, 200]
    assert bodies[::2] == bodies[1::2]
    # Amended, then deleted: the phone's original is a conflict, never a revival.
    resent = sync(probes[:2])
    assert [status for status, _ in resent] == ["conflict"] * 2
    assert resent[0] == resent[1]
    listed = client.get("/api/v1/encounters?per_page=100", headers=b).get_json()["items"]
    assert sorted(item["id"] for item in listed) == sorted(ids[2:])

    assert _association(app, a_worker.organisation_id) == a_before
    with app.app_context():
        session = db.session
        with session.begin():
            stored = session.execute(
                select(Encounter.id, func.count())
                .where(Encounter.organisation_id == b_admin.organisation_id)
                .group_by(Encounter.id)
            ).all()
            assert sorted((str(i), n) for i, n in stored) == sorted((i, 1) for i in ids)
            # A rebuild reads both associations' rows of a shared id, one batch at a time.
            monkeypatch.setattr(rollups, "REBUILD_BATCH", 1)
            incremental = rollups.snapshot(session)
            summary = rollups.rebuild(session)
            assert rollups.snapshot(session) == incremental
            writes.record(session, OPERATOR, "rollups.rebuild", summary.change)


def test_another_associations_shift_ids_answer_as_new_ids(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    """B names A's shift ids in an encounter, then sends them as shifts (A's content, and
    other content) beside new ids with the same bodies, resends and changes them: each
    of A's ids answers exactly as its new twin, A's rows never move, B stores each once
    and its encounters take B's shift."""
    a_worker = make_account(Role.WORKER, "assoc-a")
    b_worker = make_account(Role.WORKER, "assoc-b")
    a = headers_for(client, a_worker)
    b = headers_for(client, b_worker)
    by_a = [shift(), shift(kind="souterraine")]
    sent = client.post(
        SYNC, json={"shifts": by_a, "encounters": [encounter(shift_id=by_a[0]["id"])]}, headers=a
    ).get_json()
    assert [r["status"] for r in sent["results"]] == ["created"] * 3
    a_before = _association(app, a_worker.organisation_id)

    probes = _beside_new_twins(by_a[0], {**by_a[1], "kind": "sociale"})
    ids = [p["id"] for p in probes]

    def sync(body: dict[str, Any]) -> list[tuple[str, Any]]:
        return _sync_answers(client, b, body)

    def naming(shift_ids: list[str]) -> list[dict[str, Any]]:
        return [encounter(shift_id=i) for i in shift_ids]

    # Before B holds them, A's ids are unknown shifts to B, as new ids are.
    unknown = sync({"encounters": naming(ids)})
    assert [status for status, _ in unknown] == ["invalid"] * 4
    assert unknown[::2] == unknown[1::2]
    assert sync({"shifts": probes}) == [("created", None)] * 4
    assert sync({"shifts": probes}) == [("duplicate", None)] * 4
    conflicts = sync({"shifts": [{**p, "planned_sectors": ["eole"]} for p in probes]})
    assert [status for status, _ in conflicts] == ["conflict"] * 4
    assert conflicts[::2] == conflicts[1::2]
    assert sync({"encounters": naming(ids)}) == [("created", None)] * 4

    assert _association(app, a_worker.organisation_id) == a_before
    with app.app_context():
        session = db.session
        with session.begin():
            stored = session.execute(
                select(Shift.id, Shift.kind)
                .where(Shift.organisation_id == b_worker.organisation_id)
                .order_by(Shift.id)
            ).all()
            assert sorted((str(i), k) for i, k in stored) == sorted(
                (p["id"], p["kind"]) for p in probes
            )
            kinds = session.execute(
                select(Encounter.shift_id, Encounter.shift_kind).where(
                    Encounter.organisation_id == b_worker.organisation_id
                )
            ).all()
            assert sorted((str(i), k) for i, k in kinds) == sorted(
                (p["id"], p["kind"]) for p in probes
            )


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
