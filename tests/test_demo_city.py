"""Tests for the deterministic Lakeside City generator (demo_city)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import shapely
from shapely.geometry import shape

from demo_city import catalog
from demo_city.__main__ import main

SEED = int(os.environ.get("DEMO_CITY_TEST_SEED", "20261120"))   # to sweep seeds by hand
SMALL = ["--incidents", "3000", "--sensors", "12", "--days", "30", "--service-cases", "500", "--seed", str(SEED)]
HOTLINE = "incidents/hotline_12345.csv"
OPEN311 = "incidents/open311_requests.json"
READINGS = "iot/readings.csv"
FMT = "%Y-%m-%d %H:%M:%S"


def generate(root: Path, *extra: str) -> Path:
    main(["generate", "--out", str(root), *SMALL, *extra])
    return root


@pytest.fixture(scope="session")
def city(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("city") / "a")


@pytest.fixture(scope="session")
def manifest(city) -> dict:
    return json.loads((city / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def defects(city) -> list[dict]:
    return json.loads((city / "defects.json").read_text(encoding="utf-8"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def raw_lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]   # file ends with "\n"


def clean_hotline(city: Path, defects: list[dict]) -> list[dict]:
    bad = {e["line"] for e in defects if e["file"] == HOTLINE}
    lines = raw_lines(city / HOTLINE)
    text = "\n".join(l.decode("utf-8") for no, l in enumerate(lines, 1) if no == 1 or no not in bad)
    return list(csv.DictReader(io.StringIO(text)))


def local(ts: str) -> datetime:
    return datetime.strptime(ts, FMT)


def end_of(manifest) -> datetime:
    return datetime.fromisoformat(manifest["end"]).replace(tzinfo=None)


# --- determinism and bookkeeping -------------------------------------------

def test_same_args_identical_bytes_and_other_seed_differs(city, tmp_path):
    again = generate(tmp_path / "b")
    assert all_files(again) == all_files(city)
    other = all_files(generate(tmp_path / "c", "--seed", str(SEED + 1)))
    mine = all_files(city)
    assert set(other) == set(mine)
    assert all(other[k] != mine[k] for k in mine)


# readings.csv of the SMALL city at the default seed, as the generator wrote it when it held every line in memory
READINGS_SHA256 = "165870db6fecb5ee376e8120862877e33b3bcb84dfb5fd367c401e044673f789"


def test_readings_streamed_in_chunks_are_the_same_bytes(city, tmp_path, monkeypatch):
    """The readings file is written a chunk of lines at a time (bounded memory at 50M readings): the chunk size
    and the streaming itself must not change a byte."""
    from demo_city import iot
    if SEED == 20261120:
        assert sha(city / READINGS) == READINGS_SHA256
    monkeypatch.setattr(iot, "WRITE_ROWS", 997)
    small = generate(tmp_path / "chunks")
    assert sha(small / READINGS) == sha(city / READINGS)
    assert sha(small / "defects.json") == sha(city / "defects.json")


def test_manifest_matches_files(city, manifest):
    assert manifest["generator"] == "demo_city" and manifest["version"] == 1
    for rel, info in manifest["files"].items():
        path = city / rel
        assert sha(path) == info["sha256"], rel
        if rel.endswith(".csv"):
            assert len(raw_lines(path)) - 1 == info["rows"], rel
        elif rel.endswith(".geojson"):
            assert len(json.loads(path.read_text(encoding="utf-8"))["features"]) == info["rows"]
        else:
            assert len(json.loads(path.read_text(encoding="utf-8"))) == info["rows"], rel


def test_incident_counts_duplicates_are_extra(manifest, defects):
    p, files = manifest["parameters"], manifest["files"]
    dups = {f: sum(1 for e in defects if e["file"] == f and e["kind"] == "duplicate") for f in (HOTLINE, OPEN311)}
    assert files[HOTLINE]["rows"] - dups[HOTLINE] == p["incidents_csv"] == 2400
    assert files[OPEN311]["rows"] - dups[OPEN311] == p["incidents_json"] == 600
    assert p["incidents_csv"] + p["incidents_json"] == p["incidents"] == 3000


def test_ids_disjoint_and_unique(city, defects):
    rows = clean_hotline(city, defects)
    records = json.loads((city / OPEN311).read_text(encoding="utf-8"))
    dup_index = {e["index"] for e in defects if e["file"] == OPEN311 and e["kind"] == "duplicate"}
    json_ids = [r["service_request_id"] for i, r in enumerate(records) if i not in dup_index]
    assert len(set(json_ids)) == len(json_ids)
    assert all(r["case_id"].startswith("12345-") and len(r["case_id"]) == 14 for r in rows)
    assert all(i.startswith("O311-") and len(i) == 12 for i in json_ids)


# --- geography ---------------------------------------------------------------

def features(city: Path, name: str) -> list[dict]:
    return json.loads((city / "boundaries" / name).read_text(encoding="utf-8"))["features"]


def test_boundaries_nest_and_are_valid(city):
    cells, streets, districts = (features(city, n) for n in ("grid.geojson", "streets.geojson", "districts.geojson"))
    cityf = features(city, "city.geojson")
    assert len(cityf) == 1 and cityf[0]["properties"]["name_zh"] == "湖滨市"
    assert len(districts) == 12 and 90 <= len(streets) <= 110 and 1800 <= len(cells) <= 2200
    assert [c["properties"]["grid_id"] for c in cells] == [f"G{i:04d}" for i in range(1, len(cells) + 1)]
    geoms = {f"d{f['properties']['district_id']}": shape(f["geometry"]) for f in districts}
    geoms.update({f["properties"]["street_id"]: shape(f["geometry"]) for f in streets})
    street_district = {f["properties"]["street_id"]: f["properties"]["district_id"] for f in streets}
    everything = [shape(f["geometry"]) for f in cells + streets + districts + cityf]
    assert all(shapely.is_valid(g) for g in everything)
    city_geom = everything[-1]
    for f in cells:
        g, p = shape(f["geometry"]), f["properties"]
        assert street_district[p["street_id"]] == p["district_id"]
        assert g.difference(geoms[p["street_id"]]).area < 1e-12
        assert g.difference(geoms["d" + p["district_id"]]).area < 1e-12
    total = sum(shape(f["geometry"]).area for f in cells)
    assert abs(total - city_geom.area) / city_geom.area < 1e-9
    coords = json.dumps(cells[0]["geometry"]["coordinates"])
    assert all(len(x.split(".")[1].rstrip("]")) <= 6 for x in coords.replace("[", "").split(",") if "." in x)


def test_grid_order_north_to_south(city):
    """grid_id runs west->east within a row, rows north->south."""
    pts = [shapely.point_on_surface(shape(f["geometry"])) for f in features(city, "grid.geojson")]
    step = 660 / 110574
    top = max(p.y for p in pts)
    rows = [int((top - p.y) / step) for p in pts]
    ok = sum(r2 > r1 or (r2 == r1 and p2.x > p1.x)
             for r1, r2, p1, p2 in zip(rows, rows[1:], pts, pts[1:]))
    assert ok >= 0.98 * (len(pts) - 1)


# --- defects -------------------------------------------------------------------

def test_defects_show_in_content(city, defects, manifest):
    end = end_of(manifest)
    kinds_seen = {(e["file"], e["kind"]) for e in defects}
    for kind in catalog.HOTLINE_DEFECTS:
        assert (HOTLINE, kind) in kinds_seen, kind
    for kind in catalog.OPEN311_DEFECTS:
        assert (OPEN311, kind) in kinds_seen, kind
    for kind in catalog.READINGS_DEFECTS:
        assert (READINGS, kind) in kinds_seen, kind
    assert defects == sorted(defects, key=lambda e: (e["file"], e.get("line", e.get("index"))))
    hot = raw_lines(city / HOTLINE)
    for e in (e for e in defects if e["file"] == HOTLINE):
        check_hotline_defect(hot, e, end)
    records = json.loads((city / OPEN311).read_text(encoding="utf-8"))
    for e in (e for e in defects if e["file"] == OPEN311):
        check_json_defect(records, e)
    readings = raw_lines(city / READINGS)
    known = {f["properties"]["sensor_id"] for f in json.loads((city / "iot/sensors.geojson").read_text())["features"]}
    for e in (e for e in defects if e["file"] == READINGS):
        row = readings[e["line"] - 1].decode().split(",")
        assert f"{row[0]}@{row[1]}" == e["key"]
        if e["kind"] == "unknown_sensor":
            assert row[0] not in known
        elif e["kind"] == "duplicate":
            assert readings[e["line"] - 1] in readings[1:e["line"] - 1]
        else:
            with pytest.raises(ValueError):
                datetime.fromisoformat(row[1])


def check_hotline_defect(lines: list[bytes], e: dict, end: datetime):
    raw = lines[e["line"] - 1]
    if e["kind"] == "mixed_encoding":
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        row = next(csv.reader([raw.decode("gbk")]))
        assert row[0] == e["key"]
        return
    row = next(csv.reader([raw.decode("utf-8")]))
    r = dict(zip(catalog.HOTLINE_COLUMNS, row))
    assert r["case_id"] == e["key"]
    kind = e["kind"]
    if kind == "duplicate":
        assert raw in lines[1:e["line"] - 1]
    elif kind == "missing_coordinates":
        assert r["lat"] == r["lon"] == ""
    elif kind == "swapped_coordinates":
        assert 119 < float(r["lat"]) < 121 and 29 < float(r["lon"]) < 31
    elif kind == "outside_city":
        dy = (float(r["lat"]) - catalog.CENTER_LAT) * 110.574
        dx = (float(r["lon"]) - catalog.CENTER_LON) * 96.2
        assert (dx * dx + dy * dy) ** 0.5 > 50
    elif kind == "unparseable_timestamp":
        with pytest.raises(ValueError):
            local(r["created_at"])
    elif kind == "future_timestamp":
        assert local(r["created_at"]) > end + timedelta(days=29)
    elif kind == "closed_before_created":
        assert local(r["closed_at"]) < local(r["created_at"])
    elif kind == "unknown_category":
        assert r["category"] not in {c.label_zh for c in catalog.CATEGORIES}
    else:
        pytest.fail(kind)


def check_json_defect(records: list[dict], e: dict):
    rec = records[e["index"]]
    assert rec["service_request_id"] == e["key"]
    if e["kind"] == "duplicate":
        assert rec in records[:e["index"]]
    elif e["kind"] == "missing_coordinates":
        assert rec["lat"] is None and rec["long"] is None
    elif e["kind"] == "unknown_category":
        assert rec["service_code"] not in {c.service_code for c in catalog.CATEGORIES}
    else:
        with pytest.raises(ValueError):
            datetime.fromisoformat(rec["requested_datetime"])


# --- realism and consistency ------------------------------------------------------

def test_hotline_status_consistent(city, defects, manifest):
    end = end_of(manifest)
    sla = {c.label_zh: c.sla_hours for c in catalog.CATEGORIES}
    rows = clean_hotline(city, defects)
    assert len(rows) > 2000
    for r in rows:
        created = local(r["created_at"])
        times = {k: local(r[k]) for k in ("dispatched_at", "closed_at") if r[k]}
        assert created <= local(r["updated_at"]) <= end
        assert local(r["due_at"]) == created + timedelta(hours=sla[r["category"]])
        assert local(r["updated_at"]) == max([created, local(r["updated_at"])] + list(times.values()))
        status = r["status"]
        assert ("closed_at" in times) == (status == "已办结")
        assert ("dispatched_at" in times) == (status != "已受理")
        assert (r["satisfaction"] != "") <= (status == "已办结")
        assert all(created <= t <= end for t in times.values())
        assert r["address"].startswith("湖滨市") and len(r["caller_phone"]) == 11


def test_open311_records_consistent(city, defects):
    bad = {e["index"] for e in defects if e["file"] == OPEN311}
    records = json.loads((city / OPEN311).read_text(encoding="utf-8"))
    for i, r in enumerate(records):
        if i in bad:
            continue
        ext = r["extended_attributes"]
        assert r["requested_datetime"].endswith("+08:00")
        assert (r["status"] == "closed") == (ext["state"] == "closed") == (ext["closed_datetime"] is not None)
        assert r["media_url"] is None and ext["channel"] in ("web", "app")


def test_storm_spike_and_water_levels(city, manifest, defects):
    storm = manifest["scenario"]["storm"]
    s0 = datetime.fromisoformat(storm["start"]).replace(tzinfo=None)
    s1 = datetime.fromisoformat(storm["end"]).replace(tzinfo=None)
    names = {f["properties"]["name_zh"]: f["properties"]["district_id"] for f in features(city, "districts.geojson")}
    inside = outside = 0
    for r in clean_hotline(city, defects):
        district = next((d for n, d in names.items() if r["address"].startswith("湖滨市" + n)), None)
        if r["category"] != "排水积水" or district not in storm["districts"]:
            continue
        t = local(r["created_at"])
        if s0 <= t < s1:
            inside += 1
        elif not s0 - timedelta(days=1) <= t < s1 + timedelta(days=2):
            outside += 1
    usual_per_day = max(outside, 1) / (manifest["days"] - 6)
    assert inside / 3 >= 3 * usual_per_day

    storm_geom = shapely.union_all([shape(f["geometry"]) for f in features(city, "districts.geojson")
                                    if f["properties"]["district_id"] in storm["districts"]])
    gauges = {f["properties"]["sensor_id"] for f in json.loads((city / "iot/sensors.geojson").read_text())["features"]
              if f["properties"]["kind"] == "water_level" and storm_geom.contains(shape(f["geometry"]))}
    assert gauges
    peak = 0.0
    with open(city / READINGS, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["sensor_id"] in gauges and row["status"] == "ok":
                peak = max(peak, float(row["value"]))
    assert peak > 3.0


def test_sensor_alarms_and_silence(city, manifest):
    kinds = {k.prefix: k for k in catalog.SENSOR_KINDS}
    last: dict[str, tuple[datetime, float]] = {}
    with open(city / READINGS, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                t = datetime.fromisoformat(row["ts"])
            except ValueError:
                continue
            if row["sensor_id"] not in last or t > last[row["sensor_id"]][0]:
                last[row["sensor_id"]] = (t, float(row["value"]))
    end = datetime.fromisoformat(manifest["end"])
    for sid in manifest["scenario"]["alarm_sensors"]:
        k, (t, v) = kinds[sid[:2]], last[sid]
        assert t > end - timedelta(hours=1)
        assert v <= k.alarm if k.low_is_bad else v >= k.alarm
    silent = manifest["scenario"]["silent_sensors"]
    assert 3 <= len(silent) <= 5
    assert all(last[s][0] < end - timedelta(hours=24) for s in silent)


def test_service_cases(city, manifest):
    end = end_of(manifest)
    with open(city / "services/service_cases.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 500
    decided = [r for r in rows if r["decided_at"]]
    on_time = sum(local(r["decided_at"]) <= local(r["deadline_at"]) for r in decided) / len(decided)
    assert 0.85 < on_time < 0.99
    for r in rows:
        assert (r["hall_id"] == "") == (r["channel"] == "online")
        assert (r["outcome"] == "") == (r["decided_at"] == "")
        assert local(r["submitted_at"]) <= end


# --- update ------------------------------------------------------------------------

def test_update_deterministic_and_later(city, defects, manifest, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    main(["update", "--city", str(city), "--out", str(a), "--hours", "6"])
    main(["update", "--city", str(city), "--out", str(b), "--hours", "6"])
    assert a.read_bytes() == b.read_bytes()
    header = a.read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(catalog.HOTLINE_COLUMNS)
    original = {r["case_id"]: r for r in clean_hotline(city, defects)}
    end = end_of(manifest)
    with open(a, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for r in rows:
        updated = local(r["updated_at"])
        assert end < updated <= end + timedelta(hours=6)
        if r["case_id"] in original:
            assert original[r["case_id"]]["status"] != "已办结"
            assert updated > local(original[r["case_id"]]["updated_at"])
        else:
            assert end < local(r["created_at"]) <= end + timedelta(hours=6)


def test_catalog_tables():
    assert abs(sum(c.share for c in catalog.CATEGORIES) - 1.0) < 1e-9
    codes = {d.code for d in catalog.DEPARTMENTS}
    assert all(c.department in codes for c in catalog.CATEGORIES)
    assert {d.code for d in catalog.SERVICE_DEPARTMENTS} == {"MARKET", "HRSS", "POLICE"}
    assert len(catalog.SERVICE_ITEMS) >= 30 and len(catalog.DISTRICTS) == 12
