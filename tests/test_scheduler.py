"""The worker (`python -m etl watch`): per-feed schedules from the feed files.

- The timetable on its own: daily times in the city's timezone across daylight-saving changes, fixed intervals
  that skip ticks a long load overran, retries while the writer is busy.
- Schedules are validated at start-up with the file, the key and what was expected.
- A real `python -m etl watch` process against a small demo city: a later hotline export dropped into the watched
  folder is loaded and published on the feed's next tick; a feed whose daily time has not come is not loaded;
  an idle worker publishes nothing and does not hold the writer; while another process holds the writer the
  due feed waits and is loaded once the writer is free; SIGTERM stops the worker cleanly.
"""
import csv
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from core.errors import ConfigError
from core.settings import load_config
from core.warehouse import Reader
from etl.scheduler import Timetable, next_daily
from tests.conftest import PYTHON, ROOT, edit_yaml, make_city, run

NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")


# --- the timetable ------------------------------------------------------------------------------------------

def test_daily_times_are_local_times():
    after = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)             # 09:00 in Shanghai
    assert next_daily(["02:00", "14:30"], after, SHANGHAI) == datetime(2026, 11, 20, 6, 30, tzinfo=UTC)
    assert next_daily(["02:00"], after, SHANGHAI) == datetime(2026, 11, 20, 18, 0, tzinfo=UTC)   # 02:00 tomorrow
    exactly = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)
    assert next_daily(["14:30"], exactly, SHANGHAI) == exactly + timedelta(days=1), "strictly after"


def test_daily_times_across_daylight_saving_changes():
    # 2026-03-08: New York's clocks jump from 02:00 to 03:00; 02:30 does not exist that day and runs at 03:30 EDT.
    before_jump = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)          # 00:00 EST
    assert next_daily(["02:30"], before_jump, NEW_YORK) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert next_daily(["02:30"], datetime(2026, 3, 8, 7, 30, tzinfo=UTC), NEW_YORK) == \
        datetime(2026, 3, 9, 6, 30, tzinfo=UTC)                    # the next day, EDT
    # 2026-11-01: 01:30 happens twice; it runs once, at the first (EDT) one, then the next day.
    first = next_daily(["01:30"], datetime(2026, 11, 1, 4, 0, tzinfo=UTC), NEW_YORK)
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert next_daily(["01:30"], first, NEW_YORK) == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)


def _timetable_config(config_copy):
    feeds = config_copy.parent / "feeds"
    edit_yaml(feeds / "hotline_12345.yaml", lambda d: d.update(schedule={"every_minutes": 10}))
    edit_yaml(feeds / "sensor_readings.yaml", lambda d: d.update(schedule={"every_seconds": 30}))
    edit_yaml(feeds / "service_cases.yaml", lambda d: d.update(schedule={"at": ["02:00", "14:30"]}))
    edit_yaml(config_copy, lambda d: d["etl"].update(schedule_seconds=300))
    return load_config(config_copy)


def test_timetable(config_copy):
    config = _timetable_config(config_copy)
    start = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)              # 09:00 in the city (Asia/Shanghai)
    table = Timetable(config, start)
    assert table.due(start) == ["hotline_12345", "open311", "sensor_readings", "sensors", "service_halls"]   # every_*: at start
    assert table.next["service_cases"] == datetime(2026, 11, 20, 6, 30, tzinfo=UTC)         # 14:30 local
    table.done(table.due(start), start + timedelta(seconds=3))
    assert table.next["hotline_12345"] == start + timedelta(minutes=10)
    assert table.next["sensor_readings"] == start + timedelta(seconds=30)
    assert table.next["open311"] == start + timedelta(seconds=300)                          # etl.schedule_seconds
    assert table.due(start + timedelta(seconds=29)) == []
    assert table.seconds_until_next(start + timedelta(seconds=10)) == 20
    # a load that overran two ticks: the next tick is the first one still ahead, missed ones are not queued
    table.done(["sensor_readings"], start + timedelta(seconds=95))
    assert table.next["sensor_readings"] == start + timedelta(seconds=120)
    # the writer was busy: still due, a little later
    table.retry(["hotline_12345"], start + timedelta(minutes=10, seconds=5))
    assert "hotline_12345" not in table.due(start + timedelta(minutes=10, seconds=4))
    assert "hotline_12345" in table.due(start + timedelta(minutes=10, seconds=5))
    table.done(["service_cases"], datetime(2026, 11, 20, 6, 30, 2, tzinfo=UTC))
    assert table.next["service_cases"] == datetime(2026, 11, 20, 18, 0, tzinfo=UTC)         # 02:00 tomorrow


