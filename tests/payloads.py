"""Builders of what phones send, for the sync tests."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from outreach.clock import PARIS
from outreach.services.geo import sector_centres

# Inside the Stalingrad sector, and a point in Paris outside every sector.
STALINGRAD = (48.884137, 2.369042)
CHATELET = (48.858712, 2.347161)
# A point inside each sector of the plan, by code.
CENTRES = sector_centres()


def at(day: date, hour: int = 14, minute: int = 0) -> str:
    """That time of ``day`` in Paris, as a phone sends it."""
    return datetime.combine(day, time(hour, minute), PARIS).isoformat()


def recent(hours: float = 2) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def shift(**overrides: Any) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(hours=5)
    body = {
        "id": str(uuid.uuid4()),
        "kind": "rdr",
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(hours=4)).isoformat(),
        "planned_sectors": ["stalingrad", "eole"],
    }
    body.update(overrides)
    return body


def encounter(position: tuple[float, float] = STALINGRAD, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "occurred_at": recent(),
        "location": {"lat": position[0], "lon": position[1], "accuracy_m": 15},
        "setting": "rue",
        "people": 1,
        "person": {"age_band": "25-34", "gender": "f", "first_contact": True},
        "kits": {"kit_base": 2, "pipe": 1},
        "services": ["ecoute"],
        "referrals": [{"to": "espace_repos", "status": "proposed"}],
    }
    body.update(overrides)
    return body


def group(people: int = 4, **overrides: Any) -> dict[str, Any]:
    body = encounter(**overrides)
    body["people"] = people
    body.pop("person")
    return body


# The default perturbation table's largest deviation (data/ptable/cellkey_D2_V1.csv):
# how far a figure published to anyone but its association may be from the truth.
MAX_DEVIATION = 2
