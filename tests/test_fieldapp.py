"""The workers' field app in a real browser: Debian's Chromium driven by playwright.

A real HTTP server (werkzeug, threaded) serves the app on each engine; the phone is a
persistent Chromium profile with a phone's viewport, so that its IndexedDB, service
worker and cache survive closing the browser, as a phone's do. The scenario is the
night the app is built for: log in, lose the network, start a shift and log twenty
encounters, reload, close and reopen the browser, find the network again, and check
in the database that every item is stored exactly once. Screenshots go to
``test-output/fieldapp/``; axe-core (vendored, tests only) checks every screen.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h3
import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Page, Playwright, Route, expect, sync_playwright
from sqlalchemy import select
from werkzeug.serving import make_server

from outreach import create_app
from outreach.extensions import db
from outreach.models import AuditEvent, Encounter, Shift
from outreach.services import demo, directory
from outreach.services.context import OPERATOR
from outreach.services.geo import sector_of_cell
from tests.accessibility import grave_violations
from tests.helpers import DEMO_PASSWORD, count_rows, empty_database, headers_for, make_settings
from tests.payloads import encounter

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "fieldapp"
PHONE = {"width": 390, "height": 844}
# Inside the Stalingrad sector.
POSITION = (48.884137, 2.369042)


@dataclass
class Server:
    url: str
    app: Flask

    def count(self, model: type, *where: Any) -> int:
        return count_rows(self.app, model, *where)

    def encounters(self) -> list[Encounter]:
        with self.app.app_context():
            session = db.session
            with session.begin():
                rows = list(session.scalars(select(Encounter)))
                session.expunge_all()
                return rows


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    settings = make_settings(database_url, tmp_path / "instance")
    app = create_app(settings)
    empty_database(app)
    with app.app_context():
        session = db.session
        passwords = app.extensions["outreach.security"].passwords
        demo.seed_demo_accounts(session, passwords, DEMO_PASSWORD)
        directory.seed_structures(session, OPERATOR)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{http.server_port}", app)
    http.shutdown()
    db.engine_for(app).dispose()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup-dev` installs Debian's chromium")
    with sync_playwright() as running:
        yield running


@dataclass
class Phone:
    """One phone: a Chromium profile kept on disk between openings."""

    playwright: Playwright
    profile: Path
    server: Server
    context: BrowserContext | None = None
    page: Page | None = None
    taps: int = 0
    sent_bodies: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)

    def open(self, *, offline: bool = False) -> Page:
        self.context = self.playwright.chromium.launch_persistent_context(
            str(self.profile),
            executable_path=CHROMIUM,
            args=["--no-sandbox"],
            headless=True,
            viewport=PHONE,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="fr-FR",
            timezone_id="Europe/Paris",
            offline=offline,
        )
        self.context.grant_permissions(["geolocation"], origin=self.server.url)
        self.context.set_geolocation({"latitude": POSITION[0], "longitude": POSITION[1]})
        self.context.on("request", self._seen)
        self.context.on("response", lambda r: self.answers.append((r.url, r.status)))
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.goto(f"{self.server.url}/app/")
        return self.page

    def _seen(self, request: Any) -> None:
        if not request.url.startswith((self.server.url, "blob:", "data:")):
            self.outside.append(request.url)
        if request.method == "POST" and request.url.endswith("/api/v1/sync"):
            self.sent_bodies.append(request.post_data or "")

    def close(self) -> None:
        assert self.context is not None
        self.context.close()
        self.context = self.page = None

    def tap(self, name: str) -> None:
        assert self.page is not None
        self.page.get_by_role("button", name=name, exact=True).click()
        self.taps += 1

    def shot(self, name: str) -> None:
        assert self.page is not None
        OUTPUT.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)

    def accessible(self, screen: str) -> None:
        """axe-core finds no serious or critical violation on what is shown."""
        assert self.page is not None
        assert grave_violations(self.page) == [], screen

    def stored(self, key: str) -> Any:
        """A value of the app's key-value store in IndexedDB."""
        assert self.page is not None
        return self.page.evaluate(
            """(key) => new Promise((done) => {
              const open = indexedDB.open('outreach-field');
              open.onsuccess = () => {
                const request = open.result.transaction('kv').objectStore('kv').get(key);
                request.onsuccess = () => done(request.result ?? null);
              };
            })""",
            key,
        )

    def pending(self) -> int:
        assert self.page is not None
        return int(self.page.locator("#pending-count").inner_text())

    def outbox_ids(self) -> set[str]:
        assert self.page is not None
        return set(self.page.evaluate("outreachField.state.items.map(i => i.id)"))


