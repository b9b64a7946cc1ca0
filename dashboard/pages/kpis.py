"""The district leaders' KPIs at `/kpis`: a tile per KPI (city score first) with its value, target, status, change
against the previous period and the same period last year (like for like) and a sparkline; a district ranking of
the selected KPI; two periods side by side; the records behind every figure; and how each one is computed.

Everything shown is in the address (`?kpi=response_rate&grain=month&at=2026-10&district=D01&a=2026-09&b=2026-10`):
a view is a link. A full load with a bad value is refused with 400 (dashboard/params.py); the controls move by
in-page navigation (no reload), which calls layout() again with the new parameters.

Figures come from query/kpis.py, always within the caller's scope (the query layer enforces it: this page never
filters by the user's district). On a shared screen (query/privacy.py) figures counting fewer than k records are
shown as "< k" and records cannot be opened.
"""
import warnings
from dataclasses import dataclass, fields, replace
from datetime import date
from urllib.parse import urlencode, urlsplit

import dash
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dash_table, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import abort
from werkzeug.datastructures import MultiDict

from core import kpis as defs
from core.kpis import GRAINS
from core.warehouse import NoData
from dashboard import auth, callback_requests, params, shell
from dashboard import kpi_format as fmt
from dashboard.shell import t
from query import health, kpis, overview, privacy, store

dash.register_page(__name__, path="/kpis", title="CityOps · KPIs")

PATH = "/kpis"
SPARK_POINTS = 12
PERIOD_CHOICES = {"day": 62, "week": 27, "month": 25, "quarter": 12, "year": 6}   # how far back the menus go
PAGE_SIZE = 15
MAX_PAGE = 10_000         # the records table's last page a request may ask for (offsets stay far from overflow)
FONTS = '"Noto Sans CJK SC", "Noto Sans SC", "Noto Sans", "Source Han Sans SC", "PingFang SC", sans-serif'
CODED = ("status", "priority", "channel", "outcome", "rating")    # columns of codes, shown in words when known
FEED_ENTITIES = {"incidents": ("incidents",), "service_cases": ("service_cases",),
                 "sensor_hours": ("sensors", "sensor_readings"), "sensor_readings": ("sensors", "sensor_readings")}


# --- the view: what the address asks for, with defaults -----------------------------------------------------------

@dataclass(frozen=True)
class View:
    lang: str
    kpi: str
    grain: str
    at: str | None            # period label; None: the current period, to date
    district: str | None      # None: everything the caller may see
    a: str | None             # the two periods compared; None: the one before `at`, and `at`
    b: str | None

    @property
    def scope(self):
        return (self.district,) if self.district else None


def _configured() -> dict:
    return getattr(store.config(), "kpis", None) or {}


def resolve(lang=None, kpi=None, grain=None, at=None, district=None, a=None, b=None) -> View:
    """The view for these parameters; anything unusable falls back to its default (in-page navigation reaches
    layout() without the 400 check of a full load)."""
    configured = _configured()
    kpi = kpi if kpi in configured else next(iter(configured), "")
    periods = configured[kpi].periods if kpi else list(GRAINS)
    grain = grain if grain in periods else ("month" if "month" in periods else periods[0])
    today = shell.now().date()

    def label(value):
        parsed = kpis.parse_label(value) if value else None
        if parsed is None or parsed[1] > today:
            return None
        return kpis.period_of(grain, parsed[1]).label

    known = {d[0] for d in _districts()}
    return View(shell.language(lang), kpi, grain, label(at), district if district in known else None,
                label(a), label(b))


def _districts() -> list[tuple[str, str, str]]:
    try:
        return kpis.districts()
    except NoData:        # nothing published yet
        return []


def href(view: View, **changes) -> str:
    """The address of this view with some parameters changed (None: back to the default)."""
    v = replace(view, **changes)
    query = {"lang": v.lang, "kpi": v.kpi, "grain": v.grain, "at": v.at, "district": v.district, "a": v.a, "b": v.b}
    return PATH + "?" + urlencode({k: val for k, val in query.items() if val})


def _now():
    return store.minute(shell.now())


def _date(label: str | None) -> date | None:
    parsed = kpis.parse_label(label) if label else None
    return parsed[1] if parsed else None


def _period(view: View, label: str | None = None):
    at = _date(label if label is not None else view.at)
    return kpis.period_of(view.grain, at or _now())


def _compared(view: View) -> tuple[str, str]:
    """Labels of period A and B: as chosen, else the period before the selected one, and the selected one."""
    current = _period(view)
    return view.a or kpis.shift(current, -1).label, view.b or current.label


def _name(kpi_id: str, lang: str) -> str:
    return _configured()[kpi_id].name.model_dump()[lang]


def _district_name(district_id: str | None, lang: str) -> str:
    if not district_id:
        return t(lang, "kpis_page.whole_scope")
    for d in _districts():
        if d[0] == district_id:
            return d[1] if lang == "en" else d[2]
    return district_id


