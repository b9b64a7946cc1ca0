// Fit a map subplot to a bounding box at whatever pixel size the graph has (1080p panel or a 4K wall).
// Plotly's own auto-fit ignores choropleth traces, and a fixed zoom leaves the city tiny on large screens.
window.dash_clientside = Object.assign({}, window.dash_clientside, {
  cityops: {
    fitMap: function (box, graphId) {
      if (!box) { return window.dash_clientside.no_update; }
      const [west, south, east, north] = box;
      const mercY = (lat) => Math.log(Math.tan(Math.PI / 4 + lat * Math.PI / 360));
      let tries = 0;
      const attempt = () => {
        const gd = document.querySelector('#' + graphId + ' .js-plotly-plot');
        const sub = gd && gd._fullLayout && gd._fullLayout.map && gd._fullLayout.map._subplot;
        // Plotly sets the camera from its layout once the map has loaded: fit only after that.
        if (!sub || !sub.map || !sub.map.loaded() || !gd._fullLayout.width) {
          if (tries++ < 100) { setTimeout(attempt, 100); }
          return;
        }
        const size = gd._fullLayout._size;
        const pad = 0.92;                       // keep a margin around the outline
        const zx = Math.log2(size.w * pad * 360 / (512 * (east - west)));
        const zy = Math.log2(size.h * pad * 2 * Math.PI / (512 * (mercY(north) - mercY(south))));
        const lat = Math.atan(Math.sinh((mercY(north) + mercY(south)) / 2)) * 180 / Math.PI;
        // Move the MapLibre camera itself: Plotly.relayout of map.zoom updated the layout but not the view
        // (plotly.js 4); Plotly copies the camera back into its layout on 'moveend'.
        const view = {center: {lon: (west + east) / 2, lat: lat}, zoom: Math.min(zx, zy)};
        sub.map.on('error', (e) => console.error('maplibre:', e && e.error && e.error.message));
        sub.map.jumpTo(view);
        // Plotly sizes text in pixels; the page scales with the viewport (cityops.css), so scale the figure too.
        const scale = Math.max(1, Math.min(window.innerWidth / 1920, window.innerHeight / 1080));
        window.Plotly.relayout(gd, {'map.center': view.center, 'map.zoom': view.zoom, 'font.size': 16 * scale});
        window.Plotly.restyle(gd, {'colorbar.thickness': 18 * scale});
        // Point markers are pixels too: one restyle for all point traces (each restyle redraws the map).
        const points = gd.data.map((trace, i) => i).filter((i) => gd.data[i].type === 'scattermap');
        if (points.length) {
          const sizes = points.map((i) => {
            const size = gd.data[i].marker.size;
            return Array.isArray(size) ? size.map((v) => v * scale) : size * scale;
          });
          window.Plotly.restyle(gd, {'marker.size': sizes}, points);
        }
        // So is the heat surface's radius: at 4K the same radius would cover a quarter of the ground.
        const heats = gd.data.map((trace, i) => i).filter((i) => gd.data[i].type === 'densitymap');
        if (heats.length && scale !== 1) {
          window.Plotly.restyle(gd, {radius: heats.map((i) => (gd.data[i].radius || 30) * scale)}, heats);
        }
        gd.setAttribute('data-fitted', '1');
      };
      attempt();
      return Date.now();
    },
    // Fly the map to the alarm the operator clicked.
    flyTo: function (clicks, positions, graphId) {
      const trigger = window.dash_clientside.callback_context.triggered_id;
      if (!trigger || !positions || !positions[trigger.index] || !(clicks || []).some(Boolean)) {
        return window.dash_clientside.no_update;
      }
      const gd = document.querySelector('#' + graphId + ' .js-plotly-plot');
      const sub = gd && gd._fullLayout.map && gd._fullLayout.map._subplot;
      if (!sub) { return window.dash_clientside.no_update; }
      sub.map.flyTo({center: positions[trigger.index], zoom: Math.max(sub.map.getZoom(), 14), duration: 1500});
      gd.setAttribute('data-flown-to', trigger.index);
      return trigger.index;
    }
  }
});
