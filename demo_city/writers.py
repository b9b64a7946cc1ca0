"""Byte-stable output helpers: hashed file sink, JSON, GeoJSON, CSV fields."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import shapely


def dumps(obj) -> str:
    """The one JSON encoding used everywhere (stable key order, real UTF-8)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class HashedFile:
    """Binary file sink that tracks sha256 and data-row count while writing."""

    def __init__(self, root: str, relpath: str):
        self.relpath = relpath
        path = os.path.join(root, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._fh = open(path, "wb")
        self._sha = hashlib.sha256()
        self.rows = 0

    def write(self, data: bytes) -> None:
        self._sha.update(data)
        self._fh.write(data)

    def close(self) -> dict:
        self._fh.close()
        return {"rows": self.rows, "sha256": self._sha.hexdigest()}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._fh.closed:
            self._fh.close()


def write_json(root: str, relpath: str, obj, rows: int) -> tuple[str, dict]:
    with HashedFile(root, relpath) as f:
        f.write((dumps(obj) + "\n").encode("utf-8"))
        f.rows = rows
        return relpath, f.close()


def _ring(coords: np.ndarray) -> list:
    return np.round(coords, 6).tolist()


def geometry_json(geom) -> dict:
    """RFC 7946 geometry dict: exterior rings CCW, 6-decimal coordinates."""
    if geom.geom_type == "Point":
        return {"type": "Point", "coordinates": _ring(shapely.get_coordinates(geom))[0]}
    geom = shapely.orient_polygons(geom)
    polys = [geom] if geom.geom_type == "Polygon" else list(geom.geoms)
    parts = [[_ring(shapely.get_coordinates(p.exterior))]
             + [_ring(shapely.get_coordinates(r)) for r in p.interiors] for p in polys]
    if geom.geom_type == "Polygon":
        return {"type": "Polygon", "coordinates": parts[0]}
    return {"type": "MultiPolygon", "coordinates": parts}


def write_geojson(root: str, relpath: str, features: list[tuple[dict, object]]) -> tuple[str, dict]:
    """FeatureCollection, one feature per line (diff-friendly, streamable)."""
    with HashedFile(root, relpath) as f:
        f.write(b'{"type":"FeatureCollection","features":[\n')
        for i, (props, geom) in enumerate(features):
            feat = {"type": "Feature", "properties": props, "geometry": geometry_json(geom)}
            f.write(((",\n" if i else "") + dumps(feat)).encode("utf-8"))
        f.write(b"\n]}\n")
        f.rows = len(features)
        return relpath, f.close()


def fixed(values: np.ndarray, decimals: int) -> np.ndarray:
    """Fixed-point strings (object array); NaN -> ''."""
    fmt = "{:.%df}" % decimals
    out = np.array(list(map(fmt.format, np.asarray(values, dtype=float).tolist())), dtype=object)
    out[np.isnan(values)] = ""
    return out


def ints(values: np.ndarray) -> np.ndarray:
    return np.array(list(map(str, np.asarray(values).tolist())), dtype=object)


def csv_quote(field: np.ndarray) -> np.ndarray:
    """RFC 4180: quote fields containing comma, quote or line breaks."""
    s = np.asarray(field, dtype=object)
    needs = np.fromiter((("," in v) or ('"' in v) or ("\n" in v) or ("\r" in v) for v in s),
                        dtype=bool, count=len(s))
    if needs.any():
        s = s.copy()
        s[needs] = ['"' + v.replace('"', '""') + '"' for v in s[needs]]
    return s


def join_columns(columns: list[np.ndarray]) -> np.ndarray:
    """Row strings (no line end) from equally long object arrays."""
    line = columns[0].copy()
    for col in columns[1:]:
        line = line + "," + col
    return line
