"""The offline basemap: a city's PMTiles raster archive (config/layers/_basemap.yaml) served by the app itself at
/tiles/<z>/<x>/<y>.<ext> and drawn under the wall map's outlines. Tiles come back byte for byte as the archive holds
them; addresses that are not tiles get 400, tiles the archive lacks 404; a bad declaration stops start-up naming
file, key and expectation; and in a browser the map asks this server for its tiles and nothing leaves the machine.
The archive is generated here (layers/tile_archive.py), never committed."""
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import geopandas
import pytest
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write
from werkzeug.exceptions import BadRequest, NotFound

from core.errors import ConfigError
from core.layers import BASEMAP_FILE
from core.settings import load_config
from dashboard import tiles
from layers import tile_archive
from tests.browser import chromium, dashboard_server, http_client, signed_in
from tests.conftest import edit_yaml

ZOOMS = range(9, 13)


def _city_bounds(city: Path, margin: float = 0.5) -> tuple[float, float, float, float]:
    """The city's box, widened by `margin` of its size on each side (the map shows some ground around it)."""
    west, south, east, north = geopandas.read_file(city / "boundaries" / "districts.geojson").total_bounds
    dx, dy = (east - west) * margin, (north - south) * margin
    return (float(west - dx), float(south - dy), float(east + dx), float(north + dy))


def _with_basemap(loaded_city, root: Path) -> tuple[Path, Path]:
    """A copy of the loaded city's config declaring a basemap archive (a path relative to the project root)."""
    settings, city, _ = loaded_city
    shutil.copytree(settings.parent, root / "config")
    archive = root / "tiles" / "city.pmtiles"
    tile_archive.build(archive, _city_bounds(city), ZOOMS)
    (root / "config" / "layers" / BASEMAP_FILE).write_text("pmtiles: tiles/city.pmtiles\nopacity: 0.9\n",
                                                          encoding="utf-8")
    edit_yaml(root / "config" / "settings.yaml", lambda d: d["dashboard"].update(refresh_seconds=3600))
    return root / "config" / "settings.yaml", archive


@pytest.fixture(scope="module")
def tile_server(loaded_city, tmp_path_factory):
    settings, archive = _with_basemap(loaded_city, tmp_path_factory.mktemp("basemap"))
    with dashboard_server(settings) as base:
        yield base, archive


