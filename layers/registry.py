"""The layer registry: each layer type (config/layers/*.yaml `params.type`) maps to one function that asks the
query layer for its rows and draws them. Adding a layer type is one function here plus one drawing module.
Every trace carries its layer's id as `uid`, so the page can toggle it without resending data.

The wall's time control (core/layers.Timeline) sets `Context.window`: incident layers then show the incidents
created in that window, districts and sensors their state as of its end. `STEP_FIELDS` names what a step changes
in a layer whose geometry stays put, so a step sends only those fields."""
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from layers import districts, heat, incidents, places, sensors
from query import layers as rows
from query import privacy

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
    window: tuple[datetime, datetime] | None = None     # (since, until] chosen on the time control; None: live

    @property
    def at(self) -> datetime:
        """The moment the map shows: now, or the end of the chosen window."""
        return self.now if self.window is None else self.window[1]

    def span(self, window_hours: int) -> tuple[datetime, datetime]:
        """The incidents' window: the chosen one, or the layer's own hours before now when live."""
        return self.window or (self.now - timedelta(hours=window_hours), self.now)


def _incident_cells(layer, p, ctx):
    name = layer.name.model_dump()[ctx.lang]
    since, until = ctx.span(p.window_hours)
    few = rows.incident_points(since, until, p.status, p.points_below, ctx.scope)
    if len(few) <= p.points_below:
        return incidents.points(few, name, ctx.catalog.categories, ctx.lang)
    cells, resolution = rows.incident_cells_within(since, until, p.status, p.resolution, p.max_cells, ctx.scope)
    return incidents.cells(cells, name, ctx.t("layer.incidents.hover")).update(meta={"h3_resolution": resolution})


def _incident_heat(layer, p, ctx):
    cells, resolution = rows.incident_cells_within(*ctx.span(p.window_hours), "all", p.resolution, p.max_cells,
                                                   ctx.scope)
    drawn = heat.density(cells, layer.name.model_dump()[ctx.lang], p.radius_px)
    return drawn.update(meta={"h3_resolution": resolution})


def _district_choropleth(layer, p, ctx):
    # As of the moment shown; a windowed measure counts the chosen window, except satisfaction, whose (long)
    # window ends at that moment: an hour of ratings says little.
    if ctx.window is not None and p.measure == "incidents_window":
        since, until = ctx.window
    else:
        since, until = ctx.at - timedelta(hours=p.window_hours), ctx.at
    data = privacy.district_measure(rows.district_measure(p.measure, since, until, ctx.scope))
    trace = districts.choropleth(data, "value", ctx.lang, ctx.t(f"measure.{p.measure}"),
                                 ctx.t("layer.districts.hover"), DISTRICT_SCALES[p.measure])
    trace.update(marker={"opacity": 0.55, "line": {"width": 2, "color": "#9fb3c8"}}, name=layer.name.model_dump()[ctx.lang])
    return trace


def _sensors(layer, p, ctx):
    names = {code: getattr(m, ctx.lang) for code, m in ctx.catalog.thresholds.metrics.items()}
    return sensors.states(rows.sensors(ctx.at, p.metrics, ctx.scope), layer.name.model_dump()[ctx.lang], names,
                          ctx.t("layer.sensors.hover"))


def _places(layer, p, ctx):
    data = rows.places(p.kind, *ctx.span(p.window_hours), ctx.scope)
    return places.points(data, layer.name.model_dump()[ctx.lang], ctx.lang, ctx.t("layer.places.hover"),
                         p.overdue_warning, p.overdue_alarm)


DRAW = {"incident_cells": _incident_cells, "incident_heat": _incident_heat,
        "district_choropleth": _district_choropleth, "sensors": _sensors, "places": _places}
# Layers counting what happened in a window (the legend says how long).
WINDOWED = ("incident_cells", "incident_heat", "places")
# What moving in time changes in a layer whose shapes stay put (absent: the whole trace is replaced).
STEP_FIELDS = {"district_choropleth": (("z",),),
               "sensors": (("marker", "color"), ("marker", "size"), ("customdata",)),
               "places": (("marker", "color"), ("marker", "size"), ("customdata",))}


def trace(layer, ctx: Context, visible: bool):
    """The layer's one trace, tagged with its id."""
    drawn = DRAW[layer.type](layer, layer.params, ctx)
    drawn.update(uid=layer.id, visible=visible, showlegend=False)
    return drawn
