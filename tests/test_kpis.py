"""KPIs for district leaders (config/kpis/, core/kpis.py, query/kpis.py), over tiny hand-made warehouses.

Each test writes a few rows into a real ETL writer database (core.warehouse.writer), publishes a real Parquet
generation (core.warehouse.publish) and reads it through the real query layer with a real flask-caching cache, as
tests/test_alarms.py does. The KPI definitions are the shipped files. Every expected figure is worked out by hand in
the comments beside the rows, boundaries included.

Unless a test says otherwise: NOW = Friday 2026-11-20 15:00 (Asia/Shanghai) and the period is the month, so
  current    [2026-11-01 00:00, 2026-11-20 15:00)   (November to date)
  previous   [2026-10-01 00:00, 2026-10-20 15:00)   (October, cut at the same offset: like for like)
  last year  [2025-11-01 00:00, 2025-11-20 15:00)
and states (closed, answered, overdue, decided) are judged at each window's end.
"""
import json
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from flask import Flask
from flask_caching import Cache

from core import kpis as defs
from core.errors import ConfigError
from core.settings import load_config
from core.warehouse import NoData, publish, writer
from etl.derived import refresh_previous_same
from query import kpis, store
from tests.conftest import ROOT, edit_yaml

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=TZ)
H, M, S, D = timedelta(hours=1), timedelta(minutes=1), timedelta(seconds=1), timedelta(days=1)
DAYS = 19.625                                # 1 Nov 00:00 to 20 Nov 15:00
SHIPPED = {"incident_volume", "response_rate", "resolution_rate", "satisfaction_rate", "on_time_closure_rate",
           "overdue_open", "median_hours_to_close", "p90_hours_to_close", "repeat_complaints", "online_service_rate",
           "decided_within_deadline", "good_rating_share", "bad_rating_share", "sensor_availability", "alarm_count",
           "city_score"}


def t(y, mo, d, h=0, mi=0, s=0):
    return datetime(y, mo, d, h, mi, s, tzinfo=TZ)


def nov(d, h=0, mi=0, s=0):
    return t(2026, 11, d, h, mi, s)


def oct_(d, h=0, mi=0, s=0):
    return t(2026, 10, d, h, mi, s)


def ly(d, h=0, mi=0, s=0):
    return t(2025, 11, d, h, mi, s)


# --- a tiny warehouse -------------------------------------------------------------------------------------------

def inc(iid, district, created, *, closed=None, status=None, due=None, dispatched=None, sat=None, caller=None,
        category="road"):
    return {"incident_id": iid, "source_key": iid, "category": category,
            "status": status or ("closed" if closed else "received"), "priority": "normal",
            "created_at": created, "dispatched_at": dispatched, "closed_at": closed, "due_at": due,
            "satisfaction": sat, "caller_hash": caller, "district_id": district}


def case(cid, district, submitted, *, channel="online", deadline=None, decided=None, outcome=None, rating=None):
    return {"case_id": cid, "channel": channel, "district_id": district, "submitted_at": submitted,
            "deadline_at": deadline, "decided_at": decided,
            "outcome": outcome or ("approved" if decided else None), "rating": rating}


def sensor(sid, district, metric="water_level_m", installed=t(2020, 1, 1)):
    return {"sensor_id": sid, "metric": metric, "district_id": district, "installed_at": installed}


def reading(sid, ts, value=1.0, status="ok"):
    return {"sensor_id": sid, "ts": ts, "value": value, "status": status}


DISTRICTS = [{"district_id": d, "name_en": f"District {d}", "name_zh": f"{d}区"} for d in ("D01", "D02", "D03")]


class City:
    def __init__(self, settings: Path):
        self.settings = settings
        self.config = load_config(settings)

    def publish(self, incidents=(), cases=(), sensors=(), readings=(), districts=DISTRICTS) -> str:
        """Replace the warehouse's contents with these rows and publish them as a new generation."""
        tables = {"fct_incident": incidents, "fct_service_case": cases, "dim_sensor": sensors,
                  "fct_sensor_reading": readings, "dim_district": districts}
        with writer(self.config.warehouse_dir) as con:
            for table, rows in tables.items():
                con.execute(f"DELETE FROM {table}")
                for row in rows:
                    cols = list(row)
                    con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                [row[c] for c in cols])
            refresh_previous_same(con)      # what the ETL keeps after every merge
            return publish(con, self.config.warehouse_dir)

    def reload(self):
        self.config = load_config(self.settings)
        store.init(self.config, store._shared.get("cache"))


