"""The command-centre wall: every configured layer drawn and toggled in a real browser, refreshes that resend
nothing unchanged, stale feeds flagged, and a payload bounded by the city's area, not by its record count."""
import json
import shutil
from datetime import timedelta

import geopandas
import h3
import plotly.io as pio
import pytest
import shapely

from core import clock, warehouse
from core.settings import load_config
from query import alarms, store
from layers import heat, incidents
from tests.browser import chromium, dashboard_server, free_port
from tests.conftest import edit_yaml

ONE_MB = 1_000_000
LAYER_IDS = ("districts", "incident_heat", "incidents", "sensors")


def _wall_config(loaded_city, tmp_path, refresh_seconds=5):
    """The loaded city's config with a fast refresh, sharing its warehouse (read only)."""
    settings, _, _ = loaded_city
    shutil.copytree(settings.parent, tmp_path / "config")
    copy = tmp_path / "config" / "settings.yaml"
    edit_yaml(copy, lambda d: d["dashboard"].update(refresh_seconds=refresh_seconds))
    return copy


def _map_state(page) -> dict:
    """Per layer id: the trace's visible flag and whether MapLibre shows any style layer of that trace."""
    return page.evaluate("""() => {
        const gd = document.querySelector('#wall-map .js-plotly-plot');
        const map = gd._fullLayout.map._subplot.map;
        const out = {};
        gd._fullData.forEach((trace) => {
            const layers = map.getStyle().layers.filter((l) => l.id.includes(trace.uid));
            out[trace.uid] = {visible: trace.visible === true,
                              drawn: layers.some((l) => map.getLayoutProperty(l.id, 'visibility') !== 'none'),
                              styleLayers: layers.length};
        });
        return out; }""")


@pytest.mark.browser
def test_each_layer_is_drawn_and_toggles(loaded_city, tmp_path):
    config = load_config(loaded_city[0])
    default_on = {layer.id for layer in config.layers if layer.visible}
    with dashboard_server(_wall_config(loaded_city, tmp_path, refresh_seconds=3600)) as base, \
            chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"{base}/wall")
        page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
        state = _map_state(page)
        assert set(state) == set(LAYER_IDS)
        for layer_id, s in state.items():
            assert s["visible"] == (layer_id in default_on) == s["drawn"], (layer_id, s)
        for index, layer in enumerate(config.layers):
            before = _map_state(page)[layer.id]["drawn"]
            page.locator(".layer-list input[type=checkbox]").nth(index).click()
            page.wait_for_function(
                f"() => document.querySelector('#wall-map .js-plotly-plot')._fullData[{index}].visible === {str(not before).lower()}",
                timeout=10_000)
            page.wait_for_timeout(300)
            after = _map_state(page)[layer.id]
            assert after["drawn"] is (not before), (layer.id, after)   # hidden: Plotly removes its style layers
        assert page.evaluate("document.documentElement.scrollHeight") <= 1080, "the wall must not scroll"
        page.close()


@pytest.mark.browser
def test_refresh_sends_no_figure_when_nothing_changed(loaded_city, tmp_path):
    with dashboard_server(_wall_config(loaded_city, tmp_path, refresh_seconds=5)) as base, \
            chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        bodies = []
        page.on("response", lambda r: bodies.append(r) if "_dash-update-component" in r.url else None)
        page.goto(f"{base}/wall")
        page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
        first = max(len(r.body()) for r in bodies)
        assert first > 50_000, "the first page build carries the map's data"
        count = len(bodies)
        page.wait_for_timeout(7_000)          # at least one refresh tick
        ticks = [r for r in bodies[count:] if "wall-refresh" in (r.request.post_data or "")]
        assert ticks, "the refresh timer should have fired"
        for response in ticks:
            assert response.status == 200, response.body()[:300]
            payload = json.loads(response.body())
            assert "wall-map" not in payload.get("response", {}), "an unchanged map was sent again"
            assert len(response.body()) < 5_000
        page.close()


