"""The offline base map: a blank style plus the city's own outlines. Nothing is fetched from the internet:
"white-bg" has no tiles, and no text is drawn on the map (MapLibre would fetch glyphs for it)."""
import json


def outlines_layer(geojson_strings: list[str], color: str, width: float) -> dict:
    features = [{"type": "Feature", "properties": {}, "geometry": json.loads(g)} for g in geojson_strings if g]
    return {"sourcetype": "geojson", "source": {"type": "FeatureCollection", "features": features},
            "type": "line", "color": color, "line": {"width": width}, "below": "traces"}


def map_layout(view, layers: list[dict], background: str) -> dict:
    return {
        "map": {"style": "white-bg", "center": {"lat": view.center.lat, "lon": view.center.lon},
                "zoom": view.zoom, "layers": layers},
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
        "paper_bgcolor": background,
        "uirevision": "keep-view",   # refreshes keep the operator's pan and zoom
    }
