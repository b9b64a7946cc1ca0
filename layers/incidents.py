"""Incidents on the map: H3 cells shaded by count at city zoom, single points only when few.
The payload is bounded by the number of cells covering the city, not by the number of incidents."""
import h3
import plotly.graph_objects as go

CELL_SCALE = [[0, "rgba(255,212,59,0.35)"], [0.5, "rgba(253,126,20,0.75)"], [1, "rgba(240,62,62,0.95)"]]
# Cool colours, so single incidents never read as the sensors' traffic-light states.
PRIORITY_COLOUR = {"urgent": "#f783ac", "normal": "#74c0fc"}
PRIORITY_SIZE = {"urgent": 14, "normal": 9}


def _hexagon(cell: str) -> dict:
    ring = [[round(lon, 5), round(lat, 5)] for lat, lon in h3.cell_to_boundary(cell)]
    return {"type": "Polygon", "coordinates": [ring + ring[:1]]}


def cells(rows: list[tuple[str, int]], name: str, hover: str) -> go.Choroplethmap:
    features = [{"type": "Feature", "id": cell, "properties": {}, "geometry": _hexagon(cell)} for cell, _ in rows]
    return go.Choroplethmap(
        geojson={"type": "FeatureCollection", "features": features},
        locations=[cell for cell, _ in rows], z=[n for _, n in rows], name=name,
        colorscale=CELL_SCALE, showscale=False, marker={"line": {"width": 0}},
        hovertemplate=hover + "<extra></extra>")


def points(rows: list[tuple], name: str, categories: dict, lang: str) -> go.Scattermap:
    return go.Scattermap(
        lat=[r[1] for r in rows], lon=[r[2] for r in rows], mode="markers", name=name,
        marker={"size": [PRIORITY_SIZE.get(r[4], 9) for r in rows],
                "color": [PRIORITY_COLOUR.get(r[4], PRIORITY_COLOUR["normal"]) for r in rows], "opacity": 0.9},
        text=[getattr(categories.get(r[3]), lang, r[3]) for r in rows], customdata=[r[0] for r in rows],
        hovertemplate="%{text}<br>%{customdata}<extra></extra>")
