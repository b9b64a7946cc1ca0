"""Scope is enforced in the query layer: a caller limited to D01 who asks any query function for D02 gets nothing,
and cannot widen their scope by asking for none. Every public query function taking a scope is listed here: a new
one fails the first test until it is added."""
import inspect
from datetime import datetime, timedelta

import pytest
from flask import Flask, g

from core.settings import load_config
from query import alarms, health, kpis, layers, overview, store

AS_OF = datetime.fromisoformat("2026-11-20T15:00:00+08:00")
DAY = (AS_OF - timedelta(days=1), AS_OF)
MODULES = (overview, layers, alarms, kpis, health)


def _empty_tiles(t):
    return t.open == t.overdue == t.incidents_today == t.sensors_in_alarm == 0 and t.median_hours_to_close is None


def _no_figure(f):
    return f.used == 0 and not f.numerator and f.value is None


CALLS = {   # function -> (call with a scope, is the answer empty?)
    "overview.tiles": (lambda s: overview.tiles(AS_OF, s), _empty_tiles),
    "overview.sensor_states": (lambda s: overview.sensor_states(AS_OF, s), lambda r: r == []),
    "overview.open_by_district": (lambda s: overview.open_by_district(s), lambda r: r == []),
    "overview.street_outlines": (lambda s: overview.street_outlines(s), lambda r: r == []),
    "layers.incident_cells": (lambda s: layers.incident_cells(*DAY, "all", 8, s), lambda r: r == []),
    "layers.incident_cells_within": (lambda s: layers.incident_cells_within(*DAY, "all", 9, 50, s),
                                     lambda r: r[0] == []),
    "layers.incident_points": (lambda s: layers.incident_points(*DAY, "all", 100, s), lambda r: r == []),
    "layers.district_measure": (lambda s: layers.district_measure("open_incidents", *DAY, s), lambda r: r == []),
    "layers.sensors": (lambda s: layers.sensors(AS_OF, None, s), lambda r: r == []),
    "layers.places": (lambda s: layers.places("service_hall", *DAY, s), lambda r: r == []),
    "alarms.current": (lambda s: alarms.current(AS_OF, s),
                       lambda r: all(a.district_id is None and a.lat is None for a in r)),
    "kpis.figure": (lambda s: kpis.figure("incident_volume", "month", AS_OF, s), _no_figure),
    "kpis.compare": (lambda s: kpis.compare("resolution_rate", "month", AS_OF, s),
                     lambda c: all(map(_no_figure, (c.current, c.previous, c.last_year)))),
    "kpis.series": (lambda s: kpis.series("response_rate", "week", AS_OF, s, points=4),
                    lambda r: all(map(_no_figure, r))),
    "kpis.ranking": (lambda s: kpis.ranking("satisfaction_rate", "month", AS_OF, s), lambda r: r == []),
    "kpis.records": (lambda s: kpis.records("incident_volume", "month", AS_OF, s, district=(s or ("D02",))[0]),
                     lambda d: d.rows == [] and d.total == 0),
    "kpis.board": (lambda s: kpis.board("month", AS_OF, s),
                   lambda r: all(_no_figure(c.current) for c in r if c.current.kpi_id != "city_score")),
}


def test_every_query_function_with_a_scope_is_checked_here():
    scoped = {f"{m.__name__.split('.')[-1]}.{name}" for m in MODULES for name, fn in vars(m).items()
              if inspect.isfunction(fn) and fn.__module__ == m.__name__ and not name.startswith("_")
              and "scope" in inspect.signature(fn).parameters}
    assert scoped == set(CALLS)


@pytest.fixture(scope="module")
def as_user(loaded_city):
    settings, _, _ = loaded_city
    config = load_config(settings)
    store.init(config, None)
    app = Flask("scope-test")

    def run(username, call):
        with app.test_request_context("/"):
            g.cityops_user = config.users.user(username) if username else None
            return call()
    return run


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_leader_of_d01_asking_for_d02_gets_nothing(as_user, name):
    call, empty = CALLS[name]
    assert not empty(as_user("leader-d02", lambda: call(("D02",)))), "control: D02's own leader sees D02's rows"
    assert not empty(as_user("analyst", lambda: call(("D02",)))), "control: a city-wide analyst sees them too"
    assert empty(as_user("leader-d01", lambda: call(("D02",))))
    assert empty(as_user("leader-d01", lambda: call(("D02", "D03"))))


def test_asking_for_the_whole_city_gives_a_scoped_caller_only_their_districts(as_user):
    rows = as_user("leader-d01", lambda: overview.open_by_district(None))
    assert [r["district_id"] for r in rows] == ["D01"]
    ranked = as_user("leader-d01", lambda: kpis.ranking("resolution_rate", "month", AS_OF))
    assert [r.district_id for r in ranked] == ["D01"]
    drill = as_user("leader-d01", lambda: kpis.records("incident_volume", "month", AS_OF, part="all", limit=100000))
    assert drill.total > 0 and {r["district_id"] for r in drill.rows} == {"D01"}


def test_the_cache_never_hands_a_wider_answer_to_a_narrower_caller(loaded_city):
    from flask_caching import Cache
    settings, _, _ = loaded_city
    config = load_config(settings)
    app = Flask("cache-test")
    store.init(config, Cache(app, config={"CACHE_TYPE": "SimpleCache"}))
    try:
        with app.test_request_context("/"):
            g.cityops_user = config.users.user("analyst")
            city = overview.open_by_district()                 # cached for the city first
            g.cityops_user = config.users.user("leader-d01")
            assert [r["district_id"] for r in overview.open_by_district()] == ["D01"] and len(city) == 12
    finally:
        store.init(config, None)


def test_kpi_windows_are_cached_one_by_one_and_shared_between_views(loaded_city, monkeypatch):
    """The tiles (compare), sparklines (series) and a single figure share their common windows: the figure of the
    current period costs no query once the tiles are shown, the sparkline one query for its 11 other periods. The
    answers are those computed without a cache."""
    from flask_caching import Cache
    settings, _, _ = loaded_city
    config = load_config(settings)
    app = Flask("kpi-cache-test")

    def views():
        return (kpis.compare("resolution_rate", "month", AS_OF), kpis.series("resolution_rate", "month", AS_OF),
                kpis.figure("resolution_rate", "month", AS_OF))

    store.init(config, None)
    expected = views()
    store.init(config, Cache(app, config={"CACHE_TYPE": "SimpleCache"}))
    queries = []
    reader = store.reader()
    rows = reader.rows
    monkeypatch.setattr(reader, "rows", lambda sql, params=None: queries.append(sql) or rows(sql, params))
    try:
        with app.test_request_context("/"):
            compared = kpis.compare("resolution_rate", "month", AS_OF)
            before = len(queries)
            series = kpis.series("resolution_rate", "month", AS_OF)
            assert len(queries) == before + 1, "one query for the sparkline's 11 periods not yet measured"
            before = len(queries)
            figure = kpis.figure("resolution_rate", "month", AS_OF)
            assert len(queries) == before, "the current period was measured for the tiles"
        assert (compared, series, figure) == expected
        assert series[-1] == compared.current == figure
    finally:
        store.init(config, None)