def _may_drill() -> bool:
    return not privacy.shared_screen() and auth.allowed("view_records")


# --- the page -----------------------------------------------------------------------------------------------------

def layout(lang=None, kpi=None, grain=None, at=None, district=None, a=None, b=None, kiosk=None, playlist=None, **_):
    view = resolve(lang, kpi, grain, at, district, a, b)
    if not view.kpi:
        body = html.Div(t(view.lang, "kpis_page.none_configured"), className="kpis-empty")
    elif not overview.has_data():
        body = html.Div(t(view.lang, "status.no_data"), className="kpis-empty")
    else:
        body = page(view)
    frame = shell.frame(view.lang, PATH, body, status=_status(view), subtitle="kpis_page.subtitle",
                        playlist=playlist, kiosk=kiosk)
    _keep_view_on_language_switch(frame, view)
    return html.Div(frame, className="kpis-root")


def _status(view: View):
    parts = [html.Span(f"{t(view.lang, 'status.as_of')} {shell.now():%Y-%m-%d %H:%M}", id="kpis-as-of")]
    if privacy.shared_screen():
        parts.append(html.Span(t(view.lang, "kpis_page.shared_screen", k=privacy.min_records()),
                               className="kpis-shared", title=t(view.lang, "kpis_page.suppressed.help",
                                                                k=privacy.min_records())))
    return parts


def _keep_view_on_language_switch(frame, view: View) -> None:
    """The frame's language link names only the language: keep the rest of the view too."""
    other = next((code for code in store.config().messages.languages if code != view.lang), view.lang)

    def walk(node):
        if getattr(node, "id", None) == "lang-switch":
            node.href = href(view, lang=other)
            return True
        children = getattr(node, "children", None)
        for child in children if isinstance(children, (list, tuple)) else [children]:
            if child is not None and hasattr(child, "to_plotly_json") and walk(child):
                return True
        return False
    walk(frame)


def page(view: View):
    lang = view.lang
    now = _now()
    at = _date(view.at)
    board = kpis.board(view.grain, now, view.scope, at)
    board.sort(key=lambda c: (_configured()[c.current.kpi_id].kind != "composite",))   # city score first (stable)
    may_drill = _may_drill()
    return html.Div([
        controls(view),
        html.Section([tile(view, c, now, may_drill) for c in board], id="kpis-tiles", className="kpis-tiles"),
        html.Div([ranking_panel(view, now, may_drill), comparison_panel(view, now, may_drill)],
                 className="kpis-lower"),
        _modals(lang),
        dcc.Store(id="kpis-view", data=view.__dict__),
        dcc.Store(id="kpis-go"),
        dcc.Store(id="kpis-drill-target"),
    ], className="kpis-page", **{"data-grain": view.grain, "data-period": _period(view).label})


def _period_options(view: View, selected: list[str | None]) -> list[dict]:
    current = kpis.period_of(view.grain, _now())
    labels = [kpis.shift(current, -n).label for n in range(PERIOD_CHOICES[view.grain])]
    labels += sorted((s for s in selected if s and s not in labels), reverse=True)
    to_date = t(view.lang, "kpis_page.to_date")
    return [{"label": f"{label} · {to_date}" if label == current.label else label, "value": label}
            for label in labels]


def controls(view: View):
    lang = view.lang
    periods = _configured()[view.kpi].periods
    district_options = [{"label": t(lang, "kpis_page.whole_scope"), "value": ""}] + [
        {"label": d[1] if lang == "en" else d[2], "value": d[0]} for d in _districts()]
    return html.Section([
        html.Div([html.Span(t(lang, "kpis_page.grain"), className="kpis-label"),
                  dcc.RadioItems(id="kpis-grain", value=view.grain, className="kpis-grains", inline=True,
                                 options=[{"label": t(lang, f"kpis_page.grain.{g}"), "value": g} for g in periods])],
                 className="kpis-control"),
        html.Div([html.Label(t(lang, "kpis_page.period"), htmlFor="kpis-at", className="kpis-label"),
                  dcc.Dropdown(id="kpis-at", value=_period(view).label, clearable=False, searchable=False,
                               options=_period_options(view, [view.at]), className="kpis-dropdown")],
                 className="kpis-control"),
        html.Div([html.Label(t(lang, "kpis_page.district"), htmlFor="kpis-district", className="kpis-label"),
                  dcc.Dropdown(id="kpis-district", value=view.district or "", clearable=False, searchable=False,
                               options=district_options, className="kpis-dropdown")],
                 className="kpis-control"),
        html.Div(_window_text(view), className="kpis-window", id="kpis-window"),
    ], className="kpis-controls panel")


