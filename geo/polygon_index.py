"""Which polygon of a set holds each of many points: exact, in bulk, without a geometry per point.

A raster over the polygons lists, for each cell, the polygons whose bounding box reaches the cell, in the set's
order. Where no edge of a polygon comes near a cell, every point of the cell is on the same side of that polygon,
so the cell's centre decides for all of them: a point in a cell lying wholly inside the first polygon listed is
within it, with no test. Elsewhere the point is tested against the cell's polygons (`shapely.contains_xy`: GEOS's
prepared point-in-area test, as `sjoin(predicate="within")` uses) and the first that holds it wins. Point
geometries, which a spatial join needs, would cost more than this whole lookup (about 0.6 s per million).
"""
import math

import numpy as np
import shapely

NONE = -1                     # "in no polygon"
CELLS_PER_POLYGON = 64        # finer: more points answered without a test, but a slower build
MAX_CELLS = 1 << 18           # caps build time and memory for levels of very many polygons
AREA_TYPES = [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON]


class PolygonIndex:
    def __init__(self, polygons: np.ndarray):
        self.polygons = np.asarray(polygons, dtype=object)
        shapely.prepare(self.polygons)
        bounds = shapely.bounds(self.polygons)
        usable = np.flatnonzero(~np.isnan(bounds).any(axis=1))     # None and empty geometries hold no point
        self.extent = None
        if usable.size == 0:
            return
        self.extent = (bounds[usable, 0].min(), bounds[usable, 1].min(),
                       bounds[usable, 2].max(), bounds[usable, 3].max())
        self._size_cells(len(usable))
        cells, polygon = self._cells_of_boxes(bounds[usable], usable)
        keep, inside = self._decided(cells, polygon)
        self._store(cells[keep], polygon[keep], inside[keep])

    def _size_cells(self, polygons: int) -> None:
        west, south, east, north = self.extent
        width, height = east - west, north - south
        cells = min(CELLS_PER_POLYGON * polygons, MAX_CELLS)
        # Square cells sized by the polygons' area, not the extent's: an extent that is mostly water (Boston's
        # harbour) would otherwise get coarse cells. The second term keeps a long thin extent from making
        # millions of them.
        area = float(np.nansum(shapely.area(self.polygons)))
        self.size = max(math.sqrt(area / cells), max(width, height) / cells) or 1.0
        self.inverse = 1.0 / self.size
        self.columns = int(self._column(np.array([east]))[0]) + 1
        self.rows = int(self._row(np.array([north]))[0]) + 1

    # Cell arithmetic. Floating-point rounding is monotonic, so a point between two x values gets a column between
    # theirs: every point of a bounding box or of an edge falls in a cell of the box's or the edge's cell range.
    def _column(self, x: np.ndarray) -> np.ndarray:
        return np.floor((x - self.extent[0]) * self.inverse).astype(np.int64)

    def _row(self, y: np.ndarray) -> np.ndarray:
        return np.floor((y - self.extent[1]) * self.inverse).astype(np.int64)

    def _cells_of_boxes(self, bounds: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cell, owner) for every cell of every box (west, south, east, north)."""
        first_col, first_row = self._column(bounds[:, 0]), self._row(bounds[:, 1])
        widths = self._column(bounds[:, 2]) - first_col + 1
        per_box = widths * (self._row(bounds[:, 3]) - first_row + 1)
        rank = _ranks(per_box)
        widths = np.repeat(widths, per_box)
        col = np.repeat(first_col, per_box) + rank % widths
        row = np.repeat(first_row, per_box) + rank // widths
        return row * self.columns + col, np.repeat(owners, per_box)

    def _decided(self, cells: np.ndarray, polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Of (cell, polygon) entries: which to keep (the polygon may hold a point of the cell) and which hold
        every point of the cell (no edge of the polygon near the cell, and the cell's centre inside)."""
        is_area = np.isin(shapely.get_type_id(self.polygons), AREA_TYPES)
        edge_cells, edge_polygon = self._cells_of_edges(np.where(is_area, self.polygons, None))
        near_edge = np.isin(cells * len(self.polygons) + polygon, edge_cells * len(self.polygons) + edge_polygon)
        near_edge |= ~is_area[polygon]               # anything but an area (none expected) is always tested
        row, col = np.divmod(cells, self.columns)
        centre_x = self.extent[0] + (col + 0.5) * self.size
        centre_y = self.extent[1] + (row + 0.5) * self.size
        near_edge |= (self._column(centre_x) != col) | (self._row(centre_y) != row)   # centre must be in the cell
        inside = np.zeros(len(cells), dtype=bool)
        clear = ~near_edge
        inside[clear] = shapely.contains_xy(self.polygons[polygon[clear]], centre_x[clear], centre_y[clear])
        return near_edge | inside, inside

    def _cells_of_edges(self, areas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cell, polygon) for every cell an edge's bounding box reaches: the cells an edge may cross."""
        lines, line_polygon = shapely.get_parts(shapely.boundary(areas), return_index=True)
        points, point_line = shapely.get_coordinates(lines, return_index=True)
        edge = np.flatnonzero(point_line[:-1] == point_line[1:])      # consecutive vertices of one ring
        start, end = points[edge], points[edge + 1]
        boxes = np.column_stack([np.minimum(start, end), np.maximum(start, end)])
        return self._cells_of_boxes(boxes, line_polygon[point_line[edge]])

    def _store(self, cells: np.ndarray, polygon: np.ndarray, inside: np.ndarray) -> None:
        order = np.lexsort((polygon, cells))         # by cell, then in the set's order (first wins)
        cells, polygon, inside = cells[order], polygon[order], inside[order]
        self.polygon = polygon
        self.start = np.searchsorted(cells, np.arange(self.columns * self.rows + 1))
        self.cover = np.full(self.columns * self.rows, NONE, dtype=np.int64)
        first = self.start[:-1][np.diff(self.start) > 0]
        first = first[inside[first]]                 # the cell's first polygon holds all of it
        self.cover[cells[first]] = polygon[first]

    def locate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Position of the first polygon each point (x, y) is within (on a boundary is not within), or NONE."""
        found = np.full(len(x), NONE, dtype=np.int64)
        if self.extent is None:
            return found
        west, south, east, north = self.extent
        points = np.flatnonzero((x >= west) & (x <= east) & (y >= south) & (y <= north))   # NaN falls out here
        cells = self._row(y[points]) * self.columns + self._column(x[points])
        found[points] = self.cover[cells]
        untested = found[points] == NONE
        self._test(points[untested], cells[untested], x, y, found)
        return found

    def _test(self, points: np.ndarray, cells: np.ndarray, x: np.ndarray, y: np.ndarray, found: np.ndarray) -> None:
        first, count = self.start[cells], self.start[cells + 1] - self.start[cells]
        point = np.repeat(points, count)
        polygon = self.polygon[np.repeat(first, count) + _ranks(count)]
        within = shapely.contains_xy(self.polygons[polygon], x[point], y[point])
        point, polygon = point[within], polygon[within]
        if len(point):
            first_match = np.r_[True, point[1:] != point[:-1]]     # pairs run point by point, in the set's order
            found[point[first_match]] = polygon[first_match]


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count, concatenated."""
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
