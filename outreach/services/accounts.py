"""Organisations and users: creation, listing, changes, all audited.

A platform admin manages every organisation and user; an org_admin manages the
users of its own association and nothing else. Changing a user's role or password,
or deactivating it, revokes its tokens in the same transaction.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outreach.models import Organisation, OrgKind, RefreshFamily, Role, User
from outreach.services import audit
from outreach.services.access import ROLE_ORG_KIND, roles_for_kind, scope_to_organisation
from outreach.services.auth import normalise_username, revoke_tokens_where, revoke_user_tokens
from outreach.services.context import CallContext, Principal
from outreach.services.errors import Conflict, Invalid, NotFound
from outreach.services.pagination import Page, paginate
from outreach.services.passwords import Passwords, password_problems

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")
ORG_ADMIN_GRANTABLE = frozenset({Role.WORKER, Role.ORG_ADMIN})


def _caller(ctx: CallContext) -> Principal | None:
    """The authenticated caller, or ``None`` for an operator at the command line."""
    assert ctx.principal is not None or ctx.operator, "an account change needs an actor"
    return ctx.principal


def _is_platform(caller: Principal | None) -> bool:
    return caller is None or caller.role == Role.ADMIN


# Organisations ------------------------------------------------------------------


def create_organisation(
    session: Session, ctx: CallContext, *, slug: str, name: str, kind: OrgKind
) -> Organisation:
    slug = slug.strip().lower()
    if not SLUG_PATTERN.match(slug):
        raise Invalid(
            "Check the form.",
            {"slug": ["Use 2 to 64 lowercase letters, digits and hyphens."]},
        )
    with session.begin():
        if session.scalar(select(Organisation.id).where(Organisation.slug == slug)):
            raise Conflict("An organisation with this slug exists.", {"slug": ["Taken."]})
        organisation = Organisation(slug=slug, name=name.strip(), kind=kind)
        session.add(organisation)
        session.flush()
        audit.record(
            session, ctx, "orgs.create", target=str(organisation.id), params={"kind": kind.value}
        )
    return organisation


def list_organisations(
    session: Session, ctx: CallContext, *, page: int, per_page: int, kind: OrgKind | None
) -> Page[Organisation]:
    statement = select(Organisation).order_by(Organisation.slug)
    if kind is not None:
        statement = statement.where(Organisation.kind == kind)
    with session.begin():
        result = paginate(session, statement, page, per_page)
        audit.record(
            session,
            ctx,
            "orgs.list",
            params={"page": page, "kind": kind.value if kind else None},
            records=len(result.items),
        )
    return result


def get_organisation(
    session: Session, ctx: CallContext, organisation_id: uuid.UUID
) -> Organisation:
    with session.begin():
        organisation = session.get(Organisation, organisation_id)
        if organisation is None:
            raise NotFound("No such organisation.")
        audit.record(session, ctx, "orgs.read", target=str(organisation.id), records=1)
    return organisation


def update_organisation(
    session: Session,
    ctx: CallContext,
    organisation_id: uuid.UUID,
    *,
    name: str | None = None,
    active: bool | None = None,
) -> Organisation:
    with session.begin():
        organisation = session.get(Organisation, organisation_id)
        if organisation is None:
            raise NotFound("No such organisation.")
        caller = _caller(ctx)
        if caller and organisation.id == caller.organisation_id and active is False:
            raise Invalid(
                "Check the form.", {"active": ["You cannot deactivate your own organisation."]}
            )
        changed = []
        if name is not None and name.strip() != organisation.name:
            organisation.name = name.strip()
            changed.append("name")
        if active is not None and active != organisation.active:
            organisation.active = active
            changed.append("active")
        revoked = 0
        if "active" in changed and not organisation.active:
            # Every login ends for good: reactivating the organisation later does not
            # bring its members' old tokens back.
            members = select(User.id).where(User.organisation_id == organisation.id)
            revoked = revoke_tokens_where(
                session, RefreshFamily.user_id.in_(members), "organisation_deactivated"
            )
        audit.record(
            session,
            ctx,
            "orgs.update",
            target=str(organisation.id),
            params={"changed": changed, "revoked_logins": revoked},
            records=1,
        )
    return organisation


# Users ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewUser:
    username: str
    password: str
    role: Role
    organisation_id: uuid.UUID | None


def create_user(session: Session, ctx: CallContext, passwords: Passwords, new: NewUser) -> User:
    caller = _caller(ctx)
    errors: dict[str, list[str]] = {}
    username = normalise_username(new.username)
    if not USERNAME_PATTERN.match(username):
        errors["username"] = [
            "Use 3 to 64 lowercase letters, digits, dots, hyphens or underscores."
        ]
    if problems := password_problems(new.password):
        errors["password"] = problems
    if _is_platform(caller):
        organisation_id = new.organisation_id
        if organisation_id is None:
            errors["organisation_id"] = ["Name the organisation of the new user."]
    else:
        assert caller is not None
        organisation_id = caller.organisation_id
        if new.organisation_id is not None:
            errors["organisation_id"] = ["Your own organisation is used; do not send this field."]
        if new.role not in ORG_ADMIN_GRANTABLE:
            errors["role"] = ["You may create workers and org_admins only."]
    if errors:
        raise Invalid("Check the form.", errors)
    assert organisation_id is not None

    password_hash = passwords.hash(new.password)
    with session.begin():
        organisation = session.get(Organisation, organisation_id)
        if organisation is None:
            raise Invalid("Check the form.", {"organisation_id": ["No such organisation."]})
        _check_role_fits(new.role, organisation.kind)
        if session.scalar(select(User.id).where(User.username == username)):
            raise Conflict("This username is taken.", {"username": ["Taken."]})
        user = User(
            username=username,
            password_hash=password_hash,
            role=new.role,
            organisation_id=organisation.id,
        )
        session.add(user)
        session.flush()
        audit.record(
            session,
            ctx,
            "users.create",
            target=str(user.id),
            params={"role": new.role.value, "organisation_id": str(organisation.id)},
            records=1,
        )
    return user


def _check_role_fits(role: Role, kind: OrgKind) -> None:
    if ROLE_ORG_KIND[role] != kind:
        allowed = ", ".join(r.value for r in roles_for_kind(kind))
        raise Invalid(
            "Check the form.",
            {"role": [f"An organisation of kind {kind.value} may only have: {allowed}."]},
        )


def list_users(
    session: Session,
    ctx: CallContext,
    *,
    page: int,
    per_page: int,
    organisation_id: uuid.UUID | None,
    role: Role | None,
    active: bool | None,
) -> Page[User]:
    statement = scope_to_organisation(
        select(User).order_by(User.username), User.organisation_id, _caller(ctx)
    )
    if organisation_id is not None:
        statement = statement.where(User.organisation_id == organisation_id)
    if role is not None:
        statement = statement.where(User.role == role)
    if active is not None:
        statement = statement.where(User.active == active)
    with session.begin():
        result = paginate(session, statement, page, per_page)
        audit.record(
            session,
            ctx,
            "users.list",
            params={
                "page": page,
                "organisation_id": str(organisation_id) if organisation_id else None,
                "role": role.value if role else None,
                "active": active,
            },
            records=len(result.items),
        )
    return result


def _visible_user(session: Session, caller: Principal | None, user_id: uuid.UUID) -> User:
    statement = scope_to_organisation(
        select(User).where(User.id == user_id), User.organisation_id, caller
    )
    user = session.scalars(statement).first()
    if user is None:
        raise NotFound("No such user.")
    return user


def get_user(session: Session, ctx: CallContext, user_id: uuid.UUID) -> User:
    with session.begin():
        user = _visible_user(session, _caller(ctx), user_id)
        audit.record(session, ctx, "users.read", target=str(user.id), records=1)
    return user


@dataclass(frozen=True)
class UserChanges:
    role: Role | None = None
    active: bool | None = None
    password: str | None = None


def update_user(
    session: Session,
    ctx: CallContext,
    passwords: Passwords,
    user_id: uuid.UUID,
    changes: UserChanges,
) -> User:
    caller = _caller(ctx)
    errors: dict[str, list[str]] = {}
    if changes.password is not None and (problems := password_problems(changes.password)):
        errors["password"] = problems
    if (
        changes.role is not None
        and not _is_platform(caller)
        and changes.role not in ORG_ADMIN_GRANTABLE
    ):
        errors["role"] = ["You may grant worker and org_admin only."]
    if (
        caller is not None
        and user_id == caller.user_id
        and (changes.active is False or changes.role not in (None, caller.role))
    ):
        errors["user"] = ["You cannot deactivate yourself or change your own role."]
    if caller is not None and user_id == caller.user_id and changes.password is not None:
        # With the current password and its lock-out: a stolen access token alone must
        # not become a permanent takeover.
        errors["password"] = ["Change your own password with POST /auth/password."]
    if errors:
        raise Invalid("Check the form.", errors)
    new_hash = passwords.hash(changes.password) if changes.password is not None else None

    with session.begin():
        user = _visible_user(session, caller, user_id)
        organisation = session.get_one(Organisation, user.organisation_id)
        changed: list[str] = []
        if changes.role is not None and changes.role != user.role:
            _check_role_fits(changes.role, organisation.kind)
            user.role = changes.role
            changed.append("role")
        if changes.active is not None and changes.active != user.active:
            user.active = changes.active
            changed.append("active")
        if new_hash is not None:
            user.password_hash = new_hash
            changed.append("password")
        revoked = 0
        if {"role", "password"} & set(changed) or user.active is False:
            revoked = revoke_user_tokens(session, user.id, "account_change")
        audit.record(
            session,
            ctx,
            "users.update",
            target=str(user.id),
            params={"changed": changed, "revoked_logins": revoked},
            records=1,
        )
    return user


def find_organisation(session: Session, slug: str) -> Organisation | None:
    """The organisation with ``slug``, if any (for operators' commands)."""
    with session.begin():
        return session.scalars(select(Organisation).where(Organisation.slug == slug)).first()


def get_or_create_organisation(
    session: Session, ctx: CallContext, *, slug: str, name: str, kind: OrgKind
) -> tuple[Organisation, bool]:
    """The organisation with ``slug``, created when missing (seeding uses it)."""
    existing = find_organisation(session, slug)
    if existing is not None:
        if existing.kind != kind:
            raise Conflict(f"Organisation {slug} exists with kind {existing.kind.value}.")
        return existing, False
    try:
        return create_organisation(session, ctx, slug=slug, name=name, kind=kind), True
    except IntegrityError:
        with session.begin():
            return session.scalars(
                select(Organisation).where(Organisation.slug == slug)
            ).one(), False
