"""Who is calling and from where, handed by the API layer to every use case."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from outreach.models import Organisation, OrgKind, Role, User


@dataclass(frozen=True)
class Principal:
    """An authenticated user, as proven by a valid, unrevoked access token."""

    user_id: uuid.UUID
    username: str
    role: Role
    organisation_id: uuid.UUID
    organisation_slug: str
    organisation_kind: OrgKind
    family_id: uuid.UUID


def principal_of(user: User, organisation: Organisation, family_id: uuid.UUID) -> Principal:
    """The principal of ``user`` acting through the login (refresh family) ``family_id``."""
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        organisation_id=organisation.id,
        organisation_slug=organisation.slug,
        organisation_kind=organisation.kind,
        family_id=family_id,
    )


@dataclass(frozen=True)
class CallContext:
    """What the audit log records about a call besides its action."""

    principal: Principal | None
    request_id: str | None
    client_hash: str | None
    # An operator running a flask command: trusted like an admin, audited as such.
    operator: bool = False


OPERATOR = CallContext(principal=None, request_id=None, client_hash=None, operator=True)
