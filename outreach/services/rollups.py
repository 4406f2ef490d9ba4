"""Keep the aggregates exact: deltas of every encounter write, applied in its transaction.

``Deltas.add`` turns one stored encounter into the counter increments it
contributes; a write adds them, a deletion subtracts them, an amendment does both.
``rebuild`` recomputes everything from the raw rows and must agree with the
increments (a property test checks it).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.orm import Session

from outreach.models import Encounter, RollupCell, RollupPerson, RollupSector, ShiftSector
from outreach.models.dml import add_to_counters

SECTOR_KEY = ("day", "organisation_id", "sector", "shift_kind")
COUNTER_KEY = (*SECTOR_KEY, "metric")
CELL_KEY = (*SECTOR_KEY, "cell", "metric")
PERSON_KEY = (*SECTOR_KEY, "ref_hash")
SHIFT_SECTOR_KEY = ("shift_id", "sector")
COUNTER_VALUES = ("value", "basis")
# The measures a map draws; the hexagon table keeps only these.
MAP_METRICS = ("encounters", "people", "kits", "referrals")
REBUILD_BATCH = 5_000


def metrics(row: Mapping[str, Any]) -> dict[str, int]:
    """The counters one encounter adds to, by metric name, with the amount it adds.

    Each counter's basis grows by one for every encounter that adds to it.
    """
    counts: Counter[str] = Counter({"encounters": 1, "people": row["people"]})
    if row["people"] == 1:
        counts["single"] += 1
        counts[f"age:{row['age_band'] or 'unknown'}"] += 1
        counts[f"gender:{row['gender'] or 'unknown'}"] += 1
        if row["first_contact"]:
            counts["first_contacts"] += 1
    for code, quantity in row["kits"].items():
        if quantity:
            counts[f"kit:{code}"] += quantity
            counts["kits"] += quantity
    for code in row["services"]:
        counts[f"service:{code}"] += 1
    for referral in row["referrals"]:
        counts[f"referral:{referral['to']}:{referral['status']}"] += 1
        # The margins of the destination x status table, with their own exact basis.
        counts[f"referral_to:{referral['to']}"] += 1
        counts[f"referral_status:{referral['status']}"] += 1
        counts["referrals"] += 1
    return dict(counts)


@dataclass
class Deltas:
    """Counter increments gathered over a batch, applied in one go."""

    sectors: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    cells: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    people: Counter[tuple[Any, ...]] = field(default_factory=Counter)
    shift_sectors: Counter[tuple[Any, ...]] = field(default_factory=Counter)

    def add(self, row: Mapping[str, Any], sign: int = 1) -> None:
        grain = (row["local_day"], row["organisation_id"], row["sector"], row["shift_kind"])
        for metric, value in metrics(row).items():
            _bump(self.sectors, (*grain, metric), sign * value, sign)
            if metric in MAP_METRICS:
                _bump(self.cells, (*grain, row["cell"], metric), sign * value, sign)
        if row["ref_hash"]:
            self.people[(*grain, row["ref_hash"])] += sign
        if row["shift_id"] is not None:
            self.shift_sectors[(row["shift_id"], row["sector"])] += sign

    def apply(self, session: Session) -> None:
        _apply(session, RollupSector, COUNTER_KEY, COUNTER_VALUES, self.sectors)
        _apply(session, RollupCell, CELL_KEY, COUNTER_VALUES, self.cells)
        _apply(session, RollupPerson, PERSON_KEY, ("encounters",), _single(self.people))
        _apply(session, ShiftSector, SHIFT_SECTOR_KEY, ("encounters",), _single(self.shift_sectors))


def _bump(
    into: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...], value: int, basis: int
) -> None:
    amounts = into.setdefault(key, [0, 0])
    amounts[0] += value
    amounts[1] += basis


def _single(counter: Counter[tuple[Any, ...]]) -> dict[tuple[Any, ...], list[int]]:
    return {key: [amount] for key, amount in counter.items()}


def _apply(
    session: Session,
    model: type[RollupSector] | type[RollupCell] | type[RollupPerson] | type[ShiftSector],
    key: tuple[str, ...],
    value_columns: tuple[str, ...],
    deltas: Mapping[tuple[Any, ...], list[int]],
) -> None:
    # The last value column counts encounters: a counter whose count reaches zero is empty.
    changes = sorted((k, v) for k, v in deltas.items() if any(v))
    if not changes:
        return
    table = cast(Table, model.__table__)
    # Sorted keys: concurrent transactions lock counter rows in the same order, so
    # they queue instead of deadlocking.
    rows = [
        {**dict(zip(key, k, strict=True)), **dict(zip(value_columns, v, strict=True))}
        for k, v in changes
    ]
    add_to_counters(session, table, key, value_columns, rows)
    emptied = [k for k, v in changes if v[-1] < 0]
    if emptied:
        columns = tuple_(*(table.c[name] for name in key))
        session.execute(delete(table).where(columns.in_(emptied), table.c[value_columns[-1]] <= 0))


# What an encounter write decides; an amendment replaces exactly these columns.
STORED_FIELDS = (
    "shift_id",
    "shift_kind",
    "occurred_at",
    "local_day",
    "cell",
    "sector",
    "setting",
    "people",
    "age_band",
    "gender",
    "first_contact",
    "ref_hash",
    "kits",
    "services",
    "referrals",
    "content_hash",
)


def stored_row(encounter: Encounter) -> dict[str, Any]:
    """A stored encounter as the plain row rollups and content hashes read."""
    row = {name: getattr(encounter, name) for name in STORED_FIELDS}
    row["organisation_id"] = encounter.organisation_id
    return row


@dataclass(frozen=True)
class RebuildSummary:
    encounters: int
    counters: int


def rebuild(session: Session, progress: Callable[[int], None] = lambda _n: None) -> RebuildSummary:
    """Recompute every aggregate from the live raw encounters, inside the caller's transaction."""
    for model in (RollupSector, RollupCell, RollupPerson, ShiftSector):
        session.execute(delete(model))
    seen = 0
    deltas = Deltas()
    for batch in _live_encounters(session):
        for encounter in batch:
            deltas.add(stored_row(encounter))
        seen += len(batch)
        progress(len(batch))
    deltas.apply(session)
    return RebuildSummary(encounters=seen, counters=len(deltas.sectors) + len(deltas.cells))


