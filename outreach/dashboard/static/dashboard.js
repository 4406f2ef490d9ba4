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
  const ROLES = { coordinator: "coordination", auditor: "audit (ARS)", org_admin: "responsable d'association" };
  const KINDS = { week: "Semaine", month: "Mois", quarter: "Trimestre", year: "Année" };
  const MONTHS = new Intl.DateTimeFormat("fr-FR", { month: "long", year: "numeric" });
  const DAY = new Intl.DateTimeFormat("fr-FR", { day: "numeric", month: "short", year: "numeric" });
  const number = (value, digits) => value.toLocaleString("fr-FR", { maximumFractionDigits: digits });
  const day = (text) => DAY.format(new Date(text + "T12:00:00"));

  function periodLabel(p) {
    let name = p.period;
    if (p.kind === "week") name = `Semaine ${p.period.slice(6)} ${p.period.slice(0, 4)}`;
    else if (p.kind === "month") name = MONTHS.format(new Date(p.from + "T12:00:00"));
    else if (p.kind === "quarter") name = `${p.period.slice(5)} ${p.period.slice(0, 4)}`;
    const span = `du ${day(p.from)} au ${day(p.to)}`;
    return `${name} (${span}${p.complete ? "" : ", en cours"})`;
  }

  // The grid periods the server answers, grouped by kind, the default selected.
  async function loadPeriods() {
    const body = await json("/stats/periods");
    const select = $("period"); select.replaceChildren();
    state.periods = {};
    for (const kind of Object.keys(KINDS)) {
      const group = document.createElement("optgroup"); group.label = KINDS[kind];
      for (const p of body.periods.filter((item) => item.kind === kind)) {
        state.periods[p.period] = p;
        group.append(new Option(periodLabel(p), p.period, false, p.period === body.default));
      }
      if (group.children.length) select.append(group);
    }
    state.defaultWeek = body.default;
  }

  function query(extra) {
    const params = new URLSearchParams();
    params.set("period", $("period").value);
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
    for (const association of body.associations) $("organisation").append(new Option(association.label, association.code));
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
    if (state.labelLayer) state.labelLayer.remove();
    const labels = state.labelLayer = L.layerGroup();
    const sectorMax = maxOf(sectors, measure), hexMax = maxOf(hexagons, measure);
    state.sectorLayer = L.geoJSON(sectors, {
      style: (f) => Object.assign(styleFor(f, measure, sectorMax, "#1d3557"), { weight: 2, fillOpacity: 0.25, className: "sector" }),
      onEachFeature: (f, layer) => {
        const name = state.sectorNames[f.properties.sector] || f.properties.sector;
        layer.bindTooltip(tooltip(f, name));
        // Each sector's name stays written on the map, beside its outline.
        L.tooltip({ permanent: true, direction: "top", className: "sector-label" })
          .setLatLng(layer.getBounds().getCenter()).setContent(name).addTo(labels);
      },
    }).addTo(state.map);
    labels.addTo(state.map);
    state.hexLayer = L.geoJSON(hexagons, {
      style: (f) => Object.assign(styleFor(f, measure, hexMax, "#7a7a7a"), { className: f.properties.suppressed ? "hexagon masked-area" : "hexagon" }),
      onEachFeature: (f, layer) => layer.bindTooltip(tooltip(f, "Hexagone")),
    }).addTo(state.map);
    // Fit the data (the hexagons with activity), or the sectors when there is none.
    const shownBounds = state.hexLayer.getBounds().isValid() ? state.hexLayer.getBounds() : state.sectorLayer.getBounds();
    if (!state.fitted && shownBounds.isValid()) { state.map.fitBounds(shownBounds); state.fitted = true; }
    $("legend").innerHTML = "";
    const legend = document.createElement("p");
    legend.innerHTML = `<span class="swatch low"></span> peu <span class="swatch high"></span> beaucoup de ${MEASURES[measure].toLowerCase()} ` +
      `<span class="swatch hatched"></span> hachuré : moins de ${state.k} rencontres, chiffres masqués (secret statistique)`;
    $("legend").append(legend);
  }

  function drawHotspots(body, week) {
    const list = $("hotspots"); list.replaceChildren();
    if (state.hotspotLayer) state.hotspotLayer.remove();
    if (!body) { list.innerHTML = "<li class=\"hint\">Réservé à la coordination.</li>"; return; }
    $("hotspots-week").textContent = `Semaine comparée : ${periodLabel(state.periods[week] || { period: week, kind: "week", from: body.recent.from, to: body.recent.to, complete: true })}.`;
    if (!body.features.length) { list.innerHTML = "<li class=\"hint\">Aucun déplacement marqué cette semaine.</li>"; return; }
    state.hotspotLayer = L.geoJSON(body, { style: { color: "#6a0dad", weight: 3, fill: false, className: "hotspot" } }).addTo(state.map);
    for (const feature of body.features) {
      const p = feature.properties;
      const button = document.createElement("button");
      button.type = "button"; button.className = "hotspot-item"; button.dataset.cell = p.cell;
      const sector = state.sectorNames[p.sector] || "Hors secteur";
      button.textContent = `${sector} : ${number(p.recent, 0)} rencontres dans la semaine (attendu ${number(p.expected, 1)}, score ${number(p.score, 1)})`;
      button.addEventListener("click", () => state.map.fitBounds(L.geoJSON(feature).getBounds(), { maxZoom: 16 }));
      const item = document.createElement("li"); item.append(button); list.append(item);
    }
  }

  // Bars with a value axis (a few round ticks), each bar's value above it, and the
  // week or month under it, one label in every few when there are many.
  function drawSeries(body) {
    const box = $("series"); box.replaceChildren();
    const svgNS = "http://www.w3.org/2000/svg";
    const points = body.series, width = 760, height = 220, left = 48, right = 8, top = 18, bottom = 26;
    const monthly = body.filters.bucket === "month";
    $("series-title").textContent = monthly ? "Rencontres par mois" : "Rencontres par semaine";
    const max = Math.max(1, ...points.map((p) => p.counts.encounters || 0));
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    const tick = [1, 2, 5, 10].map((f) => f * step).find((t) => max / t <= 5);
    const top_value = Math.ceil(max / tick) * tick;
    const plot = height - top - bottom;
    const y = (value) => top + plot - (value / top_value) * plot;
    const el = (name, attributes, text) => {
      const node = document.createElementNS(svgNS, name);
      for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
      if (text !== undefined) node.textContent = text;
      return node;
    };
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
    const label = (p) => monthly
      ? MONTHS.format(new Date(p.start + "T12:00:00"))
      : `semaine du ${day(p.start)}`;
    svg.setAttribute("aria-label", `${$("series-title").textContent} : ` + points.map((p) => `${label(p)} ${shown(p.counts.encounters)}`).join(" ; "));
    for (let value = 0; value <= top_value; value += tick) {
      svg.append(el("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "grid" }));
      svg.append(el("text", { x: left - 6, y: y(value) + 3, class: "axis value-axis" }, number(value, 0)));
    }
    const slot = (width - left - right) / Math.max(1, points.length);
    const every = Math.ceil(points.length / 12);
    points.forEach((p, i) => {
      const value = p.counts.encounters;
      const x = left + i * slot;
      const h = value === null ? plot : ((value || 0) / top_value) * plot;
      const rect = el("rect", {
        x: x + 2, width: Math.max(1, slot - 4), y: top + plot - h, height: h,
        class: value === null ? "bar masked-bar" : "bar",
      });
      rect.append(el("title", {}, `${label(p)} : ${shown(value)}`));
      svg.append(rect);
      if (points.length <= 26) svg.append(el("text", { x: x + slot / 2, y: top + plot - h - 4, class: "axis" }, value === null ? "masqué" : number(value, 0)));
      if (i % every === 0) {
        const text = monthly ? MONTHS.format(new Date(p.start + "T12:00:00")) : new Date(p.start + "T12:00:00").toLocaleDateString("fr-FR", { day: "numeric", month: "short" });
        svg.append(el("text", { x: x + slot / 2, y: height - 8, class: "axis" }, text));
      }
    });
    box.append(svg);
  }

  function drawCoverage(body, from, to) {
    const box = $("coverage"); box.replaceChildren();
    if (!body) { $("coverage-days").textContent = ""; box.innerHTML = "<p class=\"hint\">Réservée à la coordination et à l'ARS.</p>"; return; }
    $("coverage-days").textContent = `Du ${day(from)} au ${day(to)} (au plus les 28 derniers jours de la période).`;
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

  // Coverage shows at most the period's last 28 days (the route answers 92 at most,
  // and a wider grid would not be readable): the hint says which.
  function coverageDays(filters) {
    const to = new Date(filters.to + "T12:00:00");
    const from = new Date(Math.max(new Date(filters.from + "T12:00:00"), to - 27 * 86400000));
    return [from.toISOString().slice(0, 10), filters.to];
  }

  async function redraw(event) {
    if (event) event.preventDefault();
    $("status").textContent = "Chargement…";
    try {
      const resolution = $("resolution").value;
      const selected = state.periods[$("period").value];
      const [summary, hexagons, sectors, series] = await Promise.all([
        json(`/stats/summary?${query()}`),
        json(`/stats/map?${query({ resolution })}`),
        json(`/stats/sectors?${query()}`),
        json(`/stats/timeseries?${query({ bucket: selected.kind === "year" || selected.kind === "quarter" ? "month" : "week" })}`),
      ]);
      const [from, to] = coverageDays(summary.filters);
      const covered = new URLSearchParams(query({ from, to })); covered.delete("period");
      // Hotspots compare a whole week: the one chosen, or else the last one.
      const week = selected.kind === "week" && selected.complete ? selected.period : state.defaultWeek;
      const canHotspots = state.session.role === "coordinator";
      const canCoverage = state.session.role !== "org_admin";
      const [coverage, hotspots] = await Promise.all([
        canCoverage ? json(`/stats/coverage?${covered}`) : null,
        canHotspots ? json(`/stats/hotspots?${new URLSearchParams({ period: week, resolution })}`) : null,
      ]);
      drawFigures(summary); drawMap(hexagons, sectors); drawHotspots(hotspots, week); drawSeries(series); drawCoverage(coverage, from, to);
      const exact = summary.protection.method === "exact";
      $("status").textContent = `${periodLabel(selected)}. ` + (exact
        ? "Chiffres exacts de votre association."
        : `Chiffres protégés : moins de ${summary.k} rencontres, masqué ; les autres à ±${summary.protection.max_deviation} près, si bien que les parties peuvent ne pas faire le total.`);
    } catch (error) {
      if (error.message !== "401") $("status").textContent = `Erreur : ${error.message}`;
    }
  }

  async function downloadReport() {
    const year = $("period").value.slice(0, 4);
    const params = new URLSearchParams({ year, format: "csv" });
    if ($("organisation").value) params.set("organisation", $("organisation").value);
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
    $("who").textContent = `${state.session.organisation.slug} (${ROLES[state.session.role] || state.session.role})`;
    if (!state.map) {
      state.map = L.map("map", { zoomSnap: 0.5 }).setView([48.885, 2.37], 14);
      const tiles = document.body.dataset.tileUrl;
      if (tiles) L.tileLayer(tiles, { maxZoom: 19, attribution: "fond de carte configuré" }).addTo(state.map);
      window.outreachMap = state.map;  // for the browser test and the curious
      await loadVocabularies();
      await loadPeriods();
    }
    // An org_admin's figures are its own association's, whatever it picks.
    if (state.session.role === "org_admin") { $("organisation").value = state.session.organisation.slug; $("organisation").disabled = true; }
    await redraw();
  }

  document.addEventListener("DOMContentLoaded", () => {
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