def _window_text(view: View) -> str:
    p = _period(view)
    end = min(p.end, _now())
    key = "kpis_page.window.to_date" if end < p.end else "kpis_page.window"
    return t(view.lang, key, start=f"{p.start:%Y-%m-%d %H:%M}", end=f"{end:%Y-%m-%d %H:%M}",
             scope=_district_name(view.district, view.lang))


def _shown(kpi, figure, lang: str) -> tuple[str, bool]:
    """(text, suppressed) of a figure's value as this screen may show it."""
    if privacy.suppressed(figure):
        return t(lang, "kpis_page.suppressed", k=privacy.min_records()), True
    return fmt.value(kpi, figure.value, lang), False


def _status_label(lang: str, status: str | None) -> str:
    return t(lang, f"kpis_page.status.{status or 'none'}")


def tile(view: View, comparison, now, may_drill: bool):
    lang = view.lang
    current, previous, last_year = comparison.current, comparison.previous, comparison.last_year
    kpi = _configured()[current.kpi_id]
    text, hidden = _shown(kpi, current, lang)
    status = None if hidden else current.status
    spark = kpis.series(kpi.id, view.grain, now, view.scope, points=SPARK_POINTS, at=_date(view.at))
    points = [None if privacy.suppressed(f) else f.value for f in spark]
    labels = [kpis.period_of(view.grain, f.start).label for f in spark]
    spark_title = " · ".join(f"{lab} {fmt.value(kpi, v, lang)}" for lab, v in zip(labels, points))
    help_text = t(lang, "kpis_page.suppressed.help", k=privacy.min_records()) if hidden else None
    deltas = []
    for key, other, cls in (("kpis_page.vs_previous", previous, "prev"), ("kpis_page.vs_last_year", last_year, "ly")):
        if hidden or privacy.suppressed(other):
            change, direction = "–", "none"
        else:
            change, direction = fmt.change(kpi, current.value, other.value, lang)
        window = f"{other.start:%Y-%m-%d %H:%M} – {other.end:%Y-%m-%d %H:%M}"
        deltas.append(html.Div([html.Span(change, className=f"kpi-delta-value delta-{direction}"),
                                html.Span(t(lang, key), className="kpi-delta-label")],
                               className=f"kpi-delta kpi-delta-{cls}", id=f"kpi-delta-{cls}-{kpi.id}",
                               title=t(lang, "kpis_page.compared_window", window=window)))
    selected = kpi.id == view.kpi
    buttons = [html.Button(t(lang, "kpis_page.how"), id={"type": "kpis-how", "kpi": kpi.id}, className="kpi-how",
                           title=t(lang, "kpis_page.how.title"))]
    if may_drill and kpi.kind != "composite":
        buttons.append(_drill_button(lang, kpi.id, _period(view).label, view.district or "",
                                     t(lang, "kpis_page.records"), "kpi-records"))
    return html.Div([
        html.Div([dcc.Link(kpi.name.model_dump()[lang], href=href(view, kpi=kpi.id), className="kpi-name",
                           title=t(lang, "kpis_page.select_kpi")),
                  html.Span(_status_label(lang, status), className="kpi-status-label")], className="kpi-head"),
        html.Div(text, className="kpi-value" + (" suppressed" if hidden else ""), id=f"kpi-value-{kpi.id}",
                 title=help_text, **{"data-value": "" if current.value is None or hidden else repr(current.value)}),
        html.Div(fmt.target(kpi, current.target, lang), className="kpi-target"),
        html.Div(deltas, className="kpi-deltas"),
        html.Img(src=fmt.sparkline(points, current.target, *((420, 62) if kpi.kind == "composite" else (200, 44))),
                 className="kpi-spark", alt=spark_title, title=spark_title,
                 id=f"kpi-spark-{kpi.id}", **{"data-points": ",".join("" if v is None else repr(v) for v in points)}),
        html.Div(buttons, className="kpi-actions"),
    ], className=f"kpi-tile status-{status or 'none'}" + (" selected" if selected else "")
       + (" kpi-tile-score" if kpi.kind == "composite" else ""), id=f"kpi-tile-{kpi.id}",
        **{"data-status": status or ""})


def _drill_button(lang: str, kpi_id: str, period: str, district: str, text, cls: str, title: str | None = None):
    """A button opening the records behind one figure; `cls` also tells apart buttons of the same figure (a tile
    and the comparison's city row can show the same one), as ids must be unique."""
    return html.Button(text, id={"type": "kpis-drill", "kpi": kpi_id, "at": period, "district": district,
                                 "src": cls},
                       className=cls, title=title or t(lang, "kpis_page.records.title"))


def _kpi_menu(view: View, id_: str):
    lang = view.lang
    options = [{"label": k.name.model_dump()[lang], "value": k.id} for k in _configured().values()
               if view.grain in k.periods]
    return dcc.Dropdown(id=id_, value=view.kpi, options=options, clearable=False, searchable=False,
                        className="kpis-dropdown kpis-kpi-menu")


