// telegest caregiver app. Plain JavaScript, no framework, no build step.
//
// Storage (IndexedDB "telegest"): kv (credentials, seq counter, ack, planning, visit in
// progress, last sync), events (clock events not yet acked, by seq), notes (km, expenses,
// comments, report, tasks per visit). The gateway (/gw/v1) is the MQTT protocol over HTTPS:
// events carry a gap-free seq, are kept until the fleet's ack covers them and are resent
// from ack + 1. docs/caregiver-app.md explains the screens; docs/protocol.md the wire.
"use strict";

const VERSION = document.querySelector("meta[name=tg-version]").content;
const POLL_MS = window.TG_POLL_MS || 30000;
const HEALTH_MS = 5 * 60000;
const MAX_BATCH = 8, MAX_BYTES = 1024;
const STARTED = Date.now();
const S = { creds: null, config: null, current: null, ack: 0, queue: 0, lastSync: 0,
            online: navigator.onLine, offsetS: 0, battery: null, nfc: "off", blocked: false,
            lastHealth: 0, syncing: null, timer: null };
// screens kept in files of their own (absence.js) register here: views[path](arg) -> html,
// binds[path](arg) after it is shown, syncs: more to send and fetch at each sync
const EXTRA = { views: {}, binds: {}, syncs: [] };

// -- IndexedDB --------------------------------------------------------------------------------
let dbPromise = null;
function db() {
  if (S.blocked) return Promise.reject(new Refused("wiped"));
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const r = indexedDB.open("telegest", 1);
      r.onupgradeneeded = () => {
        r.result.createObjectStore("kv");
        r.result.createObjectStore("events", { keyPath: "seq" });
        r.result.createObjectStore("notes", { keyPath: "visit" });
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  }
  return dbPromise;
}
function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
async function tx(stores, mode, fn) {
  const t = (await db()).transaction(stores, mode);
  const done = new Promise((resolve, reject) => {
    t.oncomplete = resolve;
    t.onerror = t.onabort = () => reject(t.error);
  });
  const out = await fn((name) => t.objectStore(name));
  await done;
  return out;
}
const kvGet = (k) => tx(["kv"], "readonly", (s) => req(s("kv").get(k)));
const kvSet = (k, v) => tx(["kv"], "readwrite", (s) => req(s("kv").put(v, k)));
const allEvents = () => tx(["events"], "readonly", (s) => req(s("events").getAll()));
const getNote = (visit) => tx(["notes"], "readonly", (s) => req(s("notes").get(visit)));
const putNote = (note) => tx(["notes"], "readwrite", (s) => req(s("notes").put(note)));

