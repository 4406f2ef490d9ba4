"""Keep the aggregates exact: deltas of every encounter write, applied in its transaction.

``Deltas.add`` turns one stored encounter into the counter increments it
contributes; a write adds them, a deletion subtracts them, an amendment does both.
``rebuild`` recomputes everything from the raw rows and must agree with the
increments (a property test checks it).

Person-year bitmaps follow the exact person-day table: a day's bit is set when a
person ref is met that day, and cleared only when the last encounter carrying it
that day is gone (an amendment that moves an encounter between sectors keeps it).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, cast, get_args

from sqlalchemy import Table, bindparam, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from outreach.models import (
    Encounter,
    PersonYear,
    RollupCell,
    RollupCellSpan,
    RollupGeneration,
    RollupPerson,
    RollupSector,
    RollupTotal,
)
from outreach.models.dialect import hold_off_writers
from outreach.models.dml import Upsert, upsert_all
from outreach.models.rollups import DAY_WORDS, DAYS_PER_WORD
from outreach.services import writes
from outreach.services.crypto import person_key, wrap32
from outreach.services.rows import StoredEncounter, StoredField
from outreach.services.writes import GENERATION_ROW, ChangedSpan, CountersChange

SECTOR_KEY = ("day", "organisation_id", "sector", "shift_kind")
COUNTER_KEY = (*SECTOR_KEY, "metric")
CELL_GROUP = (*SECTOR_KEY, "cell")
CELL_KEY = (*CELL_GROUP, "metric")
PERSON_KEY = (*SECTOR_KEY, "ref_hash")
SPAN_KEY = ("span", "start", "organisation_id")
TOTAL_KEY = (*SPAN_KEY, "metric")
CELL_SPAN_KEY = (*SPAN_KEY, "cell")
PERSON_YEAR_KEY = ("year", "organisation_id", "ref_hash")
WORD_MASK = (1 << DAYS_PER_WORD) - 1
COUNTER_VALUES = ("value", "basis", "ckey")
# Cell keys: sums modulo 2^32 (``dml.Upsert.wrapped``).
COUNTER_KEYS = ("ckey",)
# The measures a map draws; the hexagon table keeps only these.
MAP_METRICS = ("encounters", "people", "kits", "referrals")
# The columns of a ``RollupCellSpan`` row holding each map measure's value, basis and
# cell key.
MAP_COLUMNS: dict[str, tuple[str, str, str]] = {
    "encounters": ("encounters", "encounters", "encounters_key"),
    "people": ("people", "encounters", "encounters_key"),
    "kits": ("kits", "kits_basis", "kits_key"),
    "referrals": ("referrals", "referrals_basis", "referrals_key"),
}
CELL_SPAN_KEYS = ("encounters_key", "kits_key", "referrals_key")
# Encounters last: the column that says a row counts nothing any more.
CELL_SPAN_VALUES = (
    "people",
    "kits",
    "kits_basis",
    "referrals",
    "referrals_basis",
    *CELL_SPAN_KEYS,
    "encounters",
)
_SLOT = {name: index for index, name in enumerate(CELL_SPAN_VALUES)}
# A measure adds its basis and key only to columns of its own: encounters are their own
# basis and the basis of people, so those two add their value alone, and people adds
# no key.
_SPAN_SLOTS = {
    metric: (
        _SLOT[value],
        None if basis == "encounters" else _SLOT[basis],
        None if metric == "people" else _SLOT[key],
    )
    for metric, (value, basis, key) in MAP_COLUMNS.items()
}
REBUILD_BATCH = 5_000


def metrics(row: StoredEncounter) -> dict[str, int]:
    """The counters one encounter adds to, by metric name, with the amount it adds.

    Each counter's basis grows by one for every encounter that adds to it.
    """
    people = row["people"]
    counts = {"encounters": 1, "people": people}
    if row["ref_hash"]:
        # The basis of distinct people: the encounters that carried a person ref.
        counts["identified"] = 1
    if people == 1:
        counts["single"] = 1
        counts[f"age:{row['age_band'] or 'unknown'}"] = 1
        counts[f"gender:{row['gender'] or 'unknown'}"] = 1
        if row["first_contact"]:
            counts["first_contacts"] = 1
    kits = 0
    for code, quantity in row["kits"].items():
        if quantity:
            counts[f"kit:{code}"] = quantity
            kits += quantity
    if kits:
        counts["kits"] = kits
    for code in row["services"]:
        _count(counts, f"service:{code}")
    for referral in row["referrals"]:
        _count(counts, f"referral:{referral['to']}:{referral['status']}")
        # The margins of the destination x status table, with their own exact basis.
        _count(counts, f"referral_to:{referral['to']}")
        _count(counts, f"referral_status:{referral['status']}")
    if row["referrals"]:
        counts["referrals"] = len(row["referrals"])
    return counts


def _count(counts: dict[str, int], metric: str) -> None:
    counts[metric] = counts.get(metric, 0) + 1


@dataclass
class Deltas:
    """Counter increments gathered over a batch, applied in one go.

    Sector and hexagon counters are gathered per grain (day, organisation, sector,
    shift kind) and per grain and hexagon, each a dict by metric name: an encounter's
    twenty-odd increments then hash short strings instead of six-part keys holding a
    UUID, whose hash Python computes in Python.
    """

    by_grain: dict[tuple[Any, ...], dict[str, list[int]]] = field(default_factory=dict)
    by_cell: dict[tuple[tuple[Any, ...], str], dict[str, list[int]]] = field(default_factory=dict)
    people: Counter[tuple[Any, ...]] = field(default_factory=Counter)

    def add(self, row: StoredEncounter, sign: int = 1) -> None:
        grain = (row["local_day"], row["organisation_id"], row["sector"], row["shift_kind"])
        in_sector = self.by_grain.get(grain)
        if in_sector is None:
            in_sector = self.by_grain[grain] = {}
        in_cell = self.by_cell.get((grain, row["cell"]))
        if in_cell is None:
            in_cell = self.by_cell[(grain, row["cell"])] = {}
        counts = metrics(row)
        key = sign * row["record_key"]
        for metric, value in counts.items():
            _bump(in_sector, metric, sign * value, sign, key)
        for metric in MAP_METRICS:
            if metric in counts:
                _bump(in_cell, metric, sign * counts[metric], sign, key)
        if row["ref_hash"]:
            self.people[(*grain, row["ref_hash"])] += sign

    @property
    def sectors(self) -> dict[tuple[Any, ...], list[int]]:
        """Sector counters by ``COUNTER_KEY``."""
        return {
            (*grain, metric): amounts
            for grain, counters in self.by_grain.items()
            for metric, amounts in counters.items()
        }

    @property
    def cells(self) -> dict[tuple[Any, ...], list[int]]:
        """Hexagon counters by ``CELL_KEY``."""
        return {
            (*grain, cell, metric): amounts
            for (grain, cell), counters in self.by_cell.items()
            for metric, amounts in counters.items()
        }

    def totals(self) -> dict[tuple[Any, ...], list[int]]:
        """The sector counters summed per organisation over each day, week and month,
        by ``TOTAL_KEY``."""
        return {
            (*span, metric): amounts
            for span, counters in self._span_totals().items()
            for metric, amounts in counters.items()
        }

    def _span_totals(self) -> dict[tuple[Any, ...], dict[str, list[int]]]:
        """The totals per organisation and span, each a dict by metric name.

        Derived from the sector deltas, already summed over the batch, rather than
        bumped per encounter: a fraction of the work for the same numbers.
        """
        daily: dict[tuple[Any, ...], dict[str, list[int]]] = {}
        for (day, organisation_id, _sector, _kind), counters in self.by_grain.items():
            into = daily.setdefault((day, organisation_id), {})
            for metric, (value, basis, key) in counters.items():
                _bump(into, metric, value, basis, key)
        totals: dict[tuple[Any, ...], dict[str, list[int]]] = {}
        for (day, organisation_id), counters in daily.items():
            for span, start in spans_of(day):
                into = totals.setdefault((span, start, organisation_id), {})
                for metric, (value, basis, key) in counters.items():
                    _bump(into, metric, value, basis, key)
        return totals

    def cell_spans(self) -> dict[tuple[Any, ...], list[int]]:
        """The hexagon counters per organisation over each day, week and month, their
        measures side by side in ``CELL_SPAN_VALUES`` order."""
        spans: dict[tuple[Any, ...], list[int]] = {}
        for ((day, organisation_id, _sector, _kind), cell), counters in self.by_cell.items():
            for span, start in spans_of(day):
                amounts = spans.get((span, start, organisation_id, cell))
                if amounts is None:
                    amounts = spans[(span, start, organisation_id, cell)] = [0] * len(_SLOT)
                for metric, (value, basis, key) in counters.items():
                    value_slot, basis_slot, key_slot = _SPAN_SLOTS[metric]
                    amounts[value_slot] += value
                    if basis_slot is not None:
                        amounts[basis_slot] += basis
                    if key_slot is not None:
                        amounts[key_slot] += key
        return spans

    def apply(self, session: Session) -> CountersChange:
        """Write every change; the upserts travel together (one round trip on PostgreSQL).

        What changed: the caller hands it to ``writes.record``, last in its transaction,
        which cannot commit before."""
        return writes.changed(session, self._write(session))

    def _write(self, session: Session) -> set[ChangedSpan]:
        """``apply`` without the change pending: the spans whose counters changed."""
        cell_spans = self.cell_spans()
        by_cell = {(*grain, cell): counters for (grain, cell), counters in self.by_cell.items()}
        counters = [
            _CounterChange.by_metric(RollupSector, SECTOR_KEY, self.by_grain),
            _CounterChange.by_metric(RollupCell, CELL_GROUP, by_cell),
            _CounterChange.by_metric(RollupTotal, SPAN_KEY, self._span_totals()),
            _CounterChange.of(
                RollupCellSpan, CELL_SPAN_KEY, CELL_SPAN_VALUES, cell_spans, CELL_SPAN_KEYS
            ),
            _CounterChange.of(RollupPerson, PERSON_KEY, ("encounters",), _single(self.people)),
        ]
        gained, lost = _person_day_changes(self.people)
        upsert_all(session, [change.upsert for change in counters] + [_days_to_set(gained)])
        for change in counters:
            change.delete_emptied(session)
        gone = _no_longer_met(session, lost) if lost else set()
        if gone:
            _clear_days(session, gone)
        return self._spans_changed(cell_spans)

    def _spans_changed(self, cell_spans: Mapping[tuple[Any, ...], list[int]]) -> set[ChangedSpan]:
        """Each organisation's day, week and month whose counters change: what a worker
        keeps of their hexagon spans, sector counters and person-days no longer holds."""
        changed = {key[:3] for key, amounts in cell_spans.items() if any(amounts)}
        days = {
            grain[:2]
            for grain, counters in self.by_grain.items()
            if any(any(amounts) for amounts in counters.values())
        }
        days.update(key[:2] for key, amount in self.people.items() if amount)
        changed.update(
            (span, start, organisation_id)
            for day, organisation_id in days
            for span, start in spans_of(day)
        )
        return cast(set[ChangedSpan], changed)


def generation(session: Session) -> int:
    """The counters' generation: a token every committed change of them replaces
    (``writes``); 0 before the first."""
    number = session.scalar(
        select(RollupGeneration.generation).where(RollupGeneration.id == GENERATION_ROW)
    )
    return int(number or 0)


def spans_of(day: date) -> tuple[tuple[str, date], ...]:
    """The day, the week (from Monday) and the calendar month ``day`` counts in."""
    return (
        ("day", day),
        ("week", day - timedelta(days=day.weekday())),
        ("month", day.replace(day=1)),
    )


def _bump(into: dict[Any, list[int]], name: Any, value: int, basis: int, key: int) -> None:
    amounts = into.get(name)
    if amounts is None:
        into[name] = [value, basis, key]
    else:
        amounts[0] += value
        amounts[1] += basis
        amounts[2] += key


def _single(counter: Counter[tuple[Any, ...]]) -> dict[tuple[Any, ...], list[int]]:
    return {key: [amount] for key, amount in counter.items()}


@dataclass(frozen=True)
class _CounterChange:
    """The upsert of one counter table's deltas, and the keys whose count may reach zero."""

    upsert: Upsert
    emptied: list[tuple[Any, ...]]
    # The column counting encounters: a row whose count reaches zero is empty.
    count_column: str

    @classmethod
    def of(
        cls,
        model: type[RollupSector | RollupCell | RollupTotal | RollupCellSpan | RollupPerson],
        key: tuple[str, ...],
        value_columns: tuple[str, ...],
        deltas: Mapping[tuple[Any, ...], list[int]],
        wrapped: tuple[str, ...] = (),
        count_column: str | None = None,
    ) -> _CounterChange:
        # Sorted keys: concurrent transactions lock counter rows in the same order, so
        # they queue instead of deadlocking.
        changes = sorted((k, v) for k, v in deltas.items() if any(v))
        columns = (*key, *value_columns)
        rows = [dict(zip(columns, (*k, *v), strict=True)) for k, v in changes]
        for row in rows:
            for name in wrapped:
                row[name] = wrap32(row[name])
        upsert = Upsert(cast(Table, model.__table__), key, value_columns, rows, "add", wrapped)
        # ``count_column`` (by default the last) counts encounters: a counter whose count
        # reaches zero is empty.
        count = count_column or value_columns[-1]
        at = value_columns.index(count)
        return cls(upsert, [k for k, v in changes if v[at] < 0], count)

    @classmethod
    def by_metric(
        cls,
        model: type[RollupSector | RollupCell | RollupTotal],
        group_columns: tuple[str, ...],
        groups: Mapping[tuple[Any, ...], Mapping[str, list[int]]],
    ) -> _CounterChange:
        """``of`` for counters gathered per group of key columns, by metric name.

        The same rows in the same order, built a group at a time: sorting the groups
        and then each group's names costs a fraction of sorting every full key, and a
        row is its group's columns with three more.
        """
        rows: list[dict[str, Any]] = []
        emptied: list[tuple[Any, ...]] = []
        for group in sorted(groups):
            counters = groups[group]
            columns = dict(zip(group_columns, group, strict=True))
            for metric in sorted(counters):
                value, basis, ckey = counters[metric]
                if value or basis or ckey:
                    rows.append(
                        {
                            **columns,
                            "metric": metric,
                            "value": value,
                            "basis": basis,
                            "ckey": wrap32(ckey),
                        }
                    )
                    if basis < 0:
                        emptied.append((*group, metric))
        key = (*group_columns, "metric")
        upsert = Upsert(
            cast(Table, model.__table__), key, COUNTER_VALUES, rows, "add", COUNTER_KEYS
        )
        return cls(upsert, emptied, "basis")

    def delete_emptied(self, session: Session) -> None:
        if not self.emptied:
            return
        table, key = self.upsert.table, self.upsert.key_columns
        count = table.c[self.count_column]
        columns = tuple_(*(table.c[name] for name in key))
        session.execute(delete(table).where(columns.in_(self.emptied), count <= 0))


