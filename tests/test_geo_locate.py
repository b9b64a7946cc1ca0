"""geo/locate gives exactly what it gave before it was made faster.

`reference_assign` and `reference_h3_cells` below are the previous geo/locate.py code (Locator.assign and h3_cells
as of commit c78409f, unchanged but for being plain functions): three `gpd.sjoin(predicate="within")` joins (a
point on a shared border is in neither polygon; where polygons overlap, the first in the level's frame wins) and
one `h3.latlng_to_cell` call per point. The new code must return equal frames (same columns, dtypes, values,
None/NaN where they were) on:
- the demo city's boundaries, built from the demo generator's geography;
- Boston's real boundaries (../shared/data/boston, see its PROVENANCE.md) as deployments/boston configures them,
  and with its wards as an extra level: wards cut across neighbourhoods, so levels do not nest;
- made-up levels whose polygons overlap, have holes, are empty or missing.
Points: uniform over the boundaries' extent and beyond, every vertex, points along edges and a hair off vertices,
points where two polygons of a level overlap, the cell corners of geo.polygon_index's raster, repeats and NaN.
"""
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from core.settings import Boundary, load_config
from demo_city import boundaries as demo_boundaries
from demo_city import geography
from demo_city.generate import Params
from geo import boundaries
from geo.boundaries import WGS84, Level
from geo.locate import ASSIGNED_LEVELS, Locator, h3_cells
from tests.conftest import ROOT

BOSTON_DATA = (ROOT / ".." / "shared" / "data" / "boston").resolve()
BOSTON_CONFIG = ROOT / "deployments" / "boston" / "config" / "settings.yaml"
needs_boston = pytest.mark.skipif(not BOSTON_DATA.is_dir(), reason=f"real Boston data absent: no {BOSTON_DATA} "
                                  "(the shared data folder is expected beside the repository)")


# --- the previous implementation (geo/locate.py before the bulk lookup), the reference ---------------------------

def reference_assign(levels: dict[str, Level], lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(lat)))
    located = ~(np.isnan(lat) | np.isnan(lon))
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon[located], lat[located]), crs=WGS84,
                              index=np.flatnonzero(located))
    for name in ("district", "street", "grid"):
        column = f"{name}_id"
        out[column] = pd.Series([None] * len(lat), dtype="object")
        if name not in levels or points.empty:
            continue
        joined = gpd.sjoin(points, levels[name].frame[["id", "geometry"]], how="inner", predicate="within")
        joined = joined[~joined.index.duplicated(keep="first")]   # a point on a shared border: first wins
        out.loc[joined.index, column] = joined["id"].values
    return out


REFERENCE_H3_RESOLUTIONS = (7, 8, 9)