// -- small helpers ------------------------------------------------------------------------------
const $ = (sel) => document.querySelector(sel);
const nowS = () => Math.floor(Date.now() / 1000);
function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" }[c]));
}
function fmt(ts, opts) {
  const tz = (S.config && S.config.tz) || undefined;
  return new Intl.DateTimeFormat("fr-FR", { timeZone: tz, ...opts }).format(new Date(ts * 1000));
}
const hm = (ts) => fmt(ts, { hour: "2-digit", minute: "2-digit" });
const dayOf = (ts) => fmt(ts, { year: "numeric", month: "2-digit", day: "2-digit" });
const dayTitle = (ts) => fmt(ts, { weekday: "long", day: "numeric", month: "long" });
function toast(text, error) {
  const t = $("#toast");
  t.textContent = text;
  t.className = "toast" + (error ? " error" : "");
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}
const client = (id) => (S.config && S.config.clients[String(id)]) || null;
const visitById = (id) => S.config && S.config.visits.find((v) => v.id === id);
// The planning holds no tag tokens (a phone could replay them): a digest of each static
// tag's content, which the phone compares with the digest of what it reads, and for an
// NTAG 424 DNA the plain client reference of its URL (fleet/tagdigest.py).
async function tagDigest(token) {
  if (!S.config || !S.config.tag_salt || !(window.crypto && crypto.subtle)) return null;
  const bytes = new TextEncoder().encode(S.config.tag_salt + ":" + token);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(hash.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}
async function clientOfTag(token) {
  const sun = sunClient(token);
  const digest = sun === null ? await tagDigest(token) : null;
  for (const [id, c] of Object.entries((S.config && S.config.clients) || {})) {
    if ((digest && (c.tag_digests || []).includes(digest)) || Number(id) === sun) {
      return Number(id);
    }
  }
  return null;
}

// An NTAG 424 DNA's SUN read names its client in clear (c=); the proof, picc_data and cmac,
// only the fleet can check (docs/protocol.md, "SUN tags").
function sunClient(token) {
  try {
    const u = new URL(token);
    return u.searchParams.has("picc_data") && /^[0-9]+$/.test(u.searchParams.get("c") || "")
      ? Number(u.searchParams.get("c")) : null;
  } catch (e) { return null; }
}

// -- the gateway --------------------------------------------------------------------------------
class Refused extends Error {}

async function gw(method, path, body, headers) {
  const auth = "Basic " + btoa(S.creds.ident + ":" + S.creds.password);
  let r;
  try {
    r = await fetch("/gw/v1" + path, { method, headers: { Authorization: auth,
      ...(body ? { "Content-Type": "application/json" } : {}), ...(headers || {}) },
      body: body ? JSON.stringify(body) : undefined, cache: "no-store" });
  } catch (e) {
    setOnline(false);
    throw e;
  }
  setOnline(true);
  const date = Date.parse(r.headers.get("Date") || "");
  if (!isNaN(date)) S.offsetS = Math.round((date - Date.now()) / 1000);
  if (r.status === 403) {
    const doc = await r.json().catch(() => ({}));
    if (doc.wipe) {
      await wipe(doc.detail || "Ce téléphone a été bloqué.");
      throw new Refused(doc.detail);
    }
  }
  if (r.status === 401) {
    const doc = await r.json().catch(() => ({}));
    toast("Identifiants refusés : " + (doc.detail || "réinscrire le téléphone"), true);
    throw new Refused(doc.detail);  // never erase anything because of a 401
  }
  return r;
}

function setOnline(on) {
  S.online = on;
  renderNet();
}

// -- enrolment ----------------------------------------------------------------------------------
async function enrol(token) {
  const r = await fetch("/api/v1/enrol", { method: "POST", body: JSON.stringify({ token }),
    headers: { "Content-Type": "application/json" } });
  const doc = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(doc.detail || "inscription refusée (" + r.status + ")");
  S.creds = { ident: doc.ident, password: doc.password };
  // the credentials are shown once: keep them before anything else can fail
  await tx(["kv"], "readwrite", (s) => {
    s("kv").put(S.creds, "creds");
    s("kv").put(true, "needBase");
  });
  await sync(true);
}

// A fresh phone numbers its events after what the fleet already holds for this device
// (a re-enrolled phone must not reuse a seq). Events taken before that was known are
// renumbered: they were never sent, so nothing else has seen their seq.
async function ensureBase() {
  if (!(await kvGet("needBase"))) return;
  const doc = await (await gw("GET", "/device")).json();
  const base = doc.acked_seq;
  await tx(["kv", "events"], "readwrite", async (s) => {
    const evs = (await req(s("events").getAll())).sort((a, b) => a.seq - b.seq);
    await req(s("events").clear());
    evs.forEach((ev, i) => { ev.seq = base + i + 1; s("events").put(ev); });
    s("kv").put(base + evs.length, "seq");
    s("kv").put(base, "ack");
    s("kv").put(false, "needBase");
  });
  S.ack = base;
}

// -- clock events -------------------------------------------------------------------------------
function timeQuality() {
  return Math.abs(S.offsetS) <= 120 ? "synced" : "unsynced";
}

async function addEvent(ev, current) {
  ev.ts = ev.ts || nowS();
  ev.tq = timeQuality();
  const out = await tx(["kv", "events"], "readwrite", async (s) => {
    const seq = ((await req(s("kv").get("seq"))) || 0) + 1;
    const wire = { seq, ...ev };
    for (const k of ["visit", "pos", "tag"]) if (wire[k] == null) delete wire[k];
    s("events").put(wire);
    s("kv").put(seq, "seq");
    s("kv").put(current, "current");
    return wire;
  });
  S.current = current;
  await refreshQueue();
  sync();
  return out;
}

function bestVisit(clientId) {
  if (!S.config || clientId == null) return null;
  const now = nowS();
  const here = S.config.visits.filter((v) => v.client === clientId && v.end + 3600 > now);
  here.sort((a, b) => Math.abs(a.start - now) - Math.abs(b.start - now));
  return here[0] || null;
}

// -- where the phone was: at clock events only, never in the background -----------------------
// Asked once: an explanation the caregiver accepts or declines, kept on the phone. Declined,
// refused by the browser or unavailable: the event goes without a position.
let geoAsked = null;  // one explanation at a time, whatever taps come meanwhile
function geoChoice() {
  const choice = localStorage.getItem("tg-geo");
  if (choice) return Promise.resolve(choice);
  geoAsked = geoAsked || new Promise((resolve) => {
    const box = document.createElement("section");
    box.id = "geo-ask";
    box.className = "sheet";
    box.innerHTML = `<h1>Votre position au pointage</h1>
      <p>Au moment où vous pointez (début ou fin d'intervention), l'application relève une
      fois la position du téléphone et l'envoie avec le pointage. L'agence vérifie ainsi que
      le pointage a eu lieu au domicile, surtout quand il est manuel.</p>
      <p>Si vous déclenchez un SOS, la position part aussi avec l'alerte, pour que l'agence
      vous trouve.</p>
      <p>Jamais en dehors d'un pointage ou d'un SOS, jamais en arrière-plan. Les positions
      sont gardées au plus deux mois.</p>
      <p class="muted">Sans position, un pointage manuel sera vérifié par l'agence.</p>
      <button id="geo-yes">J'accepte</button>
      <button id="geo-no" class="secondary">Non merci</button>`;
    document.body.appendChild(box);
    const pick = (choice) => {
      localStorage.setItem("tg-geo", choice);
      box.remove();
      geoAsked = null;
      resolve(choice);
    };
    box.querySelector("#geo-yes").onclick = () => pick("yes");
    box.querySelector("#geo-no").onclick = () => pick("no");
  });
  return geoAsked;
}

async function position() {
  if ((await geoChoice()) !== "yes" || !navigator.geolocation) return null;
  return new Promise((resolve) => navigator.geolocation.getCurrentPosition(
    (p) => resolve([Math.round(p.coords.latitude * 1e5) / 1e5,
                    Math.round(p.coords.longitude * 1e5) / 1e5,
                    Math.min(100000, Math.round(p.coords.accuracy))]),
    () => resolve(null), { enableHighAccuracy: true, timeout: 8000, maximumAge: 0 }));
}

async function endVisit(ev, cur) {
  await addEvent({ ...ev, dir: "out", visit: cur.visit }, null);
  const notes = (await getNote(cur.visit)) || { visit: cur.visit };
  notes.ended = nowS();
  await putNote(notes);
  toast("Fin d'intervention enregistrée " + hm(nowS()));
  location.hash = "#/visit/" + cur.visit;
  render();
}

// a tag read by NFC or a QR code: arrival, or departure from the visit in progress (the
// phone decides the direction, as a reader does). What was read is sent whole: only the
// fleet can tell a genuine tag from a copy.
async function clockTag(token, method) {
  token = (token || "").trim();
  if (!token) return;
  const ts = nowS();
  const clientId = await clientOfTag(token);
  const digest = clientId === null ? await tagDigest(token) : null;
  const cur = S.current;
  if (cur) {
    if ((clientId !== null && clientId !== cur.client) ||
        (clientId === null && digest !== cur.tag)) {
      const c = client(cur.client);
      toast("Intervention en cours chez " + (c ? c.name : "?") + " : pointez d'abord la fin.", true);
      return;
    }
    await endVisit({ tag: token, method, ts, pos: await position() }, cur);
    return;
  }
  const v = bestVisit(clientId);
  const done = v && (await getNote(v.id));
  if (done && done.ended) {
    // its departure is already on the phone: a second arrival would open it again
    toast("Intervention déjà terminée (fin à " + hm(done.ended) + ") · This visit is already " +
          "closed. Autre intervention : pointage manuel avec un motif · Another visit: " +
          "manual clock-in with a reason.", true);
    return;
  }
  // an unknown tag is remembered by its digest only, to end the visit with the same tag
  const current = { visit: v ? v.id : null, client: v ? v.client : clientId, tag: digest,
                    since: ts };
  await addEvent({ tag: token, dir: "in", method, ts, visit: current.visit,
                   pos: await position() }, current);
  toast(clientId === null
    ? "Badge inconnu de votre planning : pointage gardé, l'agence vérifiera."
    : "Début d'intervention enregistré " + hm(nowS()));
  location.hash = current.visit ? "#/visit/" + current.visit : "#/";
  render();
}

// a manual clock-in (a claim): the reason, the visit, the position if the caregiver allows
// it; no tag. The agency reviews it unless the position is at the home.
async function clockManual(visitId, reason) {
  const ts = nowS();
  const pos = await position();
  const cur = S.current;
  if (cur) {
    await endVisit({ method: "manual", reason, ts, pos }, { ...cur, visit: cur.visit || visitId });
    return;
  }
  const v = visitById(visitId);
  const current = { visit: v.id, client: v.client, tag: null, since: ts };
  await addEvent({ dir: "in", method: "manual", reason, ts, visit: v.id, pos }, current);
  toast("Début d'intervention enregistré " + hm(ts));
  location.hash = "#/visit/" + v.id;
  render();
}

async function refreshQueue() {
  S.queue = (await allEvents()).length;
  renderNet();
}

// exactly once: send from ack + 1, free only what the ack covers, resend the rest later
async function sendEvents() {
  for (;;) {
    const evs = (await allEvents()).filter((e) => e.seq > S.ack).sort((a, b) => a.seq - b.seq);
    if (!evs.length) return;
    let batch = evs.slice(0, MAX_BATCH);
    while (batch.length > 1 && JSON.stringify({ now: nowS(), events: batch }).length > MAX_BYTES) {
      batch = batch.slice(0, -1);
    }
    const r = await gw("POST", "/clock", { now: nowS(), events: batch });
    if (!r.ok) return;  // refused whole: kept, tried again at the next sync
    const doc = await r.json();
    if (doc.ack <= S.ack) return;  // no progress (a gap): wait for the next sync
    await tx(["kv", "events"], "readwrite", async (s) => {
      s("events").delete(IDBKeyRange.upperBound(doc.ack));
      s("kv").put(doc.ack, "ack");
    });
    S.ack = doc.ack;
    await refreshQueue();
  }
}

async function sendNotes() {
  if (S.queue) return;  // the clock events first: the report follows the departure
  const notes = await tx(["notes"], "readonly", (s) => req(s("notes").getAll()));
  for (const n of notes.filter((n) => n.dirty)) {
    const r = await gw("POST", "/visit-report", { visit: n.visit, km: n.km ?? null,
      expenses_cents: n.expenses_cents ?? null, comment: n.comment || "",
      report: n.report || "", tasks: n.tasks || {} });
    if (r.ok || r.status === 404 || r.status === 422) {
      const fresh = await getNote(n.visit);
      if (fresh && fresh.rev === n.rev) { fresh.dirty = false; await putNote(fresh); }
    }
  }
}

// -- planning -----------------------------------------------------------------------------------
async function pollConfig() {
  const etag = await kvGet("etag");
  const r = await gw("GET", "/config", null, etag ? { "If-None-Match": etag } : {});
  if (r.status === 304 || !r.ok) return;
  const doc = await r.json();
  const old = S.config;
  await tx(["kv"], "readwrite", (s) => {
    s("kv").put(doc, "config");
    s("kv").put(r.headers.get("ETag"), "etag");
  });
  S.config = doc;
  if (old && old.hash !== doc.hash) {
    const changes = planningChanges(old, doc);
    if (changes.length) planningAlert(changes);
  }
  render();
}

// what changed for the caregiver: visits still to come that moved, appeared or went away
// (a new day entering the window at midnight is not a change)
function planningChanges(old, doc) {
  const now = nowS(), oldEnd = old.from + old.days * 86400;
  const before = new Map(old.visits.map((v) => [v.id, v]));
  const after = new Map(doc.visits.map((v) => [v.id, v]));
  const name = (v, cfg) => (cfg.clients[String(v.client)] || {}).name || "?";
  const out = [];
  for (const v of doc.visits) {
    const o = before.get(v.id);
    if (!o && v.start < oldEnd && v.end > now) {
      out.push(`Nouvelle : ${dayTitle(v.start)} ${hm(v.start)} ${name(v, doc)}`);
    } else if (o && (o.start !== v.start || o.end !== v.end || o.client !== v.client)) {
      const who = o.client === v.client ? "" : name(v, doc) + ", ";
      const day = dayOf(o.start) === dayOf(v.start) ? "" : dayTitle(v.start) + " ";
      out.push(`Modifiée : ${name(o, old)}, ${dayTitle(o.start)} ${hm(o.start)} → ` +
               `${who}${day}${hm(v.start)}–${hm(v.end)}`);
    }
  }
  for (const o of old.visits) {
    if (!after.has(o.id) && o.end > now && o.start >= doc.from) {
      out.push(`Annulée : ${dayTitle(o.start)} ${hm(o.start)} ${name(o, old)}`);
    }
  }
  return out;
}

function planningAlert(changes) {
  const a = $("#alert");
  a.innerHTML = "<strong>Votre planning a changé</strong><ul>" +
    changes.map((c) => `<li>${esc(c)}</li>`).join("") +
    '</ul><button id="alert-ok" class="secondary">Vu</button>';
  a.hidden = false;
  $("#alert-ok").onclick = () => { a.hidden = true; };
  document.body.dataset.alerts = String(Number(document.body.dataset.alerts || 0) + 1);
  if (navigator.vibrate) navigator.vibrate([300, 150, 300, 150, 300]);
  beep();
}

let audio = null;
function beep() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    [0, 0.35, 0.7].forEach((t) => {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880;
      g.gain.value = 0.2;
      o.connect(g).connect(audio.destination);
      o.start(audio.currentTime + t);
      o.stop(audio.currentTime + t + 0.2);
    });
  } catch (e) { /* no sound here: the banner and the vibration remain */ }
}
// browsers start audio only after a gesture: unlock it at the first touch
addEventListener("pointerdown", () => { if (audio) audio.resume(); else beep.ready = true; },
                 { once: true });

