"""Login, refresh-token rotation with reuse detection, logout, password change.

Tokens are signed JWTs, issued by flask-jwt-extended and verified by ``verified_claims``
in a single decode. An access token names its refresh family; the family row is the
single switch that revokes a login: logout, reuse of a spent refresh token,
deactivation and password changes all revoke families, and ``access.load_principal``
refuses tokens of a revoked family at once.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import jwt as pyjwt
from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.orm import Session

from outreach.models import Organisation, RefreshFamily, User, utcnow
from outreach.services import audit
from outreach.services.context import CallContext, Principal, principal_of
from outreach.services.crypto import keyed_hash
from outreach.services.errors import Invalid, TooManyAttempts, Unauthorized
from outreach.services.login_guard import LoginGuard
from outreach.services.passwords import Passwords, password_problems

BAD_CREDENTIALS = "Unknown username or wrong password."


@dataclass(frozen=True)
class Security:
    """The per-app collaborators of authentication."""

    passwords: Passwords
    guard: LoginGuard
    pepper: str
    # The key tokens are signed and verified with (flask-jwt-extended's JWT_SECRET_KEY).
    token_key: str
    access_ttl: timedelta
    refresh_ttl: timedelta


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class LoginResult:
    tokens: TokenPair
    user: User
    organisation: Organisation


def normalise_username(username: str) -> str:
    return username.strip().lower()


def _issue(
    security: Security, user: User, organisation: Organisation, family: RefreshFamily
) -> TokenPair:
    claims = {"fam": str(family.id), "role": user.role.value, "org": str(organisation.id)}
    access = create_access_token(
        identity=str(user.id), additional_claims=claims, expires_delta=security.access_ttl
    )
    refresh = create_refresh_token(
        identity=str(user.id),
        additional_claims={"fam": str(family.id), "jti": family.current_jti},
        expires_delta=security.refresh_ttl,
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=int(security.access_ttl.total_seconds()),
    )


def login(
    session: Session, ctx: CallContext, security: Security, username: str, password: str
) -> LoginResult:
    """Check the credentials and open a new refresh family; audit either way."""
    username = normalise_username(username)
    user_key = keyed_hash(security.pepper, "login-user", username)
    try:
        security.guard.attempt(user_key, ctx.client_hash)
    except TooManyAttempts:
        with session.begin():
            audit.record(
                session, ctx, "auth.login_locked", outcome=audit.Outcome.DENIED, target=user_key
            )
        raise

    with session.begin():
        row = session.execute(
            select(User, Organisation)
            .join(Organisation, Organisation.id == User.organisation_id)
            .where(User.username == username)
        ).first()
    user, organisation = row if row is not None else (None, None)
    # The hash is checked even for an unknown user so both failures take as long.
    password_ok = security.passwords.verify(user.password_hash if user else None, password)
    if user is None or organisation is None or not password_ok:
        return _refuse_login(session, ctx, security, user_key, target=user_key)
    if not user.active or not organisation.active:
        return _refuse_login(session, ctx, security, user_key, target=str(user.id))

    security.guard.succeeded(user_key, ctx.client_hash)
    with session.begin():
        user = session.get_one(User, user.id)
        if security.passwords.needs_rehash(user.password_hash):
            user.password_hash = security.passwords.hash(password)
        family = RefreshFamily(
            user_id=user.id,
            current_jti=secrets.token_urlsafe(24),
            expires_at=utcnow() + security.refresh_ttl,
        )
        session.add(family)
        session.flush()
        principal = principal_of(user, organisation, family.id)
        audit.record(session, _as(ctx, principal), "auth.login", target=str(user.id))
    return LoginResult(
        tokens=_issue(security, user, organisation, family), user=user, organisation=organisation
    )


def _refuse_login(
    session: Session, ctx: CallContext, security: Security, user_key: str, target: str
) -> LoginResult:
    security.guard.failed(user_key, ctx.client_hash)
    with session.begin():
        audit.record(session, ctx, "auth.login_failed", outcome=audit.Outcome.DENIED, target=target)
    raise Unauthorized(BAD_CREDENTIALS)


def _as(ctx: CallContext, principal: Principal) -> CallContext:
    return CallContext(principal=principal, request_id=ctx.request_id, client_hash=ctx.client_hash)


# The one algorithm tokens are signed with (config: JWT_ALGORITHM); a token that
# names another, ``none`` included, is refused.
ALGORITHM = "HS256"
# Every token this service issues carries these; a correctly signed token without
# them (no ``exp``: valid for ever) was not issued here and is refused.
REQUIRED_CLAIMS: Mapping[str, tuple[str, ...]] = {
    "access": ("exp", "iat", "type", "sub", "fam"),
    "refresh": ("exp", "iat", "type", "sub", "fam", "jti"),
}


INVALID_TOKEN = {
    "access": "The access token is invalid.",
    "refresh": "The refresh token is invalid or expired.",
}
EXPIRED_TOKEN = {**INVALID_TOKEN, "access": "The access token has expired; refresh it."}
WRONG_KIND = {"access": "An access token is required.", "refresh": "This is not a refresh token."}


class TokenRefused(Unauthorized):
    """A token that is missing, malformed, wrongly signed, expired or of another kind;
    ``reason`` names the check it failed, for the audit log."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def verified_claims(
    security: Security, token: str, kind: str, *, allow_expired: bool = False
) -> dict[str, Any]:
    """The claims of ``token`` once its signature, times, claims and kind hold.

    One decode per token: signature, ``exp``/``nbf``/``iat`` and the presence of every
    claim an issued token has are pyjwt's checks, the kind ours. Raises ``TokenRefused``.
    """
    invalid = INVALID_TOKEN[kind]
    try:
        claims: dict[str, Any] = pyjwt.decode(
            token,
            security.token_key,
            algorithms=[ALGORITHM],
            options={"require": list(REQUIRED_CLAIMS[kind]), "verify_exp": not allow_expired},
        )
    except pyjwt.ExpiredSignatureError as exc:
        raise TokenRefused(EXPIRED_TOKEN[kind], type(exc).__name__) from exc
    except pyjwt.MissingRequiredClaimError as exc:
        raise TokenRefused("The token is not an Outreach token.", type(exc).__name__) from exc
    except pyjwt.PyJWTError as exc:
        raise TokenRefused(invalid, type(exc).__name__) from exc
    if claims["type"] != kind:
        raise TokenRefused(WRONG_KIND[kind], "WrongTokenError")
    return claims