def day_bit(day: date) -> tuple[int, int]:
    """The word and the bit of that word that stand for ``day`` in its year's bitmap."""
    word, bit = divmod(day.timetuple().tm_yday - 1, DAYS_PER_WORD)
    return word, 1 << bit


def year_masks(start: date, end: date) -> dict[int, tuple[int, ...]]:
    """Per year, the words of a bitmap with the bits of the days ``start..end`` set."""
    masks: dict[int, tuple[int, ...]] = {}
    for year in range(start.year, end.year + 1):
        first = max(start, date(year, 1, 1)).timetuple().tm_yday - 1
        last = min(end, date(year, 12, 31)).timetuple().tm_yday - 1
        span = ((1 << (last - first + 1)) - 1) << first
        masks[year] = tuple(
            (span >> (index * DAYS_PER_WORD)) & WORD_MASK for index in range(len(DAY_WORDS))
        )
    return masks


PersonDay = tuple[date, Any, str]


def _person_day_changes(
    people: Mapping[tuple[Any, ...], int],
) -> tuple[list[PersonDay], set[PersonDay]]:
    """Person-days newly met, and those whose count fell (perhaps to nothing)."""
    net: Counter[PersonDay] = Counter()
    for (day, organisation_id, _sector, _kind, ref_hash), amount in people.items():
        net[(day, organisation_id, ref_hash)] += amount
    gained = [key for key, amount in net.items() if amount > 0]
    return gained, {key for key, amount in net.items() if amount < 0}


