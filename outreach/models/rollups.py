"""Aggregates maintained in the same transaction as every encounter write.

Statistics read these, never the raw encounters. Two long, narrow counter tables
share one shape: a row per day, organisation, sector, shift kind and metric
(``encounters``, ``kit:pipe``, ``referral:assore:accepted``, ...), so a new kit code
needs no migration. ``RollupSector`` holds every metric; ``RollupCell`` adds the
hexagon but holds only the few measures a map draws, which keeps it small.

Each counter carries its ``basis``, the number of encounters it is made of: a count
of 40 syringes may come from two encounters, and publication masks on
the basis, not on the value. ``RollupPerson`` is the exact person-day table behind
distinct-people counts.

Those tables grow with the days, sectors and shift kinds a period spans, which is
every row of a busy year. Two more answer the unfiltered and organisation-filtered
questions at a cost that does not grow with the data: ``RollupTotal`` holds the same
counters per organisation over a day, a week (from Monday) or a calendar month, so a
year is twelve months and a few edge weeks and days; ``PersonYear`` holds, per person
ref, organisation and year, the days the person was met as a bitmap, so distinct people
over any period is one row per person read, with no day rows at all. ``RollupCellSpan``
does for maps what ``RollupTotal`` does for totals: the map's measures per organisation
and hexagon over a day, a week or a month, side by side in one row.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import Base

NO_SHIFT = "none"
# A year's days as bits of six signed 64-bit integers, 61 days each, so every word
# stays positive and the same bitwise SQL works on PostgreSQL and SQLite.
DAYS_PER_WORD = 61
DAY_WORDS = ("days_0", "days_1", "days_2", "days_3", "days_4", "days_5")


class SectorGrain:
    """The key every daily rollup shares: a day of one organisation in one sector."""

    day: Mapped[date] = mapped_column(primary_key=True, sort_order=-6)
    organisation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, sort_order=-5)
    sector: Mapped[str] = mapped_column(String(32), primary_key=True, sort_order=-4)
    shift_kind: Mapped[str] = mapped_column(String(16), primary_key=True, sort_order=-3)


class Counter:
    """A summed measure, the number of encounters it sums over, and its cell key: the
    sum of those encounters' record keys modulo 2^32, kept as a signed 32-bit integer
    (``services/disclosure.py``)."""

    metric: Mapped[str] = mapped_column(String(64), primary_key=True, sort_order=-1)
    value: Mapped[int] = mapped_column(BigInteger)
    basis: Mapped[int] = mapped_column(BigInteger)
    ckey: Mapped[int] = mapped_column(Integer, default=0)


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


class RollupTotal(Counter, Base):
    """Counters of one organisation over a ``span`` (``day``, ``week`` or ``month``) from
    ``start``."""

    __tablename__ = "rollup_totals"
    # Time series read a few metrics over many days: without this, every metric of
    # every day in the period.
    __table_args__ = (Index("ix_rollup_totals_series", "metric", "span", "start"),)

    span: Mapped[str] = mapped_column(String(8), primary_key=True, sort_order=-6)
    start: Mapped[date] = mapped_column(primary_key=True, sort_order=-5)
    organisation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, sort_order=-4)


class RollupCellSpan(Base):
    """The map's measures of one organisation in one hexagon over a ``span`` (``day``,
    ``week`` or ``month``) from ``start``.

    A whole-area map of a year then reads eleven months and a few edge weeks and days
    per hexagon, not 365 days of every sector and shift kind; its measures sit side by
    side, so one row per hexagon and span instead of one per measure. People and
    encounters share a basis (every encounter adds people), so only kits and
    referrals carry their own.
    """

    __tablename__ = "rollup_cell_spans"

    span: Mapped[str] = mapped_column(String(8), primary_key=True)
    start: Mapped[date] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    cell: Mapped[str] = mapped_column(String(16), primary_key=True)
    # 32 bits: one organisation's counts in one hexagon over a month stay far below 2^31,
    # and PostgreSQL sums integers in a machine word but bigints as numerics (migration
    # 0008: a year's map sums hundreds of thousands of these rows).
    people: Mapped[int] = mapped_column(Integer)
    kits: Mapped[int] = mapped_column(Integer)
    kits_basis: Mapped[int] = mapped_column(Integer)
    referrals: Mapped[int] = mapped_column(Integer)
    referrals_basis: Mapped[int] = mapped_column(Integer)
    # Cell keys of the encounters behind each basis (people share the encounters').
    encounters_key: Mapped[int] = mapped_column(Integer, default=0)
    kits_key: Mapped[int] = mapped_column(Integer, default=0)
    referrals_key: Mapped[int] = mapped_column(Integer, default=0)
    encounters: Mapped[int] = mapped_column(Integer)


class RollupSpanGeneration(Base):
    """A token every change of one organisation's counters over one ``span`` from
    ``start`` replaces, in the transaction that changes them (``services/writes.py``):
    what a worker read of that span's rows stays true while it is the same
    (``services/readmodel``). Tokens are drawn at random, so a value names one state of
    the span, even across a restore of the database."""

    __tablename__ = "rollup_span_generations"

    span: Mapped[str] = mapped_column(String(8), primary_key=True)
    start: Mapped[date] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)


class RollupGeneration(Base):
    """One row whose token every change of the counters replaces, in the transaction
    that changes them (``services/writes.py``): what was published from the counters
    stays true while it is the same."""

    __tablename__ = "rollup_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger)


class PersonYear(Base):
    """The days of a year one organisation met one person ref: bit ``d`` of the words
    is day-of-year ``d`` (from 0)."""

    __tablename__ = "rollup_person_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    organisation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ref_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    days_0: Mapped[int] = mapped_column(BigInteger)
    days_1: Mapped[int] = mapped_column(BigInteger)
    days_2: Mapped[int] = mapped_column(BigInteger)
    days_3: Mapped[int] = mapped_column(BigInteger)
    days_4: Mapped[int] = mapped_column(BigInteger)
    days_5: Mapped[int] = mapped_column(BigInteger)
    # The ref's person key (``crypto.person_key``): the same in every row of one ref.
    person_key: Mapped[int] = mapped_column(Integer, default=0)
