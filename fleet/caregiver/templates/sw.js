// telegest caregiver app: keeps the shell for offline use. The planning, the clock events and
// the notes are in IndexedDB (app.js); the gateway (/gw/) and the API are never cached.
const CACHE = "telegest-app-{{ version }}";
const SHELL = {{ shell | tojson }};

self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin ||
      !url.pathname.startsWith("/app")) return;
  if (e.request.mode === "navigate") {
    // network first, so a new version shows at once; the cached shell when offline
    e.respondWith(fetch(e.request).catch(() => caches.match("/app/")));
    return;
  }
  e.respondWith(caches.match(e.request, { ignoreSearch: true })
    .then((hit) => hit || fetch(e.request)));
});
