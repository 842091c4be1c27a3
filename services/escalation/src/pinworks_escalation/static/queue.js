// The queue page's live rows: refreshed from /fragments/queue every few seconds (the query and
// interval come from #queue-live's data attributes; the console's CSP allows no inline script).
(function () {
  const live = document.getElementById("queue-live");
  const rows = document.getElementById("queue-rows");
  const stamp = document.getElementById("queue-updated");
  if (!live || !rows) return;
  const query = live.dataset.query || "";
  async function refresh() {
    try {
      const response = await fetch("/fragments/queue?" + query, {credentials: "same-origin"});
      if (response.status === 401) { window.location = "/login"; return; }
      if (response.ok) {
        rows.innerHTML = await response.text();
        stamp.textContent = "Updated " + new Date().toLocaleTimeString();
      }
    } catch (e) { stamp.textContent = "Offline, retrying…"; }
  }
  setInterval(refresh, Number(live.dataset.refreshMs) || 2000);
})();
