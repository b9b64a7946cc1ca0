"""KPI figures for district leaders, from the definitions in config/kpis/ (core/kpis.py) over the published warehouse.

Periods are calendar periods in the city's timezone (weeks start on Monday): [start, end). The period that holds
`now` is measured up to now ("to date"); states such as closed, answered or overdue are judged at the end of the
window measured, so a past period's figure does not change as later events arrive.

- figure     one KPI for one period: value, records used and excluded (per reason), target, status
- compare    that, the previous period and the same period last year, like for like: when the current period is
             only partly over, the other two are cut at the same wall-clock offset from their start
- series     the last n periods (complete ones, then the current one to date), for a sparkline
- ranking    one figure per district in the caller's scope, best first
- records    the records behind a figure: numerator, denominator (used) or excluded, with the exclusion reason

Every query restricts rows to the caller's scope (query.store.scope_clause on the record's district): a scoped caller
never reads another district's rows, nor counts of them. Pass `now` floored to the minute (query.store.minute).
"""
import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from core import kpis as defs
from query import store
from query.store import cached, scope_clause

PARTS = ("all", "numerator", "denominator", "excluded")


# --- periods ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    grain: str
    start: datetime          # aware, in the city's timezone
    end: datetime            # exclusive

    @property
    def label(self) -> str:
        s = self.start
        return {"day": s.strftime("%Y-%m-%d"), "week": "%d-W%02d" % s.isocalendar()[:2], "month": s.strftime("%Y-%m"),
                "quarter": f"{s.year}-Q{(s.month - 1) // 3 + 1}", "year": str(s.year)}[self.grain]


def _local(d: date, tz) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def _add_months(d: date, months: int) -> date:
    total = d.year * 12 + d.month - 1 + months
    year, month = divmod(total, 12)
    return date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def _start(grain: str, d: date) -> date:
    if grain == "day":
        return d
    if grain == "week":
        return d - timedelta(days=d.weekday())
    if grain == "month":
        return d.replace(day=1)
    if grain == "quarter":
        return date(d.year, (d.month - 1) // 3 * 3 + 1, 1)
    return date(d.year, 1, 1)


def _step(grain: str, d: date, n: int) -> date:
    """The start of the period n periods after the one starting on d."""
    if grain in ("day", "week"):
        return d + timedelta(days=n * (1 if grain == "day" else 7))
    return _add_months(d, n * {"month": 1, "quarter": 3, "year": 12}[grain])


def period_of(grain: str, at: datetime | date, tz=None) -> Period:
    """The period of this grain holding `at` (an aware datetime, or a date of the city's calendar)."""
    if grain not in defs.GRAINS:
        raise ValueError(f"grain: got {grain!r}; expected one of {list(defs.GRAINS)}")
    tz = tz or store.config().tz
    d = at.astimezone(tz).date() if isinstance(at, datetime) else at
    start = _start(grain, d)
    return Period(grain, _local(start, tz), _local(_step(grain, start, 1), tz))


# ASCII digits only and the whole text: \d would take '２０２６' and $ a trailing newline, both read as 2026.
_LABELS = (   # Period.label of each grain, read back
    ("year", re.compile(r"(\d{4})", re.ASCII), lambda m: date(int(m[1]), 1, 1)),
    ("quarter", re.compile(r"(\d{4})-Q([1-4])", re.ASCII), lambda m: date(int(m[1]), int(m[2]) * 3 - 2, 1)),
    ("month", re.compile(r"(\d{4})-(\d{2})", re.ASCII), lambda m: date(int(m[1]), int(m[2]), 1)),
    ("week", re.compile(r"(\d{4})-W(\d{2})", re.ASCII), lambda m: date.fromisocalendar(int(m[1]), int(m[2]), 1)),
    ("day", re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII), lambda m: date(int(m[1]), int(m[2]), int(m[3]))),
)


def parse_label(text: str) -> tuple[str, date] | None:
    """A period label ('2026', '2026-Q4', '2026-10', '2026-W47', '2026-11-20') as (grain, its first day); None
    when it is not one (or names no real date, such as '2026-13' or '2025-W53')."""
    if not isinstance(text, str):
        return None
    for grain, pattern, first in _LABELS:
        m = pattern.fullmatch(text)
        if m:
            try:
                day = first(m)
            except ValueError:
                return None
            return (grain, day) if day.year >= 1971 else None
    return None


