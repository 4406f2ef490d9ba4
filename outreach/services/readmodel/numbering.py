"""How a worker numbers the areas of the rows it keeps, so that sums are arrays.

A span's rows are kept as arrays of area numbers and measures (``spans``): summing a
period is then adding arrays at those numbers. Hexagons are numbered by their H3
index; the fine day tables' areas by their key columns joined (``stalingrad|rdr|kit:pipe``,
``<person ref>|eole|maraude``), each key value also coded per column so that a filter
is an array comparison.

A numbering only grows: an area once numbered keeps its number while the numbering
lives. Its owner (``spans.SpanRowsCache``) replaces it by an empty one, with everything
numbered in it, once it holds more areas than the owner may keep rows: areas no longer
met (purged person refs, a past year's hexagons) leave then. Safe across threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Areas = npt.NDArray[np.int32]
Sums = npt.NDArray[np.int64]
# Between the key columns of an area's name: no key value holds it (sectors, shift
# kinds and metrics are codes of a-z 0-9 _ : -, person refs hexadecimal hashes).
AREA_SEPARATOR = "|"


class CellSums(NamedTuple):
    """Hexagons with encounters, sorted, and their measures summed, row by row."""

    cells: list[str]
    measures: Sums


class KeyedAreas(NamedTuple):
    """Every area numbered, by number: the code of each of its key columns, and each
    column's values by code."""

    codes: tuple[npt.NDArray[np.int32], ...]
    values: tuple[list[str], ...]

    def code(self, column: int, value: str) -> int:
        """The code of ``value`` in key column ``column``; -1 when no area holds it."""
        values = self.values[column]
        return values.index(value) if value in values else -1


class AreaNumbering:
    """Numbers of areas by name, given in the order first met."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def numbered(self, names: Sequence[str]) -> Areas:
        """The numbers of the areas ``names``, numbering the new ones."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class HexagonNumbering(AreaNumbering):
    """Hexagons by number; their H3 indexes sorted, with each one's number, to number a
    span's rows at once, and each number's rank in the hexagons' sorted names, to sort
    a map's at once."""

    def __init__(self) -> None:
        super().__init__()
        self._cells: list[str] = []
        self._ids = np.zeros(0, dtype=np.int64)
        self._numbers = np.zeros(0, dtype=np.int32)
        self._rank = np.zeros(0, dtype=np.intp)

    def __len__(self) -> int:
        return len(self._cells)

    def numbered(self, names: Sequence[str]) -> Areas:
        ids = np.array([int(cell, 16) for cell in names], dtype=np.int64)
        with self._lock:
            at = np.searchsorted(self._ids, ids)
            if len(self._ids):
                known = self._ids[np.minimum(at, len(self._ids) - 1)] == ids
            else:
                known = np.zeros(len(ids), dtype=np.bool_)
            if not known.all():
                new = np.unique(ids[~known])
                self._cells.extend(f"{cell:x}" for cell in new.tolist())
                every = np.concatenate((self._ids[np.argsort(self._numbers)], new))
                self._numbers = np.argsort(every).astype(np.int32)
                self._ids = every[self._numbers]
                self._rank = np.empty(len(self._cells), dtype=np.intp)
                self._rank[np.argsort(np.array(self._cells))] = np.arange(len(self._cells))
                at = np.searchsorted(self._ids, ids)
            numbers: Areas = self._numbers[at]
            return numbers

    def present(self, total: Sums, encounters: int) -> CellSums:
        """The hexagons whose measure ``encounters`` is positive in ``total`` (by
        number), sorted by name, and their sums."""
        with self._lock:
            cells, rank = self._cells, self._rank[: len(total)]
        present = np.flatnonzero(total[:, encounters] > 0)
        order = present[np.argsort(rank[present])]
        return CellSums([cells[number] for number in order.tolist()], total[order])


class KeyNumbering(AreaNumbering):
    """Areas named by ``width`` key columns, by number, and the codes of their key
    values; ``first_key`` derives a number from each value of the first column (a
    person ref's person key)."""

    def __init__(self, width: int, first_key: Callable[[str], int] = lambda _value: 0) -> None:
        super().__init__()
        self._numbers: dict[str, int] = {}
        # Per key column: the codes of the areas numbered since ``keyed`` last ran (it
        # adds them to its arrays rather than building them again), each code's value
        # and each value's code.
        self._new_codes: list[list[int]] = [[] for _ in range(width)]
        self._first_key = first_key
        self._first_keys: list[int] = []
        self._first_keys_array = np.zeros(0, dtype=np.int64)
        self._values: list[list[str]] = [[] for _ in range(width)]
        self._value_codes: list[dict[str, int]] = [{} for _ in range(width)]
        self._keyed = KeyedAreas(
            tuple(np.zeros(0, dtype=np.int32) for _ in range(width)),
            tuple([] for _ in range(width)),
        )

    def __len__(self) -> int:
        return len(self._numbers)

    def numbered(self, names: Sequence[str]) -> Areas:
        with self._lock:
            numbers = self._numbers
            numbered = [numbers.get(name, -1) for name in names]
            # A span holds an area once: each name missing is new, and numbered once.
            for index in [index for index, number in enumerate(numbered) if number < 0]:
                numbered[index] = numbers[names[index]] = len(numbers)
                self._code(names[index])
            return np.array(numbered, dtype=np.int32)

    def keyed(self) -> KeyedAreas:
        """What each area number stands for."""
        with self._lock:
            if self._new_codes[0]:
                self._keyed = KeyedAreas(
                    tuple(
                        np.concatenate((codes, np.array(new, dtype=np.int32)))
                        for codes, new in zip(self._keyed.codes, self._new_codes, strict=True)
                    ),
                    tuple(list(values) for values in self._values),
                )
                for new in self._new_codes:
                    new.clear()
            return self._keyed

    def first_keys(self) -> npt.NDArray[np.int64]:
        """The key derived from each value of the first key column, by code."""
        with self._lock:
            if len(self._first_keys_array) != len(self._first_keys):
                self._first_keys_array = np.array(self._first_keys, dtype=np.int64)
            return self._first_keys_array

    def _code(self, name: str) -> None:
        """Record the codes of a newly numbered area's key values."""
        for column, value in enumerate(name.split(AREA_SEPARATOR)):
            code = self._value_codes[column].get(value)
            if code is None:
                code = self._value_codes[column][value] = len(self._values[column])
                self._values[column].append(value)
                if column == 0:
                    self._first_keys.append(self._first_key(value))
            self._new_codes[column].append(code)
