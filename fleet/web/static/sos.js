// The SOS banner on every console page of a manager or admin (fleet/console/sos.py). A static
// file: the console's Content-Security-Policy runs no inline script. Asks /sos/live every
// second; each SOS not yet acknowledged shows with who, when, the client, the address and the
// position, and a button that acknowledges it; a sound plays when one appears and every 10 s
// while one is open. The text goes in with textContent only, never as HTML; its labels come
// translated in the page's language from the banner's data-t-* attributes (base.html).
(() => {
  const banner = document.getElementById("sos-banner");
  if (!banner) return;
  const EVERY_MS = 1000, RING_MS = 10000, T = banner.dataset;
  let shown = "", lastRing = 0, audio = null, timer = null;

  function ring() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.25, 0.5, 0.75].forEach((t, i) => {
        const o = audio.createOscillator(), g = audio.createGain();
        o.frequency.value = i % 2 ? 660 : 990;
        g.gain.value = 0.25;
        o.connect(g).connect(audio.destination);
        o.start(audio.currentTime + t);
        o.stop(audio.currentTime + t + 0.2);
      });
      banner.dataset.rang = String(Number(banner.dataset.rang || 0) + 1);
    } catch (e) { /* no sound here: the banner remains */ }
  }
  addEventListener("pointerdown", () => { if (audio) audio.resume(); }, { once: true });

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function item(a) {
    const box = el("div", "sos-item");
    box.dataset.sos = a.id;
    const where = a.source === "box" ? " (" + T.tBox + ")" : "";
    box.append(el("strong", null, "SOS — " + a.who + where));
    const dl = el("dl");
    const rows = [[T.tWhen, a.at], [T.tClient, a.client], [T.tAddress, a.address, "sos-address"],
                  [T.tVisit, a.visit], ["Position", a.position, "sos-position"]];
    for (const [k, v, cls] of rows) {
      dl.append(el("dt", null, k));
      dl.append(el("dd", cls, v || "—"));
    }
    box.append(dl);
    if (a.map) {
      const link = el("a", null, T.tMap);
      link.href = a.map;
      link.target = "_blank";
      link.rel = "noopener";
      box.append(link);
    }
    const form = el("form", "inline");
    form.method = "post";
    form.action = "/sos/" + a.id + "/ack";
    for (const [name, value] of [["csrf", banner.dataset.csrf],
                                 ["back", location.pathname + location.search]]) {
      const input = el("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    const button = el("button", null, T.tAck);
    button.type = "submit";
    form.append(button);
    box.append(form);
    return box;
  }

  async function poll() {
    try {
      const r = await fetch(banner.dataset.live, { credentials: "same-origin",
                                                   cache: "no-store" });
      if (r.status === 401 || r.status === 403) { clearInterval(timer); return; }
      if (!r.ok) return;
      const open = (await r.json()).open;
      const ids = open.map((a) => a.id).join(",");
      if (ids !== shown) {
        const fresh = open.some((a) => !("," + shown + ",").includes("," + a.id + ","));
        banner.replaceChildren(...open.map(item));
        banner.hidden = !open.length;
        shown = ids;
        if (fresh) lastRing = 0;
      }
      if (open.length && Date.now() - lastRing >= RING_MS) {
        lastRing = Date.now();
        ring();
      }
    } catch (e) { /* the network is away for a moment: keep what is shown */ }
  }
  poll();
  timer = setInterval(poll, EVERY_MS);
})();