def ranking_panel(view: View, now, may_drill: bool):
    lang = view.lang
    kpi = _configured()[view.kpi]
    period = _period(view)
    rows = privacy.ranking(kpis.ranking(kpi.id, view.grain, now, view.scope, at=_date(view.at)))
    drill = may_drill and kpi.kind != "composite"
    head = html.Tr([html.Th(t(lang, "kpis_page.rank")), html.Th(t(lang, "kpis_page.col.district_id")),
                    html.Th(t(lang, "kpis_page.value"), className="num"), html.Th(t(lang, "kpis_page.target.col"),
                                                                                className="num"),
                    html.Th(t(lang, "kpis_page.status"))] + ([html.Th(t(lang, "kpis_page.records"))] if drill else []))
    body = []
    for row in rows:
        text, hidden = _shown(kpi, row.figure, lang)
        status = None if hidden else row.figure.status
        name = row.name_en if lang == "en" else row.name_zh
        cells = [html.Td("–" if row.rank is None else str(row.rank), className="rank"), html.Td(name),
                 html.Td(text, className="num" + (" suppressed" if hidden else ""),
                         title=t(lang, "kpis_page.suppressed.help", k=privacy.min_records()) if hidden else None),
                 html.Td(fmt.value(kpi, row.figure.target, lang), className="num muted"),
                 html.Td(html.Span(_status_label(lang, status), className="status-pill"))]
        if drill:
            cells.append(html.Td(_drill_button(lang, kpi.id, period.label, row.district_id, "↗", "kpi-row-records")))
        body.append(html.Tr(cells, className=f"status-{status or 'none'}",
                            **{"data-district": row.district_id, "data-rank": "" if row.rank is None else row.rank,
                               "data-value": "" if hidden or row.figure.value is None else repr(row.figure.value)}))
    better = t(lang, "kpis_page.higher_better" if kpi.higher_is_better else "kpis_page.lower_better")
    return html.Section([
        html.Div([html.H2(t(lang, "kpis_page.ranking", period=period.label), className="panel-title"),
                  _kpi_menu(view, "kpis-kpi")], className="panel-head kpis-panel-head"),
        html.Div(better, className="kpis-note"),
        html.Table([html.Thead(head), html.Tbody(body)], className="kpis-table", id="kpis-ranking"),
    ], className="panel kpis-ranking-panel")


def comparison_panel(view: View, now, may_drill: bool):
    lang = view.lang
    kpi = _configured()[view.kpi]
    label_a, label_b = _compared(view)
    options = _period_options(view, [label_a, label_b])
    figures = {}
    for key, label in (("a", label_a), ("b", label_b)):
        at = _date(label)
        figures[key] = {None: kpis.figure(kpi.id, view.grain, now, view.scope, at=at)}
        for row in kpis.ranking(kpi.id, view.grain, now, view.scope, at=at):
            figures[key][row.district_id] = row.figure
    drill = may_drill and kpi.kind != "composite"
    rows = [(None, t(lang, "kpis_page.whole_scope") if not view.district else _district_name(view.district, lang))]
    if not view.district:
        rows += [(d[0], d[1] if lang == "en" else d[2]) for d in _districts()]
    body = []
    for district, name in rows:
        fa, fb = figures["a"].get(district), figures["b"].get(district)
        if fa is None or fb is None:
            continue
        cells = [html.Td(name, className="name")]
        for fig, label in ((fa, label_a), (fb, label_b)):
            text, hidden = _shown(kpi, fig, lang)
            status = None if hidden else fig.status
            content = text
            if drill and not hidden and fig.value is not None:
                content = _drill_button(lang, kpi.id, label, district or view.district or "", text, "kpi-cell-records")
            cells.append(html.Td(content, className=f"num status-text-{status or 'none'}"
                                 + (" suppressed" if hidden else ""),
                                 title=t(lang, "kpis_page.suppressed.help", k=privacy.min_records()) if hidden
                                 else None))
        hidden = privacy.suppressed(fa) or privacy.suppressed(fb)
        change, direction = ("–", "none") if hidden else fmt.change(kpi, fb.value, fa.value, lang)
        cells.append(html.Td(change, className=f"num delta-{direction}"))
        body.append(html.Tr(cells, className="city-row" if district is None else "",
                            **{"data-district": district or ""}))
    head = html.Tr([html.Th(t(lang, "kpis_page.col.district_id")), html.Th(label_a, className="num"),
                    html.Th(label_b, className="num"), html.Th(t(lang, "kpis_page.change"), className="num")])
    return html.Section([
        html.Div([html.H2(t(lang, "kpis_page.compare", kpi=kpi.name.model_dump()[lang]), className="panel-title")],
                 className="panel-head kpis-panel-head"),
        html.Div([
            html.Div([html.Label(t(lang, "kpis_page.period_a"), htmlFor="kpis-a", className="kpis-label"),
                      dcc.Dropdown(id="kpis-a", value=label_a, options=options, clearable=False, searchable=False,
                                   className="kpis-dropdown")], className="kpis-control"),
            html.Div([html.Label(t(lang, "kpis_page.period_b"), htmlFor="kpis-b", className="kpis-label"),
                      dcc.Dropdown(id="kpis-b", value=label_b, options=options, clearable=False, searchable=False,
                                   className="kpis-dropdown")], className="kpis-control"),
        ], className="kpis-compare-controls"),
        html.Table([html.Thead(head), html.Tbody(body)], className="kpis-table", id="kpis-compare"),
        html.Div(t(lang, "kpis_page.compare.note"), className="kpis-note"),
    ], className="panel kpis-compare-panel")


