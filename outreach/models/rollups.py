"""Aggregates maintained in the same transaction as every encounter write.

Statistics read these, never the raw encounters. Two long, narrow counter tables
share one shape: a row per day, organisation, sector, shift kind and metric
(``encounters``, ``kit:pipe``, ``referral:assore:accepted``, ...), so a new kit code
needs no migration. ``RollupSector`` holds every metric; ``RollupCell`` adds the
hexagon but holds only the few measures a map draws, which keeps it small.

Each counter carries its ``basis``, the number of encounters it is made of: a count
of 40 syringes may come from two encounters, and small-cell suppression masks on
the basis, not on the value. ``RollupPerson`` is the exact person-day table behind
distinct-people counts. ``ShiftSector`` records where each shift met people, for
coverage.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import Base

NO_SHIFT = "none"


class SectorGrain:
    """The key every daily rollup shares: a day of one organisation in one sector."""

    day: Mapped[date] = mapped_column(primary_key=True, sort_order=-6)
    organisation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, sort_order=-5)
    sector: Mapped[str] = mapped_column(String(32), primary_key=True, sort_order=-4)
    shift_kind: Mapped[str] = mapped_column(String(16), primary_key=True, sort_order=-3)


class Counter:
    """A summed measure and the number of encounters it sums over."""

    metric: Mapped[str] = mapped_column(String(64), primary_key=True, sort_order=-1)
    value: Mapped[int] = mapped_column(BigInteger)
    basis: Mapped[int] = mapped_column(BigInteger)


class RollupSector(SectorGrain, Counter, Base):
    __tablename__ = "rollup_sectors"


class RollupCell(SectorGrain, Counter, Base):
    __tablename__ = "rollup_cells"

    # Before the metric in the key: a map reads a few metrics of many cells.
    cell: Mapped[str] = mapped_column(String(16), primary_key=True, sort_order=-2)


class RollupPerson(SectorGrain, Base):
    __tablename__ = "rollup_people"

    ref_hash: Mapped[str] = mapped_column(String(64), primary_key=True, sort_order=-1)
    encounters: Mapped[int]


class ShiftSector(Base):
    __tablename__ = "shift_sectors"

    shift_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("shifts.id", ondelete="CASCADE"), primary_key=True
    )
    sector: Mapped[str] = mapped_column(String(32), primary_key=True)
    encounters: Mapped[int]