@pytest.mark.browser
def test_a_silent_feed_turns_its_panels_stale(loaded_city, tmp_path):
    """Back-date the hotline's last load by two days (it promises one a day): panels showing incidents go
    stale, and the page says so."""
    settings, _, _ = loaded_city
    root = tmp_path / "deploy"
    shutil.copytree(settings.parent, root / "config")
    source = load_config(settings).warehouse_dir
    shutil.copytree(source, root / "warehouse", ignore=shutil.ignore_patterns("*.wal"))
    edit_yaml(root / "config" / "settings.yaml", lambda d: d["warehouse"].update(dir=str(root / "warehouse")))
    config = load_config(root / "config" / "settings.yaml")
    with warehouse.writer(config.warehouse_dir) as con:
        con.execute("UPDATE etl_run SET finished_at = finished_at - INTERVAL 2 DAY WHERE feed_id = 'hotline_12345'")
        warehouse.publish(con, config.warehouse_dir)
    with dashboard_server(root / "config" / "settings.yaml") as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"{base}/wall")
        page.wait_for_selector("#wall-map-head-age [data-stale]", timeout=60_000)
        for panel in ("wall-map-head", "wall-tiles-head"):
            assert page.get_attribute(f"#{panel}-age [data-stale]", "data-stale") == "1", panel
            assert "STALE" in page.inner_text(f"#{panel}-age")
        border = page.evaluate("getComputedStyle(document.querySelector('.wall-map-panel')).borderTopStyle")
        assert border == "dashed", "a stale panel must look different"
        page.close()


def _city_cells(city, resolution: int) -> list[str]:
    outline = shapely.union_all(geopandas.read_file(city / "boundaries" / "districts.geojson").geometry.values)
    return list(h3.geo_to_cells(shapely.geometry.mapping(outline), resolution))


