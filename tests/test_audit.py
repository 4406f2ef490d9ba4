"""The audit writer: events for logins, refusals and account changes, a valid chain,
tampering detected, and no secret or address in clear."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC
from typing import Any

import orjson
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, update

from outreach.extensions import db
from outreach.models import AuditEvent, Role
from outreach.services import audit
from tests.helpers import (
    PASSWORD,
    Account,
    audit_events,
    bearer,
    headers_for,
    login,
    tamper,
    verify_chain,
)


def _scenario(client: FlaskClient, make_account: Callable[..., Account]) -> dict[str, Any]:
    worker = make_account(Role.WORKER, "maraude-nord")
    admin = make_account(Role.ADMIN)
    client.post(
        "/api/v1/auth/login", json={"username": worker.username, "password": "wrong password!"}
    )
    client.post("/api/v1/auth/login", json={"username": "ghost-user", "password": "nope nope nope"})
    tokens = login(client, worker.username)
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    admin_headers = headers_for(client, admin)
    client.get("/api/v1/orgs", headers=bearer(refreshed.get_json()["access_token"]))
    client.patch(
        f"/api/v1/users/{worker.user_id}",
        json={"password": "a fresh password"},
        headers=admin_headers,
    )
    second = login(client, worker.username, "a fresh password")
    client.post("/api/v1/auth/logout", headers=bearer(second["access_token"]), json={})
    return {"worker": worker, "tokens": [tokens, refreshed.get_json(), second]}


def test_logins_refusals_and_changes_are_recorded(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    scenario = _scenario(client, make_account)
    worker: Account = scenario["worker"]
    events = audit_events(app)
    actions = [(e.action, e.outcome) for e in events]
    for expected in [
        ("users.create", "success"),
        ("auth.login_failed", "denied"),
        ("auth.login", "success"),
        ("auth.refresh", "success"),
        ("auth.refresh_reuse", "denied"),
        ("auth.unauthorized", "denied"),
        ("users.update", "success"),
        ("auth.logout", "success"),
    ]:
        assert expected in actions, f"missing {expected}"
    login_event = next(e for e in events if e.action == "auth.login")
    assert login_event.actor_user_id == worker.user_id
    assert login_event.actor_org_id == worker.organisation_id
    assert login_event.actor_role == "worker"
    assert login_event.request_id
    update_event = next(e for e in events if e.action == "users.update")
    assert update_event.params["changed"] == ["password"]
    assert update_event.target == str(worker.user_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_forbidden_calls_are_recorded(
    app: Flask, client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    assert client.get("/api/v1/orgs", headers=auth_headers(Role.AUDITOR)).status_code == 403
    denied = [e for e in audit_events(app) if e.action == "access.denied"]
    assert len(denied) == 1
    assert denied[0].actor_role == "auditor"
    assert denied[0].target == "orgs.list_organisations"


def test_no_secret_token_or_address_in_any_event(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    scenario = _scenario(client, make_account)
    dumped = orjson.dumps(
        [
            {c.name: getattr(e, c.key) for c in AuditEvent.__table__.columns}
            for e in audit_events(app)
        ],
        default=str,
    ).decode()
    forbidden = [PASSWORD, "a fresh password", "wrong password!", "nope nope nope", "127.0.0.1"]
    forbidden.append("ghost-user")  # a mistyped username may be someone's password
    for pair in scenario["tokens"]:
        forbidden += [pair["access_token"], pair["refresh_token"]]
        forbidden += [part for part in pair["access_token"].split(".") if len(part) > 20]
    for secret in forbidden:
        assert secret not in dumped


def test_chain_verifies_and_head_is_reported(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _scenario(client, make_account)
    events = audit_events(app)
    result = verify_chain(app)
    assert result.ok
    assert result.checked == len(events)
    assert result.first_broken_seq is None
    assert result.head_hash == events[-1].hash
    assert events[0].prev_hash == audit.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))


def test_edited_event_is_found(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _scenario(client, make_account)
    tamper(app, update(AuditEvent).where(AuditEvent.seq == 3).values(action="auth.tampered"))
    result = verify_chain(app)
    assert not result.ok
    assert result.first_broken_seq == 3
    assert result.checked == 2


def test_deleted_event_is_found(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _scenario(client, make_account)
    tamper(app, delete(AuditEvent).where(AuditEvent.seq == 4))
    result = verify_chain(app)
    assert (result.ok, result.first_broken_seq) == (False, 5)


def test_truncated_tail_is_found_against_a_head_handed_out(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _scenario(client, make_account)
    with app.app_context():
        session = db.session
        with session.begin():
            head = audit.read_head(session)
    assert verify_chain(app, head).ok
    tamper(app, delete(AuditEvent).where(AuditEvent.seq == head.seq))
    assert verify_chain(app).ok  # without the head, a cut tail looks like a shorter log
    result = verify_chain(app, head)
    assert (result.ok, result.first_broken_seq) == (False, head.seq)


def test_cli_verify_and_head(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    _scenario(client, make_account)
    head = runner.invoke(args=["audit", "head"])
    assert head.exit_code == 0
    seq, _digest = head.output.strip().split(":")
    assert int(seq) == len(audit_events(app))
    ok = runner.invoke(args=["audit", "verify", "--head", head.output.strip()])
    assert ok.exit_code == 0, ok.output
    assert f"ok: {seq} events verified" in ok.output

    tamper(app, update(AuditEvent).where(AuditEvent.seq == 2).values(records=99))
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1
    assert "BROKEN at event 2" in broken.output
    bad_head = runner.invoke(args=["audit", "verify", "--head", "12:abc"])
    assert bad_head.exit_code == 2


def test_chain_stays_valid_under_concurrent_writers(
    app: Flask, make_account: Callable[..., Account], engine_name: str
) -> None:
    """Eight clients log in, read and fail at once; the chain has no fork or gap."""
    from concurrent.futures import ThreadPoolExecutor

    accounts = [make_account(Role.WORKER) for _ in range(8)]

    def work(account: Account) -> list[int]:
        client = app.test_client()
        statuses = []
        for _ in range(3):
            me = client.get("/api/v1/auth/me", headers=headers_for(client, account))
            statuses.append(me.status_code)
        # One failure each: below the per-client lock-out, which would otherwise answer 429.
        wrong = {"username": account.username, "password": "not it at all"}
        statuses.append(client.post("/api/v1/auth/login", json=wrong).status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, accounts))
    assert all(statuses == [200, 200, 200, 401] for statuses in results), results
    result = verify_chain(app)
    assert result.ok, result
    events = audit_events(app)
    assert sum(e.action == "auth.login" for e in events) == 8 * 3
    assert sum(e.action == "auth.me" for e in events) == 8 * 3
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


_text = st.text(max_size=40)
_param_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@given(
    fields=st.fixed_dictionaries(
        {
            "at": st.datetimes(timezones=st.just(UTC)),
            "actor_user_id": st.none() | st.uuids(),
            "actor_org_id": st.none() | st.uuids(),
            "actor_role": st.none() | _text,
            "action": _text,
            "target": st.none() | _text,
            "params": st.dictionaries(_text, _param_values, max_size=4),
            "records": st.integers(min_value=0, max_value=2**31 - 1),
            "outcome": _text,
            "request_id": st.none() | _text,
            "client_hash": st.none() | _text,
        }
    ),
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    prev_hash=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
def test_the_payload_around_the_head_is_the_canonical_one_once_filled_in(
    fields: dict[str, Any], seq: int, prev_hash: str
) -> None:
    # What PostgreSQL's outreach_audit_append hashes (migration 0011), whatever the text.
    before_at, before_prev_hash, before_seq, after_seq = audit.payload_around_head(fields)
    filled = (
        before_at
        + audit.iso_time(fields["at"]).encode()
        + before_prev_hash
        + prev_hash.encode()
        + before_seq
        + str(seq).encode()
        + after_seq
    )
    assert filled == audit.canonical_payload({**fields, "seq": seq, "prev_hash": prev_hash})
