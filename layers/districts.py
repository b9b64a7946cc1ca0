"""District choropleth: one polygon per district, shaded by a measure."""
import json

import plotly.graph_objects as go


def choropleth(rows: list[dict], measure: str, lang: str, legend: str, hover: str, colorscale) -> go.Choroplethmap:
    features = [{"type": "Feature", "id": r["district_id"], "properties": {}, "geometry": json.loads(r["geojson"])}
                for r in rows if r["geojson"]]
    names = [r[f"name_{lang}"] for r in rows]
    return go.Choroplethmap(
        geojson={"type": "FeatureCollection", "features": features},
        locations=[r["district_id"] for r in rows],
        z=[r[measure] for r in rows],
        text=names,
        colorscale=colorscale,
        marker={"opacity": 0.85, "line": {"width": 1.5, "color": "#ffffff"}},
        colorbar={"title": {"text": legend}, "thickness": 18, "len": 0.6},
        hovertemplate=hover.replace("%{name}", "%{text}").replace("%{value}", "%{z}") + "<extra></extra>",
    )
