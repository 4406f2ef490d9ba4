"""Who is calling and from where, handed by the API layer to every use case."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from outreach.models import OrgKind, Role


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


@dataclass(frozen=True)
class CallContext:
    """What the audit log records about a call besides its action."""

    principal: Principal | None
    request_id: str | None
    client_hash: str | None
    # An operator running a flask command: trusted like an admin, audited as such.
    operator: bool = False


OPERATOR = CallContext(principal=None, request_id=None, client_hash=None, operator=True)
