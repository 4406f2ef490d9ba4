"""What teams record: shifts (maraudes) and encounters, as stored after anonymisation.

No coordinate, name or free text is a column here: a position arrives, is snapped to
an H3 cell and a sector, and is dropped; a person ref is kept only as a keyed hash.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import Base, UTCDateTime, utcnow


class Shift(Base):
    """A shift is its association's: the key is (organisation, client id), so another
    association's ids are new ids here, never a conflict or a takeover."""

    __tablename__ = "shifts"
    __table_args__ = (PrimaryKeyConstraint("organisation_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    planned_sectors: Mapped[list[str]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Encounter(Base):
    """An encounter is its association's: the key is (organisation, client id), so
    another association's ids are new ids here, never a conflict or a takeover. Its
    shift, if any, is one of its own association's."""

    __tablename__ = "encounters"
    __table_args__ = (
        PrimaryKeyConstraint("organisation_id", "id"),
        ForeignKeyConstraint(
            ["organisation_id", "shift_id"],
            ["shifts.organisation_id", "shifts.id"],
            ondelete="RESTRICT",
        ),
        Index("ix_encounters_organisation_day", "organisation_id", "local_day"),
        Index("ix_encounters_shift", "organisation_id", "shift_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), primary_key=True
    )
    created_by: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    shift_id: Mapped[uuid.UUID | None]
    # Copied from the shift so rollups need no join.
    shift_kind: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The Paris calendar day of occurred_at: what filters and rollups group by.
    local_day: Mapped[date]
    cell: Mapped[str] = mapped_column(String(16))
    sector: Mapped[str] = mapped_column(String(32))
    setting: Mapped[str] = mapped_column(String(16))
    people: Mapped[int]
    age_band: Mapped[str | None] = mapped_column(String(8))
    gender: Mapped[str | None] = mapped_column(String(8))
    first_contact: Mapped[bool | None]
    ref_hash: Mapped[str | None] = mapped_column(String(64))
    kits: Mapped[dict[str, int]] = mapped_column(JSON)
    services: Mapped[list[str]] = mapped_column(JSON)
    referrals: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    # Secret, fixed when first stored, kept through amendments: what the cell keys of
    # published figures are summed from (``crypto.record_key``).
    record_key: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_reason: Mapped[str | None] = mapped_column(String(32))


class EncounterVersion(Base):
    """A stored content an amendment or deletion replaced, kept for the record."""

    __tablename__ = "encounter_versions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organisation_id", "encounter_id"],
            ["encounters.organisation_id", "encounters.id"],
            ondelete="CASCADE",
        ),
        Index("ix_encounter_versions_encounter", "organisation_id", "encounter_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    organisation_id: Mapped[uuid.UUID]
    encounter_id: Mapped[uuid.UUID]
    version: Mapped[int]
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    change: Mapped[str] = mapped_column(String(16))
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    replaced_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
