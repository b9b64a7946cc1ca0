"""The offline base map: a blank style plus the city's own outlines, over the city's own raster tiles where it has
a local archive (served by this app: dashboard/tiles.py). Nothing is fetched from the internet: "white-bg" has no
tiles, and no text is drawn on the map (MapLibre would fetch glyphs for it)."""
import json


def raster_layer(url_template: str, opacity: float, min_zoom: int) -> dict:
    """Raster tiles under the traces and outlines, from a URL template on this app's own origin
    ("/tiles/{z}/{x}/{y}.png"); none are asked for below the archive's shallowest zoom."""
    return {"sourcetype": "raster", "source": [url_template], "type": "raster", "opacity": opacity,
            "minzoom": min_zoom, "below": "traces", "sourceattribution": ""}


def outlines_layer(geojson_strings: list[str], color: str, width: float) -> dict:
    features = [{"type": "Feature", "properties": {}, "geometry": json.loads(g)} for g in geojson_strings if g]
    return {"sourcetype": "geojson", "source": {"type": "FeatureCollection", "features": features},
            "type": "line", "color": color, "line": {"width": width}, "below": "traces"}


def bounds(geojson_strings: list[str]) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) of every coordinate in the geometries, None when there are none."""
    xs, ys = [], []

    def walk(coords):
        if coords and isinstance(coords[0], (int, float)):
            xs.append(coords[0])
            ys.append(coords[1])
        else:
            for c in coords:
                walk(c)
    for g in geojson_strings:
        if g:
            walk(json.loads(g)["coordinates"])
    return (min(xs), min(ys), max(xs), max(ys)) if xs else None


def blank_style(colour: str) -> dict:
    """A MapLibre style with nothing but a background: no tiles, no glyphs, nothing fetched."""
    # One empty source: Plotly drops an empty "sources" object and MapLibre then refuses the style.
    empty = {"type": "geojson", "data": {"type": "FeatureCollection", "features": []}}
    return {"version": 8, "sources": {"empty": empty}, "layers": [{"id": "background", "type": "background",
                                                     "paint": {"background-color": colour}}]}


def map_layout(view, layers: list[dict], background: str, style: str | dict = "white-bg") -> dict:
    """Layout of a map subplot at the configured view; the browser then fits it to the city (assets/maps.js)."""
    return {
        "map": {"style": style, "center": {"lat": view.center.lat, "lon": view.center.lon},
                "zoom": view.zoom, "layers": layers},
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
        "paper_bgcolor": background,
        "uirevision": "keep-view",   # refreshes keep the operator's pan and zoom
    }
