/* The workers' field app: log shifts and encounters offline, send them when the network allows.
 *
 * Every shift and encounter is written to IndexedDB (the outbox) with its client UUID
 * before anything else happens, then sent through POST /api/v1/sync in batches; the
 * server's answer for each item decides what leaves the outbox (created, duplicate),
 * what waits for the worker (invalid: shown with its errors, to fix; conflict). A sync
 * cut mid-flight leaves the outbox as it was: the resend is answered `duplicate` for
 * what had arrived. No coordinate leaves the phone: a position is snapped to the H3
 * hexagon here (h3-js) and only the hexagon is kept. What is stored where, and why:
 * docs/field-app.md.
 */
"use strict";

(() => {
  const API = "/api/v1";
  const DB_NAME = "outreach-field";
  const BATCH = 100;
  const SYNC_EVERY_MS = 60000;
  const REF_ITERATIONS = 200000;

  // ---------------------------------------------------------------- storage

  let dbPromise = null;

  function database() {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        const request = indexedDB.open(DB_NAME, 1);
        request.onupgradeneeded = () => {
          const db = request.result;
          db.createObjectStore("outbox", { keyPath: "id" });
          db.createObjectStore("kv");
        };
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    }
    return dbPromise;
  }

  async function run(storeName, mode, work) {
    const db = await database();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(storeName, mode);
      const store = tx.objectStore(storeName);
      let result;
      const request = work(store);
      if (request) request.onsuccess = () => { result = request.result; };
      // Resolved when the transaction is durable, not when the request succeeded.
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  const kv = {
    get: (key) => run("kv", "readonly", (s) => s.get(key)),
    set: (key, value) => run("kv", "readwrite", (s) => s.put(value, key)),
    del: (key) => run("kv", "readwrite", (s) => s.delete(key)),
  };
  const outbox = {
    all: () => run("outbox", "readonly", (s) => s.getAll()),
    get: (id) => run("outbox", "readonly", (s) => s.get(id)),
    put: (item) => run("outbox", "readwrite", (s) => s.put(item)),
    del: (id) => run("outbox", "readwrite", (s) => s.delete(id)),
  };

  // ---------------------------------------------------------------- state

  const state = {
    session: null,       // {username, role, organisation, refresh_token}
    access: null,        // {token, expires} in memory only
    vocab: null,
    items: [],           // this user's outbox items
    screen: "login",
    people: 1,
    kits: {},
    location: null,      // {cell, source: "position"|"sector", sector?}
    ref: null,
    editing: null,       // id of an outbox item being fixed
    syncing: false,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function label(list, code) {
    const entry = (state.vocab && state.vocab[list] || []).find((e) => e.code === code);
    return entry ? entry.label : code;
  }

  function sectorName(code) {
    const feature = sectorFeatures().find((f) => f.properties.code === code);
    return feature ? feature.properties.name : code === "hors_secteur" ? "Hors secteur" : code;
  }

  function sectorFeatures() {
    return state.vocab ? state.vocab.sectors.features : [];
  }

  // The time with the phone's own offset, as the API wants it.
  function isoWithOffset(date) {
    const pad = (n) => String(Math.abs(n)).padStart(2, "0");
    const offset = -date.getTimezoneOffset();
    const sign = offset >= 0 ? "+" : "-";
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
      `${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`;
  }

  function localInputValue(date) {
    return isoWithOffset(date).slice(0, 16);
  }

  function shortTime(iso) {
    return new Date(iso).toLocaleString("fr-FR", {
      weekday: "short", hour: "2-digit", minute: "2-digit",
    });
  }

  let toastTimer = null;
  function toast(message) {
    const node = $("toast");
    node.textContent = message;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.hidden = true; }, 4000);
  }

  // ---------------------------------------------------------------- API and tokens

  class Offline extends Error {}
  class SessionOver extends Error {}

  async function request(method, path, body, token) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      return await fetch(API + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      throw new Offline(String(error));
    }
  }

  // Refresh tokens rotate: the one sent is spent. Tabs take turns (Web Locks), and the
  // new one is written to IndexedDB before the access token is used.
  async function refresh() {
    const work = async () => {
      const session = await kv.get("session");
      if (!session) throw new SessionOver("no session");
      const response = await request("POST", "/auth/refresh", { refresh_token: session.refresh_token });
      if (response.status === 401 || response.status === 422) {
        await kv.set("session", { ...session, refresh_token: null, expired: true });
        state.session = { ...session, refresh_token: null, expired: true };
        throw new SessionOver("refresh refused");
      }
      if (!response.ok) throw new Offline(`refresh: ${response.status}`);
      const tokens = await response.json();
      const next = { ...session, refresh_token: tokens.refresh_token };
      await kv.set("session", next);
      state.session = next;
      state.access = { token: tokens.access_token, expires: Date.now() + (tokens.expires_in - 60) * 1000 };
    };
    if (navigator.locks) return navigator.locks.request("outreach-refresh", work);
    return work();
  }

  async function accessToken() {
    if (!state.access || state.access.expires < Date.now()) await refresh();
    return state.access.token;
  }

  async function api(method, path, body) {
    let response = await request(method, path, body, await accessToken());
    if (response.status === 401) {
      state.access = null;
      response = await request(method, path, body, await accessToken());
      if (response.status === 401) throw new SessionOver("access refused");
    }
    return response;
  }

  // ---------------------------------------------------------------- vocabularies

  async function loadVocabularies() {
    const cached = await kv.get("vocab");
    if (cached) state.vocab = cached.body;
    if (!navigator.onLine) return;
    const token = await accessToken();
    const headers = { Authorization: `Bearer ${token}` };
    if (cached) headers["If-None-Match"] = cached.etag;
    let response;
    try {
      response = await fetch(`${API}/vocabularies`, { headers, cache: "no-store" });
    } catch (error) {
      return;
    }
    if (response.status === 200) {
      const body = await response.json();
      await kv.set("vocab", { etag: response.headers.get("ETag"), body });
      state.vocab = body;
    }
  }

  // ---------------------------------------------------------------- session

  async function logIn(event) {
    event.preventDefault();
    const error = $("login-error");
    error.hidden = true;
    const username = $("username").value.trim();
    let response;
    try {
      response = await request("POST", "/auth/login", { username, password: $("password").value });
    } catch (e) {
      error.textContent = "Pas de réseau : la connexion demande le réseau une première fois.";
      error.hidden = false;
      return;
    }
    if (!response.ok) {
      error.textContent = response.status === 429
        ? "Trop d'essais : réessayez dans quelques minutes."
        : "Identifiant ou mot de passe incorrect.";
      error.hidden = false;
      return;
    }
    const tokens = await response.json();
    if (!["worker", "org_admin"].includes(tokens.role)) {
      await request("POST", "/auth/logout", { refresh_token: tokens.refresh_token }, tokens.access_token);
      error.textContent = "Cette application sert aux équipes de terrain (intervenant·e ou responsable d'association).";
      error.hidden = false;
      return;
    }
    $("password").value = "";
    const session = {
      username, role: tokens.role, organisation: tokens.organisation, refresh_token: tokens.refresh_token,
    };
    await kv.set("session", session);
    state.session = session;
    state.access = { token: tokens.access_token, expires: Date.now() + (tokens.expires_in - 60) * 1000 };
    await loadVocabularies();
    await start();
  }

  // Everything of this user goes, but what is not sent yet: it stays, and is said to stay.
  async function logOut() {
    const session = state.session;
    if (session && session.refresh_token && navigator.onLine) {
      try {
        // The route wants an access token; getting one may rotate the refresh token.
        const token = await accessToken();
        await request("POST", "/auth/logout", { refresh_token: state.session.refresh_token }, token);
      } catch (e) { /* offline or refused: the refresh token expires by itself */ }
    }
    for (const key of ["session", "vocab", "place"]) await kv.del(key);
    for (const id of ["history-list", "outbox-list"]) $(id).replaceChildren();
    $("history-status").textContent = "";
    $("sync-status").textContent = "";
    state.session = null;
    state.access = null;
    state.vocab = null;
    state.items = [];
    state.location = null;
    await showLogin();
  }

  // ---------------------------------------------------------------- outbox

  async function refreshItems() {
    const all = await outbox.all();
    state.items = all.filter((i) => state.session && i.owner === state.session.username)
      .sort((a, b) => a.created - b.created);
    renderPending();
  }

  function waiting() {
    return state.items.length;
  }

  function renderPending() {
    const n = waiting();
    $("pending").hidden = !state.session;
    $("pending-count").textContent = String(n);
    if (state.screen === "outbox") renderOutbox();
  }

  function openShift() {
    return state.items.find((i) => i.kind === "shift" && i.state === "open") || null;
  }

  // Sendable: pending items, but an encounter of a shift still open waits for its end
  // (the API stores a shift with its end, and an encounter needs its shift first).
  function sendable() {
    const open = new Set(state.items.filter((i) => i.kind === "shift" && i.state !== "pending").map((i) => i.id));
    return state.items.filter((i) => i.state === "pending" && !(i.kind === "encounter" && open.has(i.body.shift_id)));
  }

  async function syncNow(manual) {
    if (state.syncing || !state.session) return;
    if (!navigator.onLine) {
      if (manual) $("sync-status").textContent = "Pas de réseau : tout reste sur le téléphone et partira au retour du réseau.";
      return;
    }
    state.syncing = true;
    $("sync-status").textContent = "Envoi en cours…";
    let sent = 0;
    try {
      await refreshItems();
      const ready = sendable();
      const shifts = ready.filter((i) => i.kind === "shift");
      const encounters = ready.filter((i) => i.kind === "encounter");
      // Shifts go first (or with their encounters), so that no encounter names an unknown shift.
      const ordered = [...shifts, ...encounters];
      for (let start = 0; start < ordered.length; start += BATCH) {
        const batch = ordered.slice(start, start + BATCH);
        const body = {
          shifts: batch.filter((i) => i.kind === "shift").map((i) => i.body),
          encounters: batch.filter((i) => i.kind === "encounter").map((i) => i.body),
        };
        const response = await api("POST", "/sync", body);
        if (!response.ok) throw new Offline(`sync: ${response.status}`);
        const answer = await response.json();
        await applyResults(batch, answer.results);
        sent += answer.counts.created + answer.counts.duplicate;
      }
      await refreshItems();
      const refused = state.items.filter((i) => i.state === "invalid" || i.state === "conflict").length;
      const at = new Date().toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit" });
      $("sync-status").textContent = (sent ? `Envoyé : ${sent} élément(s), à ${at}.` : "Rien de nouveau à envoyer.") +
        (refused ? ` ${refused} refusé(s) : à corriger ou abandonner ci-dessous.` : "");
    } catch (error) {
      if (error instanceof SessionOver) {
        $("sync-status").textContent = "Session expirée : reconnectez-vous pour envoyer (rien n'est perdu).";
        renderSessionOver();
      } else {
        $("sync-status").textContent = "Envoi interrompu : les éléments restent sur le téléphone et seront renvoyés.";
      }
    } finally {
      state.syncing = false;
      await refreshItems();
    }
  }

  async function applyResults(batch, results) {
    const byKey = new Map(batch.map((i) => [`${i.kind}:${i.id}`, i]));
    for (const result of results) {
      const item = byKey.get(`${result.kind}:${result.id}`);
      if (!item) continue;
      if (result.status === "created" || result.status === "duplicate") {
        await outbox.del(item.id);
      } else {
        await outbox.put({ ...item, state: result.status, errors: result.errors || {} });
      }
    }
  }

  // ---------------------------------------------------------------- shift

  function renderShift() {
    const open = openShift();
    $("shift-form").hidden = Boolean(open);
    $("shift-open").hidden = !open;
    if (open) {
      const sectors = open.body.planned_sectors.map(sectorName).join(", ") || "aucun secteur prévu";
      $("shift-summary").textContent =
        `En cours depuis ${shortTime(open.body.started_at)} : ${label("shift_kinds", open.body.kind)} — ${sectors}.`;
    }
    const s = state.session;
    $("who").textContent = s ? `Connecté·e : ${s.username} (${s.organisation.slug})` : "";
  }

  async function startShift(event) {
    event.preventDefault();
    const kind = document.querySelector('input[name="shift-kind"]:checked');
    const sectors = [...document.querySelectorAll('input[name="shift-sector"]:checked')].map((i) => i.value);
    const body = {
      id: crypto.randomUUID(), kind: kind ? kind.value : "rdr",
      started_at: isoWithOffset(new Date()), planned_sectors: sectors,
    };
    await outbox.put({ id: body.id, kind: "shift", owner: state.session.username, state: "open", body, created: Date.now() });
    const first = sectorFeatures().find((f) => sectors.includes(f.properties.code) && f.properties.cell);
    if (first) await setPlace({ cell: first.properties.cell, source: "sector", sector: first.properties.code });
    await refreshItems();
    toast("Maraude commencée.");
    show("encounter");
  }

  async function endShift() {
    const open = openShift();
    if (!open) return;
    const body = { ...open.body, ended_at: isoWithOffset(new Date()) };
    await outbox.put({ ...open, state: "pending", body });
    await refreshItems();
    renderShift();
    toast("Maraude terminée : elle partira avec ses rencontres.");
    syncNow(false);
  }

  // ---------------------------------------------------------------- encounter form

  async function setPlace(place) {
    state.location = place;
    await kv.set("place", place);
    renderPlace();
  }

  function renderPlace() {
    const select = $("sector");
    const place = state.location;
    if (place && place.source === "position") {
      select.value = "position";
      $("position-status").textContent =
        `Position ramenée à un hexagone (${sectorName(sectorOfCell(place.cell))}) ; aucune coordonnée gardée.`;
    } else if (place && place.source === "plan") {
      select.value = "position";
      $("position-status").textContent = `Hexagone choisi sur le plan (${sectorName(place.sector)}).`;
    } else {
      select.value = place ? place.sector : "";
      $("position-status").textContent = "";
    }
  }

  // ---------------------------------------------------------------- hexagon plan

  // A small plan to pick the hexagon when the phone gives no position: the sector
  // outlines and the hexagons around the current place, in SVG (no base map: no outside
  // request). A hexagon's sector is the one containing its centre, as on the server.
  const SVG = "http://www.w3.org/2000/svg";
  const PLAN_RINGS = 4;

  function insideRing(lat, lon, ring) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > lat) !== (yj > lat) && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }

  function polygonsOf(geometry) {
    return geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  }

  function sectorOfCell(cell) {
    const [lat, lon] = h3.cellToLatLng(cell);
    const feature = sectorFeatures().find((f) => polygonsOf(f.geometry).some((rings) =>
      insideRing(lat, lon, rings[0]) && !rings.slice(1).some((hole) => insideRing(lat, lon, hole))));
    return feature ? feature.properties.code : "hors_secteur";
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  }

  function drawPlan() {
    const plan = $("plan");
    const centre = (state.location && state.location.cell) ||
      (sectorFeatures().find((f) => f.properties.cell) || { properties: {} }).properties.cell;
    if (!centre) return;
    const cells = h3.gridDisk(centre, PLAN_RINGS);
    const corners = cells.flatMap((c) => h3.cellToBoundary(c));
    const lats = corners.map((p) => p[0]), lons = corners.map((p) => p[1]);
    const north = Math.max(...lats), south = Math.min(...lats);
    const west = Math.min(...lons), east = Math.max(...lons);
    const shrink = Math.cos(((north + south) / 2) * Math.PI / 180);
    const width = 360, scale = width / ((east - west) * shrink);
    const height = (north - south) * scale;
    const at = (lat, lon) => `${((lon - west) * shrink * scale).toFixed(1)},${((north - lat) * scale).toFixed(1)}`;
    const drawing = svg("svg", {
      viewBox: `0 0 ${width} ${height.toFixed(1)}`, role: "group", "aria-label": "Plan des hexagones autour du lieu",
    });
    for (const feature of sectorFeatures()) {
      for (const rings of polygonsOf(feature.geometry)) {
        drawing.append(svg("polygon", {
          class: "plan-sector", "aria-hidden": "true", points: rings[0].map(([lon, lat]) => at(lat, lon)).join(" "),
        }));
      }
    }
    const chosen = state.location && state.location.cell;
    cells.forEach((cell, n) => {
      const hexagon = svg("polygon", {
        class: "plan-cell", "data-cell": cell, tabindex: "0", role: "button",
        "aria-pressed": String(cell === chosen),
        "aria-label": `Hexagone ${n + 1}, ${sectorName(sectorOfCell(cell))}`,
        points: h3.cellToBoundary(cell).map(([lat, lon]) => at(lat, lon)).join(" "),
      });
      const pick = () => {
        setPlace({ cell, source: "plan", sector: sectorOfCell(cell) });
        drawPlan();
      };
      hexagon.addEventListener("click", pick);
      hexagon.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); pick(); }
      });
      drawing.append(hexagon);
    });
    plan.replaceChildren(drawing);
  }

  function togglePlan() {
    const plan = $("plan");
    plan.hidden = !plan.hidden;
    $("show-plan").setAttribute("aria-expanded", String(!plan.hidden));
    if (!plan.hidden) drawPlan();
  }

  function usePosition() {
    if (!navigator.geolocation) {
      $("position-status").textContent = "Ce téléphone ne donne pas sa position : choisissez le secteur.";
      return;
    }
    $("position-status").textContent = "Recherche de la position…";
    navigator.geolocation.getCurrentPosition(
      (position) => {
        // Snapped here; the coordinates go no further than this function.
        const cell = h3.latLngToCell(position.coords.latitude, position.coords.longitude, state.vocab.h3_resolution);
        setPlace({ cell, source: "position" });
      },
      () => { $("position-status").textContent = "Position indisponible : choisissez le secteur."; },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 }
    );
  }

  function buildForms() {
    const v = state.vocab;
    const kinds = $("shift-kinds");
    kinds.replaceChildren(...v.shift_kinds.map((k, n) => el("label", {},
      el("input", { type: "radio", name: "shift-kind", value: k.code, checked: n === 0 }), k.label)));
    $("shift-sectors").replaceChildren(...sectorFeatures().map((f) => el("label", {},
      el("input", { type: "checkbox", name: "shift-sector", value: f.properties.code }), f.properties.name)));

    const sector = $("sector");
    sector.replaceChildren(
      el("option", { value: "", text: "— Choisir le secteur —" }),
      el("option", { value: "position", text: "Hexagone choisi (position ou plan)", hidden: true }),
      ...sectorFeatures().filter((f) => f.properties.cell)
        .map((f) => el("option", { value: f.properties.code, text: f.properties.name })));

    $("settings").replaceChildren(...v.settings.map((s, n) => el("label", {},
      el("input", { type: "radio", name: "setting", value: s.code, checked: n === 0 }), s.label)));
    $("age-band").replaceChildren(...v.age_bands.map((a) => el("option", { value: a.code, text: a.label })));
    $("age-band").value = "unknown";
    $("gender").replaceChildren(...v.genders.map((g) => el("option", { value: g.code, text: g.label })));
    $("gender").value = "unknown";
    // The crack smoking kit first: what a night hands out most.
    const kits = [...v.kits].sort((a, b) => (b.code === "kit_base") - (a.code === "kit_base"));
    $("kits").replaceChildren(...kits.map((k) => el("div", { class: "counter" },
      el("span", { class: "counter-label", id: `kit-label-${k.code}`, text: k.label }),
      el("button", { type: "button", class: "minus", "data-kit": k.code, "aria-label": `${k.label} : un de moins`, text: "−" }),
      el("output", { id: `kit-${k.code}`, "aria-labelledby": `kit-label-${k.code}`, text: "0" }),
      el("button", { type: "button", class: "plus", "data-kit": k.code, "aria-label": `${k.label} : un de plus`, text: "+" }))));
    $("services").replaceChildren(...v.services.map((s) => el("label", {},
      el("input", { type: "checkbox", name: "service", value: s.code }), s.label)));
  }

  function addReferral(referral) {
    const v = state.vocab;
    const n = $("referrals").children.length + 1;
    const to = el("select", { id: `ref-to-${n}`, class: "ref-to" },
      ...v.referral_destinations.map((d) => el("option", { value: d.code, text: d.label })));
    const structure = el("select", { id: `ref-structure-${n}`, class: "ref-structure" });
    const status = el("select", { id: `ref-status-${n}`, class: "ref-status" },
      ...v.referral_statuses.map((s) => el("option", { value: s.code, text: s.label })));
    const fillStructures = () => {
      const options = v.structures.filter((s) => s.destination === to.value);
      structure.replaceChildren(el("option", { value: "", text: "— Aucune en particulier —" }),
        ...options.map((s) => el("option", { value: s.code, text: s.name })));
    };
    to.addEventListener("change", fillStructures);
    if (referral) to.value = referral.to;
    fillStructures();
    if (referral) {
      structure.value = referral.structure || "";
      status.value = referral.status;
    }
    const row = el("div", { class: "referral" },
      el("label", { for: to.id, text: "Vers" }), to,
      el("label", { for: structure.id, text: "Structure" }), structure,
      el("label", { for: status.id, text: "Statut" }), status,
      el("button", { type: "button", class: "danger", text: "Retirer cette orientation", onclick: () => row.remove() }));
    $("referrals").append(row);
  }

  function setPeople(n) {
    state.people = Math.max(1, Math.min(50, n));
    $("people").textContent = String(state.people);
    $("person-details").hidden = state.people !== 1;
  }

  function setKit(code, n) {
    state.kits[code] = Math.max(0, Math.min(500, n));
    $(`kit-${code}`).textContent = String(state.kits[code]);
  }

  function resetForm() {
    state.editing = null;
    state.ref = null;
    $("editing").hidden = true;
    $("encounter-error").hidden = true;
    $("occurred").value = localInputValue(new Date());
    $("occurred").dataset.touched = "";
    setPeople(1);
    for (const code of Object.keys(state.kits)) setKit(code, 0);
    const first = document.querySelector('input[name="setting"]');
    if (first) first.checked = true;
    for (const box of document.querySelectorAll('input[name="service"]')) box.checked = false;
    $("age-band").value = "unknown";
    $("gender").value = "unknown";
    $("first-contact").checked = false;
    $("person-details").open = false;
    $("code-details").open = false;
    $("code-status").textContent = "";
    $("referrals").replaceChildren();
    renderPlace();
  }

  function fillForm(item) {
    resetForm();
    const body = item.body;
    state.editing = item.id;
    $("editing").hidden = false;
    $("occurred").value = localInputValue(new Date(body.occurred_at));
    $("occurred").dataset.touched = "yes";
    const cell = body.location.cell;
    const feature = sectorFeatures().find((f) => f.properties.cell === cell);
    state.location = feature
      ? { cell, source: "sector", sector: feature.properties.code }
      : { cell, source: "plan", sector: sectorOfCell(cell) };
    renderPlace();
    const setting = document.querySelector(`input[name="setting"][value="${body.setting}"]`);
    if (setting) setting.checked = true;
    setPeople(body.people);
    for (const [code, n] of Object.entries(body.kits)) if ($(`kit-${code}`)) setKit(code, n);
    for (const box of document.querySelectorAll('input[name="service"]')) box.checked = body.services.includes(box.value);
    if (body.person) {
      $("age-band").value = body.person.age_band;
      $("gender").value = body.person.gender;
      $("first-contact").checked = body.person.first_contact;
      state.ref = body.person.ref || null;
      if (state.ref) $("code-status").textContent = "Code personne déjà calculé.";
    }
    for (const referral of body.referrals) addReferral(referral);
  }

  function readForm() {
    const place = state.location;
    if (!place || !place.cell) return { error: "Choisissez le secteur, ou utilisez la position." };
    const touched = $("occurred").dataset.touched === "yes";
    const when = touched && $("occurred").value ? new Date($("occurred").value) : new Date();
    if (Number.isNaN(when.getTime())) return { error: "L'heure de la rencontre n'est pas valable." };
    const open = openShift();
    const body = {
      id: state.editing || crypto.randomUUID(),
      occurred_at: isoWithOffset(when),
      location: { cell: place.cell },
      setting: document.querySelector('input[name="setting"]:checked').value,
      people: state.people,
      kits: Object.fromEntries(Object.entries(state.kits).filter(([, n]) => n > 0)),
      services: [...document.querySelectorAll('input[name="service"]:checked')].map((b) => b.value),
      referrals: [...document.querySelectorAll("#referrals .referral")].map((row) => {
        const referral = { to: row.querySelector(".ref-to").value, status: row.querySelector(".ref-status").value };
        const structure = row.querySelector(".ref-structure").value;
        if (structure) referral.structure = structure;
        return referral;
      }),
    };
    if (state.editing) {
      const previous = state.items.find((i) => i.id === state.editing);
      if (previous && previous.body.shift_id) body.shift_id = previous.body.shift_id;
    } else if (open) {
      body.shift_id = open.id;
    }
    if (state.people === 1) {
      body.person = {
        age_band: $("age-band").value, gender: $("gender").value, first_contact: $("first-contact").checked,
      };
      if (state.ref) body.person.ref = state.ref;
    }
    return { body };
  }

  async function saveEncounter(event) {
    event.preventDefault();
    const { body, error } = readForm();
    if (error) {
      $("encounter-error").textContent = error;
      $("encounter-error").hidden = false;
      return;
    }
    const previous = state.editing ? await outbox.get(state.editing) : null;
    await outbox.put({
      id: body.id, kind: "encounter", owner: state.session.username, state: "pending", body,
      created: previous ? previous.created : Date.now(),
    });
    const fixed = Boolean(state.editing);
    await refreshItems();
    resetForm();
    toast(fixed
      ? "Rencontre corrigée : elle sera renvoyée."
      : `Rencontre enregistrée sur le téléphone (${waiting()} en attente d'envoi).`);
    if (fixed) show("outbox");
    syncNow(false);
  }

  // ---------------------------------------------------------------- person code

  function normaliseLetters(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toUpperCase().replace(/[^A-Z]/g, "").slice(0, 2);
  }

  // The ref sent for a person: PBKDF2-SHA256 of a few traits, salted with the
  // organisation, so that the same traits give the same ref in one association only.
  // The traits never leave this function. Limits: docs/field-app.md.
  async function deriveRef(first, last, year, gender, organisationId) {
    const traits = `${normaliseLetters(first)}|${normaliseLetters(last)}|${year}|${gender}`;
    const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(traits), "PBKDF2", false, ["deriveBits"]);
    const bits = await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt: new TextEncoder().encode(`outreach-person-v1:${organisationId}`), iterations: REF_ITERATIONS },
      key, 128);
    return "p1-" + [...new Uint8Array(bits)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function deriveCode() {
    const first = $("trait-first").value, last = $("trait-last").value, year = $("trait-year").value.trim();
    const status = $("code-status");
    if (normaliseLetters(first).length < 2 || normaliseLetters(last).length < 2 || !/^(19|20)\d\d$/.test(year)) {
      status.textContent = "Il faut deux lettres du prénom, deux du nom et l'année de naissance (4 chiffres).";
      return;
    }
    state.ref = await deriveRef(first, last, year, $("trait-gender").value, state.session.organisation.id);
    for (const id of ["trait-first", "trait-last", "trait-year"]) $(id).value = "";
    status.textContent = `Code calculé (${state.ref.slice(3, 9).toUpperCase()}) ; les lettres et l'année sont effacées.`;
  }

  // ---------------------------------------------------------------- outbox screen

  const STATE_TEXT = {
    pending: "À envoyer",
    open: "Maraude en cours",
    invalid: "Refusé : à corriger",
    conflict: "Conflit : déjà enregistré autrement",
  };

  function describe(item) {
    const b = item.body;
    if (item.kind === "shift") {
      return `Maraude ${label("shift_kinds", b.kind)}, ${shortTime(b.started_at)}`;
    }
    const kits = Object.entries(b.kits).map(([code, n]) => `${n} ${label("kits", code)}`).join(", ");
    const feature = sectorFeatures().find((f) => f.properties.cell === b.location.cell);
    const where = feature ? feature.properties.name : `hexagone, ${sectorName(sectorOfCell(b.location.cell))}`;
    return `Rencontre ${shortTime(b.occurred_at)}, ${where}, ${b.people} pers.${kits ? ", " + kits : ""}`;
  }

  // The server's field names and its commonest messages, in French; any other message is
  // shown as the server wrote it.
  const FIELDS = {
    occurred_at: "Heure", location: "Lieu", kits: "Matériel", referrals: "Orientations",
    services: "Services", person: "Personne", people: "Personnes", shift_id: "Maraude",
    started_at: "Début", ended_at: "Fin", planned_sectors: "Secteurs", id: "Identifiant",
  };
  const MESSAGES = [
    ["This time is in the future", "heure dans le futur : vérifiez l'heure saisie ou l'horloge du téléphone."],
    ["This is older than the retention period", "trop ancienne : au-delà de la durée de conservation."],
    ["Unknown kit code", "matériel inconnu du serveur (retiré du catalogue ?)."],
    ["No structure", "structure inconnue ou fermée : choisissez-en une autre."],
    ["Unknown shift", "maraude inconnue du serveur."],
    ["This hexagon is outside the service area", "hors de la zone couverte par le service."],
    ["This position is outside the service area", "hors de la zone couverte par le service."],
    ["Already stored with other content", "déjà enregistré avec un autre contenu (à faire corriger par un·e responsable)."],
  ];

  function errorLines(errors, prefix) {
    const lines = [];
    for (const [field, value] of Object.entries(errors || {})) {
      const path = prefix || FIELDS[field] || field;
      if (Array.isArray(value)) {
        for (const message of value) {
          const known = MESSAGES.find(([start]) => String(message).startsWith(start));
          lines.push(`${path} : ${known ? known[1] : message}`);
        }
      } else if (value && typeof value === "object") {
        lines.push(...errorLines(value, path));
      }
    }
    return lines;
  }

  function renderOutbox() {
    const items = state.items;
    const open = openShift();
    const held = open ? items.filter((i) => i.kind === "encounter" && i.body.shift_id === open.id && i.state === "pending").length : 0;
    $("outbox-summary").textContent = items.length
      ? `${items.length} élément(s) sur le téléphone, pas encore acceptés par le serveur.` +
        (held ? ` ${held} rencontre(s) partiront à la fin de la maraude.` : "")
      : "Tout a été envoyé.";
    $("outbox-list").replaceChildren(...items.map((item) => {
      const lines = errorLines(item.errors);
      const actions = el("div", { class: "actions" });
      if (item.state === "invalid" && item.kind === "encounter") {
        actions.append(el("button", { type: "button", text: "Corriger", onclick: () => { fillForm(item); show("encounter"); } }));
      }
      // Anything not yet accepted may be discarded, on purpose (two taps): an item
      // logged by mistake, one the server refused, or one it holds with other content.
      if (item.state === "pending" || item.state === "invalid" || item.state === "conflict") {
        const discard = el("button", { type: "button", class: "danger", text: "Abandonner" });
        discard.addEventListener("click", async () => {
          if (discard.dataset.armed !== "yes") {
            discard.dataset.armed = "yes";
            discard.textContent = "Confirmer l'abandon (définitif)";
            return;
          }
          await outbox.del(item.id);
          await refreshItems();
        });
        actions.append(discard);
      }
      return el("li", { class: item.state, "data-id": item.id },
        el("span", { class: "state", text: STATE_TEXT[item.state] || item.state }),
        el("div", { text: describe(item) }),
        lines.length ? el("ul", {}, ...lines.map((line) => el("li", { text: line }))) : null,
        actions.children.length ? actions : null);
    }));
  }

  // ---------------------------------------------------------------- history

  async function renderHistory() {
    const status = $("history-status");
    const list = $("history-list");
    if (!navigator.onLine) {
      status.textContent = "Hors ligne : l'historique s'affiche avec le réseau.";
      return;
    }
    status.textContent = "Chargement…";
    try {
      const response = await api("GET", "/encounters?per_page=100");
      if (!response.ok) throw new Offline(String(response.status));
      const page = await response.json();
      status.textContent = page.total
        ? `${page.total} rencontre(s) reçue(s) par le serveur${page.total > page.items.length ? ` ; les ${page.items.length} dernières` : ""}.`
        : "Aucune rencontre envoyée pour l'instant.";
      list.replaceChildren(...page.items.map((e) => {
        const kits = Object.entries(e.kits).map(([code, n]) => `${n} ${label("kits", code)}`).join(", ");
        return el("li", {},
          el("div", { text: `${shortTime(e.occurred_at)} — ${sectorName(e.sector)}, ${label("settings", e.setting)}` }),
          el("div", { class: "note", text: `${e.people} pers.${kits ? " ; " + kits : ""}` }));
      }));
    } catch (error) {
      status.textContent = error instanceof SessionOver
        ? "Session expirée : reconnectez-vous."
        : "Historique indisponible pour l'instant.";
    }
  }

  // ---------------------------------------------------------------- screens

  function show(screen) {
    state.screen = screen;
    for (const name of ["login", "shift", "encounter", "outbox", "history"]) {
      $(`screen-${name}`).hidden = name !== screen;
    }
    $("tabs").hidden = screen === "login";
    for (const button of document.querySelectorAll("#tabs button")) {
      if (button.dataset.screen === screen) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    if (screen === "shift") renderShift();
    if (screen === "outbox") renderOutbox();
    if (screen === "history") renderHistory();
    window.scrollTo(0, 0);
  }

  async function showLogin() {
    show("login");
    const kept = (await outbox.all()).length;
    $("kept-note").hidden = kept === 0;
    $("kept-note").textContent = `${kept} élément(s) non envoyé(s) restent sur ce téléphone ; ils partiront quand leur auteur·e se reconnectera.`;
    renderPending();
  }

  // The refresh token is spent or expired: log in again; the outbox stays as it is.
  async function renderSessionOver() {
    const username = state.session ? state.session.username : "";
    await showLogin();
    $("username").value = username;
    $("login-error").textContent = "Session expirée : reconnectez-vous pour envoyer (rien n'est perdu).";
    $("login-error").hidden = false;
  }

  function renderNetwork() {
    const online = navigator.onLine;
    $("network").textContent = online ? "En ligne" : "Hors ligne";
    $("network").classList.toggle("offline", !online);
  }

  async function start() {
    if (!state.vocab) {
      await showLogin();
      $("login-error").textContent = "Les listes du formulaire n'ont pas pu être chargées : reconnectez-vous avec le réseau.";
      $("login-error").hidden = false;
      return;
    }
    buildForms();
    state.location = (await kv.get("place")) || null;
    await refreshItems();
    resetForm();
    show(openShift() ? "encounter" : "shift");
    syncNow(false);
  }

  function wire() {
    $("login-form").addEventListener("submit", logIn);
    $("logout").addEventListener("click", logOut);
    $("shift-form").addEventListener("submit", startShift);
    $("shift-end").addEventListener("click", endShift);
    $("encounter-form").addEventListener("submit", saveEncounter);
    $("use-position").addEventListener("click", usePosition);
    $("show-plan").addEventListener("click", togglePlan);
    $("derive-code").addEventListener("click", deriveCode);
    $("add-referral").addEventListener("click", () => addReferral(null));
    $("sync-now").addEventListener("click", () => syncNow(true));
    $("pending").addEventListener("click", () => show("outbox"));
    $("occurred").addEventListener("input", () => { $("occurred").dataset.touched = "yes"; });
    $("sector").addEventListener("change", () => {
      const code = $("sector").value;
      const feature = sectorFeatures().find((f) => f.properties.code === code);
      if (feature) setPlace({ cell: feature.properties.cell, source: "sector", sector: code });
      if (!$("plan").hidden) drawPlan();
    });
    for (const button of document.querySelectorAll("#tabs button")) {
      button.addEventListener("click", () => show(button.dataset.screen));
    }
    // One listener for every counter, built or not yet.
    $("encounter-form").addEventListener("click", (event) => {
      const button = event.target.closest("button.plus, button.minus");
      if (!button) return;
      const step = button.classList.contains("plus") ? 1 : -1;
      if (button.dataset.kit) setKit(button.dataset.kit, (state.kits[button.dataset.kit] || 0) + step);
      else setPeople(state.people + step);
    });
    window.addEventListener("online", () => { renderNetwork(); syncNow(false); });
    window.addEventListener("offline", renderNetwork);
    setInterval(() => syncNow(false), SYNC_EVERY_MS);
  }

  async function boot() {
    wire();
    renderNetwork();
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register(document.body.dataset.sw, { scope: "./" }).catch(() => undefined);
    }
    state.session = (await kv.get("session")) || null;
    if (!state.session) {
      await showLogin();
      return;
    }
    state.vocab = ((await kv.get("vocab")) || {}).body || null;
    if (navigator.onLine && state.session.refresh_token) {
      try {
        await loadVocabularies();
      } catch (error) { /* offline or session over: the cached lists serve */ }
    }
    await start();
  }

  window.outreachField = { state, syncNow };
  document.addEventListener("DOMContentLoaded", boot);
})();
