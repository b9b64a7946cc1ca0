// Tell the operator when the server cannot be reached, and when it is back. Dash's own timers keep retrying;
// this only makes the loss visible, so a frozen picture is never mistaken for a calm city.
(function () {
  const PERIOD_MS = 5000, TIMEOUT_MS = 4000;
  let failures = 0;
  function banner() { return document.getElementById('connection-banner'); }
  function set(offline) {
    const el = banner();
    if (!el) { return; }
    el.hidden = !offline;
    document.body.classList.toggle('offline', offline);
    document.body.setAttribute('data-connection', offline ? 'lost' : 'ok');
  }
  async function ping() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      const response = await fetch('/healthz', {cache: 'no-store', signal: controller.signal});
      failures = response.ok ? 0 : failures + 1;
    } catch (e) {
      failures += 1;
    } finally {
      clearTimeout(timer);
    }
    set(failures >= 1);
  }
  setInterval(ping, PERIOD_MS);
  window.addEventListener('online', ping);
  window.addEventListener('offline', () => set(true));
})();
