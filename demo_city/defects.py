"""Planted data-quality defects and the defects.json registry.

Each defective record carries exactly one defect.  Row-level mutations are
applied to the formatted string columns; duplicates are inserted after the
row they copy (same chunk, so bounded memory), and mixed-encoding lines are
re-encoded as GBK by the writer.
"""
from __future__ import annotations

import math

import numpy as np

from . import catalog
from .geography import KX, KY
from .timefmt import DAY, HOUR, local_strings

HOTLINE_RATE = 0.003          # per kind, per row
HOTLINE_MUTATIONS = catalog.HOTLINE_DEFECTS[:-1]   # all but duplicate
KIND = {k: i for i, k in enumerate(catalog.HOTLINE_DEFECTS)}
DUP = KIND["duplicate"]
BAD_LOCAL_TIMES = np.array(["2026/13/45 25:61", "unknown", "0000-00-00 00:00:00", "N/A"], dtype=object)
BAD_ISO_TIMES = ("2026-13-45T25:61:00+08:00", "not a date", "")


class Registry:
    def __init__(self):
        self.entries: list[dict] = []

    def add(self, file: str, key: str, kind: str, line: int | None = None, index: int | None = None):
        e = {"file": file, "key": key, "kind": kind}
        e["line" if line is not None else "index"] = int(line if line is not None else index)
        self.entries.append(e)

    def sorted(self) -> list[dict]:
        return sorted(self.entries, key=lambda e: (e["file"], e.get("line", e.get("index"))))


def plan_hotline(n: int, closed: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Mutation kind per row (-1 = clean) and the rows to duplicate.

    ~HOTLINE_RATE per kind (binomial), but at least a few per kind in any
    chunk of >= 600 rows so small demo cities show every defect."""
    def count():
        return max(int(rng.binomial(n, HOTLINE_RATE)), min(3, n // 200))

    kinds = np.full(n, -1, dtype=np.int64)
    order = rng.permutation(n)
    closed_first = order[np.argsort(~closed[order], kind="stable")]
    cbc = closed_first[:min(count(), int(closed.sum()))]
    kinds[cbc] = KIND["closed_before_created"]
    free = order[kinds[order] < 0]
    at = 0
    for name in HOTLINE_MUTATIONS + ("duplicate",):
        if name == "closed_before_created":
            continue
        take = free[at:at + count()]
        at += len(take)
        kinds[take] = KIND[name]
    dup_src = np.flatnonzero(kinds == DUP)
    kinds[dup_src] = -1            # sources stay clean; the later copy is the defect
    return kinds, dup_src


def far_away(n: int, rng):
    """Valid coordinates 60-400 km from the city centre."""
    theta = rng.uniform(0, 2 * math.pi, n)
    dist = rng.uniform(60_000, 400_000, n)
    return (catalog.CENTER_LAT + dist * np.sin(theta) * KY, catalog.CENTER_LON + dist * np.cos(theta) * KX)


def mutate_hotline(cols: dict, kinds: np.ndarray, created: np.ndarray, end: int, rng) -> None:
    def rows(name):
        return np.flatnonzero(kinds == KIND[name])

    r = rows("missing_coordinates")
    cols["lat"][r] = cols["lon"][r] = ""
    r = rows("swapped_coordinates")
    cols["lat"][r], cols["lon"][r] = cols["lon"][r].copy(), cols["lat"][r].copy()
    r = rows("outside_city")
    lat, lon = far_away(len(r), rng)
    cols["lat"][r] = [f"{v:.6f}" for v in lat.tolist()]
    cols["lon"][r] = [f"{v:.6f}" for v in lon.tolist()]
    r = rows("unparseable_timestamp")
    cols["created_at"][r] = BAD_LOCAL_TIMES[rng.integers(0, len(BAD_LOCAL_TIMES), len(r))]
    r = rows("future_timestamp")
    cols["created_at"][r] = local_strings(end + rng.integers(30 * DAY, 300 * DAY, len(r)))
    r = rows("closed_before_created")
    cols["closed_at"][r] = local_strings(created[r] - rng.integers(HOUR, 10 * DAY, len(r)))
    r = rows("unknown_category")
    labels = np.array(catalog.UNKNOWN_CATEGORY_LABELS, dtype=object)
    cols["category"][r] = labels[rng.integers(0, len(labels), len(r))]


def insert_duplicates(arrays: list[np.ndarray], kinds: np.ndarray, rate: float, rng,
                      dup_code: int = DUP, max_gap: int = 3000, sources=None):
    """Copy clean rows (~rate of them, or the given sources) to a later
    position in the same chunk.

    Returns the arrays with copies inserted and the new per-row kind array
    (dup_code marks the copies)."""
    n = len(kinds)
    if sources is None:
        src = np.flatnonzero((kinds < 0) & (rng.random(n) < rate))
    else:
        src = np.sort(np.asarray(sources, dtype=np.int64))
    pos = np.minimum(src + 1 + rng.integers(0, max_gap, len(src)), n)
    out = [np.insert(a, pos, a[src]) for a in arrays]
    return out, np.insert(kinds, pos, dup_code)


def gbk_bytes(line: str) -> bytes | None:
    """GBK bytes of a line if encodable *and* not accidentally valid UTF-8."""
    try:
        raw = line.encode("gbk")
    except UnicodeEncodeError:
        return None
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError:
        return raw


def json_plan(n: int, rng) -> dict[int, str]:
    """Global record index -> defect kind for the Open311 feed ("duplicate"
    marks the record that gets copied later)."""
    kinds = catalog.OPEN311_DEFECTS
    k = max(3, int(round(n * 0.0005)))
    if n < 4 * k * len(kinds):
        k = max(1, n // (4 * len(kinds) + 4))
    picked = rng.choice(n, size=k * len(kinds), replace=False)
    return {int(i): kinds[j // k] for j, i in enumerate(picked.tolist())}
