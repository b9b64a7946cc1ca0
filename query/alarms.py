"""What needs attention now, for the command-centre wall: alarms computed from the published warehouse.

Five kinds (limits in config/alarms.yaml, see core/alarms_config.py):

- urgent_incident   priority 'urgent', created within the last `within_hours` (inclusive) and not closed at `now`.
- sensor_threshold  the sensor's newest reading (query.overview.sensor_states) is in 'alarm' (critical) or 'warning'
                    state; it began with the first reading after the sensor's last normal reading.
- deadline_breach   open at `now` and due in [now, now + due_within_hours] (warning) or in
                    [now - overdue_within_hours, now) (critical); at most `max_per_district` per district, critical
                    first (the most recently breached first), then the soonest due.
- district_spike    incidents created in the district in (t - window_hours, t] against the same hours of each of the
                    previous `baseline_days` days (mean, population sd): count >= min_count and
                    ((count - mean) / max(sd, 1) >= z_score or count / mean >= ratio). Evaluated at t = `now` floored
                    to a clock-aligned grid of `step_minutes`; the spike began at the oldest spiking grid point of
                    the episode that reaches t (an episode bridges lulls of up to `merge_gap_minutes`).
- stale_feed        query.health.feeds_status: last successful load older than the feed's expected_every_minutes
                    (critical past `critical_after_intervals` of them). City-wide: shown whatever the scope.

An alarm's id names its situation, so it is the same across refreshes, processes and generations while the situation
lasts, and an acknowledgement (ops/acks.py) holds exactly that long. A situation that gets worse (warning to critical)
or starts again (a new run of readings, a new due date, a new silence) gets a new id. Ids:
`urgent:<incident>`, `sensor:<sensor>:<severity>:<onset>`, `deadline:<incident>:<due_soon|overdue>:<due_at>`,
`spike:<district>:<onset>`, `feed:<feed>:<severity>:<last load|never>`; times in UTC ISO 8601.

Pass `now` floored to the minute (query.store.minute) so the per-minute cache works.
"""
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from core.alarms_config import Alarms
from query import health, overview, store
from query.store import cached, scope_clause

KINDS = ("urgent_incident", "sensor_threshold", "deadline_breach", "district_spike", "stale_feed")
_SEVERITY_ORDER = {"critical": 0, "warning": 1}


@dataclass(frozen=True)
class Alarm:
    id: str
    kind: str
    severity: str
    subject: str
    district_id: str | None
    lat: float | None
    lon: float | None
    since: datetime
    values: dict