def _live_encounters(session: Session) -> Iterable[list[Encounter]]:
    after: uuid.UUID | None = None
    while True:
        statement = select(Encounter).where(Encounter.deleted_at.is_(None)).order_by(Encounter.id)
        if after is not None:
            statement = statement.where(Encounter.id > after)
        batch = list(session.scalars(statement.limit(REBUILD_BATCH)))
        if not batch:
            return
        yield batch
        after = batch[-1].id
        session.expunge_all()


def snapshot(session: Session) -> dict[str, dict[tuple[Any, ...], Any]]:
    """Every stored counter, for comparing incremental rollups with a rebuild."""

    def read(
        model: Any, key: tuple[str, ...], values: tuple[str, ...]
    ) -> dict[tuple[Any, ...], Any]:
        table = model.__table__
        columns = (*(table.c[k] for k in key), *(table.c[v] for v in values))
        return {
            tuple(row[: len(key)]): tuple(row[len(key) :])
            for row in session.execute(select(*columns))
        }

    return {
        "sectors": read(RollupSector, COUNTER_KEY, COUNTER_VALUES),
        "cells": read(RollupCell, CELL_KEY, COUNTER_VALUES),
        "people": read(RollupPerson, PERSON_KEY, ("encounters",)),
        "shift_sectors": read(ShiftSector, SHIFT_SECTOR_KEY, ("encounters",)),
    }
