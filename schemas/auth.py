"""Login, tokens and the caller's own account."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from schemas.common import StrictBoolean

# Generous bounds: a real username or password is far shorter; the cap only stops
# a client from making the server hash megabytes.
_username = fields.String(required=True, validate=validate.Length(min=1, max=200))
_password = fields.String(required=True, validate=validate.Length(min=1, max=4096))
_token = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class LoginSchema(ma.Schema):
    username = _username
    password = _password


class RefreshSchema(ma.Schema):
    refresh_token = _token


class LogoutSchema(ma.Schema):
    refresh_token = fields.String(validate=validate.Length(min=1, max=4096))


class PasswordChangeSchema(ma.Schema):
    current_password = _password
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class OrganisationRefSchema(ma.Schema):
    id = fields.UUID(required=True)
    slug = fields.String(required=True)
    kind = fields.String(required=True)


class TokenResponseSchema(ma.Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})
    token_type = fields.String(required=True)
    role = fields.String(required=True)
    organisation = fields.Nested(OrganisationRefSchema, required=True)


class MeUserSchema(ma.Schema):
    id = fields.UUID(required=True)
    username = fields.String(required=True)
    active = StrictBoolean(required=True)


class MeSchema(ma.Schema):
    user = fields.Nested(MeUserSchema, required=True)
    role = fields.String(required=True)
    organisation = fields.Nested(OrganisationRefSchema, required=True)
