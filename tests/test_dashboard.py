"""The dashboard in a real browser: Debian's Chromium driven by playwright.

A real HTTP server (werkzeug, threaded) serves the app on SQLite with the demo data
and a planted moving scene; the page is driven as a coordinator would use it.
Screenshots go to ``test-output/dashboard/``.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import h3
import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import make_server

from outreach import create_app
from outreach.clock import paris_today
from outreach.extensions import db
from outreach.services import demo, directory, periods
from outreach.services.context import OPERATOR
from tests.accessibility import grave_violations
from tests.helpers import DEMO_PASSWORD, empty_database, headers_for, make_settings
from tests.payloads import CHATELET, at, encounter

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "dashboard"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("dashboard") / "dashboard.db"
    settings = make_settings(f"sqlite:///{database}", database.parent / "instance")
    app = create_app(settings)
    from outreach.migrate import upgrade

    upgrade(settings.database_url)
    empty_database(app)
    _seed(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    db.engine_for(app).dispose()


def _seed(app: Flask) -> None:
    """Demo accounts and three weeks of activity, plus a scene that moved in the last
    whole week (what hotspots compare by default)."""
    settings = app.config["OUTREACH_SETTINGS"]
    with app.app_context():
        session = db.session
        passwords = app.extensions["outreach.security"].passwords
        demo.seed_demo_accounts(session, passwords, DEMO_PASSWORD)
        directory.seed_structures(session, OPERATOR)
        demo.seed_demo_activity(session, settings, days=21)
    client = app.test_client()
    headers = headers_for(client, "demo-worker", DEMO_PASSWORD)
    week = periods.last_whole_week(paris_today())
    scene = [
        encounter(CHATELET, occurred_at=at(week.start + timedelta(days=d), 13 + i))
        for d in range(6)
        for i in range(4)
    ]
    response = client.post("/api/v1/sync", json={"encounters": scene}, headers=headers)
    assert response.get_json()["counts"]["created"] == len(scene)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup-dev` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1024, "height": 768}, accept_downloads=True)
    opened = context.new_page()
    outside: list[str] = []
    opened.on(
        "request",
        lambda r: (
            None if r.url.startswith((live_server, "blob:", "data:")) else outside.append(r.url)
        ),
    )
    yield opened
    context.close()
    assert outside == [], f"the page asked the outside world for {outside}"


def _log_in(page: Page, live_server: str, username: str) -> None:
    page.goto(f"{live_server}/dashboard")
    page.get_by_label("Identifiant", exact=True).fill(username)
    page.get_by_label("Mot de passe", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()


def _sectors_without_night_shift(live_server: str, day: date) -> set[str]:
    """What the coverage route itself says, asked over plain HTTP."""

    def call(path: str, body: dict[str, str] | None = None, token: str = "") -> Any:
        request = urllib.request.Request(  # noqa: S310 (the local test server)
            f"{live_server}/api/v1{path}",
            data=json.dumps(body).encode() if body else None,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request) as response:  # noqa: S310 (the local test server)
            return json.load(response)

    token = call("/auth/login", {"username": "demo-coordinator", "password": DEMO_PASSWORD})
    coverage = call(f"/stats/coverage?from={day}&to={day}", token=token["access_token"])
    return {row["sector"] for row in coverage["sectors"] if not row["days"][0]["slots"]["night"]}


def _figure(page: Page, name: str) -> str:
    return page.locator(f'[data-figure="{name}"] dd').inner_text()


def test_a_coordinator_reads_the_map_filters_opens_a_hotspot_and_downloads_the_report(
    page: Page, live_server: str
) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    _log_in(page, live_server, "demo-coordinator")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("path.hexagon").first).to_be_attached()
    expect(page.locator("path.sector").first).to_be_attached()
    assert page.locator("path.hexagon").count() > 5
    assert page.locator("path.sector").count() == 10
    expect(page.locator("#figures .figure")).to_have_count(7)
    expect(page.locator("#coverage td").first).to_be_attached()
    # Last Sunday night: the grid names the sectors no shift covered.
    sunday = paris_today() - timedelta(days=paris_today().weekday() + 1)
    nights = page.locator(f'#coverage td[data-day="{sunday}"]')
    expect(nights).to_have_count(10)
    shown = {
        nights.nth(i).get_attribute("data-sector")
        for i in range(10)
        if "night" not in (nights.nth(i).get_attribute("data-slots") or "")
    }
    assert shown == _sectors_without_night_shift(live_server, sunday)
    expect(page.locator("#legend")).to_contain_text("secret statistique")
    expect(page.locator("#status")).to_contain_text("Chiffres protégés")
    expect(page.locator("#coverage-days")).to_contain_text("28 derniers jours")
    page.screenshot(path=str(OUTPUT / "coordinator-last-week.png"), full_page=True)

    # Associations are chosen by name.
    names = page.get_by_label("Association", exact=True).locator("option").all_inner_texts()
    assert names[1:] == ["Association Maraude Nord (démo)", "Association RdR Est (démo)"]
    week = _figure(page, "encounters")
    # The grid's periods, as the server offers them: a month holds more than a week.
    month = next(p for p, _end in periods.offered(paris_today(), exact=False) if p.kind == "month")
    page.get_by_label("Période", exact=True).select_option(value=month.name)
    page.get_by_role("button", name="Actualiser").click()
    expect(page.locator('[data-figure="encounters"] dd')).not_to_have_text(week)
    page.screenshot(path=str(OUTPUT / "coordinator-month.png"), full_page=True)

    # The planted scene's hexagon at the dashboard's default resolution (8).
    hotspot = page.locator(f'.hotspot-item[data-cell="{h3.latlng_to_cell(*CHATELET, 8)}"]')
    expect(hotspot).to_be_visible()
    zoom = page.evaluate("outreachMap.getZoom()")
    hotspot.click()
    # A function, not an expression: the page's CSP forbids evaluating strings.
    page.wait_for_function("(zoom) => outreachMap.getZoom() !== zoom", arg=zoom)
    centre = page.evaluate("[outreachMap.getCenter().lat, outreachMap.getCenter().lng]")
    assert abs(centre[0] - 48.8587) < 0.01
    assert abs(centre[1] - 2.3472) < 0.01
    page.screenshot(path=str(OUTPUT / "coordinator-hotspot.png"))

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Rapport annuel (CSV)").click()
    download = download_info.value
    assert download.suggested_filename == f"activite-{paris_today().year}.csv"
    saved = OUTPUT / download.suggested_filename
    download.save_as(saved)
    assert saved.read_text("utf-8-sig").startswith("Rubrique;Indicateur;Code;Valeur")

    # axe-core finds no serious or critical violation (contrast, labels, keyboard).
    assert grave_violations(page) == []

    # Every control is labelled and reachable from the keyboard.
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('#app input, #app select')]"
        ".filter(e => e.labels.length === 0).map(e => e.id)"
    )
    assert unlabelled == []
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement !== document.body")

    page.set_viewport_size({"width": 768, "height": 1024})
    page.screenshot(path=str(OUTPUT / "coordinator-tablet.png"), full_page=True)
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page.locator("#login-panel")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_worker_is_told_the_dashboard_is_not_for_its_role(page: Page, live_server: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    _log_in(page, live_server, "demo-worker")
    expect(page.locator("#refused")).to_be_visible()
    expect(page.locator("#refused")).to_contain_text("pas prévu pour votre rôle")
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    assert grave_violations(page) == []
    page.screenshot(path=str(OUTPUT / "worker-refused.png"))
    page.get_by_role("button", name="Revenir à la connexion").click()
    expect(page.locator("#login-panel")).to_be_visible()
    assert grave_violations(page) == []


def test_a_locked_login_says_when_to_try_again(page: Page, live_server: str) -> None:
    """The lock-out's Retry-After, in minutes, not "later" (issue 26, section 5)."""
    page.goto(f"{live_server}/dashboard")
    statuses = []
    for _ in range(6):
        page.get_by_label("Identifiant", exact=True).fill("nobody-locked-out")
        page.get_by_label("Mot de passe", exact=True).fill("not the password at all")
        with page.expect_response(f"{live_server}/api/v1/auth/login") as answer:
            page.get_by_role("button", name="Se connecter").click()
        statuses.append(answer.value.status)
    assert statuses == [401] * 5 + [429]
    expect(page.locator("#login-error")).to_have_text(
        re.compile(r"Trop d'essais : réessayez dans 1[0-5] min[.]")
    )


def test_the_page_sends_a_strict_content_security_policy(live_server: str, page: Page) -> None:
    response = page.goto(f"{live_server}/dashboard")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy


def test_an_org_admin_reads_its_own_exact_figures_and_asks_only_what_it_may(
    page: Page, live_server: str
) -> None:
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    _log_in(page, live_server, "demo-orgadmin")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("Chiffres exacts de votre association")
    expect(page.locator("#who")).to_contain_text("responsable d'association")
    # Its association, by name, fixed.
    organisation = page.get_by_label("Association", exact=True)
    expect(organisation).to_be_disabled()
    expect(organisation.locator("option:checked")).to_have_text("Association Maraude Nord (démo)")
    # Coverage and hotspots are not for its role: the page does not ask (no refusal to audit).
    assert not [url for url in asked if "/stats/coverage" in url or "/stats/hotspots" in url]
    assert grave_violations(page) == []
    page.screenshot(path=str(OUTPUT / "org-admin.png"), full_page=True)