// -- commands, health ---------------------------------------------------------------------------
async function pollCommands() {
  const r = await gw("GET", "/cmd");
  if (!r.ok) return;
  for (const c of (await r.json()).commands) {
    if (c.cmd === "wipe") { await wipe("Effacement demandé par l'agence."); return; }
    const ok = c.cmd === "ping";
    await gw("POST", "/cmd/" + c.id, { ok, result: ok ? "pong" : "not supported by the app" });
  }
}

async function sendHealth(force) {
  if (!force && Date.now() - S.lastHealth < HEALTH_MS) return;
  if (navigator.getBattery && S.battery === null) {
    try { S.battery = Math.round((await navigator.getBattery()).level * 100); } catch (e) { /**/ }
  }
  const doc = { now: nowS(), fw: VERSION, up: Math.round((Date.now() - STARTED) / 1000),
    // rd: a phone without NFC (iPhone) is not a broken reader; a refused permission is
    heap: 0, jd: S.queue, jfull: false, rd: S.nfc === "denied" ? "nfc_denied" : "ok",
    tq: timeQuality(), cfg: (S.config && S.config.version) || 0, sync: S.lastSync || 0,
    app: "caregiver" };
  if (S.battery !== null) doc.bat = S.battery;
  const r = await gw("POST", "/health", doc);
  if (r.ok) S.lastHealth = Date.now();
}