def _modals(lang: str):
    how = html.Div(html.Div([
        html.Button("×", id="kpis-how-close", className="kpis-close", title=t(lang, "kpis_page.close")),
        html.Div(id="kpis-how-body"),
    ], className="kpis-modal-card", role="dialog", **{"aria-modal": "true"}),
        id="kpis-how-modal", className="kpis-modal", hidden=True)
    parts = [{"label": t(lang, f"kpis_page.part.{p}"), "value": p} for p in kpis.PARTS]
    drill = html.Div(html.Div([
        html.Button("×", id="kpis-drill-close", className="kpis-close", title=t(lang, "kpis_page.close")),
        html.H2(id="kpis-drill-title", className="panel-title"),
        dcc.RadioItems(id="kpis-drill-part", options=parts, value="all", inline=True, className="kpis-parts"),
        html.Div(id="kpis-drill-summary", className="kpis-drill-summary"),
        _records_table(),
    ], className="kpis-modal-card kpis-drill-card", role="dialog", **{"aria-modal": "true"}),
        id="kpis-drill-modal", className="kpis-modal", hidden=True)
    return html.Div([how, drill])


def _records_table():
    # A DataTable paged on the server (page_action custom). Dash 4 warns on each one made that DataTable will leave
    # the built-in components (for dash-ag-grid): expected, so silenced here and only here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"\s*The dash_table.DataTable will be removed", DeprecationWarning)
        return dash_table.DataTable(
            id="kpis-drill-table", columns=[], data=[], page_action="custom", page_current=0, page_size=PAGE_SIZE,
            page_count=1, cell_selectable=False, sort_action="none", style_table={"overflowX": "auto"},
            style_cell={"fontFamily": FONTS, "fontSize": "var(--kpis-table-font)", "padding": "0.3em 0.6em",
                        "textAlign": "left", "whiteSpace": "nowrap"},
            style_header={"fontWeight": "700", "backgroundColor": "#e9ecef"},
            style_data_conditional=[{"if": {"filter_query": '{part_code} = "excluded"'}, "backgroundColor": "#fff4e6"}])


# --- how is this computed -----------------------------------------------------------------------------------------

def how_panel(view: View, kpi_id: str):
    """The definition, the formula in words with this figure's numbers, the data it used and what it excluded."""
    lang = view.lang
    kpi = _configured()[kpi_id]
    now = _now()
    fig = kpis.figure(kpi_id, view.grain, now, view.scope, at=_date(view.at))
    hidden = privacy.suppressed(fig)
    k = privacy.min_records()
    value_text = t(lang, "kpis_page.suppressed", k=k) if hidden else fmt.value(kpi, fig.value, lang)
    if hidden:
        formula = t(lang, "kpis_page.how.formula.suppressed", k=k)
    elif fig.value is None:
        formula = t(lang, "kpis_page.how.formula.none")
    elif kpi.kind == "count":
        formula = t(lang, "kpis_page.how.formula.count", n=f"{fig.numerator:,}", value=value_text)
    elif kpi.kind == "ratio":
        formula = t(lang, "kpis_page.how.formula.ratio", n=f"{fig.numerator:,}", used=f"{fig.used:,}",
                    value=value_text)
    elif kpi.kind == "quantile":
        formula = t(lang, "kpis_page.how.formula.quantile", q=f"{kpi.q * 100:g}", used=f"{fig.used:,}",
                    value=value_text)
    else:
        formula = t(lang, "kpis_page.how.formula.composite", cap=f"{kpi.cap:g}", value=value_text)
    sections = [
        html.H2(kpi.name.model_dump()[lang], className="panel-title"),
        html.H3(t(lang, "kpis_page.how.definition")),
        html.P(kpi.description.model_dump()[lang], className="kpis-definition"),
        html.H3(t(lang, "kpis_page.how.formula")),
        html.P(formula, id="kpis-how-formula"),
        html.P(fmt.band(kpi, fig.target, fig.warning, lang)),
    ]
    if kpi.target_per:
        per = "_".join(p for p in ("district", "day") if p in kpi.target_per)
        sections.append(html.P(t(lang, f"kpis_page.how.target_per.{per}",
                                 target=fmt.value(kpi, kpi.target, lang)), className="kpis-note"))
    if kpi.kind == "composite":
        sections.append(_components(view, kpi, fig))
    sections += [html.H3(t(lang, "kpis_page.how.data")), _data_used(view, kpi, fig)]
    sections += [html.H3(t(lang, "kpis_page.how.excluded")), _excluded(view, kpi, fig)]
    if hidden:
        sections.append(html.P(t(lang, "kpis_page.suppressed.help", k=k), className="kpis-note suppressed"))
    return html.Div(sections, className="kpis-how", **{"data-kpi": kpi_id})