def shift(p: Period, n: int) -> Period:
    start = _step(p.grain, p.start.date(), n)
    return Period(p.grain, _local(start, p.start.tzinfo), _local(_step(p.grain, start, 1), p.start.tzinfo))


def last_year(p: Period) -> Period:
    """The same period a year earlier: the same date (29 Feb: 28 Feb), the same ISO week number, month, quarter."""
    d = p.start.date()
    if p.grain == "week":
        year, week, _ = d.isocalendar()
        weeks = date(year - 1, 12, 28).isocalendar()[1]
        return period_of("week", date.fromisocalendar(year - 1, min(week, weeks), 1), p.start.tzinfo)
    if p.grain == "day":
        return period_of("day", _add_months(d, -12), p.start.tzinfo)
    return shift(p, {"month": -12, "quarter": -4, "year": -1}[p.grain])


def _window(p: Period, now: datetime) -> tuple[datetime, datetime]:
    return p.start, min(p.end, max(now, p.start))


def _like_for_like(p: Period, current: Period, end: datetime) -> tuple[datetime, datetime]:
    """p's window cut at the wall-clock offset at which the current period's window ends."""
    if end >= current.end:
        return p.start, p.end
    elapsed = end.astimezone(current.start.tzinfo).replace(tzinfo=None) - current.start.replace(tzinfo=None)
    cut = (p.start.replace(tzinfo=None) + elapsed).replace(tzinfo=p.start.tzinfo)
    return p.start, min(cut, p.end)


# --- results ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figure:
    kpi_id: str
    start: datetime
    end: datetime                    # end of the window measured (now, for the current period)
    value: float | None              # None: nothing to measure (no used records, a window not begun, or one
                                     # ending before the entity's first record in the scope: no data, not 0)
    numerator: int | None            # records passing the numerator (count, ratio); None for quantile, composite
    used: int                        # records measured (composite: components with a value)
    excluded: dict[str, int]         # requirement id -> records excluded by it (composite: 'no_value')
    target: float                    # for counts with target_per: scaled to the scope's districts and the days
    warning: float
    status: str | None               # ok, warning, alert (core.kpis.status)
    components: dict = field(default_factory=dict)   # composite: KPI id -> {value, target, score, weight}


@dataclass(frozen=True)
class Comparison:
    current: Figure
    previous: Figure
    last_year: Figure


@dataclass(frozen=True)
class Ranked:
    rank: int | None
    district_id: str
    name_en: str
    name_zh: str
    figure: Figure
    suppressed: bool = False         # set by query.privacy.ranking: shown as "< k" on a shared screen


@dataclass(frozen=True)
class Drill:
    rows: list[dict]                 # id, district_id, time, value, part, reason + the entity's detail columns
    total: int                       # rows matching before the limit


# --- the SQL ----------------------------------------------------------------------------------------------------

def _kpi(kpi_id: str) -> defs.Kpi:
    kpis = getattr(store.config(), "kpis", None) or {}
    if kpi_id not in kpis:
        raise KeyError(f"kpi: got {kpi_id!r}; expected one of {sorted(kpis)}")
    return kpis[kpi_id]


def _filters(filters: dict, entity: defs.Entity) -> tuple[str, list]:
    parts, params = [], []
    for name, value in filters.items():
        pred = entity.predicates[name]
        sql = f"coalesce({pred.sql}, false)"
        if pred.value == "flag":
            parts.append(sql if value else f"NOT {sql}")
        else:
            parts.append(sql)
            params.append(value)
    return " AND ".join(parts) or "true", params