// one sync at a time; network errors only wait for the next one
function sync(forceHealth) {
  if (!S.creds || S.blocked) return Promise.resolve();
  if (S.syncing) return S.syncing;
  S.syncing = (async () => {
    try {
      if (typeof sosSend === "function") await sosSend();  // an SOS first of all (sos.js)
      await ensureBase();
      await sendEvents();
      await pollCommands();
      await pollConfig();
      if (typeof sosInfo === "function") await sosInfo();
      await sendNotes();
      for (const extra of EXTRA.syncs) await extra();
      S.lastSync = nowS();
      await kvSet("lastSync", S.lastSync);
      await sendHealth(forceHealth);
    } catch (e) {
      if (!(e instanceof Refused)) console.info("sync later:", e.message);
    } finally {
      S.syncing = null;
      renderNet();
    }
  })();
  return S.syncing;
}

// -- lost or stolen: erase everything -----------------------------------------------------------
async function wipe(why) {
  S.blocked = true;
  clearInterval(S.timer);
  S.creds = S.config = S.current = null;
  try { localStorage.clear(); sessionStorage.clear(); } catch (e) { /**/ }
  if (dbPromise) { (await dbPromise).close(); dbPromise = null; }
  await new Promise((resolve) => {
    const r = indexedDB.deleteDatabase("telegest");
    r.onsuccess = r.onerror = r.onblocked = resolve;
  });
  if (window.caches) for (const k of await caches.keys()) await caches.delete(k);
  if (navigator.serviceWorker) {
    for (const reg of await navigator.serviceWorker.getRegistrations()) await reg.unregister();
  }
  document.querySelectorAll(".sheet").forEach((e) => e.remove());  // a message, a question
  $("#current").hidden = $("#tabs").hidden = $("#alert").hidden = true;
  document.querySelectorAll(".sos-ui").forEach((e) => { e.hidden = true; });
  $("#view").innerHTML = `<section class="blocked" id="blocked"><h1>Téléphone bloqué</h1>
    <p>${esc(why)}</p><p class="muted">Les données de l'application ont été effacées.</p>
    </section>`;
}

