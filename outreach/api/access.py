"""How a route declares who may call it, and who is calling.

Every view under ``/api`` carries ``__access__``: ``PUBLIC`` or the roles it admits.
``tests/test_access_matrix.py`` walks the URL map and fails for a route without one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request

from config import Settings
from outreach.extensions import db
from outreach.models import Role
from outreach.services import audit
from outreach.services.access import authorise, load_principal
from outreach.services.auth import Security, TokenRefused, verified_claims
from outreach.services.context import CallContext, Principal
from outreach.services.errors import Unauthorized

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

PUBLIC = "public"
ALL_ROLES = frozenset(Role)
ACCESS_ATTRIBUTE = "__access__"
SECURITY_KEY = "outreach.security"

_BEARER_DOC: dict[str, Any] = {
    "security": [{"bearerAuth": []}],
}


def security() -> Security:
    """The app's authentication collaborators."""
    value: Security = current_app.extensions[SECURITY_KEY]
    return value


def settings() -> Settings:
    """The running app's settings."""
    value: Settings = current_app.config["OUTREACH_SETTINGS"]
    return value


def call_context() -> CallContext:
    """The context a use case records in the audit log for this request."""
    return CallContext(
        principal=g.get("principal"),
        request_id=g.get("request_id"),
        client_hash=g.get("client_hash"),
    )


def current_principal() -> Principal:
    principal: Principal | None = g.get("principal")
    assert principal is not None, "only routes behind @requires have a principal"
    return principal


# Routes the libraries add (the OpenAPI document, static files): public by nature.
LIBRARY_PUBLIC_ENDPOINTS = frozenset(
    {"api-docs.openapi_json", "static", "dashboard.static", "fieldapp.static"}
)


def access_of(app: Flask, endpoint: str) -> frozenset[Role] | str | None:
    """What the route of ``endpoint`` admits: ``PUBLIC``, roles, or ``None`` if undeclared."""
    if endpoint in LIBRARY_PUBLIC_ENDPOINTS:
        return PUBLIC
    declared: frozenset[Role] | str | None = getattr(
        app.view_functions[endpoint], ACCESS_ATTRIBUTE, None
    )
    return declared


def public(view: F) -> F:
    """Mark a route as callable without a token."""
    setattr(view, ACCESS_ATTRIBUTE, PUBLIC)
    return view


def requires(*roles: Role) -> Callable[[F], F]:
    """Admit callers with a valid access token and one of ``roles`` (all when none given).

    401 without a valid, unrevoked token; 403 with a token of another role. Both
    refusals are audited.
    """
    allowed = frozenset(roles) or ALL_ROLES

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            session = db.session
            g.principal = _authenticate()
            authorise(session, call_context(), allowed, request.endpoint or request.path)
            return view(*args, **kwargs)

        setattr(guarded, ACCESS_ATTRIBUTE, allowed)
        apidoc = getattr(guarded, "_apidoc", {})
        manual = apidoc.setdefault("manual_doc", {})
        manual.update(_BEARER_DOC)
        guarded._apidoc = apidoc  # type: ignore[attr-defined]
        return cast(F, guarded)

    return decorate


# Refusals already audited where they happen: no token (401), wrong role (403), lock-out.
SELF_AUDITED_STATUSES = frozenset({401, 403, 429})


def audit_failed_request(response: Response) -> Response:
    """Leave a trace of an authenticated request that failed (404, 409, 413, 422, ...),
    and of any request that ended in a 500, authenticated or not.

    The use case rolled its own transaction (and event) back, or never ran because
    the input was refused: probing for other organisations' ids or sending junk is
    still an access attempt the auditor should see, and a crash may have read data
    before it failed. A 503 (the database gone) cannot be written.
    """
    principal = g.get("principal")
    status = response.status_code
    crashed = status == 500
    if status < 400 or status > 500 or status in SELF_AUDITED_STATUSES:
        return response
    if principal is None and not crashed:
        return response
    session = db.session
    try:
        if session.in_transaction():
            session.rollback()
        with session.begin():
            audit.record(
                session,
                call_context(),
                "request.failed",
                outcome=audit.Outcome.INVALID if status in (400, 422) else audit.Outcome.FAILED,
                target=request.endpoint or request.path,
                params={"status": status, "method": request.method},
            )
    except Exception:
        if not crashed:
            raise
        # Whatever broke the request may break this too: the 500 still goes out.
        log.exception("the audit event of a failed request could not be written")
    return response


def _authenticate() -> Principal:
    session = db.session
    try:
        claims = verified_claims(security(), _bearer_token(), "access")
        return load_principal(session, claims)
    except Unauthorized as exc:
        with session.begin():
            audit.record(
                session,
                call_context(),
                "auth.unauthorized",
                outcome=audit.Outcome.DENIED,
                target=request.endpoint or request.path,
                params={
                    "reason": exc.reason if isinstance(exc, TokenRefused) else type(exc).__name__
                },
            )
        raise


def _bearer_token() -> str:
    """The token of the ``Authorization: Bearer <token>`` header, the only place one is read."""
    header = request.headers.get("Authorization")
    scheme, _, token = (header or "").partition(" ")
    if scheme != "Bearer" or not token.strip():
        # The reasons flask-jwt-extended gave these, so the audit log keeps one vocabulary.
        reason = "InvalidHeaderError" if header else "NoAuthorizationError"
        raise TokenRefused("Send an access token: Authorization: Bearer <token>.", reason)
    return token.strip()
