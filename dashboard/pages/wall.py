"""The command-centre wall at `/wall`: a dark, glanceable map of the configured layers, the city's numbers now,
and what needs attention, refreshed on a timer without reloading. `?kiosk=1` hides every control.
Under the map, a time control (dashboard/time_control.py) shows any of the last 24 hours or plays them back."""
import hashlib
import json
import threading
from collections import OrderedDict
from datetime import datetime

import dash
import plotly.graph_objects as go
import plotly.io as pio
import plotly.utils
from dash import ALL, ClientsideFunction, Input, Output, Patch, State, callback, clientside_callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core import layers as layer_config
from dashboard import alarm_panel, auth, callback_requests, freshness, params, shell, tiles, time_control
from dashboard.shell import t
from layers import basemap, registry
from ops import acks
from query import overview, privacy, store

PATH = "/wall"
dash.register_page(__name__, path=PATH, title="CityOps · Wall")

WALL_TILES = (("incidents_today", "tile.incidents_today"), ("open", "tile.open"), ("overdue", "tile.overdue"),
              ("sensors_in_alarm", "tile.alarms"))
MAP_BG = "#0d1521"
PANELS = {"wall-map-head": ("incidents", "sensor_readings"), "wall-tiles-head": ("incidents", "sensor_readings"),
          "wall-alarms-head": ("incidents", "sensor_readings", "service_cases")}


def layout(lang=None, kiosk=None, layers=None, playlist=None, **_):
    lang = shell.language(lang)
    config = store.config()
    chosen = params.layers(layers) if layers is not None else None
    visible = chosen if chosen is not None else [layer.id for layer in config.layers if layer.visible]
    pairs = alarm_panel.current(shell.now()) if overview.has_data() else []
    figure_json, signature = wall_figure(lang, visible)
    body = html.Div([
        html.Section([
            _panel_head(lang, "wall-map-head", t(lang, "wall.map")),
            html.Div([
                dcc.Graph(id="wall-map", figure=json.loads(figure_json), className="map wall-map",
                          config={"displayModeBar": False, "scrollZoom": True}),
                html.Div([html.Div(t(lang, "wall.layers"), className="legend-title"),
                          dcc.Checklist(id="wall-layers", options=_layer_options(lang), value=visible,
                                        className="layer-list", inputClassName="layer-check")],
                         className="wall-legend"),
                html.Div(id="wall-time-badge", className="time-badge", hidden=True, role="status"),
            ], className="wall-map-area"),
            time_control.bar(lang, shell.now()),
        ], className="panel wall-map-panel"),
        html.Aside([
            html.Section([_panel_head(lang, "wall-tiles-head", t(lang, "wall.kpis")),
                          html.Div(wall_tiles(lang), id="wall-tiles", className="wall-tiles")],
                         className="panel wall-kpis"),
            html.Section([_panel_head(lang, "wall-alarms-head", t(lang, "wall.alarms")),
                          html.Div(alarm_panel.panel(lang, shell.now(), pairs), id="wall-alarms",
                                   className="alarm-list")], className="panel wall-alarms"),
        ], className="wall-side"),
        html.Div(html.Div(alarm_panel.ticker(lang, pairs), id="wall-ticker", className="ticker-text"),
                 className="ticker", role="marquee"),
        dcc.Store(id="wall-alarm-positions", data=alarm_panel.positions(pairs)),
        dcc.Store(id="wall-alarm-signature", data=_alarm_signature(pairs)),
        dcc.Store(id="wall-flown"),
        dcc.Interval(id="wall-refresh", interval=config.settings.dashboard.refresh_seconds * 1000),
        dcc.Store(id="wall-lang", data=lang),
        dcc.Store(id="wall-signature", data=signature),
        dcc.Store(id="wall-map-bounds", data=_city_bounds()),
        dcc.Store(id="wall-map-fitted"),
        dcc.Store(id="wall-scale", data=1),
    ], className="wall-grid")
    classes = "wall" + (" kiosk" if kiosk == "1" else "")
    return html.Div(shell.frame(lang, "/wall", body, status=_as_of(lang), subtitle="wall.title",
                                playlist=playlist, kiosk=kiosk), className=classes)


def _as_of(lang: str):
    return html.Span(f"{t(lang, 'status.as_of')} {shell.now():%Y-%m-%d %H:%M}", id="wall-as-of")


def _panel_head(lang: str, id_: str, title: str):
    status = freshness.entity_status(datetime.now(store.config().tz))
    return html.Div([html.H2(title, className="panel-title"),
                     html.Span(freshness.age_label(lang, status, PANELS[id_]), id=f"{id_}-age", className="age")],
                    className="panel-head")