// -- NFC and QR ---------------------------------------------------------------------------------
function tokenFromText(text) {
  try {
    const u = new URL(text);
    if (u.searchParams.has("picc_data")) return text;  // a SUN read: sent whole, as read
    return u.searchParams.get("tag") || u.pathname.split("/").filter(Boolean).pop() || text;
  } catch (e) { return text; }
}

function tokenFromNdef(event) {
  for (const rec of event.message.records) {
    const bytes = rec.data && new Uint8Array(rec.data.buffer, rec.data.byteOffset,
                                             rec.data.byteLength);
    if (rec.recordType === "text") return new TextDecoder(rec.encoding || "utf-8").decode(bytes);
    if (rec.recordType === "url") return tokenFromText(new TextDecoder().decode(bytes));
  }
  return (event.serialNumber || "").replace(/:/g, "").toUpperCase();
}

async function startNfc() {
  if (!("NDEFReader" in window)) { S.nfc = "missing"; return; }
  if (S.nfc === "on") return;
  try {
    const reader = new NDEFReader();
    await reader.scan();
    reader.addEventListener("reading", (e) => clockTag(tokenFromNdef(e), "nfc"));
    reader.addEventListener("readingerror", () => toast("Badge illisible : réessayez.", true));
    S.nfc = "on";
  } catch (e) {
    S.nfc = "denied";
    toast("NFC indisponible : " + e.message, true);
  }
  render();
}

let camera = null;
async function startCamera() {
  const video = $("#qr-video");
  if (!video || !("BarcodeDetector" in window) || !navigator.mediaDevices) return;
  try {
    const detector = new BarcodeDetector({ formats: ["qr_code"] });
    camera = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    video.srcObject = camera;
    video.hidden = false;
    await video.play();
    const tick = async () => {
      if (!camera) return;
      const codes = await detector.detect(video).catch(() => []);
      if (codes.length) { stopCamera(); clockTag(tokenFromText(codes[0].rawValue), "qr"); return; }
      setTimeout(tick, 300);
    };
    tick();
  } catch (e) { toast("Caméra indisponible : saisissez le code.", true); }
}
function stopCamera() {
  if (camera) camera.getTracks().forEach((t) => t.stop());
  camera = null;
}

// -- screens ------------------------------------------------------------------------------------
function renderNet() {
  const n = $("#net");
  n.dataset.state = S.online ? "online" : "offline";
  n.textContent = (S.online ? "en ligne" : "hors ligne") +
    (S.queue ? ` · ${S.queue} à envoyer` : "");
  n.dataset.queue = String(S.queue);
}