@pytest.mark.parametrize("schedule, words", [
    ({"at": [870]}, ["quoted 'HH:MM'", "870", '"14:30"']),             # YAML's reading of an unquoted 14:30
    ({"at": ["24:00"]}, ["'24:00'", "00:00 to 23:59"]),
    ({"at": ["02:00", "2:00"]}, ["'02:00' is listed 2 times"]),
    ({"at": "02:00"}, ["a list of one or more 'HH:MM' times"]),
    ({"every_minutes": 5, "at": ["02:00"]}, ["key 'schedule'", "exactly one of", "'every_minutes' and 'at'"]),
    ({"every_minutes": 0.5}, ["key 'schedule.every_minutes'", "every_seconds"]),
    ({"every_seconds": 0}, ["key 'schedule.every_seconds'", "greater than or equal to 1"]),
    ({"daily": ["02:00"]}, ["key 'schedule.daily'"]),
])
def test_bad_schedules_are_refused_with_file_and_key(config_copy, schedule, words):
    feed = config_copy.parent / "feeds" / "hotline_12345.yaml"
    edit_yaml(feed, lambda d: d.update(schedule=schedule))
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    message = str(info.value)
    assert str(feed) in message and "key 'schedule" in message, message
    for word in words:
        assert word in message, message


def test_unquoted_time_in_a_feed_file(config_copy):
    """The real YAML path: `at: [14:30]` written by hand."""
    feed = config_copy.parent / "feeds" / "service_cases.yaml"
    feed.write_text(feed.read_text(encoding="utf-8") + "schedule: {at: [14:30]}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    assert "key 'schedule.at'" in str(info.value) and 'write "14:30"' in str(info.value)


# --- a real worker ------------------------------------------------------------------------------------------

HOTLINE_EVERY = 2          # seconds
DEFAULT_EVERY = 5          # etl.schedule_seconds (its minimum)
UPDATE_HOURS = 6
SETTLE = 2                 # etl.settle_seconds: more than the pauses between pieces below, with room


def _reader(settings) -> Reader:
    config = load_config(settings)
    return Reader(config.warehouse_dir, config.settings.city.timezone)


def _wait_for(condition, timeout: float, step: float = 0.1):
    """Poll until condition() is truthy; returns (value, seconds waited)."""
    started = time.monotonic()
    while True:
        value = condition()
        if value:
            return value, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)