def current(now: datetime, scope: tuple[str, ...] | None = None) -> list[Alarm]:
    """Every alarm at `now` within the scope: critical first, then newest first (then by id). Nothing published
    yet: no alarms."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now: got {now!r}; expected a timezone-aware datetime")
    if store.reader().current() is None:
        return []
    scope = tuple(scope) if scope is not None else None
    cfg = _cfg()
    found: list[Alarm] = []
    if cfg.urgent_incident.enabled:
        found += _urgent(now, scope)
    if cfg.sensor_threshold.enabled:
        found += _sensors(now, scope)
    if cfg.deadline_breach.enabled:
        found += _deadlines(now, scope)
    if cfg.district_spike.enabled:
        found += _spikes(_grid_floor(now, cfg.district_spike.step_minutes), scope)
    if cfg.stale_feed.enabled:
        found += _stale_feeds(now)
    return sorted(found, key=lambda a: (_SEVERITY_ORDER[a.severity], -a.since.timestamp(), a.id))


def _cfg() -> Alarms:
    return getattr(store.config(), "alarms", None) or Alarms()


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _local(ts: datetime) -> datetime:
    return ts.astimezone(store.config().tz)


def _num(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


# An incident is open at `now` if it existed and was not yet closed then (a replayed clock sees later closings).
_OPEN_AT = "created_at <= ? AND (status IS DISTINCT FROM 'closed' OR closed_at > ?)"


@cached
def _urgent(now: datetime, scope) -> list[Alarm]:
    cfg = _cfg().urgent_incident
    where, params = scope_clause(scope)
    rows = store.reader().rows(f"""
        SELECT incident_id, category, status, created_at, due_at, district_id, lat, lon FROM fct_incident
        WHERE {where} AND priority = 'urgent' AND {_OPEN_AT} AND created_at >= ?
        ORDER BY incident_id""", [*params, now, now, now - timedelta(hours=cfg.within_hours)])
    return [Alarm(f"urgent:{iid}", "urgent_incident", cfg.severity, iid, district, _num(lat), _num(lon),
                  _local(created), {"category": category, "status": status,
                                    "hours_open": round((now - created).total_seconds() / 3600, 2),
                                    "hours_to_due": None if due is None else
                                    round((due - now).total_seconds() / 3600, 2)})
            for iid, category, status, created, due, district, lat, lon in rows]


@cached
def _sensors(now: datetime, scope) -> list[Alarm]:
    states = [s for s in overview.sensor_states(now, scope) if s["state"] in ("alarm", "warning")]
    if not states:
        return []
    metrics = store.config().catalog.thresholds.metrics
    names = list(metrics)
    # Onset: the first reading after the newest 'normal' one (the same test as overview._state), up to now.
    rows = store.reader().rows("""
        WITH t AS (SELECT unnest(?::VARCHAR[]) AS metric, unnest(?::VARCHAR[]) AS direction,
                          unnest(?::DOUBLE[]) AS warn),
        r AS (
            SELECT r.sensor_id, r.ts,
                   coalesce((r.status IS NULL OR r.status = 'ok') AND r.value IS NOT NULL AND t.metric IS NOT NULL
                            AND CASE WHEN t.direction = 'above' THEN r.value < t.warn ELSE r.value > t.warn END,
                            false) AS normal
            FROM fct_sensor_reading r JOIN dim_sensor s USING (sensor_id) LEFT JOIN t ON t.metric = s.metric
            WHERE r.sensor_id IN (SELECT unnest(?::VARCHAR[])) AND r.ts <= ?)
        SELECT r.sensor_id, min(r.ts)
        FROM r LEFT JOIN (SELECT sensor_id, max(ts) AS last_normal FROM r WHERE normal GROUP BY sensor_id) n
             USING (sensor_id)
        WHERE n.last_normal IS NULL OR r.ts > n.last_normal
        GROUP BY r.sensor_id""",
        [names, [metrics[m].direction for m in names], [metrics[m].warn for m in names],
         [s["sensor_id"] for s in states], now])
    onsets = dict(rows)
    out = []
    for s in states:
        severity = "critical" if s["state"] == "alarm" else "warning"
        metric = metrics[s["metric"]]
        onset = onsets[s["sensor_id"]]
        out.append(Alarm(f"sensor:{s['sensor_id']}:{severity}:{_iso(onset)}", "sensor_threshold", severity,
                         s["sensor_id"], s["district_id"], _num(s["lat"]), _num(s["lon"]), _local(onset),
                         {"value": s["value"], "limit": metric.alarm if severity == "critical" else metric.warn,
                          "metric": s["metric"], "unit": metric.unit, "direction": metric.direction}))
    return out


@cached
def _deadlines(now: datetime, scope) -> list[Alarm]:
    cfg = _cfg().deadline_breach
    where, params = scope_clause(scope)
    rows = store.reader().rows(f"""
        WITH c AS (
            SELECT incident_id, category, priority, due_at, district_id, lat, lon, due_at < ? AS overdue
            FROM fct_incident
            WHERE {where} AND {_OPEN_AT} AND due_at >= ? AND due_at <= ?),
        ranked AS (
            SELECT *, row_number() OVER (PARTITION BY district_id ORDER BY overdue DESC,
                          CASE WHEN overdue THEN -epoch(due_at) ELSE epoch(due_at) END, incident_id) AS rank,
                      count(*) OVER (PARTITION BY district_id) AS in_district
            FROM c)
        SELECT incident_id, category, priority, due_at, district_id, lat, lon, overdue, in_district
        FROM ranked WHERE rank <= ? ORDER BY incident_id""",
        [now, *params, now, now, now - timedelta(hours=cfg.overdue_within_hours),
         now + timedelta(hours=cfg.due_within_hours), cfg.max_per_district])
    out = []
    for iid, category, priority, due, district, lat, lon, overdue, in_district in rows:
        phase, severity = ("overdue", "critical") if overdue else ("due_soon", "warning")
        since = due if overdue else due - timedelta(hours=cfg.due_within_hours)
        hours = round((due - now).total_seconds() / 3600, 2)
        out.append(Alarm(f"deadline:{iid}:{phase}:{_iso(due)}", "deadline_breach", severity, iid, district,
                         _num(lat), _num(lon), _local(since),
                         {"category": category, "priority": priority, "hours_to_due": hours,
                          "in_district": int(in_district), "shown_in_district": min(int(in_district),
                                                                                    cfg.max_per_district)}))
    return out


def _grid_floor(now: datetime, step_minutes: int) -> datetime:
    step = step_minutes * 60
    return datetime.fromtimestamp(math.floor(now.timestamp() / step) * step, tz=timezone.utc).astimezone(now.tzinfo)


def _window_ends(points: list[datetime], days: int, tz) -> np.ndarray:
    """Epoch seconds of each grid point moved back 0..days days on the city's wall clock: shape (points, days+1)."""
    out = np.empty((len(points), days + 1), dtype=np.float64)
    for i, p in enumerate(points):
        local = p.astimezone(tz)
        for d in range(days + 1):
            out[i, d] = (local - timedelta(days=d)).timestamp()
    return out


