/* Escape closes an open dialog (the KPI page's "how is this computed" and records panels): it presses the
   dialog's own close button, so the server-side callbacks stay the one way a dialog opens and closes. */
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const open = [...document.querySelectorAll(".kpis-modal")].filter((m) => !m.hidden);
  const close = open.length ? open[open.length - 1].querySelector(".kpis-close") : null;
  if (close) close.click();
});
