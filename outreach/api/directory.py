"""``/api/v1/vocabularies``, ``/kits`` and ``/structures``: reference data."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, request

from outreach.api.access import call_context, requires, settings
from outreach.api.blueprint import Blueprint
from outreach.api.pages import page_body
from outreach.extensions import db
from outreach.models import Kit, Role, Structure
from outreach.services import directory
from schemas.directory import (
    KitCreateSchema,
    KitSchema,
    KitUpdateSchema,
    StructureCreateSchema,
    StructurePageSchema,
    StructureQuerySchema,
    StructureSchema,
    StructureUpdateSchema,
    VocabulariesSchema,
)

blp = Blueprint("directory", __name__, url_prefix="/api/v1", description="Reference data")


@blp.route("/vocabularies", methods=["GET"])
@requires()
@blp.response(200, VocabulariesSchema)
@blp.alt_response(304, description="Unchanged since the ETag sent in If-None-Match")
def vocabularies() -> Any:
    """Every code list, the kits, structures and sectors, for the phone's forms.

    Send the ETag back in ``If-None-Match``: 304 while nothing changed.
    """
    document = directory.vocabulary_document(db.session, settings().h3_resolution)
    etag = f'"{document.etag}"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return Response(status=304, headers={"ETag": etag})
    return document.body, 200, {"ETag": etag}


@blp.route("/kits", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(KitCreateSchema)
@blp.response(201, KitSchema)
def create_kit(body: dict[str, Any]) -> Kit:
    """Add a kit code to the catalogue."""
    return directory.create_kit(db.session, call_context(), body["code"], body["label"])


@blp.route("/kits/<string:code>", methods=["PATCH"])
@requires(Role.ADMIN)
@blp.arguments(KitUpdateSchema)
@blp.response(200, KitSchema)
def update_kit(body: dict[str, Any], code: str) -> Kit:
    """Relabel a kit, or retire it (``active: false``) so phones stop offering it."""
    return directory.update_kit(
        db.session, call_context(), code, body.get("label"), body.get("active")
    )


@blp.route("/structures", methods=["GET"])
@requires()
@blp.arguments(StructureQuerySchema, location="query")
@blp.response(200, StructurePageSchema)
def list_structures(query: dict[str, Any]) -> dict[str, Any]:
    """The directory of places people are referred to."""
    result = directory.list_structures(
        db.session,
        page=query["page"],
        per_page=query["per_page"],
        destination=query.get("destination"),
        active=query.get("active"),
    )
    return page_body(result)


@blp.route("/structures/<uuid:structure_id>", methods=["GET"])
@requires()
@blp.response(200, StructureSchema)
def get_structure(structure_id: uuid.UUID) -> Structure:
    """One structure."""
    return directory.get_structure(db.session, structure_id)


@blp.route("/structures", methods=["POST"])
@requires(Role.COORDINATOR, Role.ADMIN)
@blp.arguments(StructureCreateSchema)
@blp.response(201, StructureSchema)
def create_structure(body: dict[str, Any]) -> Structure:
    """Add a structure to the directory."""
    return directory.create_structure(db.session, call_context(), body)


@blp.route("/structures/<uuid:structure_id>", methods=["PATCH"])
@requires(Role.COORDINATOR, Role.ADMIN)
@blp.arguments(StructureUpdateSchema)
@blp.response(200, StructureSchema)
def update_structure(body: dict[str, Any], structure_id: uuid.UUID) -> Structure:
    """Correct a structure's name, type, position, capacity, hours, or retire it."""
    return directory.update_structure(db.session, call_context(), structure_id, body)
