// telegest caregiver app: absences and the professional card (docs/caregiver-app.md).
// Loaded after app.js and built on its helpers (gw, tx, req, kvGet, kvSet, esc, toast,
// render, S, EXTRA). Storage (IndexedDB kv): "absenceQueue" the requests not yet taken by
// the fleet, each with a random key so a resend after a lost answer is the same absence;
// "absences" the list last received with the office's decisions; "card" the card, kept for
// offline use (photo and QR code are data: URLs, allowed by the CSP).
"use strict";

const ABSENCE_KINDS = { leave: "Congé", sick: "Maladie", training: "Formation", other: "Autre" };
const ABSENCE_STATES = { queued: "À envoyer", requested: "En attente", approved: "Acceptée",
                         refused: "Refusée", cancelled: "Annulée", rejected: "Non envoyée" };
const CARD_EVERY_MS = 10 * 60000;  // the card changes rarely and carries a photo
let cardFetched = 0;

function absenceKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "a" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// a day as the agency writes it ("2030-01-07"), shown "lun. 7 janv."
function absenceDay(day) {
  return new Intl.DateTimeFormat("fr-FR", { timeZone: "UTC", weekday: "short", day: "numeric",
    month: "short" }).format(new Date(day + "T12:00:00Z"));
}

function absencePeriod(a) {
  const span = a.first_day === a.last_day ? "le " + absenceDay(a.first_day)
    : "du " + absenceDay(a.first_day) + " au " + absenceDay(a.last_day);
  return a.start_time ? `${span}, ${a.start_time} – ${a.end_time}` : span;
}

async function queueAbsence(item) {
  await tx(["kv"], "readwrite", async (s) => {
    const queue = (await req(s("kv").get("absenceQueue"))) || [];
    queue.push(item);
    s("kv").put(queue, "absenceQueue");
  });
}

async function dropQueued(key) {
  await tx(["kv"], "readwrite", async (s) => {
    const queue = (await req(s("kv").get("absenceQueue"))) || [];
    s("kv").put(queue.filter((q) => q.key !== key), "absenceQueue");
  });
}

async function markQueued(key, error) {
  await tx(["kv"], "readwrite", async (s) => {
    const queue = (await req(s("kv").get("absenceQueue"))) || [];
    queue.forEach((q) => { if (q.key === key) q.error = error; });
    s("kv").put(queue, "absenceQueue");
  });
}

// after the clock events and the notes: requests in order, then the list and the card
async function syncAbsences() {
  let changed = false;
  for (const item of (await kvGet("absenceQueue")) || []) {
    if (item.error) continue;  // refused by the fleet: shown with its reason, not resent
    const { error, ...body } = item;
    const r = await gw("POST", "/absences", body);
    if (r.ok) { await dropQueued(item.key); changed = true; continue; }
    if (r.status === 409 || r.status === 422) {
      const doc = await r.json().catch(() => ({}));
      const why = typeof doc.detail === "string" ? doc.detail : "demande refusée";
      await markQueued(item.key, why);
      changed = true;
      toast("Absence non envoyée : " + why, true);
      continue;
    }
    break;  // the fleet is unwell: the rest waits for the next sync
  }
  const r = await gw("GET", "/absences");
  if (r.ok) {
    const fresh = (await r.json()).absences;
    const old = (await kvGet("absences")) || [];
    await kvSet("absences", fresh);
    announceDecisions(old, fresh);
    changed = changed || JSON.stringify(old) !== JSON.stringify(fresh);
  }
  // shown again when something changed, unless the caregiver is typing a new request
  if (changed && location.hash.startsWith("#/absences") &&
      !(document.activeElement || document.body).closest("#absence-form")) render();
  if (Date.now() - cardFetched > CARD_EVERY_MS) await refreshCard();
}

// the office decided: say it once, whatever screen is open
function announceDecisions(old, fresh) {
  const before = new Map(old.map((a) => [a.id, a.state]));
  for (const a of fresh) {
    if (before.get(a.id) === "requested" && (a.state === "approved" || a.state === "refused")) {
      toast(`Absence ${absencePeriod(a)} ${a.state === "approved" ? "acceptée" : "refusée"}` +
            (a.reason ? " : " + a.reason : ""), a.state === "refused");
    }
  }
}

async function refreshCard() {
  const r = await gw("GET", "/card");
  if (!r.ok) return;
  const card = (await r.json()).card;
  const old = await kvGet("card");
  cardFetched = Date.now();
  await kvSet("card", card);
  if (location.hash === "#/card" && JSON.stringify(old) !== JSON.stringify(card)) render();
}

function absenceItem(a, queued) {
  const state = queued ? (a.error ? "rejected" : "queued") : a.state;
  return `<div class="card absence" data-absence="${queued ? esc(a.key) : a.id}"
      data-absence-state="${state}"><span class="state ab-${state}">${ABSENCE_STATES[state]}</span>
    <strong>${esc(ABSENCE_KINDS[a.kind] || a.kind)}</strong> ${esc(absencePeriod(a))}
    ${a.note ? `<div class="muted">${esc(a.note)}</div>` : ""}
    ${a.reason && !queued ? `<div class="ab-reason">Motif : ${esc(a.reason)}</div>` : ""}
    ${a.error ? `<div class="ab-reason">${esc(a.error)}</div>` : ""}
    ${!queued && a.state === "requested" ? `<button class="secondary ab-withdraw"
      data-id="${a.id}">Retirer la demande</button>` : ""}
    ${queued && a.error ? `<button class="secondary ab-drop" data-key="${esc(a.key)}">Effacer
      </button>` : ""}</div>`;
}

