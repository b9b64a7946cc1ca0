"""The alarms behind the command-centre wall (query/alarms.py), over tiny hand-made warehouses.

Each test writes a few rows into a real ETL writer database (core.warehouse.writer), publishes a real Parquet
generation (core.warehouse.publish) and reads it through the real query layer with a real flask-caching cache.
Expectations are worked out by hand from the rows written here, boundaries included.
"""
import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask_caching import Cache

from core.errors import ConfigError
from core.settings import load_config
from core.warehouse import publish, writer
from ops import acks
from query import alarms, store
from tests.conftest import ROOT, edit_yaml, run

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=TZ)      # on the 5-minute grid
H, M, S, D = timedelta(hours=1), timedelta(minutes=1), timedelta(seconds=1), timedelta(days=1)
FEEDS = ("hotline_12345", "open311", "sensor_readings", "sensors", "service_cases", "service_halls")

# Limits every test here relies on (written into the test's own alarms.yaml, whatever the shipped defaults are).
ALARMS = {
    "urgent_incident": {"within_hours": 6},
    "sensor_threshold": {"enabled": True},
    "deadline_breach": {"due_within_hours": 2, "overdue_within_hours": 4, "max_per_district": 3},
    "district_spike": {"window_hours": 3, "baseline_days": 4, "min_count": 4, "z_score": 3.0, "ratio": 2.0,
                       "step_minutes": 5, "merge_gap_minutes": 0, "onset_lookback_hours": 12},
    "stale_feed": {"severity": "warning", "critical_after_intervals": 3},
}


# --- a tiny warehouse -------------------------------------------------------------------------------------------

def inc(iid, district, created, *, status="received", priority="normal", due=None, closed=None, lat=30.2, lon=120.1):
    return {"incident_id": iid, "source_key": iid, "category": "road", "status": status, "priority": priority,
            "created_at": created, "due_at": due, "closed_at": closed, "district_id": district, "lat": lat,
            "lon": lon}


def sensor(sid, metric, district="D01", lat=30.3, lon=120.2):
    return {"sensor_id": sid, "metric": metric, "district_id": district, "lat": lat, "lon": lon}


def reading(sid, ts, value, status="ok"):
    return {"sensor_id": sid, "ts": ts, "value": value, "status": status}


def etl_run(run_id, feed, finished, status="ok"):
    started = finished - M if finished else NOW - 10 * D
    return {"run_id": run_id, "feed_id": feed, "file": f"{feed}.csv", "started_at": started,
            "finished_at": finished, "status": status, "rows_read": 1}


def fresh_runs():
    """Every feed loaded one minute before NOW: no stale-feed alarm."""
    return [etl_run(i + 1, f, NOW - M) for i, f in enumerate(FEEDS)]


DISTRICTS = [{"district_id": d, "name_en": d, "name_zh": d, "centroid_lat": 30.0 + i / 10,
              "centroid_lon": 120.0 + i / 10} for i, d in enumerate(("D01", "D02", "D03", "D04"))]


class City:
    def __init__(self, settings: Path):
        self.settings = settings
        self.config = load_config(settings)

    def publish(self, incidents=(), sensors=(), readings=(), runs=None, districts=DISTRICTS) -> str:
        """Replace the warehouse's contents with these rows and publish them as a new generation."""
        tables = {"fct_incident": incidents, "dim_sensor": sensors, "fct_sensor_reading": readings,
                  "etl_run": fresh_runs() if runs is None else runs, "dim_district": districts}
        with writer(self.config.warehouse_dir) as con:
            for table, rows in tables.items():
                con.execute(f"DELETE FROM {table}")
                for row in rows:
                    cols = list(row)
                    con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                [row[c] for c in cols])
            return publish(con, self.config.warehouse_dir)