def _ages(lang: str) -> list:
    status = freshness.entity_status(datetime.now(store.config().tz))
    return [freshness.age_label(lang, status, entities) for entities in PANELS.values()]


def _layer_options(lang: str, frozen: bool = False) -> list[dict]:
    """Each layer's swatch and name; incident layers say how long a window they show (live: their own, at a past
    moment: the time control's)."""
    options = []
    for layer in store.config().layers:
        label = [html.Span(className=f"swatch swatch-{layer.type}"), layer.name.model_dump()[lang]]
        if layer.type in registry.WINDOWED:
            minutes = time_control.window_minutes() if frozen else layer.params.window_hours * 60
            label.append(html.Span(time_control.duration(lang, minutes), className="layer-window"))
        options.append({"label": html.Span(label), "value": layer.id})
    return options


def _city_bounds():
    if not overview.has_data():
        return None
    return basemap.bounds([r["geojson"] for r in overview.open_by_district()])


def wall_map(lang: str, visible: list[str], now: datetime | None = None) -> go.Figure:
    """Every layer, live (a past moment travels as a Patch: time_view), over the city's own raster tiles when it
    has an archive (config/layers/_basemap.yaml)."""
    config = store.config()
    layout_ = basemap.map_layout(config.settings.city.map, [], "rgba(0,0,0,0)", basemap.blank_style(MAP_BG))
    layout_["font"] = {"family": "Noto Sans CJK SC, Noto Sans, sans-serif", "size": 16, "color": "#e9ecef"}
    if not overview.has_data():
        return go.Figure(layout=layout_)
    ctx = _context(lang, now=now)
    layout_["map"]["layers"] = _basemap_layers() + [basemap.outlines_layer(overview.street_outlines(), "#3b4a5a", 0.7)]
    traces = [registry.trace(layer, ctx, layer.id in visible) for layer in config.layers]
    return go.Figure(traces, layout=layout_)


def _basemap_layers() -> list[dict]:
    archive = layer_config.basemap(store.config().settings_path.parent)
    if archive is None:
        return []
    return [basemap.raster_layer(dash.get_relative_path(tiles.url_template(archive)), archive.opacity,
                                 archive.min_zoom)]


# Built figures kept in this process, newest last. A figure is half a megabyte of JSON: a lookup here beats fetching
# it from a shared cache, and each worker builds it at most once per generation, minute, scope, language and layers.
FIGURES_KEPT = 16
_figures: OrderedDict = OrderedDict()
_figures_lock = threading.Lock()


def wall_figure(lang: str, visible: list[str]) -> tuple[str, str]:
    """The live map as JSON and its signature, built once per published generation, caller's scope, shared screen
    or not (query/privacy.py), language, layers shown and minute (the map's "now"), so a refresh with nothing new
    does no figure work."""
    now = store.minute(shell.now())
    key = (store.reader().current(), store.caller_scope(), privacy.shared_screen(), lang, tuple(visible), now)
    with _figures_lock:
        if key in _figures:
            _figures.move_to_end(key)
            return _figures[key]
    built = _figure_json(wall_map(lang, visible, now))
    with _figures_lock:
        _figures[key] = built
        while len(_figures) > FIGURES_KEPT:
            _figures.popitem(last=False)
    return built


def _context(lang: str, window=None, now: datetime | None = None) -> registry.Context:
    config = store.config()
    return registry.Context(now or shell.now(), lang, None, lambda key, **v: t(lang, key, **v), config.catalog,
                            window)


def _figure_json(figure: go.Figure) -> tuple[str, str]:
    """The figure as JSON and a digest of what it shows: refreshes send nothing when it has not changed."""
    text = pio.to_json(figure, validate=False, remove_uids=False)       # the uids are the layer ids
    return text, hashlib.sha1(text.encode()).hexdigest()


def _plain(trace) -> dict:
    return json.loads(json.dumps(trace.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder))


# Plotly sizes text and markers in pixels; the browser reports how much larger than 1920x1080 the screen is
# (assets/timeline.js, the same factor assets/maps.js applies once), and what the server sends later is scaled alike.
def _scale(value) -> float:
    return float(value) if type(value) in (int, float) and 1 <= value <= 8 else 1.0


