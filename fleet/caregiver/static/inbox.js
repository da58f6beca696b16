// telegest caregiver app: the link with the office. Messages (a mandatory one is shown before
// anything else until "J'ai lu"), writing to the office, "call me back", the directory and the
// agency's emergency numbers. Loaded after app.js, whose globals it uses (S, gw, kvGet, tx,
// esc, toast, render, sync, hm, dayTitle, nowS, client); it registers its screens and its
// sync in app.js's EXTRA (as absence.js does), and app.js's Téléphone tab calls
// emergencyLinks(). The mandatory message is put up after every render (a MutationObserver
// on #view), so no screen can be reached without it.
//
// Offline first, like the clock events: what the caregiver does goes into a queue kept in
// IndexedDB (kv "ibQueue") and is sent at the next sync, after the clock events; each item
// carries the phone's own ref or the message's id, so a resend is harmless. The last inbox
// received is kept (kv "inbox") with the caregiver's own reads applied, so it opens offline.
// The numbers and the directory come with the planning (S.config.contacts).
"use strict";

const IB = { inbox: null, queue: [], loaded: false, gate: null };
const FALLBACK_112 = [{ label: "Urgences (112)", number: "112" }];

async function ibLoad() {
  if (IB.loaded) return;
  const [inbox, queue] = await Promise.all([kvGet("inbox"), kvGet("ibQueue")]);
  IB.inbox = inbox || { messages: [], callbacks: [], sent: [] };
  IB.queue = queue || [];
  IB.loaded = true;
}

async function ibSave() {
  await tx(["kv"], "readwrite", (s) => {
    s("kv").put(IB.inbox, "inbox");
    s("kv").put(IB.queue, "ibQueue");
  });
}

function ibRef() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
}

// what the caregiver did, applied at once on the phone and queued for the fleet
async function ibDo(item) {
  await ibLoad();
  IB.queue.push(item);
  ibApply(item);
  await ibSave();
  ibTab();
  sync();
}

function ibApply(item) {
  if (item.kind === "read") {
    const m = IB.inbox.messages.find((x) => x.id === item.id);
    if (m) {
      m.read = m.read || item.at;
      if (item.ack) m.ack = m.ack || item.at;
    }
  } else if (item.kind === "callback" &&
             !IB.inbox.callbacks.some((c) => c.ref === item.ref)) {
    IB.inbox.callbacks.unshift({ ref: item.ref, reason: item.reason, at: item.at, taken: null });
  }
}