def _components(view: View, kpi, fig):
    lang = view.lang
    rows = []
    for cid, part in fig.components.items():
        component = _configured()[cid]
        own = kpis.figure(cid, view.grain, _now(), view.scope, at=_date(view.at))
        hidden = privacy.suppressed(own)
        value = t(lang, "kpis_page.suppressed", k=privacy.min_records()) if hidden else \
            fmt.value(component, part["value"], lang)
        score = "–" if hidden or part["score"] is None else f"{part['score']:.2f}"
        rows.append(html.Tr([html.Td(component.name.model_dump()[lang]), html.Td(f"{part['weight']:g}", className="num"),
                             html.Td(value, className="num"), html.Td(fmt.value(component, part["target"], lang),
                                                                      className="num"),
                             html.Td(score, className="num")], **{"data-component": cid}))
    head = html.Tr([html.Th(t(lang, "kpis_page.how.component")), html.Th(t(lang, "kpis_page.how.weight"), className="num"),
                    html.Th(t(lang, "kpis_page.value"), className="num"),
                    html.Th(t(lang, "kpis_page.target.col"), className="num"),
                    html.Th(t(lang, "kpis_page.how.score"), className="num")])
    return html.Table([html.Thead(head), html.Tbody(rows)], className="kpis-table kpis-components")


def _entities(kpi) -> list[str]:
    if kpi.kind != "composite":
        return [kpi.entity]
    out = []
    for cid in kpi.weights:
        for entity in _entities(_configured()[cid]):
            if entity not in out:
                out.append(entity)
    return out


def _data_used(view: View, kpi, fig):
    lang = view.lang
    config = store.config()
    wanted = {e for entity in _entities(kpi) for e in FEED_ENTITIES.get(entity, (entity,))}
    status = health.feeds_status(shell.now())
    items = [html.Li(t(lang, "kpis_page.how.window", start=f"{fig.start:%Y-%m-%d %H:%M}",
                       end=f"{fig.end:%Y-%m-%d %H:%M}", tz=config.settings.city.timezone,
                       scope=_district_name(view.district, lang)))]
    for feed_id, feed in sorted(config.feeds.items()):
        if feed.entity not in wanted:
            continue
        last = status["feeds"].get(feed_id, {}).get("last_load")
        when = "–" if not last else f"{_local(last):%Y-%m-%d %H:%M}"
        items.append(html.Li(t(lang, "kpis_page.how.feed", feed=feed.name.model_dump()[lang], last=when),
                             **{"data-feed": feed_id}))
    items.append(html.Li(t(lang, "kpis_page.how.generation", generation=status.get("generation") or "–")))
    return html.Ul(items, className="kpis-data-used")


def _local(iso: str):
    from datetime import datetime
    return datetime.fromisoformat(iso).astimezone(store.config().tz)


def _excluded(view: View, kpi, fig):
    lang = view.lang
    total = sum(fig.excluded.values())
    if kpi.kind == "composite":
        missing = [_name(cid, lang) for cid, part in fig.components.items() if part["score"] is None]
        items = [html.Li(t(lang, "kpis_page.how.no_value", names="、".join(missing) if lang == "zh"
                           else ", ".join(missing)))] if missing else []
    else:
        reasons = {r.id: r.reason.model_dump()[lang] for r in kpi.require}
        items = [html.Li([html.Span(reasons.get(code, code)), html.Span(f"{n:,}", className="num")],
                         **{"data-reason": code, "data-count": n}) for code, n in fig.excluded.items()]
    if kpi.kind == "composite":
        lead = t(lang, "kpis_page.how.components_left_out", n=total)
    elif kpi.require:
        lead = t(lang, "kpis_page.how.excluded_total", n=f"{total:,}")
    else:
        lead = t(lang, "kpis_page.how.nothing_excluded")
    return html.Div([html.P(lead, id="kpis-how-excluded", **{"data-total": total}),
                     html.Ul(items, className="kpis-reasons") if items else None])


# --- records ------------------------------------------------------------------------------------------------------

