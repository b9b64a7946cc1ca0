"""End to end: generated feeds -> real ETL -> published warehouse -> dashboard -> headless Chromium.

The tiles must show what an independent count of the feed files gives, the map must be drawn, and no request
may leave 127.0.0.1.
"""
import json
import urllib.error
import urllib.request
from datetime import datetime
from urllib.parse import urlparse

import geopandas
import pytest

from tests import expected
from tests.browser import chromium, dashboard_server, http_client, signed_in

AS_OF = datetime.fromisoformat("2026-11-20T15:00:00+08:00")
TILES = ("incidents_today", "open", "overdue", "median_hours_to_close", "sensors_in_alarm")


@pytest.fixture(scope="module")
def server(loaded_city):
    settings, _, _ = loaded_city
    with dashboard_server(settings) as base:
        yield base


def _local(url: str) -> bool:
    """data: URLs carry their bytes; blob: URLs name memory of the page whose origin follows the scheme."""
    if url.startswith("data:"):
        return True
    return urlparse(url.removeprefix("blob:")).hostname == "127.0.0.1"


def _page_values(page) -> dict:
    values = {}
    for name in TILES:
        raw = page.get_attribute(f"#tile-{name}", "data-value")
        values[name] = None if raw in (None, "") else float(raw)
    return values


@pytest.mark.browser
@pytest.mark.parametrize("lang,label", [("en", "Open incidents"), ("zh", "未办结")])
def test_overview_tiles_match_feed_files_and_nothing_leaves_the_machine(server, loaded_city, tmp_path, lang, label):
    _, city, _ = loaded_city
    want = expected.tiles(city, AS_OF)
    assert want["open"] > 0 and want["incidents_today"] > 0, "the small city should have open and new cases"
    requests = []
    with chromium(tmp_path) as browser:
        page = signed_in(browser, server)
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{server}/?lang={lang}")
        page.wait_for_selector("#tile-open", timeout=30_000)
        page.wait_for_selector("#district-map .maplibregl-canvas", timeout=30_000)
        page.wait_for_function("document.querySelectorAll('#district-map path, #district-map canvas').length > 0")
        got = _page_values(page)
        assert label in page.inner_text(".tiles")
        assert page.get_attribute(".frame", "lang") == lang
        page.wait_for_selector("#district-map [data-fitted='1']", timeout=30_000)
        fit = page.evaluate("""() => {
            const gd = document.querySelector('#district-map .js-plotly-plot');
            const b = gd._fullLayout.map._subplot.map.getBounds();
            return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }""")
        drawn = page.evaluate("""() => {
            const gd = document.querySelector('#district-map .js-plotly-plot');
            return gd && gd.data ? gd.data[0].locations.length : 0; }""")
        page.close()
    for name in TILES:
        if want[name] is None:
            assert got[name] is None, name
        else:
            assert got[name] == pytest.approx(want[name], abs=0.051), (name, got, want)
    assert drawn == 12, "every district should be shaded"
    west, south, east, north = geopandas.read_file(city / "boundaries" / "districts.geojson").total_bounds
    assert fit[0] <= west and fit[1] <= south and fit[2] >= east and fit[3] >= north, ("city cut off", fit)
    assert max((east - west) / (fit[2] - fit[0]), (north - south) / (fit[3] - fit[1])) > 0.8, ("city too small", fit)
    outside = [u for u in requests if not _local(u)]
    assert not outside, f"requests left the machine: {outside[:5]}"


def test_healthz_reports_each_feed(server):
    body = json.loads(urllib.request.urlopen(server + "/healthz").read())
    assert body["status"] == "ok" and body["generation"].startswith("gen-")
    assert set(body["feeds"]) >= {"hotline_12345", "open311", "sensors", "sensor_readings", "service_cases"}
    for feed in body["feeds"].values():
        assert feed["last_load"] is not None and feed["rows_loaded"] > 0


@pytest.mark.parametrize("path,status", [("/?lang=fr", 400), ("/?district=D01%27%3B", 400), ("/wall?kiosk=yes", 400),
                                         ("/no/such/page", 404), ("/?lang=%00", 400)])
def test_bad_addresses_get_4xx_without_stack_trace(server, path, status):
    with pytest.raises(urllib.error.HTTPError) as info:
        http_client(server).open(server + path)
    body = info.value.read().decode()
    assert info.value.code == status
    assert "Traceback" not in body and "duckdb" not in body.lower()


@pytest.mark.browser
def test_the_screenshot_script_shoots_each_page_at_its_size(server, tmp_path):
    """scripts/screenshot.py, which every page change is checked with, signs in and waits for the map: it had
    broken once when pages began to need an account, unnoticed until someone needed it."""
    from scripts.screenshot import shoot
    files = shoot(server, ["/", "/wall"], ["1280x720"], ["en"], tmp_path / "shots")
    assert [f.name for f in files] == ["overview-en-1280x720.png", "wall-en-1280x720.png"]
    for f in files:
        png = f.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert (int.from_bytes(png[16:20]), int.from_bytes(png[20:24])) == (1280, 720)
        assert len(png) > 50_000, f"{f.name}: {len(png)} bytes; the sign-in page weighs 18 KB at this size"