function renderCurrent() {
  const c = $("#current");
  if (!S.current) { c.hidden = true; return; }
  const cl = client(S.current.client);
  c.href = S.current.visit ? "#/visit/" + S.current.visit : "#/clock";
  c.textContent = `● Intervention en cours${cl ? " chez " + cl.name : ""} depuis ` +
    hm(S.current.since);
  c.hidden = false;
}

function visitCard(v) {
  const c = client(v.client) || {};
  const svc = (S.config.services[String(v.service)] || {}).name || "";
  const state = S.current && S.current.visit === v.id ? '<span class="state in">en cours</span>'
    : S.done && S.done.has(v.id) ? '<span class="state done">pointée</span>' : "";
  return `<a class="card" href="#/visit/${v.id}" data-visit="${v.id}">${state}
    <span class="when">${hm(v.start)} – ${hm(v.end)}</span> ${esc(c.name)}
    <div class="muted">${esc([svc, c.address].filter(Boolean).join(" · "))}</div></a>`;
}

function viewEnrol() {
  return `<h1>Inscrire ce téléphone</h1>
    <p>Scannez le QR code d'inscription affiché par la console de l'agence, ou collez le code.</p>
    <video id="qr-video" hidden playsinline></video>
    <label for="token">Code d'inscription</label>
    <input id="token" autocomplete="off" placeholder="tge_…">
    <button id="enrol">Inscrire</button>`;
}

function viewToday() {
  const today = dayOf(nowS());
  const list = S.config.visits.filter((v) => dayOf(v.start) === today);
  const who = S.config.caregiver ? S.config.caregiver.name : "";
  return `<h1>Aujourd'hui, ${esc(dayTitle(nowS()))}</h1><p class="muted">${esc(who)}</p>` +
    (list.length ? list.map(visitCard).join("") : '<p id="empty">Aucune intervention.</p>');
}

function viewWeek() {
  const days = new Map();
  for (const v of S.config.visits) {
    const d = dayOf(v.start);
    if (!days.has(d)) days.set(d, []);
    days.get(d).push(v);
  }
  if (!days.size) return "<h1>Semaine</h1><p>Aucune intervention.</p>";
  return "<h1>Semaine</h1>" + [...days.values()].map((vs) =>
    `<h2>${esc(dayTitle(vs[0].start))}</h2>` + vs.map(visitCard).join("")).join("");
}

function clockButtons(visit) {
  const nfc = "NDEFReader" in window;
  return (nfc && S.nfc !== "on" ? '<button id="nfc-start">Activer le badge NFC</button>' : "") +
    (nfc && S.nfc === "on" ? '<p class="muted" id="nfc-on">NFC prêt : approchez le téléphone du badge.</p>' : "") +
    `<a class="button secondary" href="#/qr">QR code</a>` +
    (visit ? `<a class="button secondary" id="manual" href="#/manual/${visit.id}">Pointage manuel</a>` : "");
}

async function viewVisit(id) {
  const v = visitById(id);
  if (!v) return "<h1>Intervention</h1><p>Cette intervention n'est plus sur votre planning.</p>";
  const c = client(v.client) || {};
  const svc = S.config.services[String(v.service)] || { name: "", tasks: [] };
  const inProgress = S.current && S.current.visit === id;
  const note = (await getNote(id)) || { visit: id, tasks: {} };
  let html = `<h1>${esc(c.name)}</h1>
    <dl><dt>Quand</dt><dd>${esc(dayTitle(v.start))}, ${hm(v.start)} – ${hm(v.end)}</dd>
    <dt>Prestation</dt><dd>${esc(svc.name || "—")}</dd>
    <dt>Adresse</dt><dd>${esc(c.address)}</dd></dl>
    <a class="button secondary" href="#/client/${v.client}">Fiche usager</a>`;
  if (inProgress || note.ended) {
    html += `<h2>${inProgress ? "Intervention en cours" : "Compte rendu"}</h2><form id="notes">` +
      (svc.tasks.length ? "<label>Tâches</label>" + svc.tasks.map(([tid, label]) =>
        `<label class="check"><input type="checkbox" name="task" value="${tid}"
         ${note.tasks && note.tasks[tid] ? "checked" : ""}> ${esc(label)}</label>`).join("") : "") +
      `<label for="km">Kilomètres</label><input id="km" name="km" type="number" min="0"
        inputmode="numeric" value="${note.km ?? ""}">
      <label for="expenses">Frais (€)</label><input id="expenses" name="expenses" type="number"
        min="0" step="0.01" inputmode="decimal"
        value="${note.expenses_cents != null ? (note.expenses_cents / 100).toFixed(2) : ""}">
      <label for="comment">Commentaires</label><textarea id="comment" name="comment"
        rows="2">${esc(note.comment)}</textarea>` +
      (note.ended ? `<label for="report">Compte rendu de fin d'intervention</label>
        <textarea id="report" name="report" rows="4">${esc(note.report)}</textarea>` : "") +
      `<button id="save-notes" type="submit">Enregistrer</button></form>`;
  }
  if (inProgress) html += "<h2>Fin d'intervention</h2>" + clockButtons(v);
  else if (!S.current && !note.ended) html += "<h2>Début d'intervention</h2>" + clockButtons(v);
  return html;
}

