"""Migrations: one head, they build an empty database, and they match the models."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import h3
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from shapely.geometry import shape
from sqlalchemy import inspect, select, text

from outreach import migrate
from outreach.extensions import db
from outreach.models import Base, Encounter, EncounterVersion, Role, Shift
from outreach.services import audit, retention
from outreach.services.context import OPERATOR
from outreach.services.crypto import record_key
from outreach.services.geo import sector_of_cell
from outreach.services.rollups import stored_row
from outreach.services.sync import content_hash, encounter_content
from schemas.vocabulary import sector_features
from tests.helpers import Account, headers_for
from tests.payloads import encounter, shift


def test_one_head(database_url: str) -> None:
    assert len(migrate.heads(database_url)) == 1


def test_models_and_migrations_agree(app: Flask) -> None:
    # The fixture's database was built by the migrations alone.
    with db.engine_for(app).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrade_downgrade_round_trip_via_cli(app: Flask, runner: FlaskCliRunner) -> None:
    """``flask db`` walks the whole history down to empty and back up."""
    engine = db.engine_for(app)
    tables = set(Base.metadata.tables)
    down = runner.invoke(args=["db", "downgrade", "base"])
    assert down.exit_code == 0, down.output
    assert set(inspect(engine).get_table_names()) & tables == set()
    up = runner.invoke(args=["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert "Database upgraded to head." in up.output
    assert set(inspect(engine).get_table_names()) == tables | {"alembic_version"}


def _inside_a_sector_whose_hexagon_is_not() -> tuple[float, float]:
    """A point inside Stalingrad whose hexagon's centre lies outside it."""
    for feature in sector_features():
        if feature["properties"].get("code") == "stalingrad":
            outline = shape(feature["geometry"])
    for lon, lat in outline.exterior.coords:
        # A step from each corner towards the middle: inside, near the edge.
        point = (lat + (outline.centroid.y - lat) * 0.1, lon + (outline.centroid.x - lon) * 0.1)
        if sector_of_cell(h3.latlng_to_cell(*point, 9)) != "stalingrad":
            return point
    raise AssertionError("every corner's hexagon is Stalingrad's")


