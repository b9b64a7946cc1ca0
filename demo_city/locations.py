"""Where things happen: population-weighted cells plus per-category hot
spots (night markets, construction sites, low-lying districts)."""
from __future__ import annotations

import numpy as np
import shapely

from . import catalog
from .geography import HALF_X_M, HALF_Y_M, Geography, to_lat, to_lon
from .randomness import stream
from .rhythms import N_COMPONENTS, STORM_COMPONENT

CAT = catalog.CATEGORY_INDEX
# (category, hot-spot set, share of that category's volume, sigma metres)
HOTSPOT_RULES = (
    ("vendors", "markets", 0.50, 250.0),
    ("noise", "markets", 0.12, 300.0),
    ("noise", "sites", 0.12, 300.0),
    ("construction", "sites", 0.45, 350.0),
)


def storm_mask(geo: Geography) -> np.ndarray:
    low = np.array([d.low_lying for d in catalog.DISTRICTS])
    return low[geo.cell_district]


class LocationSampler:
    def __init__(self, geo: Geography, seed: int):
        self.geo = geo
        shapely.prepare(geo.city)
        low = storm_mask(geo)
        pop = geo.population
        weights = {i: pop for i in range(N_COMPONENTS)}
        weights[CAT["drainage"]] = pop * (1 + 1.5 * low)
        weights[CAT["greening"]] = pop ** 0.6
        weights[CAT["property"]] = pop ** 1.1
        weights[STORM_COMPONENT] = pop * low
        self.cdf = {k: np.cumsum(w) / w.sum() for k, w in weights.items()}
        rng = stream(seed, "hotspots")
        self.hotspots = {
            name: np.array([(fx * HALF_X_M + rng.normal(0, 300), fy * HALF_Y_M + rng.normal(0, 300))
                            for fx, fy in pts])
            for name, pts in (("markets", catalog.NIGHT_MARKETS), ("sites", catalog.CONSTRUCTION_SITES))
        }

    def cells_for(self, comp: int, n: int, rng) -> np.ndarray:
        c = np.searchsorted(self.cdf[comp], rng.random(n), side="right")
        return np.minimum(c, self.geo.n_cells - 1)

    def points_in_cells(self, cells: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        """Uniform inside each cell's own square, re-drawn where it falls
        outside the city (edge cells only)."""
        g = self.geo
        lon = np.empty(len(cells))
        lat = np.empty(len(cells))
        todo = np.arange(len(cells))
        for _ in range(100):
            c = cells[todo]
            w = g.lon_edges[g.cell_col[c] + 1] - g.lon_edges[g.cell_col[c]]
            h = g.lat_edges[g.cell_row[c]] - g.lat_edges[g.cell_row[c] + 1]
            lon[todo] = g.lon_edges[g.cell_col[c]] + w * rng.random(len(c))
            lat[todo] = g.lat_edges[g.cell_row[c] + 1] + h * rng.random(len(c))
            edge = ~g.cell_full[c]
            bad = np.zeros(len(c), dtype=bool)
            if edge.any():
                bad[edge] = ~shapely.contains_xy(g.city, lon[todo[edge]], lat[todo[edge]])
            todo = todo[bad]
            if len(todo) == 0:
                break
        if len(todo):   # pathological sliver: use the cell's representative point
            rp = shapely.get_coordinates(shapely.point_on_surface(g.cells[cells[todo]]))
            lon[todo], lat[todo] = rp[:, 0], rp[:, 1]
        return lon, lat

    def _hotspot_points(self, name, sigma, n, rng):
        centres = self.hotspots[name][rng.integers(0, len(self.hotspots[name]), n)]
        x = centres[:, 0] + rng.normal(0, sigma, n)
        y = centres[:, 1] + rng.normal(0, sigma, n)
        lon, lat = to_lon(x), to_lat(y)
        cell = self.geo.cell_of(lon, lat)
        ok = cell >= 0
        ok[ok] = shapely.contains_xy(self.geo.city, lon[ok], lat[ok])
        return lon, lat, cell, ok

    def sample(self, comp: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """lon, lat, cell index for each row's component."""
        n = len(comp)
        lon, lat, cell = np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
        filled = np.zeros(n, dtype=bool)
        u = rng.random(n)
        for code, name, share, sigma in HOTSPOT_RULES:
            pick = (comp == CAT[code]) & ~filled & (u < share)
            u = np.where(comp == CAT[code], u - share, u)   # disjoint slices per rule
            idx = np.flatnonzero(pick)
            hl, ha, hc, ok = self._hotspot_points(name, sigma, len(idx), rng)
            idx = idx[ok]
            lon[idx], lat[idx], cell[idx] = hl[ok], ha[ok], hc[ok]
            filled[idx] = True
        for k in range(N_COMPONENTS):
            idx = np.flatnonzero((comp == k) & ~filled)
            if len(idx):
                cell[idx] = self.cells_for(k, len(idx), rng)
                lon[idx], lat[idx] = self.points_in_cells(cell[idx], rng)
        return lon, lat, cell
