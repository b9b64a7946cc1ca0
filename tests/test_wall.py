"""The command-centre wall: every configured layer drawn and toggled in a real browser, refreshes that resend
nothing unchanged, stale feeds flagged, and a payload bounded by the city's area, not by its record count.
The time control: an earlier hour shows exactly that hour's incidents (counted from the feed files), playback
advances and stops at live, and values no slider sends are refused before any query."""
import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import geopandas
import h3
import plotly.io as pio
import pytest
import shapely

from core import clock, warehouse
from core.errors import ConfigError
from core.layers import TIMELINE_FILE, IncidentCells, IncidentHeat, Timeline
from core.settings import load_config
from layers import heat, incidents
from query import alarms, store
from query import layers as layer_rows
from tests import expected
from tests.browser import ROOT, chromium, dashboard_server, free_port, http_client, signed_in
from tests.conftest import edit_yaml

ONE_MB = 1_000_000
LAYER_IDS = ("districts", "incident_heat", "incidents", "sensors", "service_halls")


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
        page = signed_in(browser, base)
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
        page = signed_in(browser, base)
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
        page = signed_in(browser, base)
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


def _most_cells(layer_type) -> int:
    return next(m.le for m in layer_type.model_fields["max_cells"].metadata if hasattr(m, "le"))