def test_stored_encounters_get_record_keys_and_their_hexagons_sector(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, make_account: Callable[..., Account]
) -> None:
    """Encounters stored before 0013 and 0014 (no record key; the sector of their point
    and a hash of that) come out of ``flask db upgrade`` with their key, their hexagon's
    sector and that content's hash, so a phone's resend is still a duplicate; and the
    upgrade rebuilds the rollups from them."""
    worker = headers_for(client, make_account(Role.WORKER))
    sent = encounter(_inside_a_sector_whose_hexagon_is_not())
    assert (
        client.post("/api/v1/sync", json={"encounters": [sent]}, headers=worker).status_code == 200
    )
    with app.app_context():
        stored = db.session.scalars(
            select(Encounter).where(Encounter.id == uuid.UUID(sent["id"]))
        ).one()
        moved_to, new_hash = stored.sector, stored.content_hash
        as_before = {**stored_row(stored), "id": stored.id, "sector": "stalingrad"}
        old_hash = content_hash(encounter_content(as_before))
        db.session.rollback()
    assert moved_to != "stalingrad"
    down = runner.invoke(args=["db", "downgrade", "0012_rollup_fillfactor"])
    assert down.exit_code == 0, down.output
    with db.engine_for(app).begin() as connection:
        connection.execute(
            text("UPDATE encounters SET sector = 'stalingrad', content_hash = :hash"),
            {"hash": old_hash},
        )
    up = runner.invoke(args=["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert "rebuilding the rollups" in up.output
    assert "Rebuilt from 1 encounters" in up.output
    with app.app_context():
        stored = db.session.scalars(
            select(Encounter).where(Encounter.id == uuid.UUID(sent["id"]))
        ).one()
        assert (stored.sector, stored.content_hash) == (moved_to, new_hash)
        pepper = app.config["OUTREACH_SETTINGS"].pepper
        assert stored.record_key == record_key(pepper, stored.id)
        db.session.rollback()
    resent = client.post("/api/v1/sync", json={"encounters": [sent]}, headers=worker)
    assert resent.get_json()["counts"]["duplicate"] == 1
    rebuilt = runner.invoke(args=["rollups", "rebuild"])
    assert "0 differed" in rebuilt.output


def _stored(app: Flask) -> dict[str, list[Any]]:
    with db.engine_for(app).connect() as connection:
        return {
            table.name: sorted(connection.execute(select(table)).all(), key=str)
            for table in (Shift.__table__, Encounter.__table__, EncounterVersion.__table__)
        }


def test_encounters_and_versions_cross_0016_both_ways(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, make_account: Callable[..., Account]
) -> None:
    """Down to one id space for every association and back: every encounter and version
    is kept (SQLite copies ``encounters`` into a new table, which must not cascade to the
    versions), the key is (organisation, id) again, and a resend is still a duplicate."""
    admin = headers_for(client, make_account(Role.ORG_ADMIN))
    sent = [encounter(), encounter()]
    assert client.post("/api/v1/sync", json={"encounters": sent}, headers=admin).status_code == 200
    amended = client.patch(
        f"/api/v1/encounters/{sent[0]['id']}", json={"setting": "metro"}, headers=admin
    )
    assert amended.status_code == 200
    before = _stored(app)
    assert len(before["encounter_versions"]) == 1
    down = runner.invoke(args=["db", "downgrade", "0015"])
    assert down.exit_code == 0, down.output
    schema = inspect(db.engine_for(app))
    assert schema.get_pk_constraint("encounters")["constrained_columns"] == ["id"]
    assert "organisation_id" not in {c["name"] for c in schema.get_columns("encounter_versions")}
    with db.engine_for(app).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM encounter_versions")).scalar() == 1
    up = runner.invoke(args=["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert "rebuilding the rollups" not in up.output
    assert inspect(db.engine_for(app)).get_pk_constraint("encounters")["constrained_columns"] == [
        "organisation_id",
        "id",
    ]
    assert _stored(app) == before
    resent = client.post("/api/v1/sync", json={"encounters": [sent[1]]}, headers=admin)
    assert resent.get_json()["results"][0]["status"] == "duplicate"


def test_versions_survive_down_and_up_across_0013(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, make_account: Callable[..., Account]
) -> None:
    """0013 changes ``encounters`` (SQLite copies it into a new table and drops the old
    one, which must not cascade to the versions): an amended encounter keeps its version
    down to 0012 and back up."""
    admin = headers_for(client, make_account(Role.ORG_ADMIN))
    sent = encounter()
    assert (
        client.post("/api/v1/sync", json={"encounters": [sent]}, headers=admin).status_code == 200
    )
    amended = client.patch(
        f"/api/v1/encounters/{sent['id']}", json={"setting": "metro"}, headers=admin
    )
    assert amended.status_code == 200
    down = runner.invoke(args=["db", "downgrade", "0012_rollup_fillfactor"])
    assert down.exit_code == 0, down.output
    with db.engine_for(app).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM encounter_versions")).scalar() == 1
    up = runner.invoke(args=["db", "upgrade"])
    assert up.exit_code == 0, up.output
    with db.engine_for(app).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM encounter_versions")).scalar() == 1


def test_shifts_encounters_and_versions_cross_0017_both_ways(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, make_account: Callable[..., Account]
) -> None:
    """Down to one shift id space for every association and back: every shift, encounter
    and version is kept (SQLite copies ``shifts`` and ``encounters`` into new tables,
    which must not cascade to, or be refused by, the rows pointing at them), the keys
    are (organisation, id) again, and resends are still duplicates."""
    admin = headers_for(client, make_account(Role.ORG_ADMIN))
    outing = shift()
    sent = [encounter(shift_id=outing["id"]), encounter()]
    batch = {"shifts": [outing], "encounters": sent}
    assert client.post("/api/v1/sync", json=batch, headers=admin).status_code == 200
    amended = client.patch(
        f"/api/v1/encounters/{sent[0]['id']}", json={"setting": "metro"}, headers=admin
    )
    assert amended.status_code == 200
    before = _stored(app)
    assert [len(before[t]) for t in ("shifts", "encounters", "encounter_versions")] == [1, 2, 1]
    down = runner.invoke(args=["db", "downgrade", "0016"])
    assert down.exit_code == 0, down.output
    assert inspect(db.engine_for(app)).get_pk_constraint("shifts")["constrained_columns"] == ["id"]
    assert _stored(app) == before
    up = runner.invoke(args=["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert "rebuilding the rollups" not in up.output
    schema = inspect(db.engine_for(app))
    assert schema.get_pk_constraint("shifts")["constrained_columns"] == ["organisation_id", "id"]
    assert [
        (fk["constrained_columns"], fk["referred_columns"])
        for fk in schema.get_foreign_keys("encounters")
        if fk["referred_table"] == "shifts"
    ] == [(["organisation_id", "shift_id"], ["organisation_id", "id"])]
    assert _stored(app) == before
    resent = client.post(
        "/api/v1/sync", json={"shifts": [outing], "encounters": [sent[1]]}, headers=admin
    )
    assert [r["status"] for r in resent.get_json()["results"]] == ["duplicate", "duplicate"]


@pytest.mark.parametrize(
    ("kind", "revision", "below"), [("encounter", "0016", "0015"), ("shift", "0017", "0016")]
)
def test_a_downgrade_refuses_while_two_associations_hold_one_id(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    make_account: Callable[..., Account],
    kind: str,
    revision: str,
    below: str,
) -> None:
    """Below 0016 an encounter id, below 0017 a shift id, is unique across associations:
    with one id held by two, ``flask db downgrade`` and the revision's own downgrade
    refuse, saying why, and nothing is undone."""
    item = encounter() if kind == "encounter" else shift()
    for slug in ("assoc-a", "assoc-b"):
        worker = headers_for(client, make_account(Role.WORKER, slug))
        sent = client.post("/api/v1/sync", json={f"{kind}s": [item]}, headers=worker)
        assert sent.get_json()["results"][0]["status"] == "created"
    before = _stored(app)
    head = migrate.head()
    for target in (below, "base"):
        refused = runner.invoke(args=["db", "downgrade", target])
        assert refused.exit_code == 1
        assert (
            f"refusing to downgrade below {revision}: 1 {kind} id(s) are each held by more than"
            " one association" in refused.output
        )
    url = app.config["OUTREACH_SETTINGS"].owner_database_url
    # The revisions after this one may go: nothing else is shared.
    migrate.downgrade(url, revision)
    with pytest.raises(migrate.DowngradeRefused, match=f"below {revision}: 1 {kind} id"):
        command.downgrade(migrate.alembic_config(url), below)
    assert migrate.current(url) == [revision]
    assert _stored(app) == before
    migrate.upgrade(url)
    assert migrate.current(url) == [head]


def test_a_downgrade_that_would_lose_audit_evidence_refuses(
    app: Flask, runner: FlaskCliRunner
) -> None:
    """Below 0004 the purge checkpoints go, below 0001 the events: both refuse, saying why."""
    settings = app.config["OUTREACH_SETTINGS"].with_overrides(audit_retention_days=0)
    with app.app_context():
        audit.record(db.session, OPERATOR, "test.event")
        db.session.commit()
        retention.purge(db.session, OPERATOR, settings)
    for target, table in (("0003", "audit_checkpoints"), ("base", "audit_checkpoints")):
        refused = runner.invoke(args=["db", "downgrade", target])
        assert refused.exit_code == 1
        assert f"refusing to downgrade below 0004: {table} holds 1" in refused.output
        # Nothing was undone.
        with db.engine_for(app).connect() as connection:
            assert (
                connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
                == (migrate.heads(settings.database_url)[0])
            )
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output


def test_a_downgrade_to_base_refuses_while_audit_events_exist(
    app: Flask, runner: FlaskCliRunner
) -> None:
    with app.app_context():
        audit.record(db.session, OPERATOR, "test.event")
        db.session.commit()
    refused = runner.invoke(args=["db", "downgrade", "base"])
    assert refused.exit_code == 1
    assert "refusing to downgrade below 0001: audit_events holds 1" in refused.output
    assert "audit_events" in inspect(db.engine_for(app)).get_table_names()


def test_the_rollup_tables_have_the_documented_fill_factor(app: Flask, engine_name: str) -> None:
    """docs/scaling.md promised a fill factor of 80 that no migration set (issue 26)."""
    if engine_name != "postgresql":
        pytest.skip("SQLite has no fill factor")
    with db.engine_for(app).connect() as connection:
        options = dict(
            connection.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class"
                    " WHERE relname LIKE 'rollup%'"
                    " AND relkind = 'r'"
                )
            ).all()
        )
    tables = [name for name in Base.metadata.tables if name.startswith("rollup")]
    for table in tables:
        assert options[table] == ["fillfactor=80"], table
