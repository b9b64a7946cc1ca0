"""Administrative boundaries: read from GeoJSON, Shapefile or GeoPackage, checked early, repaired where invalid."""
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from core.errors import ConfigError
from core.schema import ADMIN_LEVELS

WGS84 = "EPSG:4326"
EQUAL_AREA = "EPSG:6933"          # for areas in km²; any equal-area CRS would do
BROWSER_TOLERANCE_DEG = 0.0004    # ~40 m: invisible at city zoom, cuts the map payload several-fold


SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")   # a Shapefile's names and CRS live beside the .shp


def source_files(path: Path) -> list[Path]:
    """The files a boundary file is read from: a Shapefile's sidecar files too (a renamed district changes only
    the .dbf), one file otherwise."""
    if path.suffix.lower() != ".shp":
        return [path]
    parts = [path.with_suffix(case(suffix)) for suffix in SHAPEFILE_PARTS for case in (str.lower, str.upper)]
    return [path] + [part for part in dict.fromkeys(parts) if part != path and part.exists()]


@dataclass
class Level:
    name: str
    frame: gpd.GeoDataFrame       # columns: id, name_en, name_zh, geometry (WGS84)
    repaired: int                 # invalid geometries made valid


def read_level(name: str, spec, resolve) -> Level:
    path: Path = resolve(spec.path)
    if not path.exists():
        raise ConfigError(f"settings: key 'city.boundaries.{name}.path': got '{path}'; expected an existing "
                          "GeoJSON, Shapefile or GeoPackage file")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - GDAL's drivers raise what they meet; all mean the file is unreadable
        raise ConfigError(f"settings: key 'city.boundaries.{name}.path': {path} cannot be read "
                          f"({str(exc).split(';')[0]}); expected a GeoJSON, Shapefile or GeoPackage file") from None
    _check_polygons(frame, name, path)
    if frame.crs is None:
        raise ConfigError(f"{path}: no coordinate reference system; expected one (GeoJSON is WGS84 by definition)")
    frame = frame.to_crs(WGS84)
    west, south, east, north = frame.total_bounds
    if len(frame) and not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise ConfigError(f"settings: key 'city.boundaries.{name}.path': {path} has coordinates up to "
                          f"({east:.0f}, {north:.0f}); expected longitude/latitude degrees. Projected coordinates "
                          "(metres, feet) in a file that does not name its CRS are read as degrees: re-project the "
                          "file or add its CRS")
    if spec.id not in frame.columns:
        raise ConfigError(f"settings: key 'city.boundaries.{name}.id': got {spec.id!r}; expected a property of "
                          f"{path}, one of {sorted(c for c in frame.columns if c != 'geometry')}")
    if frame[spec.id].isna().any():
        raise ConfigError(f"{path}: feature {int(frame[spec.id].isna().to_numpy().argmax()) + 1} has no {spec.id!r}; "
                          f"expected an id for every {name}")
    ids = frame[spec.id].astype(str).str.strip()
    if ids.duplicated().any():
        raise ConfigError(f"{path}: property {spec.id!r} repeats {ids[ids.duplicated()].iloc[0]!r}; "
                          f"expected a unique id per {name}")
    invalid = ~frame.geometry.is_valid
    geometry = frame.geometry.where(~invalid, shapely.make_valid(frame.geometry.values))
    out = gpd.GeoDataFrame({
        "id": ids,
        "name_en": _names(frame, spec.name_en, ids),
        "name_zh": _names(frame, spec.name_zh, ids),
    }, geometry=geometry.values, crs=WGS84)
    out["geometry"] = out.geometry.apply(_polygonal)
    return Level(name, out, int(invalid.sum()))


def _check_polygons(frame: gpd.GeoDataFrame, name: str, path: Path) -> None:
    """Boundaries are areas: a file without any, or with a feature that is not one, is refused (an empty or point
    geometry failed later with a traceback, or contained nothing)."""
    if frame.empty:
        raise ConfigError(f"{path}: no features; expected a polygon for each {name}")
    kinds = frame.geometry.geom_type
    missing = (frame.geometry.isna() | frame.geometry.is_empty).to_numpy()
    wrong = missing | ~kinds.isin(["Polygon", "MultiPolygon"]).to_numpy()
    if wrong.any():
        first = int(wrong.argmax())
        got = "no geometry" if missing[first] else kinds.iloc[first]
        raise ConfigError(f"{path}: feature {first + 1} has {got}; expected a Polygon or MultiPolygon for each "
                          f"{name}")


def _names(frame, column, ids):
    return frame[column].astype(str) if column and column in frame.columns else ids


def _polygonal(geom):
    """make_valid can return collections with stray lines; keep the areas."""
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        return shapely.union_all(parts)
    return geom


def read_all(boundaries: dict, resolve) -> dict[str, Level]:
    levels = {name: read_level(name, boundaries[name], resolve) for name in ADMIN_LEVELS if name in boundaries}
    if "city" not in levels:      # a city outline is the union of its districts when not supplied
        union = shapely.union_all(levels["district"].frame.geometry.values)
        levels["city"] = Level("city", gpd.GeoDataFrame({"id": ["CITY"], "name_en": ["City"], "name_zh": ["全市"]},
                                                        geometry=[union], crs=WGS84), 0)
    return levels


def describe(level: Level, parent: Level | None) -> pd.DataFrame:
    """The warehouse rows of one level: ids, parent ids, area, centroid, exact WKB and simplified GeoJSON."""
    frame = level.frame
    points = frame.geometry.representative_point()
    out = pd.DataFrame({f"{level.name}_id": frame["id"], "name_en": frame["name_en"], "name_zh": frame["name_zh"]})
    if parent is not None:
        out[f"{parent.name}_id"] = parent_ids(points, parent)
    out["area_km2"] = frame.geometry.to_crs(EQUAL_AREA).area.values / 1e6
    out["centroid_lat"], out["centroid_lon"] = points.y.values, points.x.values
    out["geometry_wkb"] = shapely.to_wkb(frame.geometry.values)
    simplified = frame.geometry.simplify(BROWSER_TOLERANCE_DEG, preserve_topology=True)
    out["geojson_simplified"] = [shapely.to_geojson(shapely.set_precision(g, 1e-5)) for g in simplified]
    return out


def parent_ids(points: gpd.GeoSeries, parent: Level) -> list:
    joined = gpd.sjoin(gpd.GeoDataFrame(geometry=points.values, crs=WGS84), parent.frame[["id", "geometry"]],
                       how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    return joined["id"].tolist()
