"""Feed options that real exports needed (docs/REAL_DATA.md): gzip and byte-order marks, fields built from several
source columns or from a constant, values meaning 'none', a fallback for unmapped values, geocoder placeholder
points, daylight-saving times, and feeds that map only the required event times. Each is checked on a few rows."""
import gzip
import json
import re

import duckdb
import pandas as pd
import pytest
import yaml

from core.errors import ConfigError, FeedError
from core.feeds import Feed
from core.schema import DDL
from core.settings import load_config
from etl import extract, merge, transform
from tests.conftest import edit_yaml


def _feed(**changes) -> Feed:
    data = {
        "id": "test_feed", "entity": "incidents", "name": {"en": "Test", "zh": "测试"},
        "source": {"format": "csv", "files": "x*.csv", "timezone": "America/New_York"},
        "key": ["source_key"],
        "fields": {"source_key": "id", "category": {"from": "type", "map": "categories"},
                   "status": {"from": "state", "map": {"Open": "received", "Closed": "closed"}},
                   "created_at": {"from": "opened", "format": "%m/%d/%Y %I:%M:%S %p"}},
    }
    for key, value in changes.items():
        target = data
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return Feed.model_validate(data)


@pytest.fixture(scope="module")
def catalog():
    return load_config().catalog


def _canonical(feed, rows: list[dict], catalog):
    raw = pd.DataFrame(rows, dtype="string")
    reasons = transform.Reasons(len(raw))
    out = transform.to_canonical(raw, feed, catalog, feed.source.timezone, reasons)
    return out, reasons.values.tolist()


ROW = {"id": "1", "type": "NOISE", "state": "Open", "opened": "01/05/2015 12:40:41 PM"}


def test_gzip_csv_with_bom_and_crlf_reads_like_the_plain_file(tmp_path):
    text = "\ufeffid,type\r\n1,NOISE\r\n2,\"ROAD, east\"\r\n"
    plain, packed = tmp_path / "a.csv", tmp_path / "a.csv.gz"
    plain.write_text(text, encoding="utf-8", newline="")
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    source = _feed().source
    frames = [pd.concat(list(extract.read(p, source, 1000))) for p in (plain, packed)]
    pd.testing.assert_frame_equal(*frames)
    assert list(frames[1].columns[:2]) == ["id", "type"]
    assert frames[1]["type"].tolist() == ["NOISE", "ROAD, east"] and frames[1]["_line"].tolist() == [2, 3]


@pytest.mark.parametrize("fallback", [None, "gbk"])
def test_bad_bytes_in_a_utf8_block_are_found_per_line(tmp_path, fallback, monkeypatch):
    """pyarrow takes a UTF-8 block's bytes as they are; one undecodable line sends the block through Python's
    decoder, which must still find that line, and only it, across several blocks."""
    monkeypatch.setattr(extract, "CHUNK_BYTES", 64)          # several blocks: clean ones and the bad one
    rows = [b"%d,NOISE" % i for i in range(1, 21)]
    rows[11] = b"12," + "噪音".encode("gbk")                  # line 13: GBK bytes in a UTF-8 feed
    path = tmp_path / "x.csv"
    path.write_bytes(b"id,type\n" + b"\n".join(rows) + b"\n")
    frame = pd.concat(list(extract.read(path, _feed(source__fallback_encoding=fallback).source, 7)))
    assert frame["_line"].tolist() == list(range(2, 22))
    errors = dict(zip(frame["_line"], frame["_error"]))
    assert [line for line, error in errors.items() if pd.notna(error)] == ([13] if fallback is None else [])
    if fallback is None:
        assert errors[13] == "bytes not valid utf-8"
    else:
        assert frame.loc[frame["_line"] == 13, "type"].tolist() == ["噪音"]
    assert frame["type"].tolist()[:11] == ["NOISE"] * 11


@pytest.mark.parametrize("fallback", [None, "gbk"])
@pytest.mark.parametrize("window", [5, 64, 1 << 20])
def test_bad_lines_are_replaced_in_bytes_as_the_text_decoder_replaces_them(fallback, window, monkeypatch):
    """The bytes path (_utf8_repaired) must give the text path's (_decode) text and reasons: bad lines first, last,
    side by side, without a final newline, and characters of 2-4 bytes straddling the checked windows."""
    monkeypatch.setattr(extract, "UTF8_WINDOW", window)
    source = _feed(source__fallback_encoding=fallback).source
    good = ["1,噪音 noise", "2,é😀x", "3,plain", "4,路灯 ä"]
    bad = [b"9," + "噪音".encode("gbk"), b"8,\xff\xfe", b"7,caf\xe9", b"6," + "路".encode("gbk")[:1]]
    for lines in ([bad[0], *map(str.encode, good)], [*map(str.encode, good), bad[1]], [bad[2], bad[3], bad[0]],
                  [good[0].encode(), bad[1], good[1].encode(), bad[2], good[2].encode() * 40, bad[0]]):
        for ending in (b"", b"\n"):
            block = b"\n".join(lines) + ending
            text, reasons = extract._decode(block, 7, source)
            assert extract._utf8_repaired(block, 7, source) == (text.encode("utf-8"), reasons)
    clean = "\n".join(good).encode()
    assert extract._utf8_repaired(clean, 1, source) == (clean, {})


