// The ticket page: "Insert" puts a suggested reply into the reply box (and records which one),
// and the classifier's score bars take their widths from data-width (no inline style: CSP).
(function () {
  document.querySelectorAll(".bar > span[data-width]").forEach(function (bar) {
    bar.style.width = Math.max(0, Math.min(100, Number(bar.dataset.width) || 0)) + "%";
  });
  const reply = document.getElementById("reply");
  if (!reply) return;
  const used = document.getElementById("suggestion-used");
  const note = document.getElementById("suggestion-note");
  document.querySelectorAll("[data-insert]").forEach(function (button) {
    button.addEventListener("click", function () {
      const card = button.closest(".suggestion");
      reply.value = card.querySelector("[data-role=suggestion-text]").textContent;
      used.value = button.dataset.insert;
      note.textContent = "Started from: " + card.querySelector("strong").textContent + ". Edit before sending.";
      reply.focus();
    });
  });
})();
