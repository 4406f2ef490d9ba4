"""A filtered scope's sums, from the day rows this worker keeps.

A summary, time series or sector map with a sector or shift-kind filter sums the day
rows of the finer tables (``RollupSector``, ``RollupPerson``), which each worker keeps
by organisation and day while they hold (``readmodel``), so it reads only the days
that changed since. The scope's filters pick areas out of the kept rows;
every sum equals the one the tables give (``tests/test_rollups.py`` pins each to its
SQL reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from outreach.services.disclosure import KEY_MASK
from outreach.services.readmodel import ReadModel
from outreach.services.readmodel.numbering import KeyedAreas, Sums
from outreach.services.readmodel.spans import DaySums, Generations
from outreach.services.rollups import MAP_METRICS
from outreach.services.stats.counters import AMOUNTS, AreaSums, Sum, reduced_keys
from outreach.services.stats.scope import Scope, bucket_start

# The key columns of the fine day tables' areas (``readmodel.spans.SECTOR_DAYS``,
# ``PEOPLE_DAYS``).
COUNTER_SECTOR, COUNTER_KIND, COUNTER_METRIC = range(3)
PERSON_REF, PERSON_SECTOR, PERSON_KIND = range(3)


def _filtered(
    keyed: KeyedAreas, size: int, sector_column: int, kind_column: int, scope: Scope
) -> npt.NDArray[np.bool_]:
    """Which of the first ``size`` areas fall in the scope's sector and shift kind."""
    chosen = np.ones(size, dtype=np.bool_)
    for column, wanted in ((sector_column, scope.sector), (kind_column, scope.shift_kind)):
        if wanted is not None:
            chosen &= keyed.codes[column][:size] == keyed.code(column, wanted)
    return chosen


def distinct_people(
    session: Session, scope: Scope, model: ReadModel, current: Generations | None = None
) -> Sum:
    """Distinct person refs met in the scope, and the encounters that carried one,
    from the person-days this worker keeps (any filter)."""
    days = model.people_days(session, scope.start, scope.end, scope.organisation_id, current)
    total, keyed = days.total, days.keyed
    met = _filtered(keyed, len(total), PERSON_SECTOR, PERSON_KIND, scope) & (total[:, 0] > 0)
    refs = keyed.codes[PERSON_REF][: len(total)][met]
    # Ref codes are small integers: counting them beats sorting them.
    present = np.flatnonzero(np.bincount(refs, minlength=1))
    key = int(days.first_keys()[present].sum()) & KEY_MASK
    return Sum(len(present), int(total[met, 0].sum()), key)


class KeptCounters(NamedTuple):
    """The sector counters this worker keeps, summed over a scope's period by area, with
    the rows of each day (``days``); what each area number stands for; and which areas
    the scope's sector and shift-kind filters keep."""

    total: Sums
    keyed: KeyedAreas
    chosen: npt.NDArray[np.bool_]
    days: DaySums

    def by_metric(self) -> dict[str, Sum]:
        """The chosen areas' counters summed per metric, for the metrics they hold."""
        metrics = self.keyed.values[COUNTER_METRIC]
        sums = np.zeros((len(metrics), AMOUNTS), dtype=np.int64)
        codes = self.keyed.codes[COUNTER_METRIC][: len(self.total)]
        np.add.at(sums, codes[self.chosen], self.total[self.chosen])
        sums[:, 2] &= KEY_MASK
        # A stored counter's basis is at least one: a metric of basis 0 has no row left.
        return {
            metrics[code]: Sum(value, basis, key)
            for code, (value, basis, key) in enumerate(sums.tolist())
            if basis
        }

    def by_sector(self) -> AreaSums:
        """The map's measures per sector with any, sorted, like ``area_amounts``."""
        size = len(self.total)
        slots = self._slots(MAP_METRICS)
        sectors = self.keyed.codes[COUNTER_SECTOR][:size]
        amounts = np.zeros(
            (len(self.keyed.values[COUNTER_SECTOR]), len(MAP_METRICS), AMOUNTS), np.int64
        )
        chosen = np.flatnonzero(self.chosen & (slots >= 0) & (self.total[:, 1] > 0))
        np.add.at(amounts, (sectors[chosen], slots[chosen]), self.total[chosen])
        names = self.keyed.values[COUNTER_SECTOR]
        present = sorted(
            (names[code], code) for code in np.flatnonzero(amounts[:, :, 1].sum(axis=1)).tolist()
        )
        rows = [code for _name, code in present]
        return AreaSums(
            [name for name, _code in present],
            reduced_keys(amounts[rows].reshape(len(rows), AMOUNTS * len(MAP_METRICS))),
        )

    def by_bucket(self, metrics: Sequence[str], bucket: str) -> dict[tuple[date, str], Sum]:
        """The chosen areas' ``metrics`` summed per ``bucket`` (day, week, month), by
        the bucket's first day, as ``counter_sums`` by bucket."""
        slots = np.where(self.chosen, self._slots(metrics), -1)
        # The few areas asked for (a sector's shift kinds times the metrics), picked
        # from each day's rows: a year is a thousand days or more.
        wanted = np.flatnonzero(slots >= 0).astype(np.int32)
        found = self.days.picked(wanted)
        days = [day for _span, day, _organisation in self.days.spans]
        starts = {day: bucket_start(day, bucket) for day in set(days)}
        buckets = sorted(set(starts.values()))
        place = {start: index for index, start in enumerate(buckets)}
        # The spans by bucket, then each bucket's run summed at once.
        in_bucket = np.array([place[starts[day]] for day in days], dtype=np.intp)
        order = np.argsort(in_bucket, kind="stable")
        firsts = np.searchsorted(in_bucket[order], np.arange(len(buckets)))
        per_area = np.add.reduceat(found[order], firsts, axis=0) if len(buckets) else found[:0]
        per_metric = np.zeros((len(wanted), len(metrics)), dtype=np.int64)
        per_metric[np.arange(len(wanted)), slots[wanted]] = 1
        amounts = np.einsum("bwm,ws->bsm", per_area, per_metric)
        amounts[:, :, 2] &= KEY_MASK
        return {
            (start, metric): Sum(value, basis, key)
            for start, per_bucket in zip(buckets, amounts.tolist(), strict=True)
            for metric, (value, basis, key) in zip(metrics, per_bucket, strict=True)
            if basis
        }

    def _slots(self, metrics: Sequence[str]) -> npt.NDArray[np.intp]:
        """Each area's place in ``metrics``, or -1 when its metric is not one of them."""
        places = np.full(len(self.keyed.values[COUNTER_METRIC]), -1, dtype=np.intp)
        for slot, metric in enumerate(metrics):
            code = self.keyed.code(COUNTER_METRIC, metric)
            if code >= 0:
                places[code] = slot
        codes: npt.NDArray[np.intp] = places[self.keyed.codes[COUNTER_METRIC][: len(self.total)]]
        return codes


def kept_counters(
    session: Session, scope: Scope, model: ReadModel, current: Generations | None = None
) -> KeptCounters:
    """The scope's sector counters from the day rows this worker keeps (``current``:
    the days' generations, when already read)."""
    days = model.sector_days(session, scope.start, scope.end, scope.organisation_id, current)
    chosen = _filtered(days.keyed, len(days.total), COUNTER_SECTOR, COUNTER_KIND, scope)
    return KeptCounters(days.total, days.keyed, chosen, days)