@pytest.fixture
def phone(playwright: Playwright, server: Server, tmp_path: Path) -> Iterator[Phone]:
    made = Phone(playwright, tmp_path / "profile", server)
    yield made
    if made.context is not None:
        made.close()
    assert made.outside == [], f"the app asked the outside world for {made.outside}"


def _log_in(phone: Phone, username: str = "demo-worker") -> None:
    page = phone.page
    assert page is not None
    page.get_by_label("Identifiant", exact=True).fill(username)
    page.get_by_label("Mot de passe", exact=True).fill(DEMO_PASSWORD)
    phone.tap("Se connecter")
    expect(page.locator("#screen-shift")).to_be_visible()
    # The service worker holds the shell before the network goes.
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")


def _start_shift(phone: Phone) -> None:
    page = phone.page
    assert page is not None
    page.locator("#shift-sectors label", has_text="Stalingrad").click()
    phone.taps += 1
    phone.tap("Commencer la maraude")
    expect(page.locator("#screen-encounter")).to_be_visible()
    expect(page.locator("#sector")).to_have_value("stalingrad")


def _sent(phone: Phone) -> None:
    """Wait for the sync that follows a save with network, and an empty outbox."""
    assert phone.page is not None
    phone.page.wait_for_function(
        "() => !outreachField.state.syncing"
        " && document.getElementById('sync-status').textContent.startsWith('Envoyé')"
    )
    expect(phone.page.locator("#pending-count")).to_have_text("0")
    # So that the next wait sees the next sync's word, not this one's.
    phone.page.evaluate("document.getElementById('sync-status').textContent = ''")


def _offline_with_one_encounter(phone: Phone) -> Page:
    """Logged in, then offline, one encounter in Éole waiting in the outbox."""
    page = phone.open()
    _log_in(phone)
    assert phone.context is not None
    phone.context.set_offline(True)
    phone.tap("Rencontre")
    page.get_by_label("Secteur", exact=True).select_option("eole")
    _log_encounter(phone)
    return page


def _log_encounter(phone: Phone, kits: int = 2) -> None:
    page = phone.page
    assert page is not None
    before = phone.pending()
    for _ in range(kits):
        phone.tap("Kit base (inhalation de crack) : un de plus")
    phone.tap("Enregistrer la rencontre")
    expect(page.locator("#pending-count")).to_have_text(str(before + 1))


