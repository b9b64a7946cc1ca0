"""Junk in any cell of any feed: the load goes on, every record read is accounted for, and nothing fails with a
traceback. A fixed seed replays the same junk; the list holds what broke loads before (an infinite or huge whole
number, a second with seven decimals, an hour-only offset among local times, MySQL's zero date)."""
import csv
import json
import random

import duckdb

from tests.conftest import make_city, run

JUNK = ["", " ", "inf", "-inf", "nan", "1e400", "1e30", "-1", "99999999999999999999", "2.5", "x", "啊", "٣", "１２",
        "\t", "0000-00-00 00:00:00", "2025-02-30 10:00:00", "2025-13-01 00:00:00", "0001-01-01 00:00:00",
        "9999-12-31 23:59:59", "2025-11-20T15:00:13.1234567+08:00", "2025-11-20T15:00:13+99:00",
        "2025-11-20T15:00:13+08", "2025-11-20 15:00:13-0500", "N/A", "null", "a" * 70_000, '"', ",", "\n", "\\",
        "DROP TABLE fct_incident; --", "%s", "{}", "1,5", "-0", "0x10", "1_000", "\ufeff", "\u200b", "-91", "181"]


def _junk(rnd: random.Random) -> str:
    return rnd.choice(JUNK) if rnd.random() < 0.8 else "".join(rnd.choice(JUNK[:30]) for _ in range(3))


def _spoil_csv(path, rnd) -> None:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:     # GBK lines kept as bytes
        rows = list(csv.reader(f))
    for row in rows[1:]:
        for i in range(len(row)):
            if rnd.random() < 0.03:
                row[i] = _junk(rnd)
        if rnd.random() < 0.003:
            row.append("extra")
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        csv.writer(f).writerows(rows)


def _spoil_json(path, rnd) -> None:
    records = json.loads(path.read_text(encoding="utf-8"))
    odd = [None, 1e308, -5, True, [], {}, {"a": 1}, 12345678901234567890]
    for record in records:
        for key in list(record):
            if rnd.random() < 0.03:
                record[key] = _junk(rnd) if rnd.random() < 0.6 else rnd.choice(odd)
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")


def test_junk_in_every_feed_is_quarantined_and_accounted_for(tmp_path):
    settings, city = make_city(tmp_path)
    rnd = random.Random(20261128)
    for path in [city / "incidents" / "hotline_12345.csv", city / "services" / "service_cases.csv",
                 city / "iot" / "readings.csv"]:
        _spoil_csv(path, rnd)
    _spoil_json(city / "incidents" / "open311_requests.json", rnd)

    result = run("-m", "etl", "--config", str(settings), "load-all", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output[-3000:]
    con = duckdb.connect(str(tmp_path / "var" / "warehouse" / "etl.duckdb"), read_only=True)
    runs = con.execute("SELECT feed_id, status, rows_read, rows_inserted + rows_updated + rows_merged, "
                       "rows_quarantined FROM etl_run WHERE feed_id <> 'boundaries'").fetchall()
    spoiled = {"hotline_12345", "open311", "service_cases", "sensor_readings"}
    assert {r[0] for r in runs} >= spoiled and all(r[1] == "ok" for r in runs), runs
    for feed_id, _, read, loaded, quarantined in runs:
        assert read == loaded + quarantined, feed_id
        if feed_id in spoiled:
            assert quarantined > 0.01 * read, (feed_id, quarantined, read)     # the junk was caught, not loaded
    reasons = {r[0] for r in con.execute("SELECT split_part(reason, ' ', 1) FROM etl_quarantine").fetchall()}
    assert {"unparseable", "not", "out"} <= reasons, reasons


ODD_GEOMETRY = [None, "x", [], 5, {}, {"type": "Point"}, {"type": "Point", "coordinates": []},
                {"type": "Point", "coordinates": [None, 30]}, {"type": "Point", "coordinates": [[1], {}]},
                {"type": "Point", "coordinates": [200, 100]}, {"type": "Point", "coordinates": ["120.2", "30.3"]},
                {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 1], [0, 0]]]}]


def test_malformed_geojson_features_are_quarantined_with_their_reason(tmp_path):
    """Features whose geometry, properties or self is not what GeoJSON says failed the whole load with a traceback;
    each now goes to quarantine with its reason, and the others load."""
    settings, city = make_city(tmp_path)
    rnd = random.Random(7)
    for path in [city / "iot" / "sensors.geojson", city / "services" / "halls.geojson"]:
        document = json.loads(path.read_text(encoding="utf-8"))
        for feature in document["features"]:
            if rnd.random() < 0.3:
                feature["geometry"] = rnd.choice(ODD_GEOMETRY)
            if rnd.random() < 0.1:
                feature["properties"] = rnd.choice(["x", [], 5])
        document["features"] += ["x", 5, None, {"type": "Feature"}]
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    result = run("-m", "etl", "--config", str(settings), "load-all", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output[-3000:]
    con = duckdb.connect(str(tmp_path / "var" / "warehouse" / "etl.duckdb"), read_only=True)
    runs = dict(con.execute("SELECT feed_id, [rows_read, rows_inserted, rows_quarantined] FROM etl_run "
                            "WHERE feed_id IN ('sensors', 'service_halls')").fetchall())
    for feed_id, (read, inserted, quarantined) in runs.items():
        assert read == inserted + quarantined and inserted > 0 and quarantined >= 4, (feed_id, runs)
    reasons = {r[0] for r in con.execute("SELECT reason FROM etl_quarantine "
                                         "WHERE feed_id IN ('sensors', 'service_halls')").fetchall()}
    assert {"feature is not a GeoJSON object", "a Point's coordinates are not [longitude, latitude]"} <= reasons


def test_a_bug_met_in_one_file_fails_that_file_alone(tmp_path, monkeypatch, capsys):
    """An unexpected exception (a bug, here planted in the checks of Open311's records) fails its file's run, rolled
    back and logged with the error, prints its traceback on standard error for the report, and the other feeds
    load: before, it stopped the whole load-all with nothing published."""
    from core.settings import load_config
    from etl import jobs, validate

    settings, _ = make_city(tmp_path)
    config = load_config(settings)
    check = validate.check

    def buggy(frame, entity_name, context, reasons):
        if "source_key" in frame and frame["source_key"].astype(str).str.startswith("O311").any():
            raise TypeError("planted bug")
        return check(frame, entity_name, context, reasons)
    monkeypatch.setattr(validate, "check", buggy)
    outcomes = {o.feed_id: o for o in jobs.load_all(config, report=lambda line: None)}
    assert outcomes["open311"].status == "failed"
    assert outcomes["open311"].error.startswith("unexpected error (TypeError: planted bug): a bug in CityOps")
    assert {o.status for f, o in outcomes.items() if f != "open311"} == {"ok"}
    assert "Traceback" in capsys.readouterr().err
    con = duckdb.connect(str(config.warehouse_dir / "etl.duckdb"), read_only=True)
    assert con.execute("SELECT status, error FROM etl_run WHERE feed_id = 'open311'").fetchall() == [
        ("failed", "planted bug")]
    assert con.execute("SELECT count(*) FROM fct_incident WHERE feed_id = 'open311'").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM fct_incident WHERE feed_id = 'hotline_12345'").fetchall()[0][0] > 0
