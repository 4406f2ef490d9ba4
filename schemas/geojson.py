"""The map views' GeoJSON (RFC 7946), typed down to each coordinate for the document.

``schemas.stats`` defines each FeatureCollection's members and properties; this module
gives them a geometry described at every level (a position is ``[longitude,
latitude]``, a ring at least four positions, a Polygon a list of rings, a
MultiPolygon a list of Polygons' coordinates) and ``type`` members as one-value
enums, so that a generated client parses a map into its models. The geometries are
OpenAPI components (``GEOMETRY_COMPONENTS``, registered by ``outreach.api.contract``)
because a marshmallow field cannot say "one of two schemas". The views still send
the geometry as built; only the document changes.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields

from schemas.stats import HexagonMapSchema as _HexagonMap
from schemas.stats import HotspotsSchema as _Hotspots
from schemas.stats import SectorMapSchema as _SectorMap

POSITION: dict[str, Any] = {
    "description": "longitude, latitude (WGS 84)",
    "type": "array",
    "items": {"type": "number"},
    "minItems": 2,
    "maxItems": 2,
}
LINEAR_RING: dict[str, Any] = {
    "description": "a closed ring: the first and last positions are the same",
    "type": "array",
    "items": POSITION,
    "minItems": 4,
}
POLYGON_COORDINATES: dict[str, Any] = {
    "description": "the outer ring, then any holes",
    "type": "array",
    "items": LINEAR_RING,
    "minItems": 1,
}


def _geometry(kind: str, coordinates: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {
            "type": {"type": "string", "enum": [kind]},
            "coordinates": coordinates,
        },
        "additionalProperties": False,
    }


GEOMETRY_COMPONENTS: dict[str, dict[str, Any]] = {
    "Polygon": _geometry("Polygon", POLYGON_COORDINATES),
    "MultiPolygon": _geometry(
        "MultiPolygon", {"type": "array", "items": POLYGON_COORDINATES, "minItems": 1}
    ),
}


def _member_type(value: str) -> fields.Constant[str]:
    return fields.Constant(value, required=True, metadata={"type": "string", "enum": [value]})


def _geometry_field() -> fields.Raw:
    return fields.Raw(
        required=True,
        metadata={
            "description": "an RFC 7946 Polygon or MultiPolygon, longitude first",
            "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in GEOMETRY_COMPONENTS],
        },
    )


def typed(collection: type[ma.Schema]) -> type[ma.Schema]:
    """``collection`` (a FeatureCollection schema of ``schemas.stats``) with its
    feature's geometry and both ``type`` members typed; same component names."""
    # ``declared_fields``: an instance's own copies of its class's fields (public API).
    declared = collection().declared_fields
    features = declared["features"]
    assert isinstance(features, fields.List)
    assert isinstance(features.inner, fields.Nested)
    feature = features.inner.nested
    assert isinstance(feature, type)
    assert issubclass(feature, ma.Schema)
    typed_feature = ma.Schema.from_dict(
        {
            **feature().declared_fields,
            "type": _member_type("Feature"),
            "geometry": _geometry_field(),
        },
        name=feature.__name__,
    )
    return ma.Schema.from_dict(
        {
            **declared,
            "type": _member_type("FeatureCollection"),
            "features": fields.List(fields.Nested(typed_feature), required=True),
        },
        name=collection.__name__,
    )


HexagonMapSchema = typed(_HexagonMap)
SectorMapSchema = typed(_SectorMap)
HotspotsSchema = typed(_Hotspots)