def _episode_start(hit: np.ndarray, max_gap: int) -> int:
    """Index of the oldest spiking grid point of the episode that reaches hit[0] (hit[k]: k steps back), bridging
    runs of at most max_gap non-spiking points."""
    start, gap = 0, 0
    for k in range(1, len(hit)):
        if hit[k]:
            start, gap = k, 0
        else:
            gap += 1
            if gap > max_gap:
                break
    return start


@cached
def _spikes(at: datetime, scope) -> list[Alarm]:
    """District spikes on the grid point `at` (see the module docstring)."""
    cfg = _cfg().district_spike
    config = store.config()
    step = timedelta(minutes=cfg.step_minutes)
    points = [at - k * step for k in range(int(cfg.onset_lookback_hours * 60 // cfg.step_minutes) + 1)]
    hi = _window_ends(points, cfg.baseline_days, config.tz)
    window = cfg.window_hours * 3600
    lo = hi - window
    where, params = scope_clause(scope)
    earliest = datetime.fromtimestamp(float(lo.min()), tz=timezone.utc)
    rows = store.reader().rows(f"""
        SELECT district_id, list(epoch(created_at) ORDER BY created_at)
        FROM fct_incident
        WHERE {where} AND district_id IS NOT NULL AND created_at > ? AND created_at <= ?
        GROUP BY district_id ORDER BY district_id""", [*params, earliest, at])
    if not rows:
        return []
    centroids = {r[0]: (r[1], r[2]) for r in store.reader().rows(
        "SELECT district_id, centroid_lat, centroid_lon FROM dim_district")}
    out = []
    for district, times in rows:
        times = np.asarray(times, dtype=np.float64)
        # Windows are (lo, hi]: incidents created after lo, up to and including hi.
        counts = np.searchsorted(times, hi, side="right") - np.searchsorted(times, lo, side="right")
        count, base = counts[:, 0], counts[:, 1:]
        mean = base.mean(axis=1)
        sd = base.std(axis=1)
        z = (count - mean) / np.maximum(sd, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(mean > 0, count / np.where(mean > 0, mean, 1), np.inf)
        hit = count >= cfg.min_count
        test = np.zeros_like(hit)
        if cfg.z_score is not None:
            test |= z >= cfg.z_score
        if cfg.ratio is not None:
            test |= ratio >= cfg.ratio
        hit &= test
        if not hit[0]:
            continue
        onset = points[_episode_start(hit, cfg.merge_gap_minutes // cfg.step_minutes)]
        lat, lon = centroids.get(district, (None, None))
        out.append(Alarm(f"spike:{district}:{_iso(onset)}", "district_spike", cfg.severity, district, district,
                         _num(lat), _num(lon), _local(onset),
                         {"count": int(count[0]), "baseline": round(float(mean[0]), 2), "sd": round(float(sd[0]), 2),
                          "z": round(float(z[0]), 2),
                          "ratio": None if mean[0] == 0 else round(float(ratio[0]), 2),
                          "window_hours": cfg.window_hours, "baseline_days": cfg.baseline_days}))
    return out


def _stale_feeds(now: datetime) -> list[Alarm]:
    cfg = _cfg().stale_feed
    status = health.feeds_status(now)
    out = []
    first_run = None
    for feed_id, feed in status["feeds"].items():
        if not feed["stale"]:
            continue
        every = timedelta(minutes=feed["expected_every_minutes"])
        last = datetime.fromisoformat(feed["last_load"]) if feed["last_load"] else None
        severity = cfg.severity
        critical_after = None if cfg.critical_after_intervals is None else every * cfg.critical_after_intervals
        if last is not None:
            since = last + every
            if critical_after is not None and now - last > critical_after:
                severity, since = "critical", last + critical_after
        else:
            # Never loaded: silent since the warehouse's first ETL run.
            if first_run is None:
                first_run = store.reader().rows("SELECT min(started_at) FROM etl_run")[0][0] or \
                    datetime.fromtimestamp(0, timezone.utc)
            since = first_run
            if critical_after is not None and now - first_run > critical_after:
                severity = "critical"
        minutes = None if last is None else round((now - last).total_seconds() / 60, 1)
        out.append(Alarm(f"feed:{feed_id}:{severity}:{_iso(last) if last else 'never'}", "stale_feed", severity,
                         feed_id, None, None, None, _local(since),
                         {"minutes_silent": minutes, "expected_every_minutes": feed["expected_every_minutes"],
                          "last_load": feed["last_load"]}))
    return out


__all__ = ["Alarm", "KINDS", "current"]
