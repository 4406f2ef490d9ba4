"""Where an encounter happened, as coarse as the service needs: a hexagon and a sector.

``snap`` is the only function that sees a coordinate. It answers the H3 cell at the
configured resolution and the named sector containing the point (``hors_secteur``
when none does), or refuses a point outside the service area. Callers drop the
coordinate right after.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import h3
from shapely import Point, prepare
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from schemas.vocabulary import OUTSIDE_SECTORS, sector_features


class OutsideServiceArea(ValueError):
    """The point lies outside the area the service covers."""


@dataclass(frozen=True)
class Snapped:
    cell: str
    sector: str


@dataclass(frozen=True)
class _Area:
    code: str
    geometry: BaseGeometry


class Geography:
    """Sector polygons and the service area, prepared for fast point tests."""

    def __init__(self, resolution: int) -> None:
        self.resolution = resolution
        self._sectors: list[_Area] = []
        service_area: BaseGeometry | None = None
        for feature in sector_features():
            geometry = shape(feature["geometry"])
            prepare(geometry)
            if feature["properties"]["kind"] == "service_area":
                service_area = geometry
            else:
                self._sectors.append(_Area(feature["properties"]["code"], geometry))
        if service_area is None:
            raise RuntimeError("the sectors file has no service_area feature")
        self._service_area = service_area

    def snap(self, lat: float, lon: float) -> Snapped:
        point = Point(lon, lat)
        if not self._service_area.contains(point):
            raise OutsideServiceArea("This position is outside the service area.")
        sector = next(
            (s.code for s in self._sectors if s.geometry.contains(point)), OUTSIDE_SECTORS
        )
        return Snapped(cell=h3.latlng_to_cell(lat, lon, self.resolution), sector=sector)


@cache
def geography(resolution: int) -> Geography:
    """The shared, read-only geography for one H3 resolution."""
    return Geography(resolution)


def sector_centres() -> dict[str, tuple[float, float]]:
    """A point inside each named sector, as (lat, lon): where demo activity is drawn."""
    centres = {}
    for feature in sector_features():
        if feature["properties"]["kind"] == "sector":
            point = shape(feature["geometry"]).representative_point()
            centres[feature["properties"]["code"]] = (point.y, point.x)
    return centres
