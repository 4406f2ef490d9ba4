"""Published maps are served again until the counters change, and never across callers.

A map request served from a worker's published maps reads no counter row, answers
the same body and is audited like any other; a sync, an amendment, a deletion, a
rebuild or a purge raises the counters' generation in its own transaction, and the
next request reads the counters again.
"""

from __future__ import annotations

from datetime import timedelta

import h3
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from outreach.extensions import db
from outreach.models import AuditEvent
from outreach.services import rollups
from outreach.services.published import PublishedMap, PublishedMaps, published_map
from outreach.services.stats import paris_today
from tests.conftest import statements_of
from tests.payloads import encounter
from tests.test_stats import CENTRES, at, get, people, seed_mixed_day, sync

__all__ = ["people"]

MAP_ROUTES = (
    "/api/v1/stats/map",
    "/api/v1/stats/map?resolution=8",
    "/api/v1/stats/sectors",
    "/api/v1/stats/hotspots",
)
COUNTER_TABLES = ("rollup_cell_spans", "rollup_cells", "rollup_sectors")


def counter_reads(statements: list[str]) -> list[str]:
    return [
        s
        for s in statements
        if s.lstrip().upper().startswith("SELECT") and any(t in s for t in COUNTER_TABLES)
    ]


def audited(app: Flask, action: str) -> list[int]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditEvent.records)
                .where(AuditEvent.action == action)
                .order_by(AuditEvent.seq)
            )
        )


def test_a_map_is_served_again_until_a_sync_changes_the_counters(
    app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    yesterday = paris_today() - timedelta(days=1)
    seed_mixed_day(client, people["worker"], yesterday)
    coordinator = people["coordinator"]
    for url in MAP_ROUTES:
        with statements_of(app) as first_reads:
            first = get(client, coordinator, url)
        assert counter_reads(first_reads), url
        with statements_of(app) as again_reads:
            again = get(client, coordinator, url)
        assert counter_reads(again_reads) == [], url
        assert again == first, url
    # Served again or not, each request left its event, with the same count released.
    for action in ("stats.map", "stats.sectors", "stats.hotspots"):
        records = audited(app, action)
        assert len(records) == (4 if action == "stats.map" else 2)
        assert records[0] == records[1]

    # Twelve encounters in a hexagon no map showed: the next map reads and shows it.
    before = {f["id"] for f in get(client, coordinator, "/api/v1/stats/map")["features"]}
    new_place = (48.8320, 2.3560)
    sync(
        client,
        people["worker"],
        encounters=[encounter(new_place, occurred_at=at(yesterday, 16)) for _ in range(12)],
    )
    with statements_of(app) as after_reads:
        after = get(client, coordinator, "/api/v1/stats/map")
    assert counter_reads(after_reads)
    shown = {f["id"]: f["properties"] for f in after["features"]}
    assert set(shown) - before == {h3.latlng_to_cell(*new_place, 9)}
    assert shown[h3.latlng_to_cell(*new_place, 9)]["encounters"] == 12


def test_a_resend_leaves_the_generation_and_every_change_raises_it(
    app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    def generation() -> int:
        with app.app_context(), db.session.begin():
            return rollups.generation(db.session)

    worker = people["worker"]
    admin = people["admin_a"]
    items = [encounter(CENTRES["eole"]) for _ in range(2)]
    assert generation() == 0
    sync(client, worker, encounters=items)
    assert generation() == 1
    sync(client, worker, encounters=items)  # duplicates: nothing changed
    assert generation() == 1
    target = items[0]["id"]
    amended = client.patch(f"/api/v1/encounters/{target}", json={"people": 3}, headers=admin)
    assert amended.status_code == 200, amended.get_json()
    assert generation() == 2
    deleted = client.delete(f"/api/v1/encounters/{target}", json={"reason": "other"}, headers=admin)
    assert deleted.status_code == 204
    assert generation() == 3
    runner = app.test_cli_runner()
    assert runner.invoke(args=["rollups", "rebuild"]).exit_code == 0
    assert generation() > 3


def test_each_organisation_gets_its_own_map(
    client: FlaskClient, people: dict[str, dict[str, str]]
) -> None:
    seed_mixed_day(client, people["worker"], paris_today() - timedelta(days=1))
    own = get(client, people["admin_a"], "/api/v1/stats/map")
    assert own["features"]
    assert own["filters"]["organisation"] == "assoc-a"
    other = get(client, people["admin_b"], "/api/v1/stats/map")
    assert other["features"] == []
    assert other["filters"]["organisation"] == "assoc-b"
    whole = get(client, people["coordinator"], "/api/v1/stats/map")
    assert whole["filters"]["organisation"] is None
    assert [f["id"] for f in whole["features"]] == [f["id"] for f in own["features"]]


class Builder:
    """Builds a map of ``features`` features and counts how often it was asked to."""

    def __init__(self, features: int) -> None:
        self.features = features
        self.builds = 0

    def __call__(self) -> PublishedMap:
        self.builds += 1
        return published_map([b"{}"] * self.features, 0)


def test_the_budget_keeps_the_most_recent_maps_and_never_one_too_big(app: Flask) -> None:
    with app.app_context(), db.session.begin():
        session = db.session
        maps = PublishedMaps(max_features=10)
        small, medium, other, huge = Builder(4), Builder(6), Builder(3), Builder(11)
        maps.publish(session, "small", small)
        maps.publish(session, "medium", medium)
        assert len(maps) == 2
        maps.publish(session, "small", small)  # used last: medium is now the oldest
        maps.publish(session, "other", other)  # 13 features: medium leaves
        assert len(maps) == 2
        maps.publish(session, "small", small)
        maps.publish(session, "medium", medium)
        assert small.builds == 1
        assert medium.builds == 2
        maps.publish(session, "huge", huge)
        maps.publish(session, "huge", huge)
        assert huge.builds == 2
        nothing = PublishedMaps(max_features=0)
        nothing.publish(session, "small", small)
        assert len(nothing) == 0