def reference_h3_cells(lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    finest = max(REFERENCE_H3_RESOLUTIONS)
    cells = [h3.latlng_to_cell(a, o, finest) if a == a and o == o else None  # noqa: PLR0124 (NaN test)
             for a, o in zip(lat.tolist(), lon.tolist())]
    out = pd.DataFrame({f"h3_r{finest}": cells})
    distinct = [c for c in set(cells) if c is not None]
    for res in REFERENCE_H3_RESOLUTIONS:
        if res != finest:
            parents = {c: h3.cell_to_parent(c, res) for c in distinct}
            out[f"h3_r{res}"] = out[f"h3_r{finest}"].map(parents)
    return out


# --- comparing ---------------------------------------------------------------------------------------------------

def assert_identical(new: pd.DataFrame, old: pd.DataFrame) -> None:
    """Equal frames, down to dtypes, index, and None against NaN in every cell."""
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    for column in old.columns:
        assert [repr(v) for v in new[column].tolist()] == [repr(v) for v in old[column].tolist()], column


def assert_same_as_reference(levels: dict[str, Level], lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    new = Locator(levels).assign(lat, lon)
    assert_identical(new, reference_assign(levels, lat, lon))
    assert_identical(h3_cells(lat, lon), reference_h3_cells(lat, lon))
    return new


# --- points to compare on ----------------------------------------------------------------------------------------

def probe_points(levels: dict[str, Level], random_points: int = 40_000, per_kind: int = 40_000,
                 seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon): the hard cases for a point-in-polygon lookup, plus uniform points and NaN."""
    rng = np.random.default_rng(seed)
    geoms = np.concatenate([np.asarray(level.frame.geometry.values, dtype=object) for level in levels.values()])
    west, south, east, north = shapely.total_bounds(geoms)
    pad_x, pad_y = (east - west) * 0.1, (north - south) * 0.1
    uniform = np.column_stack([rng.uniform(west - pad_x, east + pad_x, random_points),
                               rng.uniform(south - pad_y, north + pad_y, random_points)])
    vertices = shapely.get_coordinates(geoms)
    start, end = vertices[:-1], vertices[1:]             # edges (and a few jumps between rings: harmless)
    along = np.concatenate([(start + end) / 2, start + (end - start) / 3])
    hair = np.concatenate([np.nextafter(vertices, vertices + 1), np.nextafter(vertices, vertices - 1),
                           vertices + 1e-9, vertices - 1e-9])
    corners = _index_corners(levels, rng, per_kind)
    near_edges = [_sample(rng, points, per_kind) for points in (vertices, along, hair)]
    kinds = [uniform, *near_edges, corners, _overlaps(levels)]
    lon, lat = np.concatenate(kinds).T
    repeats = rng.integers(0, len(lat), len(lat) // 4)                  # feeds repeat places
    lat, lon = np.concatenate([lat, lat[repeats]]), np.concatenate([lon, lon[repeats]])
    unlocated = rng.integers(0, len(lat), 300)
    lat[unlocated[:100]] = np.nan
    lon[unlocated[100:200]] = np.nan
    lat[unlocated[200:]], lon[unlocated[200:]] = np.nan, np.nan
    return lat, lon


def _overlaps(levels: dict[str, Level]) -> np.ndarray:
    """Points inside two polygons of a level (Boston's precincts overlap in slivers): where the first wins."""
    inside = []
    for level in levels.values():
        geoms = np.asarray(level.frame.geometry.values, dtype=object)
        first, second = shapely.STRtree(geoms).query(geoms, predicate="overlaps")
        shared = shapely.intersection(geoms[first[first < second]], geoms[second[first < second]])
        inside.append(shapely.get_coordinates(shapely.point_on_surface(shared[~shapely.is_empty(shared)])))
    return np.concatenate(inside)


def in_two_polygons(level: Level, lat: np.ndarray, lon: np.ndarray) -> int:
    """How many of the points are within two or more polygons of the level."""
    located = ~(np.isnan(lat) | np.isnan(lon))
    point, _ = shapely.STRtree(level.frame.geometry.values).query(
        shapely.points(lon[located], lat[located]), predicate="within")
    return int((np.bincount(point) > 1).sum())


def _sample(rng, points: np.ndarray, most: int) -> np.ndarray:
    return points if len(points) <= most else points[rng.choice(len(points), most, replace=False)]


def _index_corners(levels: dict[str, Level], rng, most: int) -> np.ndarray:
    """Corners of geo.polygon_index's raster cells, where a point's cell is decided by rounding."""
    corners = []
    locator = Locator(levels)
    for index in [locator.index(name) for name in ASSIGNED_LEVELS if name in levels]:
        if index.extent is None:
            continue
        col = rng.integers(0, index.columns + 1, most // 3)
        row = rng.integers(0, index.rows + 1, most // 3)
        corners.append(np.column_stack([index.extent[0] + col * index.size, index.extent[1] + row * index.size]))
    return np.concatenate(corners) if corners else np.empty((0, 2))


# --- boundaries --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_levels(tmp_path_factory) -> dict[str, Level]:
    """The demo city's four levels, written by the demo generator and read as the ETL reads them."""
    root = tmp_path_factory.mktemp("demo_boundaries")
    demo_boundaries.write(str(root), geography.build(Params().seed))
    config = load_config(ROOT / "config" / "settings.yaml")
    return boundaries.read_all(config.settings.city.boundaries, lambda path: root / "boundaries" / Path(path).name)


@pytest.fixture(scope="module")
def boston_config():
    return load_config(BOSTON_CONFIG)


def _boston_311_points(rng, most: int) -> tuple[np.ndarray, np.ndarray]:
    """Real request coordinates (City Hall placeholders included), read as text like the ETL reads them."""
    frame = pd.read_csv(BOSTON_DATA / "311" / "boston_311_2015.csv.gz", usecols=["LATITUDE", "LONGITUDE"],
                        dtype=str)
    rows = rng.choice(len(frame), min(most, len(frame)), replace=False)
    return frame["LATITUDE"].to_numpy(float)[rows], frame["LONGITUDE"].to_numpy(float)[rows]


# --- tests -------------------------------------------------------------------------------------------------------

def test_demo_city_gives_what_the_sjoins_gave(demo_levels):
    lat, lon = probe_points(demo_levels)
    new = assert_same_as_reference(demo_levels, lat, lon)
    # The probes reach the cases that matter: points on a street's border inside a district, found outside every
    # district, and located in all three levels.
    assert (new.district_id.notna() & new.street_id.isna()).any()
    assert new.district_id.isna().sum() > 300
    assert new.grid_id.notna().sum() > len(lat) // 4


def test_demo_city_with_levels_missing(demo_levels):
    lat, lon = probe_points(demo_levels, random_points=10_000, per_kind=5_000)
    for missing in (["street"], ["street", "grid"], ["grid"]):
        levels = {name: level for name, level in demo_levels.items() if name not in missing}
        new = assert_same_as_reference(levels, lat, lon)
        assert all(new[f"{name}_id"].isna().all() for name in missing)


@needs_boston
@pytest.mark.realdata
def test_boston_as_deployed_gives_what_the_sjoins_gave(boston_config):
    """deployments/boston: neighbourhoods as districts, precincts as streets, no grid."""
    levels = boundaries.read_all(boston_config.settings.city.boundaries, boston_config.path)
    assert set(levels) == {"city", "district", "street"}
    lat, lon = probe_points(levels)
    real_lat, real_lon = _boston_311_points(np.random.default_rng(3), 60_000)
    new = assert_same_as_reference(levels, np.concatenate([lat, real_lat]), np.concatenate([lon, real_lon]))
    assert new.grid_id.isna().all()
    assert in_two_polygons(levels["street"], lat, lon) > 10, "precincts overlap in slivers: the first wins there"


@needs_boston
@pytest.mark.realdata
def test_boston_with_wards_that_cut_across_neighbourhoods(boston_config):
    """Neighbourhoods, wards, precincts: wards do not nest in neighbourhoods, so no level follows from another."""
    specs = dict(boston_config.settings.city.boundaries)
    wards = Boundary(path=BOSTON_DATA / "boundaries" / "boston_wards_wgs84.geojson", id="WARD")
    levels = boundaries.read_all({"district": specs["district"], "street": wards, "grid": specs["street"]},
                                 boston_config.path)
    lat, lon = probe_points(levels, seed=11)
    real_lat, real_lon = _boston_311_points(np.random.default_rng(5), 30_000)
    new = assert_same_as_reference(levels, np.concatenate([lat, real_lat]), np.concatenate([lon, real_lon]))
    pairs = new.dropna().groupby("street_id")["district_id"].nunique()
    assert (pairs > 1).any(), "some ward spans several neighbourhoods"


def _level(name: str, geometries: list) -> Level:
    ids = [f"{name[0].upper()}{i}" for i in range(len(geometries))]
    return Level(name, gpd.GeoDataFrame({"id": ids, "name_en": ids, "name_zh": ids}, geometry=geometries,
                                        crs=WGS84), 0)


def test_overlapping_polygons_the_first_wins(demo_levels):
    """Polygons that overlap (the first in the frame wins), with holes, several parts, empty and None."""
    rng = np.random.default_rng(13)
    streets = np.asarray(demo_levels["street"].frame.geometry.values, dtype=object)
    swollen = list(shapely.buffer(streets[rng.permutation(len(streets))], 0.004))     # neighbours overlap
    districts = np.asarray(demo_levels["district"].frame.geometry.values, dtype=object)
    cells = np.asarray(demo_levels["grid"].frame.geometry.values, dtype=object)
    holed = [shapely.difference(districts[i], shapely.union_all(cells[i::7])) for i in range(len(districts))]
    parts = [shapely.union_all(cells[i::10]) for i in range(10)]                          # multipolygons
    levels = {"city": demo_levels["city"], "district": _level("district", holed + [shapely.Polygon(), None]),
              "street": _level("street", swollen), "grid": _level("grid", parts[::-1] + parts)}
    lat, lon = probe_points(levels, random_points=20_000, per_kind=10_000)
    new = assert_same_as_reference(levels, lat, lon)
    assert new.street_id.nunique() > 50
    assert in_two_polygons(levels["street"], lat, lon) > 1000


def test_no_polygons_no_points_and_no_located_points(demo_levels):
    levels = {"city": demo_levels["city"], "district": _level("district", []), "grid": demo_levels["grid"]}
    lat, lon = probe_points(demo_levels, random_points=2_000, per_kind=1_000)
    assert_same_as_reference(levels, lat, lon)
    for lat, lon in [(np.array([]), np.array([])), (np.full(4, np.nan), np.array([120.1, np.nan, 120.2, 0.0]))]:
        assert_identical(Locator(demo_levels).assign(lat, lon), reference_assign(demo_levels, lat, lon))
        assert_identical(h3_cells(lat, lon), reference_h3_cells(lat, lon))


def test_h3_cells_for_repeated_and_signed_zero_coordinates():
    lat = np.array([30.25, 30.25, -0.0, 0.0, np.nan, 30.25, 0.0, -0.0, 89.9999, -89.9999])
    lon = np.array([120.1, 120.1, 0.0, -0.0, 120.1, 120.1, 0.0, -0.0, 179.9999, -179.9999])
    assert_identical(h3_cells(lat, lon), reference_h3_cells(lat, lon))
