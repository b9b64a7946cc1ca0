"""The layer registry: each layer type (config/layers/*.yaml `params.type`) maps to one function that asks the
query layer for its rows and draws them. Adding a layer type is one function here plus one drawing module.
Every trace carries its layer's id as `uid`, so the page can toggle it without resending data."""
from dataclasses import dataclass
from typing import Callable

from layers import districts, heat, incidents, sensors
from query import layers as rows

DISTRICT_SCALES = {
    "open_incidents": [[0, "#1c2b3a"], [0.5, "#e8590c"], [1, "#ff6b6b"]],
    "incidents_window": [[0, "#1c2b3a"], [0.5, "#e8590c"], [1, "#ff6b6b"]],
    "overdue_share": [[0, "#1c2b3a"], [0.5, "#e8590c"], [1, "#ff6b6b"]],
    "satisfaction": [[0, "#ff6b6b"], [0.5, "#e8590c"], [1, "#2f9e44"]],      # higher is better
}


@dataclass(frozen=True)
class Context:
    now: object
    lang: str
    scope: tuple[str, ...] | None
    t: Callable[..., str]
    catalog: object


def _incident_cells(layer, p, ctx):
    name = layer.name.model_dump()[ctx.lang]
    few = rows.incident_points(ctx.now, p.window_hours, p.status, p.points_below, ctx.scope)
    if len(few) <= p.points_below:
        return incidents.points(few, name, ctx.catalog.categories, ctx.lang)
    cells = rows.incident_cells(ctx.now, p.window_hours, p.status, p.resolution, ctx.scope)
    return incidents.cells(cells, name, ctx.t("layer.incidents.hover"))


def _incident_heat(layer, p, ctx):
    cells = rows.incident_cells(ctx.now, p.window_hours, "all", p.resolution, ctx.scope)
    return heat.density(cells, layer.name.model_dump()[ctx.lang], p.radius_px)


def _district_choropleth(layer, p, ctx):
    data = rows.district_measure(p.measure, ctx.now, p.window_hours, ctx.scope)
    trace = districts.choropleth(data, "value", ctx.lang, ctx.t(f"measure.{p.measure}"),
                                 ctx.t("layer.districts.hover"), DISTRICT_SCALES[p.measure])
    trace.update(marker={"opacity": 0.55, "line": {"width": 2, "color": "#9fb3c8"}}, name=layer.name.model_dump()[ctx.lang])
    return trace


def _sensors(layer, p, ctx):
    names = {code: getattr(m, ctx.lang) for code, m in ctx.catalog.thresholds.metrics.items()}
    return sensors.states(rows.sensors(ctx.now, p.metrics, ctx.scope), layer.name.model_dump()[ctx.lang], names,
                          ctx.t("layer.sensors.hover"))


DRAW = {"incident_cells": _incident_cells, "incident_heat": _incident_heat,
        "district_choropleth": _district_choropleth, "sensors": _sensors}


def trace(layer, ctx: Context, visible: bool):
    """The layer's one trace, tagged with its id."""
    drawn = DRAW[layer.type](layer, layer.params, ctx)
    drawn.update(uid=layer.id, visible=visible, showlegend=False)
    return drawn
