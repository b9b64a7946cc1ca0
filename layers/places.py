"""Places of a point feed (service halls, ...) as circles: the size says how many applications were made there in
the window, the colour whether any wait past their deadline. One trace for all of them."""
import math

import plotly.graph_objects as go

COLOUR = {"ok": "#4dabf7", "warning": "#fcc419", "alarm": "#ff3b3b"}


def state(overdue: int, warning: int, alarm: int) -> str:
    return "alarm" if overdue >= alarm else "warning" if overdue >= warning else "ok"


def points(rows: list[dict], name: str, lang: str, hover: str, warning: int, alarm: int) -> go.Scattermap:
    states = [state(r["overdue"], warning, alarm) for r in rows]
    return go.Scattermap(
        lat=[r["lat"] for r in rows], lon=[r["lon"] for r in rows], mode="markers", name=name,
        # Area grows with applications; a hall with none is still drawn, so the layer shows every hall.
        marker={"size": [12 + min(3 * math.sqrt(r["applications"]), 24) for r in rows],
                "color": [COLOUR[s] for s in states], "opacity": 0.9},
        text=[r[f"name_{lang}"] or r["place_id"] for r in rows],
        customdata=[[r["applications"], r["overdue"]] for r in rows],
        hovertemplate=hover + "<extra></extra>")
