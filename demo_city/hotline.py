"""incidents/hotline_12345.csv: the 12345 hotline export (Chinese labels)."""
from __future__ import annotations

import numpy as np

from . import catalog, defects
from .geography import Geography
from .incidents import Window, chunk_bounds, expand, plan_counts, simulate
from .locations import LocationSampler
from .people import FrequentCallers, id_cards, mobiles, names
from .randomness import stream
from .rhythms import STORM_COMPONENT
from .timefmt import local_strings
from .writers import HashedFile, csv_quote, fixed, ints, join_columns

PATH = "incidents/hotline_12345.csv"
CAT_LABEL = np.array([c.label_zh for c in catalog.CATEGORIES], dtype=object)
CAT_DEPT_ZH = np.array([catalog.department(c.department).name_zh for c in catalog.CATEGORIES], dtype=object)
STATUS = np.array(catalog.STATUS_ZH, dtype=object)
PRIORITY = np.array(catalog.PRIORITY_ZH, dtype=object)
CHANNEL = np.array(catalog.HOTLINE_CHANNELS, dtype=object)
CHANNEL_CDF = np.cumsum(catalog.HOTLINE_CHANNEL_SHARE)
SATISFACTION = np.array(["", "1", "2", "3", "4", "5"], dtype=object)
DIST_ZH = np.array([d.name_zh for d in catalog.DISTRICTS], dtype=object)


def _templates(table: dict):
    """Flattened description templates with per-category offsets."""
    flat, offset, count = [], [], []
    for c in catalog.CATEGORIES:
        offset.append(len(flat))
        count.append(len(table[c.code]))
        flat.extend(table[c.code])
    return np.array(flat, dtype=object), np.array(offset), np.array(count)


DESC, DESC_OFF, DESC_CNT = _templates(catalog.DESCRIPTIONS_ZH)


def pick_template(cat, u, flat, off, cnt):
    return flat[off[cat] + np.minimum((u * cnt[cat]).astype(np.int64), cnt[cat] - 1)]


def case_ids(first: int, n: int) -> np.ndarray:
    return np.array(list(map("12345-{:08d}".format, range(first, first + n))), dtype=object)


def apply_frequent(d: dict, pool: FrequentCallers, rng) -> np.ndarray:
    """Re-home ~15% of calls to frequent callers; returns pool index or -1."""
    n = len(d["cat"])
    who = np.full(n, -1, dtype=np.int64)
    mask = (d["comp"] != STORM_COMPONENT) & (rng.random(n) < 0.15)
    idx = np.flatnonzero(mask)
    who[idx] = pool.pick(d["cat"][idx], d["created"][idx], rng)
    for key in ("lon", "lat", "cell", "house", "building", "unit"):
        d[key][idx] = getattr(pool, key)[who[idx]]
    return who


def columns(d: dict, first_id: int, geo: Geography, street_zh, pool, rng) -> dict:
    n = len(d["cat"])
    who = apply_frequent(d, pool, rng)
    name = names(n, rng)
    phone = mobiles(n, rng)
    freq = who >= 0
    name[freq] = pool.name[who[freq]]
    phone[freq] = pool.phone[who[freq]]
    desc = pick_template(d["cat"], d["template"], DESC, DESC_OFF, DESC_CNT)
    ep, ei = d["embed_phone"], d["embed_id"]
    desc[ep] = desc[ep] + "，联系电话" + mobiles(int(ep.sum()), rng)
    desc[ei] = desc[ei] + "，身份证号" + id_cards(int(ei.sum()), rng)
    cell = d["cell"]
    address = ("湖滨市" + DIST_ZH[geo.cell_district[cell]] + street_zh[geo.cell_street[cell]]
               + ints(d["house"]) + "号" + ints(d["building"]) + "栋" + ints(d["unit"]) + "室")
    return {
        "case_id": case_ids(first_id, n),
        "created_at": local_strings(d["created"]),
        "dispatched_at": local_strings(d["dispatch"], d["dispatched"]),
        "closed_at": local_strings(np.where(d["closed"], d["close"], 0), d["closed"]),
        "due_at": local_strings(d["due"]),
        "updated_at": local_strings(d["updated"]),
        "channel": CHANNEL[np.searchsorted(CHANNEL_CDF, rng.random(n) * CHANNEL_CDF[-1], side="right")],
        "category": CAT_LABEL[d["cat"]],
        "department": CAT_DEPT_ZH[d["cat"]],
        "address": address,
        "lat": fixed(np.round(d["lat"], 6), 6),
        "lon": fixed(np.round(d["lon"], 6), 6),
        "status": STATUS[d["status"]],
        "priority": PRIORITY[d["urgent"].astype(np.int64)],
        "caller_name": name,
        "caller_phone": phone,
        "description": csv_quote(desc),
        "satisfaction": SATISFACTION[d["satisfaction"]],
    }


def header() -> bytes:
    return (",".join(catalog.HOTLINE_COLUMNS) + "\n").encode("utf-8")


def encode_lines(lines: np.ndarray, gbk: np.ndarray, sink) -> np.ndarray:
    """Write lines as UTF-8 except the GBK ones; returns which GBK lines
    really got GBK bytes (others are written as UTF-8 and not registered)."""
    done = np.zeros(len(lines), dtype=bool)
    prev = 0
    for i in np.flatnonzero(gbk).tolist():
        raw = defects.gbk_bytes(lines[i])
        if raw is None:
            continue
        if i > prev:
            sink.write(("\n".join(lines[prev:i].tolist()) + "\n").encode("utf-8"))
        sink.write(raw + b"\n")
        done[i] = True
        prev = i + 1
    if prev < len(lines):
        sink.write(("\n".join(lines[prev:].tolist()) + "\n").encode("utf-8"))
    return done


def write(root: str, geo: Geography, sampler: LocationSampler, win: Window, total: int,
          registry: defects.Registry) -> tuple[str, dict]:
    counts = plan_counts(total, win, geo, "hotline-plan")
    pool = FrequentCallers(total, win, sampler)
    street_zh = np.array([s["name_zh"] for s in geo.streets], dtype=object)
    next_id, line_no = 1, 1
    with HashedFile(root, PATH) as sink:
        sink.write(header())
        for k, (h0, h1) in enumerate(chunk_bounds(counts)):
            rng = stream(win.seed, "hotline", k + 1)
            comp, created = expand(counts, win.hours, h0, h1, rng)
            d = simulate(comp, created, sampler, win.end, rng)
            cols = columns(d, next_id, geo, street_zh, pool, rng)
            next_id += len(comp)
            kinds, dup_src = defects.plan_hotline(len(comp), d["closed"], rng)
            defects.mutate_hotline(cols, kinds, d["created"], win.end, rng)
            lines = join_columns([cols[c] for c in catalog.HOTLINE_COLUMNS])
            (lines, keys), kinds = defects.insert_duplicates([lines, cols["case_id"]], kinds, 0.0, rng,
                                                             sources=dup_src)
            gbk = kinds == defects.KIND["mixed_encoding"]
            done = encode_lines(lines, gbk, sink)
            kinds[gbk & ~done] = -1
            for i in np.flatnonzero(kinds >= 0).tolist():
                registry.add(PATH, keys[i], catalog.HOTLINE_DEFECTS[kinds[i]], line=line_no + 1 + i)
            line_no += len(lines)
            sink.rows += len(lines)
        return PATH, sink.close()