def _scaled_trace(trace: dict, scale: float) -> dict:
    if scale != 1 and trace.get("type") == "scattermap" and "size" in trace.get("marker", {}):
        size = trace["marker"]["size"]
        trace["marker"]["size"] = [v * scale for v in size] if isinstance(size, list) else size * scale
    if scale != 1 and trace.get("type") == "densitymap" and "radius" in trace:
        trace["radius"] = trace["radius"] * scale          # the heat's radius is pixels too
    if scale != 1 and "colorbar" in trace:
        trace["colorbar"]["thickness"] = 18 * scale
    return trace


def _scaled_figure(figure: dict, scale: float) -> dict:
    figure["layout"]["font"]["size"] = 16 * scale
    figure["data"] = [_scaled_trace(trace, scale) for trace in figure.get("data", [])]
    return figure


def _visible(value) -> list[str]:
    known = {layer.id for layer in store.config().layers}
    return [v for v in value if isinstance(v, str) and v in known] if isinstance(value, list) else []


def wall_tiles(lang: str):
    if not overview.has_data():
        return []
    values = overview.tiles(store.minute(shell.now()))
    return [html.Div([html.Div(t(lang, key), className="tile-label"),
                      html.Div(f"{getattr(values, field):,}", className="tile-value", id=f"wall-tile-{field}")],
                     className=f"tile tile-{field}") for field, key in WALL_TILES]


@callback(Output("wall-map", "figure", allow_duplicate=True), Input("wall-layers", "value"),
          prevent_initial_call=True)
def toggle_layers(visible):
    """Only the visibility flags travel: the layers' data stays in the browser. Anything but a list of layer ids
    changes nothing (a string would have matched ids by substring)."""
    auth.require_page(PATH)
    if visible is None or _visible(visible) != visible:
        raise PreventUpdate
    patch = Patch()
    for index, layer in enumerate(store.config().layers):
        patch["data"][index]["visible"] = layer.id in visible
    return patch


@callback(Output("wall-map", "figure"), Output("wall-tiles", "children"), Output("wall-signature", "data"),
          Output("wall-time", "marks", allow_duplicate=True), Output("wall-time-anchor", "data", allow_duplicate=True),
          *[Output(f"{panel}-age", "children") for panel in PANELS],
          Input("wall-refresh", "n_intervals"), State("wall-lang", "data"), State("wall-layers", "value"),
          State("wall-signature", "data"), State("wall-time", "value"), State("wall-time-anchor", "data"),
          State("wall-scale", "data"), prevent_initial_call=True)
def refresh(_, lang, visible, signature, time_value, shown_anchor, scale):
    """Live: the map when it changed. At a past moment the map stays as chosen; the figures beside it stay live."""
    auth.require_page(PATH)
    lang = shell.language(lang)
    live = time_control.position(time_value) in (None, time_control.spec().steps)
    text, new = wall_figure(lang, _visible(visible))
    ages = _ages(lang)
    marks = anchor = dash.no_update
    if live and time_control.anchor(shell.now()) != shown_anchor:      # the newest step moved on
        marks, anchor = time_control.marks(lang, shell.now()), time_control.anchor(shell.now())
    if new == signature:
        return dash.no_update, dash.no_update, dash.no_update, marks, anchor, *ages
    figure = _scaled_figure(json.loads(text), _scale(scale)) if live else dash.no_update
    return figure, wall_tiles(lang), new, marks, anchor, *ages


TIME_OUTPUTS = (Output("wall-map", "figure", allow_duplicate=True), Output("wall-time-badge", "children"),
                Output("wall-time-badge", "hidden"), Output("wall-time-bar", "className"),
                Output("wall-time-live", "children"), Output("wall-time", "marks", allow_duplicate=True),
                Output("wall-time-anchor", "data", allow_duplicate=True), Output("wall-layers", "options"))


def time_view(value, lang, visible, scale, shown_anchor, bar_class=None) -> tuple:
    """What the time control's position shows: only the layers' changing parts travel (a Patch), with the badge.
    A value that is not a slider position changes nothing and reaches no query."""
    at = time_control.position(value)
    if at is None:
        return (dash.no_update,) * len(TIME_OUTPUTS)
    lang, visible, scale, now = shell.language(lang), _visible(visible), _scale(scale), shell.now()
    shown = time_control.window(now, at)
    patch = dash.no_update
    if overview.has_data():
        ctx = _context(lang, shown)
        patch = Patch()
        for index, layer in enumerate(store.config().layers):
            trace = _scaled_trace(_plain(registry.trace(layer, ctx, layer.id in visible)), scale)
            fields = registry.STEP_FIELDS.get(layer.type)
            if fields is None:
                patch["data"][index] = trace
                continue
            for path in fields:
                part, target = trace, patch["data"][index]
                for key in path:
                    part = part[key]
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = part
    anchor = time_control.anchor(now)
    marks = time_control.marks(lang, now) if anchor != shown_anchor else dash.no_update
    new_class = time_control.bar_class(shown)
    options = _layer_options(lang, shown is not None) if new_class != bar_class else dash.no_update
    return (patch, time_control.badge(lang, now, shown), shown is None, new_class,
            time_control.live_label(lang, shown), marks, anchor if anchor != shown_anchor else dash.no_update,
            options)


