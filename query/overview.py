"""Figures of the city overview: the KPI tiles, open incidents by district, and sensors in alarm."""
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.warehouse import NoData
from query import store
from query.store import cached, scope_clause


@dataclass(frozen=True)
class Tiles:
    incidents_today: int
    open: int
    overdue: int
    median_hours_to_close: float | None
    sensors_in_alarm: int


@cached
def tiles(now: datetime, scope: tuple[str, ...] | None = None) -> Tiles:
    # One scan per figure, each filtered in WHERE: DuckDB then skips row groups by their min/max (created_at,
    # closed_at) and runs a plain median. As FILTER clauses of one scan: 5.3 s at 10M incidents against 0.9 s.
    where, params = scope_clause(scope)
    day_start = now.astimezone(store.config().tz).replace(hour=0, minute=0, second=0, microsecond=0)
    row = store.reader().rows(f"""
        SELECT
          (SELECT count(*) FROM fct_incident WHERE created_at >= ? AND created_at <= ? AND {where}),
          (SELECT count(*) FROM fct_incident WHERE status <> 'closed' AND {where}),
          (SELECT count(*) FROM fct_incident WHERE status <> 'closed' AND due_at < ? AND {where}),
          (SELECT median(epoch(closed_at - created_at) / 3600.0) FROM fct_incident
           WHERE closed_at > ?::TIMESTAMPTZ - INTERVAL 30 DAY AND closed_at <= ? AND {where})""",
        [day_start, now, *params, *params, now, *params, now, now, *params])[0]
    alarms = sum(1 for s in sensor_states(now, scope) if s["state"] == "alarm")
    return Tiles(row[0], row[1], row[2], None if row[3] is None else round(row[3], 1), alarms)


@cached
def sensor_states(now: datetime, scope: tuple[str, ...] | None = None) -> list[dict]:
    """Each sensor's newest reading up to now and its state: normal, warning, alarm, fault or offline."""
    where, params = scope_clause(scope, "s.district_id")
    thresholds = store.config().catalog.thresholds
    rows = store.reader().rows(f"""
        SELECT s.sensor_id, s.metric, s.lat, s.lon, s.district_id, r.ts, r.value, r.status
        FROM dim_sensor s LEFT JOIN (
            SELECT sensor_id, arg_max(ts, ts) AS ts, arg_max(value, ts) AS value, arg_max(status, ts) AS status
            FROM fct_sensor_reading WHERE ts <= ? GROUP BY sensor_id) r USING (sensor_id)
        WHERE {where} ORDER BY s.sensor_id""", [now, *params])
    offline_after = timedelta(hours=thresholds.offline_after_hours)
    out = []
    for sensor_id, metric, lat, lon, district, ts, value, status in rows:
        out.append({"sensor_id": sensor_id, "metric": metric, "lat": lat, "lon": lon, "district_id": district,
                    "ts": ts, "value": value,
                    "state": _state(thresholds.metrics.get(metric), ts, value, status, now - offline_after)})
    return out


def _state(metric, ts, value, status, fresh_after) -> str:
    if ts is None or ts < fresh_after:
        return "offline"
    if status not in (None, "ok") or value is None or metric is None:
        return "fault"
    beyond = (lambda limit: value >= limit) if metric.direction == "above" else (lambda limit: value <= limit)
    return "alarm" if beyond(metric.alarm) else "warning" if beyond(metric.warn) else "normal"


@cached
def open_by_district(scope: tuple[str, ...] | None = None) -> list[dict]:
    where, params = scope_clause(scope, "d.district_id")
    rows = store.reader().rows(f"""
        SELECT d.district_id, d.name_en, d.name_zh, d.geojson_simplified, coalesce(o.n, 0)
        FROM dim_district d LEFT JOIN (
            SELECT district_id, count(*) AS n FROM fct_incident WHERE status <> 'closed' GROUP BY district_id
        ) o USING (district_id)
        WHERE {where} ORDER BY d.district_id""", params)
    return [{"district_id": r[0], "name_en": r[1], "name_zh": r[2], "geojson": r[3], "open": r[4]} for r in rows]


@cached
def street_outlines(scope: tuple[str, ...] | None = None) -> list[str]:
    where, params = scope_clause(scope)
    return [r[0] for r in store.reader().rows(
        f"SELECT geojson_simplified FROM dim_street WHERE {where} ORDER BY street_id", params)]


def has_data() -> bool:
    return store.reader().current() is not None


__all__ = ["Tiles", "tiles", "sensor_states", "open_by_district", "street_outlines", "has_data", "NoData"]
