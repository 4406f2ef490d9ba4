/* The field app's service worker: keeps the app's shell so that it opens offline.
 *
 * The shell (page, manifest, script, style, h3-js, icons) is cached whole when a new
 * version installs; its version is a digest of the files (outreach/fieldapp), so a new
 * release replaces the cache. The shell is answered from the cache first, then asked
 * again in the background so that the next opening has what the server now serves.
 * API calls are never cached here: the app keeps what it needs (vocabularies, outbox)
 * in IndexedDB itself, and a sync must reach the server or fail.
 */
"use strict";

const VERSION = {{ version|tojson }};
const CACHE = "outreach-shell-" + VERSION;
const SHELL = {{ shell|tojson }};
const PAGE = SHELL[0];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(
        names.filter((name) => name.startsWith("outreach-shell-") && name !== CACHE)
          .map((name) => caches.delete(name))
      ))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const key = request.mode === "navigate" && url.pathname === PAGE ? PAGE : url.pathname;
  if (!SHELL.includes(key)) return;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(key);
      const fresh = fetch(request).then((response) => {
        if (response.ok) cache.put(key, response.clone());
        return response;
      });
      if (cached) {
        fresh.catch(() => undefined);
        return cached;
      }
      return fresh;
    })
  );
});
