"""Organisations and users, as the admin and org_admin endpoints read and write them."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from schemas.common import PaginationQuery, StrictBoolean, page_of

ORG_KINDS = ("association", "city", "health_authority", "platform")
ROLES = ("worker", "org_admin", "coordinator", "auditor", "admin")

_name = fields.String(validate=validate.Length(min=1, max=200))


class OrganisationSchema(ma.Schema):
    id = fields.UUID(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ORG_KINDS))
    active = StrictBoolean(required=True)
    created_at = fields.AwareDateTime(required=True)


class OrganisationCreateSchema(ma.Schema):
    slug = fields.String(required=True, validate=validate.Length(min=2, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(ORG_KINDS))


class OrganisationUpdateSchema(ma.Schema):
    name = _name
    active = StrictBoolean()


class OrganisationQuerySchema(PaginationQuery):
    kind = fields.String(validate=validate.OneOf(ORG_KINDS))


OrganisationPageSchema = page_of(OrganisationSchema, "OrganisationPageSchema")


class UserSchema(ma.Schema):
    id = fields.UUID(required=True)
    username = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    organisation_id = fields.UUID(required=True)
    active = StrictBoolean(required=True)
    created_at = fields.AwareDateTime(required=True)


class UserCreateSchema(ma.Schema):
    username = fields.String(required=True, validate=validate.Length(min=3, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=4096))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    organisation_id = fields.UUID(
        metadata={"description": "Required for a platform admin; refused from an org_admin."}
    )


class UserUpdateSchema(ma.Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    active = StrictBoolean()
    password = fields.String(validate=validate.Length(min=1, max=4096))


class UserQuerySchema(PaginationQuery):
    organisation_id = fields.UUID()
    role = fields.String(validate=validate.OneOf(ROLES))
    active = fields.Boolean()


UserPageSchema = page_of(UserSchema, "UserPageSchema")
