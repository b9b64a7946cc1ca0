"""File formats beyond CSV, JSON and GeoJSON, through the real ETL (real processes and DuckDB files):

- an Excel (.xlsx) service-case feed, written with pandas/openpyxl with real date cells, loads the same rows as
  the CSV it was made from;
- boundaries as Shapefiles (10-character field names, names in the .dbf) and as GeoPackages give every incident,
  sensor and street the same district, street and grid as the GeoJSON files, and the same district rows;
- a Shapefile edited only in its .dbf (a district renamed) is noticed and reloaded;
- the simplified outlines sent to browsers have fewer vertices than the source, stay valid, keep close to the
  source and do not overlap their neighbours.
"""
import json
import shutil
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from core.settings import load_config
from core.warehouse import Reader
from geo.boundaries import BROWSER_TOLERANCE_DEG
from tests.conftest import edit_yaml, make_city, run

LEVELS = {"city": "city", "district": "districts", "street": "streets", "grid": "grid"}
TIMES = ("submitted_at", "deadline_at", "decided_at")


def _reader(settings) -> Reader:
    config = load_config(settings)
    return Reader(config.warehouse_dir, config.settings.city.timezone)


def _variant(root: Path, base: Path, name: str, change) -> Path:
    """A copy of the city's config with its own warehouse, changed by `change(settings dict, feeds dir)`."""
    shutil.copytree(base.parent, root / name / "config")
    settings = root / name / "config" / "settings.yaml"

    def edit(d):
        d["warehouse"]["dir"] = str(root / name / "var" / "warehouse")
        change(d, settings.parent / "feeds")
    edit_yaml(settings, edit)
    return settings


def _load(settings):
    return run("-m", "etl", "--config", str(settings), "load-all")


def _write_boundaries(city: Path, out: Path, driver: str, suffix: str) -> None:
    out.mkdir(parents=True)
    for name in LEVELS.values():
        with warnings.catch_warnings():     # dBase truncates district_id to district_i: expected, see shapefiles()
            warnings.simplefilter("ignore")
            gpd.read_file(city / "boundaries" / f"{name}.geojson").to_file(out / f"{name}{suffix}", driver=driver)