@pytest.mark.parametrize("resolution", [7, 8, 9])
def test_incident_cells_payload_is_bounded_whatever_the_city_and_records(loaded_city, resolution):
    """The worst case at any data size: every cell drawn holds incidents (counts in the millions), as many cells
    as the layer may ever draw (the largest max_cells core/layers.py accepts)."""
    _, city, _ = loaded_city
    cells = _city_cells(city, resolution)
    cells = (cells * (_most_cells(IncidentCells) // len(cells) + 1))[:_most_cells(IncidentCells)]
    trace = incidents.cells([(c, 10_000_000 // len(cells)) for c in cells], "incidents", "%{z}")
    size = len(pio.to_json(trace, validate=False))
    assert size < ONE_MB, (resolution, len(cells), size)


def test_heat_payload_is_bounded_at_the_most_cells_allowed(loaded_city):
    _, city, _ = loaded_city
    cells = _city_cells(city, 9)
    cells = (cells * (_most_cells(IncidentHeat) // len(cells) + 1))[:_most_cells(IncidentHeat)]
    size = len(pio.to_json(heat.density([(c, 5_000_000) for c in cells], "heat", 18), validate=False))
    assert size < ONE_MB, (len(cells), size)


@pytest.mark.parametrize("max_cells", [10_000, 400, 60, 3])
def test_too_many_cells_are_drawn_coarser_and_every_incident_still_counts(loaded_city, max_cells):
    settings, _, _ = loaded_city
    store.init(load_config(settings), None)
    now = clock.now(load_config(settings))
    window = (now - timedelta(days=30), now)
    fine = layer_rows.incident_cells(*window, "all", 9)
    assert len(fine) > 400, "the demo city's month must fill more r9 cells than the smaller budgets"
    cells, resolution = layer_rows.incident_cells_within(*window, "all", 9, max_cells)
    assert len(cells) <= max_cells
    assert sum(n for _, n in cells) == sum(n for _, n in fine), "coarser cells count every incident"
    assert {h3.get_resolution(c) for c, _ in cells} == {resolution}
    if max_cells >= len(fine):
        assert (cells, resolution) == (fine, 9), "within the budget: the configured resolution, untouched"
    else:
        assert resolution < 9
        stored = layer_rows.incident_cells(*window, "all", max(resolution + 1, 7))
        finer = {h3.cell_to_parent(c, resolution + 1) for c, _ in stored}
        assert len(finer) > max_cells, "the finest resolution that fits, not a coarser one"


@pytest.mark.browser
def test_the_wall_says_when_the_server_is_gone_and_recovers_by_itself(loaded_city, tmp_path):
    config = _wall_config(loaded_city, tmp_path, refresh_seconds=5)
    port = free_port()
    with chromium(tmp_path) as browser:
        with dashboard_server(config, port=port) as base:
            page = signed_in(browser, base, "wall")
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
        page = signed_in(browser, base)
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
            http_client(base).open(f"{base}/wall?{query}")
        assert info.value.code == 400 and "Traceback" not in info.value.read().decode()


@pytest.mark.browser
def test_an_alarm_flies_the_map_there_and_its_acknowledgement_stays(loaded_city, tmp_path):
    config = _wall_config(loaded_city, tmp_path, refresh_seconds=3600)
    with dashboard_server(config) as base, chromium(tmp_path) as browser:
        page = signed_in(browser, base)
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
        # Acknowledged, it sinks to the bottom: in a full panel it is counted on the "+N more" line, not shown.
        page.wait_for_selector(f".alarm.acknowledged[data-alarm={json.dumps(alarm_id)}]", state="attached",
                               timeout=10_000)
        assert "admin" in item.inner_text(), "acknowledged by the signed-in user"
        # Another screen, opened afterwards, shows it acknowledged too.
        other = signed_in(browser, base, "operator")
        other.goto(f"{base}/wall")
        other.wait_for_selector(f".alarm.acknowledged[data-alarm={json.dumps(alarm_id)}]", state="attached",
                                timeout=60_000)
        other.close()
        page.close()
    cfg = load_config(config)
    store.init(cfg, None)
    target = {a.id: (a.lon, a.lat) for a in alarms.current(clock.now(cfg))}[alarm_id]
    assert centre[0] == pytest.approx(target[0], abs=1e-4) and centre[1] == pytest.approx(target[1], abs=1e-4)
    assert centre[2] >= 14, "the map zooms in on the alarm"


# ---- The time control: a slider over the last 24 hours, play/pause, back to live ----

THUMB = ".time-slider [role=slider]"
# What a layer's trace holds (its data as given: Plotly drops a hidden trace's data from _fullData).
SHOWN_JS = """(uid) => { const gd = document.querySelector('#wall-map .js-plotly-plot');
    const t = gd.data.find((d) => d.uid === uid);
    if (t.type === 'scattermap') { return {type: t.type, count: t.lat.length}; }
    return {type: t.type, count: (t.z || []).reduce((a, b) => a + b, 0)}; }"""


def _located_incidents(city) -> list[datetime]:
    """When each incident the warehouse must hold with a location was created, read from the feed files alone
    (tests/expected.py's parsing and refusal rules; records without coordinates are kept but not mapped)."""
    out = []
    skip = expected._skip(city, "incidents/hotline_12345.csv")
    for number, row in enumerate(csv.DictReader(expected._lines(city / "incidents" / "hotline_12345.csv")), start=2):
        if number not in skip and row.get("case_id") and row["lat"] and row["lon"]:
            out.append(expected._local(row["created_at"]))
    skip = expected._skip(city, "incidents/open311_requests.json")
    records = json.loads((city / "incidents" / "open311_requests.json").read_text(encoding="utf-8"))
    for index, r in enumerate(records):
        if index not in skip and r.get("lat") is not None and r.get("long") is not None:
            out.append(expected._iso(r["requested_datetime"]))
    return out


def _hour_windows(now: datetime) -> dict[int, tuple[datetime, datetime]]:
    """Slider position -> the hour it shows, worked out here from the clock alone: 23 is the hour ending at the
    last full hour, 0 the one 23 hours before it."""
    newest = now.replace(minute=0, second=0, microsecond=0)
    return {j: (newest - timedelta(hours=24 - j), newest - timedelta(hours=23 - j)) for j in range(24)}


def _position(page) -> int:
    return int(page.get_attribute(THUMB, "aria-valuenow"))


def _time_request(responses) -> dict:
    return next(r for r in reversed(responses) if '"wall-time-badge"' in (r.request.post_data or ""))


@pytest.mark.browser
def test_an_earlier_hour_shows_exactly_its_incidents_and_back_to_live_restores(loaded_city, tmp_path):
    _, city, _ = loaded_city
    config = _wall_config(loaded_city, tmp_path, refresh_seconds=3600)
    now = clock.now(load_config(config))
    created = _located_incidents(city)
    windows = _hour_windows(now)
    count = {j: sum(1 for c in created if since < c <= until) for j, (since, until) in windows.items()}
    # An earlier hour (not the newest), the busiest, so the check means something.
    target = max(range(22), key=lambda j: (count[j], j))
    since, until = windows[target]
    assert count[target] >= 2, count
    live_expected = sum(1 for c in created if now - timedelta(hours=24) < c <= now)
    with dashboard_server(config) as base, chromium(tmp_path) as browser:
        page = signed_in(browser, base)
        responses = []
        page.on("response", lambda r: responses.append(r) if "_dash-update-component" in r.url else None)
        page.goto(f"{base}/wall")
        page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
        assert _position(page) == 24 and page.is_hidden("#wall-time-badge"), "live is the default"
        assert page.get_attribute("#wall-time-bar", "class") == "wall-time live"
        live = page.evaluate(SHOWN_JS, "incidents")
        assert live["count"] == live_expected, (live, live_expected)

        page.focus(THUMB)
        page.keyboard.press("Home")
        for _ in range(target):
            page.keyboard.press("ArrowRight")
        label = f"{since:%H:%M}–{until:%H:%M}"
        page.wait_for_function(f"""() => {{ const b = document.getElementById('wall-time-badge');
            return !b.hidden && b.innerText.includes({json.dumps(label)}); }}""", timeout=15_000)
        for _ in range(50):                                      # the step's data follows its badge
            shown = page.evaluate(SHOWN_JS, "incidents")
            if shown["count"] == count[target]:
                break
            page.wait_for_timeout(200)
        assert shown["count"] == count[target], (label, shown, count[target])
        heat = page.evaluate(SHOWN_JS, "incident_heat")
        assert heat["count"] == count[target], ("the heat layer follows the slider too", heat)
        badge = page.inner_text("#wall-time-badge")
        assert "not live" in badge and label in badge, badge
        assert _position(page) == target
        assert page.get_attribute("#wall-time-bar", "class") == "wall-time frozen"
        assert "Back to live" in page.inner_text("#wall-time-live")
        assert "1 h" in page.inner_text(".layer-list"), "the legend says how long a window the layers show"
        # Legible from across the room, on the map, and the wall still does not scroll.
        box = page.evaluate("""() => { const b = document.getElementById('wall-time-badge').getBoundingClientRect();
            const m = document.querySelector('.wall-map-area').getBoundingClientRect();
            return {size: parseFloat(getComputedStyle(document.getElementById('wall-time-badge')).fontSize),
                    inside: b.left >= m.left && b.right <= m.right && b.top >= m.top && b.bottom <= m.bottom}; }""")
        assert box["size"] >= 30 and box["inside"], box
        assert page.evaluate("document.documentElement.scrollHeight") <= 1080
        # Only what changed travelled: district values, sensor states and the two incident traces, no outlines.
        step = _time_request(responses)
        assert step.status == 200 and len(step.body()) < 30_000, len(step.body())
        operations = json.loads(step.body())["response"]["wall-map"]["figure"]["operations"]
        districts = LAYER_IDS.index("districts")
        assert [op["location"] for op in operations if op["location"][1] == districts] == [["data", districts, "z"]]

        page.click("#wall-time-live")
        page.wait_for_selector("#wall-time-badge", state="hidden", timeout=15_000)
        page.wait_for_function(f"() => ({SHOWN_JS})('incidents').count === {live_expected}", timeout=15_000)
        assert _position(page) == 24
        assert page.get_attribute("#wall-time-bar", "class") == "wall-time live"
        assert "24 h" in page.inner_text(".layer-list")
        page.close()


@pytest.mark.browser
def test_playback_steps_through_the_hours_and_stops_at_live(loaded_city, tmp_path):
    config = _wall_config(loaded_city, tmp_path, refresh_seconds=3600)
    with dashboard_server(config) as base, chromium(tmp_path) as browser:
        page = signed_in(browser, base)
        page.goto(f"{base}/wall")
        page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
        page.click("#wall-time-play")                            # from live, playback starts at the oldest hour
        page.wait_for_function(f"() => document.querySelector({json.dumps(THUMB)}).getAttribute('aria-valuenow') === '0'",
                               timeout=5_000)
        started = time.monotonic()
        assert "Pause" in page.inner_text("#wall-time-play")
        page.wait_for_function("() => !document.getElementById('wall-time-badge').hidden", timeout=10_000)
        seen = {page.inner_text("#wall-time-badge")}
        for _ in range(10):
            page.wait_for_timeout(500)
            seen.add(page.inner_text("#wall-time-badge"))
        position, elapsed = _position(page), time.monotonic() - started
        # One step every 1.5 s, measured against the time that really passed (a loaded machine stretches the loop).
        assert elapsed / 1.5 - 2 <= position <= elapsed / 1.5 + 1, (position, elapsed)
        assert position >= 2, position
        assert len(seen) >= 3 and all("not live" in s for s in seen), seen
        page.click("#wall-time-play")                            # pause
        page.wait_for_timeout(300)
        paused = _position(page)
        page.wait_for_timeout(3_500)
        assert _position(page) == paused and "Play" in page.inner_text("#wall-time-play")
        # Two hours before live, play again: it reaches live and stops there.
        page.focus(THUMB)
        page.keyboard.press("End")
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("() => !document.getElementById('wall-time-badge').hidden", timeout=10_000)
        page.click("#wall-time-play")
        page.wait_for_selector("#wall-time-badge", state="hidden", timeout=10_000)
        assert _position(page) == 24
        page.wait_for_timeout(3_500)
        assert _position(page) == 24 and "Play" in page.inner_text("#wall-time-play"), "playback stops at live"
        assert page.get_attribute("#wall-time-bar", "class") == "wall-time live"
        page.close()


BAD_TIME_VALUES = ["1; DROP TABLE fct_incident", "3", -1, 25, 10 ** 12, 3.5, None, True, [3], {"x": 1}]


@pytest.mark.browser
def test_a_crafted_time_value_is_refused_without_an_error(loaded_city, tmp_path):
    """Replay the slider's own callback request with values no slider sends: nothing changes, no 500, no trace."""
    config = _wall_config(loaded_city, tmp_path, refresh_seconds=3600)
    with dashboard_server(config) as base, chromium(tmp_path) as browser:
        page = signed_in(browser, base)
        responses = []
        page.on("response", lambda r: responses.append(r) if "_dash-update-component" in r.url else None)
        page.goto(f"{base}/wall")
        page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
        page.focus(THUMB)
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("() => !document.getElementById('wall-time-badge').hidden", timeout=10_000)
        request = json.loads(_time_request(responses).request.post_data)
        page.close()

        client = http_client(base)

        def post(body):
            req = urllib.request.Request(f"{base}/_dash-update-component", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            try:
                with client.open(req, timeout=30) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        for bad in BAD_TIME_VALUES:
            body = json.loads(json.dumps(request))
            body["inputs"][0]["value"] = bad
            status, text = post(body)
            # Dash answers "nothing to update" (200 with an empty response, or 204).
            assert status in (200, 204) and "Traceback" not in text, (bad, status, text[:300])
            assert status == 204 or json.loads(text)["response"] == {}, (bad, text[:300])
        # Garbage in the other values of the same request: cleaned up, still answered.
        body = json.loads(json.dumps(request))
        body["inputs"][0]["value"] = 5
        for state, junk in zip(body["state"], (["en"], "incidents", "huge", {"a": 1}, 7)):
            state["value"] = junk
        status, text = post(body)
        assert status == 200 and "Traceback" not in text and "not live" in text, (status, text[:300])
        assert urllib.request.urlopen(f"{base}/healthz").status == 200


def test_bad_time_values_never_reach_a_query(loaded_city, tmp_path):
    """The callback's body, with the warehouse reader replaced by one that fails on any use."""
    config = _wall_config(loaded_city, tmp_path)
    code = f"""
import dash, json
from dashboard.app import create_app
create_app()
from dashboard.pages import wall
from query import store
def refuse(*a, **k):
    raise AssertionError("a query was built")
store.reader = refuse
out = [wall.time_view(v, "en", ["incidents"], 1, None) for v in {BAD_TIME_VALUES!r}]
print(json.dumps([all(x is dash.no_update for x in o) for o in out]))
"""
    env = {**os.environ, "CITYOPS_CONFIG": str(config)}
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [True] * len(BAD_TIME_VALUES)


def test_timeline_steps_and_windows():
    tz = ZoneInfo("Asia/Shanghai")
    timeline = Timeline()
    assert timeline.steps == 24
    at_15 = datetime(2026, 11, 20, 15, 0, tzinfo=tz)
    assert timeline.window(at_15, 23) == (datetime(2026, 11, 20, 14, tzinfo=tz), at_15)
    assert timeline.window(at_15, 0) == (datetime(2026, 11, 19, 15, tzinfo=tz), datetime(2026, 11, 19, 16, tzinfo=tz))
    assert timeline.window(datetime(2026, 11, 20, 15, 41, 7, tzinfo=tz), 23)[1] == at_15, "whole steps only"
    quarter = Timeline(span_hours=2, step_minutes=15, window_steps=2)
    assert quarter.steps == 8
    assert quarter.window(datetime(2026, 11, 20, 15, 41, tzinfo=tz), 7) == (
        datetime(2026, 11, 20, 15, 0, tzinfo=tz), datetime(2026, 11, 20, 15, 30, tzinfo=tz))
    # Across a daylight-saving change (New York, 2026-03-08 02:00 EST -> 03:00 EDT) a step is still an hour.
    ny = ZoneInfo("America/New_York")
    since, until = timeline.window(datetime(2026, 3, 8, 4, 0, tzinfo=ny), 22)
    assert (since.hour, until.hour) == (1, 3)
    assert (until.astimezone(ZoneInfo("UTC")) - since.astimezone(ZoneInfo("UTC"))).total_seconds() == 3600


@pytest.mark.parametrize("change, key", [({"step_minutes": 7}, "must divide a day"),
                                         ({"span_hours": 2, "step_minutes": 180}, "whole number of steps"),
                                         ({"play_seconds": 0}, "play_seconds"), ({"speed": 2}, "speed")])
def test_a_bad_time_control_stops_start_up_naming_file_and_key(config_copy, change, key):
    path = config_copy.parent / "layers" / TIMELINE_FILE
    edit_yaml(path, lambda d: d.update(change))
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    assert str(path) in str(info.value) and key in str(info.value), str(info.value)


# ---- Every wall size: whole alarm rows only, and pixel sizes (the heat's radius) scaled with the screen ----

WALL_SIZES = [(1920, 1080), (3840, 2160), (5760, 1080)]
FIT_JS = """() => { const list = document.getElementById('wall-alarms');
    const more = list.querySelector('.alarm-more');
    const gd = document.querySelector('#wall-map .js-plotly-plot');
    const heat = gd.data.find((d) => d.type === 'densitymap');
    return {bottom: list.getBoundingClientRect().bottom,
            rows: [...list.querySelectorAll('.alarm')].map((r) => ({hidden: r.hidden,
                                                                    bottom: r.getBoundingClientRect().bottom})),
            more: {hidden: more.hidden, text: more.innerText, bottom: more.getBoundingClientRect().bottom,
                   beyond: parseInt(more.getAttribute('data-beyond'), 10)},
            radius: heat.radius}; }"""


@pytest.mark.browser
def test_the_alarm_list_shows_whole_rows_and_the_heat_scales_at_every_wall_size(loaded_city, tmp_path):
    config = _wall_config(loaded_city, tmp_path, refresh_seconds=3600)
    radius = next(layer.params.radius_px for layer in load_config(config).layers if layer.type == "incident_heat")
    with dashboard_server(config) as base, chromium(tmp_path) as browser:
        for width, height in WALL_SIZES:
            page = signed_in(browser, base, "admin", viewport={"width": width, "height": height})
            page.goto(f"{base}/wall")
            page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
            page.wait_for_function("() => document.getElementById('wall-alarms').hasAttribute('data-rows-shown')",
                                   timeout=10_000)
            state = page.evaluate(FIT_JS)
            shown = [r for r in state["rows"] if not r["hidden"]]
            left_out = len(state["rows"]) - len(shown) + state["more"]["beyond"]
            assert shown and all(r["bottom"] <= state["bottom"] + 0.5 for r in shown), (width, height, state)
            assert [r["hidden"] for r in state["rows"]] == sorted(r["hidden"] for r in state["rows"]), "the newest kept"
            if left_out:
                assert not state["more"]["hidden"] and state["more"]["bottom"] <= state["bottom"] + 0.5, state
                assert f"+ {left_out} more" in state["more"]["text"], state["more"]
            else:
                assert state["more"]["hidden"], state["more"]
            if (width, height) == (1920, 1080):
                assert left_out, "the test city raises more alarms than a 1080p panel holds"
            scale = max(1, min(width / 1920, height / 1080))
            assert state["radius"] == radius * scale, (width, height, state["radius"])
            # A past hour sends the heat layer again from the server: scaled alike.
            page.focus(THUMB)
            page.keyboard.press("ArrowLeft")
            page.wait_for_function("() => !document.getElementById('wall-time-badge').hidden", timeout=15_000)
            page.wait_for_function(f"() => ({FIT_JS})().radius === {radius * scale}", timeout=15_000)
            assert page.evaluate("document.documentElement.scrollHeight") <= height
            page.context.close()
