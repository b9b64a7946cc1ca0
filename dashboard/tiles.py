"""The offline basemap's tiles, served by the app itself from the city's PMTiles archive
(config/layers/_basemap.yaml, checked by core/layers.basemap): GET /tiles/<z>/<x>/<y>.<ext>.
400 for coordinates that are not a tile, 404 for a tile the archive does not hold (or when no basemap is declared).
The map's raster layer (layers/basemap.raster_layer) points here, so no tile request leaves the machine."""
import hashlib
import re
import threading

from flask import Response, abort, request
from pmtiles.reader import MmapSource, Reader

from core import layers as layer_config

PREFIX = "/tiles/"
MAX_ZOOM = 30                                   # PMTiles tile ids are 64-bit: zoom 31 is the format's limit
NUMBER = re.compile(r"0|[1-9][0-9]{0,9}")       # plain decimal, no sign, no leading zeros, no spaces
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
# Tiles of a published archive do not change under the same name: a day in the browser, then revalidated by ETag.
CACHE_CONTROL = "public, max-age=86400"

_readers: dict = {}
_lock = threading.Lock()


def url_template(archive: layer_config.Archive) -> str:
    return PREFIX + "{z}/{x}/{y}." + archive.ext


def _reader(archive: layer_config.Archive) -> Reader:
    """One memory-mapped reader per archive for the process's life (mmap reads are safe across threads)."""
    with _lock:
        if archive.path not in _readers:
            f = archive.path.open("rb")           # kept open while the mapping lives
            _readers[archive.path] = (f, Reader(MmapSource(f)))
        return _readers[archive.path][1]


def parse(z: str, x: str, y: str) -> tuple[int, int, int] | None:
    """The tile's numbers, or None when they are not a tile of the Web Mercator pyramid."""
    if not all(NUMBER.fullmatch(v) for v in (z, x, y)):
        return None
    zi, xi, yi = int(z), int(x), int(y)
    if zi > MAX_ZOOM or xi >= 2 ** zi or yi >= 2 ** zi:
        return None
    return zi, xi, yi


def tile_response(archive: layer_config.Archive | None, z: str, x: str, name: str) -> Response:
    y, dot, ext = name.partition(".")
    numbers = parse(z, x, y) if dot else None
    if numbers is None:
        abort(400, description="a tile address is /tiles/<z>/<x>/<y>.<ext> with 0 <= x, y < 2^z")
    if archive is None or ext != archive.ext or not archive.min_zoom <= numbers[0] <= archive.max_zoom:
        abort(404, description="no such tile")
    data = _reader(archive).get(*numbers)
    if data is None:
        abort(404, description="no such tile")
    response = Response(bytes(data), mimetype=MEDIA_TYPES[archive.ext])
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.set_etag(hashlib.sha1(data).hexdigest())
    return response.make_conditional(request)


def register(server, config) -> None:
    archive = layer_config.basemap(config.settings_path.parent)
    @server.route(PREFIX + "<z>/<x>/<name>")
    def basemap_tile(z, x, name):
        return tile_response(archive, z, x, name)

    # Any other address under /tiles/ is no tile (without this, Dash's catch-all page route would answer it).
    @server.route(PREFIX + "<path:_rest>")
    def not_a_tile(_rest):
        abort(404, description="no such tile")
