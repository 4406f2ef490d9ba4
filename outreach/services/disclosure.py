"""The publication gate: every figure leaving for someone other than its association.

The cell key method (ABS TableBuilder, ONS 2021 census; ``docs/disclosure.md``). Each
encounter has a secret record key (``crypto.record_key``), each person ref a person
key (``crypto.person_key``); a cell's key is the sum modulo 2^32 of the keys of the
records behind it, which the rollups keep beside every count. A figure is published
from its true count and its cell key alone:

- 0 stays 0 (no encounter reveals nobody);
- a count, or a magnitude whose basis, is 1 to k-1 is ``None`` (masked);
- any other is ``count + d``, with ``d`` read from the perturbation table by the count
  and the key: ``|d| <= D``, mean 0, never below k.

The same cell (the same records) always answers the same, whatever the request that
reaches it, so repeating a request or reaching one cell by two paths teaches nothing;
differences of overlapping cells carry the noise of both. An association's own
org_admin gets exact figures (``Gate.exact``): it holds the rows already.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt

from config import Settings
from schemas.vocabulary import DATA_DIR

PTABLE_DIR = DATA_DIR / "ptable"
KEY_MASK = (1 << 32) - 1
METHOD = "cell-key"


class Protection(TypedDict):
    """What every response says about its figures (``schemas.stats.ProtectionSchema``):
    the method, the smallest count published and, when perturbed, the table's bounds."""

    method: str
    k: int
    max_deviation: NotRequired[int]
    variance: NotRequired[float]
    table: NotRequired[str]


@dataclass(frozen=True)
class PerturbationTable:
    """Deviations by row (row ``i < D`` for counts k + i, row ``D`` for the rest), each
    with the upper bounds, in parts of 2^32, of the keys that draw it."""

    name: str
    max_deviation: int
    variance: float
    deviations: tuple[npt.NDArray[np.int64], ...]
    bounds: tuple[npt.NDArray[np.uint64], ...]

    def deviation(self, count: npt.NDArray[np.int64], key: npt.NDArray[np.int64], k: int) -> Any:
        """The deviation of each count from k up, by its cell key."""
        rows = np.minimum(count - k, self.max_deviation)
        unsigned = (key & KEY_MASK).astype(np.uint64)
        found = np.zeros(count.shape, dtype=np.int64)
        for row in range(self.max_deviation + 1):
            at = rows == row
            if at.any():
                drawn = np.searchsorted(self.bounds[row], unsigned[at], side="right")
                found[at] = self.deviations[row][drawn]
        return found


@lru_cache(maxsize=4)
def load_table(name: str) -> PerturbationTable:
    """A table of ``data/ptable/`` (``scripts/make_ptable.py`` writes them)."""
    path = PTABLE_DIR / Path(name).name
    if not path.is_file():
        raise ValueError(f"no perturbation table {name!r} in {PTABLE_DIR}")
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().lstrip("# ").strip()
        parameters = dict(part.split("=") for part in header.split(": ", 1)[1].split())
        rows: dict[int, list[tuple[int, int]]] = {}
        for record in csv.DictReader(handle):
            rows.setdefault(int(record["row"]), []).append(
                (int(record["deviation"]), int(record["parts"]))
            )
    top = int(parameters["max_deviation"])
    if sorted(rows) != list(range(top + 1)):
        raise ValueError(f"perturbation table {name!r} needs rows 0 to {top}")
    deviations, bounds = [], []
    for row in range(top + 1):
        entries = sorted(rows[row])
        if sum(parts for _d, parts in entries) != 1 << 32:
            raise ValueError(f"row {row} of {name!r} does not sum to 2^32")
        deviations.append(np.array([d for d, _parts in entries], dtype=np.int64))
        bounds.append(np.cumsum([parts for _d, parts in entries], dtype=np.uint64)[:-1])
    return PerturbationTable(
        name, top, float(parameters["variance"]), tuple(deviations), tuple(bounds)
    )


@dataclass(frozen=True)
class Gate:
    """How figures leave: perturbed for everyone (``table``), or exact for the
    association's own org_admin (``table`` is ``None``)."""

    k: int
    table: PerturbationTable | None

    @property
    def exact(self) -> bool:
        return self.table is None

    def publish(
        self, values: npt.ArrayLike, bases: npt.ArrayLike, keys: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Published figures and which are masked (their figure is then 0),
        for arrays of true values, the encounters behind each, and their cell keys."""
        value = np.asarray(values, dtype=np.int64)
        basis = np.asarray(bases, dtype=np.int64)
        if self.table is None:
            return value.copy(), np.zeros(value.shape, dtype=np.bool_)
        low = np.minimum(value, basis)
        masked = (low > 0) & (low < self.k)
        published = value.copy()
        shown = low >= self.k
        published[shown] += self.table.deviation(
            value[shown], np.asarray(keys, dtype=np.int64)[shown], self.k
        )
        # Never the true value of a masked figure, even by mistake.
        published[masked] = 0
        return published, masked

    def one(self, value: int, basis: int, key: int) -> int | None:
        published, masked = self.publish([value], [basis], [key])
        return None if masked[0] else int(published[0])

    def protection(self) -> Protection:
        """What every response of this gate says about its figures."""
        if self.table is None:
            return {"method": "exact", "k": self.k}
        return {
            "method": METHOD,
            "k": self.k,
            "max_deviation": self.table.max_deviation,
            "variance": self.table.variance,
            "table": self.table.name,
        }


def gate(settings: Settings, exact: bool) -> Gate:
    return Gate(settings.small_cell_k, None if exact else load_table(settings.perturbation_table))