function viewClient(id) {
  const c = client(id);
  if (!c) return "<h1>Fiche usager</h1><p>Usager inconnu.</p>";
  const map = "https://www.openstreetmap.org/search?query=" + encodeURIComponent(c.address);
  const visits = S.config.visits.filter((v) => v.client === id);
  return `<h1>${esc(c.name)}</h1><dl><dt>Adresse</dt><dd>${esc(c.address)}</dd>
    <dt>Badge</dt><dd>${(c.tag_digests || []).length || c.sun ? "oui" : "aucun : pointage manuel"}</dd></dl>
    <a class="button secondary" href="${map}" target="_blank" rel="noopener">Itinéraire</a>` +
    viewRecord(c.record) + "<h2>Interventions de la semaine</h2>" + visits.map(visitCard).join("");
}

// The record at the door: sent for today's clients only (docs/caregiver-app.md)
function viewRecord(r) {
  if (!r) return "";
  const row = (label, value) => value ? `<dt>${label}</dt><dd>${esc(value)}</dd>` : "";
  const family = (r.family || []).map((f) => `<li>${esc(f.name)}${f.relation ? " (" +
    esc(f.relation) + ")" : ""} <a class="tel" href="tel:${esc(f.phone.replace(/[ .-]/g, ""))}">${esc(f.phone)}</a></li>`).join("");
  return `<section id="client-record"><h2>Fiche du jour</h2><dl>` +
    row("Digicode", r.access_code) + row("Boîte à clés", r.key_box) +
    (r.fields || []).map(([label, value]) => row(esc(label), value)).join("") + "</dl>" +
    (r.notes ? `<h3>Consignes</h3><p class="notes">${esc(r.notes)}</p>` : "") +
    (family ? `<h3>Famille</h3><ul class="family">${family}</ul>` : "") + "</section>";
}

function viewClock() {
  const v = S.current ? visitById(S.current.visit) : bestVisit(null);
  return `<h1>${S.current ? "Pointer la fin" : "Pointer le début"}</h1>` + clockButtons(v) +
    (S.current ? "" : '<p class="muted">Pointage manuel : depuis la fiche de l\'intervention.</p>');
}

function viewQr() {
  return `<h1>QR code</h1><video id="qr-video" hidden playsinline></video>
    <label for="qr-text">Code du badge (scanné ou saisi)</label>
    <input id="qr-text" autocomplete="off"><button id="qr-ok">Pointer</button>`;
}

function viewManual(id) {
  const v = visitById(id);
  if (!v) return "<h1>Pointage manuel</h1><p>Intervention inconnue.</p>";
  const dir = S.current ? "la fin" : "le début";
  return `<h1>Pointer ${dir} à la main</h1><p>${esc((client(v.client) || {}).name)},
    ${hm(v.start)} – ${hm(v.end)}</p><form id="manual-form">
    <label for="reason">Motif</label><select id="reason-kind">
      <option>Badge absent ou illisible</option><option>Téléphone sans NFC</option>
      <option>Oubli de pointage</option><option value="">Autre (préciser)</option></select>
    <input id="reason" maxlength="120" placeholder="Précisez si besoin">
    <button type="submit" id="manual-ok">Pointer ${dir}</button></form>`;
}

function viewPhone() {
  return `<h1>Téléphone</h1><dl id="phone-info">
    <dt>Appareil</dt><dd>${esc(S.creds.ident)}</dd><dt>Version</dt><dd>${esc(VERSION)}</dd>
    <dt>À envoyer</dt><dd id="queue">${S.queue}</dd>
    <dt>Dernière synchro</dt><dd>${S.lastSync ? esc(dayTitle(S.lastSync)) + " " + hm(S.lastSync) : "jamais"}</dd>
    <dt>Planning</dt><dd>version ${S.config ? S.config.version : "—"}</dd>
    <dt>NFC</dt><dd>${esc(S.nfc)}</dd>
    <dt>Batterie</dt><dd>${S.battery === null ? "—" : S.battery + " %"}</dd>
    ${typeof pushLine === "function" ? pushLine() : ""}</dl>
    ${typeof pushButton === "function" ? pushButton() : ""}
    ${typeof emergencyLinks === "function" ? emergencyLinks()
      : '<a class="button danger" href="tel:112">Appel d\'urgence 112</a>'}
    <a class="button secondary" href="#/directory">Annuaire</a>
    <button id="sync-now" class="secondary">Synchroniser</button>`;
}

