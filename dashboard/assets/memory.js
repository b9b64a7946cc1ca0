// A wall runs for days without a reload: two lists in our libraries grow by a few objects with every refresh and are
// never emptied (heap snapshots of /wall, docs/PERFORMANCE.md "Page memory over a long run"). Trimmed once a minute:
// - Dash's undo history (store.history.past) gets an entry each time a callback input changes in the browser, so
//   one per dcc.Interval tick (8,640 a day at a 10 s refresh). No page of ours offers undo/redo.
// - plotly.js registers five one-time MapLibre error listeners (map.once('error'), 'style.error', 'source.error',
//   'tile.error', 'layer.error') on every map redraw to reject that redraw's promise; they only go when an error
//   fires, so each figure change leaves five more. Once a redraw has finished its listeners do nothing: the newest
//   few are kept (a redraw still running keeps its own).
(function () {
  const HISTORY_KEPT = 50, LISTENERS_KEPT = 4, PERIOD_MS = 60000;
  const TYPES = ['error', 'style.error', 'source.error', 'tile.error', 'layer.error'];
  function trimHistory() {
    const state = window.store && window.store.getState && window.store.getState();
    const past = state && state.history && state.history.past;
    if (Array.isArray(past) && past.length > HISTORY_KEPT) { past.splice(0, past.length - HISTORY_KEPT); }
  }
  function trimMapListeners() {
    document.querySelectorAll('.js-plotly-plot').forEach((gd) => {
      const layout = gd._fullLayout;
      if (!layout) { return; }
      Object.keys(layout).filter((key) => /^map\d*$/.test(key)).forEach((key) => {
        const map = layout[key] && layout[key]._subplot && layout[key]._subplot.map;
        const once = map && map._oneTimeListeners;
        if (!once) { return; }
        TYPES.forEach((type) => {
          const list = once[type];
          if (Array.isArray(list) && list.length > LISTENERS_KEPT) { list.splice(0, list.length - LISTENERS_KEPT); }
        });
      });
    });
  }
  setInterval(() => {
    try { trimHistory(); trimMapListeners(); } catch (e) { console.error('memory trim:', e); }
  }, PERIOD_MS);
})();
