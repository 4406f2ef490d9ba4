"""Small-cell suppression: examples, then properties over random tables.

The recoverability check here is independent of the module's: a masked count is
recoverable when adding its unit vector to the equations (restricted to masked
counts) does not raise their rank.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.services.suppression import Published, Release, publish_areas

K = 11


def _rank(rows: list[list[Fraction]]) -> int:
    matrix = [list(row) for row in rows]
    rank = 0
    columns = len(matrix[0]) if matrix else 0
    for column in range(columns):
        pivot = next((r for r in range(rank, len(matrix)) if matrix[r][column] != 0), None)
        if pivot is None:
            continue
        matrix[rank], matrix[pivot] = matrix[pivot], matrix[rank]
        for r in range(len(matrix)):
            if r != rank and matrix[r][column] != 0:
                factor = matrix[r][column] / matrix[rank][column]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[rank], strict=True)]
        rank += 1
    return rank


def recoverable(release: Release, published: Published) -> list[str]:
    """Masked counts an outsider can compute from published ones with the declared sums."""
    masked = sorted(published.suppressed)
    index = {path: i for i, path in enumerate(masked)}
    rows = []
    for equation in release.equations:
        row = [Fraction(0)] * len(masked)
        for cell in equation.cells:
            if cell in index:
                row[index[cell]] = Fraction(1)
        if equation.total is not None and equation.total in index:
            row[index[equation.total]] = Fraction(-1)
        if any(row):
            rows.append(row)
    if not rows:
        return []
    base = _rank(rows)
    found = []
    for path, i in index.items():
        unit = [Fraction(0)] * len(masked)
        unit[i] = Fraction(1)
        if _rank([*rows, unit]) == base:
            found.append(path)
    return found


def assert_safe(release: Release, published: Published) -> None:
    for path, value in release.values.items():
        shown = published[path]
        if shown is None:
            continue
        assert shown == value, f"{path} published altered"
        assert not 0 < min(value, release.bases[path]) < release.k, f"{path}={value} published"
    for equation in release.equations:
        masked = sum(published.is_masked(m) for m in equation.members)
        assert masked != 1, f"one masked member in {equation}"
    assert recoverable(release, published) == []
    for leader, followers in release.followers.items():
        if published.is_masked(leader):
            assert all(published.is_masked(f) for f in followers)


def test_a_lone_small_cell_takes_the_next_smallest_with_it() -> None:
    release = Release(k=K)
    cells = [release.count(name, value) for name, value in [("a", 3), ("b", 40), ("c", 20)]]
    release.count("total", 63)
    release.adds_up(cells, "total")
    published = release.publish()
    assert published.values == {"a": None, "b": 40, "c": None, "total": 63}
    assert published.suppressed == ("a", "c")


def test_a_count_is_masked_on_its_basis_not_its_value() -> None:
    release = Release(k=K)
    release.count("syringes", 40, basis=2)
    release.count("pipes", 40, basis=30)
    published = release.publish()
    assert published["syringes"] is None
    assert published["pipes"] == 40


def test_zero_is_published_and_never_chosen_while_a_non_zero_complement_exists() -> None:
    release = Release(k=K)
    cells = [release.count(n, v) for n, v in [("a", 0), ("b", 5), ("c", 12), ("d", 0)]]
    release.adds_up(cells)
    published = release.publish()
    assert published.values == {"a": 0, "b": None, "c": None, "d": 0}


def test_a_bridge_between_two_masked_cycles_is_caught_by_elimination() -> None:
    # Two 2x2 blocks of small cells joined by one small cell (r2, c3): every row and
    # column has two or more masked cells, so the one-masked-member rule is content,
    # yet rows r1 + r2 minus columns c1 + c2 leave exactly the joining cell.
    small = {(1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (3, 4), (4, 3), (4, 4), (2, 3)}
    release = Release(k=K)
    for r in range(1, 5):
        for c in range(1, 5):
            release.count(f"r{r}c{c}", 5 if (r, c) in small else 50)
    for i in range(1, 5):
        release.adds_up([f"r{i}c{c}" for c in range(1, 5)])
        release.adds_up([f"r{r}c{i}" for r in range(1, 5)])
    published = release.publish()
    assert_safe(release, published)
    assert len(published.suppressed) > len(small)


def test_a_masked_leader_hides_its_followers() -> None:
    release = Release(k=K)
    release.count("cell.encounters", 4)
    release.count("cell.people", 30, basis=4)
    release.count("other.encounters", 50)
    release.count("other.people", 60, basis=50)
    release.masked_with("other.encounters", ["other.people"])
    release.adds_up(["cell.encounters", "other.encounters"])
    published = release.publish()
    assert published["other.encounters"] is None
    assert published["other.people"] is None


counts = st.integers(min_value=0, max_value=60)


@settings(max_examples=300, deadline=None)
@given(
    k=st.integers(min_value=2, max_value=15),
    groups=st.lists(st.lists(counts, min_size=1, max_size=8), min_size=1, max_size=4),
    explicit_totals=st.booleans(),
)
def test_one_way_tables_never_leak(k: int, groups: list[list[int]], explicit_totals: bool) -> None:
    release = Release(k=k)
    for g, values in enumerate(groups):
        cells = [release.count(f"g{g}.c{i}", v) for i, v in enumerate(values)]
        total = release.count(f"g{g}.total", sum(values)) if explicit_totals else None
        release.adds_up(cells, total)
    assert_safe(release, release.publish())


@settings(max_examples=200, deadline=None)
@given(
    k=st.integers(min_value=2, max_value=15),
    table=st.integers(min_value=1, max_value=6).flatmap(
        lambda width: st.lists(
            st.lists(counts, min_size=width, max_size=width), min_size=1, max_size=6
        )
    ),
)
def test_two_way_tables_with_margins_never_leak(k: int, table: list[list[int]]) -> None:
    release = Release(k=k)
    width = len(table[0])
    for r, row in enumerate(table):
        for c, value in enumerate(row):
            release.count(f"r{r}c{c}", value)
        release.count(f"r{r}", sum(row))
        release.adds_up([f"r{r}c{c}" for c in range(width)], f"r{r}")
    for c in range(width):
        release.count(f"c{c}", sum(row[c] for row in table))
        release.adds_up([f"r{r}c{c}" for r in range(len(table))], f"c{c}")
    release.count("all", sum(map(sum, table)))
    release.adds_up([f"r{r}" for r in range(len(table))], "all")
    release.adds_up([f"c{c}" for c in range(width)], "all")
    assert_safe(release, release.publish())


@settings(max_examples=200, deadline=None)
@given(
    k=st.integers(min_value=2, max_value=15),
    cells=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 5), st.integers(0, 30)),
        min_size=1,
        max_size=30,
    ),
)
def test_maps_with_several_measures_never_leak(k: int, cells: list[tuple[int, int, int]]) -> None:
    """Each cell: encounters, extra people on top, kits from some of its encounters."""
    release = Release(k=k)
    for i, (encounters, extra, kits) in enumerate(cells):
        release.count(f"{i}.encounters", encounters)
        release.count(f"{i}.people", encounters + extra, basis=encounters)
        kit_basis = min(encounters, kits)
        release.count(f"{i}.kits", kits if kit_basis else 0, basis=kit_basis)
        release.masked_with(f"{i}.encounters", [f"{i}.people", f"{i}.kits"])
    for measure in ("encounters", "people", "kits"):
        release.adds_up([f"{i}.{measure}" for i in range(len(cells))])
    assert_safe(release, release.publish())


MEASURES = ("encounters", "people", "kits")
# Names whose paths sort apart from the names themselves ("ab-c." before "ab.") and
# small amounts, so ties between complements are common.
AREA_NAMES = ("ab", "ab-c", "abc", "b", "8a1fb46622dffff", "8a1fb46622d7fff", "z")
amount = st.tuples(st.integers(0, 14), st.integers(0, 14))


@settings(max_examples=300, deadline=None)
@given(
    k=st.integers(min_value=2, max_value=12),
    areas=st.lists(st.sampled_from(AREA_NAMES), min_size=0, max_size=7, unique=True),
    data=st.data(),
)
def test_a_map_is_published_as_a_release_of_its_arithmetic_would(
    k: int, areas: list[str], data: st.DataObject
) -> None:
    amounts = {
        (area, measure): data.draw(amount)
        for area in areas
        for measure in MEASURES
        if data.draw(st.booleans())
    }
    release = Release(k=k)
    for area in areas:
        for measure in MEASURES:
            value, basis = amounts.get((area, measure), (0, 0))
            release.count(f"{area}.{measure}", value, basis)
        release.masked_with(f"{area}.encounters", [f"{area}.people", f"{area}.kits"])
    for measure in MEASURES:
        release.adds_up(f"{area}.{measure}" for area in areas)
    published = release.publish()

    flat = [
        [part for measure in MEASURES for part in amounts.get((area, measure), (0, 0))]
        for area in areas
    ]
    masked = publish_areas(k, areas, MEASURES, "encounters", flat)
    fast = [
        [None if hidden else row[2 * slot] for slot, hidden in enumerate(masks)]
        for row, masks in zip(flat, masked.tolist(), strict=True)
    ]

    assert fast == [[published[f"{area}.{measure}"] for measure in MEASURES] for area in areas]
    assert_safe(release, published)


def test_a_map_breaks_ties_between_complements_by_path() -> None:
    # "ab-c.kits" sorts before "ab.kits" though "ab" sorts before "ab-c".
    # encounters, people, then kits: value and basis of each.
    amounts = [[30, 30, 30, 30, 3, 3], [30, 30, 30, 30, 20, 20], [30, 30, 30, 30, 20, 20]]

    masked = publish_areas(K, ["lone", "ab", "ab-c"], MEASURES, "encounters", amounts)

    assert masked[:, 2].tolist() == [True, False, True]