def _runs(settings, file_name):
    reader = _reader(settings)
    if reader.current() is None:
        return []
    return reader.rows("SELECT status, rows_read, rows_inserted, rows_updated, rows_merged, rows_quarantined "
                       "FROM etl_run WHERE file LIKE ?", ["%/" + file_name])


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    root = tmp_path_factory.mktemp("watch")
    settings, city = make_city(root)
    end = datetime.fromisoformat(json.loads((city / "manifest.json").read_text(encoding="utf-8"))["end"])
    not_yet = (datetime.now(SHANGHAI) + timedelta(hours=12)).strftime("%H:%M")

    def configure(d):
        # the export dropped later covers (end, end + 6 h]: time has moved on (see test_etl_incremental.py)
        d["clock"]["as_of"] = (end + timedelta(hours=UPDATE_HOURS)).isoformat()
        d["etl"]["schedule_seconds"] = DEFAULT_EVERY
        d["etl"]["settle_seconds"] = SETTLE
    edit_yaml(settings, configure)
    feeds = settings.parent / "feeds"
    edit_yaml(feeds / "hotline_12345.yaml", lambda d: d.update(schedule={"every_seconds": HOTLINE_EVERY}))
    edit_yaml(feeds / "service_cases.yaml", lambda d: d.update(schedule={"at": [not_yet]}))
    for path in city.rglob("*"):       # delivered a minute ago, not still being written (etl.settle_seconds)
        os.utime(path, (time.time() - 60, time.time() - 60))
    log_path = root / "worker.log"
    log = open(log_path, "w", encoding="utf-8")
    process = subprocess.Popen([PYTHON, "-m", "etl", "--config", str(settings), "watch"], cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    state = dict(settings=settings, city=city, end=end, not_yet=not_yet, process=process, root=root,
                 log=lambda: log_path.read_text(encoding="utf-8"))
    try:
        _, state["first_load_s"] = _wait_for(lambda: _runs(settings, "hotline_12345.csv"), timeout=90)
        yield state
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def test_worker_loads_what_is_due_at_start(worker):
    settings = worker["settings"]
    reader = _reader(settings)
    loaded = {feed for (feed,) in reader.rows("SELECT DISTINCT feed_id FROM etl_run")}
    assert loaded == {"boundaries", "hotline_12345", "open311", "sensors", "sensor_readings", "service_halls"}, loaded
    assert f"service_cases daily at {worker['not_yet']} (Asia/Shanghai)" in worker["log"]()
    assert f"hotline_12345 every {HOTLINE_EVERY} s" in worker["log"]()


def test_dropped_file_is_loaded_and_published_on_the_next_tick(worker):
    settings, city = worker["settings"], worker["city"]
    reader = _reader(settings)
    generation = reader.current()
    staged = worker["root"] / "hotline_12345_update.csv"           # written outside the folder, then moved in
    run("-m", "demo_city", "update", "--city", str(city), "--out", str(staged), "--hours", str(UPDATE_HOURS))
    with open(staged, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = [f"hotline_12345:{r['case_id']}" for r in rows]
    stored_before = reader.rows("SELECT count(*) FROM fct_incident WHERE incident_id IN "
                                "(SELECT unnest(?::VARCHAR[]))", [ids])[0][0]
    assert 0 < stored_before < len(ids), "the export changes known cases and brings new ones"
    os.replace(staged, city / "incidents" / "hotline_12345_update.csv")
    runs, waited = _wait_for(lambda: _runs(settings, "hotline_12345_update.csv"), timeout=HOTLINE_EVERY + 20)
    print(f"\ndropped file published after {waited:.2f} s (hotline every {HOTLINE_EVERY} s)")
    assert waited <= HOTLINE_EVERY + 10
    assert runs == [("ok", len(rows), len(rows) - stored_before, stored_before, 0, 0)], runs
    assert reader.current() != generation
    assert reader.rows("SELECT count(*) FROM fct_incident WHERE incident_id IN (SELECT unnest(?::VARCHAR[]))",
                       [ids])[0][0] == len(ids)


def test_a_feed_not_yet_due_is_not_loaded(worker):
    reader = _reader(worker["settings"])
    assert reader.rows("SELECT count(*) FROM etl_run WHERE feed_id = 'service_cases'")[0][0] == 0
    assert reader.rows("SELECT count(*) FROM fct_service_case")[0][0] == 0
    assert (worker["city"] / "services" / "service_cases.csv").stat().st_size > 0


def test_an_idle_worker_publishes_nothing_and_leaves_the_writer_free(worker):
    settings = worker["settings"]
    reader = _reader(settings)
    generation, runs = reader.current(), reader.rows("SELECT count(*) FROM etl_run")[0][0]
    deadline = time.monotonic() + DEFAULT_EVERY + 1
    while time.monotonic() < deadline:      # the writer is free between ticks and during idle ones
        con = duckdb.connect(str(load_config(settings).warehouse_dir / "etl.duckdb"))
        con.close()
        time.sleep(0.3)
    assert reader.current() == generation and reader.rows("SELECT count(*) FROM etl_run")[0][0] == runs
    assert "unchanged" not in worker["log"]()


def _late_readings(city, end, known, hours=3) -> list[str]:
    """Readings after the feed's end (and before the clock) for four known sensors, at their last values."""
    last = {}
    with open(city / "iot" / "readings.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["status"] == "ok" and row["value"] and row["sensor_id"] in known:
                last[row["sensor_id"]] = row["value"]
    sensors = sorted(last)[:4]
    return [f"{s},{(end + timedelta(hours=h)).isoformat()},{last[s]},ok" for s in sensors for h in range(1, hours + 1)]


def test_a_busy_writer_delays_the_due_feed_until_it_is_free(worker):
    settings, city = worker["settings"], worker["city"]
    reader = _reader(settings)
    known = {s for (s,) in reader.rows("SELECT sensor_id FROM dim_sensor")}
    lines = _late_readings(city, worker["end"], known)
    staged = worker["root"] / "readings_late.csv"
    staged.write_text("sensor_id,ts,value,status\n" + "\n".join(lines) + "\n", encoding="utf-8")
    holder = duckdb.connect(str(load_config(settings).warehouse_dir / "etl.duckdb"))   # another writer
    try:
        generation = reader.current()
        busy = worker["log"]().count("held by another ETL process")
        os.replace(staged, city / "iot" / "readings_late.csv")
        _wait_for(lambda: worker["log"]().count("held by another ETL process") > busy, timeout=DEFAULT_EVERY + 10)
        time.sleep(1)
        assert _runs(settings, "readings_late.csv") == [] and reader.current() == generation
    finally:
        holder.close()
        released = time.monotonic()
    runs, _ = _wait_for(lambda: _runs(settings, "readings_late.csv"), timeout=30)
    waited = time.monotonic() - released
    print(f"\nloaded {waited:.2f} s after the writer was released")
    assert runs == [("ok", len(lines), len(lines), 0, 0, 0)], runs
    assert waited <= DEFAULT_EVERY + 10


def test_a_file_written_in_place_is_loaded_once_complete(worker):
    """An export written straight into the watched folder, a piece every 0.3 s for longer than three ticks: the
    worker waits until it has not changed for etl.settle_seconds, then loads it once, whole. Before, a tick during
    the writing loaded the rows written so far and quarantined the cut last line."""
    settings, city = worker["settings"], worker["city"]
    staged = worker["root"] / "hotline_12345_inplace.csv"
    run("-m", "demo_city", "update", "--city", str(city), "--out", str(staged), "--hours", str(UPDATE_HOURS))
    data = staged.read_bytes()
    data = data[:data.rindex(b"\n", 0, len(data) - 1) + 1]          # a row fewer: not the update file again
    rows = data.count(b"\n") - 1
    target = city / "incidents" / "hotline_12345_inplace.csv"
    pieces = 24
    with open(target, "wb") as fh:
        for i in range(pieces):                                          # cut anywhere, mid-line too
            fh.write(data[len(data) * i // pieces:len(data) * (i + 1) // pieces])
            fh.flush()
            time.sleep(0.3)
            assert _runs(settings, target.name) == [], f"loaded after {i + 1} of {pieces} pieces"
    runs, waited = _wait_for(lambda: _runs(settings, target.name), timeout=SETTLE + 20)
    print(f"\nwritten in place: loaded {waited:.2f} s after the last piece")
    assert runs == [("ok", rows, 0, runs[0][3], rows - runs[0][3], 0)], runs
    assert f"modified in the last {SETTLE} s, loaded once settled" in worker["log"]()


def test_sigterm_stops_the_worker(worker):
    process = worker["process"]
    assert process.poll() is None, worker["log"]()
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert worker["log"]().rstrip().endswith("stopped")
