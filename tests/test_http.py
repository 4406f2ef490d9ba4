"""Probes, API documentation with no CDN, security headers, request ids."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from outreach import create_app
from outreach.models import Role
from tests.helpers import POLICY, make_settings

LOGIN = "/api/v1/auth/login"


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/api/v1/healthz").get_json() == {"status": "ok"}
    ready = client.get("/api/v1/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "database": "ok"}


def test_readyz_reports_an_unreachable_database(tmp_path: Path) -> None:
    # A PostgreSQL URL on a port where nothing listens: the process lives, it is not ready.
    url = "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=1"
    app = create_app(make_settings(url, tmp_path))
    client = app.test_client()
    assert client.get("/api/v1/healthz").status_code == 200
    response = client.get("/api/v1/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "not ready", "database": "unreachable"}
    login = client.post("/api/v1/auth/login", json={"username": "a", "password": "b"})
    assert login.status_code == 503
    assert login.get_json()["code"] == 503
    assert "postgres" not in login.get_data(as_text=True)


def test_openapi_document(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "Outreach"
    assert "/api/v1/auth/login" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/api/v1/auth/me"]["get"]["security"] == [{"bearerAuth": []}]


def test_docs_page_loads_everything_from_this_server(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "docs page must not use a CDN"
    assets = re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", html)
    assert len(assets) == 3
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        response.close()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_security_headers_on_every_response(app: Flask, client: FlaskClient) -> None:
    for response in (
        client.get("/api/v1/healthz"),
        client.get("/api/v1/auth/me"),
        client.get("/api/v1/missing"),
        client.get("/api/docs"),
    ):
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "Access-Control-Allow-Origin" not in headers
    assert client.get("/api/v1/healthz").headers["Cache-Control"] == "no-store"


def test_every_route_sends_the_security_headers_no_cors_and_no_cookie(
    app: Flask, client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    headers = {**auth_headers(Role.COORDINATOR), "Origin": "https://elsewhere.example"}
    responses = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()):
            continue
        url = re.sub(r"<string:code>", "pipe", rule.rule)
        url = re.sub(r"<path:[a-z_]+>", "missing.txt", url)
        url = re.sub(r"<(?:uuid:)?[a-z_]+>", "00000000-0000-4000-8000-000000000000", url)
        responses.append((url, client.get(url, headers=headers)))
    preflight = {
        "Origin": "https://elsewhere.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    responses.append(("OPTIONS /sync", client.options("/api/v1/sync", headers=preflight)))
    login = client.post(LOGIN, json={"username": "nobody", "password": "wrong password"})
    responses.append(("POST /auth/login", login))
    # Every GET route of the policy table, the preflight and the login.
    assert len(responses) == sum(1 for method, _rule in POLICY if method == "GET") + 2
    for url, response in responses:
        sent = response.headers
        assert sent["X-Content-Type-Options"] == "nosniff", url
        assert sent["X-Frame-Options"] == "DENY", url
        assert "frame-ancestors 'none'" in sent["Content-Security-Policy"], url
        # CORS closed: no origin, method or header is ever granted to another site.
        assert not [key for key, _ in sent.items() if key.lower().startswith("access-control-")]
        # Tokens travel in the Authorization header; the service sets no cookie at all.
        assert "Set-Cookie" not in sent, url
        if url.startswith("/api/"):
            # Only a response with an ETag (the vocabularies) may be kept, privately.
            expected = "private, no-cache" if "ETag" in sent else "no-store"
            assert sent["Cache-Control"] == expected, url
        response.close()


def test_request_id_is_echoed_or_made(client: FlaskClient) -> None:
    given = client.get("/api/v1/healthz", headers={"X-Request-ID": "phone-1234-abcd"})
    assert given.headers["X-Request-ID"] == "phone-1234-abcd"
    made = client.get("/api/v1/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])


def test_json_is_gzipped_for_a_client_that_accepts_it(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    plain = client.get("/api/openapi.json")
    assert "Content-Encoding" not in plain.headers
    packed = client.get("/api/openapi.json", headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert len(packed.get_data()) < len(plain.get_data()) / 4
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    refused = client.get("/api/openapi.json", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers
    # Smaller than a packet: not worth it.
    small = client.get("/api/v1/healthz", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers
    # A compressed body's ETag is weak, and still revalidates.
    worker = {**auth_headers(Role.WORKER), "Accept-Encoding": "gzip"}
    vocabularies = client.get("/api/v1/vocabularies", headers=worker)
    assert vocabularies.headers["Content-Encoding"] == "gzip"
    etag = vocabularies.headers["ETag"]
    assert etag.startswith('W/"')
    again = client.get("/api/v1/vocabularies", headers={**worker, "If-None-Match": etag})
    assert again.status_code == 304
