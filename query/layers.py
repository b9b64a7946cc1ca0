"""Rows behind each map layer type. Sizes are bounded by the city's area, never by the number of records:
cells and districts are aggregated in DuckDB, and single incidents are fetched only when few."""
from collections import Counter
from datetime import datetime

import h3

from query import store
from query.overview import sensor_states
from query.store import cached, scope_clause

CELL_COLUMN = {7: "h3_r7", 8: "h3_r8", 9: "h3_r9"}     # identifiers from this table only, never from a request
# Every measure as of p.now, so the wall's time control can show a past hour: an incident was open at p.now when
# it had been created by then and was not yet closed (closed_at after p.now, or not closed at all).
OPEN_AT = "(status <> 'closed' OR closed_at > p.now)"
MEASURES = {
    "open_incidents": f"count(*) FILTER (WHERE {OPEN_AT})",
    "overdue_share": f"count(*) FILTER (WHERE {OPEN_AT} AND due_at < p.now) "
                     f"/ nullif(count(*) FILTER (WHERE {OPEN_AT}), 0)",
    "satisfaction": "avg(satisfaction) FILTER (WHERE closed_at > p.since AND closed_at <= p.now)",
    "incidents_window": "count(*) FILTER (WHERE created_at > p.since)",
}
# The records a share or mean rests on (query/privacy.py suppresses it on shared screens when fewer than k);
# counts are the operators' working figures and are never suppressed on the map.
MEASURE_RECORDS = {
    "overdue_share": f"count(*) FILTER (WHERE {OPEN_AT})",
    "satisfaction": "count(satisfaction) FILTER (WHERE closed_at > p.since AND closed_at <= p.now)",
}


def _status_filter(status: str) -> str:
    return "status <> 'closed'" if status == "open" else "true"


@cached
def incident_cells(since: datetime, until: datetime, status: str, resolution: int,
                   scope: tuple[str, ...] | None = None) -> list[tuple[str, int]]:
    """(H3 cell, incidents) for incidents created in the window (since, until]."""
    column = CELL_COLUMN[resolution]
    where, params = scope_clause(scope)
    return store.reader().rows(f"""
        SELECT {column}, count(*) FROM fct_incident
        WHERE created_at > ? AND created_at <= ? AND {_status_filter(status)} AND {column} IS NOT NULL AND {where}
        GROUP BY 1 ORDER BY 1""", [since, until, *params])


def incident_cells_within(since: datetime, until: datetime, status: str, resolution: int, max_cells: int,
                          scope: tuple[str, ...] | None = None) -> tuple[list[tuple[str, int]], int]:
    """incident_cells at `resolution`, or at the finest coarser resolution with at most max_cells cells, and the
    resolution used: the map's payload grows with its cells, and a fine resolution over a large city or a long
    window has too many. Below r7, the coarsest stored, cells are merged into their H3 parents."""
    coarsest = min(CELL_COLUMN)
    for level in range(resolution, coarsest - 1, -1):
        cells = incident_cells(since, until, status, level, scope)
        if len(cells) <= max_cells:
            return cells, level
    while len(cells) > max_cells and level > 0:
        level -= 1
        merged = Counter()
        for cell, n in cells:
            merged[h3.cell_to_parent(cell, level)] += n
        cells = sorted(merged.items())
    return cells, level


@cached
def incident_points(since: datetime, until: datetime, status: str, limit: int,
                    scope: tuple[str, ...] | None = None) -> list[tuple]:
    """(incident_id, lat, lon, category, priority, status) of the newest incidents in the window (since, until],
    at most limit+1 (one more than asked, so the caller knows when there are too many to draw singly)."""
    where, params = scope_clause(scope)
    return store.reader().rows(f"""
        SELECT incident_id, lat, lon, category, priority, status FROM fct_incident
        WHERE created_at > ? AND created_at <= ? AND {_status_filter(status)} AND lat IS NOT NULL AND {where}
        ORDER BY created_at DESC LIMIT ?""", [since, until, *params, limit + 1])


@cached
def district_measure(measure: str, since: datetime, until: datetime,
                     scope: tuple[str, ...] | None = None) -> list[dict]:
    """Each district (in scope) with its outline and the measure's value as of `until` (None where undefined);
    windowed measures count over (since, until]. `records`: what a share or mean rests on (None for counts)."""
    expression, records = MEASURES[measure], MEASURE_RECORDS.get(measure, "NULL")
    where, params = scope_clause(scope, "d.district_id")
    # p: the bound times as a one-row relation, so each measure uses what it needs.
    rows = store.reader().rows(f"""
        SELECT d.district_id, d.name_en, d.name_zh, d.geojson_simplified, m.value, m.records
        FROM dim_district d LEFT JOIN (
            SELECT district_id, {expression} AS value, {records} AS records
            FROM fct_incident, (SELECT ?::TIMESTAMPTZ AS now, ?::TIMESTAMPTZ AS since) p
            WHERE created_at <= p.now GROUP BY district_id) m USING (district_id)
        WHERE {where} ORDER BY d.district_id""", [until, since, *params])
    empty = 0 if measure in ("open_incidents", "incidents_window") else None
    none = 0 if measure in MEASURE_RECORDS else None
    return [{"district_id": r[0], "name_en": r[1], "name_zh": r[2], "geojson": r[3],
             "value": empty if r[4] is None else r[4], "records": none if r[5] is None else r[5]} for r in rows]


def sensors(now: datetime, metrics: list[str] | None, scope: tuple[str, ...] | None = None) -> list[dict]:
    return [s for s in sensor_states(now, scope) if metrics is None or s["metric"] in metrics]


@cached
def places(kind: str, since: datetime, until: datetime, scope: tuple[str, ...] | None = None) -> list[dict]:
    """Each located place of this kind (in scope) with the service applications made there in (since, until] and
    those waiting past their deadline at `until` (both 0 for places that take no applications)."""
    where, params = scope_clause(scope, "p.district_id")
    rows = store.reader().rows(f"""
        SELECT p.place_id, p.name_en, p.name_zh, p.lat, p.lon, p.district_id,
               count(c.case_id) FILTER (WHERE c.submitted_at > ?),
               count(c.case_id) FILTER (WHERE (c.decided_at IS NULL OR c.decided_at > ?) AND c.deadline_at < ?)
        FROM dim_place p LEFT JOIN fct_service_case c ON c.hall_id = p.place_id AND c.submitted_at <= ?
        WHERE p.kind = ? AND p.lat IS NOT NULL AND {where}
        GROUP BY ALL ORDER BY p.place_id""", [since, until, until, until, kind, *params])
    return [{"place_id": r[0], "name_en": r[1], "name_zh": r[2], "lat": r[3], "lon": r[4], "district_id": r[5],
             "applications": r[6], "overdue": r[7]} for r in rows]