def _source(kpi: defs.Kpi) -> tuple[str, list]:
    """The entity's rows with the columns its vocabulary uses (sensor_hours: one row per window, sensor and hour)."""
    if kpi.entity == "incidents":
        # previous_same_at is kept by the ETL (etl/derived.py): a window over every incident cost 6 s at 10M.
        return "SELECT i.*, least(i.dispatched_at, i.closed_at) AS response_at FROM fct_incident i", []
    if kpi.entity == "service_cases":
        return "SELECT * FROM fct_service_case", []
    if kpi.entity == "sensor_readings":
        metrics = store.config().catalog.thresholds.metrics
        names = list(metrics)
        return ("""SELECT x.*, s.district_id, s.metric, t.direction, t.alarm
                   FROM fct_sensor_reading x JOIN dim_sensor s USING (sensor_id)
                   LEFT JOIN (SELECT unnest(?::VARCHAR[]) AS metric, unnest(?::VARCHAR[]) AS direction,
                                     unnest(?::DOUBLE[]) AS alarm) t USING (metric)""",
                [names, [metrics[m].direction for m in names], [metrics[m].alarm for m in names]])
    # sensor_hours: each sensor times each hour of each window, with its readings in that hour. Hour i of a window
    # is [start + i h, start + (i + 1) h): windows start at local midnight, so these are the city's clock hours
    # (counted in epoch seconds: date_trunc in a named timezone is three times slower).
    return ("""SELECT h.k, s.sensor_id, s.metric, s.district_id, s.installed_at,
                      to_timestamp(epoch(h.ws) + h.i * 3600) AS hour,
                      coalesce(o.readings, 0) AS readings, coalesce(o.ok_readings, 0) AS ok_readings
               FROM (SELECT k, ws, unnest(range(0, ceil((epoch(we) - epoch(ws)) / 3600)::BIGINT)) AS i FROM w) h
               CROSS JOIN dim_sensor s
               LEFT JOIN (SELECT w.k, x.sensor_id, floor((epoch(x.ts) - epoch(w.ws)) / 3600)::BIGINT AS i,
                                 count(*) AS readings,
                                 count(*) FILTER (WHERE (x.status IS NULL OR x.status = 'ok') AND x.value IS NOT NULL)
                                     AS ok_readings
                          FROM fct_sensor_reading x JOIN w ON x.ts >= w.ws AND x.ts < w.we
                          GROUP BY ALL) o ON o.k = h.k AND o.sensor_id = s.sensor_id AND o.i = h.i""", [])


def _population(kpi: defs.Kpi, windows, scope, details: bool = False) -> tuple[str, list]:
    """SQL of CTEs w, src and p: one row per (window k, record) with its exclusion code x (0: used, i: the i-th
    requirement failed first), hit (passes the numerator) and m (the measure)."""
    entity = defs.ENTITIES[kpi.entity]
    src, params = _source(kpi)
    params = [list(range(len(windows))), [w[0] for w in windows], [w[1] for w in windows], *params]
    cases = []
    for i, req in enumerate(kpi.require, start=1):
        sql, p = _filters(req.filter, entity)
        cases.append(f"WHEN NOT ({sql}) THEN {i}")
        params += p
    hit, p = _filters(kpi.numerator, entity)
    params += p
    measure = entity.measures[kpi.measure].sql if kpi.measure else "NULL"
    if kpi.entity == "sensor_hours":
        time, join = "r.hour", "r.k = w.k"
    elif kpi.snapshot:
        time, join = f"r.{entity.born}", f"r.{entity.born} < w.we"
    else:
        time = f"r.{entity.times[kpi.period_by]}"
        join = f"{time} >= w.ws AND {time} < w.we"
    scope_sql, scope_params = scope_clause(scope, "r.district_id")
    where, where_params = _filters(kpi.where, entity)
    params += scope_params + where_params
    extra = "".join(f", r.{c} AS d_{c}" for c in entity.details) if details else ""
    case = f"CASE {' '.join(cases)} ELSE 0 END" if cases else "0"
    sql = f"""WITH w AS (SELECT unnest(?::INTEGER[]) AS k, unnest(?::TIMESTAMPTZ[]) AS ws,
                                unnest(?::TIMESTAMPTZ[]) AS we),
        src AS ({src}),
        p AS (SELECT w.k, {entity.record_id} AS record_id, r.district_id, {time} AS t, {measure} AS m,
                     {case} AS x, {hit} AS hit{extra}
              FROM w JOIN src r ON {join}
              WHERE {scope_sql} AND {where})"""
    return sql, params


