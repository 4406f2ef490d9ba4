// The coordinators' dashboard: logs in through the API and draws its aggregates.
// Tokens live in sessionStorage (gone with the tab), are refreshed a minute before they
// expire and cleared on logout. Every figure comes from the public /api/v1 routes.
"use strict";

(function () {
  const API = "/api/v1";
  const READERS = ["coordinator", "auditor", "org_admin"];
  const MEASURES = { encounters: "Rencontres", people: "Personnes", kits: "Matériel remis", referrals: "Orientations" };
  const FIGURES = [
    ["encounters", "Rencontres"], ["people", "Personnes rencontrées"], ["distinct_people", "Personnes distinctes"],
    ["first_contacts", "Premiers contacts"], ["women", "Femmes"], ["kits_total", "Matériel remis"],
    ["referrals_total", "Orientations"],
  ];
  const SLOTS = [["night", "N", "la nuit"], ["morning", "M", "le matin"], ["afternoon", "A", "l'après-midi"], ["evening", "S", "le soir"]];
  const $ = (id) => document.getElementById(id);
  const state = { session: null, refreshTimer: null, map: null, hexLayer: null, sectorLayer: null, hotspotLayer: null, k: 11, sectorNames: {} };

  // Session ---------------------------------------------------------------------
  function saveSession(body) {
    state.session = { access: body.access_token, refresh: body.refresh_token, role: body.role, organisation: body.organisation };
    sessionStorage.setItem("outreach.session", JSON.stringify(state.session));
    clearTimeout(state.refreshTimer);
    const delay = Math.max(10, body.expires_in - 60) * 1000;
    state.refreshTimer = setTimeout(refresh, delay);
  }

  function clearSession() {
    clearTimeout(state.refreshTimer);
    state.session = null;
    sessionStorage.removeItem("outreach.session");
  }

  async function refresh() {
    if (!state.session) return;
    const response = await fetch(`${API}/auth/refresh`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: state.session.refresh }),
    });
    if (response.ok) saveSession(await response.json());
    else { clearSession(); showLogin("Votre session a expiré ; reconnectez-vous."); }
  }

  async function api(path, options = {}) {
    const headers = Object.assign({ Authorization: `Bearer ${state.session.access}` }, options.headers || {});
    const response = await fetch(`${API}${path}`, Object.assign({}, options, { headers }));
    if (response.status === 401) { clearSession(); showLogin("Votre session a expiré ; reconnectez-vous."); throw new Error("401"); }
    return response;
  }

  async function json(path) {
    const response = await api(path);
    const body = await response.json();
    if (!response.ok) throw Object.assign(new Error(body.message || response.statusText), { status: response.status, body });
    return body;
  }

  function showLogin(message) {
    $("app").hidden = true; $("session").hidden = true; $("refused").hidden = true;
    $("login-panel").hidden = false;
    $("login-error").hidden = !message; $("login-error").textContent = message || "";
    $("username").focus();
  }

  // A lock-out (429) or an outage (503) says when to try again: Retry-After, in seconds.
  function loginRefusal(response) {
    if (response.status !== 429 && response.status !== 503) return "Identifiant ou mot de passe incorrect.";
    const seconds = parseInt(response.headers.get("Retry-After") || "", 10);
    const when = !Number.isFinite(seconds) ? "plus tard"
      : seconds < 60 ? `dans ${seconds} s` : `dans ${Math.ceil(seconds / 60)} min`;
    return `${response.status === 429 ? "Trop d'essais" : "Service indisponible"} : réessayez ${when}.`;
  }

  async function login(event) {
    event.preventDefault();
    const response = await fetch(`${API}/auth/login`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    $("password").value = "";
    const body = await response.json();
    if (!response.ok) { showLogin(loginRefusal(response)); return; }
    saveSession(body);
    if (!READERS.includes(body.role)) { await logout(true); return; }
    start();
  }

  async function logout(refused) {
    if (state.session) {
      try { await api("/auth/logout", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token: state.session.refresh }) }); } catch (e) { /* the session ends here anyway */ }
    }
    clearSession();
    if (refused === true) {
      $("login-panel").hidden = true; $("app").hidden = true; $("session").hidden = true;
      $("refused").hidden = false; $("refused-back").focus();
    } else showLogin("Vous êtes déconnecté·e.");
  }

  // Filters ---------------------------------------------------------------------
  function iso(date) { return date.toISOString().slice(0, 10); }

  function query(extra) {
    const params = new URLSearchParams();
    params.set("from", $("from").value); params.set("to", $("to").value);
    for (const [id, name] of [["organisation", "organisation"], ["sector", "sector"], ["shift-kind", "shift_kind"]]) {
      const value = $(id).value.trim(); if (value) params.set(name, value);
    }
    for (const [name, value] of Object.entries(extra || {})) params.set(name, value);
    return params.toString();
  }

  async function loadVocabularies() {
    const body = await json("/vocabularies");
    for (const feature of body.sectors.features) {
      if (feature.properties.kind !== "sector") continue;
      $("sector").append(new Option(feature.properties.name, feature.properties.code));
      state.sectorNames[feature.properties.code] = feature.properties.name;
    }
    for (const kind of body.shift_kinds) $("shift-kind").append(new Option(kind.label, kind.code));
  }

  // Drawing ---------------------------------------------------------------------
  function shown(value) { return value === null || value === undefined ? "masqué" : value.toLocaleString("fr-FR"); }

  function drawFigures(summary) {
    state.k = summary.k;
    const list = $("figures"); list.replaceChildren();
    for (const [key, label] of FIGURES) {
      const item = document.createElement("div");
      item.className = "figure"; item.dataset.figure = key;
      const dt = document.createElement("dt"); dt.textContent = label;
      const dd = document.createElement("dd"); dd.textContent = shown(summary.counts[key]);
      if (summary.counts[key] === null) dd.className = "masked";
      item.append(dt, dd); list.append(item);
    }
  }

  function colour(value, max) {
    if (!value) return "#f3f3f3";
    const steps = ["#fde0c5", "#facba6", "#f8b58b", "#f59e72", "#f2855d", "#ef6a4c", "#eb4a40"];
    return steps[Math.min(steps.length - 1, Math.floor((value / max) * steps.length))];
  }

  function styleFor(feature, measure, max, outline) {
    const p = feature.properties;
    if (p.suppressed || p[measure] === null) {
      return { color: outline, weight: 1, fillColor: "url(#hatch)", fillOpacity: 0.8, className: "masked-area" };
    }
    return { color: outline, weight: 1, fillColor: colour(p[measure], max), fillOpacity: 0.75 };
  }

  function maxOf(collection, measure) {
    return Math.max(1, ...collection.features.map((f) => f.properties[measure] || 0));
  }

  function tooltip(feature, name) {
    const p = feature.properties;
    if (p.suppressed) return `${name} : moins de ${state.k} rencontres, chiffres masqués`;
    return `${name} : ` + Object.entries(MEASURES).map(([key, label]) => `${label.toLowerCase()} ${shown(p[key])}`).join(", ");
  }

  function drawMap(hexagons, sectors) {
    const measure = $("measure").value;
    if (state.hexLayer) state.hexLayer.remove();
    if (state.sectorLayer) state.sectorLayer.remove();
    const sectorMax = maxOf(sectors, measure), hexMax = maxOf(hexagons, measure);
    state.sectorLayer = L.geoJSON(sectors, {
      style: (f) => Object.assign(styleFor(f, measure, sectorMax, "#1d3557"), { weight: 2, fillOpacity: 0.25, className: "sector" }),
      onEachFeature: (f, layer) => layer.bindTooltip(tooltip(f, state.sectorNames[f.properties.sector] || f.properties.sector)),
    }).addTo(state.map);
    state.hexLayer = L.geoJSON(hexagons, {
      style: (f) => Object.assign(styleFor(f, measure, hexMax, "#7a7a7a"), { className: f.properties.suppressed ? "hexagon masked-area" : "hexagon" }),
      onEachFeature: (f, layer) => layer.bindTooltip(tooltip(f, "Hexagone")),
    }).addTo(state.map);
    if (!state.fitted && state.sectorLayer.getBounds().isValid()) { state.map.fitBounds(state.sectorLayer.getBounds()); state.fitted = true; }
    $("legend").innerHTML = "";
    const legend = document.createElement("p");
    legend.innerHTML = `<span class="swatch low"></span> peu <span class="swatch high"></span> beaucoup de ${MEASURES[measure].toLowerCase()} ` +
      `<span class="swatch hatched"></span> hachuré : moins de ${state.k} rencontres, chiffres masqués (secret statistique)`;
    $("legend").append(legend);
  }

  function drawHotspots(body) {
    const list = $("hotspots"); list.replaceChildren();
    if (state.hotspotLayer) state.hotspotLayer.remove();
    if (!body) { list.innerHTML = "<li class=\"hint\">Réservé à la coordination.</li>"; return; }
    if (!body.features.length) { list.innerHTML = "<li class=\"hint\">Aucun déplacement marqué cette semaine.</li>"; return; }
    state.hotspotLayer = L.geoJSON(body, { style: { color: "#6a0dad", weight: 3, fill: false, className: "hotspot" } }).addTo(state.map);
    for (const feature of body.features) {
      const p = feature.properties;
      const button = document.createElement("button");
      button.type = "button"; button.className = "hotspot-item";
      button.textContent = `${p.recent} rencontres sur 7 jours (attendu ${p.expected.toLocaleString("fr-FR")}, score ${p.score})`;
      button.addEventListener("click", () => state.map.fitBounds(L.geoJSON(feature).getBounds(), { maxZoom: 16 }));
      const item = document.createElement("li"); item.append(button); list.append(item);
    }
  }

  function drawSeries(body) {
    const box = $("series"); box.replaceChildren();
    const svgNS = "http://www.w3.org/2000/svg";
    const points = body.series, width = 720, height = 180, pad = 24;
    const max = Math.max(1, ...points.map((p) => p.counts.encounters || 0));
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`); svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Rencontres par semaine : " + points.map((p) => `semaine du ${p.start} ${shown(p.counts.encounters)}`).join(" ; "));
    const barWidth = (width - 2 * pad) / Math.max(1, points.length);
    points.forEach((p, i) => {
      const value = p.counts.encounters;
      const h = value === null ? height - 2 * pad : ((value || 0) / max) * (height - 2 * pad);
      const rect = document.createElementNS(svgNS, "rect");
      rect.setAttribute("x", pad + i * barWidth + 2); rect.setAttribute("width", Math.max(1, barWidth - 4));
      rect.setAttribute("y", height - pad - h); rect.setAttribute("height", h);
      rect.setAttribute("class", value === null ? "bar masked-bar" : "bar");
      const title = document.createElementNS(svgNS, "title"); title.textContent = `Semaine du ${p.start} : ${shown(value)}`;
      rect.append(title); svg.append(rect);
      const label = document.createElementNS(svgNS, "text");
      label.setAttribute("x", pad + i * barWidth + barWidth / 2); label.setAttribute("y", height - 6);
      label.setAttribute("class", "axis"); label.textContent = p.start.slice(5);
      svg.append(label);
    });
    box.append(svg);
  }

  function drawCoverage(body) {
    const box = $("coverage"); box.replaceChildren();
    if (!body) { box.innerHTML = "<p class=\"hint\">Réservée à la coordination et à l'ARS.</p>"; return; }
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    const corner = document.createElement("th"); corner.textContent = "Secteur"; corner.scope = "col"; head.append(corner);
    for (const cell of body.sectors[0] ? body.sectors[0].days : []) {
      const th = document.createElement("th"); th.scope = "col";
      th.textContent = new Date(cell.day + "T12:00:00").toLocaleDateString("fr-FR", { weekday: "short", day: "numeric" });
      head.append(th);
    }
    const tbody = table.createTBody();
    for (const row of body.sectors) {
      const tr = tbody.insertRow();
      const th = document.createElement("th"); th.scope = "row"; th.textContent = state.sectorNames[row.sector] || row.sector; tr.append(th);
      for (const cell of row.days) {
        const td = tr.insertCell();
        td.className = cell.covered ? "covered" : "uncovered";
        td.dataset.sector = row.sector; td.dataset.day = cell.day;
        const slots = SLOTS.filter(([code]) => cell.slots[code]);
        // One letter per covered slot (N, M, A, S), a dot for a slot nobody covered.
        td.textContent = cell.covered ? SLOTS.map(([code, letter]) => (cell.slots[code] ? letter : "·")).join("") : "✗";
        td.dataset.slots = slots.map(([code]) => code).join(" ");
        td.title = `${th.textContent}, ${cell.day} : ` + (cell.covered ? `passage ${slots.map(([, , name]) => name).join(", ")}` : "aucun passage");
      }
    }
    box.append(table);
  }

  async function optional(path) {
    try { return await json(path); } catch (error) { if (error.status === 403) return null; throw error; }
  }

  async function redraw(event) {
    if (event) event.preventDefault();
    $("status").textContent = "Chargement…";
    try {
      const resolution = $("resolution").value;
      const [summary, hexagons, sectors, series] = await Promise.all([
        json(`/stats/summary?${query()}`),
        json(`/stats/map?${query({ resolution })}`),
        json(`/stats/sectors?${query()}`),
        json(`/stats/timeseries?${query({ bucket: "week" })}`),
      ]);
      const coverageFrom = new Date(Math.max(new Date($("from").value), new Date($("to").value) - 27 * 86400000));
      const coverageQuery = query({ from: iso(coverageFrom) });
      const [coverage, hotspots] = await Promise.all([
        optional(`/stats/coverage?${coverageQuery}`),
        optional(`/stats/hotspots?${new URLSearchParams({ to: $("to").value, resolution }).toString()}`),
      ]);
      drawFigures(summary); drawMap(hexagons, sectors); drawHotspots(hotspots); drawSeries(series); drawCoverage(coverage);
      $("status").textContent = `Période du ${$("from").value} au ${$("to").value}.`;
    } catch (error) {
      if (error.message !== "401") $("status").textContent = `Erreur : ${error.message}`;
    }
  }

  async function downloadReport() {
    const year = $("to").value.slice(0, 4);
    const params = new URLSearchParams({ year, format: "csv" });
    if ($("organisation").value.trim()) params.set("organisation", $("organisation").value.trim());
    const response = await api(`/reports/activity?${params}`);
    if (!response.ok) { $("status").textContent = "Le rapport n'a pas pu être produit."; return; }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `activite-${year}.csv`;
    document.body.append(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  async function start() {
    $("login-panel").hidden = true; $("refused").hidden = true;
    $("app").hidden = false; $("session").hidden = false;
    $("who").textContent = `${state.session.organisation.slug} (${state.session.role})`;
    if (state.session.role === "org_admin") { $("organisation").value = state.session.organisation.slug; $("organisation").readOnly = true; }
    if (!state.map) {
      state.map = L.map("map", { zoomSnap: 0.5 }).setView([48.885, 2.37], 14);
      const tiles = document.body.dataset.tileUrl;
      if (tiles) L.tileLayer(tiles, { maxZoom: 19, attribution: "fond de carte configuré" }).addTo(state.map);
      window.outreachMap = state.map;  // for the browser test and the curious
      await loadVocabularies();
    }
    await redraw();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const today = new Date();
    $("to").value = iso(today);
    $("from").value = iso(new Date(today - 29 * 86400000));
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", () => logout(false));
    $("refused-back").addEventListener("click", () => showLogin());
    $("filters").addEventListener("submit", redraw);
    $("measure").addEventListener("change", () => redraw());
    $("resolution").addEventListener("change", () => redraw());
    $("download-csv").addEventListener("click", downloadReport);
    const saved = sessionStorage.getItem("outreach.session");
    if (saved) { state.session = JSON.parse(saved); refresh().then(() => state.session && start()); }
    else showLogin();
  });
})();
