"""The real Boston exports (../shared/data/boston, see its PROVENANCE.md) loaded through configuration alone:
deployments/boston/config, copied into a temporary folder with its warehouse pointed there, then
`python -m etl --config <copy> load-all`. Expected figures are recomputed here from the source files with the csv
module, never taken from the ETL. What the data taught is written up in docs/REAL_DATA.md."""
import csv
import gzip
import re
import shutil
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
import yaml

from core.schema import PUBLISHED_TABLES
from core.settings import load_config
from core import warehouse
from core.warehouse import Reader
from tests.conftest import ROOT, edit_yaml, run

DATA = (ROOT / ".." / "shared" / "data" / "boston").resolve()
DEPLOYMENT = ROOT / "deployments" / "boston" / "config"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"real Boston data absent: no {DATA} "
                                                 "(the shared data folder is expected beside the repository)"),
]

TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
PLACEHOLDER = ("42.3594", "-71.0587")        # City Hall, written when the geocoder found nothing
EXPECTED_REASONS = {                          # feed -> the only kinds of quarantine reason the real data earns
    "boston_311": {"closed before created", "coordinates outside the city"},
    "hubway_stations": {"coordinates outside the city"},
    "hubway_status": {"unknown sensor"},
}
# Phone numbers as people write them in North America: with an area code, or local (635-4500) in free text.
PHONE = re.compile(r"(?<![\w-])(?:\+?1[-. ])?(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w-])"
                   r"|(?<![\w-])[2-9]\d{2}[-.]\d{4}(?![\w-])")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
CANDIDATE = r"\d{3}[-. ]\d{4}|@"           # what any of those contains


def _open_text(path: Path):
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8", newline="") if gzipped else open(path, encoding="utf-8",
                                                                                      newline="")


def _rows(path: Path):
    """(header, iterator of records) of a CSV file, read with the csv module; blank lines are not records."""
    fh = _open_text(path)
    reader = csv.reader(fh)
    header = next(reader)

    def records():
        with fh:
            yield from (row for row in reader if any(cell.strip() for cell in row))
    return header, records()


@pytest.fixture(scope="module")
def source():
    """What the tests expect, counted from the source files in one pass each (independently of the ETL)."""
    facts = {"records": {}, "closed_early": 0, "placeholders": set(), "phones": set(), "emails": set(),
             "readings_by_station": Counter()}
    for path in sorted((DATA / "311").glob("boston_311_*[0-9].csv*")):
        header, rows = _rows(path)
        col = {name: i for i, name in enumerate(header)}
        n = 0
        for row in rows:
            n += 1
            if row[col["CLOSED_DT"]] and datetime.strptime(row[col["CLOSED_DT"]], TIME_FORMAT) < datetime.strptime(
                    row[col["OPEN_DT"]], TIME_FORMAT):
                facts["closed_early"] += 1
            if (row[col["LATITUDE"]], row[col["LONGITUDE"]]) == PLACEHOLDER:
                facts["placeholders"].add(row[col["CASE_ENQUIRY_ID"]])
            for name in ("CLOSURE_REASON", "CASE_TITLE"):
                facts["phones"].update(PHONE.findall(row[col[name]]))
                facts["emails"].update(EMAIL.findall(row[col[name]]))
        facts["records"][path.name] = n
    header, rows = _rows(DATA / "timeseries" / "hubway_stations_2012_2013.csv")
    facts["stations"] = [dict(zip(header, row)) for row in rows]
    facts["records"]["hubway_stations_2012_2013.csv"] = len(facts["stations"])
    path = DATA / "timeseries" / "hubway_station_status_2011_2012.csv.gz"
    header, rows = _rows(path)
    facts["readings_by_station"].update(row[header.index("station_id")] for row in rows)
    facts["records"][path.name] = sum(facts["readings_by_station"].values())
    return facts