def _measure(kpi_id: str, windows: tuple, scope, by_district: bool) -> dict:
    """{(k, district or None): (used, hits, quantile, [excluded per requirement])} for a measured KPI. Cached per
    window: the tiles, sparklines, ranking and comparison share the periods they have in common."""
    per_window = store.cached_each(
        "query.kpis._measure", [(kpi_id, w, scope, by_district) for w in windows],
        lambda items: _measured(kpi_id, tuple(item[1] for item in items), scope, by_district))
    return {(k, d): v for k, got in enumerate(per_window) for d, v in got.items()}


def _measured(kpi_id: str, windows: tuple, scope, by_district: bool) -> list[dict]:
    """One query for all the windows: [{district or None: (used, hits, quantile, excluded)} per window]."""
    kpi = _kpi(kpi_id)
    sql, params = _population(kpi, windows, scope)
    group = "district_id" if by_district else "NULL"
    quantile = ""
    if kpi.kind == "quantile":
        quantile = ", quantile_cont(CASE WHEN x = 0 THEN m END, ?)"   # FILTER: 4-5x slower (holistic)
        params.append(kpi.q)
    excluded = "".join(f", count(*) FILTER (WHERE x = {i})" for i in range(1, len(kpi.require) + 1))
    rows = store.reader().rows(f"""{sql}
        SELECT k, {group} AS d, count(*) FILTER (WHERE x = 0), count(*) FILTER (WHERE x = 0 AND hit)
               {quantile or ', NULL'}{excluded}
        FROM p GROUP BY ALL""", params)
    out = [{} for _ in windows]
    for r in rows:
        out[r[0]][r[1]] = (r[2], r[3], r[4], list(r[5:]))
    return out


_FIRST = {   # the entity's earliest record in the scope: a window ending before it has no data, not zero
    "incidents": "SELECT min(created_at) FROM fct_incident r WHERE {scope}",
    "service_cases": "SELECT min(submitted_at) FROM fct_service_case r WHERE {scope}",
    "sensor_readings": "SELECT min(x.ts) FROM fct_sensor_reading x JOIN dim_sensor r USING (sensor_id) WHERE {scope}",
}
_FIRST["sensor_hours"] = _FIRST["sensor_readings"]


@cached
def _first(entity: str, scope) -> datetime | None:
    where, params = scope_clause(scope, "r.district_id")
    return store.reader().rows(_FIRST[entity].format(scope=where), params)[0][0]


@cached
def _districts(scope) -> list[tuple[str, str, str]]:
    where, params = scope_clause(scope)
    return [tuple(r) for r in store.reader().rows(
        f"SELECT district_id, name_en, name_zh FROM dim_district WHERE {where} ORDER BY district_id", params)]


def _figure(kpi: defs.Kpi, window, measured, n_districts: int, first: datetime | None) -> Figure:
    start, end = window
    target, warning = kpi.target, kpi.warning
    scale = (n_districts if "district" in kpi.target_per else 1) * \
        ((end - start).total_seconds() / 86400 if "day" in kpi.target_per else 1)
    target, warning = target * scale, warning * scale
    used, hits, quantile, excluded = measured or (0, 0, None, [0] * len(kpi.require))
    if end <= start or first is None or end <= first:
        value = None
    elif kpi.kind == "count":
        value = hits
    elif kpi.kind == "ratio":
        value = hits / used if used else None
    else:
        value = quantile
    return Figure(kpi.id, start, end, value, None if kpi.kind == "quantile" else hits, used,
                  {r.id: int(n) for r, n in zip(kpi.require, excluded)}, target, warning,
                  defs.status(kpi, value, target, warning))


def _n_districts(scope) -> int:
    return max(len(_districts(scope)), 1)