def _no_longer_met(session: Session, fallen: set[PersonDay]) -> set[PersonDay]:
    """The person-days of ``fallen`` no encounter carries any more."""
    person_day = tuple_(RollupPerson.day, RollupPerson.organisation_id, RollupPerson.ref_hash)
    remaining = {
        tuple(row)
        for row in session.execute(
            select(RollupPerson.day, RollupPerson.organisation_id, RollupPerson.ref_hash)
            .where(person_day.in_(list(fallen)))
            .distinct()
        )
    }
    return fallen - remaining


def person_year_bits(days: Iterable[PersonDay]) -> dict[tuple[Any, ...], list[int]]:
    """``(day, organisation, ref)`` person-days as words per ``(year, organisation, ref)``."""
    words: dict[tuple[Any, ...], list[int]] = {}
    for day, organisation_id, ref_hash in days:
        word, bit = day_bit(day)
        words.setdefault((day.year, organisation_id, ref_hash), [0] * len(DAY_WORDS))[word] |= bit
    return words


def _days_to_set(days: Iterable[PersonDay]) -> Upsert:
    # The person key or-ed into itself stays what it is.
    rows = [
        {
            **dict(zip(PERSON_YEAR_KEY, key, strict=True)),
            **dict(zip(DAY_WORDS, words, strict=True)),
            "person_key": person_key(key[-1]),
        }
        for key, words in sorted(person_year_bits(days).items())
    ]
    return Upsert(
        cast(Table, PersonYear.__table__),
        PERSON_YEAR_KEY,
        (*DAY_WORDS, "person_key"),
        rows,
        "or",
    )


