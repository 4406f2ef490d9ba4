"""Who may hold which role, how a token becomes a principal, and org scoping.

The role table is docs/design.md's: each role belongs to one organisation kind. Routes
declare the roles they admit (``outreach.api.access.requires``); use cases scope
their queries with ``scope_to_organisation`` so another organisation's object is
simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from outreach.models import Organisation, OrgKind, RefreshFamily, Role, User, utcnow
from outreach.models.driver import first_alone
from outreach.services import audit
from outreach.services.context import CallContext, Principal
from outreach.services.errors import Forbidden, Unauthorized

ROLE_ORG_KIND: Mapping[Role, OrgKind] = {
    Role.WORKER: OrgKind.ASSOCIATION,
    Role.ORG_ADMIN: OrgKind.ASSOCIATION,
    Role.COORDINATOR: OrgKind.CITY,
    Role.AUDITOR: OrgKind.HEALTH_AUTHORITY,
    Role.ADMIN: OrgKind.PLATFORM,
}

SelectT = TypeVar("SelectT", bound=Select[Any])


def roles_for_kind(kind: OrgKind) -> list[Role]:
    """The roles a user of an organisation of ``kind`` may hold."""
    return [role for role, org_kind in ROLE_ORG_KIND.items() if org_kind == kind]


_users, _organisations, _families = (
    cast(Table, model.__table__) for model in (User, Organisation, RefreshFamily)
)
# Built once, from table columns rather than entities: this runs on every request, and
# building the statement and going through the ORM's execution cost more than the query.
_PRINCIPAL_ROW = (
    select(
        _users.c.username,
        _users.c.role,
        _users.c.active,
        _organisations.c.id,
        _organisations.c.slug,
        _organisations.c.kind,
        _organisations.c.active,
        _families.c.revoked_at,
        _families.c.expires_at,
    )
    .join(_organisations, _organisations.c.id == _users.c.organisation_id)
    .join(_families, _families.c.user_id == _users.c.id)
    .where(_users.c.id == bindparam("user_id"), _families.c.id == bindparam("family_id"))
)


def load_principal(session: Session, claims: Mapping[str, Any]) -> Principal:
    """Turn verified access-token claims into a principal, or raise ``Unauthorized``.

    The token's family must be live and its user and organisation active: that is
    what makes logout, deactivation and password changes take effect at once.
    """
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        family_id = uuid.UUID(str(claims["fam"]))
    except (KeyError, ValueError) as exc:
        raise Unauthorized("The token is not an Outreach access token.") from exc
    row = first_alone(session, _PRINCIPAL_ROW, {"user_id": user_id, "family_id": family_id})
    if row is None:
        raise Unauthorized("The token has been revoked.")
    username, role, user_active, org_id, slug, kind, org_active, revoked_at, expires_at = row
    if revoked_at is not None or expires_at <= utcnow():
        raise Unauthorized("The token has been revoked.")
    if not user_active or not org_active:
        raise Unauthorized("This account is deactivated.")
    return Principal(
        user_id=user_id,
        username=username,
        role=Role(role),
        organisation_id=org_id,
        organisation_slug=slug,
        organisation_kind=OrgKind(kind),
        family_id=family_id,
    )


def authorise(session: Session, ctx: CallContext, allowed: frozenset[Role], what: str) -> None:
    """Raise ``Forbidden`` (and audit the refusal) unless the caller's role is allowed."""
    principal = ctx.principal
    if principal is None or principal.role in allowed:
        return
    with session.begin():
        audit.record(session, ctx, "access.denied", outcome=audit.Outcome.DENIED, target=what)
    raise Forbidden("Your role does not allow this.")


def scope_to_organisation(
    statement: SelectT, column: InstrumentedAttribute[uuid.UUID], principal: Principal | None
) -> SelectT:
    """Restrict ``statement`` to the caller's organisation unless its role spans them.

    ``None`` is an operator at the command line, who sees every organisation.
    """
    if principal is None or principal.role == Role.ADMIN:
        return statement
    condition: ColumnElement[bool] = column == principal.organisation_id
    return statement.where(condition)
