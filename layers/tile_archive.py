"""A small raster tile archive (PMTiles) over a bounding box, for tests and demos of the offline basemap where a
city has no real one. Deterministic: the same box and zooms give the same bytes. Tiles are plain PNGs written
here (no imaging library): a dark ground with a faint grid, shaded a little by tile so neighbours differ.

    python -m layers.tile_archive --out var/tiles/demo.pmtiles --bounds 119.9,30.0,120.4,30.5 --zooms 8-12
"""
import argparse
import math
import struct
import zlib
from pathlib import Path

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write

SIZE = 256
GRID = 32                 # pixels between grid lines


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(rows: list[bytes], width: int) -> bytes:
    """An 8-bit RGB PNG from rows of width*3 bytes."""
    raw = b"".join(b"\x00" + row for row in rows)           # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def _mark(ground: bytes, line: bytes, z: int, x: int, y: int) -> bytes:
    """A faint row of ticks spelling the tile's number in binary, so every tile's bytes differ."""
    bits = f"{z:05b}{x:025b}{y:025b}"
    return b"".join((line if bits[i // 4] == "1" else ground) if i // 4 < len(bits) else ground for i in range(SIZE))


def tile_png(z: int, x: int, y: int) -> bytes:
    shade = 6 * ((x + y) % 2) + 2 * (z % 3)                     # neighbours and zoom levels tell apart
    ground = bytes((16 + shade, 27 + shade, 42 + shade))
    line = bytes((38, 56, 78))
    ruled = b"".join(line if i % GRID == 0 else ground for i in range(SIZE))
    rows = [line * SIZE if j % GRID == 0 else ruled for j in range(SIZE)]
    rows[4] = rows[5] = _mark(ground, line, z, x, y)
    return png(rows, SIZE)


def tile_range(bounds: tuple[float, float, float, float], z: int) -> tuple[range, range]:
    """The x and y tile numbers (Web Mercator, XYZ) covering (west, south, east, north) at zoom z."""
    west, south, east, north = bounds
    n = 2 ** z

    def tx(lon):
        return min(n - 1, max(0, int((lon + 180) / 360 * n)))

    def ty(lat):
        r = math.radians(lat)
        return min(n - 1, max(0, int((1 - math.asinh(math.tan(r)) / math.pi) / 2 * n)))
    return range(tx(west), tx(east) + 1), range(ty(north), ty(south) + 1)


def build(out: Path, bounds: tuple[float, float, float, float], zooms: range) -> int:
    """Write the archive; returns the number of tiles."""
    tiles = sorted((zxy_to_tileid(z, x, y), z, x, y) for z in zooms for xs, ys in [tile_range(bounds, z)]
                   for x in xs for y in ys)
    out.parent.mkdir(parents=True, exist_ok=True)
    with write(out) as writer:
        for tile_id, z, x, y in tiles:
            writer.write_tile(tile_id, tile_png(z, x, y))
        west, south, east, north = bounds
        writer.finalize({"tile_type": TileType.PNG, "tile_compression": Compression.NONE,
                         "min_lon_e7": round(west * 1e7), "min_lat_e7": round(south * 1e7),
                         "max_lon_e7": round(east * 1e7), "max_lat_e7": round(north * 1e7),
                         "center_zoom": zooms.start, "center_lon_e7": round((west + east) / 2 * 1e7),
                         "center_lat_e7": round((south + north) / 2 * 1e7)},
                        {"name": "cityops test grid", "attribution": "CityOps (generated)"})
    return len(tiles)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m layers.tile_archive", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bounds", required=True, help="west,south,east,north in degrees")
    ap.add_argument("--zooms", default="8-12", help="first-last zoom level (default 8-12)")
    args = ap.parse_args(argv)
    bounds = tuple(float(v) for v in args.bounds.split(","))
    first, last = (int(v) for v in args.zooms.split("-"))
    count = build(args.out, bounds, range(first, last + 1))
    print(f"{args.out}: {count} tiles, zoom {first}-{last}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
