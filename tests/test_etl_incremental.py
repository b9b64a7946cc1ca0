"""Incremental loads through the real ETL (real DuckDB files, real `python -m etl` processes).

One small demo city of its own (module-wide, since the tests change it), loaded in stages:
  1. load-all                 -> the first published state
  2. load-all again           -> nothing happens (no run, no new generation)
  3. load-all --force         -> every file re-read, nothing inserted or updated, contents identical
  4. a later hotline export (`python -m demo_city update`) -> changed cases updated, their history extended,
     new cases inserted; a forced reload afterwards must not roll the changed cases back
  5. a late, out-of-order IoT readings file -> new keys land in place, repeats are merged
Expectations come from the feed files themselves (parsed here), never from the ETL's own code.
"""
import csv
import json
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.schema import PUBLISHED_TABLES
from core.settings import load_config
from core.warehouse import Reader
from tests.conftest import edit_yaml, make_city, run

TZ = ZoneInfo("Asia/Shanghai")
FCT = ("fct_incident", "fct_incident_status", "fct_sensor_reading", "fct_service_case")
STATUS = {"已受理": "received", "已派单": "dispatched", "处理中": "in_progress", "已办结": "closed"}
UPDATE_HOURS = 6
FEED = "hotline_12345"
FACT_AND_DIM = tuple(t for t in PUBLISHED_TABLES if t.startswith(("fct_", "dim_")))


def _reader(settings) -> Reader:
    config = load_config(settings)
    return Reader(config.warehouse_dir, config.settings.city.timezone)


def _etl(settings, *args):
    return run("-m", "etl", "--config", str(settings), "load-all", *args)


def _state(settings) -> dict:
    """Published generation, row counts, content checksums and the run log, as a reader sees them."""
    reader = _reader(settings)
    state = {"generation": reader.current(), "counts": {}, "checksums": {}}
    for table in FACT_AND_DIM:
        columns = [r[0] for r in reader.rows(f"DESCRIBE SELECT * FROM {table}")]
        state["counts"][table] = reader.rows(f"SELECT count(*) FROM {table}")[0][0]
        state["checksums"][table] = reader.rows(
            f"SELECT coalesce(sum(hash(row({', '.join(columns)}))), 0) FROM {table}")[0][0]
    state["runs"] = reader.df("SELECT * FROM etl_run ORDER BY run_id")
    return state


def _local_epoch(text: str) -> float | None:
    """A hotline timestamp (city time, no offset) as seconds since the epoch; None when empty."""
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=TZ).timestamp()


