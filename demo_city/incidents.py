"""Simulation of citizen requests as column arrays (feed-independent).

The year is cut into hour bins; a single multinomial draw fixes how many
requests of each component fall in each hour, so chunks can be produced in
time order with bounded memory and every chunk has its own random stream.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import catalog
from .geography import Geography
from .locations import LocationSampler, storm_mask
from .randomness import stream
from .rhythms import N_CAT, STORM_COMPONENT, component_rates, storm_window
from .timefmt import DAY, HOUR, hour_of_day

NEVER = np.int64(2**62)
CHUNK_ROWS = 500_000
STALLED_SHARE = 0.02    # stalled cases: closed weeks late or never (backlog)
OVERDUE_Z = 1.5         # normal cases: P(work > SLA) ~ 7%; stalled ones add ~1%
FREQUENT_SHARE = 0.15
FREQUENT_WINDOW = 42 * DAY
CATS = catalog.CATEGORIES
CAT_DEPT = np.array([catalog.DEPARTMENT_INDEX[c.department] for c in CATS])
CAT_SLA = np.array([c.sla_hours for c in CATS], dtype=np.int64)
DEPT_SIGMA = np.array([d.close_sigma for d in catalog.DEPARTMENTS + catalog.SERVICE_DEPARTMENTS])
DRAINAGE = catalog.CATEGORY_INDEX["drainage"]


@dataclass
class Window:
    seed: int
    end: int          # local seconds
    days: int

    @property
    def start(self) -> int:
        return self.end - self.days * DAY

    @property
    def hours(self) -> np.ndarray:
        return self.start + HOUR * np.arange(self.days * 24, dtype=np.int64)

    @property
    def storm(self) -> tuple[int, int]:
        return storm_window(self.end, self.days)


def storm_pop_share(geo: Geography) -> float:
    return float(geo.population[storm_mask(geo)].sum() / geo.population.sum())


def plan_counts(total: int, win: Window, geo: Geography, name: str) -> np.ndarray:
    """(component, hour) counts summing exactly to total."""
    rates = component_rates(win.hours, win.hours, win.storm, storm_pop_share(geo))
    p = rates.ravel() / rates.sum()
    return stream(win.seed, name, 0).multinomial(total, p).reshape(rates.shape)


def chunk_bounds(counts: np.ndarray, rows: int = CHUNK_ROWS) -> list[tuple[int, int]]:
    """Consecutive hour ranges holding ~rows requests each."""
    cum = np.cumsum(counts.sum(axis=0))
    bounds, h0 = [], 0
    while h0 < len(cum):
        done = cum[h0 - 1] if h0 else 0
        h1 = int(np.searchsorted(cum, done + rows, side="left")) + 1
        h1 = min(max(h1, h0 + 1), len(cum))
        bounds.append((h0, h1))
        h0 = h1
    return bounds


def expand(counts: np.ndarray, hours: np.ndarray, h0: int, h1: int, rng):
    """Rows (component, created) for hours [h0, h1), sorted by time."""
    block = counts[:, h0:h1]
    comp_idx, hour_idx = np.nonzero(block)
    reps = block[comp_idx, hour_idx]
    comp = np.repeat(comp_idx, reps)
    created = np.repeat(hours[h0 + hour_idx], reps) + rng.integers(0, HOUR, len(comp))
    order = np.argsort(created, kind="stable")
    return comp[order], created[order]


def lifecycle(cat, created, urgent, rng):
    """dispatch, start (in progress), close times; NEVER if it doesn't happen."""
    n = len(cat)
    night = (hour_of_day(created) >= 22) | (hour_of_day(created) < 7)
    delay = rng.lognormal(np.log(1500.0), 1.0, n) * np.where(night, 3.0, 1.0) * np.where(urgent, 0.3, 1.0)
    dispatch = created + np.clip(delay, 60, 3 * DAY).astype(np.int64)
    sigma = DEPT_SIGMA[CAT_DEPT[cat]]
    median_h = CAT_SLA[cat] * np.exp(-OVERDUE_Z * sigma)
    work = rng.lognormal(np.log(median_h), sigma) * HOUR * np.where(urgent, 0.4, 1.0)
    work = np.maximum(work, 600).astype(np.int64)
    start = dispatch + (work * rng.uniform(0.05, 0.4, n)).astype(np.int64)
    close = dispatch + work
    # Stalled cases: half are closed weeks later, half never (old backlog).
    stalled = rng.random(n) < STALLED_SHARE
    late_close = dispatch + (rng.lognormal(np.log(20.0), 0.8, n) * DAY).astype(np.int64)
    forgotten = stalled & (rng.random(n) < 0.5)
    close = np.where(stalled, np.where(forgotten, NEVER, late_close), close)
    start[forgotten & (rng.random(n) < 0.5)] = NEVER
    return dispatch, start, close


def state_at(t, created, dispatch, start, close):
    """Status index (catalog.STATUS_*) and visible timestamps as of t."""
    d_ok, s_ok, c_ok = dispatch <= t, start <= t, close <= t
    status = np.where(c_ok, 3, np.where(s_ok, 2, np.where(d_ok, 1, 0)))
    updated = np.maximum.reduce([created, np.where(d_ok, dispatch, 0), np.where(s_ok, start, 0),
                                 np.where(c_ok, close, 0)])
    return status, d_ok, c_ok, updated


def satisfaction(closed, late, rng):
    """1-5, ~70% of closed cases rated, worse when late; 0 = not rated."""
    n = len(closed)
    rated = closed & (rng.random(n) < 0.7)
    good = np.cumsum([0.04, 0.05, 0.13, 0.30, 0.48])
    bad = np.cumsum([0.25, 0.20, 0.25, 0.20, 0.10])
    u = rng.random(n)
    score = np.where(late, np.searchsorted(bad, u, side="right"), np.searchsorted(good, u, side="right")) + 1
    return np.where(rated, np.minimum(score, 5), 0)


def simulate(comp, created, sampler: LocationSampler, as_of: int, rng) -> dict:
    """Feed-independent columns for one chunk of requests."""
    n = len(comp)
    cat = np.where(comp == STORM_COMPONENT, DRAINAGE, comp)
    lon, lat, cell = sampler.sample(comp, rng)
    urgent = rng.random(n) < np.where((cat == DRAINAGE) | (cat == catalog.CATEGORY_INDEX["water_supply"]),
                                      3 * catalog.URGENT_SHARE, 0.8 * catalog.URGENT_SHARE)
    dispatch, start, close = lifecycle(cat, created, urgent, rng)
    status, d_ok, c_ok, updated = state_at(as_of, created, dispatch, start, close)
    due = created + CAT_SLA[cat] * HOUR
    return {
        "comp": comp, "cat": cat, "created": created, "dispatch": dispatch, "close": close,
        "status": status, "dispatched": d_ok, "closed": c_ok, "updated": updated, "due": due,
        "urgent": urgent, "lon": lon, "lat": lat, "cell": cell,
        "satisfaction": satisfaction(c_ok, close > due, rng),
        "house": rng.integers(1, 1000, n), "building": rng.integers(1, 31, n),
        "unit": rng.integers(1, 29, n) * 100 + rng.integers(1, 7, n),
        "template": rng.random(n), "embed_phone": rng.random(n) < 0.10,
        "embed_id": rng.random(n) < 0.03,
    }


def chunk_stream(seed: int, name: str, chunk: int):
    return stream(seed, name, chunk + 1)


__all__ = ["Window", "plan_counts", "chunk_bounds", "expand", "simulate", "lifecycle", "state_at",
           "satisfaction", "NEVER", "N_CAT"]
