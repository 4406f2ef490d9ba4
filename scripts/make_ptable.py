"""Write a perturbation table for the cell key method (``services/disclosure.py``).

    python scripts/make_ptable.py --max-deviation 2 --variance 1 > data/ptable/cellkey_D2_V1.csv

Row ``i`` (0 <= i < D) is for counts k + i, row ``D`` for every count from k + D up. Each
row is a distribution of deviations with mean 0: a discretised Gaussian
(``p(d) ~ exp(-d^2 / 2s^2)``) on ``-D..D`` whose variance is the one asked, truncated
symmetrically to ``-i..i`` on the rows near k so that no published count falls below
k. Probabilities are written as whole parts of 2^32, as the cell keys are drawn.
"""

from __future__ import annotations

import argparse
import math
import sys

SCALE = 1 << 32


def deviations(max_deviation: int, variance: float) -> list[float]:
    """Weights on -D..D of a discretised Gaussian of the given variance (bisection)."""
    support = range(-max_deviation, max_deviation + 1)
    low, high = 1e-3, 1e3

    def spread(sigma: float) -> float:
        weights = [math.exp(-(d * d) / (2 * sigma * sigma)) for d in support]
        return sum(w * d * d for w, d in zip(weights, support, strict=True)) / sum(weights)

    if variance >= spread(high):
        raise SystemExit(f"variance {variance} is out of reach within {max_deviation}")
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if spread(middle) < variance else (low, middle)
    return [math.exp(-(d * d) / (2 * low * low)) for d in support]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-deviation", type=int, default=2)
    parser.add_argument("--variance", type=float, default=1.0)
    args = parser.parse_args()
    top = args.max_deviation
    weights = deviations(top, args.variance)
    out = sys.stdout
    out.write(f"# cell key perturbation table: max_deviation={top} variance={args.variance}\n")
    out.write("row,deviation,parts\n")
    for row in range(top + 1):
        kept = {d: weights[d + top] for d in range(-row, row + 1)}
        total = sum(kept.values())
        parts = {d: round(w / total * SCALE) for d, w in kept.items()}
        # Whole parts summing to exactly 2^32, symmetric so the mean stays 0.
        parts[0] += SCALE - sum(parts.values())
        for d, share in parts.items():
            out.write(f"{row},{d},{share}\n")


if __name__ == "__main__":
    main()
