"""Offline-first sync: store each new shift and encounter once, report every item.

An item's identity is its client UUID within the sender's association, so another
association's shift and encounter ids are new ones here (no answer tells they exist),
and an encounter names a shift of its own association. Its content hash covers what
is stored (after anonymisation), so a resend of the same item is a ``duplicate`` and
a resend with other content a ``conflict``: nothing is overwritten, amendments go
through ``PATCH``. Inserts use ON CONFLICT DO NOTHING, never read-then-write, so concurrent
resends store one row. Every valid item of a batch, its rollup increments and the
audit event commit together; with ``atomic`` one invalid item stores nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from config import Settings
from outreach.clock import PARIS
from outreach.models import NO_SHIFT, Encounter, Kit, Shift, Structure, driver, utcnow
from outreach.models.dml import insert_new
from outreach.services import audit, writes
from outreach.services.context import CallContext
from outreach.services.crypto import keyed_hash, record_key
from outreach.services.errors import FieldErrors, Invalid
from outreach.services.geo import InvalidCell, OutsideServiceArea, Snapped, geography
from outreach.services.rollups import Deltas
from outreach.services.rows import (
    EncounterContent,
    EncounterFields,
    EncounterItem,
    EncounterRow,
    KeptFields,
    PersonItem,
    ShiftContent,
    ShiftItem,
    ShiftRow,
)

CLOCK_SKEW = timedelta(minutes=5)
STATUSES = ("created", "duplicate", "conflict", "invalid")
# ``_store`` stores shifts and encounters alike: it reads their ``id`` and ``content_hash``.
RowT = TypeVar("RowT", bound=ShiftRow | EncounterRow)


@dataclass(frozen=True)
class ItemResult:
    id: str | None
    kind: str
    status: str
    errors: FieldErrors | None = None


@dataclass(frozen=True)
class SyncOutcome:
    results: list[ItemResult]

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for result in self.results:
            counts[result.status] += 1
        return counts


@dataclass
class SyncBatch:
    """Items as the schemas loaded them, by position; ``rejected`` failed the schemas."""

    shifts: list[tuple[int, ShiftItem]] = field(default_factory=list)
    encounters: list[tuple[int, EncounterItem]] = field(default_factory=list)
    rejected: dict[tuple[str, int], ItemResult] = field(default_factory=dict)


class SyncRejected(Invalid):
    """``atomic`` was asked and some item is invalid: nothing was stored."""


def content_hash(content: ShiftContent | EncounterContent) -> str:
    """SHA-256 of the canonical JSON (sorted keys) of what is stored."""
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(PARIS).isoformat()


def shift_content(item: ShiftItem) -> ShiftContent:
    return {
        "kind": item["kind"],
        "started_at": _iso(item["started_at"]),
        "ended_at": _iso(item["ended_at"]),
        "planned_sectors": sorted(item["planned_sectors"]),
    }


def shift_row(item: ShiftItem, organisation_id: uuid.UUID, user_id: uuid.UUID) -> ShiftRow:
    """A validated shift as the row stored for ``organisation_id``, sent by ``user_id``."""
    content = shift_content(item)
    return {
        "id": item["id"],
        "organisation_id": organisation_id,
        "created_by": user_id,
        "kind": item["kind"],
        # In UTC: PostgreSQL's input refuses offsets of 16 hours or more, which Python
        # reads, and the rows reach it as JSON text that keeps the phone's offset.
        "started_at": item["started_at"].astimezone(UTC),
        "ended_at": item["ended_at"].astimezone(UTC),
        "planned_sectors": content["planned_sectors"],
        "content_hash": content_hash(content),
    }


def encounter_content(row: EncounterFields) -> EncounterContent:
    """The part of a stored encounter its hash covers (what a phone decides)."""
    return {
        "occurred_at": _iso(row["occurred_at"]),
        "shift_id": str(row["shift_id"]) if row["shift_id"] else None,
        "cell": row["cell"],
        "sector": row["sector"],
        "setting": row["setting"],
        "people": row["people"],
        "age_band": row["age_band"],
        "gender": row["gender"],
        "first_contact": row["first_contact"],
        "ref_hash": row["ref_hash"],
        "kits": row["kits"],
        "services": row["services"],
        "referrals": row["referrals"],
    }


@dataclass
class _Checks:
    """What validating a batch needs from the database, read once."""

    kits: set[str]
    structures: dict[str, str]
    # Kind of each of the sender's stored shifts the batch names.
    stored_shifts: dict[uuid.UUID, str]


class EncounterBuilder:
    """Turns a loaded encounter into the row stored: snapped, hashed, checked."""

    def __init__(self, settings: Settings, now: datetime) -> None:
        self._geography = geography(settings.h3_resolution)
        self._pepper = settings.pepper
        self._earliest = now - timedelta(days=settings.retention_days)
        self._latest = now + CLOCK_SKEW

    def check_time(self, field_name: str, moment: datetime, errors: FieldErrors) -> None:
        if moment > self._latest:
            errors[field_name] = ["This time is in the future; check the phone's clock."]
        elif moment < self._earliest:
            errors[field_name] = ["This is older than the retention period and cannot be stored."]

    def build(
        self,
        item: EncounterItem,
        organisation_id: uuid.UUID,
        user_id: uuid.UUID,
        shift_kind: str,
        kits: set[str],
        structures: dict[str, str],
        kept: KeptFields | None = None,
    ) -> tuple[EncounterRow | None, FieldErrors]:
        """The stored row, or ``None`` and the field errors.

        ``kept`` holds what an amendment without a new location or ref keeps from the
        stored row (``cell``, ``sector``, ``ref_hash``).
        """
        errors: FieldErrors = {}
        if kept is None or item["occurred_at"] != kept["occurred_at"]:
            self.check_time("occurred_at", item["occurred_at"], errors)
        location = item.pop("location", None)
        if location is not None:
            try:
                if "cell" in location:
                    snapped = self._geography.locate_cell(location["cell"])
                else:
                    snapped = self._geography.snap(location["lat"], location["lon"])
            except (InvalidCell, OutsideServiceArea) as exc:
                errors["location"] = [str(exc)]
            del location
        elif kept is not None:
            snapped = Snapped(cell=kept["cell"], sector=kept["sector"])
        else:
            errors["location"] = ["Missing data for required field."]
        unknown_kits = sorted(set(item["kits"]) - kits)
        if unknown_kits:
            errors["kits"] = {code: ["Unknown kit code."] for code in unknown_kits}
        referral_errors: FieldErrors = {}
        for index, referral in enumerate(item["referrals"]):
            code = referral.get("structure")
            if code is not None and structures.get(code) != referral["to"]:
                referral_errors[str(index)] = {
                    "structure": [f"No structure {code!r} of type {referral['to']!r}."]
                }
        if referral_errors:
            errors["referrals"] = referral_errors
        if errors:
            return None, errors

        person: PersonItem = item.get("person") or {}
        alone = item["people"] == 1
        # In UTC, like a shift's times (``shift_row``).
        occurred_at = item["occurred_at"].astimezone(UTC)
        fields: EncounterFields = {
            "shift_id": item.get("shift_id"),
            "shift_kind": shift_kind,
            "occurred_at": occurred_at,
            "local_day": occurred_at.astimezone(PARIS).date(),
            "cell": snapped.cell,
            "sector": snapped.sector,
            "setting": item["setting"],
            "people": item["people"],
            "age_band": person.get("age_band", "unknown") if alone else None,
            "gender": person.get("gender", "unknown") if alone else None,
            "first_contact": person.get("first_contact", False) if alone else None,
            "ref_hash": self._ref_hash(person, alone, kept),
            "kits": {code: n for code, n in sorted(item["kits"].items()) if n > 0},
            "services": sorted(item["services"]),
            "referrals": sorted(
                (
                    {"to": r["to"], "structure": r.get("structure"), "status": r["status"]}
                    for r in item["referrals"]
                ),
                key=lambda r: (r["to"], r["structure"] or "", r["status"]),
            ),
        }
        # Keys in the table's column order.
        row: EncounterRow = {
            "id": item["id"],
            "organisation_id": organisation_id,
            "created_by": user_id,
            **fields,
            "content_hash": content_hash(encounter_content(fields)),
            "record_key": record_key(self._pepper, item["id"]),
        }
        return row, {}

    def _ref_hash(self, person: PersonItem, alone: bool, kept: KeptFields | None) -> str | None:
        if not alone:
            return None
        if person.get("ref"):
            return keyed_hash(self._pepper, "person-ref", person["ref"])
        return kept.get("ref_hash") if kept is not None else None


# Built once, from table columns: these run on every sync, and building a statement and
# going through the ORM's execution cost more than the query (bench/RESULTS.md).
_kits, _structures, _shifts, _encounters = (
    cast(Table, model.__table__) for model in (Kit, Structure, Shift, Encounter)
)
_ACTIVE_KITS = select(_kits.c.code).where(_kits.c.active.is_(True))
_STRUCTURE_TYPES = select(_structures.c.code, _structures.c.destination).where(
    _structures.c.code.in_(bindparam("codes", expanding=True)), _structures.c.active.is_(True)
)
# Each association has its own id space (the key is (organisation, id)): every lookup
# reads the sender's own rows only, so another association's id is a new id.
_STORED_SHIFTS = select(_shifts.c.id, _shifts.c.kind).where(
    _shifts.c.id.in_(bindparam("ids", expanding=True)),
    _shifts.c.organisation_id == bindparam("org"),
)
# Content hash of the sender's rows a batch resends, per table.
_STORED_CONTENT = {
    table.name: select(table.c.id, table.c.content_hash).where(
        table.c.id.in_(bindparam("ids", expanding=True)),
        table.c.organisation_id == bindparam("org"),
    )
    for table in (_shifts, _encounters)
}


def active_kits(session: Session) -> set[str]:
    return {code for (code,) in driver.rows(session, _ACTIVE_KITS, {})}


def structure_types(session: Session, items: list[EncounterItem]) -> dict[str, str]:
    """Destination type of each active structure the items' referrals name."""
    codes = {r["structure"] for item in items for r in item["referrals"] if r.get("structure")}
    if not codes:
        return {}
    rows = session.execute(_STRUCTURE_TYPES, {"codes": list(codes)})
    return dict(rows.all())