@pytest.fixture(scope="module")
def boston(tmp_path_factory):
    """The deployment config copied to a temporary root, its relative paths made absolute, its warehouse moved
    into the temporary folder; then loaded once. Returns (settings path, load output, seconds)."""
    root = tmp_path_factory.mktemp("boston")
    shutil.copytree(DEPLOYMENT, root / "config")
    settings = root / "config" / "settings.yaml"
    original = DEPLOYMENT.parent                  # relative paths resolve against the folder holding config/

    def absolute(value: str) -> str:
        return value if Path(value).is_absolute() else str((original / value).resolve())

    def point_into_tmp(d):
        d["data_dir"] = absolute(d["data_dir"])
        for spec in d["city"]["boundaries"].values():
            spec["path"] = absolute(spec["path"])
        d["warehouse"]["dir"] = str(root / "var" / "warehouse")
        d["cache"]["dir"] = str(root / "var" / "cache")
        if "ops" in d:
            d["ops"]["dir"] = str(root / "var" / "ops")
    edit_yaml(settings, point_into_tmp)
    assert Path(yaml.safe_load(settings.read_text())["data_dir"]) == DATA
    started = time.monotonic()
    result = run("-m", "etl", "--config", str(settings), "load-all", timeout=900)
    return settings, result.stdout + result.stderr, time.monotonic() - started


def _reader(settings) -> Reader:
    config = load_config(settings)
    return Reader(config.warehouse_dir, config.settings.city.timezone)


def _runs(settings):
    return _reader(settings).df("SELECT * FROM etl_run WHERE feed_id <> 'boundaries' ORDER BY run_id")


def test_every_file_loads_and_row_accounting_is_exact(boston):
    settings, output, seconds = boston
    runs = _runs(settings)
    assert set(runs.feed_id) == set(EXPECTED_REASONS), output
    assert (runs.status == "ok").all(), runs[["feed_id", "file", "status", "error"]].to_dict("records")
    names = sorted(Path(f).name for f in runs.file)
    assert names == ["boston_311_2015.csv.gz", "boston_311_sample_2011.csv", "hubway_station_status_2011_2012.csv.gz",
                     "hubway_stations_2012_2013.csv"], names     # the 311 manifest is not a feed file
    for _, r in runs.iterrows():
        assert r.rows_read == r.rows_inserted + r.rows_updated + r.rows_merged + r.rows_quarantined, r.to_dict()
    print(f"\nBoston load-all: {seconds:.1f} s\n{output}")


def test_rows_read_equal_the_csv_records_of_each_file(boston, source):
    settings, _, _ = boston
    runs = _runs(settings)
    read = {Path(f).name: int(n) for f, n in zip(runs.file, runs.rows_read)}
    counted = source["records"]
    assert read == counted
    assert sum(read.values()) == sum(counted.values())
    # and the figures PROVENANCE.md gives for the files
    assert counted["boston_311_2015.csv.gz"] == 121_145
    assert counted["hubway_station_status_2011_2012.csv.gz"] == 1_050_209
    assert counted["hubway_stations_2012_2013.csv"] == 131


def test_quarantine_holds_only_the_expected_kinds_in_the_expected_numbers(boston, source):
    settings, _, _ = boston
    reader = _reader(settings)
    quarantined = reader.df("SELECT feed_id, file, reason, record_key FROM etl_quarantine")
    kinds = {}
    for feed_id, reason in zip(quarantined.feed_id, quarantined.reason):
        kinds.setdefault(feed_id, set()).add(reason.split(" '")[0])
    for feed_id, found in kinds.items():
        assert found <= EXPECTED_REASONS[feed_id], (feed_id, found - EXPECTED_REASONS[feed_id])

    # 311: a closure before the opening is refused (counted from the source times)
    q311 = quarantined[quarantined.feed_id == "boston_311"]
    assert source["closed_early"] > 0
    assert (q311.reason == "closed before created").sum() == source["closed_early"]
    assert (q311.reason == "coordinates outside the city").sum() < 100       # PROVENANCE: 25 off every polygon

    # stations: the ones outside Boston (Cambridge, Somerville, Brookline) are outside the city
    elsewhere = {s["id"] for s in source["stations"] if s["municipality"] != "Boston"}
    assert set(quarantined[quarantined.feed_id == "hubway_stations"].record_key) == elsewhere
    loaded = {sensor for (sensor,) in reader.rows("SELECT sensor_id FROM dim_sensor")}
    assert loaded == {s["id"] for s in source["stations"]} - elsewhere

    # readings: exactly those of stations that are not loaded sensors
    unknown = sum(n for station, n in source["readings_by_station"].items() if station not in loaded)
    assert (quarantined.feed_id == "hubway_status").sum() == unknown


