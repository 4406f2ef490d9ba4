"""The publication gate and its perturbation table: bounds, zero mean, consistency."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from outreach.services.disclosure import PTABLE_DIR, Gate, load_table

K = 11
TABLES = sorted(path.name for path in PTABLE_DIR.glob("*.csv"))


@pytest.mark.parametrize("name", TABLES)
def test_every_table_is_bounded_centred_and_never_below_k(name: str) -> None:
    table = load_table(name)
    assert table.max_deviation >= 1
    for row, (deviations, bounds) in enumerate(zip(table.deviations, table.bounds, strict=True)):
        parts = np.diff(np.concatenate(([0], bounds, [1 << 32]))).astype(np.int64)
        assert parts.sum() == 1 << 32
        assert (parts > 0).all()
        assert np.abs(deviations).max() <= table.max_deviation
        # Mean exactly 0: the figures are unbiased, in whole parts of 2^32.
        assert int((deviations * parts).sum()) == 0
        # Row i serves the count k + i (the last row every count from k + D up).
        assert (row + deviations).min() >= 0
    spread = table.deviations[-1].astype(float)
    shares = np.diff(np.concatenate(([0], table.bounds[-1], [1 << 32]))) / (1 << 32)
    assert float((spread**2 * shares).sum()) == pytest.approx(table.variance, abs=0.01)


def test_the_default_table_draws_its_deviations_as_often_as_it_says() -> None:
    gate = Gate(K, load_table("cellkey_D2_V1.csv"))
    keys = np.random.default_rng(7).integers(-(2**31), 2**31, 400_000)
    published, masked = gate.publish(np.full(keys.size, 40), np.full(keys.size, 40), keys)
    assert not masked.any()
    deviations = published - 40
    assert set(np.unique(deviations).tolist()) == {-2, -1, 0, 1, 2}
    assert abs(deviations.mean()) < 0.01
    assert deviations.var() == pytest.approx(1.0, abs=0.02)


@given(
    value=st.integers(0, 10_000),
    extra=st.integers(0, 50),
    key=st.integers(-(2**31), 2**31 - 1),
)
def test_the_gate_masks_small_counts_and_perturbs_the_rest(
    value: int, extra: int, key: int
) -> None:
    gate = Gate(K, load_table("cellkey_D2_V1.csv"))
    count = gate.one(value, value, key)
    magnitude = gate.one(value + extra, value, key)
    if value == 0:
        assert count == 0
    elif value < K:
        # A count, or a magnitude, based on 1 to k-1 encounters is masked.
        assert count is None
        assert magnitude is None
    else:
        assert count is not None
        assert count >= K
        assert abs(count - value) <= 2
        assert magnitude is not None
        assert abs(magnitude - value - extra) <= 2
    # The same cell always answers the same.
    assert gate.one(value, value, key) == count
    # The association's own figures are exact.
    assert Gate(K, None).one(value, value, key) == value
