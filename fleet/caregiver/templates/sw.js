// telegest caregiver app: keeps the shell for offline use and shows Web Push notifications
// (an SOS acknowledged, the planning changed, a message: fleet/webpush.py). The planning, the clock events and
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

// a push is only a wake-up: what it says, the app also gets at its next sync
self.addEventListener("push", (e) => {
  let m = {};
  try { m = e.data ? e.data.json() : {}; } catch (err) { /* not JSON: a plain notification */ }
  e.waitUntil(self.registration.showNotification(m.title || "telegest", {
    body: m.body || "", tag: m.kind || "telegest", data: { url: m.url || "/app/" },
    icon: "/app/static/icon-192.png", requireInteraction: m.kind === "sos_ack" }));
});

self.addEventListener("notificationclick", (e) => {
  e.notification.close();
  const url = new URL((e.notification.data && e.notification.data.url) || "/app/",
                      location.origin).href;
  e.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true })
    .then((wins) => {
      const open = wins.find((w) => w.url.startsWith(location.origin + "/app"));
      if (open) return open.navigate(url).then((w) => (w || open).focus());
      return self.clients.openWindow(url);
    }));
});
