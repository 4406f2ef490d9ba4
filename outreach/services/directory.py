"""Reference data: vocabularies for the phones, the kit catalogue, the structure directory."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from outreach.models import Kit, Organisation, OrgKind, Structure
from outreach.services import audit
from outreach.services.context import CallContext
from outreach.services.errors import Conflict, NotFound
from outreach.services.geo import sector_cell
from outreach.services.pagination import Page, paginate
from schemas.vocabulary import STRUCTURES_FILE, sector_features, vocabularies


@dataclass(frozen=True)
class VocabularyDocument:
    body: dict[str, Any]
    etag: str


def vocabulary_document(session: Session, resolution: int) -> VocabularyDocument:
    """Every code list the phone's forms need, the sectors and structures, with an ETag.

    ``resolution`` is the H3 resolution locations are stored at: a phone that snaps its
    position itself needs it, and each sector names a hexagon of it (``cell``, whose
    centre lies in the sector) that a phone without a position sends for that sector.
    """
    with session.begin():
        kits = [
            {"code": k.code, "label": k.label}
            for k in session.scalars(select(Kit).where(Kit.active.is_(True)).order_by(Kit.code))
        ]
        structures = [
            {"code": s.code, "name": s.name, "destination": s.destination}
            for s in session.scalars(
                select(Structure).where(Structure.active.is_(True)).order_by(Structure.code)
            )
        ]
        # The associations figures can be filtered by: their slug and their name, for a
        # coordinator's list (an organisation is no personal data).
        associations = [
            {"code": slug, "label": name}
            for slug, name in session.execute(
                select(Organisation.slug, Organisation.name)
                .where(Organisation.kind == OrgKind.ASSOCIATION, Organisation.active.is_(True))
                .order_by(Organisation.name)
            )
        ]
    body: dict[str, Any] = {
        name: entries for name, entries in vocabularies().items() if name != "kits"
    }
    body["kits"] = kits
    body["structures"] = structures
    body["associations"] = associations
    body["h3_resolution"] = resolution
    body["sectors"] = {
        "type": "FeatureCollection",
        "features": [
            {
                **f,
                "properties": {
                    **f["properties"],
                    "cell": sector_cell(f["properties"]["code"], resolution),
                },
            }
            for f in sector_features()
            if f["properties"]["kind"] == "sector"
        ],
    }
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return VocabularyDocument(body=body, etag=digest[:32])


# Kits ---------------------------------------------------------------------------


def create_kit(session: Session, ctx: CallContext, code: str, label: str) -> Kit:
    with session.begin():
        if session.get(Kit, code) is not None:
            raise Conflict("This kit code exists.", {"code": ["Taken."]})
        kit = Kit(code=code, label=label)
        session.add(kit)
        session.flush()
        audit.record(session, ctx, "kits.create", target=code, records=1)
    return kit


def update_kit(
    session: Session, ctx: CallContext, code: str, label: str | None, active: bool | None
) -> Kit:
    with session.begin():
        kit = session.get(Kit, code)
        if kit is None:
            raise NotFound("No such kit.")
        if label is not None:
            kit.label = label
        if active is not None:
            kit.active = active
        audit.record(session, ctx, "kits.update", target=code, records=1)
    return kit


# Structures ---------------------------------------------------------------------


def list_structures(
    session: Session, *, page: int, per_page: int, destination: str | None, active: bool | None
) -> Page[Structure]:
    statement = select(Structure).order_by(Structure.code)
    if destination is not None:
        statement = statement.where(Structure.destination == destination)
    if active is not None:
        statement = statement.where(Structure.active == active)
    with session.begin():
        return paginate(session, statement, page, per_page)


def get_structure(session: Session, structure_id: uuid.UUID) -> Structure:
    with session.begin():
        structure = session.get(Structure, structure_id)
    if structure is None:
        raise NotFound("No such structure.")
    return structure


def create_structure(session: Session, ctx: CallContext, fields: dict[str, Any]) -> Structure:
    with session.begin():
        if session.scalar(select(Structure.id).where(Structure.code == fields["code"])):
            raise Conflict("A structure with this code exists.", {"code": ["Taken."]})
        structure = Structure(**fields)
        session.add(structure)
        session.flush()
        audit.record(session, ctx, "structures.create", target=structure.code, records=1)
    return structure


def update_structure(
    session: Session, ctx: CallContext, structure_id: uuid.UUID, changes: dict[str, Any]
) -> Structure:
    with session.begin():
        structure = session.get(Structure, structure_id)
        if structure is None:
            raise NotFound("No such structure.")
        for name, value in changes.items():
            setattr(structure, name, value)
        audit.record(
            session,
            ctx,
            "structures.update",
            target=structure.code,
            params={"changed": sorted(changes)},
            records=1,
        )
    return structure


def seed_structures(session: Session, ctx: CallContext) -> int:
    """Add the plan's places from ``data/structures.json`` that are missing; return how many."""
    seed = json.loads(STRUCTURES_FILE.read_text("utf-8"))["structures"]
    created = 0
    with session.begin():
        existing = set(session.scalars(select(Structure.code)))
        for entry in seed:
            if entry["code"] in existing:
                continue
            session.add(Structure(**entry))
            created += 1
        if created:
            session.flush()
            audit.record(session, ctx, "structures.seed", records=created)
    return created
