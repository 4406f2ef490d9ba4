"""``/api/v1/auth``: login, refresh, logout, the caller's account and password."""

from __future__ import annotations

from typing import Any

from flask import current_app

from outreach.api.access import call_context, public, requires, security
from outreach.api.blueprint import Blueprint
from outreach.extensions import db, limiter
from outreach.models import Organisation, User
from outreach.services import auth
from outreach.services.auth import LoginResult
from schemas.auth import (
    LoginSchema,
    LogoutSchema,
    MeSchema,
    PasswordChangeSchema,
    RefreshSchema,
    TokenResponseSchema,
)

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Accounts and tokens")


def _login_rate() -> str:
    # Per client address, across usernames and across login and refresh together
    # (one shared limit): slows password spraying. The per-username lock-out after
    # repeated failures is ``services.login_guard``.
    rate: str = current_app.config["OUTREACH_LOGIN_RATE"]
    return rate


RATE_MESSAGE = "Too many requests from this address; slow down."
RATE_SCOPE = "auth"


def _organisation_ref(organisation: Organisation) -> dict[str, Any]:
    return {"id": organisation.id, "slug": organisation.slug, "kind": organisation.kind.value}


def _token_response(result: LoginResult) -> dict[str, Any]:
    return {
        "access_token": result.tokens.access_token,
        "refresh_token": result.tokens.refresh_token,
        "expires_in": result.tokens.expires_in,
        "token_type": "Bearer",
        "role": result.user.role.value,
        "organisation": _organisation_ref(result.organisation),
    }


@blp.route("/login", methods=["POST"])
@public
@limiter.shared_limit(_login_rate, scope=RATE_SCOPE, error_message=RATE_MESSAGE)
@blp.arguments(LoginSchema)
@blp.response(200, TokenResponseSchema)
@blp.alt_response(401, description="Unknown username or wrong password")
@blp.alt_response(429, description="Too many failed logins")
def login(body: dict[str, Any]) -> dict[str, Any]:
    """Sign in with a username and password."""
    result = auth.login(db.session, call_context(), security(), body["username"], body["password"])
    return _token_response(result)


@blp.route("/refresh", methods=["POST"])
@public
@limiter.shared_limit(_login_rate, scope=RATE_SCOPE, error_message=RATE_MESSAGE)
@blp.arguments(RefreshSchema)
@blp.response(200, TokenResponseSchema)
@blp.alt_response(401, description="Invalid, expired, revoked or already used refresh token")
def refresh(body: dict[str, Any]) -> dict[str, Any]:
    """Spend a refresh token for a new pair; a reused token revokes its whole family."""
    result = auth.refresh(db.session, call_context(), security(), body["refresh_token"])
    return _token_response(result)


@blp.route("/logout", methods=["POST"])
@requires()
@blp.arguments(LogoutSchema)
@blp.response(204)
def logout(body: dict[str, Any]) -> None:
    """End this login: its refresh family and access tokens stop working at once."""
    auth.logout(db.session, call_context(), security(), body.get("refresh_token"))


@blp.route("/me", methods=["GET"])
@requires()
@blp.response(200, MeSchema)
def me() -> dict[str, Any]:
    """The caller's user, role and organisation."""
    user, organisation = auth.me(db.session, call_context())
    return _me(user, organisation)


def _me(user: User, organisation: Organisation) -> dict[str, Any]:
    return {
        "user": {"id": user.id, "username": user.username, "active": user.active},
        "role": user.role.value,
        "organisation": _organisation_ref(organisation),
    }


@blp.route("/password", methods=["POST"])
@requires()
@blp.arguments(PasswordChangeSchema)
@blp.response(204)
def change_password(body: dict[str, Any]) -> None:
    """Change your own password; every login of your account ends."""
    auth.change_own_password(
        db.session, call_context(), security(), body["current_password"], body["new_password"]
    )