async function viewAbsences() {
  const queue = (await kvGet("absenceQueue")) || [];
  const list = (await kvGet("absences")) || [];
  const kinds = Object.entries(ABSENCE_KINDS).map(([k, label]) =>
    `<option value="${k}">${label}</option>`).join("");
  return `<h1>Absences</h1>
    <a class="button secondary" href="#/card" id="card-link">Ma carte professionnelle</a>
    <h2>Demander une absence</h2>
    <form id="absence-form">
      <label for="ab-kind">Type</label><select id="ab-kind">${kinds}</select>
      <label for="ab-from">Du</label><input id="ab-from" type="date" required>
      <label for="ab-to">Au (inclus)</label><input id="ab-to" type="date" required>
      <label class="check"><input id="ab-hours" type="checkbox"> Une partie de la journée
        seulement</label>
      <div id="ab-times" hidden>
        <label for="ab-start">De</label><input id="ab-start" type="time">
        <label for="ab-end">À</label><input id="ab-end" type="time"></div>
      <label for="ab-note">Note (facultatif, sans détail médical)</label>
      <textarea id="ab-note" rows="2" maxlength="500"></textarea>
      <button type="submit" id="ab-send">Envoyer la demande</button>
    </form>
    <h2>Mes demandes</h2><div id="absence-list">` +
    (queue.length + list.length ? queue.map((a) => absenceItem(a, true)).join("") +
      list.map((a) => absenceItem(a, false)).join("")
      : '<p class="muted" id="no-absence">Aucune demande.</p>') + "</div>";
}

function readAbsenceForm() {
  const from = $("#ab-from").value, to = $("#ab-to").value || $("#ab-from").value;
  const hours = $("#ab-hours").checked;
  const start = $("#ab-start").value, end = $("#ab-end").value;
  if (!from) return "Indiquez le premier jour.";
  if (to < from) return "Le dernier jour précède le premier.";
  if (hours && (!start || !end)) return "Indiquez l'heure de début et de fin.";
  if (hours && from === to && end <= start) return "La fin doit suivre le début.";
  const item = { key: absenceKey(), kind: $("#ab-kind").value, first_day: from, last_day: to,
                 note: $("#ab-note").value.trim().slice(0, 500) };
  if (hours) Object.assign(item, { start_time: start, end_time: end });
  return item;
}

function bindAbsences() {
  const hours = $("#ab-hours");
  hours.onchange = () => { $("#ab-times").hidden = !hours.checked; };
  $("#ab-from").onchange = () => { if (!$("#ab-to").value) $("#ab-to").value = $("#ab-from").value; };
  $("#absence-form").onsubmit = async (e) => {
    e.preventDefault();
    const item = readAbsenceForm();
    if (typeof item === "string") { toast(item, true); return; }
    await queueAbsence(item);  // kept on the phone first, sent when the network allows
    toast("Demande enregistrée" + (S.online ? "" : " (envoi au retour du réseau)"));
    await render();
    sync();
  };
  document.querySelectorAll(".ab-withdraw").forEach((b) => {
    b.onclick = async () => {
      const r = await gw("POST", `/absences/${b.dataset.id}/cancel`).catch(() => null);
      if (!r) { toast("Hors ligne : réessayez avec le réseau.", true); return; }
      const doc = await r.json().catch(() => ({}));
      if (!r.ok) { toast(doc.detail || "Impossible de retirer la demande.", true); return; }
      await syncAbsences();
      render();
    };
  });
  document.querySelectorAll(".ab-drop").forEach((b) => {
    b.onclick = async () => { await dropQueued(b.dataset.key); render(); };
  });
}

async function viewCard() {
  const card = await kvGet("card");
  if (!card) {
    return `<h1>Carte professionnelle</h1><p id="no-card">Votre carte n'est pas encore prête :
      l'agence la crée dans sa console.</p>`;
  }
  const photo = card.photo ? `<img class="pc-photo" src="${esc(card.photo)}" alt="Photo">`
    : '<div class="pc-photo pc-nophoto">Photo</div>';
  const day = (d) => new Intl.DateTimeFormat("fr-FR", { timeZone: "UTC" })
    .format(new Date(d + "T12:00:00Z"));
  return `<section class="procard" id="procard">
    <div class="pc-agency">${esc(card.agency)}</div>
    <div class="pc-head">${photo}<div><h1 id="pc-name">${esc(card.name)}</h1>
      <div class="pc-title">${esc(card.title)}</div></div></div>
    <dl><dt>N° de carte</dt><dd id="pc-number">${esc(card.number)}</dd>
      <dt>Valable</dt><dd>du ${day(card.valid_from)} au ${day(card.valid_until)}</dd></dl>
    <p class="pc-state ${card.valid ? "pc-valid" : "pc-invalid"}" id="pc-state">
      ${card.valid ? "Carte valide" : "Carte non valide"}</p>
    <img class="pc-qr" id="pc-qr" src="${esc(card.qr)}" alt="QR code de vérification">
    <p class="muted">Scannez le QR code pour vérifier cette carte auprès de l'agence.</p>
    </section>`;
}

function bindCard() {
  // older than a minute and online: fetch it again, shown when it changed
  if (S.online && Date.now() - cardFetched > 60000) refreshCard().catch(() => {});
}

EXTRA.views.absences = viewAbsences;
EXTRA.binds.absences = bindAbsences;
EXTRA.views.card = viewCard;
EXTRA.binds.card = bindCard;
EXTRA.syncs.push(syncAbsences);
