"""The district leaders' page /kpis (dashboard/pages/kpis.py) on the small demo city loaded by the real ETL.

Unit tests call the page's functions in a request of a real demo account (as dashboard/auth.py sets it) and compare
what they show with what query/kpis.py computes; the browser test drives the real server with Chromium signed in
as the analyst through the sign-in form."""
import html
import re
import urllib.error
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import g

from core import clock
from core.settings import load_config
from dashboard import kpi_format as fmt
from ops import acks
from query import kpis, privacy, store
from tests.browser import chromium, dashboard_server, http_client, signed_in

# --- fixtures -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(loaded_city):
    """The real app (auth, routes, pages) in this process, over the loaded small city."""
    settings, _, _ = loaded_city
    saved = dict(store._shared)
    from dashboard.app import create_app
    dash_app = create_app(load_config(settings))
    yield dash_app
    store._shared.clear()
    store._shared.update(saved)


@pytest.fixture(scope="module")
def page(app):
    """The page module as Dash imported it (importing it again under another name would register /kpis twice)."""
    import sys

    import dash
    return sys.modules[next(p["module"] for p in dash.page_registry.values() if p["path"] == "/kpis")]


@pytest.fixture
def as_user(app):
    """Run call() in a request of this demo account (None: nobody signed in)."""
    config = store.config()

    def run(username, call, path="/kpis"):
        with app.server.test_request_context(path):
            g.cityops_user = config.users.user(username) if username else None
            return call()
    return run


def now():
    return store.minute(clock.now(store.config()))


def walk(node):
    yield node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and hasattr(child, "to_plotly_json"):
            yield from walk(child)


def by_id(root, id_):
    return next((n for n in walk(root) if getattr(n, "id", None) == id_), None)


def by_class(root, cls):
    return [n for n in walk(root) if cls in (getattr(n, "className", None) or "").split()]


def text(node) -> str:
    if isinstance(node, str):
        return node
    children = getattr(node, "children", None)
    if children is None:
        return ""
    if isinstance(children, (list, tuple)):
        return "".join(text(c) for c in children if c is not None)
    return text(children) if not isinstance(children, (int, float)) else str(children)


def data(node, name):
    return node.to_plotly_json()["props"].get(f"data-{name}")


# --- tiles, ranking, comparison -------------------------------------------------------------------------------------

def test_tiles_show_what_query_kpis_gives_city_score_first(page, as_user):
    out = as_user("analyst", lambda: page.layout(lang="en", grain="month"))
    tiles = by_class(out, "kpi-tile")
    board = as_user("analyst", lambda: kpis.board("month", now()))
    assert tiles[0].id == "kpi-tile-city_score"
    assert {t.id for t in tiles} == {f"kpi-tile-{c.current.kpi_id}" for c in board} and len(tiles) == len(board) == 16
    config = store.config()
    checked = 0
    for comparison in board:
        fig = comparison.current
        kpi = config.kpis[fig.kpi_id]
        tile = by_id(out, f"kpi-tile-{fig.kpi_id}")
        value = by_id(tile, f"kpi-value-{fig.kpi_id}")
        assert text(value) == fmt.value(kpi, fig.value, "en"), fig.kpi_id
        assert data(value, "value") == ("" if fig.value is None else repr(fig.value))
        assert f"status-{fig.status or 'none'}" in tile.className and data(tile, "status") == (fig.status or "")
        assert text(by_class(tile, "kpi-target")[0]) == fmt.target(kpi, fig.target, "en")
        want = fmt.change(kpi, fig.value, comparison.previous.value, "en")[0]
        assert text(by_id(tile, f"kpi-delta-prev-{fig.kpi_id}")).startswith(want)
        series = as_user("analyst", lambda: kpis.series(fig.kpi_id, "month", now(), points=12))
        assert data(by_id(tile, f"kpi-spark-{fig.kpi_id}"), "points") == \
            ",".join("" if f.value is None else repr(f.value) for f in series)
        checked += fig.value is not None
    assert checked >= 14, "the small city should give most KPIs a value this month"