def test_placeholder_points_stay_unlocated_and_most_requests_land_in_a_district(boston, source):
    settings, _, _ = boston
    reader = _reader(settings)
    total, located, in_district, at_placeholder = reader.rows(
        "SELECT count(*), count(lat), count(district_id), count(*) FILTER (WHERE lat = ? AND lon = ?) "
        "FROM fct_incident", [float(PLACEHOLDER[0]), float(PLACEHOLDER[1])])[0]
    assert at_placeholder == 0
    placeholders = source["placeholders"]
    assert len(placeholders) > 10_000                                          # PROVENANCE: 17,070 in 2015
    refused = {k for (k,) in reader.rows("SELECT record_key FROM etl_quarantine WHERE feed_id = 'boston_311'")}
    assert total - located == len(placeholders - refused)
    assert located == in_district                  # a located request that loaded is inside a neighbourhood
    share = in_district / total
    assert 0.80 <= share <= 0.95, share
    in_precinct = reader.rows("SELECT count(street_id) FROM fct_incident")[0][0]
    assert in_precinct >= 0.999 * in_district
    sensors, sensors_located = reader.rows("SELECT count(*), count(district_id) FROM dim_sensor")[0]
    assert sensors == sensors_located > 0
    print(f"\nlocated in a district: {in_district:,} of {total:,} ({share:.1%}); "
          f"placeholder points: {len(placeholders):,}")


def test_reading_status_is_derived_from_capacity(boston):
    settings, _, _ = boston
    rows = _reader(settings).rows("SELECT status, count(*), max(value) FROM fct_sensor_reading GROUP BY ALL")
    by_status = {status: (n, top) for status, n, top in rows}
    assert set(by_status) == {"ok", "out_of_service"}
    assert by_status["out_of_service"][1] == 0                      # capacity 0: no bikes, and no alarm either
    assert 0 < by_status["ok"][1] <= 100


def test_no_phone_number_or_email_of_the_source_anywhere_in_the_warehouse(boston, source):
    settings, _, _ = boston
    assert len(source["phones"]) > 50, "the 2015 closure notes carry phone numbers"
    wanted = re.compile("|".join(re.escape(v) for v in sorted(source["phones"] | source["emails"], key=len,
                                                                reverse=True)))
    config = load_config(settings)
    generation = (config.warehouse_dir / "published" / "CURRENT").read_text().strip()
    leaks = []
    con = duckdb.connect()
    relations = [warehouse.table_source(config.warehouse_dir / "published" / generation, t) for t in PUBLISHED_TABLES]
    writer = duckdb.connect(str(config.warehouse_dir / "etl.duckdb"), read_only=True)
    for connection, names in ((con, relations),
                              (writer, [r[0] for r in writer.execute("SELECT table_name FROM duckdb_tables()")
                                        .fetchall()])):
        for relation in names:
            columns = [r[0] for r in connection.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
                       if r[1] == "VARCHAR"]
            for column in columns:          # DuckDB keeps only values with a digit group or an '@' (fast)
                for (value,) in connection.execute(
                        f"SELECT DISTINCT {column} FROM {relation} WHERE regexp_matches({column}, ?)",
                        [CANDIDATE]).fetchall():
                    leaks += [(relation[-40:], column, hit) for hit in wanted.findall(value)]
    writer.close()
    assert not leaks, leaks[:10]


def test_loading_again_changes_nothing(boston):
    settings, _, _ = boston
    before = _runs(settings)
    result = run("-m", "etl", "--config", str(settings), "load-all", timeout=600)
    assert " ok " not in result.stdout and "unchanged" in result.stdout, result.stdout
    assert len(_runs(settings)) == len(before)