def _load_checks(session: Session, batch: SyncBatch, org: uuid.UUID) -> _Checks:
    wanted = {item["id"] for _, item in batch.shifts} | {
        item["shift_id"] for _, item in batch.encounters if item.get("shift_id")
    }
    stored_shifts = (
        dict(session.execute(_STORED_SHIFTS, {"ids": list(wanted), "org": org}).all())
        if wanted
        else {}
    )
    return _Checks(
        kits=active_kits(session),
        structures=structure_types(session, [item for _, item in batch.encounters]),
        stored_shifts=stored_shifts,
    )


def sync(
    session: Session, ctx: CallContext, settings: Settings, batch: SyncBatch, *, atomic: bool
) -> SyncOutcome:
    """Store what is new in ``batch`` and say what became of each item."""
    principal = ctx.principal
    assert principal is not None
    org, user = principal.organisation_id, principal.user_id
    results: dict[tuple[str, int], ItemResult] = dict(batch.rejected)
    builder = EncounterBuilder(settings, utcnow())
    outcome: SyncOutcome | None = None

    with session.begin():
        checks = _load_checks(session, batch, org)
        shift_rows, shift_kinds = _prepare_shifts(batch, checks, builder, org, user, results)
        encounter_rows = _prepare_encounters(
            batch, checks, builder, org, user, shift_kinds, results
        )
        invalid = [key for key, result in results.items() if result.status == "invalid"]
        if atomic and invalid:
            audit.record(
                session,
                ctx,
                "sync",
                outcome=audit.Outcome.INVALID,
                params={
                    "atomic": True,
                    "items": len(results) + len(shift_rows) + len(encounter_rows),
                },
            )
        else:
            _store(session, _shifts, shift_rows, "shift", org, results)
            created = _store(session, _encounters, encounter_rows, "encounter", org, results)
            deltas = Deltas()
            for row in created:
                deltas.add(row)
            change = deltas.apply(session)
            outcome = SyncOutcome(_ordered(results))
            writes.record(
                session,
                ctx,
                "sync",
                change,
                params={"atomic": atomic, **outcome.counts},
                records=outcome.counts["created"],
            )
    if outcome is None:
        errors: dict[str, dict[str, FieldErrors | None]] = {}
        for kind, index in invalid:
            errors.setdefault(f"{kind}s", {})[str(index)] = results[(kind, index)].errors
        raise SyncRejected(f"{len(invalid)} item(s) are invalid; nothing was stored.", errors)
    return outcome


