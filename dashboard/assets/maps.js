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
        sub.map.jumpTo(view);
        // Plotly sizes text in pixels; the page scales with the viewport (cityops.css), so scale the figure too.
        const scale = Math.max(1, window.innerWidth / 1920);
        window.Plotly.relayout(gd, {'map.center': view.center, 'map.zoom': view.zoom, 'font.size': 16 * scale});
        window.Plotly.restyle(gd, {'colorbar.thickness': 18 * scale});
        gd.setAttribute('data-fitted', '1');
      };
      attempt();
      return Date.now();
    }
  }
});
