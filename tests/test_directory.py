"""Vocabularies with ETags, the kit catalogue and the structure directory."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from shapely.geometry import Point, shape

from outreach.models import Role
from schemas.vocabulary import sector_features, vocabularies
from tests.payloads import encounter

VOCABULARIES = "/api/v1/vocabularies"
SITES = {
    "stalingrad": (48.8841, 2.3690),
    "eole": (48.8878, 2.3625),
    "porte_chapelle": (48.8985, 2.3590),
    "rosa_parks": (48.8967, 2.3735),
    "ourcq_villette": (48.8880, 2.3790),
    "porte_villette": (48.8985, 2.3970),
    "gare_du_nord": (48.8809, 2.3553),
    "la_chapelle": (48.8844, 2.3604),
    "marx_dormoy": (48.8906, 2.3598),
    "porte_aubervilliers": (48.8981, 2.3687),
}


def test_vocabularies_with_etag_and_304(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    headers = auth_headers(Role.WORKER)
    first = client.get(VOCABULARIES, headers=headers)
    assert first.status_code == 200
    body = first.get_json()
    assert [k["code"] for k in body["kits"]][:3] == ["embout", "feuille_alu", "filtre"]
    assert [s["code"] for s in body["services"]] == [
        "ecoute",
        "information_rdr",
        "soin_infirmier",
        "acces_droits",
        "hygiene",
        "depistage",
    ]
    destinations = [d["code"] for d in body["referral_destinations"]]
    assert destinations == [d["code"] for d in vocabularies()["referral_destinations"]]
    assert "assore" in destinations
    assert {f["properties"]["code"] for f in body["sectors"]["features"]} == set(SITES)
    etag = first.headers["ETag"]
    # An HTTP cache keeps it and revalidates it by itself: private, no-cache, not no-store.
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = client.get(VOCABULARIES, headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "private, no-cache"
    # Weak comparison (RFC 9110 13.1.2): a weakened tag, a list and * match too.
    for validator in (f"W/{etag}", f'"stale", {etag}', "*"):
        sent = {**headers, "If-None-Match": validator}
        assert client.get(VOCABULARIES, headers=sent).status_code == 304, validator
    for validator in ('"stale"', 'W/"stale"'):
        sent = {**headers, "If-None-Match": validator}
        assert client.get(VOCABULARIES, headers=sent).status_code == 200, validator
    assert client.get(VOCABULARIES).status_code == 401


def test_an_admin_extends_the_kit_catalogue(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    admin = auth_headers(Role.ADMIN)
    worker = auth_headers(Role.WORKER)
    before = client.get(VOCABULARIES, headers=worker).headers["ETag"]
    rejected = client.post(
        "/api/v1/sync",
        json={"encounters": [encounter(kits={"gel_hydroalcoolique": 1})]},
        headers=worker,
    )
    assert rejected.get_json()["results"][0]["status"] == "invalid"
    created = client.post(
        "/api/v1/kits", json={"code": "gel_hydroalcoolique", "label": "Gel"}, headers=admin
    )
    assert created.status_code == 201
    assert (
        client.post(
            "/api/v1/kits", json={"code": "gel_hydroalcoolique", "label": "x"}, headers=admin
        ).status_code
        == 409
    )
    assert (
        client.post(
            "/api/v1/kits", json={"code": "Bad Code!", "label": "x"}, headers=admin
        ).status_code
        == 422
    )
    assert client.get(VOCABULARIES, headers={**worker, "If-None-Match": before}).status_code == 200
    accepted = client.post(
        "/api/v1/sync",
        json={"encounters": [encounter(kits={"gel_hydroalcoolique": 1})]},
        headers=worker,
    )
    assert accepted.get_json()["results"][0]["status"] == "created"
    retired = client.patch(
        "/api/v1/kits/gel_hydroalcoolique", json={"active": False}, headers=admin
    )
    assert retired.get_json()["active"] is False
    assert (
        client.patch("/api/v1/kits/nothing", json={"active": False}, headers=admin).status_code
        == 404
    )


def test_structures_read_by_all_written_by_coordinators(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    coordinator = auth_headers(Role.COORDINATOR)
    worker = auth_headers(Role.WORKER)
    body = {
        "code": "caarud_test",
        "name": "CAARUD test",
        "destination": "caarud",
        "lat": 48.88,
        "lon": 2.36,
        "capacity": 20,
    }
    created = client.post("/api/v1/structures", json=body, headers=coordinator)
    assert created.status_code == 201
    structure = created.get_json()
    assert client.post("/api/v1/structures", json=body, headers=worker).status_code == 403
    assert client.post("/api/v1/structures", json=body, headers=coordinator).status_code == 409
    assert (
        client.post(
            "/api/v1/structures",
            json={**{k: v for k, v in body.items() if k != "lon"}, "code": "x2"},
            headers=coordinator,
        ).status_code
        == 422
    )
    listing = client.get("/api/v1/structures?destination=caarud", headers=worker).get_json()
    assert [s["code"] for s in listing["items"]] == ["caarud_test"]
    patched = client.patch(
        f"/api/v1/structures/{structure['id']}", json={"capacity": 25}, headers=coordinator
    )
    assert patched.get_json()["capacity"] == 25
    assert (
        client.patch(
            f"/api/v1/structures/{structure['id']}", json={"code": "renamed"}, headers=coordinator
        ).status_code
        == 422
    )
    referral = encounter(
        referrals=[{"to": "caarud", "structure": "caarud_test", "status": "accepted"}]
    )
    synced = client.post("/api/v1/sync", json={"encounters": [referral]}, headers=worker)
    assert synced.get_json()["results"][0]["status"] == "created"


def test_sector_polygons_are_valid_and_where_the_plan_says() -> None:
    areas = {f["properties"]["code"]: shape(f["geometry"]) for f in sector_features()}
    service_area = areas.pop("service_area")
    assert set(areas) == set(SITES)
    for code, polygon in areas.items():
        assert polygon.is_valid, code
        assert polygon.contains(Point(SITES[code][1], SITES[code][0])), code
        assert service_area.contains(polygon), code
        ring = polygon.exterior
        assert ring.coords[0] == ring.coords[-1]
        assert ring.is_ccw, f"{code}: exterior ring must be counter-clockwise (RFC 7946)"
    codes = sorted(areas)
    for i, first in enumerate(codes):
        for second in codes[i + 1 :]:
            assert not areas[first].intersects(areas[second]), (first, second)
    # Paris itself is inside the service area; Lyon is not.
    assert service_area.contains(Point(2.3522, 48.8566))
    assert not service_area.contains(Point(4.8357, 45.7640))
