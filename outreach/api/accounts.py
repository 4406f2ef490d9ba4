"""``/api/v1/orgs`` (admin) and ``/api/v1/users`` (admin; org_admin for its own users)."""

from __future__ import annotations

import uuid
from typing import Any

from outreach.api.access import call_context, requires, security
from outreach.api.blueprint import Blueprint
from outreach.api.pages import PageResponse, page_body
from outreach.extensions import db
from outreach.models import Organisation, OrgKind, Role, User
from outreach.services import accounts
from schemas.accounts import (
    OrganisationCreateSchema,
    OrganisationPageSchema,
    OrganisationQuerySchema,
    OrganisationSchema,
    OrganisationUpdateSchema,
    UserCreateSchema,
    UserPageSchema,
    UserQuerySchema,
    UserSchema,
    UserUpdateSchema,
)

orgs = Blueprint("orgs", __name__, url_prefix="/api/v1/orgs", description="Organisations")
users = Blueprint("users", __name__, url_prefix="/api/v1/users", description="User accounts")


@orgs.route("", methods=["GET"])
@requires(Role.ADMIN)
@orgs.arguments(OrganisationQuerySchema, location="query")
@orgs.response(200, OrganisationPageSchema)
def list_organisations(query: dict[str, Any]) -> PageResponse:
    """Every organisation, by slug."""
    kind = OrgKind(query["kind"]) if "kind" in query else None
    result = accounts.list_organisations(
        db.session, call_context(), page=query["page"], per_page=query["per_page"], kind=kind
    )
    return page_body(result)


@orgs.route("", methods=["POST"])
@requires(Role.ADMIN)
@orgs.arguments(OrganisationCreateSchema)
@orgs.response(201, OrganisationSchema)
@orgs.alt_response(409, description="The slug is taken")
def create_organisation(body: dict[str, Any]) -> Organisation:
    """Create an organisation."""
    return accounts.create_organisation(
        db.session, call_context(), slug=body["slug"], name=body["name"], kind=OrgKind(body["kind"])
    )


@orgs.route("/<uuid:organisation_id>", methods=["GET"])
@requires(Role.ADMIN)
@orgs.response(200, OrganisationSchema)
def get_organisation(organisation_id: uuid.UUID) -> Organisation:
    """One organisation."""
    return accounts.get_organisation(db.session, call_context(), organisation_id)


@orgs.route("/<uuid:organisation_id>", methods=["PATCH"])
@requires(Role.ADMIN)
@orgs.arguments(OrganisationUpdateSchema)
@orgs.response(200, OrganisationSchema)
def update_organisation(body: dict[str, Any], organisation_id: uuid.UUID) -> Organisation:
    """Rename or (de)activate an organisation; deactivation ends its users' logins."""
    return accounts.update_organisation(
        db.session,
        call_context(),
        organisation_id,
        name=body.get("name"),
        active=body.get("active"),
    )


@users.route("", methods=["GET"])
@requires(Role.ADMIN, Role.ORG_ADMIN)
@users.arguments(UserQuerySchema, location="query")
@users.response(200, UserPageSchema)
def list_users(query: dict[str, Any]) -> PageResponse:
    """Users visible to the caller (an org_admin sees its organisation's only)."""
    result = accounts.list_users(
        db.session,
        call_context(),
        page=query["page"],
        per_page=query["per_page"],
        organisation_id=query.get("organisation_id"),
        role=Role(query["role"]) if "role" in query else None,
        active=query.get("active"),
    )
    return page_body(result)


@users.route("", methods=["POST"])
@requires(Role.ADMIN, Role.ORG_ADMIN)
@users.arguments(UserCreateSchema)
@users.response(201, UserSchema)
@users.alt_response(409, description="The username is taken")
def create_user(body: dict[str, Any]) -> User:
    """Create a user; an org_admin creates workers and org_admins of its own association."""
    new = accounts.NewUser(
        username=body["username"],
        password=body["password"],
        role=Role(body["role"]),
        organisation_id=body.get("organisation_id"),
    )
    return accounts.create_user(db.session, call_context(), security().passwords, new)


@users.route("/<uuid:user_id>", methods=["GET"])
@requires(Role.ADMIN, Role.ORG_ADMIN)
@users.response(200, UserSchema)
def get_user(user_id: uuid.UUID) -> User:
    """One user."""
    return accounts.get_user(db.session, call_context(), user_id)


@users.route("/<uuid:user_id>", methods=["PATCH"])
@requires(Role.ADMIN, Role.ORG_ADMIN)
@users.arguments(UserUpdateSchema)
@users.response(200, UserSchema)
def update_user(body: dict[str, Any], user_id: uuid.UUID) -> User:
    """Change role, password or active flag; any of these ends the user's logins."""
    changes = accounts.UserChanges(
        role=Role(body["role"]) if "role" in body else None,
        active=body.get("active"),
        password=body.get("password"),
    )
    return accounts.update_user(db.session, call_context(), security().passwords, user_id, changes)