def _clear_days(session: Session, days: Iterable[PersonDay]) -> None:
    table = cast(Table, PersonYear.__table__)
    clear = (
        update(table)
        .where(*(table.c[name] == bindparam(f"key_{name}") for name in PERSON_YEAR_KEY))
        .values({word: table.c[word].bitwise_and(bindparam(f"keep_{word}")) for word in DAY_WORDS})
    )
    changes = sorted(person_year_bits(days).items())
    session.execute(
        clear,
        [
            {
                **{f"key_{name}": value for name, value in zip(PERSON_YEAR_KEY, key, strict=True)},
                **{
                    f"keep_{word}": WORD_MASK & ~bits
                    for word, bits in zip(DAY_WORDS, words, strict=True)
                },
            }
            for key, words in changes
        ],
    )
    session.execute(
        delete(table).where(
            tuple_(*(table.c[name] for name in PERSON_YEAR_KEY)).in_([key for key, _ in changes]),
            *(table.c[word] == 0 for word in DAY_WORDS),
        )
    )


# What an encounter write decides; an amendment replaces exactly these columns.
STORED_FIELDS: tuple[StoredField, ...] = get_args(StoredField)


def stored_row(encounter: Encounter) -> StoredEncounter:
    """A stored encounter as the plain row rollups and content hashes read."""
    row: dict[str, Any] = {name: getattr(encounter, name) for name in STORED_FIELDS}
    row["organisation_id"] = encounter.organisation_id
    row["record_key"] = encounter.record_key
    # Safe: the keys are exactly ``StoredEncounter``'s (``rows`` checks ``STORED_FIELDS``
    # against ``StoredFields``), each value the model's column of that name, of the type
    # the row declares; ``referrals``, a JSON column, holds the ``Referral`` dicts
    # ``EncounterBuilder.build`` made.
    return cast(StoredEncounter, row)


