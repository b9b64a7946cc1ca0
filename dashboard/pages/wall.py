"""The command-centre wall at `/wall`: a dark, glanceable map of the configured layers, the city's numbers now,
and what needs attention, refreshed on a timer without reloading. `?kiosk=1` hides every control."""
import hashlib
import json
from datetime import datetime

import dash
import plotly.graph_objects as go
import plotly.io as pio
from dash import (ALL, ClientsideFunction, Input, Output, Patch, State, callback, clientside_callback, ctx, dcc,
                  html)
from flask import request

from dashboard import alarm_panel, freshness, params, shell
from dashboard.shell import t
from layers import basemap, registry
from ops import acks
from query import overview, store

dash.register_page(__name__, path="/wall", title="CityOps · Wall")

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
    body = html.Div([
        html.Section([
            _panel_head(lang, "wall-map-head", t(lang, "wall.map")),
            dcc.Graph(id="wall-map", figure=wall_map(lang, visible), className="map wall-map",
                      config={"displayModeBar": False, "scrollZoom": True}),
            html.Div([html.Div(t(lang, "wall.layers"), className="legend-title"),
                      dcc.Checklist(id="wall-layers", options=_layer_options(lang), value=visible,
                                    className="layer-list", inputClassName="layer-check")],
                     className="wall-legend"),
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
        dcc.Store(id="wall-signature", data=_signature(wall_map(lang, visible))),
        dcc.Store(id="wall-map-bounds", data=_city_bounds()),
        dcc.Store(id="wall-map-fitted"),
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


def _layer_options(lang: str) -> list[dict]:
    return [{"label": html.Span([html.Span(className=f"swatch swatch-{layer.type}"),
                                 layer.name.model_dump()[lang]]), "value": layer.id}
            for layer in store.config().layers]


def _city_bounds():
    if not overview.has_data():
        return None
    return basemap.bounds([r["geojson"] for r in overview.open_by_district()])


def wall_map(lang: str, visible: list[str]) -> go.Figure:
    config = store.config()
    layout_ = basemap.map_layout(config.settings.city.map, [], "rgba(0,0,0,0)", basemap.blank_style(MAP_BG))
    layout_["font"] = {"family": "Noto Sans CJK SC, Noto Sans, sans-serif", "size": 16, "color": "#e9ecef"}
    if not overview.has_data():
        return go.Figure(layout=layout_)
    ctx = registry.Context(shell.now(), lang, None, lambda key, **v: t(lang, key, **v), config.catalog)
    layout_["map"]["layers"] = [basemap.outlines_layer(overview.street_outlines(), "#3b4a5a", 0.7)]
    traces = [registry.trace(layer, ctx, layer.id in visible) for layer in config.layers]
    return go.Figure(traces, layout=layout_)


def _signature(figure: go.Figure) -> str:
    """A digest of what the figure shows: refreshes send nothing when it has not changed."""
    return hashlib.sha1(pio.to_json(figure, validate=False).encode()).hexdigest()


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
    """Only the visibility flags travel: the layers' data stays in the browser."""
    patch = Patch()
    for index, layer in enumerate(store.config().layers):
        patch["data"][index]["visible"] = layer.id in (visible or [])
    return patch


@callback(Output("wall-map", "figure"), Output("wall-tiles", "children"), Output("wall-signature", "data"),
          *[Output(f"{panel}-age", "children") for panel in PANELS],
          Input("wall-refresh", "n_intervals"), State("wall-lang", "data"), State("wall-layers", "value"),
          State("wall-signature", "data"), prevent_initial_call=True)
def refresh(_, lang, visible, signature):
    lang = shell.language(lang)
    figure = wall_map(lang, visible or [])
    new = _signature(figure)
    ages = _ages(lang)
    if new == signature:
        return dash.no_update, dash.no_update, dash.no_update, *ages
    return figure, wall_tiles(lang), new, *ages


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
    return _alarm_outputs(shell.language(lang), signature)


@callback(*(Output(o.component_id, o.component_property, allow_duplicate=True) for o in ALARM_OUTPUTS),
          Input({"type": "alarm-ack", "index": ALL}, "n_clicks"), State("wall-lang", "data"),
          prevent_initial_call=True)
def acknowledge(clicks, lang):
    """An operator's acknowledgement, kept in ops/ (not the warehouse) and shown to every screen."""
    if not ctx.triggered_id or not any(clicks):
        return (dash.no_update,) * 4
    acks.acknowledge(ctx.triggered_id["index"], _operator(), datetime.now(store.config().tz))
    return _alarm_outputs(shell.language(lang), None)


def _operator() -> str:
    # Until sign-in exists (local accounts, roles), the screen that acknowledged is named by its address.
    return f"wall@{request.remote_addr}"


clientside_callback(ClientsideFunction("cityops", "flyTo"), Output("wall-flown", "data"),
                    Input({"type": "alarm-go", "index": ALL}, "n_clicks"), State("wall-alarm-positions", "data"),
                    State("wall-map", "id"), prevent_initial_call=True)


clientside_callback(ClientsideFunction("cityops", "fitMap"), Output("wall-map-fitted", "data"),
                    Input("wall-map-bounds", "data"), State("wall-map", "id"))