@callback(*TIME_OUTPUTS, Input("wall-time", "value"), State("wall-lang", "data"), State("wall-layers", "value"),
          State("wall-scale", "data"), State("wall-time-anchor", "data"), State("wall-time-bar", "className"),
          prevent_initial_call=True)
def set_time(value, lang, visible, scale, shown_anchor, bar_class):
    auth.require_page(PATH)
    return time_view(value, lang, visible, scale, shown_anchor, bar_class)


ALARM_OUTPUTS = (Output("wall-alarms", "children"), Output("wall-ticker", "children"),
                 Output("wall-alarm-positions", "data"), Output("wall-alarm-signature", "data"))


def _alarm_signature(pairs) -> str:
    return hashlib.sha1(repr([(a.id, ack is not None) for a, ack in pairs]).encode()).hexdigest()


def _alarm_outputs(lang: str, signature: str | None):
    """The panel, ticker and positions, or nothing when the same alarms are shown in the same state."""
    pairs = alarm_panel.current(shell.now()) if overview.has_data() else []
    new = _alarm_signature(pairs)
    if new == signature:
        return (dash.no_update,) * 4
    return (alarm_panel.panel(lang, shell.now(), pairs), alarm_panel.ticker(lang, pairs),
            alarm_panel.positions(pairs), new)


@callback(*ALARM_OUTPUTS, Input("wall-refresh", "n_intervals"), State("wall-lang", "data"),
          State("wall-alarm-signature", "data"), prevent_initial_call=True)
def refresh_alarms(_, lang, signature):
    auth.require_page(PATH)
    return _alarm_outputs(shell.language(lang), signature)


@callback(*(Output(o.component_id, o.component_property, allow_duplicate=True) for o in ALARM_OUTPUTS),
          Input({"type": "alarm-ack", "index": ALL}, "n_clicks"), State("wall-lang", "data"),
          prevent_initial_call=True)
def acknowledge(clicks, lang):
    """An operator's acknowledgement, kept in ops/ (not the warehouse) and shown to every screen. Only a click on
    the button of an alarm shown now counts: an id from a forged request is not written down."""
    auth.require_page(PATH)
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not callback_requests.clicked() or not auth.allowed("acknowledge") \
            or not _alarm_now(trigger.get("index")):
        raise PreventUpdate
    acks.acknowledge(trigger["index"], auth.current_user().username, datetime.now(store.config().tz))
    return _alarm_outputs(shell.language(lang), None)


def _alarm_now(alarm_id) -> bool:
    if not isinstance(alarm_id, str) or not overview.has_data():
        return False
    return any(alarm.id == alarm_id for alarm, _ in alarm_panel.current(shell.now()))


clientside_callback(ClientsideFunction("cityops", "flyTo"), Output("wall-flown", "data"),
                    Input({"type": "alarm-go", "index": ALL}, "n_clicks"), State("wall-alarm-positions", "data"),
                    State("wall-map", "id"), prevent_initial_call=True)


clientside_callback(ClientsideFunction("cityops", "fitMap"), Output("wall-map-fitted", "data"),
                    Input("wall-map-bounds", "data"), State("wall-map", "id"))


clientside_callback(ClientsideFunction("timeline", "scale"), Output("wall-scale", "data"),
                    Input("wall-map-fitted", "data"))


# Play, pause and back to live run in the browser: they only move the slider, and the slider asks the server.
clientside_callback(ClientsideFunction("timeline", "step"), Output("wall-time", "value"),
                    Output("wall-time-player", "disabled"), Output("wall-time-play", "children"),
                    Output("wall-time-play", "className"),
                    Input("wall-time-player", "n_intervals"), Input("wall-time-play", "n_clicks"),
                    Input("wall-time-live", "n_clicks"), State("wall-time", "value"), State("wall-time-spec", "data"),
                    State("wall-time-player", "disabled"), prevent_initial_call=True)