def _checked_target(target) -> dict | None:
    """A drill-down target from the browser, checked before any query (ids can be forged) by the rules of the
    address's kpi, at and district: None when it is not one."""
    if not isinstance(target, dict):
        return None
    kpi_id, label, district = target.get("kpi"), target.get("at"), target.get("district") or ""
    if not all(isinstance(v, str) for v in (kpi_id, label, district)):
        return None
    if params.kpi_problem({"kpi": kpi_id, "at": label, **({"district": district} if district else {})}):
        return None
    if _configured()[kpi_id].kind == "composite":
        return None
    return {"kpi": kpi_id, "at": label, "district": district}


def records_page(view: View, target: dict, part: str, page_number: int) -> dict:
    """One page of the records behind a figure, as the table shows them; audited as a view of records."""
    lang = view.lang
    kpi = _configured()[target["kpi"]]
    at = _date(target["at"])
    scope = (target["district"],) if target["district"] else view.scope
    drill = kpis.records(kpi.id, view.grain, _now(), scope, at=at, part=part, limit=PAGE_SIZE,
                         offset=page_number * PAGE_SIZE)
    period = kpis.period_of(view.grain, at).label
    auth.audit("view_records", subject=kpi.id, grain=view.grain, period=period, part=part,
               district=target["district"] or view.district, page=page_number, rows=len(drill.rows))
    reasons = {r.id: r.reason.model_dump()[lang] for r in kpi.require}
    names = {d[0]: (d[1] if lang == "en" else d[2]) for d in _districts()}
    categories = store.config().catalog.categories
    messages = store.config().messages.catalogues.get(lang, {})
    # Not shown: `time` (always one of the entity's own columns too), `value` when the KPI has no measure.
    skip = {"time"} | ({"value"} if kpi.measure is None and "value" not in defs.ENTITIES[kpi.entity].details else set())
    if part in ("numerator", "denominator") or not kpi.require:
        skip.add("reason")
    rows, columns = [], []
    for row in drill.rows:
        out = {}
        for key, value in row.items():
            if key in skip:
                continue
            if key == "part":
                out["part_code"] = value
                value = t(lang, f"kpis_page.part.{value}")
            elif key == "reason":
                value = reasons.get(value, value) if value else ""
            elif key == "district_id":
                value = names.get(value, value)
            elif key == "category" and value in categories:
                value = getattr(categories[value], lang, value)
            elif key in CODED and isinstance(value, str) and f"kpis_page.code.{value}" in messages:
                value = messages[f"kpis_page.code.{value}"]
            out[key] = _cell(value)
            if key not in columns:
                columns.append(key)
        rows.append(out)
    cols = [{"name": messages.get(f"kpis_page.col.{c}", c), "id": c} for c in columns]
    pages = max(1, -(-drill.total // PAGE_SIZE))
    summary = t(lang, "kpis_page.records.summary", n=f"{drill.total:,}", part=t(lang, f"kpis_page.part.{part}"),
                period=period, scope=_district_name(target["district"] or view.district, lang))
    title = t(lang, "kpis_page.records.heading", kpi=kpi.name.model_dump()[lang])
    return {"rows": rows, "columns": cols, "pages": pages, "total": drill.total, "summary": summary, "title": title}


def _cell(value):
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.astimezone(store.config().tz).strftime("%Y-%m-%d %H:%M") if getattr(value, "tzinfo", None) \
            else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return round(value, 2)
    return value


# --- callbacks ----------------------------------------------------------------------------------------------------

VIEW_FIELDS = {f.name for f in fields(View)}
CONTROLS = {"kpis-grain": "grain", "kpis-at": "at", "kpis-district": "district", "kpis-kpi": "kpi", "kpis-a": "a",
            "kpis-b": "b"}      # each control and the address parameter it sets


def _view_from(data) -> View:
    """The view the page stored (kpis-view), for a user who may open the page. A store the page did not write is
    refused (400), not shown as the default view: its figures would be taken for the view asked for."""
    auth.require_page(PATH)
    if not isinstance(data, dict) or not set(data) <= VIEW_FIELDS or \
            not all(v is None or isinstance(v, str) for v in data.values()):
        abort(400, description="kpis-view: not a view of this page")
    problem = params.problem(MultiDict({k: v for k, v in data.items() if v is not None}))
    if problem:
        abort(400, description=f"kpis-view: {problem}")
    return resolve(**data)


@callback(Output("kpis-go", "data"),
          Input("kpis-grain", "value"), Input("kpis-at", "value"), Input("kpis-district", "value"),
          Input("kpis-kpi", "value"), Input("kpis-a", "value"), Input("kpis-b", "value"),
          State("kpis-view", "data"), prevent_initial_call=True)
def navigate(grain, at, district, kpi_id, a, b, data):
    """A control changed: the address of the new view (the browser then navigates in the page). A value no
    control offers is refused (400) like the same value in the address."""
    view = _view_from(data)
    value = {"kpis-grain": grain, "kpis-at": at, "kpis-district": district, "kpis-kpi": kpi_id, "kpis-a": a,
             "kpis-b": b}.get(ctx.triggered_id)
    if value is None:
        raise PreventUpdate
    if _control_refused(view, CONTROLS[ctx.triggered_id], value):
        abort(400, description=f"{ctx.triggered_id}: not one of its options")
    target = go_to(view, ctx.triggered_id, value)
    if target is None:
        raise PreventUpdate
    problem = params.problem(params.parse(urlsplit(target).query))
    if problem:
        abort(400, description=problem)
    return target


def _control_refused(view: View, name: str, value) -> bool:
    """Whether a control's value is one the address would refuse for its parameter ('' district: the whole scope)."""
    if not isinstance(value, str):
        return True
    if name == "district" and value == "":
        return False
    return params.kpi_problem({name: value, **({"kpi": view.kpi} if name == "grain" else {})}) is not None


def go_to(view: View, control: str | None, value) -> str | None:
    """The address after `control` took `value`; None when nothing changes."""
    current = kpis.period_of(view.grain, _now()).label
    if control == "kpis-grain":
        if value not in GRAINS or value == view.grain:
            return None
        at = _date(view.at)
        new_at = kpis.period_of(value, at).label if at else None
        if new_at == kpis.period_of(value, _now()).label:
            new_at = None
        return href(view, grain=value, at=new_at, a=None, b=None)
    if control == "kpis-at":
        return href(view, at=None if value == current else value, a=None, b=None)
    if control == "kpis-district":
        return href(view, district=value or None)
    if control == "kpis-kpi":
        return href(view, kpi=value)
    if control in ("kpis-a", "kpis-b"):
        return href(view, **{control[-1]: value})
    return None


# In-page navigation, as a dcc.Link does it: the page container re-renders layout() with the new address.
clientside_callback(
    """function (target) {
        if (!target || target === window.location.pathname + window.location.search) {
            return window.dash_clientside.no_update;
        }
        window.history.pushState({}, '', target);
        window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
        return window.dash_clientside.no_update;
    }""",
    Output("kpis-go", "id"), Input("kpis-go", "data"), prevent_initial_call=True)


@callback(Output("kpis-how-modal", "hidden"), Output("kpis-how-body", "children"),
          Input({"type": "kpis-how", "kpi": ALL}, "n_clicks"), Input("kpis-how-close", "n_clicks"),
          State("kpis-view", "data"), prevent_initial_call=True)
def show_how(_clicks, _close, data):
    view = _view_from(data)
    trigger = ctx.triggered_id
    if trigger == "kpis-how-close":
        return True, no_update
    if not isinstance(trigger, dict) or not callback_requests.clicked():
        raise PreventUpdate
    if not isinstance(trigger.get("kpi"), str) or trigger["kpi"] not in _configured():
        raise PreventUpdate
    return False, how_panel(view, trigger["kpi"])


@callback(Output("kpis-drill-target", "data"), Output("kpis-drill-modal", "hidden"),
          Output("kpis-drill-part", "value"),
          Input({"type": "kpis-drill", "kpi": ALL, "at": ALL, "district": ALL, "src": ALL}, "n_clicks"),
          Input("kpis-drill-close", "n_clicks"), prevent_initial_call=True)
def open_records(_clicks, _close):
    auth.require_page(PATH)
    trigger = ctx.triggered_id
    if trigger == "kpis-drill-close":
        return None, True, no_update
    if not isinstance(trigger, dict) or not callback_requests.clicked():
        raise PreventUpdate
    target = _checked_target(dict(trigger))
    if target is None:
        raise PreventUpdate
    return target, False, "all"


@callback(Output("kpis-drill-table", "data"), Output("kpis-drill-table", "columns"),
          Output("kpis-drill-table", "page_count"), Output("kpis-drill-table", "page_current"),
          Output("kpis-drill-summary", "children"), Output("kpis-drill-title", "children"),
          Input("kpis-drill-target", "data"), Input("kpis-drill-part", "value"),
          Input("kpis-drill-table", "page_current"), State("kpis-view", "data"), prevent_initial_call=True)
def show_records(target, part, page_current, data):
    """The records of the drill target (None: the dialog closed). A target, part or page no control sends is
    refused (400), not replaced by another set of records."""
    view = _view_from(data)
    if target is None:
        return [], [], 1, 0, "", ""
    target = _checked_target(target)
    fresh = ctx.triggered_id != "kpis-drill-table"
    page_ok = type(page_current) is int and 0 <= page_current <= MAX_PAGE
    if target is None or part not in kpis.PARTS or not (fresh or page_ok):
        abort(400, description="not records this page shows")
    if not _may_drill():
        return [], [], 1, 0, t(view.lang, "kpis_page.records.refused"), ""
    page_number = 0 if fresh else page_current
    got = records_page(view, target, part, page_number)
    return got["rows"], got["columns"], got["pages"], page_number, got["summary"], got["title"]
