"""Sensors as points coloured by state; one trace for all of them (one trace per layer keeps rendering fast)."""
import plotly.graph_objects as go

STATE_COLOUR = {"normal": "#51cf66", "warning": "#fcc419", "alarm": "#ff3b3b", "fault": "#cc5de8",
                "offline": "#868e96"}
STATE_SIZE = {"alarm": 18, "warning": 14}


def states(rows: list[dict], name: str, metric_names: dict, hover: str) -> go.Scattermap:
    located = [r for r in rows if r["lat"] is not None]
    return go.Scattermap(
        lat=[r["lat"] for r in located], lon=[r["lon"] for r in located], mode="markers", name=name,
        marker={"size": [STATE_SIZE.get(r["state"], 11) for r in located],
                "color": [STATE_COLOUR[r["state"]] for r in located], "opacity": 1},
        text=[metric_names.get(r["metric"], r["metric"]) for r in located],
        customdata=[[r["sensor_id"], r["state"], "" if r["value"] is None else round(r["value"], 1)]
                    for r in located],
        hovertemplate=hover + "<extra></extra>")