def test_a_night_offline_goes_up_exactly_once(phone: Phone, server: Server) -> None:
    page = phone.open()
    expect(page.locator("#screen-login")).to_be_visible()
    phone.accessible("login")
    phone.shot("1-login")
    _log_in(phone)
    phone.accessible("shift")
    phone.shot("2-shift")
    # Chromium's own verdict: the manifest, icons and service worker make it installable.
    assert phone.context is not None
    cdp = phone.context.new_cdp_session(page)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == []
    assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []

    assert phone.context is not None
    phone.context.set_offline(True)
    expect(page.locator("#network")).to_have_text("Hors ligne")
    phone.taps = 0
    _start_shift(phone)
    shift_taps = phone.taps
    phone.taps = 0
    _log_encounter(phone)
    # A plain encounter with two kits, in the sector the shift planned: three taps.
    assert phone.taps == 3
    assert shift_taps == 2
    phone.accessible("encounter")
    phone.shot("3-encounter")
    for _ in range(19):
        _log_encounter(phone)
    assert phone.pending() == 21
    queued = phone.outbox_ids()
    assert len(queued) == 21

    page.reload()
    expect(page.locator("#screen-encounter")).to_be_visible()
    assert phone.pending() == 21
    phone.tap("Maraude")
    phone.tap("Terminer la maraude")
    phone.tap("Envoi")
    expect(page.locator("#outbox-list > li")).to_have_count(21)
    phone.accessible("outbox")
    phone.shot("4-outbox-offline")
    first_refresh = phone.stored("session")["refresh_token"]
    phone.close()

    page = phone.open(offline=True)
    expect(page.locator("#screen-shift")).to_be_visible()
    assert phone.pending() == 21
    assert phone.outbox_ids() == queued
    assert server.count(Encounter) == 0
    assert phone.sent_bodies == []

    assert phone.context is not None
    phone.context.set_offline(False)
    expect(page.locator("#pending-count")).to_have_text("0")
    assert server.count(Shift) == 1
    assert server.count(Encounter) == 20
    stored = server.encounters()
    assert {str(e.id) for e in stored} | {str(s) for s in {e.shift_id for e in stored}} == queued
    assert all(e.sector == "stalingrad" and e.kits == {"kit_base": 2} for e in stored)
    # The reopened app had no access token: it refreshed, and the refresh token rotated.
    assert phone.stored("session")["refresh_token"] != first_refresh
    # Only hexagons left the phone.
    assert phone.sent_bodies
    assert all('"lat"' not in body for body in phone.sent_bodies)

    phone.tap("Historique")
    expect(page.locator("#history-list > li")).to_have_count(20)
    phone.accessible("history")
    phone.shot("5-history")
    # The first refresh token is spent (and its reuse revokes the phone's session: last).
    spent = server.app.test_client().post(
        "/api/v1/auth/refresh", json={"refresh_token": first_refresh}
    )
    assert spent.status_code == 401


def test_a_sync_cut_mid_flight_is_resent_and_stored_once(phone: Phone, server: Server) -> None:
    page = phone.open()
    _log_in(phone)
    assert phone.context is not None
    phone.context.set_offline(True)
    _start_shift(phone)
    for _ in range(5):
        _log_encounter(phone)
    phone.tap("Maraude")
    phone.tap("Terminer la maraude")

    cut: list[int] = []

    def arrive_then_cut(route: Route) -> None:
        # The server stores the batch; its answer never reaches the phone.
        answer = route.fetch()
        cut.append(answer.status)
        route.abort("connectionreset")

    phone.context.route("**/api/v1/sync", arrive_then_cut)
    phone.context.set_offline(False)
    page.wait_for_function(
        "() => !outreachField.state.syncing"
        " && document.getElementById('sync-status').textContent.includes('interrompu')"
    )
    assert cut == [200]
    assert server.count(Encounter) == 5
    assert phone.pending() == 6
    phone.context.unroute("**/api/v1/sync")

    phone.tap("Envoi")
    phone.tap("Envoyer maintenant")
    expect(page.locator("#pending-count")).to_have_text("0")
    assert server.count(Encounter) == 5
    assert server.count(Shift) == 1


def test_an_invalid_item_is_shown_fixed_and_resent(phone: Phone, server: Server) -> None:
    page = phone.open()
    _log_in(phone)
    phone.tap("Rencontre")
    page.get_by_label("Secteur", exact=True).select_option("gare_du_nord")
    # A mistyped time, two hours ahead: the server refuses it, the phone shows why.
    page.get_by_label("Heure de la rencontre").fill(
        page.evaluate("new Date(Date.now() + 2 * 3600e3).toISOString().slice(0, 16)")
    )
    phone.tap("Kit base (inhalation de crack) : un de plus")
    phone.tap("Enregistrer la rencontre")
    phone.tap("Envoi")
    invalid = page.locator("#outbox-list > li.invalid")
    expect(invalid).to_contain_text("Heure : heure dans le futur")
    assert phone.pending() == 1
    phone.accessible("outbox-invalid")
    phone.shot("6-invalid")

    invalid.get_by_role("button", name="Corriger").click()
    expect(page.locator("#editing")).to_be_visible()
    page.get_by_label("Heure de la rencontre").fill(
        page.evaluate(
            "new Date(Date.now() - 3600e3 - new Date().getTimezoneOffset() * 60e3)"
            ".toISOString().slice(0, 16)"
        )
    )
    phone.tap("Enregistrer la rencontre")
    expect(page.locator("#pending-count")).to_have_text("0")
    stored = server.encounters()
    assert [(e.sector, e.kits) for e in stored] == [("gare_du_nord", {"kit_base": 1})]


