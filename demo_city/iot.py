"""iot/: sensor registry and hourly readings with gaps, faults, the storm,
alarms at the end, late arrivals and planted defects."""
from __future__ import annotations

import math

import numpy as np

from . import catalog, defects
from .geography import Geography
from .incidents import Window
from .locations import LocationSampler
from .randomness import stream
from .rhythms import STORM_COMPONENT
from .timefmt import DAY, HOUR, day_of_week, day_of_year, hour_of_day, iso_local, iso_strings
from .writers import HashedFile, fixed, join_columns, write_geojson

SENSORS_PATH = "iot/sensors.geojson"
READINGS_PATH = "iot/readings.csv"
KINDS = catalog.SENSOR_KINDS
KIND_IDX = {k.kind: i for i, k in enumerate(KINDS)}
CAT = catalog.CATEGORY_INDEX
ALARM_TAIL_H = 12         # hours at the end ramping into alarm for chosen sensors
LATE_SHARE = 0.001
UNKNOWN_IDS = ("AQ-999", "XX-001", "TEST-01", "WL-000")
BAD_TS = ("2026-13-45T25:00:00+08:00", "NaT", "yesterday", "2026/07/21 25h")


def kind_counts(total: int) -> list[int]:
    counts = [int(round(k.share * total)) for k in KINDS[:-1]]
    return counts + [max(total - sum(counts), 0)]


def place_sensors(geo: Geography, sampler: LocationSampler, win: Window, total: int) -> list[dict]:
    rng = stream(win.seed, "sensors")
    low_district = np.array([d.low_lying for d in catalog.DISTRICTS])
    out = []
    for ki, (kind, n) in enumerate(zip(KINDS, kind_counts(total))):
        if kind.kind == "water_level":   # half of the gauges in the storm districts
            n_storm = max(1, math.ceil(n / 2)) if n else 0
            cells = np.concatenate([sampler.cells_for(STORM_COMPONENT, n_storm, rng),
                                    sampler.cells_for(CAT["drainage"], n - n_storm, rng)])
        else:
            comp = {"air": 0, "traffic": CAT["parking"], "noise": CAT["noise"]}[kind.kind]
            cells = sampler.cells_for(comp, n, rng)
        lon, lat = sampler.points_in_cells(cells, rng)
        for j in range(n):
            d = catalog.DISTRICTS[geo.cell_district[cells[j]]]
            installed = win.start - int(rng.integers(30, 1500)) * DAY + int(rng.integers(8, 18)) * HOUR
            out.append({
                "sensor_id": f"{kind.prefix}-{j + 1:03d}", "kind": ki,
                "lon": float(np.round(lon[j], 6)), "lat": float(np.round(lat[j], 6)),
                "storm": bool(low_district[geo.cell_district[cells[j]]]),
                "name_en": f"{d.name_en} {kind.name_en} {j + 1}",
                "name_zh": f"{d.name_zh}{kind.name_zh}{j + 1:02d}号",
                "installed_at": iso_local(installed),
            })
    return out


def write_sensors(root: str, sensors: list[dict]):
    import shapely
    feats = [({"sensor_id": s["sensor_id"], "kind": KINDS[s["kind"]].kind, "metric": KINDS[s["kind"]].metric,
               "unit": KINDS[s["kind"]].unit, "name_en": s["name_en"], "name_zh": s["name_zh"],
               "installed_at": s["installed_at"]}, shapely.Point(s["lon"], s["lat"])) for s in sensors]
    return write_geojson(root, SENSORS_PATH, feats)