def _prepare_shifts(
    batch: SyncBatch,
    checks: _Checks,
    builder: EncounterBuilder,
    org: uuid.UUID,
    user: uuid.UUID,
    results: dict[tuple[str, int], ItemResult],
) -> tuple[list[tuple[int, ShiftRow]], dict[uuid.UUID, str]]:
    rows: list[tuple[int, ShiftRow]] = []
    # Shift kinds an encounter may refer to: this organisation's stored shifts, then
    # the valid shifts of the batch.
    kinds = dict(checks.stored_shifts)
    for index, item in batch.shifts:
        errors: FieldErrors = {}
        builder.check_time("started_at", item["started_at"], errors)
        builder.check_time("ended_at", item["ended_at"], errors)
        if errors:
            results[("shift", index)] = ItemResult(str(item["id"]), "shift", "invalid", errors)
            continue
        rows.append((index, shift_row(item, org, user)))
        if item["id"] not in checks.stored_shifts:
            kinds.setdefault(item["id"], item["kind"])
    return rows, kinds


def _prepare_encounters(
    batch: SyncBatch,
    checks: _Checks,
    builder: EncounterBuilder,
    org: uuid.UUID,
    user: uuid.UUID,
    shift_kinds: dict[uuid.UUID, str],
    results: dict[tuple[str, int], ItemResult],
) -> list[tuple[int, EncounterRow]]:
    rows = []
    for index, item in batch.encounters:
        shift_id = item.get("shift_id")
        shift_kind = NO_SHIFT
        errors: FieldErrors = {}
        if shift_id is not None:
            if shift_id in shift_kinds:
                shift_kind = shift_kinds[shift_id]
            else:
                errors["shift_id"] = ["Unknown shift: send the shift first or in the same batch."]
        row, build_errors = builder.build(
            item, org, user, shift_kind, checks.kits, checks.structures
        )
        errors.update(build_errors)
        if errors or row is None:
            results[("encounter", index)] = ItemResult(
                str(item["id"]), "encounter", "invalid", errors
            )
            continue
        rows.append((index, row))
    return rows