@pytest.fixture(scope="module")
def cities(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    settings, city = make_city(root)
    _load(settings)

    # Excel: the service-case export as a workbook, times as real date cells, empty cells where the CSV is empty
    frame = pd.read_csv(city / "services" / "service_cases.csv", dtype=str, keep_default_na=False)
    for column in TIMES:
        frame[column] = pd.to_datetime(frame[column].replace("", None), format="%Y-%m-%d %H:%M:%S")
    frame = frame.replace("", None)
    (city / "workbooks").mkdir()
    frame.to_excel(city / "workbooks" / "service_cases.xlsx", index=False, sheet_name="cases")

    _write_boundaries(city, city / "shp", "ESRI Shapefile", ".shp")
    _write_boundaries(city, city / "gpkg", "GPKG", ".gpkg")

    def shapefiles(d, feeds):
        for level, name in LEVELS.items():
            spec = d["city"]["boundaries"][level]
            spec["path"] = str(city / "shp" / f"{name}.shp")
            spec["id"] = spec["id"][:10]                      # dBase field names: at most 10 characters
        edit_yaml(feeds / "service_cases.yaml", lambda f: f["source"].update(
            format="excel", files="workbooks/service_cases*.xlsx", sheet="cases"))

    def geopackages(d, feeds):
        for level, name in LEVELS.items():
            d["city"]["boundaries"][level]["path"] = str(city / "gpkg" / f"{name}.gpkg")
    shp = _variant(root, settings, "shp", shapefiles)
    gpkg = _variant(root, settings, "gpkg", geopackages)
    outputs = {name: _load(s).stdout for name, s in (("shp", shp), ("gpkg", gpkg))}
    return dict(geojson=settings, shp=shp, gpkg=gpkg, city=city, rows=len(frame), outputs=outputs)


def test_excel_feed_loads_the_same_service_cases_as_the_csv(cities):
    assert "service_cases.xlsx" in cities["outputs"]["shp"]
    runs = _reader(cities["shp"]).df("SELECT * FROM etl_run WHERE feed_id = 'service_cases'")
    assert len(runs) == 1 and runs.file[0].endswith("service_cases.xlsx"), runs
    assert (runs.status[0], runs.rows_read[0], runs.rows_inserted[0], runs.rows_quarantined[0]) == \
        ("ok", cities["rows"], cities["rows"], 0)
    query = "SELECT * EXCLUDE (run_id) FROM fct_service_case ORDER BY case_id"
    from_excel, from_csv = _reader(cities["shp"]).df(query), _reader(cities["geojson"]).df(query)
    assert len(from_csv) == cities["rows"]
    assert from_excel["decided_at"].isna().any() and from_excel["rating"].isna().any(), "empty cells are tested"
    pd.testing.assert_frame_equal(from_excel, from_csv)


@pytest.mark.parametrize("variant", ["shp", "gpkg"])
def test_shapefile_and_geopackage_boundaries_locate_like_geojson(cities, variant):
    assert "boundaries loaded" in cities["outputs"][variant]
    mine, reference = _reader(cities[variant]), _reader(cities["geojson"])
    for query in ("SELECT incident_id, district_id, street_id, grid_id FROM fct_incident ORDER BY incident_id",
                  "SELECT sensor_id, district_id, street_id, grid_id FROM dim_sensor ORDER BY sensor_id",
                  "SELECT street_id, district_id FROM dim_street ORDER BY street_id",
                  "SELECT grid_id, street_id, district_id FROM dim_grid ORDER BY grid_id"):
        got, expected = mine.df(query), reference.df(query)
        assert len(expected) > 10 and expected.iloc[:, 1].notna().mean() > 0.9, query
        pd.testing.assert_frame_equal(got, expected, obj=query)
    query = "SELECT district_id, name_en, name_zh, area_km2, centroid_lat, centroid_lon, geometry_wkb " \
            "FROM dim_district ORDER BY district_id"
    got, expected = mine.df(query), reference.df(query)
    assert len(got) == 12 and got.name_zh.str.contains("区").all()
    pd.testing.assert_frame_equal(got.iloc[:, :3], expected.iloc[:, :3])
    for column in ("area_km2", "centroid_lat", "centroid_lon"):
        assert (got[column] - expected[column]).abs().max() < 1e-9, column
    for a, b in zip(got.geometry_wkb, expected.geometry_wkb):
        assert shapely.from_wkb(bytes(a)).equals(shapely.from_wkb(bytes(b)))


def test_a_shapefile_changed_only_in_its_dbf_is_reloaded(cities):
    """Renaming a district rewrites the .dbf, not the .shp: the change is still seen."""
    city, settings = cities["city"], cities["shp"]
    path = city / "shp" / "districts.shp"
    frame = gpd.read_file(path)
    geometry_bytes = path.read_bytes()
    frame.loc[frame.district_i == "D01", "name_en"] = "Renamed District"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame.to_file(path, driver="ESRI Shapefile")
    assert path.read_bytes() == geometry_bytes, "guards the test: only the .dbf should differ"
    output = _load(settings).stdout
    assert "boundaries loaded" in output
    names = dict(_reader(settings).rows("SELECT district_id, name_en FROM dim_district"))
    assert names["D01"] == "Renamed District" and len(names) == 12


def _vertices(geometry) -> int:
    return int(shapely.get_num_coordinates(geometry))


@pytest.mark.parametrize("level", ["district", "street"])
def test_simplified_outlines_are_smaller_valid_and_close(cities, level):
    source = gpd.read_file(cities["city"] / "boundaries" / f"{LEVELS[level]}.geojson")
    source = dict(zip(source[f"{level}_id"], source.geometry))
    rows = _reader(cities["geojson"]).rows(f"SELECT {level}_id, geojson_simplified FROM dim_{level}")
    assert len(rows) == len(source)
    simplified = {i: shapely.from_geojson(text) for i, text in rows}
    before = sum(_vertices(g) for g in source.values())
    after = sum(_vertices(g) for g in simplified.values())
    print(f"\n{level}: {before:,} vertices in the source, {after:,} simplified ({after / before:.0%})")
    for unit, outline in simplified.items():
        original = source[unit]
        assert outline.geom_type in ("Polygon", "MultiPolygon") and outline.is_valid, unit
        if level == "district":        # some streets are a few straight edges already: nothing to drop there
            assert _vertices(outline) < _vertices(original), unit
        assert _vertices(outline) <= _vertices(original), unit
        assert outline.hausdorff_distance(original) <= 1.5 * BROWSER_TOLERANCE_DEG, unit
        assert abs(outline.area - original.area) / original.area < 0.02, unit
    outlines = list(simplified.values())
    overlap = sum(o.area for o in outlines) - shapely.union_all(outlines).area
    assert overlap / shapely.union_all(outlines).area < 1e-6, "neighbours must not overlap on the map"
    assert after < (0.6 if level == "district" else 0.9) * before
    assert all(json.loads(text)["type"] in ("Polygon", "MultiPolygon") for _, text in rows)
