"""Figures as the disclosure gate lets them out.

Every figure leaves through ``disclosure.Gate`` (``scope.publication_gate`` says which):
a masked figure is ``None``, or 0 on a map with its mask, and every measure of an area
whose encounters are masked is masked with them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from outreach.services.disclosure import Gate
from outreach.services.readmodel.maps import area_properties
from outreach.services.rollups import MAP_METRICS
from outreach.services.stats.counters import AMOUNTS, AreaSums, Sum


def published_figures(
    gate: Gate, figures: dict[str, Sum]
) -> tuple[dict[str, int | None], list[str]]:
    """Each figure as ``gate`` publishes it (``None`` when masked), and the masked paths."""
    paths = list(figures)
    amounts = np.array([figures[path] for path in paths], dtype=np.int64).reshape(len(paths), 3)
    published, masked = gate.publish(amounts[:, 0], amounts[:, 1], amounts[:, 2])
    values = {
        path: None if hidden else value
        for path, value, hidden in zip(paths, published.tolist(), masked.tolist(), strict=True)
    }
    return values, sorted(
        path for path, hidden in zip(paths, masked.tolist(), strict=True) if hidden
    )


def area_figures(gate: Gate, sums: AreaSums) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each area's measures as ``gate`` publishes them, and which are masked: every
    measure of an area whose encounters are masked is masked with them."""
    amounts = sums.amounts.reshape(len(sums.areas), len(MAP_METRICS), AMOUNTS)
    values, masked = gate.publish(amounts[:, :, 0], amounts[:, :, 1], amounts[:, :, 2])
    masked |= masked[:, [MAP_METRICS.index("encounters")]]
    values[masked] = 0
    return values, masked


def map_properties(gate: Gate, sums: AreaSums) -> list[bytes]:
    """Each area's published measures (``area_figures``), written."""
    return area_properties(MAP_METRICS, "encounters", *area_figures(gate, sums))