def reading_hours(win: Window) -> np.ndarray:
    last = (win.end // HOUR) * HOUR
    return last - HOUR * np.arange(win.days * 24 - 1, -1, -1, dtype=np.int64)


def ar1(rng, n_series: int, n: int, phi: float) -> np.ndarray:
    """Unit-variance AR(1) noise, vectorised across series."""
    eps = rng.normal(0, math.sqrt(1 - phi * phi), (n, n_series))
    out = np.empty((n, n_series))
    out[0] = rng.normal(0, 1, n_series)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + eps[t]
    return out.T


def _gauss(x, mu, sd):
    return np.exp(-0.5 * ((x - mu) / sd) ** 2)


def storm_curve(ts: np.ndarray, storm) -> np.ndarray:
    """0..1 water surge: rises through the storm, peaks late, drains over days."""
    t = (ts - storm[0]) / HOUR
    peak = 0.85 * (storm[1] - storm[0]) / HOUR
    rise = np.clip(t / peak, 0, 1) ** 1.5
    return np.where(t < peak, np.where(t >= 0, rise, 0.0), np.exp(-(t - peak) / 30.0))


def simulate_values(kind: str, n: int, ts: np.ndarray, storm, in_storm: np.ndarray, rng) -> np.ndarray:
    hod, dow, doy = hour_of_day(ts), day_of_week(ts), day_of_year(ts)
    weekend = dow >= 5
    winter = (1 + np.cos(2 * math.pi * (doy - 15) / 365.0)) / 2
    if kind == "air":
        rush = 1 + 0.25 * (_gauss(hod, 8, 1.5) + _gauss(hod, 18, 2))
        base = (24 + 38 * winter) * rush * np.where(weekend, 0.93, 1.0)
        v = base * np.exp(0.35 * ar1(rng, n, len(ts), 0.97)) * rng.lognormal(0, 0.12, (n, 1))
        return np.maximum(v, 2.0)
    if kind == "water_level":
        rain = 0.25 * _gauss(doy, 180, 25) + 0.1 * _gauss(doy, 240, 20)
        base = rng.uniform(1.0, 1.5, (n, 1)) + rain + 0.04 * np.sin(2 * math.pi * hod / 12.4)
        surge = np.where(in_storm[:, None], rng.uniform(2.0, 2.5, (n, 1)), rng.uniform(0.3, 0.6, (n, 1)))
        v = base + surge * storm_curve(ts, storm) + 0.06 * ar1(rng, n, len(ts), 0.995)
        return np.maximum(v, 0.2)
    if kind == "traffic":
        dip = np.where(weekend, 0.2 * _gauss(hod, 15, 3), 0.55 * (_gauss(hod, 8, 1.2) + _gauss(hod, 18, 1.5)))
        free = rng.uniform(45, 65, (n, 1))
        v = free * (1 - np.clip(dip, 0, 0.8)) * (1 + 0.08 * ar1(rng, n, len(ts), 0.8))
        return np.maximum(v, 3.0)
    day = np.clip(_gauss(hod, 14, 5) * 1.6, 0, 1)
    v = 47 + 14 * day + np.where(weekend, 1.5, 0) + rng.normal(0, 3, (n, 1)) + 2.0 * ar1(rng, n, len(ts), 0.9)
    return np.clip(v, 30, 110)


def _stretch(rng, n_hours: int, lo: int, hi: int) -> slice:
    length = int(rng.integers(lo, hi))
    start = int(rng.integers(0, max(n_hours - length - ALARM_TAIL_H, 1)))
    return slice(start, start + length)


def hourly_matrix(sensors, win: Window, rng):
    """values (S,H), status (S,H) int, present (S,H) bool, alarm & silent ids."""
    ts = reading_hours(win)
    S, H = len(sensors), len(ts)
    kinds = np.array([s["kind"] for s in sensors], dtype=np.int64)
    in_storm = np.array([s["storm"] for s in sensors])
    values = np.empty((S, H))
    for ki, k in enumerate(KINDS):
        idx = np.flatnonzero(kinds == ki)
        if len(idx):
            values[idx] = simulate_values(k.kind, len(idx), ts, win.storm, in_storm[idx], rng)
    status = np.zeros((S, H), dtype=np.int64)
    present = np.ones((S, H), dtype=bool)
    for s in range(S):
        for _ in range(rng.poisson(1.5 * win.days / 365 + 0.3)):          # outages
            present[s, _stretch(rng, H, 2, min(96, H // 4 + 3))] = False
        if rng.random() < 0.25:                                           # faults
            sl = _stretch(rng, H, 6, min(72, H // 6 + 7))
            status[s, sl] = 1
            values[s, sl] = -999.0 if rng.random() < 0.5 else values[s, sl.start]
        if rng.random() < 0.15:                                           # battery
            sl = _stretch(rng, H, 24, min(120, H // 4 + 25))
            status[s, sl] = np.where(status[s, sl] == 0, 2, status[s, sl])
    storm_wl = np.flatnonzero(in_storm & (kinds == KIND_IDX["water_level"]))
    during = (ts >= win.storm[0]) & (ts < win.storm[1] + 2 * DAY)
    for s in storm_wl:                       # keep the storm peak observable
        present[s, during] = True
        status[s, during] = 0
        values[s, during] = np.maximum(values[s, during], 0)
    alarm = _force_alarms(values, status, present, kinds, storm_wl, rng)
    silent = _silence(present, alarm, storm_wl, rng)
    return ts, values, status, present, alarm, silent


def _force_alarms(values, status, present, kinds, storm_wl, rng) -> list[int]:
    """One sensor per kind ends in alarm (last ALARM_TAIL_H hours)."""
    alarm = []
    for ki, k in enumerate(KINDS):
        idx = [i for i in np.flatnonzero(kinds == ki).tolist() if i not in set(storm_wl.tolist())]
        idx = idx or np.flatnonzero(kinds == ki).tolist()
        if not idx:
            continue
        s = idx[int(rng.integers(0, len(idx)))]
        ramp = np.linspace(0.0, 1.0, ALARM_TAIL_H) ** 0.5    # climbs, then hovers past the threshold
        tail = slice(values.shape[1] - ALARM_TAIL_H, None)
        start = values[s, values.shape[1] - ALARM_TAIL_H - 1]
        start = start if start > 0 else k.warn
        target = k.alarm * (0.7 if k.low_is_bad else 1.12)
        values[s, tail] = start + (target - start) * ramp
        present[s, tail] = True
        status[s, tail] = 0
        alarm.append(s)
    return alarm


def _silence(present, alarm, storm_wl, rng) -> list[int]:
    """3-5 sensors send nothing during the last day or more."""
    S, H = present.shape
    pool = [s for s in range(S) if s not in alarm]
    k = min(max(3, round(0.03 * S)), 5, len(pool))
    silent = sorted(rng.choice(pool, size=k, replace=False).tolist()) if k else []
    for s in silent:
        present[s, H - int(rng.integers(26, 60)):] = False
    return silent


def write_readings(root: str, sensors: list[dict], win: Window, registry: defects.Registry):
    """readings.csv, written in chunks of WRITE_ROWS lines: the file's rows are planned as indices (plain integer
    arrays), and only a chunk at a time becomes text. The random draws and their order are those of the former
    all-in-memory writer, so a seed gives the same bytes (that writer held every line as a Python string:
    about 23 GiB at 50M readings)."""
    rng = stream(win.seed, "readings")
    ts, values, status, present, alarm, silent = hourly_matrix(sensors, win, rng)
    H = values.shape[1]
    hh, ss = np.nonzero(present.T)               # time-major order
    del present
    hh, ss = hh.astype(np.int32), ss.astype(np.int32)
    protected = np.isin(ss, alarm) & (hh >= H - ALARM_TAIL_H)
    n_def = max(3, int(round(len(hh) * 0.0002)))
    free = np.flatnonzero(~protected)
    bad = rng.choice(free, size=min(n_def, len(free)), replace=False)
    del free
    bad_ts = np.array(BAD_TS, dtype=object)[rng.integers(0, len(BAD_TS), len(bad))]
    kind_of = np.full(len(hh), -1, dtype=np.int8)
    kind_of[bad] = 0
    late = (rng.random(len(hh)) < LATE_SHARE) & ~protected & (kind_of < 0)
    del protected
    arrival = np.where(late, hh + rng.integers(2, 72, len(hh)), hh)
    order = np.concatenate([np.flatnonzero(~late), np.flatnonzero(late)[np.argsort(arrival[late], kind="stable")]])
    late_rows = int(late.sum())
    del arrival, late
    rows = _Rows(sensors, ts, values, status, hh, ss, bad, bad_ts)
    kind_of = kind_of[order]
    order, kind_of = rows.insert_unknown(order, kind_of, n_def, rng)
    clean = np.flatnonzero(kind_of < 0)
    src = rng.choice(clean, size=min(n_def, len(clean)), replace=False)
    del clean
    (order,), kind_of = defects.insert_duplicates([order], kind_of, 0.0, rng, dup_code=2, max_gap=200, sources=src)
    for i in np.flatnonzero(kind_of >= 0).tolist():
        registry.add(READINGS_PATH, rows.key(int(order[i])), catalog.READINGS_DEFECTS[kind_of[i]], line=i + 2)
    del kind_of
    with HashedFile(root, READINGS_PATH) as sink:
        sink.write((",".join(catalog.READINGS_COLUMNS) + "\n").encode("utf-8"))
        for start in range(0, len(order), WRITE_ROWS):
            lines = rows.lines(order[start:start + WRITE_ROWS])
            sink.write(("\n".join(lines.tolist()) + "\n").encode("utf-8"))
        sink.rows = len(order)
        info = sink.close()
    truth = {"alarm_sensors": [sensors[s]["sensor_id"] for s in alarm],
             "silent_sensors": [sensors[s]["sensor_id"] for s in silent], "late_rows": late_rows}
    return (READINGS_PATH, info), truth


WRITE_ROWS = 1_000_000      # lines turned into text at a time


class _Rows:
    """The readings file's rows as indices: 0..N-1 are the hourly matrix's present cells (time-major), N.. the rows
    of unknown sensors; text is made on demand."""

    def __init__(self, sensors, ts, values, status, hh, ss, bad, bad_ts):
        self.ids = np.array([s["sensor_id"] for s in sensors], dtype=object)
        self.kinds = np.array([s["kind"] for s in sensors], dtype=np.int64)
        self.hours = iso_strings(ts)
        self.ts, self.values, self.status, self.hh, self.ss = ts, values, status, hh, ss
        self.bad = dict(zip(bad.tolist(), bad_ts.tolist()))       # rows whose timestamp is a planted defect
        self.bad_rows = np.sort(bad)
        self.n = len(hh)
        self.unknown_lines = self.unknown_keys = np.empty(0, dtype=object)

    def insert_unknown(self, order, kind_of, n, rng):
        """Rows from sensors that are not in sensors.geojson, at random places."""
        sid = np.array(UNKNOWN_IDS, dtype=object)[rng.integers(0, len(UNKNOWN_IDS), n)]
        t = iso_strings(self.ts[rng.integers(0, len(self.ts), n)])
        v = fixed(rng.uniform(1, 90, n), 1)
        self.unknown_lines = join_columns([sid, t, v, np.full(n, "ok", dtype=object)])
        self.unknown_keys = sid + "@" + t
        pos = np.sort(rng.integers(0, len(order) + 1, n))
        return np.insert(order, pos, self.n + np.arange(n)), np.insert(kind_of, pos, 1)

    def key(self, row: int) -> str:
        if row >= self.n:
            return self.unknown_keys[row - self.n]
        return self.ids[self.ss[row]] + "@" + self.bad.get(row, self.hours[self.hh[row]])

    def lines(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows), dtype=object)
        known = rows < self.n
        out[~known] = self.unknown_lines[rows[~known] - self.n]
        r = rows[known]
        h, s = self.hh[r], self.ss[r]
        stamps = self.hours[h]
        planted = np.flatnonzero(np.isin(r, self.bad_rows))
        stamps[planted] = [self.bad[int(i)] for i in r[planted]]
        val = np.empty(len(r), dtype=object)
        for ki, k in enumerate(KINDS):
            m = self.kinds[s] == ki
            val[m] = fixed(self.values[s[m], h[m]], k.decimals)
        statuses = np.array(catalog.READING_STATUSES, dtype=object)[self.status[s, h]]
        out[known] = join_columns([self.ids[s], stamps, val, statuses])
        return out