def refresh(session: Session, ctx: CallContext, security: Security, token: str) -> LoginResult:
    """Rotate: spend ``token`` and return a new pair of the same family.

    Presenting a token that was already spent revokes the family, because only a
    copy of the token can explain it (RFC 9700, refresh token rotation).
    """
    try:
        claims = verified_claims(security, token, "refresh")
        family_id = uuid.UUID(str(claims["fam"]))
    except (Unauthorized, ValueError):
        with session.begin():
            audit.record(session, ctx, "auth.refresh_failed", outcome=audit.Outcome.DENIED)
        raise Unauthorized("The refresh token is invalid or expired.") from None

    refusal: str | None = None
    with session.begin():
        row = session.execute(
            select(RefreshFamily, User, Organisation)
            .join(User, User.id == RefreshFamily.user_id)
            .join(Organisation, Organisation.id == User.organisation_id)
            .where(RefreshFamily.id == family_id)
        ).first()
        if row is None:
            refusal = "The refresh token is invalid or expired."
            audit.record(session, ctx, "auth.refresh_failed", outcome=audit.Outcome.DENIED)
        else:
            family, user, organisation = row
            principal = principal_of(user, organisation, family.id)
            rotated = None
            if family.revoked_at is None and user.active and organisation.active:
                new_jti = secrets.token_urlsafe(24)
                # Compare-and-set: of two concurrent uses of one token, one wins and
                # the other is treated as the reuse it is.
                rotated = _execute_dml(
                    session,
                    update(RefreshFamily)
                    .where(
                        RefreshFamily.id == family.id,
                        RefreshFamily.current_jti == claims["jti"],
                        RefreshFamily.revoked_at.is_(None),
                    )
                    .values(
                        current_jti=new_jti,
                        rotated_at=utcnow(),
                        expires_at=utcnow() + security.refresh_ttl,
                    )
                    .execution_options(synchronize_session=False),
                )
            if rotated:
                family.current_jti = new_jti
                audit.record(session, _as(ctx, principal), "auth.refresh", target=str(user.id))
            elif family.revoked_at is None and user.active and organisation.active:
                refusal = "This refresh token was already used; sign in again."
                _revoke(session, RefreshFamily.id == family.id, "reuse")
                audit.record(
                    session,
                    _as(ctx, principal),
                    "auth.refresh_reuse",
                    outcome=audit.Outcome.DENIED,
                    target=str(family.id),
                )
            else:
                refusal = "This session has ended; sign in again."
                audit.record(
                    session,
                    _as(ctx, principal),
                    "auth.refresh_failed",
                    outcome=audit.Outcome.DENIED,
                )
    if refusal is not None:
        raise Unauthorized(refusal)
    assert row is not None
    family, user, organisation = row
    return LoginResult(
        tokens=_issue(security, user, organisation, family), user=user, organisation=organisation
    )