def _get(opener, url):
    try:
        with opener.open(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _some_tiles(archive: Path) -> list[tuple[int, int, int]]:
    """The first, middle and last tile the archive holds at each zoom."""
    with archive.open("rb") as f:
        held = sorted(zxy for zxy, _ in all_tiles(MmapSource(f)))
    out = []
    for z in ZOOMS:
        level = [t for t in held if t[0] == z]
        out += [level[0], level[len(level) // 2], level[-1]]
    return out


def test_the_archive_is_deterministic_and_covers_the_box(loaded_city, tmp_path):
    bounds = _city_bounds(loaded_city[1])
    first, second = tmp_path / "a.pmtiles", tmp_path / "b.pmtiles"
    count = tile_archive.build(first, bounds, ZOOMS)
    tile_archive.build(second, bounds, ZOOMS)
    assert first.read_bytes() == second.read_bytes()
    with first.open("rb") as f:
        reader = Reader(MmapSource(f))
        header = reader.header()
        assert (header["min_zoom"], header["max_zoom"]) == (ZOOMS[0], ZOOMS[-1])
        assert header["tile_type"] == TileType.PNG and header["addressed_tiles_count"] == count
        for z in ZOOMS:
            xs, ys = tile_archive.tile_range(bounds, z)
            assert reader.get(z, xs[0], ys[0]) == tile_archive.tile_png(z, xs[0], ys[0])
            assert reader.get(z, xs[-1] + 1, ys[0]) is None, "nothing outside the box"


def test_a_tile_comes_back_byte_for_byte_with_its_type_and_caching(tile_server):
    base, archive = tile_server
    opener = http_client(base)
    with archive.open("rb") as f:
        reader = Reader(MmapSource(f))
        for z, x, y in _some_tiles(archive):
            status, headers, body = _get(opener, f"{base}/tiles/{z}/{x}/{y}.png")
            assert status == 200, (z, x, y, body[:200])
            assert body == reader.get(z, x, y) == tile_archive.tile_png(z, x, y), (z, x, y)
            assert headers["Content-Type"] == "image/png"
            assert "max-age=" in headers["Cache-Control"] and "public" in headers["Cache-Control"]
            assert headers.get("ETag")
    # The browser asks again with the tile's ETag: nothing is resent.
    conditional = urllib.request.Request(f"{base}/tiles/{z}/{x}/{y}.png", headers={"If-None-Match": headers["ETag"]})
    assert _get(opener, conditional)[0] == 304


@pytest.mark.parametrize("address", ["{z}/{x}/{y}.jpg", "{z}/{x}/{y}.webp", "8/{x8}/{y8}.png", "13/{x13}/{y13}.png",
                                     "{z}/0/0.png", "{z}/{x}/{y}.png/extra"])
def test_a_tile_the_archive_does_not_hold_is_404(tile_server, address):
    base, archive = tile_server
    z, x, y = _some_tiles(archive)[0]
    path = address.format(z=z, x=x, y=y, x8=x >> 1, y8=y >> 1, x13=x << 4, y13=y << 4)
    status, _, body = _get(http_client(base), f"{base}/tiles/{path}")
    assert status == 404, (path, status)
    assert b"Traceback" not in body


@pytest.mark.parametrize("address", ["a/1/1.png", "10/1024/0.png", "10/0/1024.png", "-1/0/0.png", "31/0/0.png",
                                     "10/01/0.png", "10/0/0", "10/0/%201.png", "1e3/0/0.png", "10/0/0x1.png",
                                     "99999999999999999999/0/0.png"])
def test_an_address_that_is_not_a_tile_is_400(tile_server, address):
    base, _ = tile_server
    status, _, body = _get(http_client(base), f"{base}/tiles/{address}")
    assert status == 400, (address, status, body[:200])
    assert b"Traceback" not in body


def test_tiles_need_a_signed_in_user(tile_server):
    base, archive = tile_server
    z, x, y = _some_tiles(archive)[0]
    status, headers, _ = _get(http_client(base, None), f"{base}/tiles/{z}/{x}/{y}.png")
    assert status in (302, 303, 401) and "/login" in headers.get("Location", "/login"), status


def test_without_a_basemap_every_tile_is_404_and_bad_addresses_400():
    with pytest.raises(NotFound):
        tiles.tile_response(None, "10", "1", "1.png")
    with pytest.raises(BadRequest):
        tiles.tile_response(None, "10", "1", "x.png")
    assert tiles.parse("0", "0", "0") == (0, 0, 0)
    assert tiles.parse("30", str(2 ** 30 - 1), "0") == (30, 2 ** 30 - 1, 0)
    assert tiles.parse("30", str(2 ** 30), "0") is None


def _vector_archive(path: Path) -> None:
    with write(path) as writer:
        writer.write_tile(zxy_to_tileid(0, 0, 0), b"\x1a\x00")
        writer.finalize({"tile_type": TileType.MVT, "tile_compression": Compression.NONE}, {})


@pytest.mark.parametrize("declaration, make, key, expected", [
    ("pmtiles: tiles/missing.pmtiles\n", None, "pmtiles", "does not exist"),
    ("pmtiles: tiles/city.mbtiles\n", "copy", "pmtiles", "ending in .pmtiles"),
    ("pmtiles: tiles/city.pmtiles\n", "garbage", "pmtiles", "PMTiles version 3"),
    ("pmtiles: tiles/city.pmtiles\n", "vector", "pmtiles", "expected a raster archive"),
    ("pmtiles: tiles/city.pmtiles\nopacity: 2\n", "raster", "opacity", "less than or equal to 1"),
    ("pmtiles: tiles/city.pmtiles\ncolour: red\n", "raster", "colour", "Extra inputs are not permitted"),
    ("opacity: 0.5\n", None, "pmtiles", "nothing (the key is missing)"),
])
def test_a_bad_basemap_stops_start_up_naming_file_key_and_expectation(config_copy, declaration, make, key, expected):
    root = config_copy.parent.parent
    target = root / "tiles" / ("city.mbtiles" if make == "copy" else "city.pmtiles")
    target.parent.mkdir(parents=True)
    if make in ("raster", "copy"):
        tile_archive.build(target, (120.0, 30.0, 120.1, 30.1), range(10, 11))
    elif make == "garbage":
        target.write_bytes(b"not an archive at all")
    elif make == "vector":
        _vector_archive(target)
    source = config_copy.parent / "layers" / BASEMAP_FILE
    source.write_text(declaration, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    message = str(info.value)
    assert str(source) in message and f"'{key}'" in message and expected in message, message


def _local(url: str) -> bool:
    if url.startswith("data:"):
        return True
    return urlparse(url.removeprefix("blob:")).hostname == "127.0.0.1"


STYLE_JS = """() => {
    const gd = document.querySelector('#wall-map .js-plotly-plot');
    const map = gd._fullLayout.map._subplot.map;
    const layers = map.getStyle().layers;
    const raster = layers.findIndex((l) => l.type === 'raster');
    const source = raster >= 0 ? map.getStyle().sources[layers[raster].source] : null;
    return {raster: raster, tiles: source ? source.tiles : null,
            outline: layers.findIndex((l) => l.type === 'line'),
            traces: layers.map((l, i) => [l.id, i]).filter(([id]) => id.includes('trace')).map(([, i]) => i)}; }"""


@pytest.mark.browser
def test_the_wall_map_draws_the_local_tiles_under_the_outlines(tile_server, tmp_path):
    base, _ = tile_server
    requests, tile_responses = [], []
    with chromium(tmp_path) as browser:
        page = signed_in(browser, base, "admin", viewport={"width": 1920, "height": 1080})
        page.on("request", lambda r: requests.append(r.url))
        page.on("response", lambda r: tile_responses.append((r.url, r.status, r.headers.get("content-type")))
                if "/tiles/" in r.url else None)
        page.goto(f"{base}/wall")
        page.wait_for_selector("#wall-map [data-fitted='1']", timeout=60_000)
        page.wait_for_function("""() => { const gd = document.querySelector('#wall-map .js-plotly-plot');
            return gd._fullLayout.map._subplot.map.areTilesLoaded(); }""", timeout=30_000)
        style = page.evaluate(STYLE_JS)
        page.context.close()
    assert style["raster"] >= 0, "a raster layer is drawn"
    assert style["tiles"] and all(urlparse(u).path.startswith("/tiles/") for u in style["tiles"]), style["tiles"]
    assert style["raster"] < style["outline"] < min(style["traces"]), ("tiles under outlines under layers", style)
    served = [(u, s, t) for u, s, t in tile_responses if s == 200]
    assert served, f"no tile was fetched: {tile_responses[:5]}"
    assert all(urlparse(u).hostname == "127.0.0.1" and t == "image/png" for u, _, t in served), served[:3]
    outside = [u for u in requests if not _local(u)]
    assert not outside, f"requests left the machine: {outside[:5]}"
