// telegest caregiver app: the SOS (DATI) and Web Push. Loaded after app.js, whose state (S)
// and helpers (gw, kvGet, kvSet, toast, esc, fmt, hm, nowS, client, visitById, position) it
// uses.
//
// The red SOS button is on every screen. Pressed, it counts down from 10 s with a cancel
// button; at zero the alert is stored on the phone FIRST (IndexedDB, kv "sosQueue"), then sent
// (POST /gw/v1/sos) ahead of anything else the phone has to send, and the agency's SOS number
// is called (tel:). It stays on the phone until the fleet answers that it is stored; a resend
// carries the same id, so the fleet never counts it twice. Offline, the sheet offers an sms:
// link with the same text. The position is taken while the countdown runs, if the caregiver
// accepted positions (the clock-in explanation, app.js). docs/caregiver-app.md, "SOS".
"use strict";

const SOS_S = window.TG_SOS_S || 10;
const SOS_RETRY_MS = 5000;
const SOS_INFO_MS = 5 * 60000;
const SOS = { timer: null, left: 0, pos: null, sending: null, retry: null, info: null,
              infoAt: 0, pushed: false };

function sosId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
                    (b) => b.toString(16).padStart(2, "0")).join("");
}

// the visit the caregiver is at: the one under way, else the one planned now, else the last
function sosVisit() {
  if (!S.config) return null;
  if (S.current && S.current.visit) return visitById(S.current.visit) || null;
  const now = nowS();
  const begun = S.config.visits.filter((v) => v.start <= now).sort((a, b) => b.start - a.start);
  return begun.find((v) => v.end >= now) || begun[0] || null;
}

function sosText(alert) {
  const v = alert.visit ? visitById(alert.visit) : null;
  const c = v ? client(v.client) : null;
  const who = (S.config && S.config.caregiver && S.config.caregiver.name) || S.creds.ident;
  const lines = [`SOS ${who}`, fmt(alert.ts, { dateStyle: "short", timeStyle: "medium" })];
  if (c) lines.push(`Chez ${c.name}, ${c.address}`);
  if (alert.pos) {
    lines.push(`Position ${alert.pos[0]}, ${alert.pos[1]} (± ${alert.pos[2]} m) ` +
               `https://www.openstreetmap.org/?mlat=${alert.pos[0]}&mlon=${alert.pos[1]}`);
  }
  return lines.join("\n");
}

const sosQueue = async () => (await kvGet("sosQueue")) || [];

// -- the button and the countdown ------------------------------------------------------------
function sosSheet(html) {
  const sheet = $("#sos-sheet");
  sheet.innerHTML = html;
  sheet.hidden = false;
  return sheet;
}

function sosStart() {
  if (SOS.timer || !S.creds || S.blocked) return;
  SOS.left = SOS_S;
  SOS.pos = null;
  // the position while the countdown runs: ready at zero (only with the caregiver's consent)
  if (localStorage.getItem("tg-geo") === "yes") position().then((p) => { SOS.pos = p; });
  const sheet = sosSheet(`<h1>SOS</h1>
    <p>L'alerte part dans <strong id="sos-count">${SOS.left}</strong> s : l'agence est
    prévenue et le numéro d'urgence appelé.</p>
    <button id="sos-cancel" class="secondary">Annuler</button>`);
  sheet.dataset.state = "counting";
  $("#sos-cancel").onclick = sosCancel;
  if (navigator.vibrate) navigator.vibrate(200);
  SOS.timer = setInterval(() => {
    SOS.left -= 1;
    const n = $("#sos-count");
    if (n) n.textContent = String(SOS.left);
    if (SOS.left <= 0) { clearInterval(SOS.timer); SOS.timer = null; sosFire(); }
  }, 1000);
}

function sosCancel() {
  clearInterval(SOS.timer);
  SOS.timer = null;
  const sheet = $("#sos-sheet");
  sheet.hidden = true;
  sheet.dataset.state = "cancelled";
  toast("SOS annulé : rien n'a été envoyé.");
}

async function sosFire() {
  const v = sosVisit();
  const alert = { id: sosId(), ts: nowS(), pos: SOS.pos || null, visit: v ? v.id : null };
  // on the phone before anything else: a crash, a closed tab or no network loses nothing
  await kvSet("sosQueue", [...(await sosQueue()), alert]);
  const number = (SOS.info && SOS.info.number) || (await kvGet("sosInfo") || {}).number || "";
  const text = sosText(alert);
  const sheet = sosSheet(`<h1>SOS envoyé</h1>
    <p id="sos-state">Envoi de l'alerte à l'agence…</p>
    ${number ? `<a class="button danger" id="sos-call" href="tel:${esc(number)}">Appeler le
      ${esc(number)}</a>` : `<a class="button danger" id="sos-call" href="tel:112">Appeler le
      112</a>`}
    <a class="button secondary" id="sos-sms" hidden
       href="sms:${esc(number)}?body=${encodeURIComponent(text)}">Envoyer un SMS</a>
    <pre id="sos-text">${esc(text)}</pre>
    <button id="sos-close" class="secondary">Fermer</button>`);
  sheet.dataset.state = "fired";
  $("#sos-close").onclick = () => { sheet.hidden = true; };
  sosSend().finally(sosShowState);
  if (number) $("#sos-call").click();  // the call, as soon as the alert is on its way
}