def _store(
    session: Session,
    table: Table,
    indexed_rows: list[tuple[int, RowT]],
    kind: str,
    org: uuid.UUID,
    results: dict[tuple[str, int], ItemResult],
) -> list[RowT]:
    """Insert the new rows; classify the rest as duplicates or conflicts."""
    first: dict[uuid.UUID, RowT] = {}
    for _, row in indexed_rows:
        first.setdefault(row["id"], row)
    # Sorted ids: concurrent batches take row locks in one order and cannot deadlock.
    # By their integers, the order of UUID's own comparison, without a Python call each.
    unique_rows = [first[key] for key in sorted(first, key=attrgetter("int"))]
    inserted = insert_new(session, table, unique_rows)
    others = set(first) - inserted
    stored: dict[uuid.UUID, str] = {}
    if others:
        rows = session.execute(_STORED_CONTENT[table.name], {"ids": list(others), "org": org})
        stored = dict(rows.all())
    created_ids: set[uuid.UUID] = set()
    for index, row in indexed_rows:
        key = row["id"]
        if key in inserted and key not in created_ids:
            created_ids.add(key)
            results[(kind, index)] = ItemResult(str(key), kind, "created")
            continue
        if stored.get(key, first[key]["content_hash"]) == row["content_hash"]:
            results[(kind, index)] = ItemResult(str(key), kind, "duplicate")
        else:
            results[(kind, index)] = ItemResult(
                str(key),
                kind,
                "conflict",
                {"id": ["Already stored with other content; amend it instead of resending."]},
            )
    return [row for row in unique_rows if row["id"] in created_ids]


def _ordered(results: dict[tuple[str, int], ItemResult]) -> list[ItemResult]:
    order = {"shift": 0, "encounter": 1}
    return [results[key] for key in sorted(results, key=lambda k: (order[k[0]], k[1]))]


def item_id(raw: Any) -> str | None:
    """The id of a raw item, for reporting on an item that failed its schema."""
    if isinstance(raw, dict):
        value = raw.get("id")
        if isinstance(value, str) and len(value) <= 64:
            return value
    return None