def test_position_and_person_code_stay_on_the_phone(phone: Phone, server: Server) -> None:
    page = phone.open()
    _log_in(phone)
    # Opened again with network: the vocabularies are asked with their ETag, unchanged.
    page.reload()
    expect(page.locator("#screen-shift")).to_be_visible()
    vocabularies = [status for url, status in phone.answers if url.endswith("/vocabularies")]
    assert vocabularies == [200, 304]
    phone.tap("Rencontre")
    phone.tap("Utiliser ma position (avec l'accord de la personne)")
    expect(page.locator("#position-status")).to_contain_text("hexagone")
    page.locator("#person-details > summary").click()
    page.locator("#code-details > summary").click()
    phone.accessible("person-code")
    for _ in range(2):
        page.get_by_label("Deux premières lettres du prénom").fill("Élodie")
        page.get_by_label("Deux premières lettres du nom").fill("Dupré")
        page.get_by_label("Année de naissance").fill("1987")
        phone.tap("Calculer le code")
        expect(page.locator("#code-status")).to_contain_text("Code calculé")
        phone.shot("7-person-code")
        phone.tap("Enregistrer la rencontre")
        _sent(phone)
        page.locator("#person-details > summary").click()
        page.locator("#code-details > summary").click()
    stored = server.encounters()
    assert len(stored) == 2
    assert {e.cell for e in stored} == {h3.latlng_to_cell(*POSITION, 9)}
    assert stored[0].ref_hash is not None
    assert stored[0].ref_hash == stored[1].ref_hash
    sent = "".join(phone.sent_bodies)
    for trait in ("lodie", "EL", "Dupr", "1987", str(POSITION[0])[:6]):
        assert trait not in sent.replace("Élodie", ""), trait
    body = json.loads(phone.sent_bodies[0])
    assert body["encounters"][0]["location"] == {"cell": h3.latlng_to_cell(*POSITION, 9)}
    assert body["encounters"][0]["person"]["ref"].startswith("p1-")


def test_logout_keeps_only_what_is_not_sent(phone: Phone, server: Server) -> None:
    page = _offline_with_one_encounter(phone)
    phone.context.set_offline(False)
    page.wait_for_function("() => outreachField.state.syncing === false")
    phone.context.set_offline(True)
    phone.tap("Rencontre")
    _log_encounter(phone)
    phone.tap("Maraude")
    phone.tap("Se déconnecter")
    expect(page.locator("#kept-note")).to_contain_text("1 élément(s) non envoyé(s)")
    keys: list[str] = page.evaluate(
        """() => new Promise((done) => {
          const open = indexedDB.open('outreach-field');
          open.onsuccess = () => {
            const request = open.result.transaction('kv').objectStore('kv').getAllKeys();
            request.onsuccess = () => done(request.result);
          };
        })"""
    )
    assert keys == []
    assert server.count(Encounter) == 1


