"""The city overview at `/`: KPI tiles and open incidents by district, refreshed on a timer."""
import dash
import plotly.graph_objects as go
from dash import ClientsideFunction, Input, Output, State, callback, clientside_callback, dcc, html

from dashboard import auth, shell
from dashboard.shell import t
from layers import basemap, districts
from query import overview, store

dash.register_page(__name__, path="/", title="CityOps")

TILES = (
    ("incidents_today", "tile.incidents_today"),
    ("open", "tile.open"),
    ("overdue", "tile.overdue"),
    ("median_hours_to_close", "tile.median_close"),
    ("sensors_in_alarm", "tile.alarms"),
)
COLORSCALE = [[0, "#fff4e6"], [0.5, "#f08c00"], [1, "#c92a2a"]]


def layout(lang=None, playlist=None, kiosk=None, **_):
    lang = shell.language(lang)
    refresh = store.config().settings.dashboard.refresh_seconds * 1000
    body = html.Div([
        html.Section(id="tiles", className="tiles", children=tiles(lang)),
        html.Section([
            html.H2(t(lang, "map.title"), className="panel-title"),
            dcc.Graph(id="district-map", figure=district_map(lang), className="map",
                      config={"displayModeBar": False, "scrollZoom": True}),
        ], className="panel map-panel"),
        dcc.Interval(id="overview-refresh", interval=refresh),
        dcc.Store(id="district-map-bounds", data=city_bounds()),
        dcc.Store(id="district-map-fitted"),
        dcc.Store(id="overview-lang", data=lang),
    ], className="overview")
    return shell.frame(lang, "/", body, status=status_line(lang), playlist=playlist, kiosk=kiosk)


def status_line(lang: str):
    if not overview.has_data():
        return html.Span(t(lang, "status.no_data"), className="warning")
    return html.Span(f"{t(lang, 'status.as_of')} {shell.now():%Y-%m-%d %H:%M}", id="as-of")


def tiles(lang: str):
    if not overview.has_data():
        return []
    values = overview.tiles(store.minute(shell.now()))
    return [_tile(lang, field, key, getattr(values, field)) for field, key in TILES]


def _tile(lang, field, key, value):
    text = "–" if value is None else (f"{value:,.1f}" if isinstance(value, float) else f"{value:,}")
    return html.Div([
        html.Div(t(lang, key), className="tile-label"),
        html.Div(text, className="tile-value", id=f"tile-{field}", **{"data-value": "" if value is None else value}),
        html.Div(t(lang, key + ".help"), className="tile-help"),
    ], className=f"tile tile-{field}")


def district_map(lang: str) -> go.Figure:
    config = store.config()
    view = config.settings.city.map
    if not overview.has_data():
        return go.Figure(layout=basemap.map_layout(view, [], "rgba(0,0,0,0)"))
    rows = overview.open_by_district()
    trace = districts.choropleth(rows, "open", lang, t(lang, "map.legend"), t(lang, "map.hover"), COLORSCALE)
    streets = basemap.outlines_layer(overview.street_outlines(), "#adb5bd", 0.6)
    figure = go.Figure(trace, layout=basemap.map_layout(view, [streets], "rgba(0,0,0,0)"))
    figure.update_layout(font={"family": "Noto Sans CJK SC, Noto Sans, sans-serif", "size": 16})
    return figure


def city_bounds():
    if not overview.has_data():
        return None
    return basemap.bounds([r["geojson"] for r in overview.open_by_district()])


clientside_callback(ClientsideFunction("cityops", "fitMap"), Output("district-map-fitted", "data"),
                    Input("district-map-bounds", "data"), State("district-map", "id"))


@callback(Output("tiles", "children"), Output("district-map", "figure"),
          Input("overview-refresh", "n_intervals"), State("overview-lang", "data"), prevent_initial_call=True)
def refresh(_, lang):
    auth.require_page("/")
    lang = shell.language(lang)
    return tiles(lang), district_map(lang)
