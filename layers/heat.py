"""A heat surface of incidents: H3 cell centres weighted by their counts (bounded payload at any data size)."""
import h3
import plotly.graph_objects as go

HEAT_SCALE = [[0, "rgba(0,0,0,0)"], [0.2, "rgba(255,212,59,0.5)"], [0.6, "rgba(253,126,20,0.75)"],
              [1, "rgba(240,62,62,0.9)"]]


def density(rows: list[tuple[str, int]], name: str, radius_px: int) -> go.Densitymap:
    centres = [h3.cell_to_latlng(cell) for cell, _ in rows]
    return go.Densitymap(lat=[round(c[0], 5) for c in centres], lon=[round(c[1], 5) for c in centres],
                         z=[n for _, n in rows], radius=radius_px, name=name, colorscale=HEAT_SCALE,
                         showscale=False, hoverinfo="skip")