@dataclass(frozen=True)
class RebuildSummary:
    encounters: int
    counters: int
    # For ``writes.record``.
    change: CountersChange


# What every writer of the counters writes first, in this order: a sync's shifts, then
# any writer's encounters, and only then counter rows, span generations, the counters'
# generation, the chain lock (``writes``).
_WRITERS_FIRST_TABLES = ("shifts", "encounters")


def lock_out_writers(session: Session) -> None:
    """Make the caller's transaction the only writer of the counters until it ends.

    On PostgreSQL, a ``SHARE`` lock on the tables every counter writer writes first:
    it waits for the writers already past them to commit, and a writer arriving later
    waits there, before it holds any counter row, span generation or the chain lock.
    A rebuild that instead deleted and rewrote the counters beside live syncs held rows
    they needed while they held rows it needed: a deadlock, one side aborted. Reads go
    on. On SQLite the caller's immediate transaction already excludes every writer.
    """
    hold_off_writers(session, _WRITERS_FIRST_TABLES)


def rebuild(session: Session, progress: Callable[[int], None] = lambda _n: None) -> RebuildSummary:
    """Recompute every aggregate from the live raw encounters, inside the caller's
    transaction, with writers held off (``lock_out_writers``) until it commits; its
    change (every span) goes to ``writes.record``."""
    lock_out_writers(session)
    for model in (
        RollupSector,
        RollupCell,
        RollupTotal,
        RollupCellSpan,
        RollupPerson,
        PersonYear,
    ):
        session.execute(delete(model))
    seen = 0
    deltas = Deltas()
    for batch in _live_encounters(session):
        for encounter in batch:
            deltas.add(stored_row(encounter))
        seen += len(batch)
        progress(len(batch))
    spans = deltas._write(session)
    counters = (deltas.sectors, deltas.cells, deltas.totals(), deltas.cell_spans())
    # Every span changes, refilled or emptied, even with no encounter left.
    change = writes.changed(session, spans, before=date.max)
    return RebuildSummary(encounters=seen, counters=sum(map(len, counters)), change=change)