def test_the_app_is_served_with_a_strict_policy_a_manifest_and_a_worker(server: Server) -> None:
    client = server.app.test_client()
    assert client.get("/app").status_code == 308
    page = client.get("/app/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe" not in policy
    assert page.headers["Permissions-Policy"].startswith("geolocation=(self)")
    manifest = client.get("/app/manifest.webmanifest")
    assert manifest.mimetype == "application/manifest+json"
    icons = [icon["sizes"] for icon in json.loads(manifest.data)["icons"]]
    assert icons == ["192x192", "512x512", "any"]
    worker = client.get("/app/sw.js")
    assert worker.mimetype == "text/javascript"
    assert "connect-src 'self'" in worker.headers["Content-Security-Policy"]
    for path in json.loads(worker.get_data(as_text=True).split("const SHELL = ")[1].split(";")[0]):
        assert client.get(path).status_code == 200, path


def test_an_unsent_item_can_be_discarded_on_purpose(phone: Phone, server: Server) -> None:
    """An encounter logged by mistake, still waiting offline, leaves the phone for good
    after two taps, and never reaches the server."""
    page = _offline_with_one_encounter(phone)
    assert phone.pending() == 1
    phone.tap("Envoi")
    waiting = page.locator("#outbox-list > li.pending")
    waiting.get_by_role("button", name="Abandonner").click()
    # One tap only arms it.
    assert phone.pending() == 1
    waiting.get_by_role("button", name="Confirmer l'abandon (définitif)").click()
    expect(page.locator("#pending-count")).to_have_text("0")
    phone.context.set_offline(False)
    page.wait_for_function("() => outreachField.state.syncing === false")
    assert server.count(Encounter) == 0


def test_a_conflict_is_shown_and_can_be_discarded(phone: Phone, server: Server) -> None:
    page = _offline_with_one_encounter(phone)
    (queued,) = phone.outbox_ids()
    # Meanwhile the same id reached the server with other content (another client's bug).
    client = server.app.test_client()
    headers = headers_for(client, "demo-worker", DEMO_PASSWORD)
    other = encounter(id=queued, kits={"pipe": 3})
    stored = client.post("/api/v1/sync", json={"encounters": [other]}, headers=headers)
    assert stored.get_json()["counts"]["created"] == 1

    phone.context.set_offline(False)
    phone.tap("Envoi")
    conflict = page.locator("#outbox-list > li.conflict")
    expect(conflict).to_contain_text("déjà enregistré avec un autre contenu")
    assert phone.pending() == 1
    phone.accessible("outbox-conflict")
    conflict.get_by_role("button", name="Abandonner").click()
    conflict.get_by_role("button", name="Confirmer l'abandon (définitif)").click()
    expect(page.locator("#pending-count")).to_have_text("0")
    assert [e.kits for e in server.encounters()] == [{"pipe": 3}]

    # Logging out with network ends the login on the server too.
    phone.tap("Historique")
    expect(page.locator("#history-list > li")).to_have_count(1)
    phone.tap("Maraude")
    phone.tap("Se déconnecter")
    expect(page.locator("#screen-login")).to_be_visible()
    assert server.count(AuditEvent, AuditEvent.action == "auth.logout") == 1
    assert page.locator("#history-list > li").count() == 0


def test_without_a_position_the_hexagon_is_picked_on_a_plan(phone: Phone, server: Server) -> None:
    page = phone.open()
    _log_in(phone)
    phone.tap("Rencontre")
    page.get_by_label("Secteur", exact=True).select_option("stalingrad")
    phone.tap("Choisir l'hexagone sur un plan")
    hexagons = page.locator("#plan polygon.plan-cell")
    expect(hexagons).to_have_count(61)
    # A neighbour of the sector's hexagon, two rings out: the worker's tap picks it.
    start = h3.latlng_to_cell(*POSITION, 9)
    target = sorted(h3.grid_ring(start, 2))[0]
    page.locator(f'#plan polygon[data-cell="{target}"]').click()
    expect(page.locator(f'#plan polygon[data-cell="{target}"]')).to_have_attribute(
        "aria-pressed", "true"
    )
    phone.accessible("plan")
    phone.shot("8-plan")
    # The rest of a full encounter: a group of two, a service, a referral to a structure.
    phone.tap("Une personne de plus")
    page.get_by_label("Écoute, lien social").check()
    phone.tap("Ajouter une orientation")
    page.get_by_label("Vers", exact=True).select_option("espace_repos")
    page.get_by_label("Structure", exact=True).select_option("espace_repos_chapelle")
    page.get_by_label("Statut", exact=True).select_option("accompanied")
    phone.accessible("referral")
    phone.tap("Enregistrer la rencontre")
    _sent(phone)
    stored = server.encounters()
    assert [(e.cell, e.sector) for e in stored] == [(target, sector_of_cell(target))]
    assert (stored[0].people, stored[0].services, stored[0].referrals) == (
        2,
        ["ecoute"],
        [{"to": "espace_repos", "structure": "espace_repos_chapelle", "status": "accompanied"}],
    )
    # The phone names the hexagon's sector by the server's rule (its centre).
    assert page.evaluate("outreachField.state.location.sector") == sector_of_cell(target)
