"""Aggregates maintained in the same transaction as every encounter write.

Statistics read these, never the raw encounters. ``RollupCount`` is long and narrow:
one row per day, organisation, sector, hexagon, shift kind and metric (``encounters``,
``kit:pipe``, ``referral:assore:accepted``, ...), so a new kit code needs no migration.
``RollupPerson`` is the exact person-day table behind distinct-people counts.
``ShiftSector`` records in which sectors each shift met people, for coverage.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import Base

NO_SHIFT = "none"


class RollupGrain:
    """The key every daily rollup shares: a day of one organisation in one hexagon."""

    day: Mapped[date] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sector: Mapped[str] = mapped_column(String(32), primary_key=True)
    cell: Mapped[str] = mapped_column(String(16), primary_key=True)
    shift_kind: Mapped[str] = mapped_column(String(16), primary_key=True)


class RollupCount(RollupGrain, Base):
    __tablename__ = "rollup_counts"

    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class RollupPerson(RollupGrain, Base):
    __tablename__ = "rollup_people"

    ref_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    encounters: Mapped[int]


class ShiftSector(Base):
    __tablename__ = "shift_sectors"

    shift_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("shifts.id", ondelete="CASCADE"), primary_key=True
    )
    sector: Mapped[str] = mapped_column(String(32), primary_key=True)
    encounters: Mapped[int]
