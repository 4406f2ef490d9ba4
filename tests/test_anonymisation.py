"""After a sync, no submitted coordinate and no raw ref exists anywhere in the database."""

from __future__ import annotations

import random
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, select, text

from outreach.extensions import db
from outreach.models import Encounter, Role
from outreach.services.crypto import keyed_hash
from tests.helpers import Account, headers_for
from tests.payloads import encounter


def _every_value(app: Flask) -> list[str]:
    """Every value of every column of every table, as text."""
    engine = db.engine_for(app)
    values = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            # Table names come from the database's own catalogue.
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                values.extend(str(value) for value in row)
    return values


def test_no_coordinate_and_no_raw_ref_is_stored(
    app: Flask, client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    worker = make_account(Role.WORKER)
    headers = headers_for(client, worker)
    rng = random.Random(7)
    items, coordinates, refs = [], [], []
    for _ in range(20):
        lat = round(48.8841 + rng.uniform(-0.0008, 0.0008), 6)
        lon = round(2.3690 + rng.uniform(-0.0008, 0.0008), 6)
        # Above 60 so that no rendering can match the seconds of a stored timestamp
        # ("12.3450" of 08:55:12.345012 failed this test once by chance).
        accuracy = round(rng.uniform(60.5, 99), 3)
        ref = f"phone-derived-ref-{rng.getrandbits(64):016x}"
        item = encounter(position=(lat, lon))
        item["location"]["accuracy_m"] = accuracy
        item["person"]["ref"] = ref
        items.append(item)
        coordinates += [lat, lon, accuracy]
        refs.append(ref)
    response = client.post("/api/v1/sync", json={"encounters": items}, headers=headers)
    assert response.get_json()["counts"]["created"] == 20

    # An amendment with a new position and ref must not keep them either.
    org_admin = make_account(Role.ORG_ADMIN, worker.organisation_slug)
    admin_headers = headers_for(client, org_admin)
    new_lat, new_lon = 48.884512, 2.368765
    coordinates += [new_lat, new_lon]
    amended = client.patch(
        f"/api/v1/encounters/{items[0]['id']}",
        json={
            "location": {"lat": new_lat, "lon": new_lon},
            "person": {"ref": "amended-ref-123456"},
        },
        headers=admin_headers,
    )
    assert amended.status_code == 200, amended.get_json()
    refs.append("amended-ref-123456")

    stored = "\n".join(_every_value(app))
    for value in coordinates:
        for rendering in {repr(value), f"{value:.6f}", f"{value:.5f}", f"{value:.4f}"}:
            assert rendering not in stored, f"coordinate {rendering} is stored"
    for ref in refs:
        assert ref not in stored
    with app.app_context():
        session = db.session
        with session.begin():
            hashes = set(session.scalars(select(Encounter.ref_hash)))
    pepper = app.config["OUTREACH_SETTINGS"].pepper
    assert keyed_hash(pepper, "person-ref", refs[1]) in hashes


def test_no_table_has_a_coordinate_or_free_text_column(app: Flask) -> None:
    engine = db.engine_for(app)
    forbidden = {
        "lat",
        "lon",
        "latitude",
        "longitude",
        "accuracy_m",
        "ref",
        "name_of_person",
        "note",
        "comment",
    }
    for table in inspect(engine).get_table_names():
        if table == "structures":  # a structure's own address, never a person's
            continue
        columns = {c["name"] for c in inspect(engine).get_columns(table)}
        assert not columns & forbidden, (table, columns & forbidden)