def live_encounters(session: Session) -> int:
    """How many encounters a rebuild reads (those not deleted)."""
    count = session.scalar(select(func.count()).where(Encounter.deleted_at.is_(None)))
    return int(count or 0)


def _live_encounters(session: Session) -> Iterable[list[Encounter]]:
    # In key order, the whole key: two associations may hold the same id.
    key = tuple_(Encounter.organisation_id, Encounter.id)
    after: tuple[uuid.UUID, uuid.UUID] | None = None
    while True:
        statement = (
            select(Encounter)
            .where(Encounter.deleted_at.is_(None))
            .order_by(Encounter.organisation_id, Encounter.id)
        )
        if after is not None:
            statement = statement.where(key > tuple_(*after))
        batch = list(session.scalars(statement.limit(REBUILD_BATCH)))
        if not batch:
            return
        yield batch
        after = (batch[-1].organisation_id, batch[-1].id)
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
        "totals": read(RollupTotal, TOTAL_KEY, COUNTER_VALUES),
        "cell_spans": read(RollupCellSpan, CELL_SPAN_KEY, CELL_SPAN_VALUES),
        "people": read(RollupPerson, PERSON_KEY, ("encounters",)),
        "person_years": read(PersonYear, PERSON_YEAR_KEY, (*DAY_WORDS, "person_key")),
    }
