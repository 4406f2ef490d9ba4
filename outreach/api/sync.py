"""``POST /api/v1/sync``: phones send shifts and encounters in batches."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from flask import Response, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from outreach.api.access import call_context, requires, settings
from outreach.api.blueprint import Blueprint
from outreach.extensions import db
from outreach.models import Role
from outreach.services import sync as sync_service
from outreach.services.rows import EncounterItem, ShiftItem
from outreach.services.sync import ItemResult, SyncBatch
from schemas.fastload import fast_loader
from schemas.sync import (
    MAX_ITEMS,
    EncounterSchema,
    ShiftSchema,
    SyncBodySchema,
    SyncQuerySchema,
    SyncResponseSchema,
)

blp = Blueprint("sync", __name__, url_prefix="/api/v1", description="Offline-first sync")

# Compiled from the schemas: a plain item skips marshmallow's machinery, any other
# gets marshmallow's own answer (schemas/fastload.py).
_LOADERS = {"shift": fast_loader(ShiftSchema()), "encounter": fast_loader(EncounterSchema())}


ItemT = TypeVar("ItemT", bound=ShiftItem | EncounterItem)


def _load(
    batch: SyncBatch, loaded: list[tuple[int, ItemT]], kind: str, raw_items: list[Any]
) -> None:
    """Load each of ``raw_items`` with the schema of ``kind`` into ``loaded`` (the
    batch's items of that kind), or reject it."""
    load = _LOADERS[kind]
    for index, raw in enumerate(raw_items):
        try:
            # Safe: ``ShiftItem`` and ``EncounterItem`` are what ``ShiftSchema`` and
            # ``EncounterSchema`` load, and ``loaded`` holds the items of ``kind``.
            loaded.append((index, cast(ItemT, load(raw))))
        except ValidationError as error:
            batch.rejected[(kind, index)] = ItemResult(
                sync_service.item_id(raw), kind, "invalid", _as_dict(error.messages)
            )


def _result(result: ItemResult) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": result.id, "kind": result.kind, "status": result.status}
    if result.errors is not None:
        answer["errors"] = result.errors
    return answer


def _as_dict(messages: Any) -> dict[str, Any]:
    return messages if isinstance(messages, dict) else {"_schema": messages}


@blp.route("/sync", methods=["POST"])
@requires(Role.WORKER, Role.ORG_ADMIN)
@blp.arguments(SyncQuerySchema, location="query")
@blp.arguments(SyncBodySchema)
@blp.response(200, SyncResponseSchema)
@blp.alt_response(413, description="More than 500 items, or a body over 2 MiB")
@blp.alt_response(422, description="With ?atomic=true: some item is invalid, nothing stored")
def sync(query: dict[str, Any], body: dict[str, Any]) -> Response:
    """Store new shifts and encounters; answer what became of each item.

    Statuses: ``created``; ``duplicate`` (same id, same content: nothing written);
    ``conflict`` (same id, other content: nothing written, amend with PATCH);
    ``invalid`` (with field-path errors). Valid items are committed together.
    """
    total = len(body["shifts"]) + len(body["encounters"])
    if total > MAX_ITEMS:
        raise RequestEntityTooLarge(f"At most {MAX_ITEMS} items a request; this one has {total}.")
    batch = SyncBatch()
    _load(batch, batch.shifts, "shift", body["shifts"])
    _load(batch, batch.encounters, "encounter", body["encounters"])
    outcome = sync_service.sync(
        db.session,
        call_context(),
        settings(),
        batch,
        atomic=query["atomic"],
    )
    # Answered as built: a schema walk over 500 results cost more than the batch's
    # JSON parsing. SyncResponseSchema still documents it and the API tests validate it.
    return jsonify(
        {"results": [_result(result) for result in outcome.results], "counts": outcome.counts}
    )
