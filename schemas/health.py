"""Probe answers."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields


class HealthSchema(ma.Schema):
    status = fields.String(required=True)


class ReadySchema(ma.Schema):
    status = fields.String(required=True)
    database = fields.String(required=True)
    schema = fields.String(
        metadata={"description": "'not at head' when the migrations have not all been run"}
    )