def test_gzip_json_with_bom(tmp_path):
    path = tmp_path / "r.json"          # no .gz suffix: the first bytes tell
    path.write_bytes(gzip.compress(("\ufeff" + json.dumps({"items": [{"id": 1}, {"id": 2}]})).encode("utf-8")))
    source = _feed(source__format="json", source__records_path="items").source
    frame = pd.concat(list(extract.read(path, source, 1000)))
    assert frame["id"].tolist() == ["1", "2"]


def test_damaged_gzip_is_a_feed_error(tmp_path):
    path = tmp_path / "cut.csv.gz"
    packed = gzip.compress(b"id,type\n" + b"".join(b"%d,NOISE\n" % i for i in range(10000)))
    path.write_bytes(packed[:len(packed) // 2])
    with pytest.raises(FeedError, match="damaged gzip"):
        list(extract.read(path, _feed().source, 1000))


@pytest.mark.parametrize("header, message", [
    (b"id,type,id", "the header names 'id' more than once"),
    (b"id,type\r1,NOISE\r2,ROAD", "carriage return alone"),
])
def test_a_header_that_cannot_name_each_field_once_is_a_feed_error(tmp_path, header, message):
    """Both failed the load with a traceback (a column picked by name was two columns; the csv module refused)."""
    path = tmp_path / "x.csv"
    path.write_bytes(header + b"\n1,NOISE,2\n")
    with pytest.raises(FeedError, match=message):
        list(extract.read(path, _feed().source, 1000))


def test_a_record_the_csv_module_cannot_read_keeps_its_line_and_reason_but_not_its_text(tmp_path):
    """A bare carriage return in an unquoted field made the csv module raise, which failed the load; the record is
    now refused with its line, its text left out (it could hold personal data no field rule masks), and the records
    after it read on."""
    path = tmp_path / "x.csv"
    path.write_bytes(b'id,type\n1,NOISE\n2,ROAD\rcall 13912345678\n3,"two\nlines"\n4,WATER\n')
    frame = pd.concat(list(extract.read(path, _feed().source, 1000)))
    assert frame["_line"].tolist() == [2, 3, 4, 6]
    assert frame["id"].tolist() == ["1", "", "3", "4"] and frame["type"].tolist() == ["NOISE", "", "two\nlines", "WATER"]
    assert frame["_error"].tolist()[1].startswith("unreadable CSV record: new-line character seen in unquoted field")
    assert frame["_error"].isna().tolist() == [True, False, True, True]


@pytest.mark.parametrize("content, sheet, message", [
    (b"", None, "Excel file format cannot be determined"),
    (b"id,type\n1,NOISE\n", None, "Excel file format cannot be determined"),
    (None, "cases", "Worksheet named 'cases' not found"),
])
def test_a_file_that_is_not_the_workbook_expected_is_a_feed_error(tmp_path, content, sheet, message):
    """pandas' Excel readers raise whatever they meet (a format, zip or sheet error), which failed the load with a
    traceback."""
    path = tmp_path / "cases.xlsx"
    if content is None:
        pd.DataFrame({"id": ["1"]}).to_excel(path, index=False, sheet_name="Sheet1")
    else:
        path.write_bytes(content)
    with pytest.raises(FeedError, match=f"cannot be read as an Excel workbook .*{re.escape(message)}"):
        list(extract.read(path, _feed(source__format="excel", source__sheet=sheet).source, 1000))


def test_time_from_several_columns_and_constants(catalog):
    feed = Feed.model_validate({
        "id": "readings", "entity": "sensor_readings", "name": {"en": "R", "zh": "R"},
        "source": {"format": "csv", "files": "r*.csv", "timezone": "America/New_York"},
        "key": ["sensor_id", "ts"],
        "fields": {"sensor_id": "station", "ts": {"from": ["y", "m", "d", "h"], "join": "-", "format": "%Y-%m-%d-%H"},
                   "value": "bikes", "status": {"value": "ok"}},
    })
    assert feed.source_fields() == ["bikes", "d", "h", "m", "station", "y"]
    out, reasons = _canonical(feed, [{"station": "3", "y": "2012", "m": "04", "d": "05", "h": "23", "bikes": "7"},
                                     {"station": "3", "y": "2012", "m": "04", "d": "", "h": "23", "bikes": "7"}],
                              catalog)
    assert out["ts"][0] == pd.Timestamp("2012-04-06 03:00", tz="UTC")       # 23:00 EDT
    assert pd.isna(out["ts"][1])                                            # a part missing: no time at all
    assert out["status"].tolist() == ["ok", "ok"] and reasons == [None, None]


def test_null_if_and_unmapped_fallback(catalog):
    feed = _feed(fields__department={"from": "queue", "map": "departments", "null_if": ["No Q"]},
                 fields__channel={"from": "src", "map": {"Constituent Call": "phone"}, "unmapped": "other"})
    rows = [dict(ROW, queue="No Q", src="Twitter"), dict(ROW, queue="Nowhere", src="Constituent Call")]
    out, reasons = _canonical(feed, rows, catalog)
    assert pd.isna(out["department"][0]) and reasons[0] is None
    assert out["channel"].tolist() == ["other", "phone"]
    assert reasons[1] == "unknown department 'Nowhere'"


def test_placeholder_points_are_unlocated(catalog):
    feed = _feed(fields__lat="LAT", fields__lon="LON", placeholder_points=[{"lat": 42.3594, "lon": -71.0587}])
    rows = [dict(ROW, LAT="42.3594", LON="-71.0587"), dict(ROW, LAT="42.3504", LON="-71.0587")]
    out, reasons = _canonical(feed, rows, catalog)
    assert out["lat"].isna().tolist() == [True, False] and out["lon"].isna().tolist() == [True, False]
    assert reasons == [None, None]


@pytest.mark.parametrize("dst, expected", [("quarantine", None), ("shift", "2015-11-01 05:16:00+00:00")])
def test_repeated_local_hour(dst, expected, catalog):
    feed = _feed(source__dst=dst)
    out, reasons = _canonical(feed, [dict(ROW, opened="11/01/2015 01:16:00 AM"),
                                     dict(ROW, opened="03/08/2015 02:30:00 AM"),
                                     dict(ROW, opened="13/45/2015 01:16:00 AM")], catalog)
    if expected is None:
        assert "repeated or skipped in America/New_York" in reasons[0] and "source.dst" in reasons[0]
        assert "repeated or skipped" in reasons[1]
    else:
        assert str(out["created_at"][0]) == expected                   # the first 01:16, still daylight time
        assert str(out["created_at"][1]) == "2015-03-08 07:30:00+00:00"  # 02:30 did not exist: 03:30 EDT
        assert reasons[:2] == [None, None]
    assert reasons[2] == "unparseable created_at '13/45/2015 01:16:00 AM'"


def test_incidents_without_optional_event_times_merge(catalog):
    con = duckdb.connect()
    for statement in DDL:
        con.execute(statement)
    frame = pd.DataFrame({"incident_id": ["f:1"], "source_key": ["1"], "category": ["noise"], "status": ["received"],
                          "created_at": pd.Series([pd.Timestamp("2015-01-05 17:40", tz="UTC")],
                                                  dtype="datetime64[us, UTC]"),
                          "feed_id": ["f"], "run_id": [1]})
    assert merge.merge(con, frame.copy(), "incidents") == {"merged": 0, "inserted": 1, "updated": 0}
    assert merge.merge(con, frame.copy(), "incidents") == {"merged": 1, "inserted": 0, "updated": 0}


def _config_error(settings) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(settings)
    return str(info.value)


def test_unmapped_must_name_a_catalogue_code(config_copy):
    feed = config_copy.parent / "feeds" / "hotline_12345.yaml"
    edit_yaml(feed, lambda d: d["fields"]["category"].update(unmapped="misc"))
    message = _config_error(config_copy)
    assert str(feed) in message and "key 'fields.category.unmapped'" in message and "'misc'" in message
    assert "config/categories.yaml" in message and "'noise'" in message


def test_from_and_value_together_are_refused(config_copy):
    feed = config_copy.parent / "feeds" / "hotline_12345.yaml"
    edit_yaml(feed, lambda d: d["fields"].update(channel={"from": "channel", "value": "phone"}))
    message = _config_error(config_copy)
    assert str(feed) in message and "key 'fields.channel'" in message and "exactly one of 'from'" in message


def test_placeholder_points_need_coordinates(config_copy):
    feed = config_copy.parent / "feeds" / "service_cases.yaml"
    edit_yaml(feed, lambda d: d.update(placeholder_points=[{"lat": 30.0, "lon": 120.0}]))
    message = _config_error(config_copy)
    assert str(feed) in message and "key 'placeholder_points'" in message and "'lat' and 'lon'" in message


def test_the_boston_deployment_config_is_valid():
    """The deployment config validates even where its data is absent (tests/test_realdata_boston.py loads it)."""
    from tests.conftest import ROOT
    config = load_config(ROOT / "deployments" / "boston" / "config" / "settings.yaml")
    assert config.settings.city.timezone == "America/New_York"
    assert set(config.feeds) == {"boston_311", "hubway_stations", "hubway_status"}
    assert config.feeds["hubway_status"].spec("ts").fields() == ["year", "month", "day", "hour"]
    assert yaml.safe_load((ROOT / "deployments" / "boston" / "config" / "settings.yaml").read_text())["warehouse"][
        "dir"].startswith("../../var/")
    # The UI's messages come from the product catalogue; a deployment's i18n files only override some.
    config = load_config(ROOT / "deployments" / "boston" / "config" / "settings.yaml")
    for language in ("en", "zh"):
        shipped = set(yaml.safe_load((ROOT / "config" / "i18n" / f"{language}.yaml").read_text(encoding="utf-8")))
        assert shipped <= set(config.messages.catalogues[language])


def test_boundary_in_projected_coordinates_without_a_crs_is_refused(tmp_path):
    """GeoJSON that does not name its CRS is read as WGS84: state-plane feet would land off the planet."""
    from core.settings import Boundary
    from geo.boundaries import read_level
    square = [[[739594.1, 2908187.3], [803687.5, 2908187.3], [803687.5, 2970072.8], [739594.1, 2908187.3]]]
    path = tmp_path / "precincts.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "0101"}, "geometry": {"type": "Polygon", "coordinates": square}}]}))
    with pytest.raises(ConfigError) as info:
        read_level("street", Boundary(path=path, id="id"), lambda p: p)
    assert "key 'city.boundaries.street.path'" in str(info.value) and "degrees" in str(info.value)


SQUARE = {"type": "Polygon", "coordinates": [[[120, 30], [120.1, 30], [120.1, 30.1], [120, 30]]]}


@pytest.mark.parametrize("content, message", [
    (b"", "cannot be read"),
    (b"[1, 2, 3]", "cannot be read"),
    ({"type": "FeatureCollection", "features": []}, "no features; expected a polygon for each street"),
    ([None, SQUARE], "feature 1 has no geometry; expected a Polygon or MultiPolygon for each street"),
    ([SQUARE, {"type": "Point", "coordinates": [120.05, 30.05]}], "feature 2 has Point; expected a Polygon"),
    ([SQUARE, {"type": "LineString", "coordinates": [[120, 30], [120.1, 30.1]]}], "feature 2 has LineString"),
    ("no id", "feature 2 has no 'id'; expected an id for every street"),
])
def test_boundaries_that_are_not_polygons_with_ids_are_refused_with_the_file(tmp_path, content, message):
    """Each of these failed with a traceback when the ETL or the dashboard started (a null geometry), or gave a
    layer that contains nothing (points, lines), or an id 'None'."""
    from core.settings import Boundary
    from geo.boundaries import read_level
    path = tmp_path / "streets.geojson"
    if isinstance(content, bytes | dict):
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    else:
        geometries = [SQUARE, SQUARE] if content == "no id" else content
        features = [{"type": "Feature", "properties": {"id": None if content == "no id" and i else f"S{i}"},
                     "geometry": g} for i, g in enumerate(geometries)]
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        read_level("street", Boundary(path=path, id="id"), lambda p: p)
    assert str(path) in str(info.value)


def test_json_records_flatten_as_json_normalize_flattens_them():
    """extract._flat replaces pd.json_normalize (most of the time of reading JSON feeds): same columns in the same
    order, same values, for flat, nested, empty, dotted and odd keys and records that differ in their fields."""
    records = [
        {"id": 1, "type": "NOISE", "lat": 42.3, "tags": ["a", "b"], "extra": None},
        {"id": 2, "geo": {"lat": 1.5, "lon": {"deg": 2, "": {"x": 3}}}, "type": "ROAD", "geo.lat": "top"},
        {"": {"b": 1}, ".x": {"y": {}}, "a.b": 7, "z": {}},
        {"type": "LIGHT", "new_field": True, "id": 3},
        {},
        {"status": {"code": 1, "name": {"en": "open", "zh": "处理中"}}, "id": 4, "lat": None},
    ]
    for batch in (records, records[::-1], records[:1], [records[1]] * 3, []):
        expected = pd.json_normalize(batch, sep=".").astype("string")
        got = pd.DataFrame([extract._flat(r) for r in batch]).astype("string")
        pd.testing.assert_frame_equal(got, expected)
