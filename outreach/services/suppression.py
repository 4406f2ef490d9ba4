"""Small-cell suppression: the one gate every published count goes through.

A count is *primary*-masked when it is based on fewer than k encounters (its value
or its basis lies in 1..k-1). Masking one cell is not enough when the cell belongs
to a sum an outsider knows: with a published total and every other term published,
the masked one is a subtraction away. So each release declares its arithmetic as
equations (the cells of a row, a column or a map sum to a total, published in the
same table or known from another response), and *complementary* suppression masks
more cells until no masked count can be computed from published ones:

1. no equation has exactly one masked member (the classic rule), and
2. no masked count is determined by any combination of equations: a masked count
   is recoverable exactly when its unit vector lies in the row space of the
   equations restricted to the masked counts, which Gaussian elimination decides.

Complements are the smallest non-zero published member of an equation that leaks
(ties broken by path, so a release is deterministic), which loses the least
information. A zero is published: it says no encounter, and reveals nobody.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Equation:
    """``total = sum(cells)``; ``total`` is ``None`` when known from outside the release."""

    cells: tuple[str, ...]
    total: str | None = None

    @property
    def members(self) -> tuple[str, ...]:
        return self.cells if self.total is None else (*self.cells, self.total)


@dataclass(frozen=True)
class Published:
    """Counts as they may leave the server: masked ones are ``None`` and listed."""

    values: Mapping[str, int | None]
    suppressed: tuple[str, ...]

    def __getitem__(self, path: str) -> int | None:
        return self.values[path]

    def is_masked(self, path: str) -> bool:
        return self.values[path] is None


@dataclass
class Release:
    """Counts about to be published, and the sums an outsider could use against them."""

    k: int
    values: dict[str, int] = field(default_factory=dict)
    bases: dict[str, int] = field(default_factory=dict)
    equations: list[Equation] = field(default_factory=list)
    followers: dict[str, list[str]] = field(default_factory=dict)

    def count(self, path: str, value: int, basis: int | None = None) -> str:
        """Add one count; ``basis`` is the number of encounters behind it (``value`` if equal)."""
        if path in self.values:
            raise ValueError(f"count {path!r} given twice")
        self.values[path] = value
        self.bases[path] = value if basis is None else basis
        return path

    def adds_up(self, cells: Iterable[str], total: str | None = None) -> None:
        """Declare that ``cells`` sum to ``total`` (or to a total known elsewhere)."""
        equation = Equation(tuple(cells), total)
        unknown = [p for p in equation.members if p not in self.values]
        if unknown:
            raise ValueError(f"equation names unknown counts {unknown}")
        # A lone cell with an outside total *is* that total: it is masked exactly when
        # the total is, so the equation protects nothing.
        if len(equation.members) > 1:
            self.equations.append(equation)

    def masked_with(self, leader: str, followers: Iterable[str]) -> None:
        """When ``leader`` is masked, mask ``followers`` too (a map cell hides all its counts)."""
        self.followers.setdefault(leader, []).extend(followers)

    def publish(self) -> Published:
        masked = {path for path in self.values if self._primary(path)}
        while self._follow(masked) | self._complete_equations(masked) or self._unpin(masked):
            pass
        values = {path: (None if path in masked else value) for path, value in self.values.items()}
        return Published(values=values, suppressed=tuple(sorted(masked)))

    def _primary(self, path: str) -> bool:
        smallest = min(self.values[path], self.bases[path])
        return 0 < smallest < self.k

    def _follow(self, masked: set[str]) -> bool:
        """Hide the followers of every masked leader; say whether anything changed."""
        before = len(masked)
        for leader, followers in self.followers.items():
            if leader in masked:
                masked.update(followers)
        return len(masked) > before

    def _complete_equations(self, masked: set[str]) -> bool:
        """Give every equation with a lone masked member a complement."""
        changed = False
        for equation in self.equations:
            if sum(member in masked for member in equation.members) == 1:
                changed |= self._mask_complement(equation, masked)
        return changed

    def _unpin(self, masked: set[str]) -> bool:
        """Mask one more count if equations combined still pin a masked one down."""
        recoverable = _recoverable(self.equations, masked)
        if not recoverable:
            return False
        for equation in self.equations:
            if recoverable.intersection(equation.members) and self._mask_complement(
                equation, masked
            ):
                return True
        # Every equation around the recoverable counts is fully masked: widen to any
        # equation touching a masked count.
        for equation in self.equations:
            if masked.intersection(equation.members) and self._mask_complement(equation, masked):
                return True
        # With everything masked a count can still follow from totals declared as known
        # outside the release: then the outside world knows it already, and masking more
        # here cannot hide it. Releases should not declare such totals (see stats).
        return False

    def _mask_complement(self, equation: Equation, masked: set[str]) -> bool:
        candidates = [m for m in equation.members if m not in masked]
        if not candidates:
            return False
        non_zero = [m for m in candidates if self.values[m] != 0] or candidates
        masked.add(min(non_zero, key=lambda m: (self.values[m], m)))
        return True


def _recoverable(equations: list[Equation], masked: set[str]) -> set[str]:
    """The masked counts that some combination of the equations pins down exactly.

    Only equations linked through a shared masked count can combine into something
    new: a lone equation with two or more masked members pins nothing. So elimination
    runs per group of linked equations, and a map's independent sums skip it.
    """
    rows: list[dict[str, int]] = []
    for equation in equations:
        row = {cell: 1 for cell in equation.cells if cell in masked}
        if equation.total is not None and equation.total in masked:
            row[equation.total] = -1
        if row:
            rows.append(row)
    found: set[str] = set()
    for group in _linked(rows):
        if len(group) > 1:
            exact = [{var: Fraction(c) for var, c in row.items()} for row in group]
            found.update(next(iter(row)) for row in _reduced(exact) if len(row) == 1)
        elif len(group[0]) == 1:
            found.update(group[0])
    return found


def _linked(rows: list[dict[str, int]]) -> list[list[dict[str, int]]]:
    """Rows grouped so that rows sharing a variable, directly or not, are together."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for index, row in enumerate(rows):
        for var in row:
            if var in owner:
                parent[root(index)] = root(owner[var])
            else:
                owner[var] = index
    groups: dict[int, list[dict[str, int]]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(root(index), []).append(row)
    return list(groups.values())


def _reduced(rows: list[dict[str, Fraction]]) -> list[dict[str, Fraction]]:
    """The reduced row echelon form of sparse rows (zeros dropped)."""
    reduced: list[tuple[str, dict[str, Fraction]]] = []
    for original in rows:
        row = dict(original)
        for pivot, pivot_row in reduced:
            factor = row.get(pivot)
            if factor:
                _subtract(row, pivot_row, factor)
        if not row:
            continue
        pivot = min(row)
        scale = row[pivot]
        row = {var: coefficient / scale for var, coefficient in row.items()}
        for index, (other_pivot, other_row) in enumerate(reduced):
            factor = other_row.get(pivot)
            if factor:
                _subtract(other_row, row, factor)
                reduced[index] = (other_pivot, other_row)
        reduced.append((pivot, row))
    return [row for _pivot, row in reduced]


def _subtract(row: dict[str, Fraction], other: Mapping[str, Fraction], factor: Fraction) -> None:
    for var, coefficient in other.items():
        updated = row.get(var, Fraction(0)) - factor * coefficient
        if updated:
            row[var] = updated
        else:
            row.pop(var, None)


def publish_areas(
    k: int,
    areas: Sequence[str],
    measures: Sequence[str],
    leader: str,
    amounts: npt.ArrayLike,
) -> npt.NDArray[np.bool_]:
    """Which counts of a map a ``Release`` of it masks, computed without building one.

    A map's arithmetic is fixed: each area's row of ``amounts`` gives the value then the
    basis of each of ``measures`` in turn, all hidden with its ``leader``, and each
    measure summed over the areas is a total published elsewhere. So its counts are
    paths ``"{area}.{measure}"``, the leader's masked with it, and one equation per
    measure. Such equations share no count, so no combination of them pins a masked
    count beyond what the classic rule catches, and ``Release.publish`` reduces to
    following leaders and completing lone masked members, in the same order, with the
    same complements; a property test holds the two to the same answer. A whole-area
    map has tens of thousands of counts: the general release took a tenth of a second
    to declare and publish them, a loop over the areas a few hundredths, these array
    operations a few thousandths.

    Answers an areas x measures matrix, true where the count is masked.
    """
    table = np.asarray(amounts, dtype=np.int64).reshape(len(areas), 2 * len(measures))
    values = table[:, 0::2]
    low = np.minimum(values, table[:, 1::2])
    masked = (low > 0) & (low < k)
    lead = measures.index(leader)
    # Release drops a one-member equation: a lone area's sum is the area itself.
    summed = len(areas) > 1
    changed = True
    while changed:
        changed = False
        for slot in range(len(measures)):
            if slot != lead and (masked[:, lead] & ~masked[:, slot]).any():
                masked[:, slot] |= masked[:, lead]
                changed = True
        for slot, measure in enumerate(measures):
            if summed and np.count_nonzero(masked[:, slot]) == 1:
                masked[_complement(areas, measure, values[:, slot], masked[:, slot]), slot] = True
                changed = True
    return masked


def _complement(
    areas: Sequence[str],
    measure: str,
    values: npt.NDArray[np.int64],
    hidden: npt.NDArray[np.bool_],
) -> int:
    """``Release._mask_complement`` on one measure's equation: the smallest non-zero
    published member, ties broken by path."""
    candidates = ~hidden
    non_zero = candidates & (values != 0)
    pool = non_zero if non_zero.any() else candidates
    smallest = values[pool].min()
    tied = np.flatnonzero(pool & (values == smallest)).tolist()
    return int(min(tied, key=lambda index: f"{areas[index]}.{measure}"))
