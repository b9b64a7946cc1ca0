"""Which district, street and grid cell holds each point, and its H3 cells: done once per batch, in bulk."""
import h3
import numpy as np
import pandas as pd
import shapely
from h3.api import basic_int as h3_int

from geo.boundaries import Level
from geo.polygon_index import NONE, PolygonIndex

H3_RESOLUTIONS = (7, 8, 9)
ASSIGNED_LEVELS = ("district", "street", "grid")


class Locator:
    def __init__(self, levels: dict[str, Level]):
        self.levels = levels
        self.city = shapely.union_all(levels["city"].frame.geometry.values)
        shapely.prepare(self.city)
        self._indexes: dict[str, PolygonIndex] = {}

    def inside_city(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return shapely.contains_xy(self.city, lon, lat)

    def index(self, name: str) -> PolygonIndex:
        """A level's polygon index, built on first use (0.03-0.1 s for all of the demo city's or Boston's levels;
        a session that locates nothing skips it). Each level has its own: levels need not nest (Boston's wards cut
        across its neighbourhoods)."""
        if name not in self._indexes:
            self._indexes[name] = PolygonIndex(self.levels[name].frame.geometry.values)
        return self._indexes[name]

    def assign(self, lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
        """district_id, street_id, grid_id for each point (None where outside or not located).

        A point is in a polygon when it is within it: on a boundary is not within. Where polygons of a level
        overlap, the first in the level's frame wins. Each distinct coordinate pair is looked up once."""
        pair, distinct_lat, distinct_lon = distinct_pairs(lat, lon)
        out = pd.DataFrame(index=range(len(lat)))
        for name in ASSIGNED_LEVELS:
            column = np.full(len(lat), None, dtype=object)
            if name in self.levels:
                position = np.append(self.index(name).locate(distinct_lon, distinct_lat), NONE)[pair]
                found = position != NONE
                column[found] = self.levels[name].frame["id"].to_numpy(dtype=object)[position[found]]
            out[f"{name}_id"] = pd.Series(column, dtype="object")
        return out


def h3_cells(lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    """H3 cells at resolutions 7-9 (NaN where not located): the finest is computed once per distinct
    coordinate pair (feeds repeat addresses), coarser ones once per distinct finest cell."""
    finest = max(H3_RESOLUTIONS)
    pair, distinct_lat, distinct_lon = distinct_pairs(lat, lon)
    if not len(distinct_lat):
        return _unlocated_h3(len(lat))
    cell_ints = np.array([h3_int.latlng_to_cell(a, o, finest)
                          for a, o in zip(distinct_lat.tolist(), distinct_lon.tolist())], dtype=np.uint64)
    cell_of_pair, cells = pd.factorize(cell_ints)
    cell = np.append(cell_of_pair, -1)[pair]              # -1: not located
    out = pd.DataFrame({f"h3_r{finest}": _spread([h3.int_to_str(int(c)) for c in cells], cell)})
    for res in H3_RESOLUTIONS:
        if res != finest:
            parents = [h3.int_to_str(h3_int.cell_to_parent(int(c), res)) for c in cells]
            out[f"h3_r{res}"] = _spread(parents, cell)
    return out


def _spread(distinct: list, codes: np.ndarray):
    """distinct[code] for each code, missing for -1, in the dtype pandas infers for these values."""
    return pd.Series(distinct).array.take(codes, allow_fill=True)


def _unlocated_h3(rows: int) -> pd.DataFrame:
    """No point located: the frame the per-point version made, whose dtypes pandas infers from Nones."""
    finest = max(H3_RESOLUTIONS)
    out = pd.DataFrame({f"h3_r{finest}": [None] * rows})
    for res in H3_RESOLUTIONS:
        if res != finest:
            out[f"h3_r{res}"] = out[f"h3_r{finest}"].map({})
    return out


def distinct_pairs(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each point, the number of its (lat, lon) pair, and the distinct pairs; a point where either is NaN
    gets the number len(distinct), one past the last pair."""
    located = ~(np.isnan(lat) | np.isnan(lon))
    both = np.empty(int(located.sum()), dtype=np.complex128)      # one hashable value per pair
    both.real, both.imag = lat[located], lon[located]
    number, distinct = pd.factorize(both)
    pair = np.full(len(lat), len(distinct), dtype=np.int64)
    pair[located] = number
    return pair, distinct.real.copy(), distinct.imag.copy()