// at every sync: send the queue (in order; a network error stops until the next sync), then
// take the inbox, with what is still queued applied over it
async function inboxSync() {
  await ibLoad();
  while (IB.queue.length) {
    const item = IB.queue[0];
    const r = item.kind === "read"
      ? await gw("POST", `/messages/${item.id}/read`, { ack: !!item.ack, at: item.at })
      : item.kind === "write"
        ? await gw("POST", "/messages", { ref: item.ref, subject: item.subject,
                                          body: item.body, visit: item.visit || null })
        : await gw("POST", "/callbacks", { ref: item.ref, reason: item.reason, at: item.at });
    if (r.status >= 500) return;  // kept: tried again at the next sync
    if (!r.ok) {
      const doc = await r.json().catch(() => ({}));
      toast("Refusé par l'agence : " + (doc.detail || r.status), true);
    }
    IB.queue.shift();
    await ibSave();
  }
  const r = await gw("GET", "/inbox");
  if (!r.ok) return;
  IB.inbox = await r.json();
  IB.queue.forEach(ibApply);
  await ibSave();
  ibTab();
  mandatoryGate();
  const path = location.hash.replace(/^#\/?/, "").split("/")[0];
  if (["messages", "callback"].includes(path)) render();
}

function ibUnread() {
  return IB.inbox ? IB.inbox.messages.filter((m) => !m.read).length : 0;
}

function ibTab() {
  const tab = document.querySelector('#tabs a[data-tab="messages"]');
  if (!tab) return;
  const n = ibUnread();
  tab.textContent = "Messages" + (n ? ` (${n})` : "");
  tab.dataset.unread = String(n);
}

// -- a mandatory message: before anything else, until "J'ai lu" --------------------------------
function mandatoryGate() {
  if (!IB.inbox || S.blocked) return;
  const next = IB.inbox.messages.filter((m) => m.mandatory && !m.ack)
    .sort((a, b) => a.at - b.at)[0];
  if (IB.gate && (!next || IB.gate.dataset.message !== String(next.id))) {
    IB.gate.remove();
    IB.gate = null;
  }
  if (!next || IB.gate) return;
  const box = document.createElement("section");
  box.id = "mandatory";
  box.className = "sheet mandatory";
  box.dataset.message = String(next.id);
  box.setAttribute("role", "alertdialog");
  box.innerHTML = `<p class="tag-mandatory">Message obligatoire de l'agence</p>
    <h1>${esc(next.subject)}</h1><p class="muted">${esc(dayTitle(next.at))} ${hm(next.at)}</p>
    <div class="message-body">${esc(next.body)}</div>
    <p class="muted">Lisez ce message : vous pourrez continuer ensuite.</p>
    <button id="mandatory-ack">J'ai lu</button>`;
  document.body.appendChild(box);
  IB.gate = box;
  box.querySelector("#mandatory-ack").onclick = async () => {
    box.querySelector("#mandatory-ack").disabled = true;
    await ibDo({ kind: "read", id: next.id, ack: true, at: nowS() });
    mandatoryGate();
    toast("Lecture confirmée" + (S.online ? "" : " (envoi au retour du réseau)"));
  };
}

// -- screens --------------------------------------------------------------------------------------
function viewMessages() {
  const msgs = IB.inbox.messages;
  const cbs = IB.inbox.callbacks.slice(0, 3);
  const pending = IB.queue.filter((i) => i.kind === "write");
  const sent = pending.map((i) => ({ ...i, waiting: true })).reverse()
    .concat(IB.inbox.sent || []).slice(0, 5);
  return `<h1>Messages</h1>
    <a class="button" id="write" href="#/write">Écrire à l'agence</a>
    <a class="button secondary" id="callback" href="#/callback">Être rappelé</a>
    <a class="button secondary" id="directory" href="#/directory">Annuaire</a>` +
    (pending.length ? `<p class="muted" id="pending-writes">${pending.length} message(s) à ` +
      "envoyer au retour du réseau</p>" : "") +
    (cbs.length ? "<h2>Rappels demandés</h2>" + cbs.map(callbackLine).join("") : "") +
    (sent.length ? "<h2>Vos messages à l'agence</h2>" + sent.map((m) =>
      `<p class="card sent" data-ref="${esc(m.ref)}"><strong>${esc(m.subject)}</strong><br>
       <span class="muted">${esc(dayTitle(m.at))} ${hm(m.at)} · ${m.waiting ? "à envoyer"
         : "envoyé"}</span></p>`).join("") : "") +
    "<h2>De l'agence</h2>" + (msgs.length ? msgs.map((m) =>
      `<a class="card msg${m.read ? "" : " unread"}" href="#/message/${m.id}"
          data-message="${m.id}">${m.mandatory ? '<span class="state">obligatoire</span>' : ""}
        <span class="when">${esc(m.subject)}</span>
        <div class="muted">${esc(dayTitle(m.at))} ${hm(m.at)}${m.read ? "" : " · non lu"}</div>
      </a>`).join("") : '<p id="no-messages">Aucun message.</p>');
}

function callbackLine(c) {
  return `<p class="card callback" data-ref="${esc(c.ref)}">Demandé ${esc(dayTitle(c.at))}
    ${hm(c.at)}${c.reason ? " : " + esc(c.reason) : ""}<br><strong>${c.taken
      ? "Pris en charge à " + hm(c.taken) : "En attente de rappel"}</strong></p>`;
}

function viewMessage(id) {
  const m = IB.inbox.messages.find((x) => x.id === id);
  if (!m) return "<h1>Message</h1><p>Ce message n'est plus sur le téléphone.</p>";
  return `<h1>${esc(m.subject)}</h1><p class="muted">${esc(dayTitle(m.at))} ${hm(m.at)}</p>
    <div class="message-body" id="message-body">${esc(m.body)}</div>
    <a class="button secondary" href="#/messages">Retour</a>`;
}

function viewWrite() {
  const today = S.config ? S.config.visits.filter((v) => v.end > nowS() - 86400 &&
                                                         v.start < nowS() + 86400) : [];
  return `<h1>Écrire à l'agence</h1><form id="write-form">
    <label for="w-subject">Objet</label><input id="w-subject" maxlength="200" required>
    <label for="w-body">Message</label><textarea id="w-body" rows="6" maxlength="4000"
      required></textarea>
    <label for="w-visit">À propos d'une intervention (facultatif)</label>
    <select id="w-visit"><option value="">—</option>${today.map((v) =>
      `<option value="${v.id}">${hm(v.start)} ${esc((client(v.client) || {}).name)}</option>`)
      .join("")}</select>
    <button type="submit" id="w-send">Envoyer</button></form>`;
}

function viewCallback() {
  return `<h1>Être rappelé</h1>
    <p>L'agence voit votre demande tout de suite et vous rappelle.</p>
    <form id="callback-form"><label for="cb-reason">Motif (facultatif)</label>
    <input id="cb-reason" maxlength="200" placeholder="Ex. : usager absent">
    <button type="submit" id="cb-send">Demander à être rappelé</button></form>` +
    IB.inbox.callbacks.map(callbackLine).join("");
}

function phoneBook() {
  const c = (S.config && S.config.contacts) || {};
  return { emergency: c.emergency && c.emergency.length ? c.emergency : FALLBACK_112,
           office: c.office || [], colleagues: c.colleagues || [] };
}

function telLink(e, cls) {
  return `<a class="${cls}" href="tel:${esc(e.number)}" data-number="${esc(e.number)}">` +
    `${esc(e.label)} <span class="number">${esc(e.number)}</span></a>`;
}

// the Téléphone tab's one-tap calls: the agency's numbers, or 112 when it has set none
function emergencyLinks() {
  return '<div id="emergency">' + phoneBook().emergency
    .map((e) => telLink(e, "button danger emergency")).join("") + "</div>";
}

function viewDirectory() {
  const b = phoneBook();
  const section = (title, list, id) => list.length
    ? `<h2>${title}</h2><div id="${id}">` +
      list.map((e) => telLink(e, "card contact")).join("") + "</div>"
    : "";
  return `<h1>Annuaire</h1><input id="dir-search" type="search" placeholder="Rechercher"
      aria-label="Rechercher un contact">` +
    section("Urgences", b.emergency, "dir-emergency") + section("Agence", b.office, "dir-office") +
    section("Collègues", b.colleagues, "dir-colleagues") +
    '<p id="dir-none" class="muted" hidden>Aucun contact ne correspond.</p>';
}

const IB_PATHS = ["messages", "message", "write", "callback", "directory"];

// the screens of this file (EXTRA.views)
async function inboxView(path, id) {
  await ibLoad();
  if (path === "message") {
    const m = IB.inbox.messages.find((x) => x.id === id);
    if (m && !m.read) await ibDo({ kind: "read", id, ack: false, at: nowS() });
    return viewMessage(id);
  }
  return path === "messages" ? viewMessages() : path === "write" ? viewWrite()
    : path === "callback" ? viewCallback() : viewDirectory();
}

function inboxBind(path) {
  const tab = document.querySelector('#tabs a[data-tab="messages"]');
  if (tab) tab.classList.add("on");
  if (path === "write") {
    $("#write-form").onsubmit = async (e) => {
      e.preventDefault();
      const subject = $("#w-subject").value.trim(), body = $("#w-body").value.trim();
      if (!subject || !body) { toast("Indiquez l'objet et le message.", true); return; }
      await ibDo({ kind: "write", ref: ibRef(), subject, body,
                   visit: Number($("#w-visit").value) || null, at: nowS() });
      toast("Message envoyé" + (S.online ? "" : " (envoi au retour du réseau)"));
      location.hash = "#/messages";
    };
  }
  if (path === "callback") {
    $("#callback-form").onsubmit = async (e) => {
      e.preventDefault();
      await ibDo({ kind: "callback", ref: ibRef(), reason: $("#cb-reason").value.trim(),
                   at: nowS() });
      toast("Demande de rappel envoyée" + (S.online ? "" : " (envoi au retour du réseau)"));
      render();
    };
  }
  if (path === "directory") {
    $("#dir-search").oninput = () => {
      const q = $("#dir-search").value.trim().toLowerCase();
      let shown = 0;
      document.querySelectorAll("a.contact").forEach((a) => {
        const hit = !q || a.textContent.toLowerCase().includes(q);
        a.hidden = !hit;
        shown += hit ? 1 : 0;
      });
      $("#dir-none").hidden = shown > 0;
    };
  }
}

// -- registration -----------------------------------------------------------------------------
for (const path of IB_PATHS) {
  EXTRA.views[path] = (arg) => inboxView(path, Number(arg));
  EXTRA.binds[path] = (id) => inboxBind(path, id);
}
EXTRA.syncs.push(inboxSync);
// after every render (the start-up one too, offline too): the unread count and, before
// anything else, a mandatory message not yet acknowledged
new MutationObserver(() => {
  if (S.creds && !S.blocked) ibLoad().then(() => { ibTab(); mandatoryGate(); });
}).observe(document.getElementById("view"), { childList: true });
if (S.creds && S.config) render();  // app.js rendered before this file was read