// -- sending: first in line, until the fleet has it -------------------------------------------
// app.js's sync calls this before the clock events (one hook line there)
function sosSend() {
  if (!S.creds || S.blocked) return Promise.resolve();
  if (SOS.sending) return SOS.sending;
  SOS.sending = (async () => {
    try {
      for (const alert of await sosQueue()) {
        const r = await gw("POST", "/sos", alert);
        if (!r.ok) break;  // kept: tried again at the next sync
        const doc = await r.json();
        if (!doc.stored) break;
        const left = (await sosQueue()).filter((a) => a.id !== alert.id);
        await kvSet("sosQueue", left);
        await kvSet("sosSent", [...((await kvGet("sosSent")) || []).slice(-9),
                                { id: alert.id, ts: alert.ts }]);
      }
    } catch (e) {
      if (!(e instanceof Refused)) console.info("SOS sent later:", e.message);
    } finally {
      SOS.sending = null;
    }
    const waiting = S.blocked ? 0 : (await sosQueue()).length;
    clearTimeout(SOS.retry);
    if (waiting) SOS.retry = setTimeout(() => sosSend().finally(sosShowState), SOS_RETRY_MS);
    document.body.dataset.sosQueue = String(waiting);
  })();
  return SOS.sending;
}

async function sosShowState() {
  const state = $("#sos-state");
  if (!state || S.blocked) return;
  const waiting = (await sosQueue()).length;
  if (waiting) {
    state.textContent = "Pas de réseau : l'alerte partira dès son retour. Envoyez aussi un SMS.";
    state.className = "sos-waiting";
    $("#sos-sms").hidden = false;
  } else {
    state.textContent = "Alerte reçue par l'agence.";
    state.className = "sos-stored";
  }
}

// -- the agency's SOS number, the push key and the acknowledgements, at each sync ------------
async function sosInfo() {
  const sent = (await kvGet("sosSent")) || [];
  const open = sent.some((a) => !a.acked);
  if (!open && SOS.info && Date.now() - SOS.infoAt < SOS_INFO_MS) return;
  const r = await gw("GET", "/sos");
  if (!r.ok) return;
  const doc = await r.json();
  SOS.info = doc;
  SOS.infoAt = Date.now();
  await kvSet("sosInfo", { number: doc.number, push_key: doc.push_key });
  let changed = false;
  for (const a of doc.alerts) {
    const mine = sent.find((s) => s.id === a.id);
    if (mine && a.acknowledged_at && !mine.acked) {
      mine.acked = a.acknowledged_at;
      changed = true;
      sosAcked(a);
    }
  }
  if (changed) await kvSet("sosSent", sent);
  pushSubscribe(false);
}

function sosAcked(a) {
  const box = $("#alert");
  box.innerHTML = `<strong id="sos-acked">SOS pris en compte</strong> par
    ${esc(a.acknowledged_by || "l'agence")} à ${hm(a.acknowledged_at)}.
    <button id="sos-acked-ok" class="secondary">Vu</button>`;
  box.hidden = false;
  $("#sos-acked-ok").onclick = () => { box.hidden = true; };
  if (navigator.vibrate) navigator.vibrate([200, 100, 200]);
}

// -- Web Push: notifications when the app is closed ------------------------------------------
function b64uBytes(text) {
  const raw = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

// `ask`: from the caregiver's tap (browsers allow the permission prompt only then); otherwise
// an existing permission is renewed quietly, once per start
async function pushSubscribe(ask) {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !window.Notification) {
    return "unsupported";
  }
  if (!ask && (SOS.pushed || Notification.permission !== "granted")) return Notification.permission;
  const key = (SOS.info && SOS.info.push_key) || ((await kvGet("sosInfo")) || {}).push_key;
  if (!key) return "unknown";
  try {
    if (ask && (await Notification.requestPermission()) !== "granted") return "denied";
    const reg = await navigator.serviceWorker.ready;
    const sub = (await reg.pushManager.getSubscription()) ||
      (await reg.pushManager.subscribe({ userVisibleOnly: true,
                                         applicationServerKey: b64uBytes(key) }));
    const r = await gw("POST", "/push", sub.toJSON());
    SOS.pushed = r.ok;
    return r.ok ? "granted" : "refused";
  } catch (e) {
    console.info("no push:", e.message);
    return "unavailable";
  }
}

// the "Téléphone" screen's notifications line and button (hooked in app.js's viewPhone)
function pushLine() {
  const p = window.Notification ? Notification.permission : "unsupported";
  const label = { granted: "activées", denied: "refusées (tout arrive à la synchro)",
                  default: "non activées", unsupported: "non disponibles" }[p] || p;
  return `<dt>Notifications</dt><dd id="push-state">${esc(label)}</dd>`;
}

function pushButton() {
  return window.Notification && Notification.permission === "default"
    ? '<button id="push-on" class="secondary">Activer les notifications</button>' : "";
}

function bindPush() {
  const b = $("#push-on");
  if (!b) return;
  b.onclick = async () => {
    toast("Notifications : " + (await pushSubscribe(true)));
    render();
  };
}

// -- start ------------------------------------------------------------------------------------
(() => {
  const button = $("#sos-button");
  button.onclick = sosStart;
  const show = () => { button.hidden = !S.creds || S.blocked; };
  addEventListener("hashchange", show);
  addEventListener("online", () => sosSend().finally(sosShowState));
  setInterval(show, 1000);
  show();
})();
