"""services/: government service halls and administrative service cases."""
from __future__ import annotations

import numpy as np
import shapely

from . import catalog
from .geography import Geography
from .incidents import Window
from .locations import LocationSampler
from .randomness import stream
from .rhythms import DAILY
from .timefmt import DAY, HOUR, day_of_week, hour_of_day, local_strings
from .writers import HashedFile, join_columns, write_geojson

CASES_PATH = "services/service_cases.csv"
HALLS_PATH = "services/halls.geojson"
EXTRA_HALLS = 3          # second halls in the most populous districts
ONLINE_FROM, ONLINE_TO = 0.55, 0.75
WITHIN_DEADLINE_Z = 1.476   # P(duration <= deadline) ~ 93%
# Halls open Mon-Fri 9-17 (lunch dip) and Saturday mornings.
OFFICE = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0.2, 1.0, 1.0, 0.9, 0.4, 0.6, 1.0, 1.0, 0.8, 0.1,
                   0, 0, 0, 0, 0, 0])
OFFICE_WEEK = np.array([1, 1, 1, 1, 1, 0.3, 0])


def halls(geo: Geography) -> list[dict]:
    """One hall per district at its most populous cell, plus a few extras."""
    pop_by_d = np.bincount(geo.cell_district, weights=geo.population, minlength=len(catalog.DISTRICTS))
    plan = [(d, 0) for d in range(len(catalog.DISTRICTS))]
    plan += [(int(d), 1) for d in np.argsort(-pop_by_d, kind="stable")[:EXTRA_HALLS]]
    out = []
    for i, (d, rank) in enumerate(plan):
        cells = np.flatnonzero(geo.cell_district == d)
        best = cells[np.argsort(-geo.population[cells], kind="stable")]
        if rank:   # second hall: populous cell at least ~3 km from the first
            first = best[0]
            far = np.hypot(geo.cell_x[best] - geo.cell_x[first], geo.cell_y[best] - geo.cell_y[first]) > 3000
            best = best[far] if far.any() else best[1:]
        point = shapely.point_on_surface(geo.cells[best[0]])
        dist = catalog.DISTRICTS[d]
        suffix_en, suffix_zh = (" Branch", "分厅") if rank else ("", "大厅")
        out.append({"hall_id": f"H{i + 1:02d}", "district": d, "point": point,
                    "name_en": f"{dist.name_en} Service Hall{suffix_en}",
                    "name_zh": f"{dist.name_zh}政务服务{suffix_zh}"})
    return out


def write_halls(root: str, hall_list: list[dict]):
    feats = [({"hall_id": h["hall_id"], "name_en": h["name_en"], "name_zh": h["name_zh"],
               "district_id": catalog.DISTRICTS[h["district"]].district_id}, h["point"]) for h in hall_list]
    return write_geojson(root, HALLS_PATH, feats)


def _submissions(n: int, win: Window, rng):
    """Submission times and channel (online share rising over the window)."""
    hours = win.hours
    frac = (hours - win.start) / float(win.days * DAY)
    p_on = ONLINE_FROM + (ONLINE_TO - ONLINE_FROM) * frac
    on = DAILY[hour_of_day(hours)] * np.where(day_of_week(hours) >= 5, 0.6, 1.0)
    off = OFFICE[hour_of_day(hours)] * OFFICE_WEEK[day_of_week(hours)]
    # Each channel's weekly shape has mean 1, so its volume follows the share.
    on, off = p_on * on / on.mean(), (1 - p_on) * off / off.mean()
    rate = on + off
    h = np.searchsorted(np.cumsum(rate) / rate.sum(), rng.random(n), side="right")
    h = np.minimum(h, len(hours) - 1)
    t = hours[h] + rng.integers(0, HOUR, n)
    online = rng.random(n) < on[h] / rate[h]
    order = np.argsort(t, kind="stable")
    return t[order], online[order]


def write_cases(root: str, geo: Geography, sampler: LocationSampler, win: Window, n: int,
                hall_list: list[dict]):
    rng = stream(win.seed, "service-cases")
    items = catalog.SERVICE_ITEMS
    t, online = _submissions(n, win, rng)
    w = np.array([it.weight for it in items])
    item = np.searchsorted(np.cumsum(w) / w.sum(), rng.random(n), side="right").clip(0, len(items) - 1)
    district = geo.cell_district[sampler.cells_for(0, n, rng)]
    deadline = t + np.array([it.deadline_days for it in items])[item] * DAY
    dur = (deadline - t) * np.exp(rng.normal(-WITHIN_DEADLINE_Z * 0.6, 0.6, n))
    decided_t = t + np.maximum(dur, 600).astype(np.int64)
    decided = decided_t <= win.end
    outcome = np.searchsorted([0.85, 0.93, 1.0], rng.random(n), side="right").clip(0, 2)
    late = decided_t > deadline
    rated = decided & (rng.random(n) < 0.6)
    u = rng.random(n)
    rating = np.where(late, np.searchsorted([0.5, 0.75], u, side="right"),
                      np.searchsorted([0.8, 0.94], u, side="right"))
    hall_ids = np.array([h["hall_id"] for h in hall_list], dtype=object)
    hall_district = np.array([h["district"] for h in hall_list])
    hall = np.empty(n, dtype=object)
    for d in range(len(catalog.DISTRICTS)):          # a hall of the applicant's district
        idx = np.flatnonzero(district == d)
        mine = hall_ids[hall_district == d]
        hall[idx] = mine[rng.integers(0, len(mine), len(idx))]
    hall[online] = ""
    dept_zh = np.array([catalog.department(it.department).name_zh for it in items], dtype=object)
    cols = [
        np.array(list(map("SV{:08d}".format, range(1, n + 1))), dtype=object),
        np.array([it.item_code for it in items], dtype=object)[item],
        np.array([it.name_zh for it in items], dtype=object)[item],
        dept_zh[item],
        np.where(online, "online", "offline").astype(object),
        hall,
        np.array([d.district_id for d in catalog.DISTRICTS], dtype=object)[district],
        local_strings(t), local_strings(deadline), local_strings(decided_t, decided),
        np.where(decided, np.array(catalog.SERVICE_OUTCOMES, dtype=object)[outcome], ""),
        np.where(rated, np.array(catalog.SERVICE_RATINGS, dtype=object)[rating.clip(0, 2)], ""),
    ]
    with HashedFile(root, CASES_PATH) as sink:
        sink.write((",".join(catalog.SERVICE_COLUMNS) + "\n").encode("utf-8"))
        if n:
            sink.write(("\n".join(join_columns(cols).tolist()) + "\n").encode("utf-8"))
        sink.rows = n
        return CASES_PATH, sink.close()
