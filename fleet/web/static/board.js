// the board's only script (a static file: the console's Content-Security-Policy runs no inline
// script): refresh the table body without a reload; back to sign-in when the session ends
(() => {
  const table = document.getElementById("board");
  if (!table) return;
  setInterval(async () => {
    try {
      const r = await fetch(table.dataset.refresh, { credentials: "same-origin" });
      if (r.ok) { document.getElementById("rows").innerHTML = await r.text(); }
      else if (r.status === 401) { location.href = "/login?next=/board&expired=1"; }
    } catch (e) { /* offline for a moment: keep what is shown */ }
  }, Number(table.dataset.refreshMs) || 15000);
})();