def _figures(kpi: defs.Kpi, windows: tuple, scope, by_district: bool = False) -> dict:
    """{(k, district or None): Figure} for every window (and district in scope, when by_district)."""
    if kpi.kind == "composite":
        return _composite(kpi, windows, scope, by_district)
    measured = _measure(kpi.id, windows, scope, by_district)
    keys = [(k, d[0]) for k in range(len(windows)) for d in _districts(scope)] if by_district else \
        [(k, None) for k in range(len(windows))]
    n = 1 if by_district else _n_districts(scope)
    first = _first(kpi.entity, scope)
    return {key: _figure(kpi, windows[key[0]], measured.get(key), n, first) for key in keys}


def _score(component: Figure, kpi: defs.Kpi, cap: float) -> float | None:
    if component.value is None:
        return None
    if kpi.higher_is_better:
        return min(component.value / component.target, cap)
    return cap if component.value == 0 else min(component.target / component.value, cap)


def _composite(kpi: defs.Kpi, windows: tuple, scope, by_district: bool) -> dict:
    parts = {cid: _figures(_kpi(cid), windows, scope, by_district) for cid in kpi.weights}
    out = {}
    for key in next(iter(parts.values())):
        components, total, weights = {}, 0.0, 0.0
        for cid, weight in kpi.weights.items():
            fig = parts[cid][key]
            score = _score(fig, _kpi(cid), kpi.cap)
            components[cid] = {"value": fig.value, "target": fig.target, "score": score, "weight": weight}
            if score is not None:
                total, weights = total + weight * score, weights + weight
        value = total / weights if weights else None
        start, end = windows[key[0]]
        used = sum(1 for c in components.values() if c["score"] is not None)
        out[key] = Figure(kpi.id, start, end, value if end > start else None, None, used,
                          {"no_value": len(components) - used}, kpi.target, kpi.warning,
                          defs.status(kpi, value, kpi.target, kpi.warning), components)
    return out


# --- the API ----------------------------------------------------------------------------------------------------

def _checked(kpi_id: str, grain: str, now: datetime, scope) -> tuple[defs.Kpi, tuple | None]:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now: got {now!r}; expected a timezone-aware datetime")
    kpi = _kpi(kpi_id)
    if grain not in kpi.periods:
        raise ValueError(f"grain: got {grain!r}; expected one of {kpi.periods} (the periods {kpi_id} supports)")
    return kpi, tuple(scope) if scope is not None else None


def figure(kpi_id: str, grain: str, now: datetime, scope=None, at: datetime | date | None = None) -> Figure:
    """The KPI for the period of `grain` holding `at` (default: now), up to now."""
    kpi, scope = _checked(kpi_id, grain, now, scope)
    window = _window(period_of(grain, at or now), now)
    return _figures(kpi, (window,), scope)[(0, None)]


def compare(kpi_id: str, grain: str, now: datetime, scope=None, at: datetime | date | None = None) -> Comparison:
    """The period holding `at`, the previous one and the same one last year (both like for like, see above)."""
    kpi, scope = _checked(kpi_id, grain, now, scope)
    current = period_of(grain, at or now)
    window = _window(current, now)
    windows = (window, _like_for_like(shift(current, -1), current, window[1]),
               _like_for_like(last_year(current), current, window[1]))
    got = _figures(kpi, windows, scope)
    return Comparison(got[(0, None)], got[(1, None)], got[(2, None)])


def series(kpi_id: str, grain: str, now: datetime, scope=None, points: int = 12,
           at: datetime | date | None = None) -> list[Figure]:
    """The `points` periods ending with the one holding `at` (default: now), oldest first; each complete, except
    the current one, measured to date."""
    if not 1 <= points <= 400:
        raise ValueError(f"points: got {points!r}; expected 1 to 400")
    kpi, scope = _checked(kpi_id, grain, now, scope)
    last = period_of(grain, at or now)
    windows = tuple(_window(shift(last, n), now) for n in range(1 - points, 1))
    got = _figures(kpi, windows, scope)
    return [got[(k, None)] for k in range(points)]