// render() waits for the phone's database before it writes the screen: a render started
// earlier (a sync that came in) must not write its older screen over a newer one (the
// caregiver's tap on a visit), so only the latest render writes
let renders = 0;
async function render() {
  if (S.blocked) return;
  const mine = ++renders;
  stopCamera();
  const [path, arg] = location.hash.replace(/^#\/?/, "").split("/");
  const view = $("#view");
  $("#tabs").hidden = !S.creds;
  renderNet();
  renderCurrent();
  if (!S.creds) { view.innerHTML = viewEnrol(); bindEnrol(); startCamera(); return; }
  if (!S.config) { view.innerHTML = "<p>Chargement du planning…</p>"; return; }
  S.done = new Set((await tx(["notes"], "readonly", (s) => req(s("notes").getAll())))
    .filter((n) => n.ended).map((n) => n.visit));
  const id = Number(arg);
  const html = EXTRA.views[path] ? await EXTRA.views[path](arg)
    : path === "week" ? viewWeek() : path === "visit" ? await viewVisit(id)
    : path === "client" ? viewClient(id) : path === "clock" ? viewClock()
    : path === "qr" ? viewQr() : path === "manual" ? viewManual(id)
    : path === "phone" ? viewPhone() : viewToday();
  if (mine !== renders) return;  // a newer render is on its way
  // a re-render of the same screen (a sync came in) keeps what the caregiver was typing
  const here = `${path}/${arg || ""}`;
  const typed = view.dataset.screen === here ? fieldValues(view) : null;
  view.innerHTML = html;
  view.dataset.screen = here;
  if (typed) for (const [fid, value] of typed) { const f = $("#" + fid); if (f) f.value = value; }
  document.querySelectorAll("#tabs a").forEach((a) =>
    a.classList.toggle("on", a.dataset.tab === (path || "today")));
  bind(path, id);
}

function fieldValues(root) {
  return [...root.querySelectorAll("input[id], select[id], textarea[id]")]
    .filter((f) => f.type !== "file" && f.type !== "hidden").map((f) => [f.id, f.value]);
}

function bindEnrol() {
  $("#enrol").onclick = async () => {
    try { await enrol($("#token").value.trim()); location.hash = "#/"; render(); }
    catch (e) { toast(e.message, true); }
  };
}

function bind(path, id) {
  if (EXTRA.binds[path]) EXTRA.binds[path](id);
  const nfc = $("#nfc-start");
  if (nfc) nfc.onclick = startNfc;
  if (path === "qr") {
    $("#qr-ok").onclick = () => clockTag(tokenFromText($("#qr-text").value), "qr");
    startCamera();
  }
  if (path === "manual") {
    $("#manual-form").onsubmit = (e) => {
      e.preventDefault();
      const reason = [$("#reason-kind").value, $("#reason").value.trim()].filter(Boolean)
        .join(" : ").slice(0, 120);
      if (!reason) { toast("Indiquez le motif.", true); return; }
      clockManual(id, reason);
    };
  }
  if (path === "visit" && $("#notes")) {
    $("#notes").onsubmit = async (e) => {
      e.preventDefault();
      const note = (await getNote(id)) || { visit: id };
      const km = $("#km").value, eur = $("#expenses").value;
      note.km = km === "" ? null : Math.round(Number(km));
      note.expenses_cents = eur === "" ? null : Math.round(Number(eur) * 100);
      note.comment = $("#comment").value;
      if ($("#report")) note.report = $("#report").value;
      note.tasks = {};
      document.querySelectorAll("input[name=task]").forEach((t) => {
        note.tasks[t.value] = t.checked;
      });
      note.dirty = true;
      note.rev = (note.rev || 0) + 1;
      await putNote(note);
      toast("Enregistré" + (S.online ? "" : " (envoi au retour du réseau)"));
      sync();
    };
  }
  if (path === "phone") {
    $("#sync-now").onclick = () => sync(true).then(render);
    if (typeof bindPush === "function") bindPush();
  }
}

// -- start --------------------------------------------------------------------------------------
async function start() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {});
  }
  addEventListener("hashchange", render);
  addEventListener("online", () => { setOnline(true); sync(); });
  addEventListener("offline", () => setOnline(false));
  const [creds, config, current, ack, lastSync] = await Promise.all(
    ["creds", "config", "current", "ack", "lastSync"].map(kvGet));
  Object.assign(S, { creds, config, current, ack: ack || 0, lastSync: lastSync || 0 });
  await refreshQueue();
  const token = new URLSearchParams(location.search).get("token");
  if (!S.creds && token) {
    history.replaceState(null, "", "/app/");  // the token is single use: off the address bar
    try { await enrol(token); } catch (e) { toast(e.message, true); }
  }
  await render();
  if (S.creds) {
    if (navigator.permissions && "NDEFReader" in window) {
      navigator.permissions.query({ name: "nfc" })
        .then((p) => { if (p.state === "granted") startNfc(); }).catch(() => {});
    }
    sync(true);
  }
  S.timer = setInterval(() => sync(), POLL_MS);
}

start();
