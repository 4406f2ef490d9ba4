"""Forged, altered and expired tokens are refused with 401 (issue 8, point 9).

Revocation (logout, deactivation, password change) and spent refresh tokens are
in ``test_auth.py``. Here a real worker token is taken apart and put back together
the ways an attacker would: a role changed in the payload, ``alg: none``, another
key, another algorithm, an expiry in the past, an access token used to refresh.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from config import Settings
from outreach.models import Role
from tests.helpers import Account, audit_events, bearer, login

ADMIN_ROUTE = "/api/v1/orgs"  # admin only
ME = "/api/v1/auth/me"


def _part(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unpack(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    padded = [part + "=" * (-len(part) % 4) for part in (header, payload)]
    return (
        json.loads(base64.urlsafe_b64decode(padded[0])),
        json.loads(base64.urlsafe_b64decode(padded[1])),
        signature,
    )


@pytest.fixture
def worker_token(client: FlaskClient, make_account: Callable[..., Account]) -> str:
    token: str = login(client, make_account(Role.WORKER).username)["access_token"]
    assert client.get(ME, headers=bearer(token)).status_code == 200
    return token


def _forgeries(token: str, secret: str) -> dict[str, str]:
    header, claims, signature = _unpack(token)
    admin = {**claims, "role": "admin"}
    return {
        "role changed, signature kept": f"{_part(header)}.{_part(admin)}.{signature}",
        "alg none": f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(admin)}.",
        "alg none, signature kept": f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(admin)}."
        + signature,
        "signed with another key": jwt.encode(admin, "another-key-" + "x" * 40, "HS256"),
        "another algorithm, right key": jwt.encode(claims, secret, "HS512"),
        "expired, right key": jwt.encode(
            {**claims, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 60},
            secret,
            "HS256",
        ),
        "not yet valid, right key": jwt.encode(
            {**claims, "nbf": int(time.time()) + 3600}, secret, "HS256"
        ),
        "refresh type claimed": jwt.encode({**claims, "type": "refresh"}, secret, "HS256"),
        "payload truncated": token.rsplit(".", 1)[0][:-4] + "." + signature,
    }


# The HS512 forgery uses the HS256 key, shorter than HS512 wants: that is the point.
@pytest.mark.filterwarnings("ignore:The HMAC key is")
def test_forged_and_altered_tokens_are_refused(
    client: FlaskClient, worker_token: str, settings: Settings
) -> None:
    for name, forged in _forgeries(worker_token, settings.jwt_secret).items():
        for route in (ME, ADMIN_ROUTE):
            response = client.get(route, headers=bearer(forged))
            assert response.status_code == 401, (name, route, response.get_json())
            assert response.get_json()["code"] == 401


def test_the_same_claims_signed_right_are_accepted(
    client: FlaskClient, worker_token: str, settings: Settings
) -> None:
    # The control: re-signing the untouched claims with the service's key and algorithm
    # works, so each refusal above is the alteration's doing.
    _header, claims, _signature = _unpack(worker_token)
    resigned = jwt.encode(claims, settings.jwt_secret, "HS256")
    assert client.get(ME, headers=bearer(resigned)).status_code == 200


def test_a_role_claim_does_not_outrank_the_account(
    client: FlaskClient, worker_token: str, settings: Settings
) -> None:
    # Even signed with the service's own key, the role in a token is not what decides:
    # the account's stored role is.
    _header, claims, _signature = _unpack(worker_token)
    promoted = jwt.encode({**claims, "role": "admin"}, settings.jwt_secret, "HS256")
    response = client.get(ADMIN_ROUTE, headers=bearer(promoted))
    assert response.status_code == 403, response.get_json()


def test_an_access_token_cannot_refresh(client: FlaskClient, worker_token: str) -> None:
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": worker_token})
    assert response.status_code == 401


@pytest.mark.filterwarnings("ignore:The HMAC key is")
def test_each_refusal_is_audited_with_the_check_it_failed(
    app: Flask, client: FlaskClient, worker_token: str, settings: Settings
) -> None:
    forged = _forgeries(worker_token, settings.jwt_secret)
    _header, claims, _signature = _unpack(worker_token)
    no_family = jwt.encode(
        {k: v for k, v in claims.items() if k != "fam"}, settings.jwt_secret, "HS256"
    )
    sent = {
        "NoAuthorizationError": {},
        "InvalidHeaderError": {"Authorization": f"Token {worker_token}"},
        "ExpiredSignatureError": bearer(forged["expired, right key"]),
        "InvalidSignatureError": bearer(forged["signed with another key"]),
        "InvalidAlgorithmError": bearer(forged["alg none"]),
        "ImmatureSignatureError": bearer(forged["not yet valid, right key"]),
        "WrongTokenError": bearer(forged["refresh type claimed"]),
        "MissingRequiredClaimError": bearer(no_family),
    }
    for reason, headers in sent.items():
        before = len(audit_events(app))
        assert client.get(ME, headers=headers).status_code == 401, reason
        events = audit_events(app)[before:]
        assert [(e.action, e.params) for e in events] == [
            ("auth.unauthorized", {"reason": reason})
        ], reason


def test_a_refresh_token_without_its_jti_is_refused(
    client: FlaskClient, make_account: Callable[..., Account], settings: Settings
) -> None:
    pair = login(client, make_account(Role.WORKER).username)
    _header, claims, _signature = _unpack(pair["refresh_token"])
    stripped = jwt.encode(
        {k: v for k, v in claims.items() if k != "jti"}, settings.jwt_secret, "HS256"
    )
    refused = client.post("/api/v1/auth/refresh", json={"refresh_token": stripped})
    assert refused.status_code == 401, refused.get_json()
    logout = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": stripped},
        headers=bearer(pair["access_token"]),
    )
    assert logout.status_code == 401, logout.get_json()
    # The untouched pair still works: the refusals were the missing claim's doing.
    assert (
        client.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        ).status_code
        == 200
    )