@pytest.fixture
def city(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    saved = dict(store._shared)
    c = City(tmp_path / "config" / "settings.yaml")
    store.init(c.config, Cache(Flask(__name__), config={"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 100_000}))
    yield c
    store._shared.clear()
    store._shared.update(saved)


def values(comparison):
    return comparison.current.value, comparison.previous.value, comparison.last_year.value


def ranked(kpi_id, now=NOW, grain="month", scope=None):
    return [(r.rank, r.district_id, r.figure.value) for r in kpis.ranking(kpi_id, grain, now, scope)]


def ids(kpi_id, part, now=NOW, grain="month", scope=None, district=None):
    return [r["id"] for r in kpis.records(kpi_id, grain, now, scope, part=part, district=district).rows]


def approx(x):
    return pytest.approx(x, rel=1e-9)


# --- scenarios: each KPI's rows, worked out by hand -------------------------------------------------------------

def volume_rows():
    return dict(incidents=[
        inc("vol-a1", "D01", nov(1)),                    # the month's first instant: in
        inc("vol-a2", "D01", nov(20, 14, 59)),           # in
        inc("vol-a3", "D01", nov(20, 15)),               # at NOW: the window is [start, NOW): out
        inc("vol-a4", "D02", nov(10)),                   # in
        inc("vol-a5", "D01", oct_(31, 23, 59, 59)),      # after October's cut (in October's full month)
        inc("vol-a6", None, nov(5)),                     # no district: in the city's figure, in no district's
        inc("vol-b1", "D01", oct_(1)),                   # previous: in
        inc("vol-b2", "D02", oct_(20, 14, 59)),          # previous: in
        inc("vol-b3", "D02", oct_(20, 15)),              # previous: at the cut, out (but in October's full month)
        inc("vol-b4", "D02", oct_(25)),                  # previous: after the cut (in October's full month)
        inc("vol-c1", "D03", ly(19)),                    # last year: in
        inc("vol-c2", "D03", t(2025, 10, 31)),           # last year: before it
        inc("vol-s1", "D01", t(2026, 9, 15)),            # September (the series)
    ])


def response_rows():
    # Answered = dispatched or closed, whichever first, within 2 h of registration (the shipped file says 2).
    return dict(incidents=[
        inc("rsp-01", "D01", nov(2, 10), dispatched=nov(2, 11)),                   # 1 h: yes
        inc("rsp-02", "D01", nov(2, 10), dispatched=nov(2, 12)),                   # exactly 2 h: yes
        inc("rsp-03", "D01", nov(2, 10), dispatched=nov(2, 12, 0, 1)),             # 2 h 1 s: no
        inc("rsp-04", "D01", nov(2, 10), closed=nov(2, 11, 30)),                   # closed without dispatch: yes
        inc("rsp-05", "D01", nov(2, 10)),                                          # never answered: no
        inc("rsp-06", "D01", nov(20, 13, 30)),            # 1.5 h before NOW, unanswered: excluded (pending)
        inc("rsp-07", "D01", nov(20, 13)),                # exactly 2 h before NOW, unanswered: settled, no
        inc("rsp-08", "D01", nov(20, 14), dispatched=nov(20, 14, 30)),             # answered before NOW: yes
        inc("rsp-09", "D01", nov(20, 14), dispatched=nov(20, 15, 30)),  # answered after NOW: pending at NOW
        inc("rsp-10", "D02", nov(3), dispatched=nov(3, 0, 30)),                    # yes
        inc("rsp-11", "D02", nov(3), dispatched=nov(3, 3)),                        # no
        # previous, judged at 20 Oct 15:00
        inc("rsp-p1", "D01", oct_(20, 14), dispatched=oct_(20, 15, 30)),           # pending at the cut: excluded
        inc("rsp-p2", "D01", oct_(5), dispatched=oct_(5, 1)),                      # yes
        inc("rsp-p3", "D01", oct_(5), dispatched=oct_(5, 5)),                      # no
        inc("rsp-q1", "D03", ly(10), dispatched=ly(10, 0, 10)),                    # last year: yes
    ])


def resolution_rows():
    return dict(incidents=[
        inc("res-1", "D01", nov(2), closed=nov(3)),                                # closed
        inc("res-2", "D01", nov(2), status="in_progress"),                          # open
        inc("res-3", "D01", nov(19), status="closed", closed=nov(20, 16)),          # closed after NOW: open then
        inc("res-4", "D02", nov(5), closed=nov(6)),                                # closed
        inc("res-p1", "D01", oct_(10), closed=oct_(20, 14)),                        # previous: closed by the cut
        inc("res-p2", "D01", oct_(10), closed=oct_(21)),                            # previous: open at the cut
        inc("res-l1", "D03", ly(3), closed=ly(4)),                                  # last year: closed
    ])


def satisfaction_rows():
    # Counted by closing time; rated 4 or 5 of 5 is satisfied.
    return dict(incidents=[
        inc("sat-1", "D01", nov(2), closed=nov(3), sat=5),
        inc("sat-2", "D01", nov(2), closed=nov(4), sat=4),                          # 4: satisfied (boundary)
        inc("sat-3", "D01", nov(2), closed=nov(4), sat=3),
        inc("sat-4", "D01", nov(2), closed=nov(5)),                                 # no rating: excluded
        inc("sat-5", "D02", nov(2), closed=nov(6), sat=1),
        inc("sat-6", "D02", oct_(25), closed=nov(1), sat=5),                        # created in Oct, closed in Nov
        inc("sat-7", "D01", oct_(25), closed=oct_(31, 23, 59), sat=5),              # closed after Oct's cut
        inc("sat-p1", "D01", oct_(1), closed=oct_(2), sat=4),
        inc("sat-p2", "D01", oct_(1), closed=oct_(3), sat=2),
        inc("sat-p3", "D01", oct_(1), closed=oct_(3)),                              # no rating
        inc("sat-l1", "D03", ly(1), closed=ly(5), sat=2),
    ])


def on_time_rows():
    return dict(incidents=[
        inc("otc-1", "D01", nov(2), due=nov(3), closed=nov(2, 12)),                 # on time
        inc("otc-2", "D01", nov(2), due=nov(3, 12), closed=nov(3, 12)),             # exactly at the deadline
        inc("otc-3", "D01", nov(2), due=nov(3), closed=nov(4)),                     # late
        inc("otc-4", "D01", nov(2), due=nov(3)),                                    # open past due: late
        inc("otc-5", "D01", nov(19), due=nov(21)),                                  # open, not due: excluded
        inc("otc-6", "D01", nov(19), due=nov(21), closed=nov(20)),                  # closed before due: on time
        inc("otc-7", "D01", nov(2), closed=nov(3)),                                 # no deadline: excluded
        inc("otc-8", "D02", nov(10), due=nov(20, 15)),                 # due exactly at NOW: not yet due, excluded
        inc("otc-9", "D02", nov(10), due=nov(11), status="closed", closed=nov(20, 16)),  # open past due at NOW
        inc("otc-p1", "D01", oct_(5), due=oct_(6), closed=oct_(5, 12)),             # on time
        inc("otc-p2", "D01", oct_(19), due=oct_(21), closed=oct_(20, 16)),          # open, not due at the cut
        inc("otc-l1", "D03", ly(5), due=ly(6)),                                     # still open: late
    ])


def overdue_rows():
    # A snapshot: incidents open at the window's end (registered before it) and past their deadline.
    return dict(incidents=[
        inc("ovd-1", "D01", oct_(1), due=nov(1)),                                   # open, overdue
        inc("ovd-2", "D01", nov(19), due=nov(21)),                                  # open, not yet due
        inc("ovd-3", "D01", oct_(1), due=oct_(2), closed=nov(20, 14)),              # closed before NOW
        inc("ovd-4", "D01", oct_(1), due=oct_(2), status="closed", closed=nov(20, 16)),  # open at NOW, overdue
        inc("ovd-5", "D01", oct_(1)),                                               # open, no deadline: excluded
        inc("ovd-6", "D02", nov(20, 14), due=nov(20, 14, 30)),                      # open, overdue
        inc("ovd-7", "D02", nov(20, 15), due=nov(20, 15)),                          # registered at NOW: not yet
        inc("ovd-8", "D02", oct_(1), due=nov(20, 15)),                              # due exactly at NOW: not overdue
    ])


def hours_rows():
    # Closed in the period; hours from registration to closing.
    return dict(incidents=[
        inc("hrs-1", "D01", nov(3), closed=nov(3, 2)),                              # 2 h
        inc("hrs-2", "D01", nov(3), closed=nov(3, 4)),                              # 4 h
        inc("hrs-3", "D01", nov(3), closed=nov(3, 10)),                             # 10 h
        inc("hrs-4", "D01", nov(3), closed=nov(3, 20)),                             # 20 h
        inc("hrs-5", "D02", nov(4), closed=nov(4, 1)),                              # 1 h
        inc("hrs-6", "D02", nov(4), closed=nov(4, 3)),                              # 3 h
        inc("hrs-7", "D01", nov(19), status="closed", closed=nov(20, 16)),          # closed after NOW: out
        inc("hrs-8", "D01", oct_(31, 20), closed=nov(1, 6)),                        # 10 h, closed in November
        inc("hrs-9", "D01", nov(4), closed=nov(5), status="in_progress"),           # reopened: excluded
        inc("hrs-p1", "D01", oct_(10), closed=oct_(10, 6)),                         # 6 h
        inc("hrs-p2", "D01", oct_(20, 6), closed=oct_(20, 14)),                     # 8 h
        inc("hrs-p3", "D01", oct_(20), closed=oct_(20, 16)),                        # closed after the cut
        inc("hrs-l1", "D03", ly(9), closed=ly(10, 6)),                              # 30 h
    ])


def repeat_rows():
    # A repeat: the same caller, category and district registered one in the 30 days before.
    return dict(incidents=[
        inc("rep-01", "D01", oct_(25), caller="A", category="noise"),      # A's first: not a repeat (and not counted)
        inc("rep-02", "D01", nov(10), caller="A", category="noise"),       # 16 days after rep-01: repeat
        inc("rep-03", "D01", nov(11), caller="A", category="parking"),     # another category: no
        inc("rep-04", "D02", nov(12), caller="A", category="noise"),       # another district: no
        inc("rep-05", "D01", oct_(16), caller="B", category="noise"),      # previous window: B's first
        inc("rep-06", "D01", nov(15), caller="B", category="noise"),       # exactly 30 days later: repeat
        inc("rep-07", "D01", oct_(16, 23, 59, 59), caller="C", category="noise"),  # previous window: C's first
        inc("rep-08", "D01", nov(16), caller="C", category="noise"),       # 30 days and 1 s later: no
        inc("rep-09", "D01", nov(5), category="noise"),                    # no caller number: excluded
        inc("rep-10", "D02", nov(2), caller="D", category="sanitation"),
        inc("rep-11", "D02", nov(3), caller="D", category="sanitation"),   # repeat
        inc("rep-p1", "D02", oct_(3), caller="E", category="noise"),
        inc("rep-p2", "D02", oct_(4), caller="E", category="noise"),       # previous: repeat
        inc("rep-l1", "D03", ly(2), caller="F", category="noise"),         # last year: no repeat
    ])


def online_rows():
    return dict(cases=[
        case("onl-1", "D01", nov(2)),
        case("onl-2", "D01", nov(3), channel="offline"),
        case("onl-3", "D01", nov(4)),
        case("onl-4", "D02", nov(5), channel="offline"),
        case("onl-5", "D01", nov(20, 15)),                       # at NOW: out
        case("onl-6", None, nov(6)),                             # no district: the city's figure only
        case("onl-p1", "D01", oct_(2)),
        case("onl-p2", "D01", oct_(3)),
        case("onl-l1", "D03", ly(2), channel="offline"),
    ])


def deadline_rows():
    return dict(cases=[
        case("ddl-1", "D01", nov(2), deadline=nov(9), decided=nov(5)),               # in time
        case("ddl-2", "D01", nov(2), deadline=nov(9), decided=nov(9)),               # at the deadline: in time
        case("ddl-3", "D01", nov(2), deadline=nov(9), decided=nov(10)),              # late
        case("ddl-4", "D01", nov(2), deadline=nov(9)),                               # pending past deadline: late
        case("ddl-5", "D01", nov(18), deadline=nov(25)),                             # pending, not due: excluded
        case("ddl-6", "D01", nov(3), deadline=nov(10), decided=nov(4), outcome="withdrawn"),   # excluded
        case("ddl-7", "D02", nov(3), decided=nov(4)),                                # no deadline: excluded
        case("ddl-8", "D02", nov(3), deadline=nov(10), decided=nov(21)),             # decided after NOW: late
        case("ddl-p1", "D01", oct_(2), deadline=oct_(9), decided=oct_(8)),           # in time
        case("ddl-p2", "D01", oct_(15), deadline=oct_(22), decided=oct_(21)),        # pending at the cut
        case("ddl-l1", "D03", ly(2), deadline=ly(5), decided=ly(6)),                 # late
    ])


def rating_rows():
    # Counted by decision time; rated good, neutral or bad.
    return dict(cases=[
        case("rat-1", "D01", nov(1), decided=nov(2), rating="good"),
        case("rat-2", "D01", nov(1), decided=nov(3), rating="neutral"),
        case("rat-3", "D01", nov(1), decided=nov(4), rating="bad"),
        case("rat-4", "D01", nov(1), decided=nov(5)),                                # no rating: excluded
        case("rat-5", "D02", nov(1), decided=nov(6), rating="good"),
        case("rat-6", "D02", nov(1), decided=nov(7), rating="good"),
        case("rat-7", "D01", oct_(28), decided=nov(1), rating="good"),               # submitted in October
        case("rat-8", "D02", nov(1), decided=nov(21), rating="good"),                # decided after NOW: out
        case("rat-p1", "D01", oct_(1), decided=oct_(5), rating="bad"),
        case("rat-p2", "D01", oct_(1), decided=oct_(6), rating="good"),
        case("rat-l1", "D03", ly(1), decided=ly(5), rating="neutral"),
    ])


SENSOR_NOW = NOW + 30 * M          # 15:30: the day's hours 00..15, hour 15 not over


def availability_rows():
    # Day grain at 15:30: today [20 Nov 00:00, 15:30), yesterday [19 Nov 00:00, 15:30), last year's 20 Nov likewise.
    s1 = [reading("AV-1", nov(20, h)) for h in range(15) if h not in (3, 5, 7, 9, 11)]
    s1 += [reading("AV-1", nov(20, 5), 1.0, "fault"),                    # hour 5: a fault only: not received
           reading("AV-1", nov(20, 7), 1.0, "fault"), reading("AV-1", nov(20, 7, 30)),   # hour 7: received
           reading("AV-1", nov(20, 9), None),                            # hour 9: ok but no value: not received
           reading("AV-1", nov(20, 11), 1.0, None)]                      # hour 11: no status given: received
    s2 = [reading("AV-2", nov(20, 10, 45)),                              # before installation (10:30)'s first hour
          *(reading("AV-2", nov(20, h)) for h in (11, 12, 14))]
    s3 = [reading("AV-3", nov(20, h)) for h in range(16)] + [reading("AV-3", nov(19, h)) for h in range(16)] \
        + [reading("AV-3", ly(20, h)) for h in range(10)]
    return dict(sensors=[sensor("AV-1", "D01", installed=t(2026, 1, 1)),
                         sensor("AV-2", "D01", installed=nov(20, 10, 30)),
                         sensor("AV-3", "D02", installed=t(2025, 1, 1))],
                readings=s1 + s2 + s3)


def alarm_rows():
    # water_level_m: alarm at or above 3.0; speed_kmh: alarm at or below 15 (config/thresholds.yaml).
    return dict(sensors=[sensor("AL-W", "D01"), sensor("AL-T", "D02", "speed_kmh"), sensor("AL-X", "D01", "unknown")],
                readings=[
                    reading("AL-W", nov(2, 10), 3.0),             # exactly the limit: alarm
                    reading("AL-W", nov(2, 11), 2.99),            # below: counted as used, not an alarm
                    reading("AL-W", nov(2, 12), 3.5, "fault"),    # fault: excluded
                    reading("AL-W", nov(2, 13), None),            # no value: excluded (as a fault)
                    reading("AL-W", nov(3), 5.0),                 # alarm
                    reading("AL-W", nov(20, 15), 4.0),            # at NOW: out
                    reading("AL-T", nov(4), 15.0),                # below-direction metric at its limit: alarm
                    reading("AL-T", nov(4, 1), 15.1),
                    reading("AL-X", nov(5), 999.0),               # metric without limits: excluded
                    reading("AL-W", oct_(10), 3.1),               # previous: alarm
                    reading("AL-W", oct_(20, 15), 3.1),           # previous: at the cut, out
                    reading("AL-W", ly(10), 1.0),                 # last year: no alarm
                ])


SCENARIOS = (volume_rows, response_rows, resolution_rows, satisfaction_rows, on_time_rows, overdue_rows, hours_rows,
             repeat_rows, online_rows, deadline_rows, rating_rows, availability_rows, alarm_rows)


def combined(only=None):
    """Every scenario's rows together (their ids are distinct); `only`: keep rows of these districts only."""
    out = {"incidents": [], "cases": [], "sensors": [], "readings": []}
    for scenario in SCENARIOS:
        for table, rows in scenario().items():
            out[table] += rows
    if only is not None:
        keep = {s["sensor_id"] for s in out["sensors"] if s["district_id"] in only}
        for table in ("incidents", "cases", "sensors"):
            out[table] = [r for r in out[table] if r["district_id"] in only]
        out["readings"] = [r for r in out["readings"] if r["sensor_id"] in keep]
    return out


# --- each shipped KPI -------------------------------------------------------------------------------------------

def test_every_shipped_kpi_has_a_hand_worked_test():
    assert set(load_config().kpis) == SHIPPED


def test_incident_volume(city):
    kpi = city.config.kpis["incident_volume"]
    assert (kpi.target, kpi.warning, kpi.target_per) == (50, 60, ["district", "day"])
    city.publish(**volume_rows())
    c = kpis.compare("incident_volume", "month", NOW)
    # November: vol-a1, a2, a4, a6 = 4; October to the 20th 15:00: b1, b2 = 2; last year: c1 = 1.
    assert values(c) == (4, 2, 1)
    assert (c.current.start, c.current.end) == (nov(1), NOW)
    assert (c.previous.start, c.previous.end) == (oct_(1), oct_(20, 15))
    assert (c.last_year.start, c.last_year.end) == (ly(1), ly(20, 15))
    assert c.current.used == 4 and c.current.excluded == {}
    # Target 50 per district per day: 3 districts x 19.625 days x 50 = 2943.75 (warning: 60 -> 3532.5).
    assert (c.current.target, c.current.warning, c.current.status) == (approx(2943.75), approx(3532.5), "ok")
    # Fewer is better: D03 0, D02 1, D01 2 (vol-a6 has no district).
    assert ranked("incident_volume") == [(1, "D03", 0), (2, "D02", 1), (3, "D01", 2)]
    assert kpis.ranking("incident_volume", "month", NOW)[0].figure.target == approx(50 * DAYS)
    assert ids("incident_volume", "numerator") == ["vol-a1", "vol-a6", "vol-a4", "vol-a2"]
    assert ids("incident_volume", "numerator", scope=("D01",)) == ["vol-a1", "vol-a2"]
    # Series: September (vol-s1), all of October (b1..b4, a5), November to date.
    series = kpis.series("incident_volume", "month", NOW, points=3)
    assert [(f.start, f.end, f.value) for f in series] == [
        (t(2026, 9, 1), oct_(1), 1), (oct_(1), nov(1), 5), (nov(1), NOW, 4)]


def test_response_rate(city):
    kpi = city.config.kpis["response_rate"]
    assert kpi.numerator == {"responded_within_hours": 2}
    city.publish(**response_rows())
    c = kpis.compare("response_rate", "month", NOW)
    # Used: rsp-01..05, 07, 08, 10, 11 = 9; answered in time: 01, 02, 04, 08, 10 = 5. Pending: 06, 09.
    assert values(c) == (approx(5 / 9), approx(1 / 2), approx(1.0))
    assert (c.current.used, c.current.numerator, c.current.excluded) == (9, 5, {"awaiting_response": 2})
    assert c.previous.excluded == {"awaiting_response": 1}              # rsp-p1, answered after the cut
    assert c.current.status == "alert"                                  # 0.556 < warning 0.8
    # D01: 4 of 7; D02: 1 of 2; D03: nothing to measure.
    assert ranked("response_rate") == [(1, "D01", approx(4 / 7)), (2, "D02", 0.5), (None, "D03", None)]
    assert ids("response_rate", "numerator") == ["rsp-01", "rsp-02", "rsp-04", "rsp-10", "rsp-08"]
    assert ids("response_rate", "denominator", scope=("D02",)) == ["rsp-10", "rsp-11"]
    excluded = kpis.records("response_rate", "month", NOW, part="excluded").rows
    assert [(r["id"], r["part"], r["reason"]) for r in excluded] == [
        ("rsp-06", "excluded", "awaiting_response"), ("rsp-09", "excluded", "awaiting_response")]


def test_resolution_rate(city):
    city.publish(**resolution_rows())
    c = kpis.compare("resolution_rate", "month", NOW)
    # November: res-1 and res-4 of 4 (res-3 closed after NOW). October to the cut: res-p1 of 2 (res-p2 closed on
    # the 21st: a full-month figure would say 1.0). Last year: 1 of 1.
    assert values(c) == (0.5, 0.5, 1.0)
    assert ranked("resolution_rate") == [(1, "D02", 1.0), (2, "D01", approx(1 / 3)), (None, "D03", None)]
    assert ids("resolution_rate", "denominator") == ["res-1", "res-2", "res-4", "res-3"]
    assert ids("resolution_rate", "numerator", district="D01") == ["res-1"]


def test_satisfaction_rate(city):
    city.publish(**satisfaction_rows())
    c = kpis.compare("satisfaction_rate", "month", NOW)
    # Closed in November and rated: sat-1 (5), 2 (4), 3 (3), 5 (1), 6 (5): satisfied 1, 2, 6 = 3 of 5.
    assert values(c) == (0.6, 0.5, 0.0)
    assert c.current.excluded == {"no_rating": 1} and c.previous.excluded == {"no_rating": 1}
    assert ranked("satisfaction_rate") == [(1, "D01", approx(2 / 3)), (2, "D02", 0.5), (None, "D03", None)]
    assert ids("satisfaction_rate", "numerator") == ["sat-6", "sat-1", "sat-2"]
    assert ids("satisfaction_rate", "excluded") == ["sat-4"]


def test_on_time_closure_rate(city):
    city.publish(**on_time_rows())
    c = kpis.compare("on_time_closure_rate", "month", NOW)
    # Used: otc-1, 2, 3, 4, 6, 9 = 6; on time: 1, 2, 6 = 3. No deadline: 7. Not yet closed nor due: 5, 8.
    assert values(c) == (0.5, 1.0, 0.0)
    assert c.current.excluded == {"no_deadline": 1, "not_yet_closed": 2}
    assert c.previous.excluded == {"no_deadline": 0, "not_yet_closed": 1}
    assert ranked("on_time_closure_rate") == [(1, "D01", 0.6), (2, "D02", 0.0), (None, "D03", None)]
    rows = kpis.records("on_time_closure_rate", "month", NOW, part="excluded").rows
    assert [(r["id"], r["reason"]) for r in rows] == [
        ("otc-7", "no_deadline"), ("otc-8", "not_yet_closed"), ("otc-5", "not_yet_closed")]
    assert ids("on_time_closure_rate", "numerator") == ["otc-1", "otc-2", "otc-6"]


def test_overdue_open_is_a_snapshot_at_the_window_end(city):
    kpi = city.config.kpis["overdue_open"]
    assert (kpi.target, kpi.target_per) == (100, ["district"])
    city.publish(**overdue_rows())
    c = kpis.compare("overdue_open", "month", NOW)
    # At NOW: open ovd-1, 2, 4, 5, 6, 8; overdue 1, 4, 6 = 3; 5 has no deadline. At 20 Oct 15:00: open ovd-1, 3, 4,
    # 5, 8; overdue 3, 4 = 2. Last year: before the first incident in the warehouse: no data, not zero.
    assert values(c) == (3, 2, None)
    assert (c.current.used, c.current.excluded) == (5, {"no_deadline": 1})
    assert (c.previous.used, c.previous.excluded) == (4, {"no_deadline": 1})
    assert c.current.target == 300 and c.current.status == "ok"        # 100 per district x 3
    assert ranked("overdue_open") == [(1, "D03", 0), (2, "D02", 1), (3, "D01", 2)]
    assert ids("overdue_open", "numerator") == ["ovd-1", "ovd-4", "ovd-6"]
    assert ids("overdue_open", "denominator", scope=("D02",)) == ["ovd-8", "ovd-6"]


def test_hours_to_close_median_and_90th_percentile(city):
    city.publish(**hours_rows())
    # November: 1, 2, 3, 4, 10, 10, 20 h. Median 4; p90 at 0.9 x 6 = 5.4: 10 + 0.4 x (20 - 10) = 14.
    # October to the cut: 6, 8: median 7, p90 6 + 0.9 x 2 = 7.8. Last year: 30.
    median = kpis.compare("median_hours_to_close", "month", NOW)
    p90 = kpis.compare("p90_hours_to_close", "month", NOW)
    assert values(median) == (approx(4), approx(7), approx(30))
    assert values(p90) == (approx(14), approx(7.8), approx(30))
    assert median.current.used == 7 and median.current.excluded == {"reopened": 1}
    assert median.current.numerator is None and median.current.status == "ok"
    # D01: 2, 4, 10, 10, 20 (median 10, p90 at 3.6: 10 + 0.6 x 10 = 16); D02: 1, 3 (median 2, p90 2.8).
    assert ranked("median_hours_to_close") == [(1, "D02", approx(2)), (2, "D01", approx(10)), (None, "D03", None)]
    assert ranked("p90_hours_to_close") == [(1, "D02", approx(2.8)), (2, "D01", approx(16)), (None, "D03", None)]
    rows = kpis.records("median_hours_to_close", "month", NOW, part="denominator", district="D02").rows
    assert [(r["id"], r["value"]) for r in rows] == [("hrs-5", approx(1)), ("hrs-6", approx(3))]
    assert ids("p90_hours_to_close", "excluded") == ["hrs-9"]


def test_repeat_complaints(city):
    city.publish(**repeat_rows())
    c = kpis.compare("repeat_complaints", "month", NOW)
    # November: rep-02, 06, 11 are repeats (rep-04: another district; rep-08: 30 days and a second; rep-03: another
    # category). Used: all November incidents with a caller: 02, 03, 04, 06, 08, 10, 11 = 7; rep-09 has none.
    # October to the cut: rep-p2. Last year: none.
    assert values(c) == (3, 1, 0)
    assert (c.current.used, c.current.excluded) == (7, {"no_caller": 1})
    assert ranked("repeat_complaints") == [(1, "D03", 0), (2, "D02", 1), (3, "D01", 2)]
    assert ids("repeat_complaints", "numerator") == ["rep-11", "rep-02", "rep-06"]
    assert ids("repeat_complaints", "excluded") == ["rep-09"]


def test_repeat_complaints_see_a_predecessor_right_at_the_lookback_before_the_window(city):
    """A predecessor exactly 30 days before the month still makes a repeat, one a second earlier does not,
    whichever period is asked alone."""
    city.publish(incidents=[
        inc("edge-1", "D01", oct_(2), caller="G", category="noise"),
        inc("edge-2", "D01", nov(1), caller="G", category="noise"),             # exactly 30 days: repeat
        inc("edge-3", "D02", oct_(1, 23, 59, 59), caller="H", category="noise"),
        inc("edge-4", "D02", nov(1), caller="H", category="noise"),             # 30 days and 1 s: no
    ])
    figure = kpis.figure("repeat_complaints", "month", NOW)
    assert (figure.value, figure.used) == (1, 2)
    assert ids("repeat_complaints", "numerator") == ["edge-2"]


def test_online_service_rate(city):
    city.publish(**online_rows())
    c = kpis.compare("online_service_rate", "month", NOW)
    # November: onl-1, 3, 6 online of 1, 2, 3, 4, 6 = 3/5 (onl-5 is at NOW). October: 2/2. Last year: 0/1.
    assert values(c) == (0.6, 1.0, 0.0)
    assert ranked("online_service_rate") == [(1, "D01", approx(2 / 3)), (2, "D02", 0.0), (None, "D03", None)]
    assert ids("online_service_rate", "numerator") == ["onl-1", "onl-3", "onl-6"]
    assert ids("online_service_rate", "numerator", scope=("D01", "D02")) == ["onl-1", "onl-3"]


def test_services_decided_within_deadline(city):
    city.publish(**deadline_rows())
    c = kpis.compare("decided_within_deadline", "month", NOW)
    # Used: ddl-1, 2, 3, 4, 8 = 5; in time: 1, 2 = 2/5. Excluded: withdrawn 6, no deadline 7, pending 5.
    assert values(c) == (0.4, 1.0, 0.0)
    assert c.current.excluded == {"withdrawn": 1, "no_deadline": 1, "pending": 1}
    assert c.previous.excluded == {"withdrawn": 0, "no_deadline": 0, "pending": 1}
    assert ranked("decided_within_deadline") == [(1, "D01", 0.5), (2, "D02", 0.0), (None, "D03", None)]
    rows = kpis.records("decided_within_deadline", "month", NOW).rows
    assert [(r["id"], r["part"], r["reason"]) for r in rows] == [
        ("ddl-1", "numerator", None), ("ddl-2", "numerator", None), ("ddl-3", "denominator", None),
        ("ddl-4", "denominator", None), ("ddl-6", "excluded", "withdrawn"), ("ddl-7", "excluded", "no_deadline"),
        ("ddl-8", "denominator", None), ("ddl-5", "excluded", "pending")]


def test_good_and_bad_rating_shares(city):
    city.publish(**rating_rows())
    good = kpis.compare("good_rating_share", "month", NOW)
    bad = kpis.compare("bad_rating_share", "month", NOW)
    # Decided in November and rated: rat-1 good, 2 neutral, 3 bad, 5 good, 6 good, 7 good: good 4/6, bad 1/6.
    # October to the cut: bad, good. Last year: neutral.
    assert values(good) == (approx(4 / 6), 0.5, 0.0)
    assert values(bad) == (approx(1 / 6), 0.5, 0.0)
    assert good.current.excluded == {"no_rating": 1} and bad.current.used == 6
    assert (good.current.status, bad.current.status) == ("alert", "alert")   # 0.667 < 0.7; 0.167 > 0.1
    # D01: good 2/4, bad 1/4; D02: good 2/2, bad 0/2.
    assert ranked("good_rating_share") == [(1, "D02", 1.0), (2, "D01", 0.5), (None, "D03", None)]
    assert ranked("bad_rating_share") == [(1, "D02", 0.0), (2, "D01", 0.25), (None, "D03", None)]
    assert ids("bad_rating_share", "numerator") == ["rat-3"]
    assert ids("good_rating_share", "numerator", district="D01") == ["rat-7", "rat-1"]


def test_sensor_availability_per_sensor_hour(city):
    city.publish(**availability_rows())
    c = kpis.compare("sensor_availability", "day", SENSOR_NOW)
    # Today, hours 00..15; hour 15 is not over at 15:30 (excluded for each of the 3 sensors).
    # AV-1: 15 hours, received all but 3 (none), 5 (fault only), 9 (no value) = 12.
    # AV-2 (installed 10:30): hours 00..10 excluded (11), 11..14 expected, received 11, 12, 14 = 3.
    # AV-3: 15 of 15. Total 30 / 34.
    # Yesterday: AV-1 0/15, AV-2 not installed (16), AV-3 15/15: 15/30. Last year: AV-3 10 of 15 (others not
    # installed): 2/3.
    assert values(c) == (approx(30 / 34), 0.5, approx(10 / 15))
    assert (c.current.used, c.current.numerator) == (34, 30)
    assert c.current.excluded == {"not_installed": 11, "hour_not_over": 3}
    assert c.previous.excluded == {"not_installed": 16, "hour_not_over": 2}
    assert c.last_year.excluded == {"not_installed": 32, "hour_not_over": 1}
    assert c.current.status == "alert"
    assert ranked("sensor_availability", SENSOR_NOW, "day") == [
        (1, "D02", 1.0), (2, "D01", approx(15 / 19)), (None, "D03", None)]
    # Ids are sensor@hour in UTC (00:00 in Shanghai is 16:00Z the day before).
    hour = lambda h: (nov(20, h) - 8 * H).strftime("%Y-%m-%dT%H:%MZ")   # noqa: E731
    assert ids("sensor_availability", "excluded", SENSOR_NOW, "day", scope=("D01",)) == \
        [f"AV-2@{hour(h)}" for h in range(11)] + [f"AV-1@{hour(15)}", f"AV-2@{hour(15)}"]
    assert ids("sensor_availability", "numerator", SENSOR_NOW, "day", district="D01") == \
        sorted([f"AV-1@{hour(h)}" for h in (0, 1, 2, 4, 6, 7, 8, 10, 11, 12, 13, 14)]
               + [f"AV-2@{hour(h)}" for h in (11, 12, 14)], key=lambda i: (i.split("@")[1], i))


def test_alarm_count_counts_readings_in_alarm_state(city):
    city.publish(**alarm_rows())
    c = kpis.compare("alarm_count", "month", NOW)
    # November: AL-W 2 Nov 10:00 (3.0), AL-W 3 Nov (5.0), AL-T 4 Nov (15.0) = 3. Used: those and AL-W 11:00, AL-T
    # 01:00 = 5. Excluded: 2 faults (fault status; no value), 1 without limits. October: 1. Last year: 0.
    assert values(c) == (3, 1, 0)
    assert (c.current.used, c.current.excluded) == (5, {"fault": 2, "no_limits": 1})
    assert c.current.target == approx(3 * DAYS)                         # 1 per district per day
    assert ranked("alarm_count") == [(1, "D03", 0), (2, "D02", 1), (3, "D01", 2)]
    utc = lambda ts: (ts - 8 * H).strftime("%Y-%m-%dT%H:%M:%SZ")        # noqa: E731
    assert ids("alarm_count", "numerator") == [f"AL-W@{utc(nov(2, 10))}", f"AL-W@{utc(nov(3))}",
                                               f"AL-T@{utc(nov(4))}"]


def test_city_score_averages_value_over_target_with_weights(city):
    weights = city.config.kpis["city_score"].weights
    targets = {k: city.config.kpis[k].target for k in ("online_service_rate", "decided_within_deadline",
                                                       "good_rating_share")}
    assert len(weights) == 11 and targets == {"online_service_rate": 0.7, "decided_within_deadline": 0.95,
                                              "good_rating_share": 0.8}
    assert {weights[k] for k in targets} == {1}
    city.publish(cases=[
        case("cs-1", "D01", nov(2), deadline=nov(9), decided=nov(5), rating="good"),
        case("cs-2", "D01", nov(3), channel="offline", deadline=nov(9), decided=nov(10), rating="bad"),
        case("cs-3", "D02", nov(4), deadline=nov(9), decided=nov(6), rating="good"),
        case("cs-4", "D02", nov(5), deadline=nov(9), decided=nov(8)),
    ])
    # Only the three service KPIs have a value (no incidents, no sensors): online 3/4, in time 3/4, good 2/3.
    # Score: (0.75/0.7 + 0.75/0.95 + (2/3)/0.8) / 3 = (1.071429 + 0.789474 + 0.833333) / 3 = 0.898079.
    c = kpis.compare("city_score", "month", NOW)
    expected = (0.75 / 0.7 + 0.75 / 0.95 + (2 / 3) / 0.8) / 3
    assert c.current.value == approx(expected) and round(c.current.value, 6) == 0.898079
    assert (c.current.used, c.current.excluded, c.current.status) == (3, {"no_value": 8}, "alert")
    assert c.current.components["online_service_rate"]["score"] == approx(0.75 / 0.7)
    assert c.current.components["response_rate"] == {"value": None, "target": 0.9, "score": None, "weight": 2}
    assert (c.previous.value, c.last_year.value) == (None, None)      # no data before 2 Nov
    # D01: online 1/2, in time 1/2, good 1/2; D02: online 2/2, in time 2/2, good 1/1.
    d01 = (0.5 / 0.7 + 0.5 / 0.95 + 0.5 / 0.8) / 3
    d02 = (1 / 0.7 + 1 / 0.95 + 1 / 0.8) / 3
    assert ranked("city_score") == [(1, "D02", approx(d02)), (2, "D01", approx(d01)), (None, "D03", None)]
    with pytest.raises(ValueError, match="composite"):
        kpis.records("city_score", "month", NOW)


def test_composite_lower_is_better_cap_and_weights(city):
    (city.settings.parent / "kpis" / "score_test.yaml").write_text(yaml.safe_dump({
        "id": "score_test", "name": {"en": "t", "zh": "t"}, "description": {"en": "t", "zh": "t"}, "unit": "score",
        "higher_is_better": True, "target": 1, "warning": 0.8, "periods": ["month"], "kind": "composite", "cap": 1.2,
        "weights": {"median_hours_to_close": 3, "p90_hours_to_close": 1, "overdue_open": 1,
                    "online_service_rate": 1}}))
    city.reload()
    city.publish(incidents=[inc("cmp-1", "D01", nov(2), closed=nov(3, 12)),      # 36 h
                            inc("cmp-2", "D01", nov(2), closed=nov(4, 12))],     # 60 h
                 cases=[case("cmp-c", "D01", nov(2))])
    # Median 48 h against 24: 24/48 = 0.5. p90 36 + 0.9 x 24 = 57.6 against 72: 1.25, capped at 1.2.
    # Overdue open: 0 (lower is better, nothing to divide): the cap, 1.2. Online 1/1 against 0.7: 1.43, capped.
    # (3 x 0.5 + 1.2 + 1.2 + 1.2) / 6 = 0.85.
    f = kpis.figure("score_test", "month", NOW)
    assert f.value == approx(0.85) and f.status == "warning"
    assert {k: round(v["score"], 6) for k, v in f.components.items()} == {
        "median_hours_to_close": 0.5, "p90_hours_to_close": 1.2, "overdue_open": 1.2, "online_service_rate": 1.2}
    with pytest.raises(ValueError, match="periods score_test supports"):
        kpis.figure("score_test", "week", NOW)


# --- scope --------------------------------------------------------------------------------------------------------

def _everything(kpi_id, grain, now, scope):
    out = [kpis.compare(kpi_id, grain, now, scope), kpis.series(kpi_id, grain, now, scope, points=3),
           kpis.ranking(kpi_id, grain, now, scope)]
    if store.config().kpis[kpi_id].kind != "composite":
        out += [kpis.records(kpi_id, grain, now, scope, part=p) for p in kpis.PARTS]
    return out


@pytest.mark.parametrize("grain,now,min_differs", [("month", NOW, 12), ("day", SENSOR_NOW, 4)])
def test_a_district_scope_never_sees_other_districts_rows(city, grain, now, min_differs):
    """What a D01 leader gets is the same whether or not other districts have rows: nothing of theirs leaks, in
    values, counts of used or excluded records, rankings or drill-downs."""
    city.publish(**combined())
    scoped = {k: _everything(k, grain, now, ("D01",)) for k in SHIPPED}
    city_wide = {k: kpis.figure(k, grain, now) for k in SHIPPED}
    for kpi_id, (comparison, series, ranking, *drills) in scoped.items():
        assert [r.district_id for r in ranking] == ["D01"], kpi_id
        assert ranking[0].figure == comparison.current, kpi_id
        for drill in drills:
            assert {r["district_id"] for r in drill.rows} <= {"D01"}, kpi_id
        if drills:
            assert kpis.records(kpi_id, grain, now, ("D01",), district="D02").rows == [], kpi_id
    differs = [k for k in SHIPPED if city_wide[k].value != scoped[k][0].current.value]
    assert len(differs) >= min_differs, f"other districts must have something to leak; differ: {differs}"
    city.publish(**combined(only={"D01"}))
    assert {k: _everything(k, grain, now, ("D01",)) for k in SHIPPED} == scoped


# --- periods ------------------------------------------------------------------------------------------------------

def test_periods_in_the_city_timezone():
    at = datetime(2026, 11, 19, 17, 0, tzinfo=ZoneInfo("UTC"))            # 20 Nov 01:00 in Shanghai
    assert kpis.period_of("day", at, TZ).start == nov(20)
    week = kpis.period_of("week", at, TZ)
    assert (week.start, week.end, week.label) == (nov(16), nov(23), "2026-W47")
    assert kpis.period_of("quarter", at, TZ) == kpis.Period("quarter", oct_(1), t(2027, 1, 1))
    assert kpis.period_of("year", date(2026, 2, 3), TZ).label == "2026"
    assert kpis.shift(kpis.period_of("month", date(2026, 1, 31), TZ), -1).start == t(2025, 12, 1)
    # Same period last year: 29 Feb -> 28 Feb; ISO week 53 -> week 52 of a 52-week year; same ISO weekday start.
    assert kpis.last_year(kpis.period_of("day", date(2028, 2, 29), TZ)).start == t(2027, 2, 28)
    assert kpis.last_year(kpis.period_of("week", date(2026, 12, 31), TZ)).start == t(2025, 12, 22)
    assert kpis.last_year(week).start == t(2025, 11, 17)
    with pytest.raises(ValueError, match="grain"):
        kpis.period_of("fortnight", at, TZ)


def test_like_for_like_cut_and_complete_periods(city):
    city.publish(**volume_rows())
    # On 31 March 12:00, the previous window (February) is cut at 30 days 12 h: its end, 1 March.
    march = kpis.period_of("month", date(2027, 3, 1), TZ)
    assert kpis._like_for_like(kpis.shift(march, -1), march, t(2027, 3, 31, 12)) == (t(2027, 2, 1), t(2027, 3, 1))
    # A past period asked for explicitly is complete, and so are its comparisons.
    c = kpis.compare("incident_volume", "month", NOW, at=date(2026, 10, 5))
    assert (c.current.start, c.current.end, c.current.value) == (oct_(1), nov(1), 5)
    assert (c.previous.end, c.previous.value) == (oct_(1), 1)
    # A future period has no value.
    assert kpis.figure("incident_volume", "month", NOW, at=date(2026, 12, 5)).value is None


def test_board_lists_every_kpi_in_order_and_bad_calls_are_refused(city):
    with pytest.raises(NoData):
        kpis.figure("incident_volume", "month", NOW)
    city.publish(**volume_rows())
    board = kpis.board("week", NOW)
    assert [c.current.kpi_id for c in board] == list(city.config.kpis) and board[0].current.kpi_id == "city_score"
    with pytest.raises(KeyError, match="no_such_kpi"):
        kpis.figure("no_such_kpi", "month", NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        kpis.figure("incident_volume", "month", NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="part"):
        kpis.records("incident_volume", "month", NOW, part="everything")


def test_status_bands():
    config = load_config()
    up, down = config.kpis["response_rate"], config.kpis["overdue_open"]
    assert [defs.status(up, v, 0.9, 0.8) for v in (0.9, 0.85, 0.8, 0.79, None)] == [
        "ok", "warning", "warning", "alert", None]
    assert [defs.status(down, v, 100, 200) for v in (100, 150, 200, 201)] == ["ok", "warning", "warning", "alert"]


# --- configuration ------------------------------------------------------------------------------------------------

def _error(settings) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(settings)
    return str(info.value)


def kpi_file(config_copy, name):
    return config_copy.parent / "kpis" / f"{name}.yaml"


def test_shipped_kpis_are_valid_and_bilingual():
    config = load_config()
    for kpi in config.kpis.values():
        assert kpi.name.en and kpi.name.zh, kpi.id
        assert "Excluded:" in kpi.description.en or "Nothing is excluded" in kpi.description.en, kpi.id
        assert "不计入" in kpi.description.zh or "不排除" in kpi.description.zh, kpi.id
        for req in kpi.require:
            assert req.reason.en and req.reason.zh


@pytest.mark.parametrize("name,change,key,words", [
    ("response_rate", lambda d: d["numerator"].update({"answered_fast": True}),
     "numerator.answered_fast", ["'answered_fast'", "responded_within_hours", "a filter for incidents"]),
    ("response_rate", lambda d: d["numerator"].update({"status = 'closed' OR 1=1": True}),
     "numerator.status = 'closed' OR 1=1", ["a filter for incidents"]),
    ("response_rate", lambda d: d.update(where="created_at > '2026-01-01'"), "where", ["valid dictionary"]),
    ("resolution_rate", lambda d: d["numerator"].update(closed="yes"), "numerator.closed", ["true or false"]),
    ("response_rate", lambda d: d["numerator"].update(responded_within_hours=3),
     "numerator.responded_within_hours", ["response_settled_hours: 3"]),
    ("repeat_complaints", lambda d: d["numerator"].update(repeat_within_days=0.5),
     "numerator.repeat_within_days", ["whole number of days"]),
    ("incident_volume", lambda d: d.update(numerator={"category_in": ["noise", "fireworks"]}),
     "numerator.category_in", ["config/categories.yaml", "'parking'"]),
    ("response_rate", lambda d: d.update(target=95, warning=90), "target", ["share from 0 to 1"]),
    ("response_rate", lambda d: d.update(warning=0.95), "target", ["above warning 0.95"]),
    ("overdue_open", lambda d: d.update(warning=50), "target", ["below warning 50"]),
    ("response_rate", lambda d: d.update(periods=["day", "fortnight"]), "periods.1", ["'fortnight'", "'week'"]),
    ("response_rate", lambda d: d.update(period_by="updated_at"), "period_by", ["created_at", "'end'"]),
    ("sensor_availability", lambda d: d.update(period_by="end"), "period_by", ["'hour'"]),
    ("median_hours_to_close", lambda d: d.update(require=[]), "require", ["closed: true"]),
    ("median_hours_to_close", lambda d: d.update(measure="hours_to_fix"), "measure", ["hours_to_close"]),
    ("median_hours_to_close", lambda d: d.update(q=1.5), "q", ["less than 1"]),
    ("response_rate", lambda d: d.update(unit="count"), "unit", ["'percent'"]),
    ("response_rate", lambda d: d.update(id="response"), "id", ["'response_rate'"]),
    ("response_rate", lambda d: d.update(entity="complaints"), "entity", ["'incidents'"]),
    ("overdue_open", lambda d: d.update(target_per=["district", "day"]), "target_per", ["snapshot"]),
    ("city_score", lambda d: d["weights"].update(nope=1), "weights.nope", ["not a composite", "response_rate"]),
    ("city_score", lambda d: d["weights"].update(city_score=1), "weights.city_score", ["not a composite"]),
    ("city_score", lambda d: d["weights"].update(response_rate=0), "weights.response_rate", ["greater than 0"]),
    ("city_score", lambda d: d.update(entity="incidents"), "entity", ["nothing for a composite"]),
    ("city_score", lambda d: d.pop("description"), "description", ["missing"]),
])
def test_bad_kpi_names_file_key_value_and_expectation(config_copy, name, change, key, words):
    path = kpi_file(config_copy, name)
    edit_yaml(path, change)
    message = _error(config_copy)
    assert str(path) in message and f"key '{key}'" in message, message
    for word in words:
        assert word in message, message


def test_composite_periods_must_be_supported_by_every_component(config_copy):
    edit_yaml(kpi_file(config_copy, "response_rate"), lambda d: d.update(periods=["month", "quarter", "year"]))
    message = _error(config_copy)
    assert str(kpi_file(config_copy, "city_score")) in message and "key 'periods'" in message
    assert "['day', 'week']" in message and "response_rate supports ['month', 'quarter', 'year']" in message


def test_a_deployment_without_kpis_has_none(config_copy):
    shutil.rmtree(config_copy.parent / "kpis")
    assert load_config(config_copy).kpis == {}


def test_kpi_files_are_data_not_code():
    """Every identifier the engine puts into SQL comes from core/kpis.py; the files only name them."""
    for path in sorted((ROOT / "config" / "kpis").glob("*.yaml")):
        text = json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")))
        for word in ("SELECT", "fct_", "epoch(", " = '"):
            assert word not in text, (path, word)


def test_docs_describe_every_shipped_kpi_and_filter():
    doc = (ROOT / "docs" / "KPIS.md").read_text(encoding="utf-8")
    for kpi_id in SHIPPED:
        assert f"`{kpi_id}`" in doc.split("## The shipped KPIs")[1], kpi_id
    for entity in defs.ENTITIES.values():
        for name in [*entity.predicates, *entity.measures]:
            assert f"`{name}`" in doc, name
