"""City outline, grid, streets and districts.

Everything is built in lon/lat on a 1e-6 degree precision grid, so the
unions nest exactly (cell within street within district within city) and
the GeoJSON written with 6 decimals is the same geometry that was tested.
A local equirectangular projection (metres) is used only for distances.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import shapely

from . import catalog
from .randomness import stream

PREC = 1e-6
CELL_M = 660.0
HALF_X_M = 16800.0   # half-extent east-west (~33 km bounding box)
HALF_Y_M = 14000.0   # half-extent north-south (~28 km)
KX = 1.0 / (111320.0 * math.cos(math.radians(catalog.CENTER_LAT)))  # deg lon per m
KY = 1.0 / 110574.0                                                   # deg lat per m
SLIVER_SHARE = 0.2


@dataclass
class Geography:
    outline: shapely.Polygon          # smooth blob before gridding
    city: shapely.Geometry            # union of all cells (what is written)
    cells: np.ndarray                 # shapely geometries, grid_id order
    cell_row: np.ndarray
    cell_col: np.ndarray
    cell_full: np.ndarray             # square entirely inside the city
    box_lon0: np.ndarray              # sampling box (the cell's own square)
    box_lat0: np.ndarray
    cell_street: np.ndarray
    cell_district: np.ndarray
    cell_x: np.ndarray                # square centre, metres east of centre
    cell_y: np.ndarray
    population: np.ndarray            # relative residents per cell
    lookup: np.ndarray                # (rows, cols) -> cell index or -1
    lon_edges: np.ndarray
    lat_edges: np.ndarray             # descending (north first)
    streets: list[dict]
    street_geoms: list
    district_geoms: list
    dlon: float
    dlat: float

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    def cell_of(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Cell index for points (-1 outside the grid / city squares)."""
        col = np.searchsorted(self.lon_edges, lon, side="right") - 1
        row = np.searchsorted(-self.lat_edges, -lat, side="right") - 1
        ok = (col >= 0) & (col < self.lookup.shape[1]) & (row >= 0) & (row < self.lookup.shape[0])
        out = np.full(len(lon), -1, dtype=np.int64)
        out[ok] = self.lookup[row[ok], col[ok]]
        return out


def to_lon(x_m):
    return catalog.CENTER_LON + np.asarray(x_m) * KX


def to_lat(y_m):
    return catalog.CENTER_LAT + np.asarray(y_m) * KY


def _outline(seed: int) -> shapely.Polygon:
    """Superellipse blob with a few low harmonics: smooth and irregular."""
    rng = stream(seed, "outline")
    theta = np.linspace(0.0, 2 * math.pi, 720, endpoint=False)
    n = 3.0
    base = (np.abs(np.cos(theta) / HALF_X_M) ** n + np.abs(np.sin(theta) / HALF_Y_M) ** n) ** (-1 / n)
    wobble = np.ones_like(theta)
    for k, amp in ((2, 0.035), (3, 0.045), (4, 0.025), (5, 0.018), (7, 0.008)):
        wobble += amp * rng.uniform(0.7, 1.3) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    r = base * wobble
    lon = np.round(to_lon(r * np.cos(theta)), 6)
    lat = np.round(to_lat(r * np.sin(theta)), 6)
    return shapely.make_valid(shapely.Polygon(np.column_stack([lon, lat])))


def polygonal(geom):
    """Drop the stray lines/points that snap-rounded overlays can leave."""
    if geom.geom_type in ("Polygon", "MultiPolygon") or geom.is_empty:
        return geom
    polys = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(polys, grid_size=PREC)


def _clean(geoms: np.ndarray) -> np.ndarray:
    return np.array([polygonal(g) for g in geoms], dtype=object)


