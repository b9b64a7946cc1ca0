"""Small-number suppression (query/privacy.py) over tiny hand-made warehouses (the fixtures of tests/test_kpis.py).

NOW = Friday 2026-11-20 15:00 (Asia/Shanghai), the month to date: [2026-11-01, 2026-11-20 15:00). k = 5 unless a test
says otherwise. A shared screen is a kiosk account, or no signed-in user (exports, snapshots, this test process
outside a request)."""
from dataclasses import replace
from datetime import timedelta

import pytest
from flask import Flask, g

from core.users import User
from layers import registry
from query import kpis, layers, privacy, store
from tests.conftest import edit_yaml
from tests.test_kpis import NOW, case, city, inc, nov  # noqa: F401, F811  (city: the fixture)

ANALYST = User("analyst", "Analyst", "analyst", None, False, frozenset({"view_records"}), frozenset({"*"}))
WALL = User("wall", "Wall", "operator", None, True, frozenset(), frozenset({"/wall"}))


def as_user(user, call):
    """Run call() in a request of this user, on the app the query cache belongs to."""
    cache = store._shared.get("cache")
    app = getattr(cache, "app", None) or Flask("privacy-test")
    with app.test_request_context("/"):
        g.cityops_user = user
        return call()


def rows():
    """D01: 4 incidents registered in November, 3 answered within 2 h (response rate 3/4, 4 records measured).
    D02: 5 incidents, all answered within 2 h (5/5). D03: 6, none answered, all older than 2 h (0/6).
    Closed ones: D01 closes 2 (median hours to close over 2 records), D02 closes 5.
    Service cases: D01 has none at all; D02 4 online; D03 none."""
    out = []
    for i in range(4):
        answered = i < 3
        out.append(inc(f"a{i}", "D01", nov(2 + i, 9), dispatched=nov(2 + i, 10) if answered else None,
                       closed=nov(2 + i, 12) if i < 2 else None))
    for i in range(5):
        out.append(inc(f"b{i}", "D02", nov(3 + i, 9), dispatched=nov(3 + i, 9, 30), closed=nov(3 + i, 15)))
    for i in range(6):
        out.append(inc(f"c{i}", "D03", nov(4 + i, 9)))
    cases = [case(f"s{i}", "D02", nov(5 + i, 10)) for i in range(4)]
    return dict(incidents=out, cases=cases)


def test_what_a_figure_counts_by_kind(city):
    city.publish(**rows())
    ratio = kpis.figure("response_rate", "month", NOW, ("D01",))
    assert (ratio.numerator, ratio.used, privacy.counted(ratio)) == (3, 4, 4), "a ratio counts its denominator"
    count = kpis.figure("incident_volume", "month", NOW, ("D01",))
    assert (count.value, privacy.counted(count)) == (4, 4), "a count counts what it counts"
    quantile = kpis.figure("median_hours_to_close", "month", NOW, ("D01",))
    assert (quantile.used, privacy.counted(quantile)) == (2, 2), "a quantile counts its records measured"
    score = kpis.figure("city_score", "month", NOW, ("D01",))
    assert score.value is not None and privacy.counted(score) is None, "a composite counts no records itself"


def test_fewer_than_k_records_are_suppressed_on_shared_screens_only(city):
    city.publish(**rows())
    d01 = kpis.figure("response_rate", "month", NOW, ("D01",))     # 4 records measured
    d02 = kpis.figure("response_rate", "month", NOW, ("D02",))     # 5
    assert d01.value == 0.75 and d02.value == 1.0
    # Outside a request (an export, a snapshot): a shared screen.
    assert privacy.shared_screen()
    assert kpis.suppressed(d01) and not kpis.suppressed(d02), "k = 5: 4 is suppressed, 5 is not"
    assert as_user(WALL, lambda: privacy.shared_screen() and kpis.suppressed(d01))
    assert as_user(ANALYST, lambda: not privacy.shared_screen() and not kpis.suppressed(d01))
    assert as_user(None, lambda: kpis.suppressed(d01)), "nobody signed in: shared"
    # An export made by a signed-in analyst can still ask for the shared rule.
    assert as_user(ANALYST, lambda: kpis.suppressed(d01, shared=True))
    # The threshold is k: with k = 4, four records are enough.
    assert not privacy.suppressed(d01, k=4) and privacy.suppressed(d01, k=5)


