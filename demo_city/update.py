"""`update`: a later hotline export covering (end, end + N hours].

Reads the city's manifest and hotline CSV (skipping rows listed in
defects.json), advances the open cases with fresh random transitions and
simulates new cases for the next N hours with the same rhythms.
Seeded by (city seed, "update", hours) -> deterministic.
"""
from __future__ import annotations

import csv
import io
import json
import os

import numpy as np

from . import catalog, geography, hotline
from .incidents import CAT_SLA, Window, expand, simulate
from .incidents import storm_pop_share
from .locations import LocationSampler
from .people import FrequentCallers
from .randomness import stream
from .rhythms import component_rates
from .timefmt import DAY, HOUR, local_strings, parse_end, parse_local
from .writers import join_columns

COL = {c: i for i, c in enumerate(catalog.HOTLINE_COLUMNS)}
LABEL_TO_CAT = {c.label_zh: i for i, c in enumerate(catalog.CATEGORIES)}
STATUS_IDX = {s: i for i, s in enumerate(catalog.STATUS_ZH)}


def read_open_rows(city: str) -> tuple[list[list[str]], int]:
    """The open hotline rows (minus defective lines and duplicates) and the highest case number of all rows.
    Streamed: only open cases are kept (a few percent), so a 10M-row city needs a few hundred MB, not 21 GB."""
    with open(os.path.join(city, "defects.json"), encoding="utf-8") as fh:
        bad = {e["line"] for e in json.load(fh) if e["file"] == hotline.PATH}
    closed = catalog.STATUS_ZH[3]
    open_rows, last = [], 0
    with open(os.path.join(city, hotline.PATH), "rb") as fh:
        for row in csv.reader(_clean_lines(fh, bad)):
            last = max(last, int(row[0].split("-")[1]))
            if row[COL["status"]] != closed:
                open_rows.append(row)
    return open_rows, last


def _clean_lines(fh, bad: set[int]):
    """Physical lines 2.. (after the header), decoded, without the defective ones and empty ones."""
    next(fh, None)
    for no, line in enumerate(fh, start=2):
        line = line[:-1] if line.endswith(b"\n") else line
        if line and no not in bad:
            yield line.decode("utf-8") + "\n"


def advance_open(rows: list[list[str]], end: int, horizon: int, rng) -> list[list[str]]:
    """Open cases whose state changes in (end, end + horizon]."""
    rows = [r for r in rows if r[COL["status"]] != catalog.STATUS_ZH[3]]
    if not rows:
        return []
    n = len(rows)
    status = np.array([STATUS_IDX[r[COL["status"]]] for r in rows])
    cat = np.array([LABEL_TO_CAT[r[COL["category"]]] for r in rows])
    created = parse_local([r[COL["created_at"]] for r in rows])
    old = created < end - 30 * DAY              # stalled backlog rarely moves
    dispatch = np.where(status >= 1, -1, end + rng.exponential(2400, n).astype(np.int64))
    start = np.maximum(dispatch, end) + (rng.lognormal(np.log(3 * HOUR), 1.0, n) * np.where(old, 40, 1)).astype(np.int64)
    start = np.where(status >= 2, -1, start)
    remaining = rng.lognormal(np.log(0.25 * CAT_SLA[cat] * HOUR), 0.9, n) * np.where(old, 40, 1)
    close = np.maximum(start, end) + remaining.astype(np.int64)
    limit = end + horizon
    new_status = np.where(close <= limit, 3, np.where((start <= limit) & (start > 0), 2,
                          np.where((dispatch <= limit) & (dispatch > 0), 1, status)))
    new_status = np.maximum(new_status, status)
    changed = np.flatnonzero(new_status > status)
    rated = rng.random(n) < 0.7
    score = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.06, 0.07, 0.15, 0.30, 0.42])
    out = []
    for i in changed.tolist():
        r = list(rows[i])
        events = [t for t, s in ((dispatch[i], 1), (start[i], 2), (close[i], 3)) if t > 0 and s <= new_status[i]]
        if dispatch[i] > 0:
            r[COL["dispatched_at"]] = local_strings(np.array([dispatch[i]]))[0]
        if new_status[i] == 3:
            r[COL["closed_at"]] = local_strings(np.array([close[i]]))[0]
            r[COL["satisfaction"]] = str(score[i]) if rated[i] else ""
        r[COL["updated_at"]] = local_strings(np.array([max(events)]))[0]
        r[COL["status"]] = catalog.STATUS_ZH[new_status[i]]
        out.append(r)
    return out


def new_cases(manifest: dict, last: int, hours: int, rng) -> list[str]:
    """Requests created in (end, end + hours], formatted like the export."""
    seed, p = manifest["seed"], manifest["parameters"]
    win = Window(seed, parse_end(manifest["end"]), manifest["days"])
    geo = geography.build(seed)
    sampler = LocationSampler(geo, seed)
    future = win.end + HOUR * np.arange(hours, dtype=np.int64)
    rates = component_rates(win.hours, future, win.storm, storm_pop_share(geo))
    counts = rng.poisson(rates * p["incidents_csv"])
    comp, created = expand(counts, future, 0, hours, rng)
    created = created + 1                        # strictly after end
    d = simulate(comp, created, sampler, win.end + hours * HOUR, rng)
    first = 1 + last
    pool = FrequentCallers(p["incidents_csv"], win, sampler)
    street_zh = np.array([s["name_zh"] for s in geo.streets], dtype=object)
    cols = hotline.columns(d, first, geo, street_zh, pool, rng)
    return join_columns([cols[c] for c in catalog.HOTLINE_COLUMNS]).tolist()


def run_update(city: str, out: str, hours: int) -> int:
    with open(os.path.join(city, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    rng = stream(manifest["seed"], "update", hours)
    end = parse_end(manifest["end"])
    rows, last = read_open_rows(city)
    changed = advance_open(rows, end, hours * HOUR, rng)
    fresh = new_cases(manifest, last, hours, rng)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([list(catalog.HOTLINE_COLUMNS)] + changed)
    text = buf.getvalue() + "".join(line + "\n" for line in fresh)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "wb") as fh:
        fh.write(text.encode("utf-8"))
    return len(changed) + len(fresh)