def _execute_dml(session: Session, statement: Update) -> int:
    """Run an UPDATE and return how many rows it changed."""
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount)


def _revoke(session: Session, condition: Any, reason: str) -> int:
    return _execute_dml(
        session,
        update(RefreshFamily)
        .where(condition, RefreshFamily.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False),
    )


def revoke_tokens_where(session: Session, condition: Any, reason: str) -> int:
    """Revoke every live login family matching ``condition``, inside the caller's transaction."""
    return _revoke(session, condition, reason)


def revoke_user_tokens(session: Session, user_id: uuid.UUID, reason: str) -> int:
    """Revoke every live login of a user, inside the caller's transaction."""
    return _revoke(session, RefreshFamily.user_id == user_id, reason)


def logout(
    session: Session, ctx: CallContext, security: Security, refresh_token: str | None
) -> None:
    """End the caller's login, and the one of ``refresh_token`` if it is the caller's."""
    principal = ctx.principal
    assert principal is not None
    families = {principal.family_id}
    if refresh_token:
        claims = verified_claims(security, refresh_token, "refresh", allow_expired=True)
        if claims.get("sub") != str(principal.user_id):
            raise Unauthorized("This refresh token is not yours.")
        families.add(uuid.UUID(str(claims["fam"])))
    with session.begin():
        _revoke(session, RefreshFamily.id.in_(families), "logout")
        audit.record(session, ctx, "auth.logout", target=str(principal.user_id))


def me(session: Session, ctx: CallContext) -> tuple[User, Organisation]:
    """The caller's own account, audited like any account read."""
    principal = ctx.principal
    assert principal is not None
    with session.begin():
        user = session.get_one(User, principal.user_id)
        organisation = session.get_one(Organisation, principal.organisation_id)
        audit.record(session, ctx, "auth.me", target=str(user.id), records=1)
    return user, organisation


def change_own_password(
    session: Session, ctx: CallContext, security: Security, current: str, new: str
) -> None:
    """Change the caller's password; every login of the account ends."""
    principal = ctx.principal
    assert principal is not None
    user_key = keyed_hash(security.pepper, "login-user", principal.username)
    security.guard.attempt(user_key, ctx.client_hash)
    with session.begin():
        user = session.get_one(User, principal.user_id)
        current_ok = security.passwords.verify(user.password_hash, current)
        problems = password_problems(new)
        if current_ok and not problems:
            user.password_hash = security.passwords.hash(new)
            user.password_changed_at = utcnow()
            revoke_user_tokens(session, user.id, "password_change")
            audit.record(session, ctx, "auth.password_change", target=str(user.id), records=1)
        else:
            audit.record(
                session,
                ctx,
                "auth.password_change",
                outcome=audit.Outcome.DENIED if not current_ok else audit.Outcome.INVALID,
                target=str(user.id),
            )
    if not current_ok:
        security.guard.failed(user_key, ctx.client_hash)
        raise Invalid("Check the form.", {"current_password": ["Wrong password."]})
    security.guard.succeeded(user_key, ctx.client_hash)
    if problems:
        raise Invalid("Check the form.", {"new_password": problems})
