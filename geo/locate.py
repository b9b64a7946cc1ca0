"""Which district, street and grid cell holds each point, and its H3 cells: done once per batch, in bulk."""
import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely

from geo.boundaries import WGS84, Level

H3_RESOLUTIONS = (7, 8, 9)


class Locator:
    def __init__(self, levels: dict[str, Level]):
        self.levels = levels
        self.city = shapely.union_all(levels["city"].frame.geometry.values)
        shapely.prepare(self.city)

    def inside_city(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return shapely.contains_xy(self.city, lon, lat)

    def assign(self, lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
        """district_id, street_id, grid_id for each point (None where outside or not located)."""
        out = pd.DataFrame(index=range(len(lat)))
        located = ~(np.isnan(lat) | np.isnan(lon))
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon[located], lat[located]), crs=WGS84,
                                  index=np.flatnonzero(located))
        for name in ("district", "street", "grid"):
            column = f"{name}_id"
            out[column] = pd.Series([None] * len(lat), dtype="object")
            if name not in self.levels or points.empty:
                continue
            joined = gpd.sjoin(points, self.levels[name].frame[["id", "geometry"]], how="inner", predicate="within")
            joined = joined[~joined.index.duplicated(keep="first")]   # a point on a shared border: first wins
            out.loc[joined.index, column] = joined["id"].values
        return out


def h3_cells(lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    """H3 cells at resolutions 7-9; the finest is computed per point, coarser ones per distinct cell."""
    finest = max(H3_RESOLUTIONS)
    cells = [h3.latlng_to_cell(a, o, finest) if a == a and o == o else None for a, o in zip(lat.tolist(), lon.tolist())]
    out = pd.DataFrame({f"h3_r{finest}": cells})
    distinct = [c for c in set(cells) if c is not None]
    for res in H3_RESOLUTIONS:
        if res != finest:
            parents = {c: h3.cell_to_parent(c, res) for c in distinct}
            out[f"h3_r{res}"] = out[f"h3_r{finest}"].map(parents)
    return out