def test_the_ranking_lists_districts_best_first_as_query_kpis_ranks_them(page, as_user):
    for kpi_id in ("response_rate", "median_hours_to_close"):
        out = as_user("analyst", lambda: page.layout(lang="zh", kpi=kpi_id, grain="month"))
        rows = by_id(out, "kpis-ranking").children[1].children
        ranked = as_user("analyst", lambda: kpis.ranking(kpi_id, "month", now()))
        assert [data(r, "district") for r in rows] == [r.district_id for r in ranked]
        assert [data(r, "rank") for r in rows] == [r.rank if r.rank is not None else "" for r in ranked]
        values = [float(data(r, "value")) for r in rows if data(r, "value")]
        assert len(values) == 12
        higher = store.config().kpis[kpi_id].higher_is_better
        assert values == sorted(values, reverse=higher), "best first"
        for row, r in zip(rows, ranked):
            assert f"status-{r.figure.status or 'none'}" in row.className


def test_two_periods_side_by_side_for_the_city_and_each_district(page, as_user):
    out = as_user("analyst", lambda: page.layout(kpi="resolution_rate", grain="week", a="2026-W44", b="2026-W46"))
    table = by_id(out, "kpis-compare")
    assert [text(th) for th in table.children[0].children.children][1:3] == ["2026-W44", "2026-W46"]
    rows = table.children[1].children
    assert data(rows[0], "district") == "" and len(rows) == 13, "the city first, then the 12 districts"
    kpi = store.config().kpis["resolution_rate"]
    from datetime import date
    for row in (rows[0], rows[5]):
        district = data(row, "district") or None
        scope = (district,) if district else None
        a = as_user("analyst", lambda: kpis.figure("resolution_rate", "week", now(), scope, at=date(2026, 10, 26)))
        b = as_user("analyst", lambda: kpis.figure("resolution_rate", "week", now(), scope, at=date(2026, 11, 9)))
        cells = [text(td) for td in row.children]
        assert cells[1:] == [fmt.value(kpi, a.value, "en"), fmt.value(kpi, b.value, "en"),
                             fmt.change(kpi, b.value, a.value, "en")[0]]


# --- drill-down and "how is this computed" --------------------------------------------------------------------------