def test_counts_below_k_are_suppressed_but_zero_and_no_value_are_not(city):
    city.publish(**rows())
    four = kpis.figure("incident_volume", "month", NOW, ("D01",))
    assert four.value == 4 and kpis.suppressed(four)
    six = kpis.figure("incident_volume", "month", NOW, ("D03",))
    assert six.value == 6 and not kpis.suppressed(six)
    zero = kpis.figure("repeat_complaints", "month", NOW, ("D02",))      # no caller numbers: excluded, count 0
    assert zero.value == 0 and not kpis.suppressed(zero), "a zero names nobody"
    none = kpis.figure("online_service_rate", "month", NOW, ("D01",))    # D01 has no service cases at all
    assert none.value is None and not kpis.suppressed(none), "no value: nothing to hide"
    median = kpis.figure("median_hours_to_close", "month", NOW, ("D01",))  # 2 closed: 3 h each
    assert median.value == pytest.approx(3.0) and kpis.suppressed(median)
    score = kpis.figure("city_score", "month", NOW, ("D01",))
    assert not kpis.suppressed(score), "a composite is judged by its components where they are shown"


def test_k_comes_from_settings(city):
    edit_yaml(city.settings, lambda d: d.update(privacy={"min_records": 4}))
    city.reload()
    city.publish(**rows())
    assert privacy.min_records() == 4
    assert not kpis.suppressed(kpis.figure("response_rate", "month", NOW, ("D01",))), "4 records, k = 4"
    edit_yaml(city.settings, lambda d: d.pop("privacy"))
    city.reload()
    assert privacy.min_records() == 5, "default k"


def test_a_ranking_never_ranks_a_suppressed_district(city):
    city.publish(**rows())
    ranked = kpis.ranking("response_rate", "month", NOW)
    assert [(r.rank, r.district_id, r.figure.value) for r in ranked] == [(1, "D02", 1.0), (2, "D01", 0.75),
                                                                          (3, "D03", 0.0)]
    shared = privacy.ranking(ranked)            # shared: D01 (4 records) is suppressed
    assert [(r.rank, r.district_id, r.suppressed) for r in shared] == [(1, "D02", False), (2, "D03", False),
                                                                       (None, "D01", True)]
    mine = as_user(ANALYST, lambda: privacy.ranking(ranked))
    assert [(r.rank, r.district_id, r.suppressed) for r in mine] == [(1, "D02", False), (2, "D01", False),
                                                                     (3, "D03", False)]
    # Ties share a rank among the published ones; districts without a value come before suppressed ones.
    tie = [replace(ranked[0]), replace(ranked[2], rank=2, figure=replace(ranked[2].figure, value=1.0, used=9)),
           replace(ranked[1]), replace(ranked[2], district_id="D04", rank=None,
                                       figure=replace(ranked[2].figure, value=None, used=0))]
    assert [(r.rank, r.district_id) for r in privacy.ranking(tie)] == [(1, "D02"), (1, "D03"), (None, "D04"),
                                                                      (None, "D01")]


def test_the_cache_does_not_carry_suppression_between_callers(city):
    """Suppression is decided per call from the caller, never cached with the figure."""
    city.publish(**rows())
    seen_by_wall = as_user(WALL, lambda: privacy.ranking(kpis.ranking("response_rate", "month", NOW)))
    seen_by_analyst = as_user(ANALYST, lambda: privacy.ranking(kpis.ranking("response_rate", "month", NOW)))
    assert [r.suppressed for r in seen_by_wall] == [False, False, True]
    assert [r.suppressed for r in seen_by_analyst] == [False, False, False]
    assert store.caller() is None


def test_the_walls_district_shares_resting_on_few_records_are_left_unshaded_on_shared_screens(city):
    """Overdue share at NOW: D01 has 2 open incidents (both overdue: 2 records), D03 6 (none due: 0.0), D02 none
    open (no value). Open counts are the operators' working figures and stay."""
    overdue = [inc(f"o{i}", "D01", nov(2 + i, 9), due=nov(3 + i, 9)) for i in range(2)]
    city.publish(incidents=overdue + [inc(f"c{i}", "D03", nov(4 + i, 9)) for i in range(6)])
    since = NOW - timedelta(days=30)

    def shading(measure, user):
        got = as_user(user, lambda: registry_layer(measure))
        return dict(zip(got["locations"], got["z"], strict=True))

    def registry_layer(measure):
        layer = next(x for x in store.config().layers if x.type == "district_choropleth")
        layer = layer.model_copy(update={"params": layer.params.model_copy(update={"measure": measure})})
        ctx = registry.Context(NOW, "en", None, lambda key, **v: key, store.config().catalog)
        return registry.trace(layer, ctx, True).to_plotly_json()

    assert layers.district_measure("overdue_share", since, NOW)[0]["records"] == 2
    assert shading("overdue_share", ANALYST) == {"D01": 1.0, "D02": None, "D03": 0.0}
    assert shading("overdue_share", WALL) == {"D01": None, "D02": None, "D03": 0.0}
    assert shading("open_incidents", WALL) == {"D01": 2, "D02": 0, "D03": 6}