def ranking(kpi_id: str, grain: str, now: datetime, scope=None, at: datetime | date | None = None) -> list[Ranked]:
    """Every district in the scope (dim_district) for the period holding `at`: best first, those without a value
    last, ties sharing a rank (1, 2, 2, 4), then by district id. Counts' targets are per district."""
    kpi, scope = _checked(kpi_id, grain, now, scope)
    window = _window(period_of(grain, at or now), now)
    got = _figures(kpi, (window,), scope, by_district=True)
    rows = [(d, got[(0, d[0])]) for d in _districts(scope)]
    sign = -1 if kpi.higher_is_better else 1
    rows.sort(key=lambda r: (r[1].value is None, sign * (r[1].value or 0), r[0][0]))
    out, previous, rank = [], object(), None
    for i, (d, fig) in enumerate(rows, start=1):
        if fig.value is not None and fig.value != previous:
            rank, previous = i, fig.value
        out.append(Ranked(rank if fig.value is not None else None, d[0], d[1], d[2], fig))
    return out


def records(kpi_id: str, grain: str, now: datetime, scope=None, at: datetime | date | None = None,
            district: str | None = None, part: str = "all", limit: int = 1000, offset: int = 0) -> Drill:
    """The records behind figure(): part 'numerator' (counted), 'denominator' (used), 'excluded' or 'all', in one
    district of the scope or all of it, oldest first. Each row: id, district_id, time (the period_by time), value
    (the measure), part ('numerator', 'denominator' or 'excluded'), reason (requirement id when excluded).
    `offset` skips that many rows first (paging); `total` counts them all."""
    if part not in PARTS:
        raise ValueError(f"part: got {part!r}; expected one of {list(PARTS)}")
    if not 1 <= limit <= 100_000:
        raise ValueError(f"limit: got {limit!r}; expected 1 to 100000")
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset: got {offset!r}; expected a whole number of rows, 0 or more")
    kpi, scope = _checked(kpi_id, grain, now, scope)
    if kpi.kind == "composite":
        raise ValueError(f"kpi: {kpi_id} is a composite; drill into its components {list(kpi.weights)}")
    window = _window(period_of(grain, at or now), now)
    return _records(kpi_id, window, scope, district, part, limit, offset)


@cached
def _records(kpi_id, window, scope, district, part, limit, offset=0) -> Drill:
    kpi = _kpi(kpi_id)
    entity = defs.ENTITIES[kpi.entity]
    sql, params = _population(kpi, (window,), scope, details=True)
    cond = {"all": "true", "numerator": "x = 0 AND hit", "denominator": "x = 0", "excluded": "x > 0"}[part]
    if district is not None:
        cond += " AND district_id = ?"
        params.append(district)
    reasons = [None, *(r.id for r in kpi.require)]
    cols = ", ".join(f"d_{c}" for c in entity.details)
    rows = store.reader().rows(f"""{sql}
        SELECT record_id, district_id, t, m, x, hit, count(*) OVER (), {cols} FROM p WHERE {cond}
        ORDER BY t, record_id LIMIT ? OFFSET ?""", [*params, limit, offset])
    out = []
    for r in rows:
        used = r[4] == 0
        row = {"id": r[0], "district_id": r[1], "time": r[2], "value": r[3],
               "part": ("numerator" if r[5] else "denominator") if used else "excluded", "reason": reasons[r[4]]}
        row.update(zip(entity.details, r[7:]))
        out.append(row)
    if not rows and offset:     # past the last page: still say how many there are
        return Drill([], _records(kpi_id, window, scope, district, part, 1, 0).total)
    return Drill(out, rows[0][6] if rows else 0)


def districts() -> list[tuple[str, str, str]]:
    """(district id, name_en, name_zh) of every district of dim_district the caller may see, by id."""
    return _districts(None)


def board(grain: str, now: datetime, scope=None, at: datetime | date | None = None) -> list[Comparison]:
    """compare() for every KPI that supports the grain, in display order."""
    kpis = getattr(store.config(), "kpis", None) or {}
    return [compare(k.id, grain, now, scope, at) for k in kpis.values() if grain in k.periods]


from query.privacy import suppressed  # noqa: E402  (small-number suppression of a figure: query/privacy.py)

__all__ = ["Period", "Figure", "Comparison", "Ranked", "Drill", "PARTS", "period_of", "parse_label", "shift",
           "last_year", "figure", "compare", "series", "ranking", "records", "board", "districts", "suppressed"]