@pytest.mark.parametrize("resolution", [7, 8])
def test_incident_cells_payload_is_bounded_by_the_city_not_the_records(loaded_city, resolution):
    """The worst case at any data size: every cell covering the city holds incidents (counts in the millions)."""
    _, city, _ = loaded_city
    cells = _city_cells(city, resolution)
    assert len(cells) > 50
    trace = incidents.cells([(c, 10_000_000 // len(cells)) for c in cells], "incidents", "%{z}")
    size = len(pio.to_json(trace, validate=False))
    assert size < ONE_MB, (resolution, len(cells), size)


def test_heat_payload_is_bounded_at_the_finest_resolution(loaded_city):
    _, city, _ = loaded_city
    cells = _city_cells(city, 9)
    size = len(pio.to_json(heat.density([(c, 5000) for c in cells], "heat", 18), validate=False))
    assert size < ONE_MB, (len(cells), size)


@pytest.mark.browser
def test_the_wall_says_when_the_server_is_gone_and_recovers_by_itself(loaded_city, tmp_path):
    config = _wall_config(loaded_city, tmp_path, refresh_seconds=5)
    port = free_port()
    with chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        with dashboard_server(config, port=port) as base:
            page.goto(f"{base}/wall")
            page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
            assert page.is_hidden("#connection-banner")
        # The server is down (an app restart, or the network dropping).
        page.wait_for_selector("#connection-banner", state="visible", timeout=15_000)
        assert "reconnecting" in page.inner_text("#connection-banner")
        assert page.locator("#wall-map .maplibregl-canvas").count() == 1, "the last picture stays on the wall"
        with dashboard_server(config, port=port):
            page.wait_for_selector("#connection-banner", state="hidden", timeout=15_000)
            ticks = []
            page.on("response", lambda r: ticks.append(r.status) if "_dash-update-component" in r.url else None)
            page.wait_for_timeout(6_000)
            assert ticks and all(status == 200 for status in ticks), ticks
        page.close()


@pytest.mark.browser
def test_playlist_rotates_views_without_reloading_and_pauses_by_key(loaded_city, tmp_path):
    config = _wall_config(loaded_city, tmp_path, refresh_seconds=3600)
    (config.parent / "playlists" / "fast.yaml").write_text(
        "id: fast\nname: {en: Fast, zh: 快速}\nseconds: 10\nviews:\n"
        "  - {path: /wall, params: {layers: sensors}}\n  - {path: /}\n", encoding="utf-8")
    with dashboard_server(config) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"{base}/wall?layers=sensors&playlist=fast&kiosk=1")
        page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
        state = _map_state(page)
        assert state["sensors"]["visible"] and not state["districts"]["visible"], "layers= picks the layers shown"
        page.evaluate("window.__same_document = true")
        page.wait_for_selector("#district-map", timeout=20_000)          # the overview, view 2
        assert "playlist=fast" in page.url and "kiosk=1" in page.url and page.url.split("?")[0].endswith("/")
        assert page.evaluate("window.__same_document === true"), "rotation must not reload the page"
        page.wait_for_selector("#wall-map", timeout=20_000)              # and back to view 1
        page.keyboard.press("Space")
        assert page.is_visible("#playlist"), "a paused rotation says so"
        paused_at = page.url
        page.wait_for_timeout(12_000)
        assert page.url == paused_at
        page.keyboard.press("Space")
        assert page.is_hidden("#playlist")
        page.wait_for_function(f"() => window.location.href !== {json.dumps(paused_at)}", timeout=15_000)
        page.close()


@pytest.mark.parametrize("query", ["layers=roads", "layers=sensors,nope", "playlist=missing", "kiosk=2"])
def test_bad_wall_parameters_are_refused(loaded_city, tmp_path, query):
    import urllib.error
    import urllib.request
    with dashboard_server(_wall_config(loaded_city, tmp_path)) as base:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/wall?{query}")
        assert info.value.code == 400 and "Traceback" not in info.value.read().decode()


@pytest.mark.browser
def test_an_alarm_flies_the_map_there_and_its_acknowledgement_stays(loaded_city, tmp_path):
    config = _wall_config(loaded_city, tmp_path, refresh_seconds=3600)
    with dashboard_server(config) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"{base}/wall")
        page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
        first = page.locator(".alarm:not(.acknowledged)").first
        alarm_id = first.get_attribute("data-alarm")
        assert alarm_id, "the test city should raise alarms"
        first.locator(".alarm-go").click()
        page.wait_for_function(f"() => document.querySelector('#wall-map .js-plotly-plot')"
                               f".getAttribute('data-flown-to') === {json.dumps(alarm_id)}", timeout=10_000)
        page.wait_for_timeout(2_000)                      # the flight lasts 1.5 s
        centre = page.evaluate("""() => { const m = document.querySelector('#wall-map .js-plotly-plot')
                                          ._fullLayout.map._subplot.map; const c = m.getCenter();
                                          return [c.lng, c.lat, m.getZoom()]; }""")
        item = page.locator(f".alarm[data-alarm={json.dumps(alarm_id)}]")
        first.locator(".alarm-ack").click()
        page.wait_for_selector(f".alarm.acknowledged[data-alarm={json.dumps(alarm_id)}]", timeout=10_000)
        assert "wall@127.0.0.1" in item.inner_text()
        # Another screen, opened afterwards, shows it acknowledged too.
        other = browser.new_page(viewport={"width": 1920, "height": 1080})
        other.goto(f"{base}/wall")
        other.wait_for_selector(f".alarm.acknowledged[data-alarm={json.dumps(alarm_id)}]", timeout=60_000)
        other.close()
        page.close()
    cfg = load_config(config)
    store.init(cfg, None)
    target = {a.id: (a.lon, a.lat) for a in alarms.current(clock.now(cfg))}[alarm_id]
    assert centre[0] == pytest.approx(target[0], abs=1e-4) and centre[1] == pytest.approx(target[1], abs=1e-4)
    assert centre[2] >= 14, "the map zooms in on the alarm"
