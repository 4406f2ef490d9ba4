"""Where an encounter happened, as coarse as the service needs: a hexagon and a sector.

``snap`` is the only function that sees a coordinate. It answers the H3 cell at the
configured resolution and the named sector containing the point (``hors_secteur``
when none does), or refuses a point outside the service area. Callers drop the
coordinate right after.

``locate_cell`` takes a hexagon a phone snapped itself (the field app sends no
coordinate): it checks the cell and answers its sector, ``sector_of_cell``: the
sector containing the hexagon's centre, so that hexagon and sector together say no
more than the hexagon (DESIGN.md, Disclosure control).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import h3
import orjson
from shapely import MultiPolygon, Polygon, contains_xy, prepare
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from schemas.vocabulary import OUTSIDE_SECTORS, sector_features


class OutsideServiceArea(ValueError):
    """The point lies outside the area the service covers."""


class InvalidCell(ValueError):
    """Not an H3 cell, or not at the resolution the service stores."""


@dataclass(frozen=True)
class Snapped:
    cell: str
    sector: str


@dataclass(frozen=True)
class _Area:
    code: str
    geometry: BaseGeometry
    # The bounding box, (min lon, min lat, max lon, max lat): comparing four floats
    # rules most sectors out before shapely is called.
    bounds: tuple[float, float, float, float]

    def contains(self, lat: float, lon: float) -> bool:
        min_lon, min_lat, max_lon, max_lat = self.bounds
        return (
            min_lon <= lon <= max_lon
            and min_lat <= lat <= max_lat
            and bool(contains_xy(self.geometry, lon, lat))
        )


@dataclass(frozen=True)
class _Areas:
    sectors: tuple[_Area, ...]
    service_area: BaseGeometry

    def sector_at(self, lat: float, lon: float) -> str:
        # contains_xy tests the coordinates without building a Point: every encounter
        # of every sync comes through here.
        return next(
            (area.code for area in self.sectors if area.contains(lat, lon)), OUTSIDE_SECTORS
        )

    def served(self, lat: float, lon: float, sector: str) -> bool:
        # Sectors lie inside the service area (a test checks the data), so only a
        # point outside them needs the area's test.
        return sector != OUTSIDE_SECTORS or bool(contains_xy(self.service_area, lon, lat))


@cache
def _areas() -> _Areas:
    """The sector polygons and the service area, read and prepared once."""
    sectors = []
    service_area: BaseGeometry | None = None
    for feature in sector_features():
        geometry = shape(feature["geometry"])
        prepare(geometry)
        if feature["properties"]["kind"] == "service_area":
            service_area = geometry
        else:
            sectors.append(_Area(feature["properties"]["code"], geometry, geometry.bounds))
    if service_area is None:
        raise RuntimeError("the sectors file has no service_area feature")
    return _Areas(tuple(sectors), service_area)


def sector_of_cell(cell: str) -> str:
    """The sector of an H3 hexagon: the named sector containing the hexagon's centre,
    ``hors_secteur`` when none does. One rule for every hexagon, so a hexagon is never
    split between two sectors' counts."""
    lat, lon = h3.cell_to_latlng(cell)
    return _areas().sector_at(lat, lon)


@cache
def sector_cell(code: str, resolution: int) -> str | None:
    """A hexagon at ``resolution`` whose centre lies in the named sector ``code`` (the
    nearest to a point inside it): what a phone without a position sends for that
    sector. ``None`` when no hexagon's centre lies in the sector: a sector smaller than
    a hexagon can hold none, and then no encounter is ever counted in it."""
    area = next(area for area in _areas().sectors if area.code == code)
    point = area.geometry.representative_point()
    start = h3.latlng_to_cell(point.y, point.x, resolution)
    # Hexagons farther than this from a point inside a sector of the plan are outside it
    # at every resolution the service allows (5 to 10).
    for distance in range(8):
        for cell in sorted(h3.grid_ring(start, distance)):
            if sector_of_cell(cell) == code:
                return str(cell)
    return None


class Geography:
    """Sector polygons and the service area, prepared for fast point tests."""

    def __init__(self, resolution: int) -> None:
        self.resolution = resolution
        self._areas = _areas()

    def snap(self, lat: float, lon: float) -> Snapped:
        sector = self._areas.sector_at(lat, lon)
        if not self._areas.served(lat, lon, sector):
            raise OutsideServiceArea("This position is outside the service area.")
        return Snapped(cell=h3.latlng_to_cell(lat, lon, self.resolution), sector=sector)

    def locate_cell(self, cell: str) -> Snapped:
        """A hexagon a phone snapped itself, checked: a valid H3 cell at the service's
        resolution whose centre is inside the service area; its sector is
        ``sector_of_cell``'s."""
        if not h3.is_valid_cell(cell):
            raise InvalidCell("This is not an H3 hexagon.")
        resolution = h3.get_resolution(cell)
        if resolution != self.resolution:
            raise InvalidCell(
                f"This hexagon is at resolution {resolution}; the service stores "
                f"resolution {self.resolution}."
            )
        lat, lon = h3.cell_to_latlng(cell)
        sector = self._areas.sector_at(lat, lon)
        if not self._areas.served(lat, lon, sector):
            raise OutsideServiceArea("This hexagon is outside the service area.")
        return Snapped(cell=cell, sector=sector)


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


# About 10 cm: more digits would only suggest a precision the hexagons do not have.
COORDINATE_DIGITS = 6


def rfc7946(geometry: BaseGeometry) -> dict[str, Any]:
    """A polygon as RFC 7946 GeoJSON: longitude first, closed, counter-clockwise exterior."""
    if isinstance(geometry, Polygon):
        geometry = orient(geometry, sign=1.0)
    elif isinstance(geometry, MultiPolygon):
        geometry = MultiPolygon([orient(part, sign=1.0) for part in geometry.geoms])
    else:
        raise TypeError(f"not a polygon: {geometry.geom_type}")
    rounded: dict[str, Any] = _rounded(mapping(geometry))
    return rounded


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, COORDINATE_DIGITS)
    if isinstance(value, tuple | list):
        return [_rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


@lru_cache(maxsize=65_536)
def cell_parent(cell: str, resolution: int) -> str:
    """The H3 cell's parent at a coarser ``resolution`` (cached: a map at a coarser
    resolution than stored asks it of each of thousands of hexagons, after every sync)."""
    return str(h3.cell_to_parent(cell, resolution))


@lru_cache(maxsize=65_536)
def cell_geometry(cell: str) -> bytes:
    """The hexagon of an H3 cell as an RFC 7946 polygon, serialised (cached: maps redraw
    the same cells, and a float's text costs more than the rest of its feature)."""
    # h3 answers (lat, lng) pairs; GeoJSON wants (lng, lat).
    ring = [
        [round(lng, COORDINATE_DIGITS), round(lat, COORDINATE_DIGITS)]
        for lat, lng in h3.cell_to_boundary(cell)
    ]
    if _signed_area(ring) < 0:
        ring.reverse()
    ring.append(ring[0])
    return orjson.dumps({"type": "Polygon", "coordinates": [ring]})


def _signed_area(ring: list[list[float]]) -> float:
    """Twice the signed area of an open ring: positive when counter-clockwise."""
    return sum(
        x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True)
    )


@cache
def sector_geometries() -> dict[str, bytes]:
    """Each named sector's outline as an RFC 7946 geometry, serialised, in the sectors
    file's order."""
    return {
        feature["properties"]["code"]: orjson.dumps(rfc7946(shape(feature["geometry"])))
        for feature in sector_features()
        if feature["properties"]["kind"] == "sector"
    }
