"""The closed code lists of the domain, read once from ``data/vocabularies.json``.

The same file feeds the schemas' validation, the services' checks and what
``GET /vocabularies`` sends the phones, so a code exists in one place only. Kit codes
are the exception: the file seeds the ``kits`` table, which an admin may extend.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
VOCABULARIES_FILE = DATA_DIR / "vocabularies.json"
SECTORS_FILE = DATA_DIR / "sectors.geojson"
STRUCTURES_FILE = DATA_DIR / "structures.json"

OUTSIDE_SECTORS = "hors_secteur"


@cache
def vocabularies() -> dict[str, list[dict[str, str]]]:
    """Every list of ``{code, label}``, by name."""
    loaded: dict[str, list[dict[str, str]]] = json.loads(VOCABULARIES_FILE.read_text("utf-8"))
    return loaded


def codes(name: str) -> tuple[str, ...]:
    """The codes of one list, in their file order."""
    return tuple(entry["code"] for entry in vocabularies()[name])


@cache
def sector_features() -> list[dict[str, Any]]:
    """The GeoJSON features of the sectors and of the service area."""
    collection: dict[str, Any] = json.loads(SECTORS_FILE.read_text("utf-8"))
    features: list[dict[str, Any]] = collection["features"]
    return features


def sector_codes() -> tuple[str, ...]:
    """Every sector code a location can be snapped to, ``hors_secteur`` last."""
    named = tuple(
        f["properties"]["code"] for f in sector_features() if f["properties"]["kind"] == "sector"
    )
    return (*named, OUTSIDE_SECTORS)


SHIFT_KINDS = codes("shift_kinds")
SETTINGS = codes("settings")
AGE_BANDS = codes("age_bands")
GENDERS = codes("genders")
SERVICES = codes("services")
REFERRAL_DESTINATIONS = codes("referral_destinations")
REFERRAL_STATUSES = codes("referral_statuses")
DELETION_REASONS = codes("deletion_reasons")
SECTORS = sector_codes()