def test_records_behind_a_figure_page_by_page_and_audited(page, as_user):
    view = page.resolve("en", "satisfaction_rate", "month")
    fig = as_user("analyst", lambda: kpis.figure("satisfaction_rate", "month", now()))
    target = {"kpi": "satisfaction_rate", "at": "2026-11", "district": ""}
    first = as_user("analyst", lambda: page.records_page(view, target, "all", 0))
    assert first["total"] == fig.used + sum(fig.excluded.values()) > page.PAGE_SIZE
    assert len(first["rows"]) == page.PAGE_SIZE and first["pages"] == -(-first["total"] // page.PAGE_SIZE)
    second = as_user("analyst", lambda: page.records_page(view, target, "all", 1))
    both = [r["id"] for r in first["rows"] + second["rows"]]
    assert both == [r["id"] for r in kpis.records("satisfaction_rate", "month", now(), limit=2 * page.PAGE_SIZE).rows]
    excluded = as_user("analyst", lambda: page.records_page(view, target, "excluded", 0))
    assert excluded["total"] == fig.excluded["no_rating"] > 0
    assert {r["reason"] for r in excluded["rows"]} == {store.config().kpis["satisfaction_rate"].require[0].reason.en}
    counted = as_user("analyst", lambda: page.records_page(view, target, "numerator", 0))
    assert counted["total"] == fig.numerator
    district = as_user("analyst", lambda: page.records_page(view, {**target, "district": "D03"}, "denominator", 0))
    d03 = kpis.figure("satisfaction_rate", "month", now(), ("D03",))
    name = {d[0]: d[1] for d in kpis.districts()}["D03"]
    assert district["total"] == d03.used > 0 and {r["district_id"] for r in district["rows"]} == {name}
    entry = acks.audit("satisfaction_rate", limit=1)[0]
    assert (entry["actor"], entry["action"]) == ("analyst", "view_records")
    assert {k: entry["detail"][k] for k in ("grain", "period", "part", "district")} == \
        {"grain": "month", "period": "2026-11", "part": "denominator", "district": "D03"}


def test_how_it_is_computed_shows_definition_formula_data_and_exclusions(page, as_user):
    view = page.resolve("zh", "on_time_closure_rate", "month")
    fig = kpis.figure("on_time_closure_rate", "month", now())
    panel = as_user("analyst", lambda: page.how_panel(view, "on_time_closure_rate"))
    total = sum(fig.excluded.values())
    excluded = by_id(panel, "kpis-how-excluded")
    assert data(excluded, "total") == total > 0 and f"{total:,}" in text(excluded)
    reasons = {data(li, "reason"): data(li, "count") for li in walk(panel) if data(li, "reason") if hasattr(li, "to_plotly_json")}
    assert reasons == fig.excluded and list(reasons) == ["no_deadline", "not_yet_closed"]
    kpi = store.config().kpis["on_time_closure_rate"]
    words = text(panel)
    assert kpi.description.zh in words and "按时办结率" in words
    assert f"{fig.numerator:,} ÷ {fig.used:,} = {fmt.value(kpi, fig.value, 'zh')}" in text(by_id(panel, "kpis-how-formula"))
    assert "12345热线" in words and "2026-11-01 00:00" in words and "gen-" in words, "feeds, window, generation"
    score = as_user("analyst", lambda: page.how_panel(view, "city_score"))
    assert len([n for n in walk(score) if data(n, "component") if hasattr(n, "to_plotly_json")]) == 11


# --- small numbers, permissions -------------------------------------------------------------------------------------

def test_a_kiosk_sees_small_figures_suppressed_and_no_records(page, as_user):
    """Today's satisfaction per district counts few rated closures: some district has 1-4 (shown to the analyst,
    "< 5 records" on the wall)."""
    found = None
    for kpi_id in ("satisfaction_rate", "response_rate", "repeat_complaints", "median_hours_to_close"):
        ranked = kpis.ranking(kpi_id, "day", now())
        small = [r for r in ranked if r.figure.value is not None and 0 < privacy.counted(r.figure) < 5]
        if small:
            found = kpi_id, small[0]
            break
    assert found, "the small city should have a district-day with 1-4 records"
    kpi_id, row = found
    wall = as_user("wall", lambda: page.layout(lang="en", kpi=kpi_id, grain="day"))
    mine = as_user("analyst", lambda: page.layout(lang="en", kpi=kpi_id, grain="day"))
    wall_rows = {data(r, "district"): r for r in by_id(wall, "kpis-ranking").children[1].children}
    mine_rows = {data(r, "district"): r for r in by_id(mine, "kpis-ranking").children[1].children}
    assert "< 5 records" in text(wall_rows[row.district_id]) and data(wall_rows[row.district_id], "value") == ""
    assert data(wall_rows[row.district_id], "rank") == "", "a suppressed district has no rank"
    assert data(mine_rows[row.district_id], "value") == repr(row.figure.value)
    assert "< 5" not in text(mine_rows[row.district_id])
    assert "Shared screen" in text(by_id(wall, "status-line"))
    drills = [n for n in walk(wall) if isinstance(getattr(n, "id", None), dict) and n.id.get("type") == "kpis-drill"]
    assert drills == [], "no records on a shared screen"
    assert [n for n in walk(mine) if isinstance(getattr(n, "id", None), dict) and n.id.get("type") == "kpis-drill"]


def test_records_are_refused_without_the_permission_or_on_a_kiosk(page, as_user):
    assert as_user("analyst", page._may_drill) and as_user("leader-d01", page._may_drill)
    assert not as_user("wall", page._may_drill), "kiosk"
    assert not as_user("operator", page._may_drill), "no view_records"
    assert not as_user(None, page._may_drill), "nobody signed in"
    bad = [{"kpi": "city_score", "at": "2026-11", "district": ""}, {"kpi": "nope", "at": "2026-11", "district": ""},
           {"kpi": "response_rate", "at": "2026-11'; --", "district": ""},
           {"kpi": "response_rate", "at": "2026-11", "district": "D99"}, "junk", None]
    assert [page._checked_target(t) for t in bad] == [None] * len(bad)


def test_a_leader_sees_only_their_district(page, as_user):
    out = as_user("leader-d01", lambda: page.layout(lang="en", kpi="response_rate"))
    assert [data(r, "district") for r in by_id(out, "kpis-ranking").children[1].children] == ["D01"]
    tile = by_id(out, "kpi-value-response_rate")
    d01 = kpis.figure("response_rate", "month", now(), ("D01",))
    assert data(tile, "value") == repr(d01.value)


# --- the address ----------------------------------------------------------------------------------------------------

def test_controls_move_to_the_address_of_the_new_view(page, as_user):
    view = page.resolve("zh", "response_rate", "month", "2026-10", "D02")
    go = lambda control, value: parse_qs(urlsplit(page.go_to(view, control, value)).query)  # noqa: E731
    assert go("kpis-grain", "week") == {"lang": ["zh"], "kpi": ["response_rate"], "grain": ["week"],
                                        "at": ["2026-W40"], "district": ["D02"]}
    assert go("kpis-at", "2026-11") == {"lang": ["zh"], "kpi": ["response_rate"], "grain": ["month"],
                                        "district": ["D02"]}, "the current period is the default"
    assert go("kpis-district", "")["at"] == ["2026-10"] and "district" not in go("kpis-district", "")
    assert go("kpis-kpi", "overdue_open")["kpi"] == ["overdue_open"]
    assert go("kpis-a", "2026-07")["a"] == ["2026-07"]
    assert page.go_to(view, "kpis-grain", "month") is None and page.go_to(view, "kpis-grain", "decade") is None
    out = as_user("analyst", lambda: page.layout(lang="zh", kpi="response_rate", grain="quarter", at="2026-Q3"))
    assert by_id(out, "lang-switch").href == "/kpis?lang=en&kpi=response_rate&grain=quarter&at=2026-Q3"
    fallback = as_user("analyst", lambda: page.resolve("en", "nope", "decade", "2099-01", "D99", "x", None))
    assert (fallback.kpi, fallback.grain, fallback.at, fallback.district, fallback.a) == \
        ("city_score", "month", None, None, None), "in-page navigation falls back to defaults"


def _client(app, user="analyst"):
    client = app.server.test_client()
    from tests.browser import DEMO_PASSWORDS
    response = client.post("/login", data={"username": user, "password": DEMO_PASSWORDS[user]})
    assert response.status_code == 303, response.status_code
    return client


@pytest.mark.parametrize("query, words", [
    ("kpi=nope", "kpi must be one of"), ("kpi=response_rate%27%3B", "kpi must be one of"),
    ("grain=decade", "grain must be one of"), ("grain=hour&kpi=response_rate", "the periods response_rate supports"),
    ("at=2026-13", "at must be a period"), ("at=2026-W54", "at must be a period"), ("at=yesterday", "at must be"),
    ("at=2099-01", "a period that has begun"), ("a=2026-02-30", "a must be a period"), ("b=1900", "b must be"),
    ("district=D99", "district must be one of"), ("district=D01%27%3B", "district must be one of"),
    ("kpi=response_rate&nope=1", "unknown parameter"),
])
def test_bad_values_in_the_address_get_400_with_a_clear_message(app, query, words):
    response = _client(app).get(f"/kpis?{query}")
    body = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 400 and words in body and "Traceback" not in body, (query, body[:300])


def test_good_addresses_and_a_leaders_districts(app):
    client = _client(app)
    for query in ("", "kpi=response_rate&grain=month&at=2026-10", "grain=day&at=2026-11-20&district=D05",
                  "kpi=overdue_open&grain=quarter&a=2026-Q2&b=2026-Q4", "grain=week&at=2026-W47", "at=2026"):
        assert client.get(f"/kpis?{query}").status_code == 200, query
    leader = _client(app, "leader-d01")
    assert leader.get("/kpis?district=D01").status_code == 200
    response = leader.get("/kpis?district=D02")
    assert response.status_code == 400 and "['D01']" in html.unescape(response.get_data(as_text=True))


# --- in a real browser ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(loaded_city):
    settings, _, _ = loaded_city
    with dashboard_server(settings, timeout=120) as base:
        yield base


@pytest.mark.browser
def test_the_page_in_chromium_tiles_ranking_drill_how_and_navigation(server, app, tmp_path):
    config = store.config()
    wait = {"timeout": 120_000}
    fig = kpis.figure("satisfaction_rate", "month", now())
    ranked = kpis.ranking("satisfaction_rate", "month", now())
    with chromium(tmp_path) as browser:
        page = signed_in(browser, server, "analyst")
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server}/kpis?lang=en&kpi=satisfaction_rate&grain=month", **wait)
        page.wait_for_selector("#kpis-ranking tbody tr", **wait)
        # Tiles show what query.kpis gives; city score first.
        assert page.get_attribute(".kpi-tile", "id") == "kpi-tile-city_score"
        kpi = config.kpis["satisfaction_rate"]
        assert page.inner_text("#kpi-value-satisfaction_rate") == fmt.value(kpi, fig.value, "en")
        # The ranking: best first, as query.kpis ranks.
        shown = page.eval_on_selector_all("#kpis-ranking tbody tr", "rows => rows.map(r => r.dataset.district)")
        assert shown == [r.district_id for r in ranked]
        # How is this computed: the excluded count.
        page.click("#kpi-tile-satisfaction_rate .kpi-how")
        page.wait_for_selector("#kpis-how-excluded", state="visible", **wait)
        total = sum(fig.excluded.values())
        assert page.get_attribute("#kpis-how-excluded", "data-total") == str(total)
        assert f"{total:,}" in page.inner_text("#kpis-how-excluded")
        page.keyboard.press("Escape")                                   # closes it, as its × does
        page.wait_for_selector("#kpis-how-modal", state="hidden", **wait)
        # Records: the expected count, page after page, then only the excluded ones.
        page.click("#kpi-tile-satisfaction_rate .kpi-records")
        page.wait_for_function("document.querySelectorAll('#kpis-drill-table tbody tr td').length > 0", **wait)
        summary = page.inner_text("#kpis-drill-summary")
        assert summary.startswith(f"{fig.used + total:,} records"), summary
        page.click("#kpis-drill-part label:has-text('Excluded')")
        page.wait_for_function(f"document.querySelector('#kpis-drill-summary').innerText.startsWith('{total:,} ')",
                               **wait)
        cells = page.eval_on_selector_all("#kpis-drill-table tbody tr", "rows => rows.length")
        assert cells >= min(total, 15)
        page.click("#kpis-drill-close")
        page.wait_for_selector("#kpis-drill-modal", state="hidden", **wait)
        # A control moves the address without reloading; the page follows it.
        page.evaluate("window.__same_document = true")
        page.click(".kpis-grains label:has-text('Week')")
        page.wait_for_function("location.search.includes('grain=week')", **wait)
        page.wait_for_selector(".kpis-page[data-grain='week']", **wait)
        assert page.evaluate("window.__same_document === true"), "in-page navigation, no reload"
        assert re.search(r"\d{4}-W\d{2}", page.get_attribute(".kpis-page", "data-period"))
        assert "kpi=satisfaction_rate" in page.url
        assert not errors, errors
        page.context.close()
    # A bad value in the address: 400, for a signed-in user too.
    with pytest.raises(urllib.error.HTTPError) as info:
        http_client(server, "analyst").open(f"{server}/kpis?grain=decade", timeout=30)
    assert info.value.code == 400 and "grain must be one of" in info.value.read().decode()