def _grid(outline):
    """Square boxes covering the outline, clipped; north row first."""
    bx0, by0, bx1, by1 = outline.bounds
    ncol = int(math.ceil((bx1 - bx0) / KX / CELL_M)) + 1
    nrow = int(math.ceil((by1 - by0) / KY / CELL_M)) + 1
    x0 = -ncol * CELL_M / 2
    y0 = nrow * CELL_M / 2
    lon_edges = np.round(to_lon(x0 + CELL_M * np.arange(ncol + 1)), 6)
    lat_edges = np.round(to_lat(y0 - CELL_M * np.arange(nrow + 1)), 6)
    rows, cols = np.meshgrid(np.arange(nrow), np.arange(ncol), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    boxes = shapely.box(lon_edges[cols], lat_edges[rows + 1], lon_edges[cols + 1], lat_edges[rows])
    clipped = _clean(shapely.intersection(boxes, outline, grid_size=PREC))
    share = shapely.area(clipped) / shapely.area(boxes)
    xs = x0 + CELL_M * (cols + 0.5)
    ys = y0 - CELL_M * (rows + 0.5)
    return rows, cols, clipped, share, lon_edges, lat_edges, xs, ys, (nrow, ncol)


def _merge_slivers(rows, cols, clipped, share, shape):
    """Slivers (<20% of a cell) join the edge neighbour they share most
    boundary with; slivers touching no kept cell are dropped."""
    keep = share >= SLIVER_SHARE
    index = np.full(shape, -1, dtype=np.int64)
    index[rows[keep], cols[keep]] = np.flatnonzero(keep)
    geoms = clipped.copy()
    owner = np.full(len(rows), -1, dtype=np.int64)
    owner[keep] = np.flatnonzero(keep)
    for i in np.flatnonzero((share > 0) & ~keep):
        best, best_len = -1, 0.0
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            r, c = rows[i] + dr, cols[i] + dc
            if 0 <= r < shape[0] and 0 <= c < shape[1] and index[r, c] >= 0:
                length = shapely.length(shapely.intersection(clipped[i], clipped[index[r, c]]))
                if length > best_len:
                    best, best_len = index[r, c], length
        if best >= 0:
            geoms[best] = polygonal(shapely.union(geoms[best], clipped[i], grid_size=PREC))
            owner[i] = best
    return keep, geoms, owner


def _adjacency(lookup: np.ndarray) -> list[list[int]]:
    n = int(lookup.max()) + 1
    nbrs: list[set] = [set() for _ in range(n)]
    for a, b in ((lookup[:-1, :], lookup[1:, :]), (lookup[:, :-1], lookup[:, 1:])):
        m = (a >= 0) & (b >= 0) & (a != b)
        for u, v in zip(a[m].tolist(), b[m].tolist()):
            nbrs[u].add(v)
            nbrs[v].add(u)
    return [sorted(s) for s in nbrs]   # sorted: no set-order dependence


def _grow_regions(seeds, weights, allowed, nbrs, xs, ys) -> np.ndarray:
    """Multi-source weighted Dijkstra over the cell graph: a discrete,
    always-contiguous Voronoi (each cell inherits its predecessor's label)."""
    label = np.full(len(xs), -1, dtype=np.int64)
    heap = [(0.0, int(s), k) for k, s in enumerate(seeds)]
    heapq.heapify(heap)
    dist = {}
    while heap:
        d, u, k = heapq.heappop(heap)
        if label[u] >= 0:
            continue
        label[u] = k
        for v in nbrs[u]:
            if allowed[v] and label[v] < 0:
                step = math.hypot(xs[u] - xs[v], ys[u] - ys[v]) * weights[k]
                nd = d + step
                if nd < dist.get((v, k), math.inf):
                    dist[(v, k)] = nd
                    heapq.heappush(heap, (nd, v, k))
    return label


def _nearest_cell(xs, ys, x, y, allowed=None) -> int:
    d = (xs - x) ** 2 + (ys - y) ** 2
    if allowed is not None:
        d = np.where(allowed, d, np.inf)
    return int(np.argmin(d))


def _population(seed, xs, ys) -> np.ndarray:
    rng = stream(seed, "population")
    pop = np.full(len(xs), 0.03)
    for d in catalog.DISTRICTS:
        sigma = 2800.0 if d.weight > 1.5 else 2200.0
        r2 = (xs - d.fx * HALF_X_M) ** 2 + (ys - d.fy * HALF_Y_M) ** 2
        pop += d.density * np.exp(-r2 / (2 * sigma ** 2))
    return pop * rng.lognormal(0.0, 0.3, len(xs))


def _street_seeds(rng, cells_in, xs, ys, pop, k) -> list[int]:
    """Population-weighted seeds kept apart so no street is a single cell."""
    p = pop[cells_in] ** 0.7
    p = p / p.sum()
    min_d = 0.55 * math.sqrt(len(cells_in) / k) * CELL_M
    chosen: list[int] = []
    for _ in range(400):
        if len(chosen) == k:
            break
        c = int(cells_in[rng.choice(len(cells_in), p=p)])
        if all(math.hypot(xs[c] - xs[o], ys[c] - ys[o]) >= min_d for o in chosen):
            chosen.append(c)
        elif _ > 200:
            min_d *= 0.97
    rest = [int(c) for c in cells_in if int(c) not in chosen]
    while len(chosen) < k:   # tiny district: take any remaining cells
        chosen.append(rest.pop(0))
    return chosen


def _names(seed, n):
    rng = stream(seed, "street-names")
    combos = [a + b for a in catalog.STREET_ZH_FIRST for b in catalog.STREET_ZH_SECOND]
    zh = [combos[i] for i in rng.permutation(len(combos))[:n]]
    en = [catalog.STREET_EN_WORDS[i] for i in rng.permutation(len(catalog.STREET_EN_WORDS))[:n]]
    return zh, en


def build(seed: int) -> Geography:
    outline = _outline(seed)
    rows, cols, clipped, share, lon_edges, lat_edges, xs, ys, shape = _grid(outline)
    keep, geoms, owner = _merge_slivers(rows, cols, clipped, share, shape)
    # keep[] is already in row-major order = west->east, north->south.
    kept = np.flatnonzero(keep)
    new_index = np.full(len(rows), -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    lookup = np.full(shape, -1, dtype=np.int64)
    has_owner = owner >= 0
    lookup[rows[has_owner], cols[has_owner]] = new_index[owner[has_owner]]
    cells = geoms[kept]
    cx, cy = xs[kept], ys[kept]
    nbrs = _adjacency(lookup)
    pop = _population(seed, cx, cy)
    everywhere = np.ones(len(kept), dtype=bool)

    # Districts: weighted growth from fixed, jittered seed positions.
    rng = stream(seed, "district-seeds")
    dseeds = []
    for d in catalog.DISTRICTS:
        jx, jy = rng.normal(0, 400.0, 2)
        dseeds.append(_nearest_cell(cx, cy, d.fx * HALF_X_M + jx, d.fy * HALF_Y_M + jy))
    district = _grow_regions(dseeds, [d.weight for d in catalog.DISTRICTS], everywhere, nbrs, cx, cy)

    # Streets: grown inside each district so the hierarchy nests.
    street = np.full(len(kept), -1, dtype=np.int64)
    street_meta = []
    srng = stream(seed, "street-seeds")
    for di, d in enumerate(catalog.DISTRICTS):
        inside = district == di
        seeds = _street_seeds(srng, np.flatnonzero(inside), cx, cy, pop, d.streets)
        seeds.sort(key=lambda c: (-cy[c], cx[c]))
        lab = _grow_regions(seeds, [1.0] * len(seeds), inside, nbrs, cx, cy)
        for k in range(len(seeds)):
            street[lab == k] = len(street_meta) + k
        street_meta.extend({"district": di} for _ in seeds)
    zh, en = _names(seed, len(street_meta))
    for i, s in enumerate(street_meta):
        s.update(street_id=f"S{i + 1:03d}", name_zh=zh[i] + "街道", name_en=en[i] + " Street")

    street_geoms = [polygonal(shapely.union_all(cells[street == i], grid_size=PREC))
                    for i in range(len(street_meta))]
    district_geoms = [polygonal(shapely.union_all(np.array(street_geoms, dtype=object)[
        [i for i, s in enumerate(street_meta) if s["district"] == di]], grid_size=PREC))
        for di in range(len(catalog.DISTRICTS))]
    city = polygonal(shapely.union_all(np.array(district_geoms, dtype=object), grid_size=PREC))
    full = np.isclose(share[kept], 1.0, atol=1e-9)
    return Geography(
        outline=outline, city=city, cells=cells, cell_row=rows[kept], cell_col=cols[kept],
        cell_full=full, box_lon0=lon_edges[cols[kept]], box_lat0=lat_edges[rows[kept] + 1],
        cell_street=street, cell_district=district, cell_x=cx, cell_y=cy, population=pop,
        lookup=lookup, lon_edges=lon_edges, lat_edges=lat_edges, streets=street_meta,
        street_geoms=street_geoms, district_geoms=district_geoms,
        dlon=float(lon_edges[1] - lon_edges[0]), dlat=float(lat_edges[0] - lat_edges[1]),
    )