def _hotline_rows(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _case_ids_in(path) -> set[str]:
    """Every case id in a hotline export, lines in other encodings included (ids are ASCII)."""
    ids = set()
    with open(path, "rb") as fh:
        next(fh)
        for line in fh:
            ids.add(line.split(b",", 1)[0].decode("ascii", "replace"))
    return ids


def _events(row: dict) -> set[tuple[str, float]]:
    """The status history one version of a case implies (docs/SCHEMA.md, fct_incident_status)."""
    events = {("received", _local_epoch(row["created_at"]))}
    if row["dispatched_at"]:
        events.add(("dispatched", _local_epoch(row["dispatched_at"])))
    if row["closed_at"]:
        events.add(("closed", _local_epoch(row["closed_at"])))
    status = STATUS[row["status"]]
    if status not in ("received", "dispatched", "closed"):
        events.add((status, _local_epoch(row["updated_at"]) or _local_epoch(row["created_at"])))
    return events


def _history(reader, ids) -> dict[str, set]:
    out = {i: set() for i in ids}
    for incident_id, status, epoch in reader.rows(
            "SELECT incident_id, status, epoch(changed_at) FROM fct_incident_status "
            "WHERE incident_id IN (SELECT unnest(?::VARCHAR[]))", [list(ids)]):
        out[incident_id].add((status, epoch))
    return out


def _feed_files(state) -> int:
    """How many feed files had been loaded in that state (whatever feeds config/feeds/ holds)."""
    runs = state["runs"]
    return runs[(runs.feed_id != "boundaries") & (runs.status == "ok")].file.nunique()


def _assert_accounting(runs):
    ok = runs[runs.status == "ok"]
    assert len(ok), runs
    for _, r in ok.iterrows():
        assert r.rows_read == r.rows_inserted + r.rows_updated + r.rows_merged + r.rows_quarantined, r.to_dict()


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    settings, city = make_city(root)
    _etl(settings)
    return settings, city


@pytest.fixture(scope="module")
def first(city):
    settings, _ = city
    return _state(settings)


@pytest.fixture(scope="module")
def reloaded(city, first):
    """A plain reload (everything already loaded) and then a forced one."""
    settings, _ = city
    _etl(settings)
    plain = _state(settings)
    _etl(settings, "--force")
    return plain, _state(settings)


def test_reload_without_changes_does_nothing(first, reloaded):
    plain, _ = reloaded
    assert plain["generation"] == first["generation"], "nothing changed: nothing should be published"
    assert len(plain["runs"]) == len(first["runs"]), "already loaded files must be skipped"
    assert plain["counts"] == first["counts"] and plain["checksums"] == first["checksums"]


def test_forced_reload_changes_no_row(first, reloaded):
    _, forced = reloaded
    new_runs = forced["runs"][forced["runs"].run_id > first["runs"].run_id.max()]
    assert len(new_runs) == _feed_files(first), new_runs          # one per feed file
    assert (new_runs.status == "ok").all(), new_runs
    assert (new_runs.rows_read > 0).all() and (new_runs.rows_inserted == 0).all() \
        and (new_runs.rows_updated == 0).all(), new_runs[["feed_id", "rows_read", "rows_inserted", "rows_updated"]]
    assert forced["counts"] == first["counts"]
    assert forced["checksums"] == first["checksums"], "a forced reload must leave every row as it was"
    _assert_accounting(forced["runs"])


def test_a_loaded_file_under_a_new_name_is_unchanged(city, reloaded):
    """A new path is hashed while it loads, and found unchanged before its merge: nothing written, nothing run."""
    import hashlib
    import shutil
    settings, city_dir = city
    _, before = reloaded
    original = city_dir / "services" / "service_cases.csv"
    copy = original.with_name("service_cases_resent.csv")
    shutil.copyfile(original, copy)
    try:
        printed = _etl(settings).stdout
        after = _state(settings)
    finally:
        copy.unlink()
    line = next(x for x in printed.splitlines() if copy.name in x)
    assert " unchanged " in line, printed
    assert after["generation"] == before["generation"] and len(after["runs"]) == len(before["runs"]), printed
    assert after["counts"] == before["counts"] and after["checksums"] == before["checksums"]
    runs = before["runs"][(before["runs"].file == str(original)) & (before["runs"].status == "ok")]
    assert set(runs.file_sha256) == {hashlib.sha256(original.read_bytes()).hexdigest()}, runs


@pytest.fixture(scope="module")
def updated(city, reloaded):
    """A later hotline export (cases that moved on + new cases), loaded; the clock moves past its horizon."""
    settings, city_dir = city
    _, before = reloaded
    out = city_dir / "incidents" / "hotline_12345_update.csv"
    run("-m", "demo_city", "update", "--city", str(city_dir), "--out", str(out), "--hours", str(UPDATE_HOURS))
    end = datetime.fromisoformat(json.loads((city_dir / "manifest.json").read_text(encoding="utf-8"))["end"])

    def later_clock(d):
        # The export covers (end, end + 6 h]: time has moved on. With the demo's pinned clock every change would
        # be "in the future" and quarantined.
        d["clock"]["as_of"] = (end + timedelta(hours=UPDATE_HOURS)).isoformat()
    edit_yaml(settings, later_clock)
    rows = _hotline_rows(out)
    base_ids = _case_ids_in(city_dir / "incidents" / "hotline_12345.csv")
    ids = [f"{FEED}:{r['case_id']}" for r in rows]
    reader = _reader(settings)
    stored_before = {i for (i,) in reader.rows("SELECT incident_id FROM fct_incident WHERE incident_id IN "
                                               "(SELECT unnest(?::VARCHAR[]))", [ids])}
    history_before = _history(reader, ids)
    _etl(settings)
    return dict(settings=settings, rows=rows, path=out, base_ids=base_ids, stored_before=stored_before,
                history_before=history_before, before=before, after=_state(settings))


def test_update_file_has_changes_and_new_cases(updated):
    """Guards the test itself: the export must hold both kinds of record."""
    changed = [r for r in updated["rows"] if r["case_id"] in updated["base_ids"]]
    new = [r for r in updated["rows"] if r["case_id"] not in updated["base_ids"]]
    assert len(changed) >= 10 and len(new) >= 10, (len(changed), len(new))
    assert {f"{FEED}:{r['case_id']}" for r in changed} == updated["stored_before"]
    assert len({r["case_id"] for r in updated["rows"]}) == len(updated["rows"])


def test_update_run_accounting(updated):
    rows, before, after = updated["rows"], updated["before"], updated["after"]
    new_runs = after["runs"][after["runs"].run_id > before["runs"].run_id.max()]
    assert list(new_runs.file) == [str(updated["path"])], new_runs   # only the new file was read
    r = new_runs.iloc[0]
    changed = sum(f"{FEED}:{row['case_id']}" in updated["stored_before"] for row in rows)
    assert (r.status, r.rows_read, r.rows_inserted, r.rows_updated, r.rows_merged, r.rows_quarantined) == \
        ("ok", len(rows), len(rows) - changed, changed, 0, 0), r.to_dict()
    _assert_accounting(after["runs"])


def test_update_changes_cases_in_place(updated):
    rows, after, before = updated["rows"], updated["after"], updated["before"]
    reader = _reader(updated["settings"])
    assert reader.rows("SELECT count(*) - count(DISTINCT incident_id) FROM fct_incident")[0][0] == 0
    new = sum(f"{FEED}:{r['case_id']}" not in updated["stored_before"] for r in rows)
    assert after["counts"]["fct_incident"] == before["counts"]["fct_incident"] + new
    for table in ("fct_sensor_reading", "fct_service_case"):
        assert after["checksums"][table] == before["checksums"][table], table
    stored = {i: rest for i, *rest in reader.rows(
        "SELECT incident_id, status, epoch(created_at), epoch(dispatched_at), epoch(closed_at), epoch(updated_at) "
        "FROM fct_incident WHERE incident_id IN (SELECT unnest(?::VARCHAR[]))",
        [[f"{FEED}:{r['case_id']}" for r in rows]])}
    assert len(stored) == len(rows)
    for r in rows:
        expected = [STATUS[r["status"]], *(_local_epoch(r[c]) for c in
                                           ("created_at", "dispatched_at", "closed_at", "updated_at"))]
        assert stored[f"{FEED}:{r['case_id']}"] == expected, r


def test_update_extends_status_history(updated):
    rows, before = updated["rows"], updated["history_before"]
    after = _history(_reader(updated["settings"]), list(before))
    added = 0
    for r in rows:
        incident_id = f"{FEED}:{r['case_id']}"
        if incident_id in updated["stored_before"]:
            assert before[incident_id], f"{incident_id} had a history before the update"
            assert _events(r) - before[incident_id], f"the update of {incident_id} brings no new event"
        else:
            assert not before[incident_id]
        assert after[incident_id] == before[incident_id] | _events(r), incident_id
        added += len(after[incident_id] - before[incident_id])
    counts_before, counts_after = updated["before"]["counts"], updated["after"]["counts"]
    assert counts_after["fct_incident_status"] == counts_before["fct_incident_status"] + added


def test_forced_reload_after_update_keeps_the_newer_versions(updated):
    settings = updated["settings"]
    _etl(settings, "--force")
    again = _state(settings)
    assert again["counts"] == updated["after"]["counts"]
    assert again["checksums"] == updated["after"]["checksums"], "an older version must never replace a newer one"
    new_runs = again["runs"][again["runs"].run_id > updated["after"]["runs"].run_id.max()]
    assert len(new_runs) == _feed_files(updated["before"]) + 1 and (new_runs.rows_inserted == 0).all() and (new_runs.rows_updated == 0).all(), \
        new_runs[["file", "rows_read", "rows_inserted", "rows_updated", "rows_merged"]]
    _assert_accounting(again["runs"])
    # No index enforces these keys (core/schema.py key_index): every load so far kept them unique.
    reader = _reader(settings)
    for table, key in (("fct_incident", "incident_id"), ("fct_incident_status", "incident_id, status, changed_at"),
                       ("fct_sensor_reading", "sensor_id, ts")):
        assert reader.rows(f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
                           )[0][0] == 0, table
        assert reader.rows(f"SELECT count(*) FROM {table}")[0][0] > 0


@pytest.fixture(scope="module")
def late_readings(city, updated):
    """A second readings file: readings older than the loaded ones (new keys, shuffled), plus exact repeats
    of loaded lines and repeats within the file."""
    settings, city_dir = city
    reader = _reader(settings)
    loaded = reader.df("SELECT sensor_id, epoch(ts) AS t, value FROM fct_sensor_reading")
    rng = random.Random(7)
    sensors = sorted(loaded.sensor_id.unique())
    new = {}
    for sensor in rng.sample(sensors, 4):
        mine = loaded[loaded.sensor_id == sensor]
        have = set(mine.t)
        value = float(mine.value.median())
        first, last = min(have), max(have)
        # before the first reading, and hours missing inside the loaded range (gaps, filled late)
        candidates = [first - 3600 * k for k in range(1, 6)]
        candidates += [t for t in range(int(first), int(last), 3600) if t not in have][:5]
        for t in candidates:
            new[(sensor, t)] = value
    assert len(new) >= 20
    lines = [f"{s},{datetime.fromtimestamp(t, TZ).isoformat()},{v},ok" for (s, t), v in new.items()]
    with open(city_dir / "iot" / "readings.csv", encoding="utf-8") as fh:
        header, *source = fh.read().splitlines()
    keys = set(zip(loaded.sensor_id, loaded.t))
    repeats = []
    for line in rng.sample(source, 400):
        sensor, ts, value, status = line.split(",")
        t = datetime.fromisoformat(ts).timestamp()
        if (sensor, t) in keys and status == "ok" and len(repeats) < 30:
            repeats.append(line)
    assert len(repeats) == 30
    within = rng.sample(lines, 5)
    body = lines + repeats + within
    rng.shuffle(body)
    path = city_dir / "iot" / "readings_late.csv"
    path.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    before = _state(settings)
    _etl(settings)
    return dict(settings=settings, new=new, lines=body, path=path, before=before, after=_state(settings))


def test_late_readings_land_in_place(late_readings):
    before, after, new = late_readings["before"], late_readings["after"], late_readings["new"]
    assert after["counts"]["fct_sensor_reading"] == before["counts"]["fct_sensor_reading"] + len(new)
    reader = _reader(late_readings["settings"])
    stored = {(s, t): v for s, t, v in reader.rows("SELECT sensor_id, epoch(ts), value FROM fct_sensor_reading "
                                                   "WHERE sensor_id IN (SELECT unnest(?::VARCHAR[]))",
                                                   [sorted({s for s, _ in new})])}
    for key, value in new.items():
        assert stored.get(key) == pytest.approx(value), key
    assert reader.rows("SELECT count(*) FROM (SELECT sensor_id, ts FROM fct_sensor_reading "
                       "GROUP BY ALL HAVING count(*) > 1)")[0][0] == 0
    for table in FACT_AND_DIM:
        if table != "fct_sensor_reading":
            assert after["checksums"][table] == before["checksums"][table], table


def test_late_readings_run_merges_repeats(late_readings):
    before, after = late_readings["before"], late_readings["after"]
    new_runs = after["runs"][after["runs"].run_id > before["runs"].run_id.max()]
    assert list(new_runs.file) == [str(late_readings["path"])]
    r = new_runs.iloc[0]
    read, inserted = len(late_readings["lines"]), len(late_readings["new"])
    assert (r.status, r.rows_read, r.rows_inserted, r.rows_updated, r.rows_merged, r.rows_quarantined) == \
        ("ok", read, inserted, 0, read - inserted, 0), r.to_dict()
    _assert_accounting(after["runs"])


def test_previous_same_incident_is_kept_through_the_loads(updated):
    """The derived repeat-complaint column (etl/derived.py) after the first load, the forced reload and the later
    export, through the real pipeline: equal to the window over every published incident, and not all empty."""
    reader = _reader(updated["settings"])
    stored = dict(reader.rows("SELECT incident_id, previous_same_at FROM fct_incident"))
    full = dict(reader.rows("""SELECT incident_id, lag(created_at) OVER (PARTITION BY caller_hash, category,
            district_id ORDER BY created_at, incident_id) FROM fct_incident WHERE caller_hash IS NOT NULL"""))
    assert stored == {k: full.get(k) for k in stored}
    assert sum(v is not None for v in stored.values()) > 100


def test_a_file_that_cannot_be_hashed_to_the_end_fails_its_load_clearly(tmp_path, monkeypatch):
    """The hash of a new path is computed by a thread while the file loads; when that read fails (the file moved
    away mid-load), the load fails with the file and the reason, the run log says so, and nothing is merged."""
    import errno

    from etl import jobs, pipeline
    settings, city_dir = make_city(tmp_path)
    path = city_dir / "services" / "service_cases.csv"

    def unreadable(p):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(p))
    monkeypatch.setattr(pipeline, "file_sha256", unreadable)
    config = load_config(settings)
    outcome = jobs.load_one(config, "service_cases", path, report=lambda line: None)
    assert outcome.status == "failed"
    assert outcome.error == (f"{path}: could not be read to the end (No such file or directory); "
                             "expected the file to stay in place while it loads"), outcome.error
    runs = _reader(settings).df("SELECT feed_id, status, error, rows_inserted FROM etl_run WHERE feed_id = 'service_cases'")
    assert runs.status.tolist() == ["failed"] and runs.error.tolist() == [outcome.error], runs
    assert _reader(settings).rows("SELECT count(*) FROM fct_service_case")[0][0] == 0
