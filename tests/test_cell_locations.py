"""An encounter located by a hexagon the phone snapped itself: ``location: {"cell": ...}``.

The server checks the cell (a real H3 index, at the configured resolution, inside the
service area) and derives the sector from the hexagon's centre, the rule every
hexagon follows (docs/design.md, Disclosure control).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h3
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from outreach import create_app
from outreach.extensions import db
from outreach.models import Encounter, Role
from outreach.services.geo import geography, sector_of_cell
from tests.helpers import Account, create_account, empty_database, headers_for, make_settings
from tests.payloads import CHATELET, STALINGRAD, encounter

SYNC = "/api/v1/sync"
LYON = (45.76, 4.83)


def at_cell(cell: str, **overrides: Any) -> dict[str, Any]:
    return encounter(location={"cell": cell}, **overrides)


def stored(app: Flask) -> list[tuple[str, str]]:
    with app.app_context():
        session = db.session
        with session.begin():
            return [tuple(row) for row in session.execute(select(Encounter.cell, Encounter.sector))]


def _straddling_cell() -> tuple[str, str, str]:
    """A resolution-9 hexagon whose centre is in a named sector and one of whose corners
    is in another sector or none: (cell, the centre's sector, the corner's sector)."""
    centre = h3.latlng_to_cell(*STALINGRAD, 9)
    areas = geography(9)
    for cell in h3.grid_disk(centre, 12):
        inner = areas.snap(*h3.cell_to_latlng(cell)).sector
        if inner == "hors_secteur":
            continue
        for corner in h3.cell_to_boundary(cell):
            outer = areas.snap(*corner).sector
            if outer != inner:
                return cell, inner, outer
    raise AssertionError("no hexagon straddles a sector's edge near Stalingrad")


def test_a_cell_is_stored_as_sent_with_the_sector_of_its_centre(
    app: Flask, client: FlaskClient, headers: dict[str, str]
) -> None:
    cell, centre_sector, corner_sector = _straddling_cell()
    assert centre_sector != corner_sector
    assert sector_of_cell(cell) == centre_sector
    plain = h3.latlng_to_cell(*STALINGRAD, 9)
    body = {"encounters": [at_cell(cell), at_cell(plain), at_cell(h3.latlng_to_cell(*CHATELET, 9))]}
    response = client.post(SYNC, json=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["counts"]["created"] == 3
    assert sorted(stored(app)) == sorted(
        [
            (cell, centre_sector),
            (plain, "stalingrad"),
            (h3.latlng_to_cell(*CHATELET, 9), "hors_secteur"),
        ]
    )


def test_a_resent_cell_is_a_duplicate_and_another_cell_a_conflict(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    item = at_cell(h3.latlng_to_cell(*STALINGRAD, 9))
    assert (
        client.post(SYNC, json={"encounters": [item]}, headers=headers).get_json()["counts"][
            "created"
        ]
        == 1
    )
    again = client.post(SYNC, json={"encounters": [item]}, headers=headers).get_json()
    assert again["results"][0]["status"] == "duplicate"
    moved = {**item, "location": {"cell": h3.latlng_to_cell(*CHATELET, 9)}}
    conflict = client.post(SYNC, json={"encounters": [moved]}, headers=headers).get_json()
    assert conflict["results"][0]["status"] == "conflict"


def test_each_bad_cell_says_why(app: Flask, client: FlaskClient, headers: dict[str, str]) -> None:
    res9 = h3.latlng_to_cell(*STALINGRAD, 9)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cell": "not-a-cell"}, "Not an H3 cell index"),
        ({"cell": res9.upper()}, "Not an H3 cell index"),
        ({"cell": "fffffffffffffff"}, "not an H3 hexagon"),
        ({"cell": h3.latlng_to_cell(*STALINGRAD, 8)}, "resolution 8"),
        ({"cell": h3.latlng_to_cell(*STALINGRAD, 10)}, "resolution 10"),
        ({"cell": h3.latlng_to_cell(*LYON, 9)}, "outside the service area"),
        ({"cell": res9, "lat": STALINGRAD[0], "lon": STALINGRAD[1]}, "not both"),
        ({"cell": res9, "accuracy_m": 10}, "not both"),
        ({"cell": 617733122422996991}, "Not a valid string"),
        ({"accuracy_m": 10}, "Missing data"),
    ]
    items = [encounter(location=location) for location, _ in cases]
    response = client.post(SYNC, json={"encounters": items}, headers=headers)
    results = response.get_json()["results"]
    for (location, words), result in zip(cases, results, strict=True):
        assert result["status"] == "invalid", location
        assert words in str(result["errors"]["location"]), (location, result["errors"])
    assert stored(app) == []


def test_the_configured_resolution_is_the_one_accepted(database_url: str, tmp_path: Path) -> None:
    app = create_app(make_settings(database_url, tmp_path / "instance", h3_resolution=8))
    empty_database(app)
    try:
        client = app.test_client()
        account = create_account(app, Role.WORKER, "maraude-nord")
        headers = headers_for(client, account)
        res8, res9 = (h3.latlng_to_cell(*STALINGRAD, r) for r in (8, 9))
        body = {"encounters": [at_cell(res8), at_cell(res9)]}
        results = client.post(SYNC, json=body, headers=headers).get_json()["results"]
        assert [r["status"] for r in results] == ["created", "invalid"]
        assert "resolution 8" in str(results[1]["errors"]["location"])
        assert stored(app) == [(res8, sector_of_cell(res8))]
    finally:
        db.engine_for(app).dispose()


def test_an_amendment_may_move_an_encounter_to_a_cell(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    admin = make_account(Role.ORG_ADMIN, "maraude-nord")
    headers = headers_for(client, admin)
    item = encounter()
    client.post(SYNC, json={"encounters": [item]}, headers=headers)
    cell = h3.latlng_to_cell(*CHATELET, 9)
    amended = client.patch(
        f"/api/v1/encounters/{item['id']}",
        json={"location": {"cell": cell}},
        headers=headers,
    )
    assert amended.status_code == 200, amended.get_json()
    assert stored(app) == [(cell, "hors_secteur")]


def test_the_vocabularies_give_the_resolution_and_a_hexagon_for_each_sector(
    app: Flask, client: FlaskClient, headers: dict[str, str]
) -> None:
    vocabularies = client.get("/api/v1/vocabularies", headers=headers).get_json()
    assert vocabularies["h3_resolution"] == 9
    sectors = {
        f["properties"]["code"]: f["properties"]["cell"]
        for f in vocabularies["sectors"]["features"]
    }
    assert len(sectors) == 10
    # Every sector holds the centre of a hexagon at the default resolution, or no
    # encounter could ever be counted in it (sectors are the sectors of hexagons).
    assert None not in sectors.values()
    # What a phone without a position sends for a sector is stored in that sector.
    body = {"encounters": [at_cell(cell) for cell in sectors.values()]}
    assert client.post(SYNC, json=body, headers=headers).get_json()["counts"]["created"] == 10
    assert sorted(stored(app)) == sorted((cell, code) for code, cell in sectors.items())