@pytest.fixture
def city(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    settings = tmp_path / "config" / "settings.yaml"
    edit_yaml(settings, lambda d: d.update(ops={"dir": str(tmp_path / "ops")}))
    (tmp_path / "config" / "alarms.yaml").write_text(json.dumps(ALARMS))
    saved = dict(store._shared)
    c = City(settings)
    store.init(c.config, Cache(Flask(__name__), config={"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 100_000}))
    acks.init(c.config)
    yield c
    store._shared.clear()
    store._shared.update(saved)
    acks._dir = None


def of(kind, now=NOW, scope=None):
    return {a.subject: a for a in alarms.current(now, scope) if a.kind == kind}


# --- urgent incidents -------------------------------------------------------------------------------------------

def test_urgent_incident_fires_within_the_window_and_while_open(city):
    city.publish(incidents=[
        inc("U-edge", "D01", NOW - 6 * H, priority="urgent", lat=30.25, lon=120.15),  # exactly 6 h old: in
        inc("U-old", "D01", NOW - 6 * H - S, priority="urgent"),                     # one second older: out
        inc("U-closed", "D01", NOW - H, priority="urgent", status="closed", closed=NOW - 10 * M),
        inc("U-closed-later", "D02", NOW - H, priority="urgent", status="closed", closed=NOW + H),  # open at NOW
        inc("N-normal", "D01", NOW - H, priority="normal"),
        inc("U-future", "D01", NOW + S, priority="urgent"),                           # after NOW: not yet
        inc("U-now", "D03", NOW, priority="urgent", status="in_progress"),
    ])
    got = of("urgent_incident")
    assert set(got) == {"U-edge", "U-closed-later", "U-now"}
    a = got["U-edge"]
    assert (a.id, a.severity, a.district_id, a.lat, a.lon) == ("urgent:U-edge", "critical", "D01", 30.25, 120.15)
    assert a.since == NOW - 6 * H and a.since.tzinfo is not None
    assert a.values["hours_open"] == 6.0


# --- sensors ----------------------------------------------------------------------------------------------------

SENSORS = [sensor("WL-1", "water_level_m"), sensor("WL-2", "water_level_m", "D02"), sensor("WL-3", "water_level_m"),
           sensor("WL-4", "water_level_m"), sensor("TR-1", "speed_kmh", "D02"), sensor("WL-5", "water_level_m")]


def sensor_readings(extra=()):
    # water_level_m: above, warn 2.5, alarm 3.0; speed_kmh: below, warn 25, alarm 15; offline after 3 h.
    return [
        reading("WL-1", NOW - 50 * M, 2.0),            # normal: the run starts after it
        reading("WL-1", NOW - 40 * M, 2.6),            # warning  <- onset
        reading("WL-1", NOW - 30 * M, 3.1),            # alarm
        reading("WL-1", NOW - 20 * M, None, "fault"),  # fault: not normal, the run goes on
        reading("WL-1", NOW - 10 * M, 3.0),            # exactly the alarm limit: alarm
        reading("WL-2", NOW - 20 * M, 2.7),            # no normal reading ever: onset = first reading
        reading("WL-2", NOW - 10 * M, 2.5),            # exactly the warn limit: warning
        reading("WL-3", NOW - 20 * M, 3.5),
        reading("WL-3", NOW - 10 * M, 2.49),           # just under warn: normal, no alarm
        reading("WL-4", NOW - 3 * H - S, 3.5),         # offline: older than offline_after_hours
        reading("TR-1", NOW - 5 * M, 15.0),            # below-direction metric exactly at its alarm limit
        reading("WL-5", NOW - 5 * M, 1.0),
        reading("WL-5", NOW + 5 * M, 3.5),             # after NOW: not seen yet
        *extra,
    ]


def test_sensor_threshold_states_onsets_and_limits(city):
    city.publish(sensors=SENSORS, readings=sensor_readings())
    got = of("sensor_threshold")
    assert set(got) == {"WL-1", "WL-2", "TR-1"}
    wl1, wl2, tr1 = got["WL-1"], got["WL-2"], got["TR-1"]
    assert (wl1.severity, wl1.since) == ("critical", NOW - 40 * M)
    assert wl1.values["value"] == 3.0 and wl1.values["limit"] == 3.0 and wl1.values["metric"] == "water_level_m"
    assert wl1.id == "sensor:WL-1:critical:2026-11-20T06:20:00Z"
    assert (wl2.severity, wl2.since, wl2.values["limit"], wl2.district_id) == ("warning", NOW - 20 * M, 2.5, "D02")
    assert (tr1.severity, tr1.since, tr1.values["limit"]) == ("critical", NOW - 5 * M, 15.0)


def test_sensor_id_stable_while_the_run_lasts_and_new_when_it_restarts_or_escalates(city):
    city.publish(sensors=SENSORS, readings=sensor_readings())
    first = of("sensor_threshold")
    assert of("sensor_threshold")["WL-1"].id == first["WL-1"].id                   # a second call
    # A new generation: WL-1 still in alarm with a newer reading, WL-2 escalates from warning to alarm.
    city.publish(sensors=SENSORS, readings=sensor_readings([reading("WL-1", NOW + M, 3.4),
                                                            reading("WL-2", NOW + M, 3.2)]))
    later = of("sensor_threshold", NOW + 2 * M)
    assert later["WL-1"].id == first["WL-1"].id and later["WL-1"].values["value"] == 3.4
    assert later["WL-2"].id == "sensor:WL-2:critical:2026-11-20T06:40:00Z" != first["WL-2"].id
    assert later["WL-2"].since == first["WL-2"].since
    # WL-1 back to normal, then in alarm again: a new situation, a new id.
    city.publish(sensors=SENSORS, readings=sensor_readings([reading("WL-1", NOW + M, 1.0),
                                                            reading("WL-1", NOW + 2 * M, 3.3)]))
    again = of("sensor_threshold", NOW + 3 * M)
    assert again["WL-1"].since == NOW + 2 * M and again["WL-1"].id != first["WL-1"].id


# --- deadlines --------------------------------------------------------------------------------------------------

def test_deadline_breach_windows_and_severities(city):
    created = NOW - 2 * D
    city.publish(incidents=[
        inc("due-edge", "D01", created, due=NOW + 2 * H),            # due in exactly 2 h: warning
        inc("due-later", "D01", created, due=NOW + 2 * H + S),       # one second later: nothing
        inc("due-now", "D02", created, due=NOW),                     # due this instant: not yet overdue
        inc("late-1s", "D02", created, due=NOW - S),                 # overdue by a second: critical
        inc("late-edge", "D03", created, due=NOW - 4 * H),           # overdue by exactly 4 h: critical
        inc("late-old", "D03", created, due=NOW - 4 * H - S),        # older breach: nothing
        inc("late-closed", "D03", created, due=NOW - H, status="closed", closed=NOW - 30 * M),
        inc("no-due", "D03", created),
    ])
    got = of("deadline_breach")
    assert {k: v.severity for k, v in got.items()} == {
        "due-edge": "warning", "due-now": "warning", "late-1s": "critical", "late-edge": "critical"}
    assert got["due-edge"].since == NOW and got["due-edge"].values["hours_to_due"] == 2.0
    assert got["late-1s"].since == NOW - S
    assert got["late-edge"].id == "deadline:late-edge:overdue:2026-11-20T03:00:00Z"
    assert got["due-now"].id == "deadline:due-now:due_soon:2026-11-20T07:00:00Z"


def test_deadline_breach_is_bounded_per_district(city):
    created = NOW - 2 * D
    late = [inc(f"late-{k}", "D01", created, due=NOW - k * 30 * M) for k in range(1, 6)]   # 30 .. 150 min overdue
    soon = [inc(f"soon-{k}", "D01", created, due=NOW + k * 10 * M) for k in range(1, 3)]
    other = [inc("late-D02", "D02", created, due=NOW - H)]
    city.publish(incidents=late + soon + other)
    got = of("deadline_breach")
    # At most 3 in D01: critical first, the most recently breached first; D02 keeps its own.
    assert set(got) == {"late-1", "late-2", "late-3", "late-D02"}
    assert got["late-1"].values["in_district"] == 7 and got["late-1"].values["shown_in_district"] == 3
    # With fewer breaches than the bound, the soonest-due warnings fill it.
    city.publish(incidents=late[:1] + soon + other)
    assert set(of("deadline_breach")) == {"late-1", "soon-1", "soon-2", "late-D02"}


# --- district spikes --------------------------------------------------------------------------------------------

def baseline(district, per_day, days=4, offsets=(2 * H, H)):
    """per_day[d-1] incidents on each previous day d, inside the window's hours (NOW - d days - offset)."""
    rows = []
    for d in range(1, days + 1):
        for k in range(per_day[d - 1]):
            rows.append(inc(f"{district}-b{d}-{k}", district, NOW - d * D - offsets[k % len(offsets)] - k * M))
    return rows


def spike_rows(current_d01=4):
    times = [NOW - 2 * H, NOW - 90 * M, NOW - 60 * M, NOW - 20 * M][:current_d01]
    return [
        # D01: 2 a day in the baseline (mean 2, sd 0): 4 now is ratio 2.0 (fires), z (4-2)/1 = 2.
        *baseline("D01", [2, 2, 2, 2]),
        *(inc(f"D01-now-{k}", "D01", t) for k, t in enumerate(times)),
        # D02: no baseline, 3 now: below min_count 4.
        *(inc(f"D02-now-{k}", "D02", NOW - k * 10 * M) for k in range(3)),
        # D03: baseline 2 a day, 3 inside the window and one exactly at its open end (NOW - 3 h): count 3.
        *baseline("D03", [2, 2, 2, 2]),
        *(inc(f"D03-now-{k}", "D03", NOW - (k + 1) * 10 * M) for k in range(3)),
        inc("D03-edge", "D03", NOW - 3 * H),
    ]


def test_district_spike_fires_on_ratio_with_its_onset(city):
    city.publish(incidents=spike_rows(), districts=DISTRICTS)
    got = of("district_spike")
    assert set(got) == {"D01"}
    a = got["D01"]
    assert a.values["count"] == 4 and a.values["baseline"] == 2.0 and a.values["ratio"] == 2.0
    assert a.values["z"] == 2.0
    # The 4th incident (NOW - 20 min) made it a spike: the first grid point where it held.
    assert a.since == NOW - 20 * M and a.id == "spike:D01:2026-11-20T06:40:00Z"
    assert (a.lat, a.lon, a.district_id, a.severity) == (30.0, 120.0, "D01", "warning")


def test_district_spike_boundaries(city):
    city.publish(incidents=spike_rows(current_d01=3))
    assert of("district_spike") == {}, "3 against a baseline of 2 (ratio 1.5, z 1) is no spike"
    rows = spike_rows(current_d01=3)
    rows[-1] = inc("D03-edge", "D03", NOW - 3 * H + S)        # now inside the window: D03 counts 4
    city.publish(incidents=rows)
    assert set(of("district_spike")) == {"D03"}


def reconfigure(city, **spike):
    edit_yaml(city.settings.parent / "alarms.yaml", lambda d: d["district_spike"].update(spike))
    city.config = load_config(city.settings)
    store.init(city.config)


def test_district_spike_on_z_score_alone(city):
    reconfigure(city, ratio=None)
    # Baseline 1, 3, 1, 3: mean 2, sd 1. Now 5: z = 3.0 (fires); 4: z = 2 (does not), though the ratio is 2.
    rows = baseline("D04", [1, 3, 1, 3], offsets=(2 * H, H, 30 * M))
    now_rows = [inc(f"D04-now-{k}", "D04", NOW - (k + 1) * 15 * M) for k in range(5)]
    city.publish(incidents=rows + now_rows)
    got = of("district_spike")
    assert set(got) == {"D04"} and got["D04"].values["z"] == 3.0
    city.publish(incidents=rows + now_rows[:4])
    assert of("district_spike") == {}


def test_district_spike_id_stable_over_time_and_generations(city):
    city.publish(incidents=spike_rows())
    first = of("district_spike")["D01"]
    # 7 minutes later (next grid point), in a new generation with an unrelated incident: the same spike.
    city.publish(incidents=spike_rows() + [inc("other", "D04", NOW + M)])
    later = of("district_spike", NOW + 7 * M)["D01"]
    assert later.id == first.id and later.since == first.since
    # Once the oldest of the four leaves the window (NOW - 2 h + 3 h), the spike is over.
    assert "D01" in of("district_spike", NOW + 59 * M)
    assert "D01" not in of("district_spike", NOW + H)


@pytest.mark.parametrize("merge_gap,onset", [(20, NOW - 20 * M), (15, NOW + 80 * M)])
def test_district_spike_lull_within_merge_gap_keeps_the_onset(city, merge_gap, onset):
    reconfigure(city, merge_gap_minutes=merge_gap)
    # D01's spike ends at NOW + 1 h (NOW - 2 h leaves the window) and comes back at NOW + 80 min with a new incident
    # (4 in the window against a baseline of 1): grid points NOW + 60..75 min, a 20-minute lull, are not spiking.
    city.publish(incidents=spike_rows() + [inc("D01-back", "D01", NOW + 80 * M)])
    assert "D01" not in of("district_spike", NOW + 75 * M)
    back = of("district_spike", NOW + 85 * M)["D01"]
    assert back.values["count"] == 4 and back.values["baseline"] == 1.0
    assert back.since == onset


# --- stale feeds ------------------------------------------------------------------------------------------------

def test_stale_feed_intervals_severity_and_never_loaded(city):
    runs = [
        etl_run(1, "hotline_12345", NOW - 1440 * M),            # exactly its interval (1440 min): fine
        etl_run(2, "open311", NOW - 1440 * M - S),              # one second more: stale, warning
        etl_run(3, "sensor_readings", NOW - 181 * M),           # 60-minute feed, silent > 3 intervals: critical
        etl_run(4, "sensors", NOW - H),
        etl_run(5, "service_cases", None, status="failed"),     # never loaded ok
        etl_run(7, "service_halls", NOW - D),                   # a 30-day feed: one day is fine
    ]
    runs[4]["started_at"] = NOW - 2 * D                          # the warehouse's first run
    city.publish(runs=runs)
    got = of("stale_feed")
    assert {k: v.severity for k, v in got.items()} == {
        "open311": "warning", "sensor_readings": "critical", "service_cases": "warning"}
    assert got["open311"].since == NOW - S and got["open311"].id == "feed:open311:warning:2026-11-19T06:59:59Z"
    assert got["sensor_readings"].since == NOW - M
    assert got["service_cases"].since == NOW - 2 * D and got["service_cases"].id == "feed:service_cases:warning:never"
    assert all(a.district_id is None and a.lat is None for a in got.values())
    # A failed run later does not reset the silence; a successful one ends it.
    city.publish(runs=runs + [etl_run(6, "open311", NOW - 10 * M, status="failed")])
    assert of("stale_feed")["open311"].id == got["open311"].id
    city.publish(runs=runs + [etl_run(6, "open311", NOW - 10 * M)])
    assert "open311" not in of("stale_feed")


# --- everything together ----------------------------------------------------------------------------------------

def situation():
    return dict(
        incidents=[inc("U-1", "D01", NOW - H, priority="urgent"), inc("U-2", "D02", NOW - 2 * H, priority="urgent"),
                   inc("late-1", "D01", NOW - D, due=NOW - H), inc("soon-2", "D02", NOW - D, due=NOW + H),
                   *spike_rows()],
        sensors=SENSORS, readings=sensor_readings(),
        runs=[etl_run(1, "hotline_12345", NOW - 1441 * M)] + fresh_runs()[1:])


def test_current_sorts_critical_first_then_newest(city):
    city.publish(**situation())
    got = alarms.current(NOW)
    assert {a.kind for a in got} == set(alarms.KINDS)
    severities = [a.severity for a in got]
    assert severities == sorted(severities, key=["critical", "warning"].index)
    for sev in ("critical", "warning"):
        since = [a.since for a in got if a.severity == sev]
        assert since == sorted(since, reverse=True)


def test_scope_keeps_only_its_districts(city):
    city.publish(**situation())
    everything = alarms.current(NOW)
    d02 = alarms.current(NOW, ("D02",))
    district_bound = [a for a in everything if a.kind != "stale_feed"]
    assert {a.district_id for a in district_bound} >= {"D01", "D02"}
    assert {a.id for a in d02} == {a.id for a in district_bound if a.district_id == "D02"} | {
        a.id for a in everything if a.kind == "stale_feed"}
    assert {a.kind for a in d02} >= {"urgent_incident", "sensor_threshold", "deadline_breach", "stale_feed"}
    assert [a for a in alarms.current(NOW, ("D03",)) if a.kind != "stale_feed"] == []


SUBPROCESS = ("import json; from datetime import datetime; from core.settings import load_config; "
              "from query import alarms, store; store.init(load_config()); "
              "print(json.dumps([a.id for a in alarms.current(datetime.fromisoformat('{now}'))]))")


def test_ids_are_the_same_in_another_process_and_a_new_generation(city):
    city.publish(**situation())
    here = [a.id for a in alarms.current(NOW)]
    assert here == [a.id for a in alarms.current(NOW)]
    out = run("-c", SUBPROCESS.format(now=NOW.isoformat()), env={**os.environ, "CITYOPS_CONFIG": str(city.settings)})
    assert json.loads(out.stdout) == here
    generation = city.publish(**situation())        # the same rows, republished
    assert store.reader().current() == generation
    assert [a.id for a in alarms.current(NOW)] == here


def test_cached_results_follow_a_new_generation(city):
    city.publish(**situation())
    assert "U-1" in of("urgent_incident")
    changed = situation()
    changed["incidents"][0] = inc("U-1", "D01", NOW - H, priority="urgent", status="closed", closed=NOW - M)
    city.publish(**changed)
    assert "U-1" not in of("urgent_incident")


def test_an_acknowledged_alarm_stays_acknowledged_while_its_situation_lasts(city):
    city.publish(**situation())
    wl1 = of("sensor_threshold")["WL-1"]
    acks.acknowledge(wl1.id, "operator-7", NOW + M, "crew on the way")
    # Next refresh, next generation with a newer alarm reading: still acknowledged.
    later = situation()
    later["readings"] = sensor_readings([reading("WL-1", NOW + 2 * M, 3.6)])
    city.publish(**later)
    again = of("sensor_threshold", NOW + 3 * M)["WL-1"]
    assert acks.acknowledged([again.id])[again.id]["user"] == "operator-7"
    # Back to normal and in alarm again: a new alarm, not acknowledged.
    later["readings"] = sensor_readings([reading("WL-1", NOW + 2 * M, 1.0), reading("WL-1", NOW + 4 * M, 3.6)])
    city.publish(**later)
    new = of("sensor_threshold", NOW + 5 * M)["WL-1"]
    assert new.id != wl1.id and acks.acknowledged([new.id]) == {}


def test_nothing_published_means_no_alarms(city):
    assert alarms.current(NOW) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        alarms.current(NOW.replace(tzinfo=None))


# --- configuration ----------------------------------------------------------------------------------------------

def test_shipped_alarms_config_is_loaded_with_the_settings():
    config = load_config()
    assert config.alarms.deadline_breach.max_per_district >= 1
    assert config.alarms.district_spike.z_score is not None or config.alarms.district_spike.ratio is not None
    assert config.settings.ops.dir == Path("var/ops")


def test_bad_alarms_value_names_file_key_value_and_expectation(config_copy):
    path = config_copy.parent / "alarms.yaml"
    edit_yaml(path, lambda d: d["deadline_breach"].update(max_per_district=0))
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    message = str(info.value)
    assert str(path) in message and "key 'deadline_breach.max_per_district'" in message
    assert "got 0" in message and "greater than or equal to 1" in message


def test_alarms_config_needs_a_spike_criterion_and_known_keys(config_copy):
    path = config_copy.parent / "alarms.yaml"
    edit_yaml(path, lambda d: d["district_spike"].update(z_score=None, ratio=None))
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    assert "key 'district_spike'" in str(info.value) and "z_score" in str(info.value)
    edit_yaml(path, lambda d: d["district_spike"].update(z_score=3, zscore=3))
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    assert "key 'district_spike.zscore'" in str(info.value)


def test_missing_alarms_file_means_defaults_and_settings_without_ops_validate(config_copy):
    (config_copy.parent / "alarms.yaml").unlink()
    edit_yaml(config_copy, lambda d: d.pop("ops"))
    config = load_config(config_copy)
    assert config.alarms.urgent_incident.within_hours == 6
    assert config.settings.ops.dir == Path("var/ops")
