// Playlist rotation for wall displays (?playlist=<id>): every view in turn, each for its seconds, moved by Dash's
// own in-page navigation (no reload, no flicker). Space or P pauses and resumes; the pause is shown on screen.
(function () {
  let timer = null, paused = false, index = 0;     // the page first opened counts as the first view
  function spec() {
    const el = document.getElementById('playlist');
    return el ? JSON.parse(el.getAttribute('data-playlist')) : null;
  }
  function go(view, keep) {
    const query = [view.query, keep].filter(Boolean).join('&');
    window.history.pushState({}, '', view.path + (query ? '?' + query : ''));
    window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
  }
  function schedule() {
    clearTimeout(timer);
    if (paused) { return; }
    const s = spec();
    if (!s) { timer = setTimeout(schedule, 300); return; }   // the next view is still rendering
    timer = setTimeout(() => {
      index = (index + 1) % s.views.length;
      go(s.views[index], s.keep);
      timer = setTimeout(schedule, 300);
    }, s.views[index % s.views.length].seconds * 1000);
  }
  function showPaused() {
    const el = document.getElementById('playlist');
    if (el) { el.hidden = !paused; }
    document.body.setAttribute('data-playlist', paused ? 'paused' : 'running');
  }
  document.addEventListener('keydown', (event) => {
    if (!spec() || (event.key !== ' ' && event.key.toLowerCase() !== 'p')) { return; }
    event.preventDefault();
    paused = !paused;
    showPaused();
    schedule();
  });
  // Start once the first page with a playlist has rendered.
  const start = setInterval(() => {
    if (spec()) { clearInterval(start); showPaused(); schedule(); }
  }, 300);
})();
