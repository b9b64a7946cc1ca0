// The wall's alarm list shows only whole rows: rows that would be cut at the panel's bottom edge are hidden and
// counted on the "+N more" line (with those the server did not send: data-beyond). Refitted whenever the list's
// content changes (refreshes, acknowledgements, page changes) and when the window is resized.
(function () {
  function setHidden(el, hidden) {
    if (el.hidden !== hidden) { el.hidden = hidden; }
  }
  function fit() {
    const list = document.getElementById('wall-alarms');
    const more = list && list.querySelector('.alarm-more');
    if (!more) { return; }
    const rows = Array.from(list.querySelectorAll('.alarm'));
    rows.forEach((row) => setHidden(row, false));
    setHidden(more, true);
    const bottom = list.getBoundingClientRect().bottom + 0.5;
    let shown = rows.filter((row) => row.getBoundingClientRect().bottom <= bottom).length;
    rows.forEach((row, i) => setHidden(row, i >= shown));
    const beyond = parseInt(more.getAttribute('data-beyond') || '0', 10);
    // The "+N more" line takes a row's room: drop rows until it fits too.
    while (rows.length - shown + beyond > 0) {
      const text = more.getAttribute('data-template').replace('{n}', String(rows.length - shown + beyond));
      if (more.textContent !== text) { more.textContent = text; }
      setHidden(more, false);
      if (more.getBoundingClientRect().bottom <= bottom || shown === 0) { break; }
      shown -= 1;
      setHidden(rows[shown], true);
    }
    list.setAttribute('data-rows-shown', String(shown));
  }
  let queued = false;
  function schedule() {
    if (queued) { return; }
    queued = true;
    requestAnimationFrame(() => { queued = false; fit(); });
  }
  // fit() changes only attributes and, when the count changes, the line's text: the observer settles at once.
  new MutationObserver(schedule).observe(document.documentElement, {childList: true, subtree: true});
  window.addEventListener('resize', schedule);
  if (document.fonts) { document.fonts.ready.then(schedule); }
})();
